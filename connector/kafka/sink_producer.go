package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// liveTxn is the producer side of an open transaction (or, for the
// non-transactional guarantees, of the records between two barriers): a
// franz-go client, the first asynchronous produce error, and a watchdog
// that bounds how long records may wait for acknowledgement.
type liveTxn struct {
	cl     *kgo.Client
	slot   int // -1 without transactions
	closed bool

	// ctx is the context of every Produce and of the flush; the watchdog
	// cancels it when records stall, which fails them and unblocks a
	// Produce waiting for buffer space.
	ctx     context.Context
	cancel  context.CancelFunc
	stop    chan struct{}
	written atomic.Int64 // records handed to the client
	// bytes is the keys' and values' size handed to the client, counted
	// on the task goroutine and reported once per transaction.
	bytes int64
	acked atomic.Int64 // records whose promise ran

	failed atomic.Bool
	errMu  sync.Mutex
	err    error

	// promise is onAck bound once, so that Produce does not allocate a
	// closure per record.
	promise func(*kgo.Record, error)
	// produce is cl.Produce (a stand-in in tests).
	produce func(context.Context, *kgo.Record, func(*kgo.Record, error))
	pool    *sync.Pool
}

// newLiveTxn wraps cl; with stall > 0 a watchdog fails the records when
// none is acknowledged for that long while some are outstanding.
//
// franz-go's own RecordDeliveryTimeout is not used: it counts from the
// record's timestamp, so records carrying event times from the past would
// time out at once.
func newLiveTxn(cl *kgo.Client, slot int, pool *sync.Pool, stall time.Duration) *liveTxn {
	l := &liveTxn{cl: cl, slot: slot, pool: pool, stop: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.promise = l.onAck
	if cl != nil {
		l.produce = cl.Produce
	}
	if stall > 0 {
		go l.watch(stall)
	}
	return l
}

// watch fails l when no record is acknowledged for stall while records
// are outstanding: the broker is unreachable or keeps answering retriable
// errors (failure handling, issue item 5).
func (l *liveTxn) watch(stall time.Duration) {
	tick := time.NewTicker(min(max(stall/8, 5*time.Millisecond), time.Second))
	defer tick.Stop()
	last, since := l.acked.Load(), time.Now()
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			a := l.acked.Load()
			if a != last || a >= l.written.Load() {
				last, since = a, now
				continue
			}
			if now.Sub(since) >= stall {
				l.fail(fmt.Errorf("no record acknowledged for %s (%v) with %d outstanding: the broker is unreachable or keeps answering retriable errors",
					KeySinkRetryTimeout, stall, l.written.Load()-a))
				l.cancel()
				return
			}
		}
	}
}

// close stops the watchdog and closes the client, once.
func (l *liveTxn) close() {
	if l.closed {
		return
	}
	l.closed = true
	close(l.stop)
	l.cancel()
	if l.cl != nil {
		l.cl.Close()
	}
}

// onAck runs on franz-go's promise goroutine: it keeps the first error and
// recycles the record.
func (l *liveTxn) onAck(r *kgo.Record, err error) {
	if err != nil {
		l.fail(fmt.Errorf("produce to topic %q partition %d: %w", r.Topic, r.Partition, err))
	}
	l.acked.Add(1)
	l.pool.Put(r)
}

func (l *liveTxn) fail(err error) {
	l.errMu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.errMu.Unlock()
	l.failed.Store(true)
}

// firstErr returns the first asynchronous error, or nil.
func (l *liveTxn) firstErr() error {
	if !l.failed.Load() {
		return nil
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// recordPool recycles records with their key, value and header buffers.
func newSinkRecordPool() *sync.Pool {
	return &sync.Pool{New: func() any { return &kgo.Record{Value: make([]byte, 0, 128)} }}
}

// writer serializes values into records and hands them to a liveTxn's
// client; one per committer.
type sinkWriter[T any] struct {
	ser   Serializer[T]
	topic string
	sel   func(T) string
	pool  *sync.Pool
}

func (w *sinkWriter[T]) write(l *liveTxn, v T) error {
	if l.failed.Load() {
		return l.firstErr()
	}
	r := w.pool.Get().(*kgo.Record)
	value := r.Value[:0]
	if value == nil {
		value = make([]byte, 0, 128) // the last user of r wrote a null value
	}
	*r = kgo.Record{Key: r.Key[:0], Value: value, Headers: r.Headers[:0], Topic: w.topic}
	if w.sel != nil {
		r.Topic = w.sel(v)
		if r.Topic == "" {
			w.pool.Put(r)
			return errors.New("topic selector returned an empty topic")
		}
	}
	if err := w.ser.Serialize(r, v); err != nil {
		w.pool.Put(r)
		return fmt.Errorf("serialize: %w", err)
	}
	if len(r.Key) == 0 {
		r.Key = nil
	}
	l.written.Add(1)
	l.bytes += int64(len(r.Key) + len(r.Value))
	l.produce(l.ctx, r, l.promise)
	return nil
}
