// Package keygroup maps keys to key groups and key groups to subtasks,
// exactly as Flink does, so that keyed state can be redistributed when a job
// is restored at another parallelism (docs/design.md §1).
//
// The number of key groups is the job's max parallelism. A key's group is
// its hash modulo that number; subtask i of p owns the contiguous range
// RangeFor(i, p, maxP), and SubtaskFor is its inverse.
package keygroup

import "github.com/sluicehq/sluice/checkpoint"

// DefaultMaxParallelism is the default number of key groups.
const DefaultMaxParallelism = 128

// Of returns the key group of a key hash.
func Of(hash uint64, maxParallelism int) int {
	return int(mix(hash) % uint64(maxParallelism))
}

// mix spreads the bits of h (murmur3's 64-bit finalizer), so that weak
// hashes such as small integers still fill every key group.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// RangeFor returns the key groups that subtask i of p owns. The formulas are
// Flink's (KeyGroupRangeAssignment), which keep RangeFor and SubtaskFor
// consistent for every p ≤ maxParallelism.
func RangeFor(subtask, parallelism, maxParallelism int) checkpoint.KeyGroupRange {
	start := (subtask*maxParallelism + parallelism - 1) / parallelism
	end := ((subtask+1)*maxParallelism - 1) / parallelism
	return checkpoint.KeyGroupRange{Start: start, End: end}
}

// SubtaskFor returns the subtask of p that owns key group kg.
func SubtaskFor(kg, parallelism, maxParallelism int) int {
	return kg * parallelism / maxParallelism
}
