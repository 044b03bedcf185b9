package kafka

import (
	"errors"
	"math"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
)

func TestTxnCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range []Txn{
		{},
		{TransactionalID: "p-sink-0-0", ProducerID: 1, ProducerEpoch: 0, TxnVersion: 1, HasData: true},
		{TransactionalID: "prefix-some uid-12-4", ProducerID: math.MaxInt64, ProducerEpoch: math.MaxInt16, TxnVersion: 2},
		{TransactionalID: "x", ProducerID: -1, ProducerEpoch: -1, TxnVersion: 2, HasData: true},
	} {
		b := TxnCodec.Append([]byte("junk"), &in)
		got, n, err := TxnCodec.Decode(b[4:])
		if err != nil {
			t.Fatalf("%+v: %v", in, err)
		}
		if n != len(b)-4 {
			t.Errorf("%+v: consumed %d of %d bytes", in, n, len(b)-4)
		}
		if *got != in {
			t.Errorf("round trip: got %+v, want %+v", *got, in)
		}
		// Every strict prefix is truncated, never a panic or a wrong value.
		for i := range len(b) - 4 {
			if _, _, err := TxnCodec.Decode(b[4 : 4+i]); !errors.Is(err, codec.ErrTruncated) {
				t.Errorf("%+v cut at %d: got %v, want ErrTruncated", in, i, err)
			}
		}
	}
}

func TestTxnCodecRejectsCorrupt(t *testing.T) {
	t.Parallel()
	good := TxnCodec.Append(nil, &Txn{TransactionalID: "a", ProducerID: 5, ProducerEpoch: 3, TxnVersion: 2, HasData: true})
	bad := append([]byte{}, good...)
	bad[0] = 9 // unknown format
	if _, _, err := TxnCodec.Decode(bad); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("unknown format: got %v, want ErrCorrupt", err)
	}
	bad = append([]byte{}, good...)
	bad[len(bad)-1] = 7 // has-data neither 0 nor 1
	if _, _, err := TxnCodec.Decode(bad); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("bad bool: got %v, want ErrCorrupt", err)
	}
	// An epoch out of int16 range.
	b := []byte{txnFormat}
	b = codec.String.Append(b, "a")
	b = codec.Int64.Append(b, 1)
	b = codec.Int64.Append(b, 1<<20)
	b = codec.Int64.Append(b, 2)
	b = codec.Bool.Append(b, true)
	if _, _, err := TxnCodec.Decode(b); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("epoch out of range: got %v, want ErrCorrupt", err)
	}
}

func FuzzTxnCodecDecode(f *testing.F) {
	f.Add(TxnCodec.Append(nil, &Txn{TransactionalID: "p-u-0-1", ProducerID: 9, ProducerEpoch: 2, TxnVersion: 2, HasData: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, n, err := TxnCodec.Decode(b)
		if err != nil {
			return
		}
		again := TxnCodec.Append(nil, got)
		if string(again) != string(b[:n]) {
			t.Fatalf("decode/encode not stable: %x vs %x", again, b[:n])
		}
	})
}

func TestTxnIDs(t *testing.T) {
	t.Parallel()
	if got := newTxnIDs("job", "sink", 0).id(3, 4); got != "job-sink-3-4" {
		t.Fatalf("id without an epoch = %q", got)
	}
	ids := newTxnIDs("job", "sink", 7)
	if got := ids.id(3, 4); got != "job-sink-3-4-e7" {
		t.Fatalf("id = %q", got)
	}
	if got := ids.idAt(3, 4, 0); got != "job-sink-3-4" {
		t.Fatalf("idAt epoch 0 = %q", got)
	}
	for _, c := range []struct {
		id       string
		sub, slt int
		epoch    int64
		ok       bool
	}{
		{"job-sink-3-4", 3, 4, 0, true}, // written before ids had an epoch
		{"job-sink-0-0", 0, 0, 0, true},
		{"job-sink-3-4-e7", 3, 4, 7, true},
		{"job-sink-3-4-e12", 3, 4, 12, true},
		{"job-sink-0-0-e1", 0, 0, 1, true},
		{"job-sink-2-0-1", 0, 0, 0, false},    // operator "sink-2", not ours
		{"job-sink-2-0-1-e3", 0, 0, 0, false}, // operator "sink-2" with an epoch
		{"job-sink-e3-0-1", 0, 0, 0, false},   // operator "sink-e3"
		{"job-sink-3-4-e0", 0, 0, 0, false},
		{"job-sink-3-4-e07", 0, 0, 0, false},
		{"job-sink-3-4-7", 0, 0, 0, false},
		{"job-sink-3-4-e", 0, 0, 0, false},
		{"job-sink-3-4-e-1", 0, 0, 0, false},
		{"job-sink-x-1", 0, 0, 0, false},
		{"job-sink-01-1", 0, 0, 0, false}, // not how we write numbers
		{"job-sink-1", 0, 0, 0, false},
		{"job-sinks-1-1", 0, 0, 0, false},
		{"other-sink-1-1", 0, 0, 0, false},
		{"job-sink--1-1", 0, 0, 0, false},
	} {
		sub, slt, epoch, ok := ids.parse(c.id)
		if ok != c.ok || ok && (sub != c.sub || slt != c.slt || epoch != c.epoch) {
			t.Errorf("parse(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", c.id, sub, slt, epoch, ok, c.sub, c.slt, c.epoch, c.ok)
		}
	}
	// Neither form of operator "sink-2"'s ids is taken for operator
	// "sink"'s, nor the other way round.
	other := newTxnIDs("job", "sink-2", 7)
	for _, id := range []string{other.id(0, 1), other.idAt(0, 1, 0)} {
		if _, _, _, ok := ids.parse(id); ok {
			t.Errorf("operator sink parses operator sink-2's id %q", id)
		}
	}
	for _, id := range []string{ids.id(2, 0), ids.idAt(2, 0, 0), ids.idAt(2, 0, 1)} {
		if _, _, _, ok := other.parse(id); ok {
			t.Errorf("operator sink-2 parses operator sink's id %q", id)
		}
	}
}

func TestRestoredTxns(t *testing.T) {
	t.Parallel()
	a := &Txn{TransactionalID: "p-sink-0-1", ProducerID: 3, ProducerEpoch: 1, TxnVersion: 2, HasData: true}
	b := &Txn{TransactionalID: "p-sink-1-0", ProducerID: 4, TxnVersion: 1}
	oc := sinkOpCtx("sink", 0, 1, nil, a, b)
	// A large checkpoint id takes several varint bytes.
	long := TxnCodec.Append([]byte{0x80, 0x80, 0x80, 0x01}, b)
	oc.Restored.Operator["pending-transactions"] = append(oc.Restored.Operator["pending-transactions"], long)
	got, err := sluice.RestoredTransactions(oc, TxnCodec)
	if err != nil || len(got) != 3 || *got[0] != *a || *got[1] != *b || *got[2] != *b {
		t.Fatalf("RestoredTransactions = %v, %v", got, err)
	}
	// A corrupt entry is an error, never a silently forgotten transaction.
	oc.Restored.Operator["pending-transactions"] = append(oc.Restored.Operator["pending-transactions"], []byte{1, 2, 3})
	if _, err := sluice.RestoredTransactions(oc, TxnCodec); err == nil {
		t.Fatal("corrupt entry accepted")
	}
}
