package advise

import (
	"strings"
	"testing"
	"time"
)

func TestPartitions(t *testing.T) {
	for _, tc := range []struct {
		producers, consumers int
		redundancy           float64
		want, even           int
	}{
		{4, 6, 1.5, 9, 12},
		{6, 4, 2, 12, 12},
		{3, 2, 1.5, 5, 6}, // 4.5 rounds up
		{10, 10, 1.7, 17, 20},
		{1, 1, 1.5, 2, 2},
		{8, 8, 2, 16, 16},
		{12, 4, 1.5, 18, 20},
	} {
		s, err := Partitions(tc.producers, tc.consumers, tc.redundancy)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if s.Partitions != tc.want || s.Even != tc.even {
			t.Errorf("Partitions(%d, %d, %v) = %d (even %d), want %d (even %d)", tc.producers, tc.consumers, tc.redundancy, s.Partitions, s.Even, tc.want, tc.even)
		}
	}
}

func TestPartitionsText(t *testing.T) {
	s, _ := Partitions(4, 6, 1.5)
	want := "partitions = ceil(max(producers, consumers) × redundancy)\n" +
		"           = ceil(max(4, 6) × 1.5) = 9\n" +
		"9 partitions over 6 consumer subtasks: 3 read 2 partitions, 3 read 1; 12, a multiple of 6, spreads them evenly.\n"
	if s.String() != want {
		t.Errorf("got\n%s\nwant\n%s", s, want)
	}
	s, _ = Partitions(6, 4, 2)
	if !strings.HasSuffix(s.String(), "= ceil(max(6, 4) × 2) = 12\n12 partitions over 4 consumer subtasks: 3 partitions each.\n") {
		t.Errorf("got\n%s", s)
	}
}

func TestPartitionsRefused(t *testing.T) {
	for _, tc := range []struct {
		p, c int
		r    float64
		want string
	}{
		{0, 1, 1.5, "--producers: must be at least 1, got 0"},
		{1, -1, 1.5, "--consumers: must be at least 1, got -1"},
		{1, 1, 1.4, "--redundancy: must be between 1.5 and 2, got 1.4"},
		{1, 1, 2.5, "--redundancy: must be between 1.5 and 2, got 2.5"},
	} {
		if _, err := Partitions(tc.p, tc.c, tc.r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Partitions(%d, %d, %v) = %v, want %q", tc.p, tc.c, tc.r, err, tc.want)
		}
	}
	_, err := Partitions(0, 0, 3)
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("every problem at once: %v", err)
	}
}

func TestCheckSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		want []string // kinds
		msgs []string
	}{
		{"divisor", Source{Name: "in", Parallelism: 2, Partitions: 8}, nil, nil},
		{"equal", Source{Name: "in", Parallelism: 4, Partitions: 4}, nil, nil},
		{"unknown count", Source{Name: "in", Parallelism: 3, Partitions: 0}, nil, nil},
		{"uneven", Source{Name: "in", Parallelism: 3, Partitions: 8}, []string{KindUneven},
			[]string{`source "in": parallelism 3 is neither a multiple nor a divisor of its 8 partitions: subtasks read 2 or 3 each, and the busiest sets the pace; use a parallelism of 1, 2, 4, 8, or a multiple of 8`}},
		{"multiple, idle", Source{Name: "in", Parallelism: 8, Partitions: 4}, []string{KindIdle},
			[]string{`source "in": 4 of its 8 subtasks will be idle, reading none of its 4 partitions; lower its parallelism to 4 or add partitions`}},
		{"uneven and idle", Source{Name: "in", Parallelism: 6, Partitions: 4, Unit: "splits"}, []string{KindUneven, KindIdle},
			[]string{`parallelism 6 is neither a multiple nor a divisor of its 4 splits: subtasks read 0 or 1 each`, `2 of its 6 subtasks will be idle, reading none of its 4 splits`}},
		{"actual assignment idles one", Source{Name: "in", Parallelism: 3, Partitions: 3, PerSubtask: []int{2, 1, 0}}, []string{KindIdle},
			[]string{`1 of its 3 subtasks will be idle`}},
		{"actual assignment, none idle", Source{Name: "in", Parallelism: 2, Partitions: 4, PerSubtask: []int{2, 2}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(Job{Sources: []Source{tc.src}})
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want kinds %v", got, tc.want)
			}
			for i, w := range got {
				if w.Kind != tc.want[i] || w.Operator != "in" || !strings.Contains(w.Message, tc.msgs[i]) {
					t.Errorf("warning %d: %+v, want %s containing %q", i, w, tc.want[i], tc.msgs[i])
				}
			}
		})
	}
}

func TestCheckTransactionTimeout(t *testing.T) {
	job := func(timeout, restart time.Duration, sinks ...Sink) Job {
		return Job{Sinks: sinks, CheckpointInterval: 5 * time.Second, CheckpointTimeout: timeout, MaxRestartDelay: restart}
	}
	kafka := Sink{Name: "out", TransactionTimeout: 15 * time.Minute, CommitRetry: time.Minute}
	for _, tc := range []struct {
		name string
		job  Job
		want string
	}{
		{"defaults fit", job(time.Minute, time.Minute, kafka), ""},
		{"long checkpoint timeout", job(14*time.Minute, time.Minute, kafka),
			`sink "out": transaction timeout 15m0s does not exceed checkpoint.interval 5s + checkpoint.timeout 14m0s + commit retries 1m0s + the longest restart delay 1m0s = 16m5s`},
		{"long restart delay", job(time.Minute, 12*time.Minute+55*time.Second, kafka), "= 15m0s"}, // equal is not enough
		{"just enough", job(time.Minute, 12*time.Minute+54*time.Second, kafka), ""},
		{"no periodic checkpoints", Job{Sinks: []Sink{kafka}, CheckpointInterval: -1, CheckpointTimeout: 13 * time.Minute, MaxRestartDelay: time.Minute},
			"checkpoint.interval 0s + checkpoint.timeout 13m0s + commit retries 1m0s + the longest restart delay 1m0s = 15m0s"},
		{"not transactional", job(time.Hour, time.Hour, Sink{Name: "out"}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(tc.job)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("want no warning, got %v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Kind != KindTransactionTimeout || got[0].Operator != "out" || !strings.Contains(got[0].Message, tc.want) {
				t.Fatalf("got %v, want one containing %q", got, tc.want)
			}
			if !strings.Contains(got[0].Message, "raise kafka.sink.transaction-timeout") {
				t.Errorf("the warning does not say what to change: %s", got[0])
			}
		})
	}
}
