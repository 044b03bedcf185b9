//go:build unix

package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFileName is the file in the data directory a running broker holds an
// exclusive flock on. kfake itself does not guard its directory, and two
// processes appending to the same segment files corrupt them. The kernel
// drops the lock when the process dies, so a crash leaves no stale lock.
const lockFileName = "sluice-broker.lock"

// dirLock is an flock held on a file in a data directory. A nil *dirLock
// (an ephemeral broker) is valid and releases nothing.
type dirLock struct{ f *os.File }

func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another broker is using it (%s is locked)", lockFileName)
		}
		return nil, err
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	// Closing the descriptor drops the flock.
	return f.Close()
}
