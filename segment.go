package runnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The files of a file store (filestore.go). A shard's directory holds
// pairs of files named by a counter, zero-padded to 20 digits so that
// they sort: NNNN.seg, a segment of records, and NNNN.idx, its sparse
// index. No record of a segment has a counter below its name, and every
// record of a segment has a lower counter than those of the next.
//
// A segment file is an 8-byte header (segmentMagic) and then records back
// to back, each one:
//
//	offset  size
//	0       4     CRC-32C (Castagnoli) of bytes 4 to the end of the record
//	4       8     counter
//	12      8     arrival time, Unix milliseconds
//	20      2     length of the partition key
//	22      4     length of the data
//	26            the partition key, then the data
//
// An index file is an 8-byte header (indexMagic) and then 48-byte entries:
//
//	0       4     CRC-32C of bytes 4 to 48
//	4       4     kind: 0 a record, 1 the seal
//	8       8     counter
//	16      8     arrival time
//	24      8     offset of the record in the segment file
//	32      8     records before it in the segment
//	40      8     bytes of partition keys and data before it
//
// Record entries name the segment's first record, then the first record
// that starts at least indexInterval bytes after the previous entry's. The
// seal is the last entry once the store has moved on to the next segment:
// its counter and arrival are the newest record's, its offset the end of
// the records, and its counts the segment's totals. Integers are
// little-endian. The index may lag its segment (a crash before the index
// was written back): recovery scans the segment from the last entry that
// names a valid record.
const (
	segmentMagic    = "RNLSEG\x00\x01"
	indexMagic      = "RNLIDX\x00\x01"
	fileHeaderLen   = 8
	recordHeaderLen = 26
	indexEntryLen   = 48
	indexInterval   = 4 << 10

	entryRecord = 0
	entrySeal   = 1
)

// castagnoli is the CRC-32C table, which hash/crc32 computes with the
// processor's instructions where there are any.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentName is the name of the segment file of base, or of its index
// file with ext ".idx".
func segmentName(base uint64, ext string) string {
	return fmt.Sprintf("%020d%s", base, ext)
}

// parseSegmentName returns the base and extension of a file store's file
// name, and false for any other name.
func parseSegmentName(name string) (uint64, string, bool) {
	if len(name) != 24 || (name[20:] != ".seg" && name[20:] != ".idx") {
		return 0, "", false
	}
	base, err := strconv.ParseUint(name[:20], 10, 64)
	return base, name[20:], err == nil
}

// recordHeader is the fixed part of a record in a segment.
type recordHeader struct {
	counter   uint64
	arrivalMs int64
	keyLen    int
	dataLen   int
}

// size is the record's size in the file.
func (h recordHeader) size() int64 { return recordHeaderLen + int64(h.keyLen) + int64(h.dataLen) }

// appendRecord appends the encoding of a record to dst with a zero
// checksum: layoutBatch sets it, outside the shard's lock. key is at most
// a few KiB (partition keys are validated before they reach a store).
func appendRecord(dst []byte, counter uint64, arrivalMs int64, key string, data []byte) []byte {
	n := len(dst)
	size := recordHeaderLen + len(key) + len(data)
	if cap(dst)-n < size {
		dst = slices.Grow(dst, size)
	}
	dst = dst[:n+size]
	h := (*[recordHeaderLen]byte)(dst[n:])
	binary.LittleEndian.PutUint32(h[0:], 0)
	binary.LittleEndian.PutUint64(h[4:], counter)
	binary.LittleEndian.PutUint64(h[12:], uint64(arrivalMs))
	binary.LittleEndian.PutUint16(h[20:], uint16(len(key)))
	binary.LittleEndian.PutUint32(h[22:], uint32(len(data)))
	p := n + recordHeaderLen
	copy(dst[p+copy(dst[p:], key):], data)
	return dst
}

// parseRecordHeader decodes the header at the start of b (at least
// recordHeaderLen bytes) and reports whether its lengths are plausible:
// together no more than the largest record a stream accepts.
func parseRecordHeader(b []byte) (recordHeader, bool) {
	h := recordHeader{
		counter:   binary.LittleEndian.Uint64(b[4:]),
		arrivalMs: int64(binary.LittleEndian.Uint64(b[12:])),
		keyLen:    int(binary.LittleEndian.Uint16(b[20:])),
		dataLen:   int(binary.LittleEndian.Uint32(b[22:])),
	}
	return h, h.keyLen+h.dataLen <= maxRecordSizeLimit
}

// recordValid reports whether rec, one whole record, matches its checksum.
func recordValid(rec []byte) bool {
	return binary.LittleEndian.Uint32(rec) == crc32.Checksum(rec[4:], castagnoli)
}

// Why a record does not decode.
var (
	errRecordShort       = errors.New("it is cut short")
	errRecordImplausible = errors.New("its lengths are implausible")
	errRecordChecksum    = errors.New("it fails its checksum")
)

// decodeRecord decodes the record at the start of b, returning its header,
// its partition key and data (a slice of b) and its size, or why it is
// not a valid record.
func decodeRecord(b []byte) (recordHeader, []byte, int, error) {
	if len(b) < recordHeaderLen {
		return recordHeader{}, nil, 0, errRecordShort
	}
	h, ok := parseRecordHeader(b)
	if !ok {
		return h, nil, 0, errRecordImplausible
	}
	n := int(h.size())
	if len(b) < n {
		return h, nil, 0, errRecordShort
	}
	if !recordValid(b[:n]) {
		return h, nil, 0, errRecordChecksum
	}
	return h, b[recordHeaderLen:n], n, nil
}

// indexEntry is an index entry in memory: 24 bytes for about every
// indexInterval (4 KiB) of records, that is about 0.6% of the data a
// store holds. The seal is kept as segTotals.
type indexEntry struct {
	counter   uint64
	arrivalMs int64
	off       uint32 // offset of the record in the segment file
	records   uint32 // records before it in the segment
}

// maxSegmentSize is the largest a segment file grows: offsets in the index
// take 32 bits in memory.
const maxSegmentSize = math.MaxUint32

// offset is the offset of the entry's record in the segment file.
func (e indexEntry) offset() int64 { return int64(e.off) }

// bytes returns the bytes of partition keys and data before the entry's
// record: what the file holds before it but for headers.
func (e indexEntry) bytes() int64 {
	return e.offset() - fileHeaderLen - int64(e.records)*recordHeaderLen
}

// appendIndexEntry appends the encoding of an entry of kind (entryRecord
// or entrySeal) to dst.
func appendIndexEntry(dst []byte, kind uint32, e indexEntry) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, indexEntryLen)...)
	b := dst[n:]
	binary.LittleEndian.PutUint32(b[4:], kind)
	binary.LittleEndian.PutUint64(b[8:], e.counter)
	binary.LittleEndian.PutUint64(b[16:], uint64(e.arrivalMs))
	binary.LittleEndian.PutUint64(b[24:], uint64(e.offset()))
	binary.LittleEndian.PutUint64(b[32:], uint64(e.records))
	binary.LittleEndian.PutUint64(b[40:], uint64(e.bytes()))
	binary.LittleEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	return dst
}

// errEntryInvalid is decodeIndexEntry's error for bytes that are not an
// index entry.
var errEntryInvalid = errors.New("invalid index entry")

// decodeIndexEntry decodes the entry at the start of b: its kind and the
// entry. It fails unless the checksum matches and the fields agree (a
// known kind, an offset past the file header, byte and record counts that
// fit the offset).
func decodeIndexEntry(b []byte) (uint32, indexEntry, error) {
	if len(b) < indexEntryLen || binary.LittleEndian.Uint32(b) != crc32.Checksum(b[4:indexEntryLen], castagnoli) {
		return 0, indexEntry{}, errEntryInvalid
	}
	kind := binary.LittleEndian.Uint32(b[4:])
	offset := binary.LittleEndian.Uint64(b[24:])
	records := binary.LittleEndian.Uint64(b[32:])
	if kind > entrySeal || offset > maxSegmentSize || offset < fileHeaderLen || records > math.MaxUint32 {
		return 0, indexEntry{}, errEntryInvalid
	}
	e := indexEntry{
		counter:   binary.LittleEndian.Uint64(b[8:]),
		arrivalMs: int64(binary.LittleEndian.Uint64(b[16:])),
		off:       uint32(offset),
		records:   uint32(records),
	}
	if bytes := e.bytes(); bytes < 0 || uint64(bytes) != binary.LittleEndian.Uint64(b[40:]) {
		return 0, indexEntry{}, errEntryInvalid
	}
	return kind, e, nil
}

// follows reports whether e can come after prev in one index: a higher
// counter, and more records and bytes before it. A seal may name the
// record of the last entry (a segment of one interval).
func (e indexEntry) follows(prev indexEntry, seal bool) bool {
	return (e.counter > prev.counter || seal && e.counter == prev.counter) &&
		e.records > prev.records && e.bytes() >= prev.bytes()
}

// loadIndex decodes an index file's bytes: its record entries, its seal
// if it has one, and the length of its valid prefix. Decoding stops at
// the first entry that is invalid or out of order, or after the seal: the
// rest is a torn or damaged tail that recovery truncates. A bad header
// gives a valid length of 0.
func loadIndex(b []byte) (entries []indexEntry, seal indexEntry, sealed bool, n int) {
	if len(b) < fileHeaderLen || string(b[:fileHeaderLen]) != indexMagic {
		return nil, indexEntry{}, false, 0
	}
	n = fileHeaderLen
	for len(b)-n >= indexEntryLen {
		kind, e, err := decodeIndexEntry(b[n:])
		if err != nil || len(entries) == 0 && kind == entrySeal ||
			len(entries) > 0 && !e.follows(entries[len(entries)-1], kind == entrySeal) {
			break
		}
		n += indexEntryLen
		if kind == entrySeal {
			return entries, e, true, n
		}
		entries = append(entries, e)
	}
	return entries, indexEntry{}, false, n
}

// segTotals is what a store knows about the records of a segment: those
// that readers may see.
type segTotals struct {
	size     int64  // the offset after the last record
	records  int64  // the records (corrupt ones included)
	last     uint64 // the newest record's counter
	newestMs int64  // its arrival
}

// bytes returns the bytes of partition keys and data of the records.
func (t segTotals) bytes() int64 { return t.size - fileHeaderLen - t.records*recordHeaderLen }

// segment is a segment file as its store knows it. Its fields are guarded
// by the store's lock; entries only grows (by append), so a reader may use
// the slice it took under the lock after releasing it.
type segment struct {
	base      uint64
	path      string // the segment file
	indexPath string // its index file
	entries   []indexEntry
	segTotals
	sealed    bool  // its index ends with its seal
	indexSize int64 // bytes of the index file
}

func newSegment(dir string, base uint64) *segment {
	return &segment{
		base:      base,
		path:      filepath.Join(dir, segmentName(base, ".seg")),
		indexPath: filepath.Join(dir, segmentName(base, ".idx")),
		segTotals: segTotals{size: fileHeaderLen},
		indexSize: fileHeaderLen,
	}
}

// lastEntryOffset returns the offset of the segment's last index entry, or
// -1 if it has none.
func (s *segment) lastEntryOffset() int64 {
	if len(s.entries) == 0 {
		return -1
	}
	return s.entries[len(s.entries)-1].offset()
}

// entryAt returns the index of the last entry whose counter is at most c,
// or -1 if c lies before the first.
func entryAt(entries []indexEntry, c uint64) int {
	lo, hi := 0, len(entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if entries[m].counter <= c {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// layoutBatch sets the checksums of the encoded records in buf, which are
// to be appended to a segment with totals t whose last index entry is at
// offset lastEntry (-1: none), appends to entries the index entries they
// need, and returns the segment's totals after them.
func layoutBatch(buf []byte, t segTotals, lastEntry int64, entries []indexEntry) (segTotals, []indexEntry) {
	for p := 0; p < len(buf); {
		h, _ := parseRecordHeader(buf[p:])
		n := int(h.size())
		rec := buf[p : p+n]
		binary.LittleEndian.PutUint32(rec, crc32.Checksum(rec[4:], castagnoli))
		if lastEntry < 0 || t.size-lastEntry >= indexInterval {
			entries = append(entries, indexEntry{counter: h.counter, arrivalMs: h.arrivalMs, off: uint32(t.size), records: uint32(t.records)})
			lastEntry = t.size
		}
		t.size += int64(n)
		t.records++
		t.last, t.newestMs = h.counter, h.arrivalMs
		p += n
	}
	return t, entries
}

// windowSize is the size of a segment reader's window, unless a record
// needs more, and minRead the least it reads at once.
const (
	windowSize = 256 << 10
	minRead    = 64 << 10
)

// windowPool keeps segment readers' windows between reads: a bounded free
// list, which the garbage collector does not empty as it does a
// sync.Pool, so that cold reads do not allocate windows. A nil pool keeps
// none.
type windowPool chan []byte

func (p windowPool) get() []byte {
	select {
	case w := <-p:
		return w
	default:
		return make([]byte, 0, windowSize)
	}
}

func (p windowPool) put(w []byte) {
	select {
	case p <- w[:0]:
	default:
	}
}

// errBadRecord is segmentReader.next's error for a record that is cut
// short, has implausible lengths or fails its checksum.
var errBadRecord = errors.New("bad record")

// errFileShort is segmentReader's error when the file ends before the
// offset its records should reach.
var errFileShort = errors.New("the file is shorter than its records")

// segmentReader reads the records of a segment file in order through a
// window of the file, verifying each one's checksum. Its reads are large:
// at least minRead, or up to want.
type segmentReader struct {
	f      file
	end    int64 // records end here
	want   int64 // the caller expects to read up to here
	win    []byte
	winOff int64 // offset of win[0] in the file
	pool   windowPool
	pooled []byte // the window from the pool
	off    int64  // offset of the next record
	read   int64  // bytes read from the file

	// After errBadRecord: why, and the record's size if its lengths are
	// plausible (0 otherwise).
	bad    error
	badLen int64
}

func newSegmentReader(f file, end int64, pool windowPool) *segmentReader {
	w := pool.get()
	return &segmentReader{f: f, end: end, win: w, pool: pool, pooled: w, off: fileHeaderLen}
}

// release returns the window to the pool; the caller closes the file.
func (r *segmentReader) release() {
	if r.pooled != nil {
		r.pool.put(r.pooled)
	}
	r.win, r.pooled = nil, nil
}

// fill makes the window hold the n bytes from r.off (r.off+n ≤ r.end).
func (r *segmentReader) fill(n int64) error {
	winEnd := r.winOff + int64(len(r.win))
	if r.off >= r.winOff && r.off+n <= winEnd {
		return nil
	}
	var keep int
	if r.off >= r.winOff && r.off < winEnd {
		keep = int(winEnd - r.off)
	}
	size := max(n, min(max(r.want-r.off, minRead), r.end-r.off, int64(cap(r.win))))
	if int64(cap(r.win)) < size {
		w := make([]byte, size)
		copy(w, r.win[len(r.win)-keep:])
		r.win = w // a large record: the pooled window stays as it is
	} else {
		kept := r.win[len(r.win)-keep:]
		r.win = r.win[:size]
		copy(r.win, kept)
	}
	m, err := r.f.ReadAt(r.win[keep:], r.off+int64(keep))
	r.read += int64(m)
	r.winOff = r.off
	if keep+m < int(size) {
		r.win = r.win[:keep+m]
		if err == nil || err == io.EOF {
			err = errFileShort
		}
		return err
	}
	return nil
}

// next returns the record at r.off, its header and its partition key and
// data (a slice of the window, valid until the next call), and moves past
// it. At r.end it returns io.EOF. A bad record gives errBadRecord, r.bad
// and r.badLen say what was wrong, and r.off stays at it. Other errors
// are the file's.
func (r *segmentReader) next() (recordHeader, []byte, error) {
	if r.off >= r.end {
		return recordHeader{}, nil, io.EOF
	}
	r.bad, r.badLen = nil, 0
	if r.end-r.off < recordHeaderLen {
		r.bad = errRecordShort
		return recordHeader{}, nil, errBadRecord
	}
	if err := r.fill(recordHeaderLen); err != nil {
		return recordHeader{}, nil, err
	}
	h, ok := parseRecordHeader(r.win[r.off-r.winOff:])
	if !ok {
		r.bad = errRecordImplausible
		return h, nil, errBadRecord
	}
	n := h.size()
	r.badLen = n
	if r.off+n > r.end {
		r.bad = errRecordShort
		return h, nil, errBadRecord
	}
	if err := r.fill(n); err != nil {
		return recordHeader{}, nil, err
	}
	rec := r.win[r.off-r.winOff : r.off-r.winOff+n]
	if !recordValid(rec) {
		r.bad = errRecordChecksum
		return h, nil, errBadRecord
	}
	r.off += n
	return h, rec[recordHeaderLen:], nil
}

// validAt returns the header of the record at off and whether there is a
// valid one there (if not, r.bad and r.badLen say why), leaving the
// reader's position as it was.
func (r *segmentReader) validAt(off int64) (recordHeader, bool, error) {
	at := r.off
	defer func() { r.off = at }()
	r.off = off
	h, _, err := r.next()
	if err == errBadRecord || err == io.EOF {
		return h, false, nil
	}
	return h, err == nil, err
}

// scanSegment reads seg's records from r.off (the offset of seg's last
// index entry, or of the first record) to r.end, adding to seg's totals
// and index: recovery of a segment whose index lags it. A bad record
// followed by a valid one (at the offset its declared length gives) is
// corruption: it is counted and kept, and the reads that reach it fail. A
// bad record with no valid one after it, or a valid one whose counter is
// not above those before (not part of this log), ends the scan: a torn
// tail, which the caller truncates at seg.size.
//
// A bad record whose declared length is itself damaged is told from a tear
// by looking further: if a valid record with a counter above those before
// starts anywhere after it, the damage is corruption, kept and indexed at
// that record so that reads resume there; only when none does is it a
// torn tail. So a flipped bit in a length never truncates acknowledged
// records away.
func scanSegment(r *segmentReader, seg *segment) error {
	started, resynced := false, false
	for {
		at := r.off
		h, _, err := r.next()
		switch {
		case err == io.EOF:
			return nil
		case err == errBadRecord:
			if r.badLen > 0 {
				h, ok, err := r.validAt(at + r.badLen)
				if err != nil {
					return err
				}
				if ok && (!started || h.counter > seg.last) {
					r.off = at + r.badLen
					seg.records++
					seg.size = r.off
					continue
				}
			}
			next, found, err := findValidRecord(r, at+1, seg.last, started)
			if err != nil || !found {
				return err
			}
			r.off, resynced = next, true
			seg.records++ // at least one record is lost to the damage
			seg.size = r.off
			continue
		case err != nil:
			return err
		}
		if started && h.counter <= seg.last {
			r.off = at
			return nil
		}
		started = true
		if last := seg.lastEntryOffset(); last < 0 || at-last >= indexInterval || resynced {
			resynced = false
			seg.entries = append(seg.entries, indexEntry{counter: h.counter, arrivalMs: h.arrivalMs, off: uint32(at), records: uint32(seg.records)})
		}
		seg.records++
		seg.size = r.off
		seg.last, seg.newestMs = h.counter, h.arrivalMs
	}
}

// findValidRecord returns the offset of the first valid record at or after
// from whose counter is above last (any counter if !started), and whether
// there is one before the end of r.
func findValidRecord(r *segmentReader, from int64, last uint64, started bool) (int64, bool, error) {
	for off := from; off+recordHeaderLen <= r.end; off++ {
		h, ok, err := r.validAt(off)
		if err != nil {
			return 0, false, err
		}
		if ok && (!started || h.counter > last) {
			return off, true, nil
		}
	}
	return 0, false, nil
}

// recoverSegment opens seg's files and makes seg describe them. A segment
// whose index ends with a seal that matches its file is known from the
// index alone, unless it is the last one (active), which stays unsealed.
// Otherwise it finds the last index entry that names a valid record and
// scans the records after it only (scanSegment), so that recovery reads
// about one index interval of a segment whose index was written back: it
// truncates a torn tail, appends to the index the entries it lacks, and
// seals a segment that is not the last. It returns the open files.
func recoverSegment(fsys fileSystem, seg *segment, active bool) (data, index file, err error) {
	const op = "Open"
	if index, err = fsys.OpenFile(seg.indexPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, nil, fileStoreError(op, "open", seg.indexPath, -1, err)
	}
	if data, err = fsys.OpenFile(seg.path, os.O_RDWR, 0); err != nil {
		index.Close()
		return nil, nil, fileStoreError(op, "open", seg.path, -1, err)
	}
	if err := recoverFiles(fsys, seg, data, index, active); err != nil {
		data.Close()
		index.Close()
		return nil, nil, err
	}
	return data, index, nil
}

// recoverFiles is recoverSegment's work on the open files.
func recoverFiles(fsys fileSystem, seg *segment, data, index file, active bool) error {
	const op = "Open"
	ib, err := readFile(index)
	if err != nil {
		return fileStoreError(op, "read", seg.indexPath, -1, err)
	}
	fi, err := data.Stat()
	if err != nil {
		return fileStoreError(op, "look up", seg.path, -1, err)
	}
	size := fi.Size()
	entries, seal, sealed, _ := loadIndex(ib)
	seg.entries = entries
	keep := int64(fileHeaderLen + len(entries)*indexEntryLen) // the index's valid bytes, but for its seal
	if len(ib) < fileHeaderLen || string(ib[:fileHeaderLen]) != indexMagic {
		keep = 0
	}
	if sealed && seal.offset() == size && !active {
		seg.segTotals = segTotals{size: seal.offset(), records: int64(seal.records), last: seal.counter, newestMs: seal.arrivalMs}
		seg.sealed = true
		seg.indexSize = keep + indexEntryLen
		if seg.indexSize < int64(len(ib)) {
			if err := index.Truncate(seg.indexSize); err != nil {
				return fileStoreError(op, "truncate", seg.indexPath, seg.indexSize, err)
			}
		}
		return nil
	}
	if err := checkSegmentHeader(seg, data, size); err != nil {
		return err
	}
	size = max(size, fileHeaderLen)
	r := newSegmentReader(data, size, nil)
	defer r.release()
	r.want = size
	for len(seg.entries) > 0 {
		e := seg.entries[len(seg.entries)-1]
		h, ok, err := r.validAt(e.offset())
		if err != nil {
			return fileStoreError(op, "read", seg.path, e.offset(), err)
		}
		if ok && h.counter == e.counter && h.arrivalMs == e.arrivalMs {
			break
		}
		if !ok && r.badLen > 0 { // a corrupt record is kept; a torn one is not
			if _, ok, err := r.validAt(e.offset() + r.badLen); err != nil {
				return fileStoreError(op, "read", seg.path, e.offset()+r.badLen, err)
			} else if ok {
				break
			}
		}
		seg.entries = seg.entries[:len(seg.entries)-1]
		keep = min(keep, int64(fileHeaderLen+len(seg.entries)*indexEntryLen))
	}
	kept := len(seg.entries)
	if kept > 0 {
		e := seg.entries[kept-1]
		seg.size, seg.records, r.off = e.offset(), int64(e.records), e.offset()
	}
	if err := scanSegment(r, seg); err != nil {
		return fileStoreError(op, "read", seg.path, r.off, err)
	}
	changed := false
	if seg.size < size {
		if err := data.Truncate(seg.size); err != nil {
			return fileStoreError(op, "truncate", seg.path, seg.size, err)
		}
		changed = true
	}
	var out []byte
	if keep == 0 {
		out = append(out, indexMagic...)
	}
	for _, e := range seg.entries[kept:] {
		out = appendIndexEntry(out, entryRecord, e)
	}
	if !active && len(seg.entries) > 0 {
		out = appendIndexEntry(out, entrySeal, seg.sealEntry())
		seg.sealed = true
	}
	seg.indexSize = keep + int64(len(out))
	if keep < int64(len(ib)) {
		if err := index.Truncate(keep); err != nil {
			return fileStoreError(op, "truncate", seg.indexPath, keep, err)
		}
		changed = true
	}
	if len(out) > 0 {
		if _, err := index.WriteAt(out, keep); err != nil {
			return fileStoreError(op, "write", seg.indexPath, keep, err)
		}
		changed = true
	}
	if changed {
		if err := data.Sync(); err != nil {
			return fileStoreError(op, "fsync", seg.path, -1, err)
		}
		if err := index.Sync(); err != nil {
			return fileStoreError(op, "fsync", seg.indexPath, -1, err)
		}
	}
	return nil
}

// checkSegmentHeader verifies the header of a segment file of size bytes.
// A file cut short in its header (a crash as it was created) holds no
// records: its header is written again.
func checkSegmentHeader(seg *segment, data file, size int64) error {
	const op = "Open"
	hdr := make([]byte, min(size, fileHeaderLen))
	if _, err := data.ReadAt(hdr, 0); err != nil {
		return fileStoreError(op, "read", seg.path, 0, err)
	}
	switch {
	case string(hdr) == segmentMagic:
		return nil
	case size < fileHeaderLen && strings.HasPrefix(segmentMagic, string(hdr)):
		if _, err := data.WriteAt([]byte(segmentMagic), 0); err != nil {
			return fileStoreError(op, "write", seg.path, 0, err)
		}
		return nil
	}
	return corruptError(op, seg.path, 0, fmt.Sprintf("the file's header %q is not a segment's", hdr))
}

// sealEntry is the seal of the segment: its totals as an index entry.
func (s *segment) sealEntry() indexEntry {
	return indexEntry{counter: s.last, arrivalMs: s.newestMs, off: uint32(s.size), records: uint32(s.records)}
}

// readFile returns the whole content of f.
func readFile(f file) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if err == io.EOF && n == len(b) {
		err = nil
	}
	return b[:n], err
}
