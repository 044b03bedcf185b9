package coordinator

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// The causes of an aborted checkpoint or savepoint. An AbortAction's Reason
// is an *AbortError that wraps exactly one of them, so the runtime and tests
// can tell causes apart with errors.Is.
var (
	// ErrDeclined: a task declined the checkpoint (docs/design.md §3 step 4 failed
	// on that task), or sent an ack the coordinator could not accept.
	ErrDeclined = errors.New("declined by a task")
	// ErrExpired: the checkpoint was not complete within checkpoint.Config.Timeout of
	// its trigger (docs/design.md §3 step 6). Flink calls this CHECKPOINT_EXPIRED.
	ErrExpired = errors.New("expired")
	// ErrPersistFailed: every task acked but writing the metadata failed
	// (docs/design.md §3 step 5).
	ErrPersistFailed = errors.New("persisting metadata failed")
	// ErrSubsumed: a newer checkpoint completed first, so this one is no
	// longer needed. Not a failure: it does not count towards
	// checkpoint.Config.TolerableFailures.
	ErrSubsumed = errors.New("subsumed by a newer checkpoint")
	// ErrJobFailing: the coordinator emitted a FailJobAction, so no pending
	// checkpoint can complete any more.
	ErrJobFailing = errors.New("job failing")
)

// AbortError is the Reason of an AbortAction. Its message says which
// snapshot was aborted and why; Unwrap yields Cause (one of the Err*
// variables above) and Err (the task's or storage's own error, if any).
type AbortError struct {
	CheckpointID int64
	Kind         checkpoint.Kind
	// Cause is ErrDeclined, ErrExpired, ErrPersistFailed, ErrSubsumed or
	// ErrJobFailing.
	Cause error
	// Task is the declining task; set only when Cause is ErrDeclined.
	Task checkpoint.TaskID
	// Err is the underlying error: the task's decline reason, the storage
	// error of a failed persist, or the FailJobAction's error. May be nil.
	Err error

	msg string
}

// Error returns the message.
func (e *AbortError) Error() string { return e.msg }

// Unwrap returns Cause and, if set, Err.
func (e *AbortError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Cause}
	}
	return []error{e.Cause, e.Err}
}

// taskName renders a TaskID the way messages and logs show it: vertex/subtask.
func taskName(t checkpoint.TaskID) string { return fmt.Sprintf("%s/%d", t.Vertex, t.Subtask) }

// suffix renders ": err", or nothing for a nil err.
func suffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func declinedError(p *pending, task checkpoint.TaskID, err error) *AbortError {
	return &AbortError{
		CheckpointID: p.id, Kind: p.kind, Cause: ErrDeclined, Task: task, Err: err,
		msg: fmt.Sprintf("%s %d declined by task %s%s", p.kind, p.id, taskName(task), suffix(err)),
	}
}

func expiredError(p *pending, timeout time.Duration, total int) *AbortError {
	var msg string
	if p.persisting {
		// Every task acked: the metadata write is what hangs, which points
		// at storage rather than at the job.
		msg = fmt.Sprintf("%s %d expired: not complete %v after its trigger, still persisting metadata", p.kind, p.id, timeout)
	} else {
		msg = fmt.Sprintf("%s %d expired: not complete %v after its trigger, %d of %d tasks acked", p.kind, p.id, timeout, len(p.acked), total)
	}
	return &AbortError{CheckpointID: p.id, Kind: p.kind, Cause: ErrExpired, msg: msg}
}

func persistError(p *pending, err error) *AbortError {
	return &AbortError{
		CheckpointID: p.id, Kind: p.kind, Cause: ErrPersistFailed, Err: err,
		msg: fmt.Sprintf("%s %d: persisting metadata failed%s", p.kind, p.id, suffix(err)),
	}
}

func subsumedError(p *pending, by int64) *AbortError {
	return &AbortError{
		CheckpointID: p.id, Kind: p.kind, Cause: ErrSubsumed,
		msg: fmt.Sprintf("%s %d subsumed by completed checkpoint %d", p.kind, p.id, by),
	}
}

func jobFailingError(p *pending, err error) *AbortError {
	return &AbortError{
		CheckpointID: p.id, Kind: p.kind, Cause: ErrJobFailing, Err: err,
		msg: fmt.Sprintf("%s %d aborted: job failing", p.kind, p.id),
	}
}
