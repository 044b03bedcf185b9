package coordinator

import (
	"bytes"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// TestActionsLogReadably: an action logged as a value shows its checkpoint
// id and fields, never a Go pointer (`sluice demo -v` printed
// "Metadata:0x16998535a000").
func TestActionsLogReadably(t *testing.T) {
	t.Parallel()
	m := &checkpoint.Metadata{CheckpointID: 7, Kind: checkpoint.KindCheckpoint, Operators: map[string]*checkpoint.OperatorState{"count": {}}}
	ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		act  Action
		want string
	}{
		{TriggerAction{CheckpointID: 7, Kind: checkpoint.KindCheckpoint, Timestamp: ts, Stop: true},
			"detail.checkpoint=7 detail.kind=checkpoint detail.timestamp=2026-12-01T10:00:00.000Z detail.stop=true"},
		{PersistAction{Metadata: m}, "detail.checkpoint=7 detail.kind=checkpoint detail.operators=1"},
		{CompleteAction{CheckpointID: 7, Kind: checkpoint.KindCheckpoint, Metadata: m}, "detail.checkpoint=7 detail.kind=checkpoint detail.stop=false"},
		{AbortAction{CheckpointID: 7, Kind: checkpoint.KindSavepoint, Reason: errors.New("timed out")}, `detail.checkpoint=7 detail.kind=savepoint detail.reason="timed out"`},
		{DiscardAction{CheckpointID: 7}, "detail.checkpoint=7"},
		{FailJobAction{Err: errors.New("too many failures")}, `detail.err="too many failures"`},
	} {
		var b bytes.Buffer
		slog.New(slog.NewTextHandler(&b, nil)).Info("action", "detail", tc.act)
		line := strings.TrimSpace(b.String())
		if regexp.MustCompile(`0x[0-9a-f]+|&\{`).MatchString(line) || !strings.HasSuffix(line, tc.want) {
			t.Errorf("%T logs as\n  %s\nwant it to end with\n  %s", tc.act, line, tc.want)
		}
	}
}
