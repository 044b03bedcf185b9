package pebblestate_test

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
)

// BenchmarkPebbleLocalRestore measures the restore of about 1 GiB of
// Pebble state from its local copy (local recovery, docs/state-pebble.md):
// 1M keys of 1 KiB incompressible values are written, an incremental
// checkpoint is taken (uploaded to a shared directory, and kept locally),
// and the backend closes; each iteration then opens a new backend on the
// same directory, restores the checkpoint and reads 1000 random keys back.
// It is skipped unless SLUICE_BENCH_1GB is set: it writes about 2 GiB to
// the temporary directory and loads for about a minute. Run:
//
//	SLUICE_BENCH_1GB=1 go test -run XXX -bench PebbleLocalRestore -benchtime 3x ./internal/state/pebblestate/
func BenchmarkPebbleLocalRestore(b *testing.B) {
	if os.Getenv("SLUICE_BENCH_1GB") == "" {
		b.Skip("set SLUICE_BENCH_1GB=1 to run the 1 GiB restore")
	}
	const maxP, keys, valueSize = 128, 1 << 20, 1 << 10
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	fs := &fakeShared{root: b.TempDir()}
	mem := pebblestate.NewMemory(64<<20, 1)
	defer mem.Release()
	o := mem.Options(b.TempDir() + "/op-0/db")
	o.Incremental, o.LocalRecovery = true, true
	value := func(k int64) []byte {
		v := make([]byte, valueSize)
		rng := rand.New(rand.NewPCG(uint64(k), 1))
		for i := 0; i < len(v); i += 8 {
			binary.LittleEndian.PutUint64(v[i:], rng.Uint64())
		}
		return v
	}
	be, err := pebblestate.New(codec.Int64, maxP, r, nil, o)
	if err != nil {
		b.Fatal(err)
	}
	blob, err := pebblestate.Value(be, "blob", codec.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	for k := range int64(keys) {
		if err := be.SetCurrentKey(k); err != nil {
			b.Fatal(err)
		}
		blob.Update(value(k))
	}
	s := be.Snapshot(1)
	hs, err := runtime.IncrementalSnapshot(s).WriteIncremental(context.Background(), fs)
	s.Release()
	if err != nil {
		b.Fatal(err)
	}
	be.NotifyCheckpointComplete(1)
	if err := be.Close(); err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, h := range hs {
		size += h.Size
	}
	fetched := fs.fetches.Load()
	rng := rand.New(rand.NewPCG(1, 2))
	var slowest time.Duration
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		nb, err := pebblestate.New(codec.Int64, maxP, r, nil, o)
		if err != nil {
			b.Fatal(err)
		}
		if err := nb.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(hs, r)}); err != nil {
			b.Fatal(err)
		}
		nblob, err := pebblestate.Value(nb, "blob", codec.Bytes)
		if err != nil {
			b.Fatal(err)
		}
		for range 1000 {
			k := rng.Int64N(keys)
			if err := nb.SetCurrentKey(k); err != nil {
				b.Fatal(err)
			}
			if v, ok := nblob.Value(); !ok || string(v) != string(value(k)) {
				b.Fatalf("key %d after the restore: %d bytes, found %v", k, len(v), ok)
			}
		}
		slowest = max(slowest, time.Since(began))
		b.StopTimer()
		if err := nb.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if f := fs.fetches.Load() - fetched; f != 0 {
		b.Fatalf("%d files fetched from shared storage: the restore did not use the local copy", f)
	}
	b.ReportMetric(float64(size)/(1<<20), "state-MiB")
	b.ReportMetric(slowest.Seconds(), "max-restore-s")
}
