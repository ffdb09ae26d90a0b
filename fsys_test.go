package runnel

import (
	"io"
	"io/fs"
	"strings"
	"sync"
	"syscall"
	"time"
)

// faultFS is a fileSystem for tests: the operating system's, with faults
// to inject into the files whose names end with a suffix ("" for all),
// and counters of what went through it. It is safe for concurrent use.
type faultFS struct {
	osFS
	mu          sync.Mutex
	suffix      string        // the files the faults below apply to
	space       int64         // bytes writes may still add before the disk is full (ENOSPC); < 0: no limit
	shortWrites int           // the next writes write half of their bytes and fail
	syncErrs    int           // the next fsyncs fail with EIO
	truncErrs   int           // the next truncations fail with EIO
	syncLatency time.Duration // if set, an fsync sleeps this long instead (a model of a faster disk)
	syncGate    chan struct{} // if set, an fsync of a segment waits for a value from it first
	read        map[string]int64
	written     map[string]int64
	syncs       map[string]int
}

func newFaultFS() *faultFS {
	return &faultFS{space: -1, read: map[string]int64{}, written: map[string]int64{}, syncs: map[string]int{}}
}

// on makes the faults set by f apply to the files whose names end with
// suffix, and returns ffs.
func (ffs *faultFS) on(suffix string, f func(*faultFS)) *faultFS {
	ffs.mu.Lock()
	defer ffs.mu.Unlock()
	ffs.suffix = suffix
	f(ffs)
	return ffs
}

// bytesRead returns the bytes read from files whose names end with suffix.
func (ffs *faultFS) bytesRead(suffix string) int64 {
	ffs.mu.Lock()
	defer ffs.mu.Unlock()
	var n int64
	for name, b := range ffs.read {
		if strings.HasSuffix(name, suffix) {
			n += b
		}
	}
	return n
}

// fsyncs returns how many fsyncs of files whose names end with suffix
// succeeded.
func (ffs *faultFS) fsyncs(suffix string) int {
	ffs.mu.Lock()
	defer ffs.mu.Unlock()
	n := 0
	for name, c := range ffs.syncs {
		if strings.HasSuffix(name, suffix) {
			n += c
		}
	}
	return n
}

func (ffs *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (file, error) {
	f, err := ffs.osFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{file: f, name: name, fs: ffs}, nil
}

func (ffs *faultFS) SyncDir(name string) error {
	if ffs.take(name, &ffs.syncErrs) {
		return &fs.PathError{Op: "fsync", Path: name, Err: syscall.EIO}
	}
	return ffs.osFS.SyncDir(name)
}

// take reports whether a fault counted by *n applies to the file name,
// and uses it up.
func (ffs *faultFS) take(name string, n *int) bool {
	ffs.mu.Lock()
	defer ffs.mu.Unlock()
	if *n > 0 && strings.HasSuffix(name, ffs.suffix) {
		*n--
		return true
	}
	return false
}

// faultFile is a file of a faultFS.
type faultFile struct {
	file
	name string
	fs   *faultFS
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.file.ReadAt(p, off)
	f.fs.mu.Lock()
	f.fs.read[f.name] += int64(n)
	f.fs.mu.Unlock()
	return n, err
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	ffs := f.fs
	allowed, fault := len(p), error(nil)
	if ffs.take(f.name, &ffs.shortWrites) {
		allowed, fault = len(p)/2, io.ErrShortWrite
	}
	ffs.mu.Lock()
	if ffs.space >= 0 && strings.HasSuffix(f.name, ffs.suffix) {
		if int64(allowed) > ffs.space {
			allowed, fault = int(ffs.space), syscall.ENOSPC
		}
		ffs.space -= int64(allowed)
	}
	ffs.mu.Unlock()
	n, err := f.file.WriteAt(p[:allowed], off)
	ffs.mu.Lock()
	ffs.written[f.name] += int64(n)
	ffs.mu.Unlock()
	if err == nil && fault != nil {
		err = &fs.PathError{Op: "write", Path: f.name, Err: fault}
	}
	return n, err
}

func (f *faultFile) Sync() error {
	if f.fs.take(f.name, &f.fs.syncErrs) {
		return &fs.PathError{Op: "fsync", Path: f.name, Err: syscall.EIO}
	}
	f.fs.mu.Lock()
	gate := f.fs.syncGate
	f.fs.mu.Unlock()
	if gate != nil && strings.HasSuffix(f.name, ".seg") {
		<-gate
	}
	var err error
	if f.fs.syncLatency > 0 {
		blockFor(f.fs.syncLatency)
	} else {
		err = f.file.Sync()
	}
	if err == nil {
		f.fs.mu.Lock()
		f.fs.syncs[f.name]++
		f.fs.mu.Unlock()
	}
	return err
}

func (f *faultFile) Truncate(size int64) error {
	if f.fs.take(f.name, &f.fs.truncErrs) {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EIO}
	}
	return f.file.Truncate(size)
}
