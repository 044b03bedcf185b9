package pebblestate_test

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
)

// BenchmarkPebbleKeyedSum is the keyed running sum's state access on the
// Pebble backend: set the key, read its int64 sum, write it back, for b.N
// records over N distinct int64 keys visited in a scrambled order, with one
// 64 MiB managed-memory budget (block cache and memtables). The keys are
// loaded before the timer starts, so every record reads an existing key.
// The 10M case is skipped unless SLUICE_BENCH_10M is set (loading takes
// about a minute).
func BenchmarkPebbleKeyedSum(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run("keys="+strconv.Itoa(n/1_000_000)+"M", func(b *testing.B) {
			if n > 1_000_000 && os.Getenv("SLUICE_BENCH_10M") == "" {
				b.Skip("set SLUICE_BENCH_10M=1 to run the 10M-key case")
			}
			mem := pebblestate.NewMemory(64<<20, 1)
			defer mem.Release()
			o := mem.Options(b.TempDir() + "/db")
			be, err := pebblestate.New(codec.Int64, 128, checkpoint.KeyGroupRange{Start: 0, End: 127}, nil, o)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			sum, err := pebblestate.Value(be, "sum", codec.Int64)
			if err != nil {
				b.Fatal(err)
			}
			// key(i) visits every key of [0, n) once per n records, scrambled.
			const step = 2654435761 // odd, coprime with n (n is 2^a·5^b; 2654435761 is prime)
			key := func(i int) int64 { return int64((uint64(i) * step) % uint64(n)) }
			for i := range n {
				if err := be.SetCurrentKey(int64(i)); err != nil {
					b.Fatal(err)
				}
				sum.Update(0)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				if err := be.SetCurrentKey(key(i)); err != nil {
					b.Fatal(err)
				}
				v, _ := sum.Value()
				sum.Update(v + 1)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			// The process's CPU time per record (compactions included):
			// steadier than wall time on a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			if testing.Verbose() {
				fmt.Fprintf(os.Stderr, "cache %d MiB, memtable %d MiB\n%s\n", mem.CacheBytes()>>20, mem.MemTableSize>>20, be.Metrics())
			}
		})
	}
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
