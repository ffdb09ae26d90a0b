package runnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sort"
	"sync"
	"time"
	"unsafe"
)

// fileStore is the store of one shard of a durable cluster: an
// append-only log of segment files in the shard's directory (segment.go),
// a cache of the newest records in memory (a memStore), and a background
// writer goroutine that owns the files being written.
//
// The shard calls every method but close with its lock (mu) held, and no
// method does file I/O: append copies a record into the cache and into
// the write buffer (fill), commit hands the buffer to the writer, trim
// only changes the lists in memory, and cold and seekTime return readers
// that open the segment files by path once the lock is released. The
// writer takes the lock only to swap buffers and to publish what it wrote.
//
// What is in memory: the cache (at most cacheBytes, and a chunk, once its
// records are on disk), the index of every segment (24 bytes per index
// entry, one entry for about every 4 KiB of records: 0.6% of the data
// held), two write buffers of about bufferBytes (the one being filled and
// the one being written, swapped by the writer, so that puts go on
// appending while it writes), and up to two 256 KiB windows that cold
// readers reuse.
//
// Counter ranges, from the oldest record up: segments hold every record
// below diskEnd (written, and fsynced unless the policy is SyncOS); the
// cache holds every retained record from cacheFrom ≤ diskEnd on; records
// below published are readable; next is the counter after the newest
// record appended.
//
// Locking: the fields below "Guarded by mu" and the fields of the
// segments are guarded by the shard's lock. Only the writer changes the
// segments and active, always with the lock held, so it may read them
// without. The writer holds no other lock, and never holds mu across I/O.
type fileStore struct {
	// Set at open.
	dir          string
	fsys         fileSystem
	sync         SyncPolicy
	segmentBytes int64
	cacheBytes   int64
	bufferBytes  int64
	mu           *sync.Mutex
	onPublish    func()
	windows      windowPool    // the cold readers' windows
	kick         chan struct{} // capacity 1: wakes the writer
	stop         chan struct{} // closed by close
	wg           sync.WaitGroup
	closeOnce    sync.Once

	// Guarded by mu.
	cache       *memStore
	segs        []*segment // retained segments, oldest first; the last is active
	active      *segment   // the segment being written
	doomed      []*segment // expired segments whose files the writer removes
	fill        batch      // records appended since the writer's last take
	spare       []byte     // the buffer of the next fill
	flushing    batch      // what the writer is writing
	flushingCap int        // capacity of its buffer
	next        uint64
	committed   uint64 // next at the last commit
	behindEnd   uint64 // puts of the fill up to here become readable with the write in flight
	published   uint64
	diskEnd     uint64
	cacheFrom   uint64
	cutoffMs    int64       // the cutoff of the last trim
	failed      *commitWait // set once the store failed closed: every later put fails with it
	closed      bool        // close was called
	closeErr    error       // close's result

	// The writer's: only its goroutine (and openFileStore, before it
	// starts) touches them.
	data, index file         // the files of active
	scratch     []indexEntry // index entries of a batch
	encoded     []byte       // their encoding
	lastTake    time.Time    // when it last took records (SyncInterval)
	removeErr   error        // why it last failed to remove an expired segment
	dirDirty    bool         // SyncOS: segments were created or removed since the directory's last fsync
}

// fileStoreConfig configures openFileStore.
type fileStoreConfig struct {
	dir          string      // the shard's directory; created if missing
	fs           fileSystem  // nil: osFS
	sync         SyncPolicy  // when records reach stable storage
	segmentBytes int64       // a new segment starts once one passes this size; 0: 32 MiB
	cacheBytes   int64       // memory for the newest records; 0: 8 MiB
	bufferBytes  int64       // bytes of the buffer being filled past which puts wait for the writer; 0: 1 MiB
	base         uint64      // counter the first segment starts at when dir is empty
	mu           *sync.Mutex // the shard's lock
	published    func()      // called with mu held once records the writer wrote became readable
}

// Defaults of fileStoreConfig.
const (
	defaultSegmentBytes = 32 << 20
	defaultCacheBytes   = 8 << 20
	defaultBufferBytes  = 1 << 20
)

// batch is the records of the puts between two takes of the writer,
// encoded as they will be written, and the handle of the puts that wait
// for them.
type batch struct {
	buf      []byte
	first    uint64 // counter of the first record
	end      uint64 // next when the writer took it
	records  int64
	newestMs int64       // arrival of the newest record
	wait     *commitWait // nil until a put waits for the batch to be written
	held     bool        // a put waits for the batch to be written
	kicked   bool        // the writer was told of these records
	urged    bool        // the writer was told not to wait for its interval
}

// bytes returns the bytes of partition keys and data of the batch.
func (b *batch) bytes() int64 { return int64(len(b.buf)) - b.records*recordHeaderLen }

// commitWait is the pendingWrite of the puts of one batch, whose writers
// share one write and fsync (group commit).
type commitWait struct {
	done chan struct{}
	err  error
}

func (w *commitWait) wait(ctx context.Context) error {
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release lets the writers go, with err.
func (w *commitWait) release(err error) {
	if w != nil {
		w.err = err
		close(w.done)
	}
}

// failedWrite returns a pendingWrite that fails at once with err.
func failedWrite(err error) *commitWait {
	w := &commitWait{done: make(chan struct{})}
	w.release(err)
	return w
}

// errStoreClosed fails the puts that reach a file store after close.
var errStoreClosed = &Error{Op: "write", Kind: ErrInternalFailure, Err: ErrClosed, Msg: "the shard's store is closed"}

// openFileStore opens or creates the store in cfg.dir, recovers its
// segments (recoverSegment) and starts its writer. next is the counter
// after the newest record found, at least the newest segment's name
// (cfg.base for a new directory).
func openFileStore(cfg fileStoreConfig) (*fileStore, uint64, error) {
	const op = "Open"
	s := &fileStore{
		dir: cfg.dir, fsys: cfg.fs, sync: cfg.sync,
		segmentBytes: cfg.segmentBytes, cacheBytes: cfg.cacheBytes, bufferBytes: cfg.bufferBytes,
		mu: cfg.mu, onPublish: cfg.published,
		windows: make(windowPool, 2), kick: make(chan struct{}, 1), stop: make(chan struct{}),
		cache: newMemStore(), cutoffMs: math.MinInt64,
	}
	if s.fsys == nil {
		s.fsys = osFS{}
	}
	if s.segmentBytes <= 0 {
		s.segmentBytes = defaultSegmentBytes
	}
	if s.cacheBytes <= 0 {
		s.cacheBytes = defaultCacheBytes
	}
	if s.bufferBytes <= 0 {
		s.bufferBytes = defaultBufferBytes
	}
	if s.mu == nil {
		s.mu = new(sync.Mutex)
	}
	if err := s.sync.check(op); err != nil {
		return nil, 0, err
	}
	if err := s.fsys.MkdirAll(s.dir, 0o755); err != nil {
		return nil, 0, fileStoreError(op, "create the directory", s.dir, -1, err)
	}
	if err := s.recover(cfg.base); err != nil {
		return nil, 0, err
	}
	next := s.active.base
	if s.active.records > 0 {
		next = max(next, s.active.last+1)
	}
	s.next, s.committed, s.published, s.diskEnd, s.cacheFrom = next, next, next, next, next
	s.wg.Go(s.run)
	return s, next, nil
}

// recover loads the segments of the directory, removing orphaned index
// files and segments that hold no records (but the last), and opens the
// files of the last segment for writing, creating the first one, named
// base, if there is none.
func (s *fileStore) recover(base uint64) error {
	const op = "Open"
	list, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return fileStoreError(op, "list", s.dir, -1, err)
	}
	var bases []uint64
	indexes := map[uint64]bool{}
	for _, de := range list {
		switch b, ext, ok := parseSegmentName(de.Name()); {
		case !ok:
		case ext == ".seg":
			bases = append(bases, b)
		default:
			indexes[b] = true
		}
	}
	for _, b := range bases {
		delete(indexes, b)
	}
	for b := range indexes {
		seg := newSegment(s.dir, b)
		if err := s.fsys.Remove(seg.indexPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fileStoreError(op, "remove the orphaned index", seg.indexPath, -1, err)
		}
	}
	if len(bases) == 0 {
		seg := newSegment(s.dir, base)
		data, index, _, err := s.createSegment(seg, op)
		if err != nil {
			return err
		}
		s.data, s.index, s.active, s.segs = data, index, seg, []*segment{seg}
		return nil
	}
	for i, b := range bases {
		seg := newSegment(s.dir, b)
		last := i == len(bases)-1
		data, index, err := recoverSegment(s.fsys, seg, last)
		if err != nil {
			return err
		}
		if last {
			s.data, s.index, s.active = data, index, seg
			s.segs = append(s.segs, seg)
			return nil
		}
		data.Close() // read, or truncated and fsynced
		index.Close()
		if seg.records == 0 {
			if err := s.removeSegment(seg); err != nil {
				return fileStoreError(op, "remove the empty segment", seg.path, -1, err)
			}
			continue
		}
		s.segs = append(s.segs, seg)
	}
	return nil
}

// fileStoreError is the error of a failed operation on a file of a file
// store: ErrInternalFailure wrapping the operating system's error, naming
// the file and, unless off is negative, the offset.
func fileStoreError(op, what, path string, off int64, err error) error {
	msg := fmt.Sprintf("could not %s %s", what, path)
	if off >= 0 {
		msg += fmt.Sprintf(" at offset %d", off)
	}
	return &Error{Op: op, Kind: ErrInternalFailure, Msg: msg, Err: err}
}

// corruptError is the error of a read that met data that fails its
// checksum: ErrInternalFailure and ErrCorrupt, naming the file and the
// offset.
func corruptError(op, path string, off int64, detail string) error {
	return &Error{Op: op, Kind: ErrInternalFailure, Err: ErrCorrupt, Msg: fmt.Sprintf("%s at offset %d: %s", path, off, detail)}
}

func (s *fileStore) append(counter uint64, arrivalMs int64, key string, data []byte) {
	if s.failed != nil || s.closed {
		return // commit fails the put
	}
	if s.fill.records == 0 {
		s.fill.first = counter
	}
	s.cache.append(counter, arrivalMs, key, data)
	s.fill.buf = appendRecord(s.fill.buf, counter, arrivalMs, key, data)
	s.fill.records++
	s.fill.newestMs = arrivalMs
	s.next = counter + 1
}

// commit publishes the put's records at once unless the policy waits for
// them to be durable (SyncAlways), or the buffer being filled is over its
// bound: the put then waits for the writer's next write (back-pressure),
// and its records are published once written. Records are published in
// order, so a put that comes after one that waits waits too: for its own
// write if the put it follows waits in the same buffer, or else for the
// write in flight, with which its records are published.
func (s *fileStore) commit() pendingWrite {
	switch {
	case s.failed != nil:
		return s.failed
	case s.closed:
		return failedWrite(errStoreClosed)
	case s.next == s.committed:
		return nil
	}
	behind := s.published < s.committed
	s.committed = s.next
	switch {
	case s.sync.waits() || s.fill.bytes() > s.bufferBytes || behind && (s.fill.held || s.flushing.wait == nil):
		s.fill.held = true
		if s.fill.wait == nil {
			s.fill.wait = &commitWait{done: make(chan struct{})}
		}
		if !s.fill.urged {
			s.fill.kicked, s.fill.urged = true, true
			signal(s.kick)
		}
		return s.fill.wait
	case !s.fill.kicked:
		s.fill.kicked = true
		signal(s.kick)
	}
	if behind { // what is unpublished before is in the write in flight, which waits
		s.behindEnd = s.next
		return s.flushing.wait
	}
	s.published = s.next
	return nil
}

func (s *fileStore) pending() bool { return s.published < s.next }

func (s *fileStore) readSpans(dst []span, from uint64, limit, maxBytes int) ([]span, uint64, int) {
	return s.cache.readSpansBelow(dst, from, s.published, limit, maxBytes)
}

// liveSegments returns the segments that hold retained records: all but
// the last one when it holds none or they have all expired (then it is
// the only one: trim removed the others).
func (s *fileStore) liveSegments() []*segment {
	segs := s.segs
	if n := len(segs); n > 0 && (segs[n-1].records == 0 || segs[n-1].newestMs < s.cutoffMs) {
		segs = segs[:n-1]
	}
	return segs
}

// segmentFrom returns the first live segment holding a record with a
// counter ≥ from, or nil.
func (s *fileStore) segmentFrom(from uint64) *segment {
	segs := s.liveSegments()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].last >= from })
	if i == len(segs) {
		return nil
	}
	return segs[i]
}

func (s *fileStore) cold(from uint64) coldReader {
	if from >= s.cacheFrom {
		return nil
	}
	if seg := s.segmentFrom(from); seg != nil {
		return s.reader(seg, from)
	}
	return nil // nothing on disk from there on: the cache holds the rest
}

// reader returns a cold reader of seg from counter from, which sees the
// records seg holds now.
func (s *fileStore) reader(seg *segment, from uint64) *segmentCold {
	return &segmentCold{fsys: s.fsys, windows: s.windows, path: seg.path, entries: seg.entries[:len(seg.entries):len(seg.entries)], segTotals: seg.segTotals, from: from}
}

func (s *fileStore) seekTime(tsMs int64, next uint64) (uint64, coldReader) {
	// The cache holds the newest records: if its oldest arrived before
	// tsMs, every record on disk did.
	if n, _ := s.cache.size(); n > 0 {
		if oldest, _ := s.cache.oldestNewest(); oldest < tsMs {
			return s.cache.seekTimeMem(tsMs, next), nil
		}
	}
	segs := s.liveSegments()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].newestMs >= tsMs })
	if i == len(segs) {
		return s.cache.seekTimeMem(tsMs, next), nil
	}
	seg := segs[i]
	j := sort.Search(len(seg.entries), func(j int) bool { return seg.entries[j].arrivalMs >= tsMs })
	if j == 0 && seg.entries[0].offset() == fileHeaderLen {
		return seg.entries[0].counter, nil // the previous segment's records all arrived before
	}
	from := seg.base
	if j > 0 {
		from = seg.entries[j-1].counter
	}
	return from, s.reader(seg, from)
}

func (s *fileStore) arrivalAt(from uint64) (int64, bool) {
	if from < s.cacheFrom {
		if seg := s.segmentFrom(from); seg != nil {
			return seg.entries[max(entryAt(seg.entries, from), 0)].arrivalMs, true
		}
	}
	return s.cache.arrivalAt(from)
}

// trim drops the cache's expired records and the segments whose records
// have all expired but the one being written, which the writer replaces
// (see cycle); the writer removes the files.
func (s *fileStore) trim(cutoffMs int64) {
	s.cache.trim(cutoffMs)
	if cutoffMs <= s.cutoffMs {
		return
	}
	s.cutoffMs = cutoffMs
	n := 0
	for n < len(s.segs)-1 && s.segs[n].newestMs < cutoffMs {
		n++
	}
	if n > 0 {
		s.doomed = append(s.doomed, s.segs[:n]...)
		s.segs = append(s.segs[:0:0], s.segs[n:]...)
	}
	if n > 0 || s.active.records > 0 && s.active.newestMs < cutoffMs {
		signal(s.kick)
	}
}

// expiredBefore returns the index of seg's first entry whose record
// arrived at or after the cutoff: the records before the entry before it
// have expired.
func (s *fileStore) expiredBefore(seg *segment) int {
	return sort.Search(len(seg.entries), func(j int) bool { return seg.entries[j].arrivalMs >= s.cutoffMs })
}

// first returns, for records on disk, a lower bound: the counter after
// the last index entry of an expired record.
func (s *fileStore) first() (uint64, bool) {
	segs := s.liveSegments()
	if len(segs) == 0 {
		return s.cache.first()
	}
	seg := segs[0]
	if j := s.expiredBefore(seg); j > 0 {
		return seg.entries[j-1].counter + 1, true
	}
	if seg.entries[0].offset() == fileHeaderLen {
		return seg.entries[0].counter, true
	}
	return seg.base, true
}

// size counts the records on disk and those not yet written. Records
// expired after the last index entry of an expired record in the oldest
// segment still count, and so do those of a buffer not yet written while
// its newest record has not expired.
func (s *fileStore) size() (records, bytes int64) {
	for i, seg := range s.liveSegments() {
		records += seg.records
		bytes += seg.bytes()
		if i > 0 {
			continue
		}
		if j := s.expiredBefore(seg); j > 0 {
			records -= int64(seg.entries[j-1].records)
			bytes -= seg.entries[j-1].bytes()
		}
	}
	for _, b := range []*batch{&s.fill, &s.flushing} {
		if b.records > 0 && b.newestMs >= s.cutoffMs {
			records += b.records
			bytes += b.bytes()
		}
	}
	return records, bytes
}

func (s *fileStore) memory() int64 {
	m := s.cache.memory() + int64(cap(s.fill.buf)+cap(s.spare)+s.flushingCap+len(s.windows)*windowSize)
	for _, seg := range s.segs {
		m += int64(cap(seg.entries)) * int64(unsafe.Sizeof(indexEntry{}))
	}
	return m
}

func (s *fileStore) disk() int64 {
	var n int64
	for _, segs := range [][]*segment{s.segs, s.doomed} {
		for _, seg := range segs {
			n += seg.size + seg.indexSize
		}
	}
	return n
}

// oldestNewest gives as the oldest arrival of records on disk the cutoff
// when some have expired: a lower bound.
func (s *fileStore) oldestNewest() (int64, int64) {
	var oldest, newest int64
	have := false
	if segs := s.liveSegments(); len(segs) > 0 {
		oldest, have = segs[0].entries[0].arrivalMs, true
		if s.expiredBefore(segs[0]) > 0 {
			oldest = s.cutoffMs
		}
		newest = segs[len(segs)-1].newestMs
	}
	if n, _ := s.cache.size(); n > 0 {
		lo, hi := s.cache.oldestNewest()
		if !have {
			oldest = lo
		}
		newest = max(newest, hi)
	}
	return oldest, newest
}

// close stops the writer, which writes and fsyncs what is pending first,
// and returns the store's first error: the failure that closed it, or
// one of the final write, fsync or close.
func (s *fileStore) close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// run is the writer: it waits for records (under SyncInterval, until an
// interval has passed since its last write, unless the buffer is over its
// bound), writes them (cycle), and on close writes what remains, fsyncs
// and closes the files.
func (s *fileStore) run() {
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.finish()
			return
		}
		if s.sync.mode == syncInterval && !s.awaitInterval() {
			s.finish()
			return
		}
		s.cycle()
	}
}

// awaitInterval waits until an interval has passed since the writer last
// took records, or until a put is held (the buffer passed its bound); it
// does not wait when there are no records (the kick was trim's). It
// returns false if the store is closing.
func (s *fileStore) awaitInterval() bool {
	due := s.lastTake.Add(s.sync.interval)
	for {
		s.mu.Lock()
		now := s.fill.records == 0 || s.fill.urged
		s.mu.Unlock()
		wait := time.Until(due)
		if now || wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			return true
		case <-s.kick:
			t.Stop()
		case <-s.stop:
			t.Stop()
			return false
		}
	}
}

// finish is the writer's last work, on close: it writes what is pending,
// fsyncs the files of the segment being written (and the directory, if
// SyncOS left it unsynced), and closes them.
func (s *fileStore) finish() {
	const op = "Close"
	var errs []error
	if err := s.cycle(); err != nil {
		errs = append(errs, err)
	}
	if err := s.data.Sync(); err != nil {
		errs = append(errs, fileStoreError(op, "fsync", s.active.path, -1, err))
	}
	if err := s.index.Sync(); err != nil {
		errs = append(errs, fileStoreError(op, "fsync", s.active.indexPath, -1, err))
	}
	s.mu.Lock()
	doomed := len(s.doomed)
	s.mu.Unlock()
	if s.dirDirty {
		if err := s.fsys.SyncDir(s.dir); err != nil {
			errs = append(errs, fileStoreError(op, "fsync the directory", s.dir, -1, err))
		}
	}
	if err := s.closeFiles(); err != nil {
		errs = append(errs, err)
	}
	if doomed > 0 && s.removeErr != nil {
		errs = append(errs, s.removeErr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		s.closeErr = s.failed.err
	} else if len(errs) > 0 {
		s.closeErr = errs[0]
	}
}

// closeFiles closes the files of the segment being written.
func (s *fileStore) closeFiles() error {
	var err error
	for _, f := range []file{s.data, s.index} {
		if f != nil {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fileStoreError("Close", "close", s.active.path, -1, cerr)
			}
		}
	}
	s.data, s.index = nil, nil
	return err
}

// cycle is one round of the writer: it takes the records appended since
// the last (group commit), writes them to the segment being written,
// after starting a new one (roll) if that one is past its size or has
// expired whole, fsyncs them unless the policy is SyncOS, publishes them
// and lets their writers go (settle); and it removes the files of expired
// segments. It returns the error of the write, if one failed.
func (s *fileStore) cycle() error {
	s.mu.Lock()
	b := s.fill
	b.end = s.next
	s.fill = batch{buf: s.spare[:0]}
	s.spare = nil
	s.flushing, s.flushingCap = batch{records: b.records, newestMs: b.newestMs, buf: b.buf[:len(b.buf):len(b.buf)], wait: b.wait}, cap(b.buf)
	act := s.active
	expired := act.records > 0 && act.newestMs < s.cutoffMs
	failed := s.failed != nil // then there is nothing to write, and no file to touch
	s.mu.Unlock()
	if failed {
		s.settle(&b, written{}, false, nil)
		return nil
	}

	if b.records > 0 {
		s.lastTake = time.Now()
	}
	var err error
	fatal := false
	full := act.size >= s.segmentBytes || act.size+int64(len(b.buf)) > maxSegmentSize || act.records+b.records > math.MaxUint32
	if act.records > 0 && (b.records > 0 && full || expired) {
		base := b.end
		if b.records > 0 {
			base = b.first
		}
		fatal, err = s.roll(base, expired)
	}
	var w written
	if err == nil && b.records > 0 {
		w, fatal, err = s.write(b.buf)
	}
	s.settle(&b, w, fatal, err)
	s.removeDoomed()
	return err
}

// written is what a write added to the segment being written.
type written struct {
	totals    segTotals
	entries   []indexEntry
	indexSize int64
}

// write appends the records of buf to the segment being written, then
// their index entries, then fsyncs the records unless the policy is
// SyncOS (the index is fsynced when the segment is sealed, and on close:
// recovery scans what it lacks). A failed write is undone: both files are
// truncated back. fatal reports that the store must fail closed: an fsync
// failed (the file's state is unknown) or the truncation did.
func (s *fileStore) write(buf []byte) (w written, fatal bool, err error) {
	const op = "write"
	act := s.active
	if act.size+int64(len(buf)) > maxSegmentSize {
		return written{}, false, &Error{Op: op, Kind: ErrInternalFailure,
			Msg: fmt.Sprintf("a write of %d bytes does not fit in segment file %s, which holds at most %d", len(buf), act.path, int64(maxSegmentSize))}
	}
	var totals segTotals
	totals, s.scratch = layoutBatch(buf, act.segTotals, act.lastEntryOffset(), s.scratch[:0])
	s.encoded = s.encoded[:0]
	for _, e := range s.scratch {
		s.encoded = appendIndexEntry(s.encoded, entryRecord, e)
	}
	if _, err := s.data.WriteAt(buf, act.size); err != nil {
		fatal, err := s.undo(fileStoreError(op, "write", act.path, act.size, err))
		return written{}, fatal, err
	}
	if _, err := s.index.WriteAt(s.encoded, act.indexSize); err != nil {
		fatal, err := s.undo(fileStoreError(op, "write", act.indexPath, act.indexSize, err))
		return written{}, fatal, err
	}
	if s.sync.mode != syncOS {
		if err := s.data.Sync(); err != nil {
			s.data.Truncate(act.size) // the best we can do: the records must not come back
			return written{}, true, fileStoreError(op, "fsync", act.path, -1, err)
		}
	}
	return written{totals: totals, entries: s.scratch, indexSize: act.indexSize + int64(len(s.encoded))}, false, nil
}

// undo truncates the files of the segment being written back to what
// they held before a failed write, and returns the write's error, and
// whether the store must fail closed because a truncation failed too.
func (s *fileStore) undo(err error) (fatal bool, _ error) {
	act := s.active
	if terr := s.data.Truncate(act.size); terr != nil {
		return true, fileStoreError("write", "truncate after a failed write", act.path, act.size, terr)
	}
	if terr := s.index.Truncate(act.indexSize); terr != nil {
		return true, fileStoreError("write", "truncate after a failed write", act.indexPath, act.indexSize, terr)
	}
	return false, err
}

// settle ends a cycle under the lock. After a write it adds what was
// written to the segment, publishes the batch (b.end) and lets the cache
// go of records on disk past its budget. After a failure nothing of the
// batch or of the puts that came since is published: their records leave
// the cache and their writers get the error; and the store fails closed
// if the failure was fatal or the policy acknowledges puts before they are
// written (then records acknowledged already are lost, and later puts
// must not be acknowledged).
func (s *fileStore) settle(b *batch, w written, fatal bool, err error) {
	var fillWait *commitWait
	s.mu.Lock()
	switch {
	case err == nil && b.records > 0:
		act := s.active
		act.entries = append(act.entries, w.entries...)
		act.segTotals, act.indexSize = w.totals, w.indexSize
		s.diskEnd = b.end
		if end := max(b.end, s.behindEnd); s.published < end {
			s.published = end
			if s.onPublish != nil {
				s.onPublish()
			}
		}
		if after := s.cache.shrinkBelow(s.diskEnd, s.cacheBytes); after > s.cacheFrom {
			s.cacheFrom = after
		}
	case err != nil:
		s.cache.truncateFrom(s.published)
		fillWait = s.fill.wait
		s.fill = batch{buf: s.fill.buf[:0]}
		s.published, s.committed = s.next, s.next
		if fatal || s.sync.mode != syncAlways {
			s.failed = failedWrite(err)
		}
	}
	s.flushing, s.flushingCap = batch{}, 0
	if cap(b.buf) <= 2*int(s.bufferBytes) {
		s.spare = b.buf[:0]
	}
	s.mu.Unlock()
	b.wait.release(err)
	fillWait.release(err)
}

// roll makes a new segment named base the one being written: it creates
// its files, seals the old one and switches to the new. An expired old
// segment leaves the list for the writer to remove its files. On failure
// the old segment stays the one being written, and fatal says whether
// the store must fail closed.
func (s *fileStore) roll(base uint64, expired bool) (fatal bool, err error) {
	const op = "write"
	old, seg := s.active, newSegment(s.dir, base)
	data, index, fatal, err := s.createSegment(seg, op)
	if err != nil {
		return fatal, err
	}
	if fatal, err := s.seal(old); err != nil {
		data.Close()
		index.Close()
		s.removeSegment(seg) // the error to report is the seal's
		return fatal, err
	}
	s.data.Close() // written and fsynced, unless the policy is SyncOS
	s.index.Close()
	s.data, s.index = data, index
	s.mu.Lock()
	defer s.mu.Unlock()
	old.sealed = true
	old.indexSize += indexEntryLen
	s.active = seg
	s.segs = append(s.segs, seg)
	if expired { // trim leaves the segment being written in the list
		s.segs = append(s.segs[:len(s.segs)-2], seg)
		s.doomed = append(s.doomed, old)
	}
	return false, nil
}

// createSegment creates seg's files with their headers and fsyncs them
// and the directory unless the policy is SyncOS. A failure to create or
// write them removes them again and leaves the store usable; a failed
// fsync is fatal.
func (s *fileStore) createSegment(seg *segment, op string) (data, index file, fatal bool, err error) {
	var files [2]file
	closeAll := func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	for i, f := range []struct{ path, magic string }{{seg.path, segmentMagic}, {seg.indexPath, indexMagic}} {
		fl, err := s.fsys.OpenFile(f.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			files[i] = fl
			_, err = fl.WriteAt([]byte(f.magic), 0)
		}
		if err != nil {
			closeAll()
			s.removeSegment(seg) // the error to report is the creation's
			return nil, nil, false, fileStoreError(op, "create", f.path, -1, err)
		}
	}
	if s.sync.mode == syncOS {
		s.dirDirty = true
		return files[0], files[1], false, nil
	}
	for i, path := range []string{seg.path, seg.indexPath} {
		if err := files[i].Sync(); err != nil {
			closeAll()
			return nil, nil, true, fileStoreError(op, "fsync", path, -1, err)
		}
	}
	if err := s.fsys.SyncDir(s.dir); err != nil {
		closeAll()
		return nil, nil, true, fileStoreError(op, "fsync the directory", s.dir, -1, err)
	}
	return files[0], files[1], false, nil
}

// seal appends seg's seal to its index (the writer's index file) and
// fsyncs the index unless the policy is SyncOS. A failed write is undone.
func (s *fileStore) seal(seg *segment) (fatal bool, err error) {
	const op = "write"
	s.encoded = appendIndexEntry(s.encoded[:0], entrySeal, seg.sealEntry())
	if _, err := s.index.WriteAt(s.encoded, seg.indexSize); err != nil {
		if terr := s.index.Truncate(seg.indexSize); terr != nil {
			return true, fileStoreError(op, "truncate after a failed write", seg.indexPath, seg.indexSize, terr)
		}
		return false, fileStoreError(op, "write", seg.indexPath, seg.indexSize, err)
	}
	if s.sync.mode != syncOS {
		if err := s.index.Sync(); err != nil {
			return true, fileStoreError(op, "fsync", seg.indexPath, -1, err)
		}
	}
	return false, nil
}

// removeSegment removes seg's files, the segment first: an index without
// its segment is removed by the next open.
func (s *fileStore) removeSegment(seg *segment) error {
	for _, path := range []string{seg.path, seg.indexPath} {
		if err := s.fsys.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// removeDoomed removes the files of expired segments, oldest first, until
// one fails (it is tried again by the next cycle).
func (s *fileStore) removeDoomed() {
	s.mu.Lock()
	doomed := s.doomed[:len(s.doomed):len(s.doomed)]
	s.mu.Unlock()
	n := 0
	for _, seg := range doomed {
		if err := s.removeSegment(seg); err != nil {
			s.removeErr = fileStoreError("write", "remove the expired segment", seg.path, -1, err)
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	s.dirDirty = s.sync.mode == syncOS
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doomed = s.doomed[n:] // trim only appends
}

// segmentCold is a coldReader of one segment, which sees the records the
// segment held when the store made it. It opens the segment file by path
// for each call (no handle is shared with the writer), so a segment
// removed meanwhile reads as trimmed: no records.
type segmentCold struct {
	fsys    fileSystem
	windows windowPool
	path    string
	entries []indexEntry
	segTotals
	from uint64
}

// open returns a reader of the segment file, or nil if it was removed.
func (c *segmentCold) open(op string) (*segmentReader, error) {
	f, err := c.fsys.OpenFile(c.path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fileStoreError(op, "open", c.path, -1, err)
	}
	return newSegmentReader(f, c.size, c.windows), nil
}

// close releases a reader that open returned.
func (c *segmentCold) close(r *segmentReader) {
	r.f.Close() // read only
	r.release()
}

// start returns the offset to read from to reach counter from: that of
// the index entry at or before it.
func (c *segmentCold) start(from uint64) int64 {
	if i := entryAt(c.entries, from); i >= 0 {
		return c.entries[i].offset()
	}
	return fileHeaderLen
}

// extent returns where a read of at most limit records and maxBytes from
// the record at off ends at the latest, by the index, and the bytes of
// partition keys and data from the index entry at or before off to there.
func (c *segmentCold) extent(off int64, limit, maxBytes int) (int64, int64) {
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].offset() > off }) - 1
	var startBytes int64
	if i >= 0 {
		startBytes = c.entries[i].bytes()
	}
	if i+1 >= len(c.entries) {
		return c.size, c.bytes() - startBytes
	}
	f := c.entries[i+1] // the records from here on fill the read
	rest := c.entries[i+1:]
	m := sort.Search(len(rest), func(k int) bool {
		e := rest[k]
		return int64(e.records-f.records) >= int64(limit) || e.bytes()-f.bytes() >= int64(maxBytes)
	})
	if m == len(rest) {
		return c.size, c.bytes() - startBytes
	}
	return rest[m].offset(), rest[m].bytes() - startBytes
}

func (c *segmentCold) read(dst []Record, shard uint64, limit, maxBytes int, minArrivalMs int64) ([]Record, uint64, int, error) {
	const op = "read"
	r, err := c.open(op)
	if r == nil {
		if err != nil {
			return dst, c.from, 0, err
		}
		return dst, max(c.from, c.last+1), 0, nil
	}
	defer c.close(r)
	r.off = c.start(c.from)
	r.want, _ = c.extent(r.off, limit, maxBytes)
	next, prev := c.from, uint64(0)
	taken, bytes := 0, 0
	var arena []byte
	for {
		at := r.off
		h, kd, err := r.next()
		switch {
		case err == io.EOF:
			return dst, max(next, c.last+1), bytes, nil
		case err == errBadRecord:
			err = c.resync(op, r, prev, func(after recordHeader) bool {
				return after.counter <= c.from || after.arrivalMs < minArrivalMs
			})
			if err != nil {
				return dst, next, bytes, err
			}
			continue
		case err != nil:
			return dst, next, bytes, fileStoreError(op, "read", c.path, r.off, err)
		}
		prev = h.counter
		if h.counter < c.from {
			continue
		}
		if h.arrivalMs < minArrivalMs {
			next = h.counter + 1
			continue
		}
		n := len(kd)
		if taken == limit || taken > 0 && bytes+n > maxBytes {
			return dst, next, bytes, nil
		}
		if cap(arena)-len(arena) < n {
			_, size := c.extent(at, limit-taken, maxBytes-bytes)
			arena = make([]byte, 0, max(min(size, int64(maxBytes-bytes)), int64(n)))
		}
		p := len(arena)
		arena = append(arena, kd...)
		key := arena[p : p+h.keyLen]
		dst = append(dst, Record{
			SequenceNumber:              SequenceNumber{counter: h.counter, shard: shard},
			PartitionKey:                unsafe.String(unsafe.SliceData(key), len(key)),
			Data:                        arena[p+h.keyLen : len(arena) : len(arena)],
			ApproximateArrivalTimestamp: msTime(h.arrivalMs),
		})
		taken++
		bytes += n
		next = h.counter + 1
	}
}

func (c *segmentCold) seek(tsMs int64) (uint64, error) {
	const op = "seek"
	r, err := c.open(op)
	if r == nil {
		if err != nil {
			return c.from, err
		}
		return max(c.from, c.last+1), nil
	}
	defer c.close(r)
	r.off = c.start(c.from)
	r.want = r.off + indexInterval + recordHeaderLen
	prev := uint64(0)
	for {
		h, _, err := r.next()
		switch {
		case err == io.EOF:
			return max(c.from, c.last+1), nil
		case err == errBadRecord:
			err = c.resync(op, r, prev, func(after recordHeader) bool {
				return after.counter <= c.from || after.arrivalMs < tsMs
			})
			if err != nil {
				return c.from, err
			}
			continue
		case err != nil:
			return c.from, fileStoreError(op, "read", c.path, r.off, err)
		}
		prev = h.counter
		if h.counter >= c.from && h.arrivalMs >= tsMs {
			return h.counter, nil
		}
	}
}

// resync moves r past the bad record at r.off if the valid record after
// it shows that the reader would skip the bad one too (skip): the record
// at the offset its declared length gives, if that one is valid, or else
// the record of the next index entry. Otherwise it returns an error
// wrapping ErrCorrupt that names the file, the offset and the records
// around the bad one.
func (c *segmentCold) resync(op string, r *segmentReader, prev uint64, skip func(after recordHeader) bool) error {
	bad, why, badLen := r.off, r.bad, r.badLen
	after, afterOff := recordHeader{}, int64(-1)
	if badLen > 0 {
		h, ok, err := r.validAt(bad + badLen)
		if err != nil {
			return fileStoreError(op, "read", c.path, bad+badLen, err)
		}
		if ok {
			after, afterOff = h, bad+badLen
		}
	}
	if afterOff < 0 {
		if k := sort.Search(len(c.entries), func(k int) bool { return c.entries[k].offset() > bad }); k < len(c.entries) {
			e := c.entries[k]
			after, afterOff = recordHeader{counter: e.counter, arrivalMs: e.arrivalMs}, e.offset()
		}
	}
	if afterOff >= 0 && skip(after) {
		r.off = afterOff
		return nil
	}
	detail := "the record there is bad: " + why.Error()
	if prev > 0 || bad > c.start(0) {
		detail += fmt.Sprintf("; it follows the record of counter %d", prev)
	}
	if afterOff >= 0 {
		detail += fmt.Sprintf("; the next readable record is that of counter %d, at offset %d", after.counter, afterOff)
	} else {
		detail += "; no readable record follows it in the segment"
	}
	return corruptError(op, c.path, bad, detail)
}
