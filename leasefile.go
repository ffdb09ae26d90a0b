package runnel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// FileLeaseStore is a LeaseStore in one file: the lease table of one
// application, kept on disk so that it survives a restart and can be
// shared by the workers of several processes on one machine. Open it with
// OpenFileLeaseStore and close it with Close; the zero value is not usable.
//
// Durability: every write replaces the whole file atomically. It writes the
// new table to a temporary file in the same directory, fsyncs it, renames
// it over the file and fsyncs the directory, so a crash at any moment
// leaves either the old table or the new one, never a mix. A write whose
// PutLease or DeleteLease returned nil is on disk. A write that failed in
// its last step (the directory's fsync) may still have replaced the file:
// read the lease again before retrying, as after a DynamoDB timeout.
//
// Concurrency: a FileLeaseStore is safe for concurrent use; its operations
// run one at a time within the process. It keeps no cache: every
// operation reads the file, so each sees every write made before it, by
// this store, another FileLeaseStore of the same path or another process.
// On unix systems several processes may share the file: each operation
// holds an advisory lock (flock(2)) on a lock file next to it, the file's
// path with ".lock" appended, shared for reads and exclusive for writes.
// Every process must use the file through FileLeaseStore and by a path in
// the same directory (a symbolic link to the file elsewhere would have a
// lock file of its own), and the file system must support flock (a local
// one; not NFS). On other systems there is no file lock: one
// FileLeaseStore, in one process, may use a file there.
//
// Every operation checks its context before it waits for the lock and
// again once it holds it; a wait for the lock of another process does not
// end with the context (it lasts as long as one read or write of the
// file).
//
// A new lease file and the lock file get mode 0600 (less the umask); a
// write keeps the permission bits of the file it replaces.
//
// The file is JSON, versioned ({"version":1,"leases":[...]}), in shard-id
// order; sequence numbers are decimal strings and timestamps RFC 3339
// strings in UTC. A file that cannot be read as a valid table fails every
// operation with an error wrapping ErrInternalFailure that names the file
// and the fault; it is never taken for an empty table, nor overwritten. A
// missing file is an empty table.
type FileLeaseStore struct {
	path string
	// sem, a one-slot semaphore, runs the store's operations one at a time
	// and guards closed and the use of lock. It is taken before lock:
	// sem → lock → (on unix) the lock file's flock.
	sem    chan struct{}
	closed bool
	lock   *fileLock // the platform's lock: leasefile_unix.go, leasefile_other.go
}

// leaseFileVersion is the version of the file format that this code writes
// and reads.
const leaseFileVersion = 1

// OpenFileLeaseStore opens the lease table in the file at path, which need
// not exist yet (a missing file is an empty table, created by the first
// write), but whose directory must: the error of a missing directory wraps
// ErrInvalidArgument and names it. It reads the file once, so a file that
// is not a valid table fails here with an error wrapping
// ErrInternalFailure, and it removes the temporary files that writes
// interrupted by a crash left in the directory. On unix it creates the
// lock file (path + ".lock") and keeps it open until Close.
func OpenFileLeaseStore(path string) (*FileLeaseStore, error) {
	const op = "OpenFileLeaseStore"
	if path == "" {
		return nil, errorf(op, ErrInvalidArgument, "lease file path is empty")
	}
	dir := filepath.Dir(path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errorf(op, ErrInvalidArgument, "directory %s of lease file %s does not exist; create it first", dir, path)
	case err != nil:
		return nil, fileError(op, path, "look up the directory of", err)
	case !fi.IsDir():
		return nil, errorf(op, ErrInvalidArgument, "%s, the directory of lease file %s, is not a directory", dir, path)
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, errorf(op, ErrInvalidArgument, "lease file %s is not a regular file", path)
	}
	lock, err := openFileLock(op, path)
	if err != nil {
		return nil, err
	}
	s := &FileLeaseStore{path: path, sem: make(chan struct{}, 1), lock: lock}
	err = s.do(context.Background(), op, true, func() error {
		if _, err := s.read(op); err != nil {
			return err
		}
		s.removeTemps()
		return nil
	})
	if err != nil {
		lock.close()
		return nil, err
	}
	return s, nil
}

// Path returns the path of the lease file, as given to OpenFileLeaseStore.
func (s *FileLeaseStore) Path() string { return s.path }

// ListLeases implements LeaseStore: it reads the file under a shared lock
// and returns its leases in shard-id order. Timestamps are returned in
// UTC. The leases share no memory with the store.
func (s *FileLeaseStore) ListLeases(ctx context.Context) ([]Lease, error) {
	const op = "ListLeases"
	var out []Lease
	err := s.do(ctx, op, false, func() error {
		table, err := s.read(op)
		if err != nil {
			return err
		}
		out = sortedLeases(table)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutLease implements LeaseStore: under an exclusive lock it reads the
// file, applies the conditional write and, if the condition holds, writes
// the new table (see FileLeaseStore for durability). Besides the checks of
// every LeaseStore, the lease's strings must be valid UTF-8 and the
// Timestamp of its Start must fall in the years 0 to 9999, as the file
// format requires; the error otherwise wraps ErrInvalidArgument. The
// Timestamp is kept to the nanosecond and read back in UTC, without a
// monotonic clock reading.
func (s *FileLeaseStore) PutLease(ctx context.Context, l Lease, expect int64) error {
	const op = "PutLease"
	if err := checkLeaseWrite(op, l, expect); err != nil {
		return err
	}
	if err := checkFileLease(op, l); err != nil {
		return err
	}
	return s.do(ctx, op, true, func() error {
		table, err := s.read(op)
		if err != nil {
			return err
		}
		if err := applyLeaseWrite(op, table, l, expect); err != nil {
			return err
		}
		return s.write(op, table)
	})
}

// DeleteLease implements LeaseStore: under an exclusive lock it reads the
// file, applies the conditional delete and, if a lease was removed, writes
// the new table (see FileLeaseStore for durability).
func (s *FileLeaseStore) DeleteLease(ctx context.Context, shardID string, expect int64) error {
	const op = "DeleteLease"
	return s.do(ctx, op, true, func() error {
		table, err := s.read(op)
		if err != nil {
			return err
		}
		if _, ok := table[shardID]; !ok {
			return nil
		}
		if err := applyLeaseDelete(op, table, shardID, expect); err != nil {
			return err
		}
		return s.write(op, table)
	})
}

// Close releases the lock file. It waits for an operation in progress to
// finish. Close may be called more than once (later calls return nil);
// every operation after Close returns an error wrapping ErrClosed.
// The lease file itself stays as the last write left it.
func (s *FileLeaseStore) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.lock.close()
}

// do runs f holding the store's semaphore and the platform's lock,
// exclusive or shared. The context is checked before each is taken and
// once both are held; the wait for the semaphore ends with the context,
// the wait for another process's flock does not (it lasts as long as one
// write of the file).
func (s *FileLeaseStore) do(ctx context.Context, op string, exclusive bool, f func() error) error {
	if err := ctx.Err(); err != nil {
		return ctxError(op, err)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctxError(op, ctx.Err())
	}
	defer func() { <-s.sem }()
	if s.closed {
		return errorf(op, ErrClosed, "lease file %s", s.path)
	}
	if err := s.lock.lock(ctx, op, exclusive); err != nil {
		return err
	}
	err := ctx.Err()
	if err != nil {
		err = ctxError(op, err)
	} else {
		err = f()
	}
	if uerr := s.lock.unlock(op); err == nil {
		err = uerr
	}
	return err
}

// read reads and decodes the file; a missing file is an empty table. The
// caller holds the lock.
func (s *FileLeaseStore) read(op string) (map[string]Lease, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return make(map[string]Lease), nil
	}
	if err != nil {
		return nil, fileError(op, s.path, "read", err)
	}
	return decodeLeaseFile(op, s.path, data)
}

// tempPrefix is what the names of a lease file's temporary files start
// with, in its directory.
func (s *FileLeaseStore) tempPrefix() string { return filepath.Base(s.path) + ".tmp-" }

// write replaces the file with table atomically: a temporary file in the
// same directory, fsync, rename, fsync of the directory. The caller holds
// the exclusive lock.
func (s *FileLeaseStore) write(op string, table map[string]Lease) error {
	data, err := encodeLeaseFile(op, table)
	if err != nil {
		return err
	}
	what, err := replaceFile(s.path, s.tempPrefix(), data)
	if err == nil {
		return nil
	}
	if what == syncDirStep {
		return &Error{Op: op, Kind: ErrInternalFailure, Err: err,
			Msg: fmt.Sprintf("lease file %s was replaced, but the fsync of its directory failed: the write may not survive a crash", s.path)}
	}
	return fileError(op, s.path, what, err)
}

// syncDirStep is the step of replaceFile that failed after the file was
// replaced.
const syncDirStep = "fsync the directory of"

// replaceFile replaces the file at path with data atomically: it writes a
// temporary file (its name starting with tempPrefix) in the same
// directory, fsyncs it, renames it over the file and fsyncs the directory,
// so a crash at any moment leaves the old file or the new one. It keeps
// the permission bits of the file it replaces. On failure it returns what
// it could not do, to complete "could not … <path>", and the fault; when
// that is syncDirStep, the file may have been replaced.
func replaceFile(path, tempPrefix string, data []byte) (string, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return "create a temporary file for", err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if fi, err := os.Stat(path); err == nil {
		if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
			return "set the mode of the temporary file " + tmp.Name() + " of", err
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return "write the temporary file " + tmp.Name() + " of", err
	}
	if err := tmp.Sync(); err != nil {
		return "fsync the temporary file " + tmp.Name() + " of", err
	}
	if err := tmp.Close(); err != nil {
		return "close the temporary file " + tmp.Name() + " of", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "rename the temporary file " + tmp.Name() + " over", err
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return syncDirStep, err
	}
	return "", nil
}

// removeTemps removes the temporary files that interrupted writes left
// behind. The caller holds the exclusive lock, so no write is under way.
// It is best effort: a file it cannot remove does no harm.
func (s *FileLeaseStore) removeTemps() {
	dir := filepath.Dir(s.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := s.tempPrefix()
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// fileError is the error of a failed file operation: ErrInternalFailure
// wrapping the operating system's error.
func fileError(op, path, what string, err error) error {
	return &Error{Op: op, Kind: ErrInternalFailure, Msg: fmt.Sprintf("could not %s lease file %s", what, path), Err: err}
}

// leaseFileJSON is the lease file: version 1 of the format.
type leaseFileJSON struct {
	Version int            `json:"version"`
	Leases  []leaseFileRow `json:"leases"`
}

// leaseFileRow is one lease in the file. Empty values are left out, except
// an empty, non-nil list of parents, which is kept as [] so that a table
// reads back exactly as it was written.
type leaseFileRow struct {
	ShardID        string             `json:"shardId"`
	Owner          string             `json:"owner,omitzero"`
	Counter        int64              `json:"counter"`
	Checkpoint     checkpointFileJSON `json:"checkpoint,omitzero"`
	ParentShardIDs []string           `json:"parentShardIds,omitzero"`
	ChildShardIDs  []string           `json:"childShardIds,omitzero"`
	HashKeyRange   HashKeyRange       `json:"hashKeyRange,omitzero"`
	OwnerSwitches  int64              `json:"ownerSwitchesSinceCheckpoint,omitzero"`
	Start          startFileJSON      `json:"start,omitzero"`
}

// checkpointFileJSON is a Checkpoint in the file.
type checkpointFileJSON struct {
	SequenceNumber    SequenceNumber `json:"sequenceNumber,omitzero"`
	SubSequenceNumber int64          `json:"subSequenceNumber,omitzero"`
	ShardEnd          bool           `json:"shardEnd,omitzero"`
}

// startFileJSON is a StartingPosition in the file; Timestamp is RFC 3339
// with nanoseconds, in UTC, or "" for the zero time.
type startFileJSON struct {
	Type           IteratorType   `json:"type,omitzero"`
	SequenceNumber SequenceNumber `json:"sequenceNumber,omitzero"`
	Timestamp      string         `json:"timestamp,omitzero"`
}

// checkFileLease checks what the file format needs of a lease beyond
// checkLeaseWrite: valid UTF-8 (JSON would replace bad bytes, and the lease
// would read back changed) and a timestamp that RFC 3339 can hold.
func checkFileLease(op string, l Lease) error {
	for _, s := range slices.Concat([]string{l.ShardID, l.Owner, string(l.Start.Type)}, l.ParentShardIDs, l.ChildShardIDs) {
		if !utf8.ValidString(s) {
			return errorf(op, ErrInvalidArgument, "lease %s: %s is not valid UTF-8, which a lease file cannot hold", clip(l.ShardID, 64), clip(s, 64))
		}
	}
	if ts := l.Start.Timestamp; !ts.IsZero() && !fileTimestampOK(ts) {
		return errorf(op, ErrInvalidArgument, "lease %s: start timestamp %s is outside the years 0 to 9999 (UTC), which a lease file can hold", l.ShardID, ts.UTC())
	}
	return nil
}

// fileTimestampOK reports whether the file format can hold t: RFC 3339 in
// UTC has four-digit years.
func fileTimestampOK(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// encodeLeaseFile returns the file form of a table: indented JSON, leases
// in shard-id order, ending in a newline. Every lease must have passed
// checkFileLease.
func encodeLeaseFile(op string, table map[string]Lease) ([]byte, error) {
	f := leaseFileJSON{Version: leaseFileVersion, Leases: make([]leaseFileRow, 0, len(table))}
	for _, l := range sortedLeases(table) {
		row := leaseFileRow{
			ShardID: l.ShardID,
			Owner:   l.Owner,
			Counter: l.Counter,
			Checkpoint: checkpointFileJSON{
				SequenceNumber:    l.Checkpoint.SequenceNumber,
				SubSequenceNumber: l.Checkpoint.SubSequenceNumber,
				ShardEnd:          l.Checkpoint.ShardEnd,
			},
			ParentShardIDs: l.ParentShardIDs,
			ChildShardIDs:  l.ChildShardIDs,
			HashKeyRange:   l.HashKeyRange,
			OwnerSwitches:  l.OwnerSwitchesSinceCheckpoint,
			Start:          startFileJSON{Type: l.Start.Type, SequenceNumber: l.Start.SequenceNumber},
		}
		if !l.Start.Timestamp.IsZero() {
			row.Start.Timestamp = l.Start.Timestamp.UTC().Format(time.RFC3339Nano)
		}
		f.Leases = append(f.Leases, row)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, &Error{Op: op, Kind: ErrInternalFailure, Msg: "could not encode the lease table", Err: err}
	}
	return append(data, '\n'), nil
}

// decodeLeaseFile parses a lease file's content strictly: one JSON object
// of version 1 and nothing after it, no unknown fields, no two leases of
// one shard, counters of at least 1 (a stored lease's counter is greater
// than an expected counter, which is at least 0) and valid checkpoints and
// timestamps. Any fault is an error wrapping ErrInternalFailure that names
// path and the fault.
func decodeLeaseFile(op, path string, data []byte) (map[string]Lease, error) {
	corrupt := func(format string, args ...any) error {
		return errorf(op, ErrInternalFailure, "lease file %s is not a valid lease table: "+format, append([]any{path}, args...)...)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, corrupt("it is empty (a missing file is an empty table; an empty one is not)")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f leaseFileJSON
	if err := dec.Decode(&f); err != nil {
		return nil, corrupt("%s", jsonFault(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, corrupt("there is more after the table's JSON object")
	}
	if f.Version != leaseFileVersion {
		return nil, corrupt("version %d is not supported; this runnel reads version %d", f.Version, leaseFileVersion)
	}
	table := make(map[string]Lease, len(f.Leases))
	for i, row := range f.Leases {
		switch _, dup := table[row.ShardID]; {
		case row.ShardID == "":
			return nil, corrupt("lease %d has no shardId", i)
		case dup:
			return nil, corrupt("shard %s has two leases", clip(row.ShardID, 64))
		case row.Counter < 1:
			return nil, corrupt("lease %s has counter %d; a stored lease's counter is at least 1", clip(row.ShardID, 64), row.Counter)
		}
		l := Lease{
			ShardID: row.ShardID,
			Owner:   row.Owner,
			Counter: row.Counter,
			Checkpoint: Checkpoint{
				SequenceNumber:    row.Checkpoint.SequenceNumber,
				SubSequenceNumber: row.Checkpoint.SubSequenceNumber,
				ShardEnd:          row.Checkpoint.ShardEnd,
			},
			ParentShardIDs:               row.ParentShardIDs,
			ChildShardIDs:                row.ChildShardIDs,
			HashKeyRange:                 row.HashKeyRange,
			OwnerSwitchesSinceCheckpoint: row.OwnerSwitches,
			Start:                        StartingPosition{Type: row.Start.Type, SequenceNumber: row.Start.SequenceNumber},
		}
		if why := l.Invalid(); why != "" {
			return nil, corrupt("lease %s %s", clip(row.ShardID, 64), why)
		}
		if ts := row.Start.Timestamp; ts != "" {
			t, err := time.Parse(time.RFC3339Nano, ts)
			switch {
			case err != nil:
				return nil, corrupt("the start timestamp %s of lease %s is not an RFC 3339 time", clip(ts, 64), clip(row.ShardID, 64))
			case !fileTimestampOK(t):
				return nil, corrupt("the start timestamp %s of lease %s is outside the years 0 to 9999 in UTC", clip(ts, 64), clip(row.ShardID, 64))
			}
			l.Start.Timestamp = t.UTC()
		}
		table[l.ShardID] = l
	}
	return table, nil
}

// jsonFault describes a JSON decoding error for a message, with the byte
// offset where the decoder knows it.
func jsonFault(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var e *Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "it ends in the middle of the JSON (truncated?)"
	case errors.As(err, &syntax):
		return fmt.Sprintf("it is not valid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s at byte %d holds a JSON %s, which does not fit Go type %s", typ.Field, typ.Offset, typ.Value, typ.Type)
	case errors.As(err, &e):
		// A sequence number that does not parse: say what, without
		// another sentinel.
		return "a value does not parse: " + e.Msg
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
