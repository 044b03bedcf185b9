package windowjob

import "testing"

// The layout's promises, which make lateness the same in every run, hold
// for every record: on-time records are at most Disorder after their base
// time; a held record's gate is a watermark the records before it reach
// for sure (base of seq-1 less Disorder, or the restore floor); an
// in-lateness record's window has its end at or before the gate and is
// still within the allowed lateness at the highest watermark the records
// before it allow; a too-late record's window is past it at the gate.
func TestLayoutPromises(t *testing.T) {
	c := Config{Records: 200_000, Keys: 50, Seed: 3}.withDefaults()
	kinds := map[Kind]int{}
	for seq := int64(1); seq < c.Records; seq++ {
		r := c.at(seq)
		kinds[r.kind]++
		base := BaseTime(seq)
		sure := BaseTime(seq-1) - int64(Disorder) - 1 // the watermark after seq-1, or after the floor of a restore at seq
		highest := BaseTime(seq-1) - 1                // the largest before seq is at most its base + Disorder
		w := windowOf(r.ts)
		wmax := w + int64(Size) - 1
		switch r.kind {
		case OnTime:
			if r.ts < base || r.ts > base+int64(Disorder) || r.gate != NoGate {
				t.Fatalf("seq %d: on-time ts %d outside [%d, %d+disorder], gate %d", seq, r.ts, base, base, r.gate)
			}
		case InLateness:
			if r.gate > sure || r.gate <= wmax {
				t.Fatalf("seq %d: in-lateness gate %d: want in (%d, %d]", seq, r.gate, wmax, sure)
			}
			if wmax+int64(AllowedLateness) <= highest {
				t.Fatalf("seq %d: in-lateness window %d would be past its lateness at watermark %d", seq, w, highest)
			}
		case TooLate:
			if r.gate > sure || wmax+int64(AllowedLateness) > r.gate-1 {
				t.Fatalf("seq %d: too-late gate %d, window max %d, sure %d", seq, r.gate, wmax, sure)
			}
		}
	}
	if kinds[InLateness] < 100 || kinds[TooLate] < 500 {
		t.Fatalf("kinds %v: too few late records to prove anything", kinds)
	}
	t.Logf("kinds %v", kinds)
}

// Expected is a pure function of the configuration, with firings of a
// window numbered 1.. by count after its on-time one, and revenues adding
// up to the input's.
func TestExpected(t *testing.T) {
	c := Config{Records: 50_000, Keys: 20, Seed: 11}
	res, late, err := Expected(c)
	if err != nil {
		t.Fatal(err)
	}
	res2, late2, _ := Expected(c)
	if len(res) != len(res2) || len(late) != len(late2) {
		t.Fatal("Expected is not deterministic")
	}
	var total, fromLast int64
	last := map[[2]any]Result{}
	for i, r := range res {
		if r != res2[i] {
			t.Fatalf("result %d differs: %+v vs %+v", i, r, res2[i])
		}
		k := [2]any{r.Key, r.Start}
		if p, ok := last[k]; ok && (r.Count != p.Count+1 || r.Revenue <= p.Revenue) {
			t.Fatalf("firing %+v after %+v", r, p)
		}
		last[k] = r
	}
	for _, r := range last {
		fromLast += r.Revenue
	}
	for seq := range c.Records {
		if o := c.Order(seq); c.Kind(seq) != TooLate {
			total += o.Amount
		}
	}
	if fromLast != total {
		t.Fatalf("last firings add up to %d, input to %d", fromLast, total)
	}
	if len(late) == 0 || len(res) == 0 {
		t.Fatalf("%d results, %d late", len(res), len(late))
	}
	for _, o := range late {
		if o != c.Order(o.Seq) || c.Kind(o.Seq) != TooLate {
			t.Fatalf("late %+v is not input record %+v", o, c.Order(o.Seq))
		}
	}
}

// Check finds a lost, a duplicated and a wrong output.
func TestCheckFindsProblems(t *testing.T) {
	c := Config{Records: 5000, Keys: 5, Seed: 1}
	res, late, err := Expected(c)
	if err != nil {
		t.Fatal(err)
	}
	var outs []Output
	for _, r := range res {
		outs = append(outs, Output{Result: r})
	}
	for _, o := range late {
		outs = append(outs, Output{Late: true, Order: o})
	}
	rep, _ := Check(c, outs)
	if !rep.ExactlyOnce() || rep.Windows != int64(len(res)) || rep.Late != int64(len(late)) {
		t.Fatalf("exact output: %+v", rep)
	}
	bad := append([]Output{}, outs[1:]...)
	bad = append(bad, outs[2])
	w := outs[3]
	w.Result.Revenue++
	bad[2] = w
	rep, _ = Check(c, bad)
	// outs[0] lost, outs[3] lost (replaced by a wrong copy), outs[2] twice.
	if rep.Lost != 2 || rep.Duplicated != 1 || rep.Unexpected != 1 {
		t.Fatalf("report %+v", rep)
	}
	for _, o := range []Output{outs[0], {Late: true, Order: late[0]}} {
		line := AppendLine(nil, o)
		key, val, _ := cutComma(line[:len(line)-1])
		got, err := ParseValue(key, val)
		if err != nil || got != o {
			t.Fatalf("round trip %q: %+v, %v", line, got, err)
		}
	}
}

func cutComma(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == ',' {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
