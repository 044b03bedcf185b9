package httpapi

import (
	"context"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
)

func (f *fakeJob) Status() sluice.JobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeJob) setStatus(st sluice.JobStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st
}

func (f *fakeJob) CheckpointConfig() checkpoint.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return checkpoint.Config{Interval: f.interval}.WithDefaults()
}

func (f *fakeJob) TriggerCheckpoint(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cpErr != nil {
		return 0, f.cpErr
	}
	f.cpN++
	return f.cpN, nil
}

func (f *fakeJob) Cancel() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled++
}

func (f *fakeJob) cancels() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled
}
