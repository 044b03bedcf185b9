package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/codec"
)

// Serializer turns a value into an outgoing Kafka record.
//
// The sink recycles records once Kafka acknowledged them, so that steady
// state produces without allocating. Serialize receives rec with:
//
//   - Topic set to the target topic (SinkConfig.Topic or the selector's);
//   - Key and Value of length 0, keeping the capacity of an earlier record:
//     append to them (rec.Value = append(rec.Value, ...)) to reuse it;
//   - Headers of length 0, likewise reusable; Timestamp zero.
//
// After Serialize, an empty Key is sent as a record without key (null),
// which the default partitioner spreads over partitions; a nil Value is a
// null value (a tombstone on compacted topics); a zero Timestamp means the
// time of producing. Serialize must not keep rec. It runs on the subtask's
// goroutine; an error fails the task.
type Serializer[T any] interface {
	// Serialize fills rec from v, as described above.
	Serialize(rec *kgo.Record, v T) error
}

// SerializerFunc is a Serializer from a function with Serialize's contract.
type SerializerFunc[T any] func(rec *kgo.Record, v T) error

// Serialize calls f.
func (f SerializerFunc[T]) Serialize(rec *kgo.Record, v T) error { return f(rec, v) }

// ValueSerializer writes records without key whose value appendValue
// appends to dst (e.g. strconv.AppendInt, json.MarshalAppend-style
// encoders), reusing buffers.
func ValueSerializer[T any](appendValue func(dst []byte, v T) []byte) Serializer[T] {
	return SerializerFunc[T](func(rec *kgo.Record, v T) error {
		rec.Value = appendValue(rec.Value, v)
		return nil
	})
}

// KeyValueSerializer writes records whose key and value the functions
// append to dst, reusing buffers. A key function that appends nothing
// yields a record without key.
func KeyValueSerializer[T any](appendKey, appendValue func(dst []byte, v T) []byte) Serializer[T] {
	return SerializerFunc[T](func(rec *kgo.Record, v T) error {
		rec.Key = appendKey(rec.Key, v)
		rec.Value = appendValue(rec.Value, v)
		return nil
	})
}

// SerializerOf adapts a function returning a record's parts: the simplest
// form, but one that usually allocates per record; prefer
// KeyValueSerializer on hot paths. Key and value are copied into the
// recycled buffers, so f may reuse the slices it returns; header values are
// kept by reference until Kafka acknowledges the record. headers may be
// nil, ts zero (time of producing), key nil (no key), value nil (null
// value).
func SerializerOf[T any](f func(v T) (key, value []byte, headers []kgo.RecordHeader, ts time.Time)) Serializer[T] {
	return SerializerFunc[T](func(rec *kgo.Record, v T) error {
		key, value, headers, ts := f(v)
		rec.Key = append(rec.Key, key...)
		if value == nil {
			rec.Value = nil
		} else {
			rec.Value = append(rec.Value, value...)
		}
		rec.Headers = append(rec.Headers, headers...)
		rec.Timestamp = ts
		return nil
	})
}

// FormatSerializer writes records without key whose value f encodes: one of
// package codec's formats (codec.JSON, protocodec.New, avrocodec.New), the
// same value that can decode them in a FormatDeserializer or encode state.
// A value f cannot encode fails the task with f's error.
func FormatSerializer[T any](f codec.Format[T]) Serializer[T] {
	return SerializerFunc[T](func(rec *kgo.Record, v T) error {
		out, err := f.Marshal(rec.Value, v)
		if err != nil {
			return err
		}
		rec.Value = out
		return nil
	})
}
