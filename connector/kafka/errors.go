package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The source's sentinel errors. Errors the source returns wrap them (test
// with errors.Is) and name the topic, partition and offset concerned.
var (
	// ErrUnknownTopic means a topic of SourceConfig.Topics, or
	// SinkConfig.Topic, does not exist when the job starts.
	ErrUnknownTopic = errors.New("topic does not exist")
	// ErrNoOffset means a partition has no offset to start from (no
	// committed offset, or its position is out of range) and
	// SourceConfig.Reset is "none".
	ErrNoOffset = errors.New("no valid offset and reset is none")
	// ErrRetriesExhausted means Kafka stayed unreachable, or kept answering
	// retriable errors, for longer than SourceConfig.RetryTimeout.
	ErrRetriesExhausted = errors.New("retries exhausted")
	// ErrBadSplit means a split id or split state (from a checkpoint) is
	// not the Kafka source's.
	ErrBadSplit = errors.New("bad kafka split")
)

// DeserializeError is a record the Deserializer rejected. Without a
// dead-letter topic it fails the job; with one it names the record in the
// dead-letter headers.
type DeserializeError struct {
	Topic     string // the record's topic
	Partition int32  // its partition
	Offset    int64  // its offset
	Err       error  // the deserializer's error
}

// Error names the record and the cause.
func (e *DeserializeError) Error() string {
	return fmt.Sprintf("deserialize record at topic %s partition %d offset %d: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the deserializer's error.
func (e *DeserializeError) Unwrap() error { return e.Err }

// PartitionError is an error about one partition, such as a missing offset
// with reset none or a non-retriable fetch error.
type PartitionError struct {
	Topic     string // the partition's topic
	Partition int32  // the partition
	Offset    int64  // the offset concerned, -1 when there is none
	Err       error  // the cause
}

// Error names the partition (and offset) and the cause.
func (e *PartitionError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("topic %s partition %d: %v", e.Topic, e.Partition, e.Err)
	}
	return fmt.Sprintf("topic %s partition %d offset %d: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *PartitionError) Unwrap() error { return e.Err }

// retriable reports whether err is worth retrying: Kafka's retriable error
// codes (leader moves, timeouts, coordinator loads) and every network-level
// failure (refused or dropped connections, timeouts). Authorization errors,
// invalid requests and a closed client are not.
func retriable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return false
	}
	if _, ok := errors.AsType[*kadm.AuthError](err); ok {
		return false
	}
	if se, ok := errors.AsType[*kadm.ShardErrors](err); ok {
		for _, e := range se.Errs {
			if !retriable(e.Err) {
				return false
			}
		}
		return len(se.Errs) > 0
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return ke.Retriable
	}
	if kgo.IsRetryableBrokerErr(err) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	if _, ok := errors.AsType[*os.SyscallError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET)
}
