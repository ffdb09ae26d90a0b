package runnel

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math"
	"strings"
	"testing"
	"time"
)

// encodeRecords returns the encoding of recs as the writer lays them out
// in a segment, after the file header.
func encodeRecords(recs ...testRecord) []byte {
	var buf []byte
	for _, r := range recs {
		buf = appendRecord(buf, r.counter, r.arrivalMs, r.key, []byte(r.data))
	}
	layoutBatch(buf, segTotals{size: fileHeaderLen}, -1, nil)
	return buf
}

func FuzzDecodeRecord(f *testing.F) {
	one := encodeRecords(testRecord{7, 1000, "key", "data"})
	f.Add(one)
	f.Add(one[:len(one)-1])
	f.Add(one[:recordHeaderLen])
	f.Add(encodeRecords(testRecord{math.MaxUint64, -1, "", ""}))
	f.Add(make([]byte, 40))
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || len(payload) != h.keyLen+h.dataLen || int64(n) != h.size() {
			t.Fatalf("decoded %d bytes of %d, payload %d, header %+v", n, len(b), len(payload), h)
		}
		again := encodeRecords(testRecord{h.counter, h.arrivalMs, string(payload[:h.keyLen]), string(payload[h.keyLen:])})
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:n])
		}
	})
}

func FuzzRecordRoundTrip(f *testing.F) {
	f.Add(uint64(0), int64(0), "", []byte(nil))
	f.Add(uint64(1<<63), int64(time.Now().UnixMilli()), "partition-key", []byte("some data"))
	f.Fuzz(func(t *testing.T, counter uint64, arrivalMs int64, key string, data []byte) {
		if len(key) > math.MaxUint16 || len(key)+len(data) > maxRecordSizeLimit {
			return
		}
		b := encodeRecords(testRecord{counter, arrivalMs, key, string(data)})
		h, payload, n, err := decodeRecord(b)
		if err != nil || n != len(b) || h.counter != counter || h.arrivalMs != arrivalMs ||
			string(payload[:h.keyLen]) != key || !bytes.Equal(payload[h.keyLen:], data) {
			t.Fatalf("decoded %+v %q (%d bytes, %v)", h, payload, n, err)
		}
		b[len(b)/2] ^= 1
		if _, _, _, err := decodeRecord(b); err == nil {
			t.Fatal("a flipped bit went unnoticed")
		}
	})
}

func FuzzDecodeIndexEntry(f *testing.F) {
	e := indexEntry{counter: 42, arrivalMs: 1000, off: 8 + 3*40, records: 3}
	f.Add(appendIndexEntry(nil, entryRecord, e))
	f.Add(appendIndexEntry(nil, entrySeal, e))
	f.Add(make([]byte, indexEntryLen))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, e, err := decodeIndexEntry(b)
		if err != nil {
			return
		}
		if again := appendIndexEntry(nil, kind, e); !bytes.Equal(again, b[:indexEntryLen]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:indexEntryLen])
		}
	})
}

func FuzzIndexEntryRoundTrip(f *testing.F) {
	f.Add(uint64(1), int64(2), uint32(8), uint32(0), true)
	f.Add(uint64(math.MaxUint64), int64(-5), uint32(math.MaxUint32), uint32(1<<20), false)
	f.Fuzz(func(t *testing.T, counter uint64, arrivalMs int64, offset, records uint32, seal bool) {
		e := indexEntry{counter: counter, arrivalMs: arrivalMs, off: offset, records: records}
		if offset < fileHeaderLen || e.bytes() < 0 {
			return // not an entry of any segment
		}
		kind := uint32(entryRecord)
		if seal {
			kind = entrySeal
		}
		gotKind, got, err := decodeIndexEntry(appendIndexEntry(nil, kind, e))
		if err != nil || gotKind != kind || got != e {
			t.Fatalf("decoded %d %+v (%v), encoded %d %+v", gotKind, got, err, kind, e)
		}
	})
}

func FuzzLoadIndex(f *testing.F) {
	index := []byte(indexMagic)
	for i := range 3 {
		index = appendIndexEntry(index, entryRecord, indexEntry{counter: uint64(10 * i), off: uint32(8 + 4096*i), records: uint32(30 * i)})
	}
	f.Add(index)
	f.Add(appendIndexEntry(bytes.Clone(index), entrySeal, indexEntry{counter: 25, off: 8 + 4096*2 + 40, records: 61}))
	f.Add(index[:len(index)-3])
	f.Add([]byte(indexMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, seal, sealed, n := loadIndex(b)
		if n > len(b) || n != 0 && (n-fileHeaderLen)%indexEntryLen != 0 {
			t.Fatalf("valid length %d of %d bytes", n, len(b))
		}
		want := len(entries)
		if sealed {
			want++
		}
		if n != 0 && n != fileHeaderLen+want*indexEntryLen {
			t.Fatalf("valid length %d for %d entries (sealed %v)", n, len(entries), sealed)
		}
		for i := 1; i < len(entries); i++ {
			if !entries[i].follows(entries[i-1], false) {
				t.Fatalf("entry %d %+v does not follow %+v", i, entries[i], entries[i-1])
			}
		}
		if sealed && (len(entries) == 0 || !seal.follows(entries[len(entries)-1], true)) {
			t.Fatalf("seal %+v after %d entries", seal, len(entries))
		}
	})
}

// FuzzSegment reads arbitrary bytes as a segment file: recovery's scan and
// a cold read never panic, and agree on the valid records they find.
func FuzzSegment(f *testing.F) {
	recs := makeRecords(5, 12, 100, 20)
	recs[8].data = strings.Repeat("x", indexInterval) // the records after it get an index entry
	valid := append([]byte(segmentMagic), encodeRecords(recs...)...)
	f.Add(valid)
	f.Add(valid[:len(valid)-10])
	damaged := bytes.Clone(valid)
	damaged[fileHeaderLen+3*(recordHeaderLen+5+20)+40] ^= 4
	f.Add(damaged)
	f.Add(append(bytes.Clone(valid), make([]byte, 60)...))
	f.Add([]byte(segmentMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < fileHeaderLen {
			return // recovery rewrites the header of such a file (checkSegmentHeader)
		}
		seg := &segment{path: "fuzz.seg", segTotals: segTotals{size: fileHeaderLen}}
		r := newSegmentReader(memFile(b), int64(len(b)), nil)
		defer r.release()
		r.want = int64(len(b))
		if err := scanSegment(r, seg); err != nil {
			t.Fatal(err)
		}
		if seg.size > int64(len(b)) {
			t.Fatalf("scanned to %d of %d bytes", seg.size, len(b))
		}
		if len(seg.entries) == 0 {
			return
		}
		c := &segmentCold{fsys: memFS{"fuzz.seg": b}, path: "fuzz.seg", entries: seg.entries, segTotals: seg.segTotals}
		got, next, _, err := c.read(nil, 0, 100_000, math.MaxInt, math.MinInt64)
		valid := 0
		for i := range got {
			if i > 0 && got[i].SequenceNumber.counter <= got[i-1].SequenceNumber.counter {
				t.Fatalf("records out of order: %d after %d", got[i].SequenceNumber.counter, got[i-1].SequenceNumber.counter)
			}
			valid++
		}
		if int64(valid) > seg.records {
			t.Fatalf("read %d records of the %d the scan found", valid, seg.records)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		if err == nil && next != seg.last+1 {
			t.Fatalf("read ended at %d, the last record is %d", next, seg.last)
		}
		if _, err := c.seek(200); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	})
}

// memFile is a read-only file of bytes.
type memFile []byte

func (m memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (memFile) WriteAt([]byte, int64) (int, error) { return 0, fs.ErrPermission }
func (memFile) Sync() error                        { return nil }
func (memFile) Truncate(int64) error               { return fs.ErrPermission }
func (memFile) Stat() (fs.FileInfo, error)         { return nil, fs.ErrInvalid }
func (memFile) Close() error                       { return nil }

// memFS is a fileSystem of read-only files in memory.
type memFS map[string][]byte

func (m memFS) OpenFile(name string, _ int, _ fs.FileMode) (file, error) {
	if b, ok := m[name]; ok {
		return memFile(b), nil
	}
	return nil, fs.ErrNotExist
}
func (memFS) ReadDir(string) ([]fs.DirEntry, error) { return nil, nil }
func (memFS) Remove(string) error                   { return fs.ErrPermission }
func (memFS) MkdirAll(string, fs.FileMode) error    { return nil }
func (memFS) SyncDir(string) error                  { return nil }
