package kafkacount

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/verify"
)

// Compare reads the output topics of a blue and a green deployment of a job
// (green restored from a savepoint of blue, reading the same input) to
// their last stable offsets, read_committed, and compares green's output
// with blue's over their overlap (verify.Overlap). Green is read first, so
// that blue, read after, is rarely behind it. A key found in two partitions
// of one topic is an error: its order would be undefined.
func Compare(ctx context.Context, brokers []string, blue, green string) (verify.OverlapReport, error) {
	g, err := readKeyValues(ctx, brokers, green)
	if err != nil {
		return verify.OverlapReport{}, fmt.Errorf("read green's output %s: %w", green, err)
	}
	b, err := readKeyValues(ctx, brokers, blue)
	if err != nil {
		return verify.OverlapReport{}, fmt.Errorf("read blue's output %s: %w", blue, err)
	}
	return verify.Overlap(b.all, g.all), nil
}

type keyValues struct {
	keys, values []string
}

func (kv *keyValues) all(yield func(string, string) bool) {
	for i := range kv.keys {
		if !yield(kv.keys[i], kv.values[i]) {
			return
		}
	}
}

// readKeyValues reads topic's committed records in offset order per
// partition.
func readKeyValues(ctx context.Context, brokers []string, topic string) (*keyValues, error) {
	kv := &keyValues{}
	partition := map[string]int32{}
	err := ReadTopic(ctx, brokers, topic, func(r *kgo.Record) error {
		k := string(r.Key)
		if p, ok := partition[k]; ok && p != r.Partition {
			return fmt.Errorf("key %q is in partitions %d and %d: the order of its records is undefined", k, p, r.Partition)
		}
		partition[k] = r.Partition
		kv.keys = append(kv.keys, k)
		kv.values = append(kv.values, string(r.Value))
		return nil
	})
	return kv, err
}
