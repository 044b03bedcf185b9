package kafkacount

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/restart"
)

// TestKafkaCountFallbackRestore is defect 6 of issue 6 on the count job,
// on the embedded broker or on real Kafka (SLUICE_KAFKA_BROKERS): a run
// crashes right after a pre-commit; its two newest complete checkpoints are then
// corrupted, so the next run restores the oldest retained one, whose
// transactional ids were reused since (PRODUCER_FENCED on re-commit). The
// next run must not loop or fail: it aborts what the crash left open (or
// read_committed readers would stall until the transaction timeout) and
// catches up with nothing lost; outputs committed after the restored
// checkpoint are replayed, so duplicates are allowed.
func TestKafkaCountFallbackRestore(t *testing.T) {
	brokers := brokersForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	in, out := "fallback-in-"+suffix, "fallback-out-"+suffix
	if err := EnsureTopics(ctx, brokers, 2, in, out); err != nil {
		t.Fatal(err)
	}
	// The input flows until run 1 crashed and at least minRecords were
	// written, so that run 1 sees data in every checkpoint however slowly
	// it starts.
	const minRecords = 10_000
	inj := fault.New(1)
	total := make(chan int, 1)
	produced := make(chan error, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(in))
		if err != nil {
			produced <- err
			return
		}
		defer cl.Close()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		i := 0
		for ; (i < minRecords || inj.Fired() == 0) && ctx.Err() == nil; i++ {
			if i%50 == 0 {
				<-tick.C
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%50)), Value: []byte(strconv.Itoa(i))}, nil)
		}
		total <- i
		produced <- cl.Flush(ctx)
	}()
	dir := filepath.Join(t.TempDir(), "checkpoints")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	opts := func(inj *fault.Injector) Options {
		return Options{
			Brokers: brokers, Input: in, Output: out, TxnPrefix: "test-" + out, Parallelism: 2,
			CheckpointInterval: 50 * time.Millisecond, MinPause: 10 * time.Millisecond, CheckpointDir: dir,
			Restart: restart.FixedDelay{Attempts: 100, Delay: 10 * time.Millisecond},
			Faults:  inj, Logger: logger,
		}
	}

	// Run 1 crashes (its context is cancelled: nothing more is committed)
	// right after the 9th pre-commit of sink subtask 0, for checkpoint K.
	// K-3 is restored below; its transaction's slot was freed by the
	// commit for K-2 and reused by the transaction just pre-committed,
	// which the crash leaves open.
	inj.Arm(fault.Target{Point: fault.AfterPreCommit, UID: SinkUID, Subtask: 0, Skip: 8})
	runCtx, crash := context.WithCancel(ctx)
	defer crash()
	inj.OnFire(func(fault.Injected) { crash() })
	env, err := New(opts(inj))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = env.Execute(runCtx)
	if inj.Fired() != 1 {
		t.Fatalf("run 1 ended without the crash: %v", ctx.Err())
	}

	metas, err := filepath.Glob(filepath.Join(dir, "chk-*", "_metadata"))
	if err != nil || len(metas) < 3 {
		t.Fatalf("run 1 left %d complete checkpoints (%v), want 3", len(metas), err)
	}
	id := func(p string) int {
		v, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(p)), "chk-"))
		return v
	}
	sort.Slice(metas, func(i, j int) bool { return id(metas[i]) < id(metas[j]) })
	for _, m := range metas[len(metas)-2:] {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20
		if err := os.WriteFile(m, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("run 2 restores checkpoint %d; %d and %d are corrupt", id(metas[len(metas)-3]), id(metas[len(metas)-2]), id(metas[len(metas)-1]))

	env, err = New(opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx)
		done <- err
	}()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	n := int64(<-total)
	for {
		rep, err := Check(ctx, brokers, in, out)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Lost == 0 && rep.Produced == n && rep.Unexpected == 0 {
			t.Logf("caught up: %+v", rep)
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run 2 ended: %v (output %+v)", err, rep)
		case <-ctx.Done():
			t.Fatalf("output never complete: %+v", rep)
		case <-time.After(100 * time.Millisecond):
		}
	}
	env.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := env.Status(); st.Restarts > 0 {
		t.Errorf("run 2 restarted %d times", st.Restarts)
	}
}
