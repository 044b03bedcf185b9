package watermark_test

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/watermark"
)

// at returns the nanosecond timestamp of second s of 2026-12-01T10:00Z.
func at(s int) int64 {
	return time.Date(2026, 12, 1, 10, 0, s, 0, time.UTC).UnixNano()
}

// clock formats a watermark as its time of day.
func clock(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05.000") }

// A reader of two Kafka partitions with bounded disorder of 5 s and
// idleness of 1 minute. The engine calls OnPeriodicEmit every
// Config.Interval with its clock.
func ExampleReader() {
	s := watermark.ForBoundedOutOfOrderness(5 * time.Second).WithIdleness(time.Minute)
	r := watermark.NewReader(s)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p0, _ := r.AddSplit("orders/0", now)
	p1, _ := r.AddSplit("orders/1", now)

	p0.OnEvent(at(30))
	p1.OnEvent(at(12))
	p0.OnEvent(at(26)) // out of order, within the bound
	o := r.OnPeriodicEmit(now.Add(200 * time.Millisecond))
	fmt.Println(clock(o.Watermark), o.Advanced)

	// orders/1 falls silent; after a minute it no longer holds back.
	p0.OnEvent(at(90))
	o = r.OnPeriodicEmit(now.Add(400 * time.Millisecond))
	fmt.Println(clock(o.Watermark), o.Advanced)
	p0.OnEvent(at(95))
	o = r.OnPeriodicEmit(now.Add(time.Minute + 200*time.Millisecond))
	fmt.Println(clock(o.Watermark), o.Advanced, p1.Idle())
	// Output:
	// 10:00:06.999 true
	// 10:00:06.999 false
	// 10:01:29.999 true true
}

// A task with two input channels: the output is the minimum over active
// channels and is sent only when it rises.
func ExampleInputs() {
	v, _ := watermark.NewInputs(2)
	show := func(o watermark.Output) {
		if o.Watermark == watermark.NoWatermark {
			fmt.Println("none", o.Advanced, o.Idle)
			return
		}
		fmt.Println(clock(o.Watermark), o.Advanced, o.Idle)
	}
	show(v.OnWatermark(0, at(10)))
	show(v.OnWatermark(1, at(4)))
	show(v.OnStatus(1, true)) // channel 1 idle: channel 0 alone decides
	show(v.OnEndOfInput(0))   // end of input; channel 1 still idle
	// Output:
	// none false false
	// 10:00:04.000 true false
	// 10:00:10.000 true false
	// 10:00:10.000 false true
}

// Watermark alignment: orders/1 runs 30 s ahead of orders/0 with a max
// drift of 10 s, so its reader pauses it until orders/0 catches up.
func ExampleAligner() {
	al, _ := watermark.NewAligner(10 * time.Second)
	al.Report("orders/0", at(0), false)
	al.Report("orders/1", at(30), false)
	pause, resume := al.Update()
	fmt.Println("pause", pause, "resume", resume)
	al.Report("orders/0", at(25), false)
	pause, resume = al.Update()
	fmt.Println("pause", pause, "resume", resume)
	// Output:
	// pause [orders/1] resume []
	// pause [] resume [orders/1]
}
