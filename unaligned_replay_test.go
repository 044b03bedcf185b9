package sluice_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/restart"
)

// memTxns is a two-phase-commit sink's transactions held in memory across
// attempts: what was pre-committed under which id, and what was committed,
// in commit order. A commit of an id committed already is a no-op (the
// framework may commit again after a restore).
type memTxns struct {
	mu        sync.Mutex
	prepared  map[string][]int
	done      map[string]bool
	committed []int
	// write, when set, runs before each record is added (a slow sink, an
	// injected failure).
	write func() error
}

func (m *memTxns) provider() sluice.SinkProvider[int] {
	return sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[int, string]{
		New: func(_ context.Context, oc *sluice.OperatorContext) (sluice.TwoPhaseCommitter[int, string], error) {
			return &memCommitter{m: m, run: oc.RunID, open: map[string][]int{}}, nil
		},
		TxnCodec: codec.String,
	})
}

func (m *memTxns) commit(txn string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done[txn] {
		return
	}
	m.done[txn] = true
	m.committed = append(m.committed, m.prepared[txn]...)
	delete(m.prepared, txn)
}

type memCommitter struct {
	m    *memTxns
	run  string
	n    int
	open map[string][]int
}

func (c *memCommitter) BeginTransaction(context.Context) (string, error) {
	c.n++
	txn := c.run + "-" + strconv.Itoa(c.n)
	c.open[txn] = nil
	return txn, nil
}

func (c *memCommitter) Write(txn string, v int) error {
	if c.m.write != nil {
		if err := c.m.write(); err != nil {
			return err
		}
	}
	c.open[txn] = append(c.open[txn], v)
	return nil
}

func (c *memCommitter) PreCommit(_ context.Context, txn string) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.m.prepared[txn] = c.open[txn]
	delete(c.open, txn)
	return nil
}

func (c *memCommitter) Commit(_ context.Context, txn string) error { c.m.commit(txn); return nil }
func (c *memCommitter) RecoverAndCommit(_ context.Context, txn string) error {
	c.m.commit(txn)
	return nil
}
func (c *memCommitter) Abort(_ context.Context, txn string) error {
	delete(c.open, txn)
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	delete(c.m.prepared, txn)
	return nil
}
func (c *memCommitter) CleanUp(context.Context, []string) error { return nil }

var errInjectedAfterCheckpoint = errors.New("failure injected after the unaligned checkpoint")

// TestUnalignedRestoreReplaysChannelState restores, for certain, an
// unaligned checkpoint whose channel state holds records (docs/design.md
// §3 "Unaligned checkpoints"): src → map → a slow two-phase-commit sink,
// each in its own task, edges of 8 batches of 100 records. Once the edges
// are full, a checkpoint is triggered; its metadata must hold records in
// flight; the sink then fails at its next record. The restore must replay
// those records (the runtime logs how many), and the committed output must
// be every record exactly once, in order. In a synctest bubble: the sink's
// 1 ms per record is fake time, and every wait is exact.
func TestUnalignedRestoreReplaysChannelState(t *testing.T) {
	const n = 6000
	synctest.Test(t, func(t *testing.T) {
		var logs logBuffer
		cfg := testConfig(t, 1)
		cfg.BatchSize = 100
		cfg.ChannelCapacity = 8
		cfg.Clock = clock.Real{} // the bubble's fake time
		cfg.Checkpoint = checkpoint.Config{Interval: -1, Unaligned: true, Timeout: time.Minute}
		cfg.Restart = restart.FixedDelay{Attempts: 2, Delay: time.Millisecond}
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		env := sluice.New(cfg)
		src := newLogSource[int]()
		mapped := sluice.Map(sluice.FromSource(env, "src", src), "inc", func(v int) int { return v + 1 }, sluice.StartNewChain())
		var fail atomic.Bool
		txns := &memTxns{prepared: map[string][]int{}, done: map[string]bool{}, write: func() error {
			if fail.CompareAndSwap(true, false) {
				return errInjectedAfterCheckpoint
			}
			time.Sleep(time.Millisecond)
			return nil
		}}
		sluice.Sink(mapped, "slow-sink", txns.provider(), sluice.StartNewChain())
		recs := make([]int, n)
		for i := range recs {
			recs[i] = i
		}
		src.Append(recs...)
		src.Close()
		x := start(t, env)

		// The sink takes a record a millisecond; the source fills both
		// edges at once. 200 ms in, they are full.
		time.Sleep(200 * time.Millisecond)
		id, err := env.TriggerCheckpoint(ctxTimeout(t))
		if err != nil {
			t.Fatalf("TriggerCheckpoint: %v", err)
		}
		md, _, err := store.LoadPath(ctxTimeout(t), filepath.Join(cfg.CheckpointDir, store.CheckpointDir(id)))
		if err != nil {
			t.Fatalf("checkpoint %d: %v", id, err)
		}
		var inFlight int64
		for _, op := range md.Operators {
			for _, st := range op.Subtasks {
				for _, ch := range st.Channels {
					inFlight += ch.Records
				}
			}
		}
		if inFlight == 0 {
			t.Fatalf("checkpoint %d holds no records in flight: the edges were not full, the test proves nothing", id)
		}
		fail.Store(true)

		res, err := x.wait(t)
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if res.Restarts != 1 {
			t.Fatalf("%d restarts, want 1 (the injected failure)", res.Restarts)
		}
		m := regexp.MustCompile(`replayed the records in flight.* records=(\d+)`).FindStringSubmatch(logs.String())
		if m == nil {
			t.Fatalf("the restore did not replay channel state; log:\n%s", logs.String())
		}
		if replayed, _ := strconv.ParseInt(m[1], 10, 64); replayed == 0 {
			t.Fatalf("the restore replayed 0 records, checkpoint %d held %d", id, inFlight)
		}
		t.Logf("checkpoint %d held %d records in flight; restore: %s", id, inFlight, m[0])

		txns.mu.Lock()
		defer txns.mu.Unlock()
		if len(txns.committed) != n {
			t.Fatalf("%d records committed, want %d", len(txns.committed), n)
		}
		for i, v := range txns.committed {
			if v != i+1 {
				t.Fatalf("committed record %d is %d, want %d (lost or duplicated around the restore)", i, v, i+1)
			}
		}
	})
}
