package runnel

import (
	"io/fs"
	"os"
)

// fileSystem is the file store's seam to the operating system: the few
// operations a durable cluster's shard stores perform on their files.
// osFS is the real one; the tests substitute one that injects faults
// (short writes, a full disk, failing fsyncs) and counts what is read.
// Implementations must be safe for concurrent use: a store's writer and
// its cold readers call them at the same time.
type fileSystem interface {
	// OpenFile opens a file as os.OpenFile does.
	OpenFile(name string, flag int, perm fs.FileMode) (file, error)
	// ReadDir lists a directory, sorted by name, as os.ReadDir does.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Remove removes a file, as os.Remove does.
	Remove(name string) error
	// MkdirAll creates a directory and its parents, as os.MkdirAll does.
	MkdirAll(name string, perm fs.FileMode) error
	// SyncDir fsyncs a directory, making the creation and removal of its
	// files durable.
	SyncDir(name string) error
}

// file is an open file of a fileSystem. The store writes only at explicit
// offsets (WriteAt, never at a file position), so that a truncation after
// a failed write leaves nothing to reposition.
type file interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

// osFS is the operating system's file system.
type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil file
	}
	return f, nil
}

func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }
func (osFS) SyncDir(name string) error                    { return syncDir(name) }
