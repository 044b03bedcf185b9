package runtime

import "sync/atomic"

// Credits (docs/design.md §3 "Unaligned checkpoints"): with unaligned
// checkpoints a consumer reads the records queued on its inputs ahead of
// processing them, to store them as channel state without waiting for
// them. Read ahead, a batch leaves its Go channel, and the producer could
// fill the freed room at once: every checkpoint would then hold one more
// channel's worth in memory while the consumer is slower than its input.
// A credit is a batch a producer may have in flight on a channel: taken
// when it sends a data batch, given back when the consumer has processed
// it, not when it read it. A channel thus never has more than its
// capacity of data batches sent and not processed, read ahead or not, as
// Flink's credit-based flow control bounds what sits in the receiver's
// buffers. Control events take no credit.
type credit struct {
	limit    int64
	inflight atomic.Int64
	// freed holds a token when credit was given back: a producer waiting
	// for credit wakes on it and checks again.
	freed chan struct{}
}

func (c *credit) release() {
	c.inflight.Add(-1)
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

// creditor is the non-generic face of Channels that turns credits on.
type creditor interface{ enableCredits(limit int) }

// enableCredits bounds every channel to limit data batches sent and not
// processed. It must be called before writers and inputs are made.
func (c *Channels[T]) enableCredits(limit int) {
	c.credits = make([][]*credit, len(c.Chans))
	for i := range c.Chans {
		c.credits[i] = make([]*credit, len(c.Chans[i]))
		for j := range c.credits[i] {
			c.credits[i][j] = &credit{limit: int64(limit), freed: make(chan struct{}, 1)}
		}
	}
}

// credit takes a credit for a data batch on channel i, waiting (as
// backpressure) while the channel has none left.
func (w *Writer[T]) credit(i int) error {
	cr := w.credits[i]
	if cr.inflight.Load() >= cr.limit {
		prev := w.stats.enter(phaseBackpressured, w.stats.now())
		for cr.inflight.Load() >= cr.limit {
			select {
			case <-cr.freed:
			case <-w.done:
				w.stats.enter(prev, w.stats.now())
				return errCancelled
			}
		}
		w.stats.enter(prev, w.stats.now())
	}
	cr.inflight.Add(1)
	return nil
}
