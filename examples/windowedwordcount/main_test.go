package main

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/internal/kafkacount"
)

// TestWindowedWordCount runs the job on the embedded broker with lines out
// of order (within the bound) on one partition of two (the other idle) and
// checks the committed counts, read_committed, against hand-computed
// ones: each window's count of each word once, none late.
func TestWindowedWordCount(t *testing.T) {
	b, err := broker.Start(context.Background(), broker.Config{Port: 0, Ephemeral: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	brokers := b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafkacount.EnsureTopics(ctx, brokers, 2, "lines", "counts"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	lines := []struct {
		ts   time.Time
		line string
	}{
		{at(1 * time.Second), "The quick brown fox"},
		{at(11 * time.Second), "the lazy dog"},
		{at(9 * time.Second), "the fox"}, // 2s behind, in the window before: within the 3s bound
		{at(13 * time.Second), "dog, dog!"},
		{at(14 * time.Second), "the end"},
		{at(40 * time.Second), "flush"}, // moves the watermark past 20s; its own window stays open
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) {
		for _, l := range lines[from:to] {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lines", Partition: 0, Value: []byte(l.line), Timestamp: l.ts}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer cl.Close()
	w0, w10 := t0.Format(time.RFC3339), t0.Add(10*time.Second).Format(time.RFC3339)
	want := map[string]int{ // "word window,count" → times committed
		"the " + w0 + ",2": 1, "quick " + w0 + ",1": 1, "brown " + w0 + ",1": 1, "fox " + w0 + ",2": 1,
		"the " + w10 + ",2": 1, "lazy " + w10 + ",1": 1, "dog " + w10 + ",3": 1, "end " + w10 + ",1": 1,
	}
	env, err := build(options{Brokers: brokers, Input: "lines", Output: "counts", Window: 10 * time.Second,
		OutOfOrder: 3 * time.Second, CheckpointDir: t.TempDir(), CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- execute(runCtx, env) }()
	// The first two lines, then the rest once the job has read them (its
	// offsets are committed after a checkpoint): the third line then
	// arrives after the 11s line, 2s behind it and in the window before,
	// which the watermark (at most 11s - 3s - 1ns) has not closed yet. (With
	// a bound below 2s it could be late, if the watermark got there first.)
	// Partition 1 stays empty: the windows fire only because it turns idle.
	produce(0, 2)
	adm := kadm.NewClient(cl)
	for {
		offs, err := adm.FetchOffsets(ctx, "windowed-word-count")
		if o, ok := offs.Lookup("lines", 0); err == nil && ok && o.At >= 2 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("job ended early: %v", err)
		case <-ctx.Done():
			t.Fatal("the job never read the first lines")
		case <-time.After(20 * time.Millisecond):
		}
	}
	produce(2, len(lines))
	read := func() map[string]int {
		got := map[string]int{}
		err := kafkacount.ReadTopic(ctx, brokers, "counts", func(r *kgo.Record) error {
			got[string(r.Key)+" "+string(r.Value)]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for len(read()) < len(want) {
		select {
		case err := <-done:
			t.Fatalf("job ended early: %v", err)
		case <-ctx.Done():
			t.Fatalf("counts never complete: %v", read())
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := read(); !maps.Equal(got, want) {
		t.Fatalf("committed counts\n%v\nwant\n%v", got, want)
	}
	for _, v := range env.Status().Vertices {
		if v.LateRecords != 0 {
			t.Fatalf("%s: %d late records, want none (every line is within the out-of-orderness bound)", v.Name, v.LateRecords)
		}
	}
}
