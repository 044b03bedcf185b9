package kafka

import "github.com/sluicehq/sluice"

// GatedSource lets the external tests (package kafka_test) gate a source
// as the sink tests do: each reader emits at most per records (plus one
// poll) per completed checkpoint.
func GatedSource[T any](src sluice.Source[T], per int) sluice.Source[T] {
	return gatedSource[T]{Source: src, per: per}
}
