//go:build unix

package runnel

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// fileLock is the lock of a lease file between processes: flock(2) on the
// lock file, the lease file's path with ".lock" appended, which stays open
// from OpenFileLeaseStore to Close. flock locks belong to an open file, so
// two FileLeaseStores of one path exclude each other as two processes do.
// The caller runs lock and unlock one at a time (the store's semaphore).
type fileLock struct {
	path string
	f    *os.File
}

// openFileLock opens (or creates) the lock file of the lease file at path.
func openFileLock(op, path string) (*fileLock, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fileError(op, path, "open the lock file "+name+" of", err)
	}
	return &fileLock{path: path, f: f}, nil
}

// lock takes the flock, exclusive or shared, waiting for other holders.
// The wait does not end with ctx: holders keep the lock only for one read
// or write of the file.
func (l *fileLock) lock(_ context.Context, op string, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := l.flock(how); err != nil {
		return fileError(op, l.path, "lock the lock file "+l.f.Name()+" of", err)
	}
	return nil
}

// errLocked is tryLock's error when another holder has the lock.
var errLocked = errors.New("locked by another holder")

// tryLock takes the flock exclusively, or fails with errLocked at once if
// another open file holds it.
func (l *fileLock) tryLock() error {
	err := l.flock(syscall.LOCK_EX | syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return errLocked
	}
	return err
}

// unlock releases the flock.
func (l *fileLock) unlock(op string) error {
	if err := l.flock(syscall.LOCK_UN); err != nil {
		return fileError(op, l.path, "unlock the lock file "+l.f.Name()+" of", err)
	}
	return nil
}

// flock calls flock(2) on the lock file, again when a signal interrupts it.
func (l *fileLock) flock(how int) error {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// close closes the lock file, which releases any flock still held. The lock
// file is left in place: removing it would let two processes lock two
// different files of one name.
func (l *fileLock) close() error {
	if err := l.f.Close(); err != nil {
		return fileError("Close", l.path, "close the lock file "+l.f.Name()+" of", err)
	}
	return nil
}

// syncDir fsyncs a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
