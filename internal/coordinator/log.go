package coordinator

import "log/slog"

// The actions are logged (at DEBUG) by the runtime as it carries them out.
// Their LogValue methods show what a reader needs, the checkpoint id first,
// instead of Go's default formatting, which prints the *Metadata pointer.

// LogValue implements slog.LogValuer.
func (a TriggerAction) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("checkpoint", a.CheckpointID), slog.String("kind", string(a.Kind)),
		slog.Time("timestamp", a.Timestamp), slog.Bool("stop", a.Stop))
}

// LogValue implements slog.LogValuer.
func (a PersistAction) LogValue() slog.Value {
	if a.Metadata == nil {
		return slog.GroupValue(slog.Any("metadata", nil))
	}
	return slog.GroupValue(slog.Int64("checkpoint", a.Metadata.CheckpointID), slog.String("kind", string(a.Metadata.Kind)),
		slog.Int("operators", len(a.Metadata.Operators)))
}

// LogValue implements slog.LogValuer.
func (a CompleteAction) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("checkpoint", a.CheckpointID), slog.String("kind", string(a.Kind)), slog.Bool("stop", a.Stop))
}

// LogValue implements slog.LogValuer.
func (a AbortAction) LogValue() slog.Value {
	reason := ""
	if a.Reason != nil {
		reason = a.Reason.Error()
	}
	return slog.GroupValue(slog.Int64("checkpoint", a.CheckpointID), slog.String("kind", string(a.Kind)), slog.String("reason", reason))
}

// LogValue implements slog.LogValuer.
func (a DiscardAction) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("checkpoint", a.CheckpointID))
}

// LogValue implements slog.LogValuer.
func (a FailJobAction) LogValue() slog.Value {
	err := ""
	if a.Err != nil {
		err = a.Err.Error()
	}
	return slog.GroupValue(slog.String("err", err))
}
