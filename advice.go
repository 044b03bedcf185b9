package sluice

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/advise"
	"github.com/sluicehq/sluice/restart"
)

// PartitionCounter is implemented by sources that read a partitioned log
// (the Kafka source): the advisor compares their parallelism with the
// partition count (docs/design.md §8, package advise).
type PartitionCounter interface {
	// PartitionCount returns how many partitions the source reads, asking
	// the cluster if it does not know yet; ctx bounds the asking.
	PartitionCount(ctx context.Context) (int, error)
}

// TransactionalSink is implemented by sink providers whose open
// transactions the external system aborts after a timeout (the Kafka sink
// with exactly-once delivery): the advisor checks that the timeout outlasts
// a checkpoint, the commit retries and a restart of this job.
type TransactionalSink interface {
	// TransactionTimeouts returns the transaction timeout (0: the sink
	// is not transactional) and how long a commit is retried.
	TransactionTimeouts() (timeout, commitRetry time.Duration)
}

// nodeAdvice is what the advisor knows of a source or sink node.
type nodeAdvice struct {
	// partitions is set for sources that count their partitions.
	partitions PartitionCounter
	// txn is set for transactional sinks.
	txn TransactionalSink
	// opened is set once a subtask 0 of the source checked its splits:
	// the warning is logged once per run, not once per attempt.
	opened atomic.Bool
}

// Advise checks the job as built against the rules of package advise: a
// source whose parallelism is neither a multiple nor a divisor of its
// partition count, a source with subtasks that will be idle, a
// transactional sink whose transaction timeout does not outlast this job's
// checkpoint timeout and restart delay. It asks the sources that implement
// PartitionCounter for their counts, within ctx; those it cannot ask are
// left out of the warnings, and their errors returned, joined. `describe`
// prints the warnings; Execute logs them at WARN (the sources' when a
// subtask opens, knowing its splits, so without asking the cluster twice).
func (e *Environment) Advise(ctx context.Context) ([]advise.Warning, error) {
	if e.err != nil {
		return nil, e.err
	}
	j := e.adviceJob()
	var errs []error
	for _, n := range e.nodes {
		if n.advice.partitions == nil {
			continue
		}
		c, err := n.advice.partitions.PartitionCount(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("source %q: partition count unknown: %w", n.name, err))
			continue
		}
		j.Sources = append(j.Sources, advise.Source{Name: n.name, Parallelism: n.par, Partitions: c})
	}
	return advise.Check(j), errors.Join(errs...)
}

// adviceJob is the job's settings and sinks for advise.Check, without
// sources.
func (e *Environment) adviceJob() advise.Job {
	ck := e.cfg.Checkpoint.WithDefaults()
	j := advise.Job{CheckpointInterval: ck.Interval, CheckpointTimeout: ck.Timeout, MaxRestartDelay: maxRestartDelay(e.cfg.Restart)}
	for _, n := range e.nodes {
		if n.advice.txn == nil {
			continue
		}
		timeout, retry := n.advice.txn.TransactionTimeouts()
		j.Sinks = append(j.Sinks, advise.Sink{Name: n.name, TransactionTimeout: timeout, CommitRetry: retry})
	}
	return j
}

// maxRestartDelay is the longest delay a restart policy waits before a
// restart.
func maxRestartDelay(p restart.Policy) time.Duration {
	switch p := p.(type) {
	case restart.FixedDelay:
		return max(p.WithDefaults().Delay, 0)
	case restart.FailureRate:
		return max(p.WithDefaults().Delay, 0)
	case restart.ExponentialDelay:
		return max(p.WithDefaults().MaxBackoff, 0)
	case nil:
		return maxRestartDelay(restart.Default())
	}
	return 0
}

// logAdvice logs the sinks' warnings when the job starts.
func (e *Environment) logAdvice() {
	for _, w := range advise.Check(e.adviceJob()) {
		e.cfg.Logger.Warn(w.Message, "job", e.cfg.JobName, "operator", w.Operator, "advice", w.Kind)
	}
}

// checkSplits is called by each source subtask when it opened, with every
// split of the source and how they are assigned: subtask 0 of the first
// attempt logs the source's warnings.
func (a *nodeAdvice) checkSplits(oc *OperatorContext, splits map[string]Split, assign func(id string, parallelism int) int) {
	if oc.Subtask != 0 || len(splits) == 0 || !a.opened.CompareAndSwap(false, true) {
		return
	}
	per := make([]int, oc.Parallelism)
	for id := range splits {
		if s := assign(id, oc.Parallelism); s >= 0 && s < len(per) {
			per[s]++
		}
	}
	unit := "splits"
	if a.partitions != nil {
		unit = "partitions"
	}
	src := advise.Source{Name: oc.Name, Parallelism: oc.Parallelism, Partitions: len(splits), Unit: unit, PerSubtask: per}
	for _, w := range advise.Check(advise.Job{Sources: []advise.Source{src}}) {
		oc.Logger.Warn(w.Message, "advice", w.Kind)
	}
}
