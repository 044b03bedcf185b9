//go:build !unix

package store

// dirLock does nothing where flock is not available: there, two instances
// on one checkpoint directory are not refused at start, and only the
// ownership epoch fences the older one (docs/design.md §9).
type dirLock struct{}

func lockDir(string, Owner) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) release() error { return nil }
