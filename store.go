package runnel

import (
	"context"
	"math"
	"sort"
	"unsafe"

	"github.com/google/btree"
)

// store is the record storage of one shard: the in-memory store, or the
// file store of a durable cluster (filestore.go). The shard assigns
// sequence counters and arrival times and calls a store with its own lock
// held, except where a method says otherwise; a store needs no lock of its
// own for what it does under the shard's. Counters passed to append
// strictly increase; arrival times never decrease. No method called under
// the lock does file I/O: a store that keeps records on disk hands the
// slow work to a coldReader, which the shard calls after releasing its
// lock, and to its own background writer.
type store interface {
	// append stages one record of a put. The store copies key and data.
	append(counter uint64, arrivalMs int64, key string, data []byte)
	// commit ends the appends of one put. It returns nil if the records
	// are readable and as durable as the store promises already, and
	// otherwise the handle the writer waits on once the lock is released:
	// until then the records are not readable.
	commit() pendingWrite
	// pending reports whether some appended records are not readable yet
	// (they wait to be made durable).
	pending() bool
	// readSpans appends to dst the spans of the readable records held in
	// memory whose counter is ≥ from, in order, and stops after limit
	// records or once maxBytes of data and keys are reached (always giving
	// at least one record when one exists). It returns the counter to
	// continue from and the bytes found. appendSpans turns the spans into
	// records, which alias the store's memory and must not be modified; it
	// may run after the shard's lock is released. A position before the
	// records in memory is cold's to read.
	readSpans(dst []span, from uint64, limit, maxBytes int) ([]span, uint64, int)
	// cold returns a reader of the records from counter from on, when they
	// start before the records the store holds in memory; nil otherwise.
	cold(from uint64) coldReader
	// seekTime returns the counter of the first record that arrived at or
	// after tsMs, or next (the counter after the newest record) if none
	// did. When that record may lie on disk, it returns a lower bound and
	// a coldReader from that bound, whose seek finds the exact counter.
	seekTime(tsMs int64, next uint64) (uint64, coldReader)
	// arrivalAt returns the arrival time of the first record with a counter
	// ≥ from (readable or not), and whether there is one. For a record on
	// disk it may return an earlier time: that of an index entry before it.
	arrivalAt(from uint64) (int64, bool)
	// trim forgets every record that arrived before cutoffMs and releases
	// its memory (and its disk) as soon as its whole chunk (segment) has
	// expired.
	trim(cutoffMs int64)
	// first returns the counter of the oldest retained record, or false if
	// the store holds none. A file store may return a lower bound: its cold
	// readers skip the records that arrived before the cutoff.
	first() (uint64, bool)
	// size returns the number of retained records and their bytes (data +
	// partition keys).
	size() (records, bytes int64)
	// memory returns the bytes of memory the store holds for its records.
	memory() int64
	// disk returns the bytes of the store's files.
	disk() int64
	// oldestNewest returns the arrival times of the oldest and newest
	// retained records (0, 0 when empty).
	oldestNewest() (int64, int64)
	// close makes every accepted record durable, stops the store's
	// background work and releases its files. It is called once, without
	// the shard's lock; the store is not used after.
	close() error
}

// pendingWrite is a writer's handle on the records of one put that a store
// accepted but has not yet made durable.
type pendingWrite interface {
	// wait blocks until the records are durable and readable, and returns
	// nil, or until the store failed to write them, and returns an *Error
	// (Kind ErrInternalFailure) naming the file: the records were not
	// stored and will never be readable. If ctx ends first it returns
	// ctx's error: the records may still be stored, as after a timeout of
	// Kinesis. Called without the shard's lock.
	wait(ctx context.Context) error
}

// coldReader reads records that a store holds on disk only, without the
// shard's lock. A store returns one, under the lock, for a position before
// the records it holds in memory. Records are copied out of the files, so
// those a coldReader returns are the caller's.
type coldReader interface {
	// read appends to dst the records from the reader's position on whose
	// arrival is ≥ minArrivalMs, in order, up to limit records or once
	// maxBytes of data and keys are reached (at least one record when one
	// exists). It returns the counter to continue from (after the last
	// record read or skipped) and the bytes of the records returned. A
	// record that fails its checksum ends the read with an *Error wrapping
	// ErrCorrupt that names the file, the offset and the counters around
	// it; the records before it are returned with the error. Records that
	// were trimmed meanwhile are not an error: read returns none of them.
	read(dst []Record, shard uint64, limit, maxBytes int, minArrivalMs int64) ([]Record, uint64, int, error)
	// seek returns the counter of the first record from the reader's
	// position on that arrived at or after tsMs, or the counter after the
	// last record on disk if none did.
	seek(tsMs int64) (uint64, error)
}

// chunkRecords is the most records one chunk holds; chunkBytes the size of a
// chunk's arena unless a single record needs more. Whole chunks are released
// when their last record expires, so these bound how long expired bytes can
// linger.
const (
	chunkRecords  = 1024
	chunkMinBytes = 4 << 10
	chunkMaxBytes = 1 << 20
)

// recordMeta is what a chunk keeps per record beyond its bytes: 24 bytes.
type recordMeta struct {
	arrivalMs int64
	off       uint32 // offset of the key in the arena; data follows the key
	dataLen   uint32
	keyLen    uint16
}

// chunk is an append-only run of records with consecutive counters, whose
// keys and data share one arena allocation.
type chunk struct {
	firstCounter uint64 // counter of metas[0]
	start        int    // metas[:start] have expired
	metas        []recordMeta
	arena        []byte
}

func (c *chunk) lastCounter() uint64 { return c.firstCounter + uint64(len(c.metas)) - 1 }

// footprint is the memory a chunk holds.
func (c *chunk) footprint() int64 {
	return int64(cap(c.arena)) + int64(cap(c.metas))*int64(unsafe.Sizeof(recordMeta{}))
}

func chunkLess(a, b *chunk) bool { return a.firstCounter < b.firstCounter }

// memStore is the default store: chunks indexed by their first counter in a
// B-tree. One allocation serves many records, the GC scans no per-record
// pointers, and reads return slices of the arena without copying.
type memStore struct {
	chunks    *btree.BTreeG[*chunk]
	tail      *chunk // the chunk being appended to, also in chunks
	records   int64
	bytes     int64
	allocated int64 // bytes of arenas and metadata arrays held

	// probe is the pivot of B-tree searches by counter, reused so that
	// lookups allocate nothing: a pivot passed to the B-tree escapes through
	// its less function. The store is only called with its shard's lock
	// held, so one probe suffices.
	probe chunk
}

func newMemStore() *memStore {
	return &memStore{chunks: btree.NewG(16, chunkLess)}
}

func (m *memStore) append(counter uint64, arrivalMs int64, key string, data []byte) {
	n := len(key) + len(data)
	c := m.tail
	if c == nil || len(c.metas) == cap(c.metas) || cap(c.arena)-len(c.arena) < n ||
		c.lastCounter()+1 != counter {
		c = m.newChunk(counter, n, c != nil && c.lastCounter()+1 != counter)
	}
	off := len(c.arena)
	c.arena = append(c.arena, key...)
	c.arena = append(c.arena, data...)
	c.metas = append(c.metas, recordMeta{arrivalMs: arrivalMs, off: uint32(off), dataLen: uint32(len(data)), keyLen: uint16(len(key))})
	m.records++
	m.bytes += int64(n)
}

// newChunk starts a chunk for counter. Its arena is sized from the previous
// chunk's average record so that small and large records alike waste little;
// after a gap in the counters (idle subscriptions leave them on slow
// shards), from the bytes the previous chunk held, so that a shard whose
// chunks close after a few records does not hold a full arena for each.
func (m *memStore) newChunk(counter uint64, need int, gap bool) *chunk {
	size := chunkMinBytes
	if t := m.tail; t != nil && len(t.metas) > 0 {
		size = len(t.arena) / len(t.metas) * chunkRecords
		if gap {
			size = 2 * len(t.arena)
		}
	}
	size = min(max(size, chunkMinBytes), chunkMaxBytes)
	size = max(size, need)
	c := &chunk{firstCounter: counter, metas: make([]recordMeta, 0, chunkRecords), arena: make([]byte, 0, size)}
	if t := m.tail; t != nil && len(t.metas) < cap(t.metas)/2 {
		// A chunk closed early (large records or a sequence gap) gives back
		// most of its metadata array and its arena's unused room. Readers
		// holding the old slices keep them until they are done.
		m.allocated -= t.footprint()
		t.metas = append(make([]recordMeta, 0, len(t.metas)), t.metas...)
		if len(t.arena) < cap(t.arena)/2 {
			t.arena = append(make([]byte, 0, len(t.arena)), t.arena...)
		}
		m.allocated += t.footprint()
	}
	m.allocated += c.footprint()
	m.chunks.ReplaceOrInsert(c)
	m.tail = c
	return c
}

// pivot returns the probe set to counter, for searches in the B-tree.
func (m *memStore) pivot(counter uint64) *chunk {
	m.probe.firstCounter = counter
	return &m.probe
}

// find returns the first chunk holding a counter ≥ from.
func (m *memStore) find(from uint64) *chunk {
	var found *chunk
	m.chunks.DescendLessOrEqual(m.pivot(from), func(c *chunk) bool {
		if c.lastCounter() >= from {
			found = c
		}
		return false
	})
	if found == nil {
		m.chunks.AscendGreaterOrEqual(m.pivot(from), func(c *chunk) bool {
			found = c
			return false
		})
	}
	return found
}

func (m *memStore) commit() pendingWrite { return nil }

func (m *memStore) pending() bool { return false }

func (m *memStore) cold(uint64) coldReader { return nil }

func (m *memStore) disk() int64 { return 0 }

func (m *memStore) close() error { return nil }

func (m *memStore) readSpans(dst []span, from uint64, limit, maxBytes int) ([]span, uint64, int) {
	return m.readSpansBelow(dst, from, math.MaxUint64, limit, maxBytes)
}

// readSpansBelow is readSpans of the records whose counter is below end: a
// file store's readable records are those below its published counter.
func (m *memStore) readSpansBelow(dst []span, from, end uint64, limit, maxBytes int) ([]span, uint64, int) {
	c := m.find(from)
	if c == nil {
		return dst, from, 0
	}
	next := from
	taken, bytes := 0, 0
	m.chunks.AscendGreaterOrEqual(c, func(c *chunk) bool {
		i := c.start
		if from > c.firstCounter {
			i = max(i, int(from-c.firstCounter))
		}
		j := i
		for ; j < len(c.metas) && c.firstCounter+uint64(j) < end; j++ {
			md := &c.metas[j]
			size := int(md.keyLen) + int(md.dataLen)
			if taken == limit || (taken > 0 && bytes+size > maxBytes) {
				break
			}
			taken++
			bytes += size
		}
		if j > i {
			dst = append(dst, span{first: c.firstCounter + uint64(i), metas: c.metas[i:j:j], arena: c.arena})
			next = c.firstCounter + uint64(j)
		}
		return j == len(c.metas)
	})
	return dst, next, bytes
}

// dropBefore releases the chunks whose records all have counters below
// counter: a file store's cache lets go of records that are on disk.
func (m *memStore) dropBefore(counter uint64) {
	for {
		c, ok := m.chunks.Min()
		if !ok || c.lastCounter() >= counter {
			return
		}
		m.dropOldest(c)
	}
}

// dropOldest releases c, the oldest chunk, and uncounts its records from
// c.start on.
func (m *memStore) dropOldest(c *chunk) {
	for _, md := range c.metas[c.start:] {
		m.bytes -= int64(md.keyLen) + int64(md.dataLen)
	}
	m.records -= int64(len(c.metas) - c.start)
	m.chunks.DeleteMin()
	m.allocated -= c.footprint()
	if m.tail == c {
		m.tail = nil
	}
}

// truncateFrom forgets the records whose counter is ≥ counter: a file
// store's cache drops the records of a put that failed to reach the disk.
// No reader holds them, since they were never readable, so their room in
// a chunk's arena can be reused.
func (m *memStore) truncateFrom(counter uint64) {
	for {
		c, ok := m.chunks.Max()
		if !ok || c.lastCounter() < counter {
			return
		}
		i := c.start
		if counter > c.firstCounter {
			i = max(i, int(counter-c.firstCounter))
		}
		for _, md := range c.metas[i:] {
			m.bytes -= int64(md.keyLen) + int64(md.dataLen)
		}
		m.records -= int64(len(c.metas) - i)
		if i > c.start {
			c.arena = c.arena[:c.metas[i].off]
			c.metas = c.metas[:i]
			return
		}
		m.chunks.DeleteMax()
		m.allocated -= c.footprint()
		if m.tail == c {
			m.tail = nil
		}
	}
}

// span is a run of consecutive records of one chunk, as readSpans finds
// them under the shard's lock. A chunk never changes the records it holds
// (appends go past them; compaction and trimming replace or drop its
// slices), so appendSpans may turn spans into Records after the lock is
// released, and readers of one shard can do that work in parallel.
type span struct {
	first uint64 // counter of metas[0]
	metas []recordMeta
	arena []byte
}

// appendSpans appends the records of spans to dst.
func appendSpans(dst []Record, shard uint64, spans []span) []Record {
	for _, sp := range spans {
		for i := range sp.metas {
			md := &sp.metas[i]
			end := md.off + uint32(md.keyLen) + md.dataLen
			key := sp.arena[md.off : md.off+uint32(md.keyLen)]
			dst = append(dst, Record{
				SequenceNumber:              SequenceNumber{counter: sp.first + uint64(i), shard: shard},
				PartitionKey:                unsafe.String(unsafe.SliceData(key), len(key)),
				Data:                        sp.arena[md.off+uint32(md.keyLen) : end : end],
				ApproximateArrivalTimestamp: msTime(md.arrivalMs),
			})
		}
	}
	return dst
}

func (m *memStore) seekTime(tsMs int64, next uint64) (uint64, coldReader) {
	return m.seekTimeMem(tsMs, next), nil
}

// seekTimeMem is seekTime among the records in memory.
func (m *memStore) seekTimeMem(tsMs int64, next uint64) uint64 {
	// Chunks are in arrival order; find the first chunk whose newest record
	// is at or after tsMs, then search inside it.
	var found *chunk
	m.chunks.Ascend(func(c *chunk) bool {
		if c.metas[len(c.metas)-1].arrivalMs >= tsMs {
			found = c
			return false
		}
		return true
	})
	if found == nil {
		return next
	}
	live := found.metas[found.start:]
	i := sort.Search(len(live), func(i int) bool { return live[i].arrivalMs >= tsMs })
	return found.firstCounter + uint64(found.start+i)
}

func (m *memStore) arrivalAt(from uint64) (int64, bool) {
	c := m.find(from)
	if c == nil {
		return 0, false
	}
	i := c.start
	if from > c.firstCounter {
		i = max(i, int(from-c.firstCounter))
	}
	return c.metas[i].arrivalMs, true
}

func (m *memStore) trim(cutoffMs int64) {
	for {
		c, ok := m.chunks.Min()
		if !ok || c.metas[c.start].arrivalMs >= cutoffMs {
			return
		}
		live := c.metas[c.start:]
		n := sort.Search(len(live), func(i int) bool { return live[i].arrivalMs >= cutoffMs })
		if n == len(live) {
			m.dropOldest(c)
			continue
		}
		for _, md := range live[:n] {
			m.bytes -= int64(md.keyLen) + int64(md.dataLen)
		}
		m.records -= int64(n)
		c.start += n
		return
	}
}

func (m *memStore) first() (uint64, bool) {
	c, ok := m.chunks.Min()
	if !ok {
		return 0, false
	}
	return c.firstCounter + uint64(c.start), true
}

func (m *memStore) size() (int64, int64) { return m.records, m.bytes }

func (m *memStore) memory() int64 { return m.allocated }

func (m *memStore) oldestNewest() (int64, int64) {
	lo, ok := m.chunks.Min()
	if !ok {
		return 0, 0
	}
	hi, _ := m.chunks.Max()
	return lo.metas[lo.start].arrivalMs, hi.metas[len(hi.metas)-1].arrivalMs
}

// shrinkBelow releases the oldest chunks whose records all have counters
// below end, as long as the store holds more than budget bytes of memory:
// a file store's cache lets go of its oldest records once they are on
// disk. It returns the counter after the last record released, or 0 if
// it released none.
func (m *memStore) shrinkBelow(end uint64, budget int64) uint64 {
	var after uint64
	for m.allocated > budget {
		c, ok := m.chunks.Min()
		if !ok || c.lastCounter() >= end {
			break
		}
		after = c.lastCounter() + 1
		m.dropBefore(after)
	}
	return after
}
