//go:build !unix

package runnel

import (
	"context"
	"errors"
)

// fileLock is the lock of a lease file where flock(2) is missing: the
// store's own semaphore. It reaches neither other processes nor other
// FileLeaseStores of the same file, so on these systems one
// FileLeaseStore, in one process, may use a lease file.
type fileLock struct {
	sem chan struct{}
}

// openFileLock returns the store's lock.
func openFileLock(string, string) (*fileLock, error) {
	return &fileLock{sem: make(chan struct{}, 1)}, nil
}

// lock takes the semaphore, for reads and writes alike; the wait ends with
// ctx.
func (l *fileLock) lock(ctx context.Context, op string, _ bool) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxError(op, ctx.Err())
	}
}

// errLocked is tryLock's error when another holder has the lock.
var errLocked = errors.New("locked by another holder")

// tryLock takes the semaphore, or fails with errLocked at once. It reaches
// no other process.
func (l *fileLock) tryLock() error {
	select {
	case l.sem <- struct{}{}:
		return nil
	default:
		return errLocked
	}
}

// unlock releases the semaphore.
func (l *fileLock) unlock(string) error {
	<-l.sem
	return nil
}

// close does nothing.
func (l *fileLock) close() error { return nil }

// syncDir does nothing: these systems (Windows) cannot fsync a directory,
// so a rename is as durable as the file system makes it.
func syncDir(string) error { return nil }
