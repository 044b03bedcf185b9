package watermark

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const sec = int64(time.Second)

// TestBoundedOutOfOrderness checks the generator against hand-computed
// watermarks: max timestamp seen - bound - 1.
func TestBoundedOutOfOrderness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		s     Strategy
		event []int64 // NoWatermark in it means: emit here
		want  []int64
	}{
		{"bounded 5s out of order", ForBoundedOutOfOrderness(5 * time.Second),
			[]int64{NoWatermark, 10 * sec, NoWatermark, 7 * sec, NoWatermark, 16 * sec, 12 * sec, NoWatermark},
			[]int64{NoWatermark, 5*sec - 1, 5*sec - 1, 11*sec - 1}},
		{"monotonous", ForMonotonousTimestamps(),
			[]int64{1, 2, NoWatermark, 2, NoWatermark, 3, NoWatermark},
			[]int64{1, 1, 2}},
		{"saturates at no watermark", ForBoundedOutOfOrderness(time.Second),
			[]int64{math.MinInt64 + 5, NoWatermark},
			[]int64{NoWatermark}},
		{"zero strategy", Strategy{}, []int64{5, NoWatermark}, []int64{NoWatermark}},
	}
	for _, tt := range tests {
		g := tt.s.NewGenerator()
		var got []int64
		for _, e := range tt.event {
			if e == NoWatermark {
				got = append(got, g.OnPeriodicEmit())
			} else {
				g.OnEvent(e)
			}
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %v, want %v", tt.name, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: emission %d = %d, want %d", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

// TestValidate checks that bad strategies and configs are errors naming
// what is wrong, and that defaults are filled.
func TestValidate(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]Strategy{
		"negative bound":    ForBoundedOutOfOrderness(-1),
		"negative idleness": ForMonotonousTimestamps().WithIdleness(-time.Second),
		"nil factory":       ForGenerator(nil),
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if wm := s.NewGenerator().OnPeriodicEmit(); wm != NoWatermark {
			t.Errorf("%s: invalid strategy generates %d", name, wm)
		}
	}
	if s := ForMonotonousTimestamps().WithIdleness(time.Minute); s.Validate() != nil || s.Idleness() != time.Minute {
		t.Errorf("valid strategy: %v, idleness %v", s.Validate(), s.Idleness())
	}
	var c Config
	if err := c.Validate(); err != nil || c.Interval != DefaultInterval {
		t.Errorf("zero Config: %v, interval %v", err, c.Interval)
	}
	c = Config{Interval: -time.Second}
	if err := c.Validate(); err == nil {
		t.Error("negative interval validates")
	}
	if _, err := NewAligner(-1); err == nil {
		t.Error("negative drift accepted")
	}
}

// punctuated is a custom generator: the watermark is the last timestamp
// divisible by 10 (a "punctuation" record), and it tries to go back.
type punctuated struct{ wm int64 }

func (p *punctuated) OnEvent(ts int64) {
	if ts%10 == 0 {
		p.wm = ts
	}
}
func (p *punctuated) OnPeriodicEmit() int64 { return p.wm }

// TestCustomGenerator checks that a custom generator drives a reader and
// that a generator going back does not move the reader back.
func TestCustomGenerator(t *testing.T) {
	t.Parallel()
	r := NewReader(ForGenerator(func() Generator { return &punctuated{wm: NoWatermark} }))
	s, err := r.AddSplit("p", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		ts   []int64
		want int64
	}{
		{[]int64{3, 20, 25}, 20},
		{[]int64{10}, 20}, // the generator goes back to 10
		{[]int64{40}, 40},
	} {
		for _, ts := range step.ts {
			s.OnEvent(ts)
		}
		if o := r.OnPeriodicEmit(time.Unix(0, 1)); o.Watermark != step.want || s.Watermark() != step.want {
			t.Errorf("after %v: reader %d, split %d, want %d", step.ts, o.Watermark, s.Watermark(), step.want)
		}
	}
}

// TestInputsProperties feeds random watermarks, statuses and ends to an
// Inputs and checks the invariants of docs/design.md §14 after every step:
// the output never decreases, Advanced is set exactly when it rose,
// StatusChanged exactly when Idle flipped, an active output is never
// above the minimum over active channels unless it already was, and it
// never exceeds what some channel sent.
func TestInputsProperties(t *testing.T) {
	t.Parallel()
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 3))
		n := 1 + r.IntN(4)
		v, err := NewInputs(n)
		if err != nil {
			t.Fatal(err)
		}
		wm := make([]int64, n)
		idle := make([]bool, n)
		ended := make([]bool, n)
		for i := range wm {
			wm[i] = NoWatermark
		}
		prev, prevIdle, maxSent := NoWatermark, false, NoWatermark
		for step := range 300 {
			i := r.IntN(n)
			var o Output
			switch op := r.IntN(10); {
			case op < 6:
				w := int64(r.IntN(1000))
				if !ended[i] && w > wm[i] {
					wm[i] = w
				}
				maxSent = max(maxSent, w)
				o = v.OnWatermark(i, w)
			case op < 9:
				if !ended[i] {
					idle[i] = op == 6
				}
				o = v.OnStatus(i, op == 6)
			default:
				wm[i], idle[i], ended[i] = Final, false, true
				o = v.OnEndOfInput(i)
			}
			allEnded := true
			minActive, anyActive := Final, false
			for j := range wm {
				if !ended[j] {
					allEnded = false
					if !idle[j] {
						anyActive = true
						minActive = min(minActive, wm[j])
					}
				}
			}
			switch {
			case o.Watermark < prev:
				t.Fatalf("seed %d step %d: output went back %d -> %d", seed, step, prev, o.Watermark)
			case o.Advanced != (o.Watermark > prev):
				t.Fatalf("seed %d step %d: advanced %t, %d -> %d", seed, step, o.Advanced, prev, o.Watermark)
			case o.StatusChanged != (o.Idle != prevIdle):
				t.Fatalf("seed %d step %d: status changed %t, idle %t -> %t", seed, step, o.StatusChanged, prevIdle, o.Idle)
			case o.Idle != (!allEnded && !anyActive):
				t.Fatalf("seed %d step %d: idle %t with channels %v idle %v ended %v", seed, step, o.Idle, wm, idle, ended)
			case anyActive && o.Watermark > max(prev, minActive):
				t.Fatalf("seed %d step %d: output %d above min over active %d (was %d)", seed, step, o.Watermark, minActive, prev)
			case !allEnded && o.Watermark > maxSent:
				t.Fatalf("seed %d step %d: output %d never sent (max %d)", seed, step, o.Watermark, maxSent)
			case allEnded && o.Watermark != Final:
				t.Fatalf("seed %d step %d: all ended at %d", seed, step, o.Watermark)
			}
			if o.Watermark != v.Watermark() || o.Idle != v.Idle() {
				t.Fatalf("seed %d step %d: accessors disagree", seed, step)
			}
			prev, prevIdle = o.Watermark, o.Idle
		}
	}
}

// TestAlignmentPausesFastSplit runs a reader of two Kafka-like partitions
// under alignment with a max drift of 2 s: "fast" has 10 records per
// 200 ms emission interval, 100 ms of event time apart, "slow" one. The
// engine loop is simulated step by step. With alignment, fast's watermark
// stays within the drift (plus one interval's worth of records, the
// reaction time) of slow's; without it the gap grows to minutes. When slow
// falls silent, idleness releases fast.
func TestAlignmentPausesFastSplit(t *testing.T) {
	t.Parallel()
	const interval = 200 * time.Millisecond
	run := func(drift time.Duration, steps, silentFrom int) (maxGap int64, fastWM int64, pausedSteps int) {
		r := NewReader(ForBoundedOutOfOrderness(0).WithIdleness(time.Second))
		t0 := time.Unix(1_800_000_000, 0)
		fast, _ := r.AddSplit("fast", t0)
		slow, _ := r.AddSplit("slow", t0)
		al, err := NewAligner(drift)
		if err != nil {
			t.Fatal(err)
		}
		next := map[*Split]int64{fast: t0.UnixNano(), slow: t0.UnixNano()}
		for step := range steps {
			now := t0.Add(time.Duration(step+1) * interval)
			for _, s := range []*Split{fast, slow} {
				if al.Paused(s.ID()) {
					if s == fast {
						pausedSteps++
					}
					continue
				}
				if s == slow && step >= silentFrom {
					continue
				}
				k := 1
				if s == fast {
					k = 10
				}
				for range k {
					s.OnEvent(next[s])
					next[s] += 100 * int64(time.Millisecond)
				}
			}
			r.OnPeriodicEmit(now)
			for _, s := range []*Split{fast, slow} {
				al.Report(s.ID(), s.Watermark(), s.Idle())
			}
			al.Update()
			if step < silentFrom {
				maxGap = max(maxGap, fast.Watermark()-slow.Watermark())
			}
		}
		return maxGap, fast.Watermark(), pausedSteps
	}
	bound := 2*sec + 10*100*int64(time.Millisecond)
	gap, _, paused := run(2*time.Second, 500, 1000)
	if gap > bound {
		t.Errorf("aligned: fast ran %v ahead, bound %v", time.Duration(gap), time.Duration(bound))
	}
	if paused == 0 {
		t.Error("aligned: fast never paused")
	}
	// Unaligned (a drift no run reaches): the gap grows with the run.
	if gap, _, _ := run(time.Duration(math.MaxInt64), 500, 1000); gap < 60*sec {
		t.Errorf("unaligned: gap %v, want it to grow beyond a minute (the test cannot fail otherwise)", time.Duration(gap))
	}
	// slow falls silent at step 100: after the idleness timeout fast is
	// released and runs on.
	_, wm100, _ := run(2*time.Second, 100, 100)
	_, wm300, _ := run(2*time.Second, 300, 100)
	if wm300-wm100 < 100*sec {
		t.Errorf("slow idle: fast advanced only %v in 200 steps", time.Duration(wm300-wm100))
	}
}

// TestWithAlignment checks the alignment options and their validation.
func TestWithAlignment(t *testing.T) {
	t.Parallel()
	s := ForMonotonousTimestamps().WithAlignment("orders", 20*time.Second, 0)
	a, ok := s.Alignment()
	if err := s.Validate(); err != nil || !ok || a != (Alignment{"orders", 20 * time.Second, DefaultAlignmentUpdateInterval}) {
		t.Errorf("alignment %+v %t %v", a, ok, err)
	}
	if _, ok := ForMonotonousTimestamps().Alignment(); ok {
		t.Error("alignment without WithAlignment")
	}
	for name, s := range map[string]Strategy{
		"empty group":       ForMonotonousTimestamps().WithAlignment("", time.Second, 0),
		"negative drift":    ForMonotonousTimestamps().WithAlignment("g", -time.Second, 0),
		"negative interval": ForMonotonousTimestamps().WithAlignment("g", time.Second, -time.Second),
	} {
		if s.Validate() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestAlignerProperties reports random watermarks and idleness and checks
// after every Update that exactly the members above MaxAllowed are paused,
// that the changes reported are exactly the flips, and that the slowest
// active member never is paused (so the group cannot deadlock).
func TestAlignerProperties(t *testing.T) {
	t.Parallel()
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 5))
		drift := time.Duration(r.Int64N(50))
		al, err := NewAligner(drift)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{"a", "b", "c", "d"}
		wm := map[string]int64{}
		idle := map[string]bool{}
		paused := map[string]bool{}
		for step := range 300 {
			id := ids[r.IntN(len(ids))]
			if r.IntN(15) == 0 {
				al.Remove(id)
				delete(wm, id)
				delete(idle, id)
				delete(paused, id)
			} else {
				w := int64(r.IntN(1000))
				if old, ok := wm[id]; !ok || w > old {
					wm[id] = w
				}
				idle[id] = r.IntN(4) == 0
				al.Report(id, w, idle[id])
			}
			limit := al.MaxAllowed()
			pause, resume := al.Update()
			for _, p := range pause {
				if paused[p] {
					t.Fatalf("seed %d step %d: %s paused twice", seed, step, p)
				}
				paused[p] = true
			}
			for _, p := range resume {
				if !paused[p] {
					t.Fatalf("seed %d step %d: %s resumed unpaused", seed, step, p)
				}
				delete(paused, p)
			}
			minActive, active := Final, false
			for id, w := range wm {
				if !idle[id] {
					minActive, active = min(minActive, w), true
				}
				if want := w > limit; paused[id] != want || al.Paused(id) != want {
					t.Fatalf("seed %d step %d: %s at %d paused %t, limit %d", seed, step, id, w, paused[id], limit)
				}
			}
			if active && limit != minActive+int64(drift) || !active && limit != Final {
				t.Fatalf("seed %d step %d: limit %d, min active %d", seed, step, limit, minActive)
			}
			for id, w := range wm {
				if !idle[id] && w == minActive && paused[id] {
					t.Fatalf("seed %d step %d: slowest active member %s paused", seed, step, id)
				}
			}
		}
	}
}
