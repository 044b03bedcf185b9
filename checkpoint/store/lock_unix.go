//go:build unix

package store

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// dirLock is an exclusive flock on the lock file of a checkpoint
// directory, as the broker holds on its data directory. A nil *dirLock is
// valid and releases nothing.
type dirLock struct{ f *os.File }

// lockDir takes the lock at path without waiting and writes me into the
// file; if another process holds it, the error is a *LockedError naming
// that process.
func lockDir(path string, me Owner) (*dirLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			data, _ := io.ReadAll(io.LimitReader(f, 64<<10))
			return nil, &LockedError{Dir: filepath.Dir(path), Holder: decodeHolder(data)}
		}
		return nil, err
	}
	data, _ := json.Marshal(me)
	if err := writeHolder(f, append(data, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	return &dirLock{f: f}, nil
}

// writeHolder replaces the lock file's content with data. It is written
// under the lock, so only a process that failed to take the lock reads it.
func writeHolder(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Sync()
}

func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	// Closing the descriptor drops the flock. The file stays: removing it
	// would let a third process lock a new inode while a second one waits
	// on the old.
	return f.Close()
}
