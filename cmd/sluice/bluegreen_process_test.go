package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/internal/verify"
)

// upgradeRig is what the upgrade tests share: the sluice binary, the
// embedded broker in its own process, and a deadline.
type upgradeRig struct {
	t       *testing.T
	ctx     context.Context
	bin     string
	dir     string
	brokers []string
}

func newUpgradeRig(t *testing.T, topics ...string) *upgradeRig {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real processes")
	}
	r := &upgradeRig{t: t, bin: buildBinary(t), dir: t.TempDir()}
	r.brokers = []string{startBroker(t, r.bin, filepath.Join(r.dir, "broker"))}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	r.ctx = ctx
	if err := kafkacount.EnsureTopics(ctx, r.brokers, 4, topics...); err != nil {
		t.Fatal(err)
	}
	return r
}

// countJob starts `sluice run count` on input "in" writing to output with
// its own transactional-id prefix and consumer group (named after output)
// and checkpoint directory, serving its control API on a free port; it
// returns the process and the API's address.
func (r *upgradeRig) countJob(output, ckpt string, parallelism int, extra ...string) (*jobProc, string) {
	r.t.Helper()
	args := append([]string{"run", "count", "--brokers", r.brokers[0], "--input", "in", "--output", output,
		"--txn-prefix", "upgrade-" + output, "--group", "upgrade-" + output,
		"--checkpoint-dir", filepath.Join(r.dir, ckpt), "--parallelism", strconv.Itoa(parallelism),
		"--checkpoint-interval", "100ms", "--min-pause", "20ms", "--http", "127.0.0.1:0"}, extra...)
	p := startJobProc(r.t, r.bin, nil, args...)
	select {
	case api := <-p.addr:
		return p, api
	case err := <-p.done:
		r.t.Fatalf("%v ended: %v\n%s", args, err, p.output())
	case <-r.ctx.Done():
		r.t.Fatalf("no control API:\n%s", p.output())
	}
	return nil, ""
}

// sluice runs a client command of the binary and returns its stdout, or
// fails the test.
func (r *upgradeRig) sluice(args ...string) string {
	r.t.Helper()
	out, err := r.sluiceErr(args...)
	if err != nil {
		r.t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// sluiceErr runs a client command and returns its stdout and stderr, and
// its error.
func (r *upgradeRig) sluiceErr(args ...string) (string, error) {
	c := exec.CommandContext(r.ctx, r.bin, args...)
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	return strings.TrimSpace(stdout.String() + stderr.String()), err
}

// produce writes records from..from+n-1 of keys k0..k96 to "in".
func (r *upgradeRig) produce(from, n int) {
	r.t.Helper()
	produceKeys(r.t, r.ctx, r.brokers, "in", from, n)
}

// flow produces records from on to "in", 500 every 20ms, until stop is
// closed and then batches more batches of 500; it sends the number of the
// record after the last one, or fails the test.
func (r *upgradeRig) flow(from int, stop <-chan struct{}, batches int) <-chan int {
	done := make(chan int, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.DefaultProduceTopic("in"))
		if err != nil {
			r.t.Error(err)
			close(done)
			return
		}
		defer cl.Close()
		n, after := from, -1
		for after != 0 {
			for range 500 {
				cl.Produce(r.ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(n%97)), Value: []byte(strconv.Itoa(n))}, nil)
				n++
			}
			if err := cl.Flush(r.ctx); err != nil {
				r.t.Error(err)
				close(done)
				return
			}
			if after < 0 {
				select {
				case <-stop:
					after = batches
				default:
				}
			}
			if after > 0 {
				after--
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- n
	}()
	return done
}

// total waits for the end of a flow and returns its count.
func (r *upgradeRig) total(flow <-chan int) int {
	r.t.Helper()
	n, ok := <-flow
	if !ok {
		r.t.FailNow() // flow reported why
	}
	return n
}

// waitCount waits until output holds exactly one count per record of "in"
// and "in" holds produced records, failing at once on a duplicate: the
// count job's exactly-once contract, record by record (internal/verify).
func (r *upgradeRig) waitCount(output string, produced int64, procs ...*jobProc) verify.Report {
	r.t.Helper()
	for {
		rep, err := kafkacount.Check(r.ctx, r.brokers, "in", output)
		if err != nil {
			r.t.Fatal(err)
		}
		if rep.Duplicated > 0 {
			r.t.Fatalf("%s: duplicates: %+v\n%s", output, rep, jobOutputs(procs))
		}
		if rep.ExactlyOnce() && rep.Produced == produced {
			return rep
		}
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("%s never held %d counts exactly once: %+v\n%s", output, produced, rep, jobOutputs(procs))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// committed returns the number of committed records of output.
func (r *upgradeRig) committed(output string) int64 {
	r.t.Helper()
	rep, err := kafkacount.Check(r.ctx, r.brokers, "in", output)
	if err != nil {
		r.t.Fatal(err)
	}
	return rep.Committed
}

// waitCommitted waits until output holds at least n committed records.
func (r *upgradeRig) waitCommitted(output string, n int64, procs ...*jobProc) {
	r.t.Helper()
	for {
		rep, err := kafkacount.Check(r.ctx, r.brokers, "in", output)
		if err != nil {
			r.t.Fatal(err)
		}
		if rep.Committed >= n {
			return
		}
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("%s stuck at %+v\n%s", output, rep, jobOutputs(procs))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitExit waits for p to exit and fails unless it exited 0.
func (r *upgradeRig) waitExit(p *jobProc, what string) {
	r.t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			r.t.Fatalf("%s: %v (want exit 0)\n%s", what, err, p.output())
		}
	case <-r.ctx.Done():
		r.t.Fatalf("%s did not exit\n%s", what, p.output())
	}
}

func jobOutputs(procs []*jobProc) string {
	var b strings.Builder
	for i, p := range procs {
		b.WriteString("--- job process " + strconv.Itoa(i) + ":\n" + p.output() + "\n")
	}
	return b.String()
}

// TestBlueGreenUpgradeWithRollback is the blue-green upgrade of
// docs/upgrades.md, step by step, in processes on the embedded broker:
//
//  1. blue (`sluice run count --http`, parallelism 2) counts "in" into
//     "blue";
//  2. `sluice savepoint` takes a savepoint of it while it works;
//  3. `sluice check count SAVEPOINT` says the green build (parallelism 3)
//     restores it;
//  4. green starts from it (parallelism 3: key groups redistributed),
//     writing to "green" with its own transactional-id prefix, while blue
//     goes on and more input arrives;
//  5. `sluice compare --complete` finds green's output equal to blue's
//     from the savepoint on, record by record, once both caught up (and
//     the same comparison with the topics swapped fails);
//  6. consumers switch (nothing to do here);
//  7. `sluice stop --savepoint` stops blue; its process exits 0.
//
// Then the rollback: green is stopped, blue restarts from its stop
// savepoint and counts the input that arrived meanwhile; "blue" holds
// exactly 1..n per key, once each, across the stop and the rollback.
func TestBlueGreenUpgradeWithRollback(t *testing.T) {
	r := newUpgradeRig(t, "in", "blue", "green")
	began := time.Now()

	// 1. Blue runs.
	// The input flows until green has started, and 6000 records more
	// come after.
	r.produce(0, 2000)
	greenStarted := make(chan struct{})
	produced := r.flow(2000, greenStarted, 12)
	blue, blueAPI := r.countJob("blue", "ckpt-blue", 2)
	r.waitCommitted("blue", 1000, blue)

	// 2. A savepoint of blue, taken while it works through the input.
	sp := r.sluice("savepoint", "--http", blueAPI)
	if _, err := os.Stat(filepath.Join(sp, "_metadata")); err != nil {
		t.Fatalf("savepoint %q: %v", sp, err)
	}

	// 3. The state compatibility test of the green build against it.
	greenKeys := []string{"--brokers", r.brokers[0], "--input", "in", "--output", "green",
		"--txn-prefix", "upgrade-green", "--checkpoint-dir", filepath.Join(r.dir, "ckpt-green"), "--parallelism", "3"}
	out := r.sluice(append([]string{"check", "count", sp}, greenKeys...)...)
	if !strings.Contains(out, "restore OK") {
		t.Fatalf("check of the green build: no \"restore OK\":\n%s", out)
	}
	t.Logf("savepoint %s; check of the green build:\n%s", sp, out)

	// 4. Green starts from the savepoint with the new build.
	green, _ := r.countJob("green", "ckpt-green", 3, "--from-savepoint", sp)
	close(greenStarted)

	// 5. The overlap comparison, once blue has counted all the input and
	// green caught up.
	total := r.total(produced)
	blueRep := r.waitCount("blue", int64(total), blue, green)
	out = r.sluice("compare", "--brokers", r.brokers[0], "--blue", "blue", "--green", "green",
		"--complete", "--min-overlap", "6000", "--wait", "60s")
	t.Logf("compare: %s", out)
	cmp, err := kafkacount.Compare(r.ctx, r.brokers, "blue", "green")
	if err != nil {
		t.Fatal(err)
	}
	// Green started at the savepoint: it committed less than blue (what
	// the savepoint held is in blue's topic only), and at least what came
	// after it.
	if !cmp.Agree(true) || cmp.Compared < 6000 || cmp.Compared >= blueRep.Committed {
		t.Fatalf("green against blue: %+v (blue committed %d)", cmp, blueRep.Committed)
	}
	if out, err := r.sluiceErr("compare", "--brokers", r.brokers[0], "--blue", "green", "--green", "blue"); err == nil {
		t.Fatalf("compare with the topics swapped passed:\n%s", out)
	}

	// 7. Blue is stopped with a savepoint, for the rollback.
	blueSP := r.sluice("stop", "--savepoint", "--http", blueAPI)
	r.waitExit(blue, "blue after stop --savepoint")

	// Rollback: green is stopped; blue, the old build, restarts from its
	// stop savepoint and counts what arrived since, once.
	_ = green.cmd.Process.Signal(syscall.SIGTERM)
	r.waitExit(green, "green after SIGTERM")
	r.produce(total, 3000)
	blue2, _ := r.countJob("blue", "ckpt-blue", 2, "--from-savepoint", blueSP)
	rep := r.waitCount("blue", int64(total+3000), blue2)
	_ = blue2.cmd.Process.Signal(syscall.SIGTERM)
	r.waitExit(blue2, "blue after the rollback")
	t.Logf("blue-green with rollback in %v; blue: %+v; green against blue: %+v", time.Since(began), rep, cmp)
}

// TestInPlaceUpgrade is the simple upgrade of docs/upgrades.md: `sluice
// stop --savepoint` stops the old build (parallelism 2) while input flows,
// `sluice check count` accepts the new build (parallelism 3) against the
// savepoint, and the new build restores it on the same output topic and
// transactional-id prefix. Once it caught up, the output holds exactly
// 1..n per key, once each: nothing lost or doubled across the switch.
func TestInPlaceUpgrade(t *testing.T) {
	r := newUpgradeRig(t, "in", "out")
	began := time.Now()
	// The input flows until the old build has stopped, and more comes
	// after: the stop happens with input in flight.
	stopped := make(chan struct{})
	produced := r.flow(0, stopped, 6)
	old, api := r.countJob("out", "ckpt", 2)
	r.waitCommitted("out", 2000, old)
	sp := r.sluice("stop", "--savepoint", "--http", api)
	r.waitExit(old, "the old build after stop --savepoint")
	close(stopped)
	if !strings.Contains(old.output(), "stopped with savepoint "+sp) {
		t.Fatalf("the old build does not name the savepoint %s:\n%s", sp, old.output())
	}
	newKeys := []string{"--brokers", r.brokers[0], "--input", "in", "--output", "out",
		"--txn-prefix", "upgrade-out", "--checkpoint-dir", filepath.Join(r.dir, "ckpt"), "--parallelism", "3"}
	if out := r.sluice(append([]string{"check", "count", sp}, newKeys...)...); !strings.Contains(out, "restore OK") {
		t.Fatalf("check of the new build: no \"restore OK\":\n%s", out)
	}
	next, _ := r.countJob("out", "ckpt", 3, "--from-savepoint", sp)
	rep := r.waitCount("out", int64(r.total(produced)), old, next)
	_ = next.cmd.Process.Signal(syscall.SIGTERM)
	r.waitExit(next, "the new build")
	if !strings.Contains(next.output(), "restoring checkpoint") {
		t.Errorf("the new build does not log the restore:\n%s", next.output())
	}
	t.Logf("in-place upgrade in %v: %+v", time.Since(began), rep)
}

// waitGroupOffsets waits until the consumer group has committed offsets: the
// count job commits its source offsets to its group after each completed
// checkpoint, so this is "the job completed a checkpoint" (and with it its
// restore, which runs before any task starts).
func (r *upgradeRig) waitGroupOffsets(group string, procs ...*jobProc) {
	r.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		offs, err := adm.FetchOffsets(r.ctx, group)
		if err == nil && offs.Ok() && len(offs) > 0 {
			return
		}
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("group %s committed no offsets: %v\n%s", group, err, jobOutputs(procs))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestBlueGreenBlueFailsDuringSwitch: blue crashes (SIGKILL) after green
// restored blue's savepoint and recovers from its own checkpoints; "blue"
// must still hold exactly 1..n per key, once each, and green agree with it.
//
//   - From an intermediate savepoint (`sluice savepoint`, blue running),
//     green started after blue went on checkpointing: green's restore must
//     commit the savepoint's pending transactions, which are blue's and
//     which blue committed since, under ids blue has reused. It cannot, and
//     green refuses to start, naming the transaction (DATA LOSS); with
//     --accept-lost-transactions, which is safe here because those
//     transactions belong to blue, it starts (docs/upgrades.md).
//   - From a stop savepoint, with blue restarted from it once green
//     completed a checkpoint (the variant docs/upgrades.md gives for
//     exactly-once on both topics whatever fails).
func TestBlueGreenBlueFailsDuringSwitch(t *testing.T) {
	for _, variant := range []string{"intermediate savepoint", "stop savepoint"} {
		t.Run(variant, func(t *testing.T) {
			r := newUpgradeRig(t, "in", "blue", "green")
			r.produce(0, 2000)
			done := make(chan struct{})
			produced := r.flow(2000, done, 4)
			// Blue checkpoints every second: its transactions stay
			// open while the test acts.
			blue, api := r.countJob("blue", "ckpt-blue", 2, "--checkpoint-interval", "1s")
			r.waitCommitted("blue", 1, blue)
			var green *jobProc
			if variant == "intermediate savepoint" {
				sp := r.sluice("savepoint", "--http", api)
				// Blue completes checkpoints after the savepoint: the
				// first commits the savepoint's transactions, the next
				// reuse their ids.
				for range 3 {
					r.waitCommitted("blue", r.committed("blue")+1, blue)
				}
				refused, _ := r.countJob("green", "ckpt-green", 3, "--from-savepoint", sp)
				err := <-refused.done
				if msg := refused.output(); err == nil || !strings.Contains(msg, "DATA LOSS") || !strings.Contains(msg, "upgrade-blue-kafka-sink-") {
					t.Fatalf("green from a savepoint whose transactions blue committed since: %v, want a DATA LOSS error naming blue's transaction\n%s", err, msg)
				}
				green, _ = r.countJob("green", "ckpt-green", 3, "--from-savepoint", sp, "--accept-lost-transactions")
				r.waitGroupOffsets("upgrade-green", green)
			} else {
				sp := r.sluice("stop", "--savepoint", "--http", api)
				r.waitExit(blue, "blue after stop --savepoint")
				green, _ = r.countJob("green", "ckpt-green", 3, "--from-savepoint", sp)
				r.waitGroupOffsets("upgrade-green", green)
				n := r.committed("blue")
				blue, _ = r.countJob("blue", "ckpt-blue", 2, "--checkpoint-interval", "1s", "--from-savepoint", sp)
				// Blue completed a checkpoint of its own: a crash now
				// resumes from it, not from the checkpoint before the
				// savepoint.
				r.waitCommitted("blue", n+1, blue)
			}
			// Blue crashes and recovers from its latest checkpoint.
			_ = blue.cmd.Process.Kill()
			<-blue.done
			close(done)
			blue2, _ := r.countJob("blue", "ckpt-blue", 2)
			total := r.total(produced)
			rep := r.waitCount("blue", int64(total), blue2, green)
			cmp := r.sluice("compare", "--brokers", r.brokers[0], "--blue", "blue", "--green", "green",
				"--complete", "--wait", "60s")
			t.Logf("blue: %+v\ncompare: %s", rep, cmp)
			_ = green.cmd.Process.Signal(syscall.SIGTERM)
			r.waitExit(green, "green after SIGTERM")
		})
	}
}
