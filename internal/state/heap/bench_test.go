package heap

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

const benchKeys = 1 << 20 // "1M distinct keys"

// benchBackend returns a single-subtask backend (all 128 key groups) with a
// running-sum ValueState holding benchKeys keys, and the keys in access
// order. Shuffled, every access misses the CPU caches as under uniformly
// random traffic; in creation order (a datagen cycling through its keys)
// the key strings themselves are read sequentially.
func benchBackend[K comparable](b *testing.B, kc codec.KeyCodec[K], key func(int) K, shuffle bool) (*HeapBackend[K], state.ValueState[int64], []K) {
	b.Helper()
	be := NewHeapBackend(kc, 128, checkpoint.KeyGroupRange{Start: 0, End: 127}, nil)
	sum, err := Value(be, "sum", codec.Int64)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]K, benchKeys)
	for i := range keys {
		keys[i] = key(i)
	}
	if shuffle {
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	}
	for _, k := range keys {
		if err := be.SetCurrentKey(k); err != nil {
			b.Fatal(err)
		}
		sum.Update(1)
	}
	return be, sum, keys
}

func stringKey(i int) string { return "user-" + strconv.Itoa(i) }

func int64Key(i int) int64 { return int64(i) }

func stringBackend(b *testing.B) (*HeapBackend[string], state.ValueState[int64], []string) {
	return benchBackend(b, codec.String, stringKey, true)
}

// BenchmarkValueStateUpdate is the keyed running sum's state access: set the
// key, read the sum, write it back, over 1M keys.
func BenchmarkValueStateUpdate(b *testing.B) {
	b.Run("string/random", func(b *testing.B) { runUpdate(b, stringBackend) })
	b.Run("string/cyclic", func(b *testing.B) {
		runUpdate(b, func(b *testing.B) (*HeapBackend[string], state.ValueState[int64], []string) {
			return benchBackend(b, codec.String, stringKey, false)
		})
	})
	b.Run("int64/random", func(b *testing.B) {
		runUpdate(b, func(b *testing.B) (*HeapBackend[int64], state.ValueState[int64], []int64) {
			return benchBackend(b, codec.Int64, int64Key, true)
		})
	})
}

func runUpdate[K comparable](b *testing.B, setup func(*testing.B) (*HeapBackend[K], state.ValueState[int64], []K)) {
	be, sum, keys := setup(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := be.SetCurrentKey(keys[i]); err != nil {
			b.Fatal(err)
		}
		v, _ := sum.Value()
		sum.Update(v + 1)
		if i++; i == len(keys) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrecords/s")
}

// BenchmarkSnapshotSync measures the synchronous pause of a snapshot with 1M
// keys: the time the task goroutine is blocked (target ≤ 50 ms). The
// Release between iterations is what the async writer would do. Taking
// snapshots back to back allocates about a gigabyte per second, so GC cycles
// run constantly and worst-µs mostly measures the goroutine being made to
// assist the GC or descheduled by it; ns/op is the snapshot's own cost.
func BenchmarkSnapshotSync(b *testing.B) {
	be, _, _ := stringBackend(b)
	b.ReportAllocs()
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		s := be.Snapshot(1)
		worst = max(worst, time.Since(start))
		s.Release()
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
}

// BenchmarkSnapshotWrite measures the asynchronous write of 1M keys, and
// reports the file size and the process's peak RSS.
func BenchmarkSnapshotWrite(b *testing.B) {
	be, _, _ := stringBackend(b)
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		s := be.Snapshot(1)
		cw := &countingWriter{}
		if _, err := s.WriteKeyGroups(cw); err != nil {
			b.Fatal(err)
		}
		s.Release()
		size = cw.n
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB/file")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/snapshot")
	reportRSS(b)
}

// BenchmarkCopyOnWrite measures what a checkpoint costs the task after the
// pause: updating every key once while a snapshot is outstanding, which
// clones every key group's map once. worst-record-µs is the slowest single
// update (one that clones a key group); worst-pause-µs the slowest
// Snapshot call, taken here between bursts of updates as a task would.
func BenchmarkCopyOnWrite(b *testing.B) {
	be, sum, keys := stringBackend(b)
	b.ReportAllocs()
	var worstClone, worstPause time.Duration
	for b.Loop() {
		start := time.Now()
		s := be.Snapshot(1)
		worstPause = max(worstPause, time.Since(start))
		for _, k := range keys {
			be.SetCurrentKey(k)
			start := time.Now()
			v, _ := sum.Value()
			sum.Update(v + 1)
			worstClone = max(worstClone, time.Since(start))
		}
		s.Release()
	}
	b.ReportMetric(float64(worstClone.Microseconds()), "worst-record-µs")
	b.ReportMetric(float64(worstPause.Microseconds()), "worst-pause-µs")
	reportRSS(b)
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countingWriter)(nil)

// reportRSS reports the peak resident set size (VmHWM) on Linux.
func reportRSS(b *testing.B) {
	runtime.GC()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err == nil {
				b.ReportMetric(kb/1024, "peak-RSS-MiB")
			}
		}
	}
}
