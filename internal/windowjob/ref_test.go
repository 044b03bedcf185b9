package windowjob

import (
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// refStage is the windowing written by hand with event-time timers, as in
// examples/eventtime: the same tumbling windows, allowed lateness and late
// side output as the windows operator. It proves the harness (source,
// gates, expected results, verification) on its own, and is a second
// opinion on the windows operator: both must give Expected.
func refStage(ks sluice.KeyedStream[string, Order], parallelism int) (sluice.Stream[Output], sluice.Stream[Order]) {
	results := sluice.Process(ks, WindowUID, func() sluice.KeyedProcessFunction[string, Order, Output] { return &refWindows{} },
		sluice.Parallelism(parallelism))
	return results, sluice.SideOutput(results, LateTag)
}

type refWindows struct {
	accs state.MapState[int64, acc] // window start → accumulator
}

func (f *refWindows) Open(rc *sluice.RuntimeContext[string]) (err error) {
	f.accs, err = sluice.NewMapState(rc, "windows", codec.Int64, accCodec)
	return err
}

func (f *refWindows) ProcessElement(o Order, pc *sluice.ProcessContext[string, Output]) error {
	ts := pc.Timestamp()
	start := windowOf(ts)
	wmax := start + int64(Size) - 1
	wm := pc.CurrentWatermark()
	if wmax+int64(AllowedLateness) <= wm {
		sluice.Output(pc, LateTag, o)
		return nil
	}
	a, _ := f.accs.Get(start)
	a = acc{a.N + 1, a.Sum + o.Amount}
	f.accs.Put(start, a)
	if wmax <= wm {
		pc.CollectWithTimestamp(Output{Result: Result{Key: pc.CurrentKey(), Start: start, Count: a.N, Revenue: a.Sum}}, wmax)
		return nil
	}
	pc.RegisterEventTimeTimer(wmax)
	pc.RegisterEventTimeTimer(wmax + int64(AllowedLateness))
	return nil
}

func (f *refWindows) OnTimer(at time.Time, pc *sluice.ProcessContext[string, Output]) error {
	t := at.UnixNano()
	if (t+1)%int64(Size) == 0 { // a window's end
		start := t + 1 - int64(Size)
		if a, ok := f.accs.Get(start); ok {
			pc.Collect(Output{Result: Result{Key: pc.CurrentKey(), Start: start, Count: a.N, Revenue: a.Sum}})
		}
		return nil
	}
	f.accs.Remove(t - int64(AllowedLateness) + 1 - int64(Size)) // cleanup
	return nil
}
