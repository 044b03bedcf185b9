package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/codec/avrocodec"
	"github.com/sluicehq/sluice/codec/protocodec"
)

// Deserializer turns a Kafka record into a value of T. An error marks the
// record as malformed: it fails the job, naming topic, partition and
// offset, or goes to SourceConfig.DeadLetterTopic.
//
// One Deserializer serves every subtask of a source, so it must be safe for
// concurrent use. The record's Key, Value and Headers are not reused by the
// source after Deserialize returns, so a value may keep them without
// copying (unless ClientOpts enable franz-go's record pools).
type Deserializer[T any] interface {
	// Deserialize decodes r; an error marks r as malformed.
	Deserialize(r *kgo.Record) (T, error)
}

// DeserializerFunc adapts a function to a Deserializer.
type DeserializerFunc[T any] func(r *kgo.Record) (T, error)

// Deserialize calls f(r).
func (f DeserializerFunc[T]) Deserialize(r *kgo.Record) (T, error) { return f(r) }

// Record is a Kafka record detached from franz-go's types: what the Records
// deserializer produces, for jobs that need the key, headers, timestamp or
// position of each record.
type Record struct {
	Topic     string             // the topic read from
	Partition int32              // its partition
	Offset    int64              // the record's offset in the partition
	Key       []byte             // nil for a record without key
	Value     []byte             // nil for a tombstone
	Headers   []kgo.RecordHeader // in the order written
	Timestamp time.Time          // the record's timestamp (create or log-append time)
}

// Bytes returns the record values as they are. Null values (tombstones)
// are nil slices. It never fails.
func Bytes() Deserializer[[]byte] { return bytesDeserializer{} }

type bytesDeserializer struct{}

func (bytesDeserializer) Deserialize(r *kgo.Record) ([]byte, error) { return r.Value, nil }

// String returns the record values as strings (one copy each); a null value
// is the empty string. It never fails: the bytes are not checked to be
// UTF-8.
func String() Deserializer[string] { return stringDeserializer{} }

type stringDeserializer struct{}

func (stringDeserializer) Deserialize(r *kgo.Record) (string, error) { return string(r.Value), nil }

// Records returns every record whole (topic, partition, offset, key, value,
// headers, timestamp). It never fails.
func Records() Deserializer[Record] { return recordDeserializer{} }

type recordDeserializer struct{}

func (recordDeserializer) Deserialize(r *kgo.Record) (Record, error) {
	return Record{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp,
	}, nil
}

// errNullValue is the error of the structured deserializers for a record
// without a value (a tombstone), which no structured format can decode.
var errNullValue = errors.New("null value (tombstone)")

// FormatDeserializer decodes record values with f, one of package codec's
// formats (codec.JSON, protocodec.New, avrocodec.New or your own), the same
// value that can encode state: a record without a value (a tombstone) is
// malformed, as is a value f cannot decode.
func FormatDeserializer[T any](f codec.Format[T]) Deserializer[T] { return formatDeserializer[T]{f} }

type formatDeserializer[T any] struct{ f codec.Format[T] }

func (d formatDeserializer[T]) Deserialize(r *kgo.Record) (T, error) {
	if r.Value == nil {
		var zero T
		return zero, errNullValue
	}
	return d.f.Unmarshal(r.Value)
}

// JSON decodes record values as JSON into T with encoding/json (the
// codec.JSON format). A value that is not valid JSON for T, a null value, or
// a value with trailing data after the JSON document is malformed.
func JSON[T any]() Deserializer[T] { return FormatDeserializer[T](codec.JSON[T]()) }

// Protobuf decodes record values as binary protobuf messages (no
// Confluent schema-registry framing) into a fresh message from newMsg each
// (the protocodec format):
//
//	kafka.Protobuf(func() *orderpb.Order { return new(orderpb.Order) })
//
// A value that does not parse, or lacks required fields (proto2), is
// malformed; a null value decodes to an empty message, as protobuf's
// encoding of an all-default message is empty.
func Protobuf[T proto.Message](newMsg func() T) Deserializer[T] {
	f := protocodec.New(newMsg)
	return DeserializerFunc[T](func(r *kgo.Record) (T, error) { return f.Unmarshal(r.Value) })
}

// Avro decodes record values as Avro binary data of the given writer schema
// (no container-file header, no schema-registry framing) into T with
// github.com/hamba/avro/v2 (the avrocodec format); T is typically a struct
// with `avro:"field"` tags, or map[string]any. It fails if the schema does
// not parse. A value that is truncated, does not match the schema, or has
// trailing bytes after the datum is malformed.
func Avro[T any](schema string) (Deserializer[T], error) {
	f, err := avrocodec.New[T](schema)
	if err != nil {
		return nil, err
	}
	return FormatDeserializer[T](f), nil
}
