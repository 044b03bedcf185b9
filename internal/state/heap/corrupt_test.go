package heap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

// smallFile returns a snapshot with every kind of state and timers over
// maxP 16, small enough to damage every byte of it in turn.
func smallFile(t testing.TB) RestoreFile {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	u := universe(40)
	h, m := newHarness(t, 16, checkpoint.KeyGroupRange{Start: 0, End: 15}), newModel()
	for range 300 {
		h.step(t, m, rng, u[rng.IntN(len(u))])
	}
	return write(t, h.b)
}

// restoreAll restores files and registers every state, which decodes them.
func restoreAll(maxP int, r checkpoint.KeyGroupRange, files ...RestoreFile) error {
	b := NewHeapBackend(codec.String, maxP, r, clock.NewFake(epoch))
	if err := b.Restore(files); err != nil {
		return err
	}
	_, err := register(b)
	return err
}

// Every single flipped byte is detected, whether it hits the header, a
// section's framing, a payload or a checksum: CRC-32C catches all of them.
func TestFlippedByte(t *testing.T) {
	t.Parallel()
	f := smallFile(t)
	r := checkpoint.KeyGroupRange{Start: 0, End: 15}
	if err := restoreAll(16, r, f); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	for i := range f.Data {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			d := bytes.Clone(f.Data)
			d[i] ^= x
			err := restoreAll(16, r, RestoreFile{Data: d, Range: f.Range, Offsets: f.Offsets})
			if !errors.Is(err, state.ErrCorrupt) && !errors.Is(err, state.ErrIncompatible) {
				t.Fatalf("byte %d ^ %#x: err = %v, want ErrCorrupt", i, x, err)
			}
		}
	}
}

func TestTruncatedAndMisdirected(t *testing.T) {
	t.Parallel()
	f := smallFile(t)
	r := checkpoint.KeyGroupRange{Start: 0, End: 15}
	for _, n := range []int{0, 3, 5, 8, len(f.Data) / 2, len(f.Data) - 5, len(f.Data) - 1} {
		err := restoreAll(16, r, RestoreFile{Data: f.Data[:n], Range: f.Range, Offsets: f.Offsets})
		if !errors.Is(err, state.ErrCorrupt) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
	for name, tc := range map[string]struct {
		f    RestoreFile
		want string
	}{
		"swapped offsets": {RestoreFile{Data: f.Data, Range: f.Range, Offsets: swap(f.Offsets, 2, 3)}, "key group 2"},
		"offset past end": {RestoreFile{Data: f.Data, Range: f.Range, Offsets: set(f.Offsets, 4, int64(len(f.Data)))}, "key group 4"},
		"negative offset": {RestoreFile{Data: f.Data, Range: f.Range, Offsets: set(f.Offsets, 5, -1)}, "key group 5"},
		"mid-section":     {RestoreFile{Data: f.Data, Range: f.Range, Offsets: set(f.Offsets, 6, f.Offsets[6]+1)}, "key group 6"},
		"few offsets":     {RestoreFile{Data: f.Data, Range: f.Range, Offsets: f.Offsets[:3]}, "offsets"},
		"wrong range":     {RestoreFile{Data: f.Data, Range: checkpoint.KeyGroupRange{Start: 0, End: 7}, Offsets: f.Offsets[:8]}, "covers"},
		"not a file":      {RestoreFile{Data: []byte("hello, world"), Range: f.Range, Offsets: f.Offsets}, "not a keyed-state file"},
	} {
		err := restoreAll(16, r, tc.f)
		if !errors.Is(err, state.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrCorrupt mentioning %q", name, err, tc.want)
		}
	}
	if err := restoreAll(32, checkpoint.KeyGroupRange{Start: 0, End: 31}, f); !errors.Is(err, state.ErrIncompatible) {
		t.Errorf("other max parallelism: %v", err)
	}
}

func swap(o []int64, i, j int) []int64 {
	c := append([]int64(nil), o...)
	c[i], c[j] = c[j], c[i]
	return c
}

func set(o []int64, i int, v int64) []int64 {
	c := append([]int64(nil), o...)
	c[i] = v
	return c
}

// failing is a codec whose Decode always fails, standing in for a codec that
// does not match what was written.
type failing struct{ codec.Codec[int64] }

func (failing) Decode([]byte) (int64, int, error) { return 0, 0, codec.ErrCorrupt }

// CodecID claims Int64's identity, so a decoding failure is corruption, not
// a change of codec.
func (failing) CodecID() codec.ID { return codec.IDOf(codec.Int64) }

// undeclared fails to decode and declares no identity, like a hand-written
// codec replacing the one the state was written with.
type undeclared struct{ codec.Codec[int64] }

func (undeclared) Decode([]byte) (int64, int, error) { return 0, 0, codec.ErrCorrupt }

// Content that passes the checksums but does not decode with the registered
// codec is reported with the state and the key group.
func TestDecodeErrorNamesStateAndKeyGroup(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	v, _ := Value(b, "balance", codec.Int64)
	b.SetCurrentKey("alice")
	v.Update(10)
	kg := b.CurrentKeyGroup()
	f := write(t, b)
	b2 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	_, err := Value[string, int64](b2, "balance", failing{codec.Int64})
	if !errors.Is(err, state.ErrCorrupt) || !errors.Is(err, codec.ErrCorrupt) ||
		!strings.Contains(err.Error(), `state "balance"`) || !strings.Contains(err.Error(), "key group "+strconv.Itoa(kg)) {
		t.Fatalf("err = %v", err)
	}
	// A codec without a declared ID that cannot read the entries is
	// reported as a change of codec, naming both.
	_, err = Value[string, int64](b2, "balance", undeclared{codec.Int64})
	if !errors.Is(err, state.ErrIncompatible) || !strings.Contains(err.Error(), `written with value codec zigzag-varint@v1, the job now uses go:int64@v0`) {
		t.Fatalf("undeclared codec: err = %v", err)
	}
	// The raw state is kept: a registration with the right codec succeeds.
	v2, err := Value(b2, "balance", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	b2.SetCurrentKey("alice")
	if x, _ := v2.Value(); x != 10 {
		t.Fatalf("value = %d", x)
	}
	// A key codec whose hash changed would file keys under the wrong key
	// group; restore catches it.
	b3 := NewHeapBackend[string](otherHash{codec.String}, 128, full128, nil)
	if err := b3.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	if _, err := Value(b3, "balance", codec.Int64); !errors.Is(err, state.ErrCorrupt) || !strings.Contains(err.Error(), "hashes to key group") {
		t.Fatalf("changed hash: %v", err)
	}
}

type otherHash struct{ codec.KeyCodec[string] }

func (otherHash) Hash(s string) uint64 { return codec.HashString(s) + 1 }

// Restore and the registrations that decode never panic, whatever the file.
func FuzzRestore(f *testing.F) {
	good := smallFile(f)
	f.Add(good.Data)
	f.Add(good.Data[:len(good.Data)/2])
	f.Add([]byte("SLKG"))
	r := checkpoint.KeyGroupRange{Start: 0, End: 15}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = restoreAll(16, r, RestoreFile{Data: data, Range: r, Offsets: good.Offsets})
		// Also at another parallelism, reading half the key groups.
		_ = restoreAll(16, keygroup.RangeFor(1, 2, 16), RestoreFile{Data: data, Range: r, Offsets: good.Offsets})
	})
}

// sectionFile builds a one-key-group file (maxP 1) around payload, with
// valid framing and checksums, so that fuzzing reaches the block parser and
// the decoders instead of stopping at the checksum.
func sectionFile(payload []byte) RestoreFile {
	d := []byte(fileMagic)
	d = append(d, 1) // version 1: no state table, still read
	d = binary.AppendUvarint(d, 1)
	d = binary.AppendVarint(d, 0)
	d = binary.AppendVarint(d, 0)
	d = binary.LittleEndian.AppendUint32(d, crc32.Checksum(d, castagnoli))
	off := int64(len(d))
	sec := binary.AppendUvarint(nil, 0)
	sec = binary.AppendUvarint(sec, uint64(len(payload)))
	sec = append(sec, payload...)
	sec = binary.LittleEndian.AppendUint32(sec, crc32.Checksum(sec, castagnoli))
	return RestoreFile{Data: append(d, sec...), Range: checkpoint.KeyGroupRange{Start: 0, End: 0}, Offsets: []int64{off}}
}

func FuzzRestorePayload(f *testing.F) {
	rng := rand.New(rand.NewPCG(8, 8))
	u := universe(10)
	r := checkpoint.KeyGroupRange{Start: 0, End: 0}
	h, m := newHarness(f, 1, r), newModel()
	for range 60 {
		h.step(f, m, rng, u[rng.IntN(len(u))])
	}
	good := write(f, h.b)
	sec := good.Data[good.Offsets[0]:]
	plen, n1 := binary.Uvarint(sec[1:])
	payload := sec[1+n1 : 1+n1+int(plen)]
	if err := restoreAll(1, r, sectionFile(payload)); err != nil {
		f.Fatalf("rebuilt file: %v", err)
	}
	f.Add(payload)
	f.Add([]byte{tagTimers, 3, 1, 'a', 2})
	f.Add([]byte{tagState, 1, 'v', byte(kindValue), flagTTL, 4, 1, 'k', 2, 0x80})
	f.Fuzz(func(t *testing.T, payload []byte) {
		_ = restoreAll(1, r, sectionFile(payload))
	})
}
