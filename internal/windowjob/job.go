package windowjob

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/window"
)

// Operator uids of the job, stable across versions.
const (
	SourceUID = "orders"
	WindowUID = "revenue"
	LateUID   = "late"
	UnionUID  = "out"
	SinkUID   = "sink"
)

// UIDs lists the job's operators that have fault points, for fault
// injection (the union only forwards).
var UIDs = []string{SourceUID, WindowUID, LateUID, SinkUID}

// LateTag is the window operator's late side output.
var LateTag = sluice.NewOutputTag[Order]("late")

// Output is one committed record: a window firing, or a late order.
type Output struct {
	Late   bool
	Result Result // when !Late
	Order  Order  // when Late
}

// acc is the accumulator of a window: orders and revenue.
type acc struct{ N, Sum int64 }

var accCodec = func() codec.Codec[acc] {
	c, err := codec.Struct("windowjob.acc",
		codec.FieldOf("n", func(a *acc) *int64 { return &a.N }, codec.Int64),
		codec.FieldOf("sum", func(a *acc) *int64 { return &a.Sum }, codec.Int64))
	if err != nil {
		panic(err) // a programming error in the field list above
	}
	return c
}()

// revenue sums the orders of a window incrementally.
type revenue struct{}

func (revenue) CreateAccumulator() acc                              { return acc{} }
func (revenue) Add(o Order, a acc) acc                              { return acc{a.N + 1, a.Sum + o.Amount} }
func (revenue) Merge(a, b acc) acc                                  { return acc{a.N + b.N, a.Sum + b.Sum} }
func (revenue) Result(a acc) acc                                    { return a }
func (revenue) String() string                                      { return "revenue" }
func newEmitter() sluice.ProcessWindowFunction[string, acc, Output] { return emitter{} }

// emitter turns a window's accumulator into its Result, with the key and
// the window's start.
type emitter struct{}

func (emitter) Process(key string, elements []acc, wc *sluice.WindowContext[Output]) error {
	for _, a := range elements {
		wc.Collect(Output{Result: Result{Key: key, Start: wc.Window().Start, Count: a.N, Revenue: a.Sum}})
	}
	return nil
}

// Build adds the job to env: src (parallelism 1, watermarks from
// src.Strategy) → key by account → revenue per account in Size tumbling
// event-time windows with AllowedLateness, late orders to LateTag → the
// results and the late orders, united → sink, at parallelism after the
// source.
func Build(env *sluice.Environment, src *Source, sink sluice.SinkProvider[Output], parallelism int) {
	build(env, src, sink, parallelism, windowStage)
}

// stage is the windowing of the job: results and late orders of a keyed
// stream of orders.
type stage func(ks sluice.KeyedStream[string, Order], parallelism int) (results sluice.Stream[Output], late sluice.Stream[Order])

// windowStage is the windows operator (sluice.WindowAggregateProcess).
func windowStage(ks sluice.KeyedStream[string, Order], parallelism int) (sluice.Stream[Output], sluice.Stream[Order]) {
	ws := sluice.Window(ks, window.Tumbling(Size, 0)).AllowedLateness(AllowedLateness).SideOutputLateData(LateTag)
	results := sluice.WindowAggregateProcess(ws, WindowUID, sluice.AggregateFunction[Order, acc, acc](revenue{}), accCodec, newEmitter,
		sluice.Parallelism(parallelism))
	return results, sluice.SideOutput(results, LateTag)
}

func build(env *sluice.Environment, src *Source, sink sluice.SinkProvider[Output], parallelism int, windows stage) {
	in := sluice.FromSourceWithWatermarks(env, SourceUID, src, src.Strategy(), nil, sluice.Parallelism(1))
	keyed := sluice.KeyBy(in, func(o Order) string { return o.Key })
	results, lateOrders := windows(keyed, parallelism)
	late := sluice.Map(lateOrders, LateUID, func(o Order) Output { return Output{Late: true, Order: o} },
		sluice.Parallelism(parallelism))
	out := sluice.Union(UnionUID, results, []sluice.Stream[Output]{late}, sluice.Parallelism(parallelism))
	sluice.Sink(out, SinkUID, sink, sluice.Parallelism(parallelism))
}

// AppendValue appends the output without its key's line prefix:
// "w,<start>,<count>,<revenue>" for a window firing, "l,<seq>,<ts>,<amount>"
// for a late order.
func AppendValue(dst []byte, o Output) []byte {
	if o.Late {
		dst = append(dst, "l,"...)
		dst = strconv.AppendInt(dst, o.Order.Seq, 10)
		dst = append(dst, ',')
		dst = strconv.AppendInt(dst, o.Order.TS, 10)
		dst = append(dst, ',')
		return strconv.AppendInt(dst, o.Order.Amount, 10)
	}
	dst = append(dst, "w,"...)
	dst = strconv.AppendInt(dst, o.Result.Start, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, o.Result.Count, 10)
	dst = append(dst, ',')
	return strconv.AppendInt(dst, o.Result.Revenue, 10)
}

// Key returns the account of o.
func (o Output) Key() string {
	if o.Late {
		return o.Order.Key
	}
	return o.Result.Key
}

// AppendLine appends the file sink's line: "<key>,<value>\n" (AppendValue).
func AppendLine(dst []byte, o Output) []byte {
	dst = append(dst, o.Key()...)
	dst = append(dst, ',')
	dst = AppendValue(dst, o)
	return append(dst, '\n')
}

// ParseValue parses AppendValue's encoding of an output of key.
func ParseValue(key string, v []byte) (Output, error) {
	f := bytes.Split(v, []byte{','})
	if len(f) != 4 || len(f[0]) != 1 {
		return Output{}, fmt.Errorf("want w,start,count,revenue or l,seq,ts,amount, got %q", v)
	}
	var n [3]int64
	for i := range n {
		x, err := strconv.ParseInt(string(f[i+1]), 10, 64)
		if err != nil {
			return Output{}, fmt.Errorf("field %d of %q: %w", i+2, v, err)
		}
		n[i] = x
	}
	switch f[0][0] {
	case 'w':
		return Output{Result: Result{Key: key, Start: n[0], Count: n[1], Revenue: n[2]}}, nil
	case 'l':
		return Output{Late: true, Order: Order{Key: key, Seq: n[0], TS: n[1], Amount: n[2]}}, nil
	}
	return Output{}, fmt.Errorf("want w or l first, got %q", v)
}

// FileSink returns the exactly-once file sink of the job's outputs.
func FileSink(dir string) sluice.SinkProvider[Output] {
	return file.NewSink(file.Config[Output]{Dir: dir, Encode: AppendLine})
}

// KafkaSink returns the transactional Kafka sink of the job's outputs:
// key the account, value AppendValue. delivery is kafka.DeliveryExactlyOnce
// or kafka.DeliveryAtLeastOnce; maxRestartDelay bounds the wait between a
// failure and the next attempt (see kafka.SinkConfig.MaxRestartDelay).
func KafkaSink(brokers []string, topic, txnPrefix, delivery string, checkpointInterval, maxRestartDelay time.Duration) (sluice.SinkProvider[Output], error) {
	return kafka.NewSink(kafka.SinkConfig[Output]{
		Brokers: brokers, Topic: topic,
		Serializer: kafka.KeyValueSerializer(
			func(dst []byte, o Output) []byte { return append(dst, o.Key()...) },
			AppendValue),
		DeliveryGuarantee:     delivery,
		TransactionalIDPrefix: txnPrefix,
		CheckpointInterval:    checkpointInterval,
		MaxRestartDelay:       maxRestartDelay,
	})
}

// ReadDir returns the outputs in the committed files of a file sink's dir
// (part-* files, not hidden ones), in path order. A malformed line, or a
// last line without its newline, is an error naming the file and line.
func ReadDir(dir string) ([]Output, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), file.DefaultPrefix+"-") {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list committed files under %s: %w", dir, err)
	}
	var out []Output
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			return nil, fmt.Errorf("%s: last line has no newline (a torn write in a committed file)", p)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<16)
		for line := 1; sc.Scan(); line++ {
			key, val, ok := bytes.Cut(sc.Bytes(), []byte{','})
			if !ok || len(key) == 0 {
				return nil, fmt.Errorf("%s:%d: want <key>,<value>, got %q", p, line, sc.Bytes())
			}
			o, err := ParseValue(string(key), val)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", p, line, err)
			}
			out = append(out, o)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

// ReadTopic returns the committed outputs of a Kafka topic (read_committed,
// up to the last stable offsets).
func ReadTopic(ctx context.Context, brokers []string, topic string) ([]Output, error) {
	var out []Output
	err := kafkacount.ReadTopic(ctx, brokers, topic, func(r *kgo.Record) error {
		o, err := ParseValue(string(r.Key), r.Value)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

// Report is the verification of a job's committed outputs against
// Expected, record by record.
type Report struct {
	// Windows and Late are the expected window firings and late orders.
	Windows, Late int64
	// CommittedWindows and CommittedLate are what the output holds.
	CommittedWindows, CommittedLate int64
	// Lost counts expected outputs missing from the output; Duplicated,
	// extra copies of expected ones; Unexpected, outputs that are not
	// expected at all (such as a firing with another revenue).
	Lost, Duplicated, Unexpected int64
	// Examples describes up to ten of the problems.
	Examples []string
}

// ExactlyOnce reports whether every expected output is there once and
// nothing else is.
func (r Report) ExactlyOnce() bool { return r.Lost == 0 && r.Duplicated == 0 && r.Unexpected == 0 }

// Check compares outputs with Expected(cfg).
func Check(cfg Config, outputs []Output) (Report, error) {
	results, late, err := Expected(cfg)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Windows: int64(len(results)), Late: int64(len(late))}
	example := func(format string, args ...any) {
		if len(rep.Examples) < 10 {
			rep.Examples = append(rep.Examples, fmt.Sprintf(format, args...))
		}
	}
	type rid struct {
		key          string
		start, count int64
	}
	wantW := make(map[rid]int64, len(results))
	for _, r := range results {
		wantW[rid{r.Key, r.Start, r.Count}] = r.Revenue
	}
	wantL := make(map[int64]Order, len(late))
	for _, o := range late {
		wantL[o.Seq] = o
	}
	seenW := map[rid]int{}
	seenL := map[int64]int{}
	for _, o := range outputs {
		if o.Late {
			rep.CommittedLate++
			w, ok := wantL[o.Order.Seq]
			if !ok || w != o.Order {
				rep.Unexpected++
				example("unexpected late order %+v (expected %+v)", o.Order, w)
				continue
			}
			if seenL[o.Order.Seq]++; seenL[o.Order.Seq] > 1 {
				rep.Duplicated++
				example("late order %d committed %d times", o.Order.Seq, seenL[o.Order.Seq])
			}
			continue
		}
		rep.CommittedWindows++
		r := o.Result
		id := rid{r.Key, r.Start, r.Count}
		rev, ok := wantW[id]
		if !ok || rev != r.Revenue {
			rep.Unexpected++
			example("unexpected window result %s %s count %d revenue %d (expected revenue %d, known %v)", r.Key, time.Unix(0, r.Start).UTC().Format(time.DateTime), r.Count, r.Revenue, rev, ok)
			continue
		}
		if seenW[id]++; seenW[id] > 1 {
			rep.Duplicated++
			example("window result %s %s count %d committed %d times", r.Key, time.Unix(0, r.Start).UTC().Format(time.DateTime), r.Count, seenW[id])
		}
	}
	for _, r := range results {
		if seenW[rid{r.Key, r.Start, r.Count}] == 0 {
			rep.Lost++
			example("window result %s %s count %d revenue %d lost", r.Key, time.Unix(0, r.Start).UTC().Format(time.DateTime), r.Count, r.Revenue)
		}
	}
	for _, o := range late {
		if seenL[o.Seq] == 0 {
			rep.Lost++
			example("late order %d (%s at %s) lost", o.Seq, o.Key, time.Unix(0, o.TS).UTC().Format(time.DateTime))
		}
	}
	return rep, nil
}

// ensureTopic creates topic with 4 partitions if it does not exist.
func ensureTopic(ctx context.Context, brokers []string, topic string) error {
	return kafkacount.EnsureTopics(ctx, brokers, 4, topic)
}
