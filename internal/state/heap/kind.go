package heap

import (
	"errors"
	"fmt"
)

// Errors of the heap backend, to test with errors.Is; the errors returned
// wrap them with the key group or the snapshot involved. The errors a user's
// registration can return are state.ErrIncompatible and state.ErrCorrupt.
var (
	// ErrKeyGroupOutOfRange is returned by SetCurrentKey for a key whose key
	// group this backend does not own: records were routed to the wrong
	// subtask, a runtime bug that must fail the task rather than corrupt
	// another subtask's state.
	ErrKeyGroupOutOfRange = errors.New("state: key group not in the backend's range")
	// ErrReleased is returned by WriteKeyGroups on a released snapshot,
	// whose frozen maps may already have been overwritten.
	ErrReleased = errors.New("state: snapshot already released")
)

// kind is a state's kind, as recorded in snapshots.
type kind uint8

const (
	kindValue    kind = 1
	kindList     kind = 2
	kindMap      kind = 3
	kindReducing kind = 4
)

func (k kind) String() string {
	switch k {
	case kindValue:
		return "value"
	case kindList:
		return "list"
	case kindMap:
		return "map"
	case kindReducing:
		return "reducing"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}
