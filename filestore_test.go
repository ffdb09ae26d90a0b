package runnel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The file store's own behaviour: what survives a restart, recovery from
// torn and corrupt files, retention, write failures, memory, sync
// policies. The behaviour it shares with the memory store is in
// store_suite_test.go.

var policies = []SyncPolicy{SyncAlways(), SyncInterval(5 * time.Millisecond), SyncOS()}

// reopen closes the store and opens cfg's directory again, returning the
// new store and the counter after its newest record.
func (ts *testStore) reopen(cfg fileStoreConfig) (*testStore, uint64) {
	ts.t.Helper()
	require.NoError(ts.t, ts.st.close())
	cfg.mu = nil
	st, next, err := openFileStore(withLock(cfg))
	require.NoError(ts.t, err)
	nts := &testStore{t: ts.t, st: st, mu: st.mu, cutoffMs: ts.cutoffMs}
	ts.t.Cleanup(func() { st.close() })
	return nts, next
}

func withLock(cfg fileStoreConfig) fileStoreConfig {
	if cfg.mu == nil {
		cfg.mu = new(sync.Mutex)
	}
	return cfg
}

// segmentFiles lists the directory's files with extension ext, sorted.
func segmentFiles(t testing.TB, dir, ext string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, de := range list {
		if strings.HasSuffix(de.Name(), ext) {
			names = append(names, de.Name())
		}
	}
	return names
}

// recordOffsets returns the offset of every record of a segment file, by
// counter.
func recordOffsets(t testing.TB, path string) map[uint64]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	offs := map[uint64]int64{}
	for off := fileHeaderLen; off < len(b); {
		h, _, n, err := decodeRecord(b[off:])
		require.NoError(t, err, "record at offset %d of %s", off, path)
		offs[h.counter] = int64(off)
		off += n
	}
	return offs
}

// copyDir copies the files of dir to a new directory: what a crash of the
// process (kill -9) leaves, since written data is in the page cache.
func copyDir(t testing.TB, dir string) string {
	t.Helper()
	dst := t.TempDir()
	list, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, de := range list {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, de.Name()), b, 0o644))
	}
	return dst
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// After close, a store opens with every record, the same counters and
// arrivals, and the counter after the newest; it goes on from there.
func TestFileStoreReopen(t *testing.T) {
	for _, p := range policies {
		t.Run(p.String(), func(t *testing.T) {
			cfg := fileStoreConfig{dir: t.TempDir(), sync: p, segmentBytes: 8 << 10, base: 500}
			ts := openTestFileStore(t, cfg)
			var want []testRecord
			for b := range 30 {
				recs := makeRecords(500+uint64(b)*30, 25, 7000+int64(b), 90) // a gap of 5 after each put
				ts.mustPut(recs...)
				want = append(want, recs...)
			}
			ts, next := ts.reopen(cfg)
			assert.Equal(t, want[len(want)-1].counter+1, next)
			assert.Equal(t, want, ts.all(0))
			if p.waits() { // the other policies write many puts at once, and a write goes to one segment
				assert.Greater(t, len(segmentFiles(t, cfg.dir, ".seg")), 3, "segments rolled")
			}
			more := makeRecords(next+10, 40, 9000, 500)
			ts.mustPut(more...)
			want = append(want, more...)
			ts, next = ts.reopen(cfg)
			assert.Equal(t, more[len(more)-1].counter+1, next)
			assert.Equal(t, want, ts.all(0))
			ts.locked(func(st store) {
				n, _ := st.size()
				assert.Equal(t, int64(len(want)), n)
				first, _ := st.first()
				assert.Equal(t, uint64(500), first)
				_, newest := st.oldestNewest()
				assert.Equal(t, int64(9019), newest)
			})
		})
	}
}

// An empty directory starts at base; reopened without records, at base
// again.
func TestFileStoreOpenEmpty(t *testing.T) {
	cfg := fileStoreConfig{dir: filepath.Join(t.TempDir(), "a", "b"), base: 42}
	ts := openTestFileStore(t, cfg)
	_, next := ts.reopen(cfg)
	assert.Equal(t, uint64(42), next)
	assert.Equal(t, []string{segmentName(42, ".seg")}, segmentFiles(t, cfg.dir, ".seg"))
}

// A kill -9 leaves what was written: with SyncAlways every acknowledged
// record is there, even when the index lags the segment (or is lost).
func TestFileStoreCrash(t *testing.T) {
	cfg := fileStoreConfig{dir: t.TempDir(), segmentBytes: 32 << 10}
	ts := openTestFileStore(t, cfg)
	var want []testRecord
	for b := range 20 {
		recs := makeRecords(uint64(b)*20, 20, 100+int64(b)*10, 300)
		ts.mustPut(recs...)
		want = append(want, recs...)
	}
	for _, lose := range []string{"", ".idx"} {
		t.Run("lose="+lose, func(t *testing.T) {
			dir := copyDir(t, cfg.dir)
			if lose != "" {
				for _, name := range segmentFiles(t, dir, lose) {
					require.NoError(t, os.Remove(filepath.Join(dir, name)))
				}
			}
			crashed := openTestFileStore(t, fileStoreConfig{dir: dir})
			assert.Equal(t, want, crashed.all(0))
		})
	}
}

// A record cut short at any byte, with nothing valid after it, is a torn
// tail: recovery truncates the segment at the record before. Garbage
// after the last record goes the same way.
func TestFileStoreTornTail(t *testing.T) {
	cfg := fileStoreConfig{dir: t.TempDir()}
	ts := openTestFileStore(t, cfg)
	want := makeRecords(0, 60, 100, 40)
	ts.mustPut(want[:59]...)
	ts.mustPut(want[59])
	require.NoError(t, ts.st.close())
	seg := filepath.Join(cfg.dir, segmentName(0, ".seg"))
	size := fileSize(t, seg)
	start := recordOffsets(t, seg)[59]
	cases := map[string]func(path string){}
	for cut := start; cut < size; cut++ {
		cases[fmt.Sprintf("cut at %d", cut)] = func(path string) { require.NoError(t, os.Truncate(path, cut)) }
	}
	garbage := map[string][]byte{"zeros": make([]byte, 100), "ones": []byte(strings.Repeat("\xff", 33)), "a header": make([]byte, 20)}
	for name, g := range garbage {
		cases["garbage: "+name] = func(path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write(g)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, cfg.dir)
			path := filepath.Join(dir, segmentName(0, ".seg"))
			damage(path)
			keep := want[:59]
			if strings.HasPrefix(name, "garbage") {
				keep = want
			}
			ts := openTestFileStore(t, fileStoreConfig{dir: dir})
			assert.Equal(t, keep, ts.all(0))
			assert.Equal(t, start+int64(len(keep)-59)*(size-start), fileSize(t, path), "truncated at the last valid record")
			more := makeRecords(keep[len(keep)-1].counter+1, 3, 200, 10)
			ts.mustPut(more...)
			ts, next := ts.reopen(fileStoreConfig{dir: dir})
			assert.Equal(t, more[2].counter+1, next)
			assert.Equal(t, append(slices.Clip(keep), more...), ts.all(0))
		})
	}
}

// A damaged record followed by a valid one is corruption, not a tear: it
// is kept, reads that reach it fail with ErrCorrupt naming the file and
// the offset, the records before it are returned, and reads from after
// it work. So it goes in the segment being written (found by the reads,
// or by recovery's scan of the tail) and in sealed ones.
func TestFileStoreCorrupt(t *testing.T) {
	cases := []struct {
		name    string
		counter uint64 // the record damaged
		at      int    // where in the record: 0 its checksum, 5 its counter, 21 its key length, 25 its data length, 30 its data
	}{
		{"before the index's last entry, data", 410, 30},
		{"before the index's last entry, header", 411, 5},
		{"the segment's first record", 360, 30},
		{"in the tail recovery scans", 470, 30},
		{"in the tail recovery scans, its data length", 470, 25},
		{"in the tail recovery scans, its key length", 471, 21},
		{"in a sealed segment", 50, 30},
		{"in a sealed segment, checksum", 51, 0},
		{"in a sealed segment, its counter", 130, 5},
		{"the first record", 0, 30},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := fileStoreConfig{dir: t.TempDir(), segmentBytes: 12 << 10}
			ts := openTestFileStore(t, cfg)
			var want []testRecord
			for b := range 4 {
				recs := makeRecords(uint64(b)*120, 120, 1000+int64(b)*100, 100) // 16 KiB: one segment each
				ts.mustPut(recs...)
				want = append(want, recs...)
			}
			require.NoError(t, ts.st.close())
			var path string
			var off int64
			for _, name := range segmentFiles(t, cfg.dir, ".seg") {
				if o, ok := recordOffsets(t, filepath.Join(cfg.dir, name))[c.counter]; ok {
					path, off = filepath.Join(cfg.dir, name), o
				}
			}
			require.NotEmpty(t, path)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[off+int64(c.at)] ^= 0x20
			require.NoError(t, os.WriteFile(path, b, 0o644))

			ts = openTestFileStore(t, cfg)
			got, _, err := ts.readFrom(0, 1000, 1<<20)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.ErrorIs(t, err, ErrInternalFailure)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), fmt.Sprintf("offset %d", off))
			assert.Equal(t, want[:c.counter], append([]testRecord{}, got...), "the records before the damaged one")
			assert.Equal(t, want[c.counter+1:], ts.all(c.counter+1), "the records after it")
			_, _, err = ts.readOnce(c.counter, 10, 1<<20)
			assert.ErrorIs(t, err, ErrCorrupt, "a read from it")
			// A seek to a time after its own (records arrive two a
			// millisecond, from an even counter on) passes over it.
			k := c.counter + 2 + c.counter%2
			at, _, err := ts.seek(want[k].arrivalMs, 480)
			require.NoError(t, err)
			assert.Equal(t, k, at)
		})
	}
}

// Retention removes whole segment files once their newest record has
// expired, and DiskBytes goes down; when the segment being written has
// expired whole, the writer starts a new one named by the next counter,
// so that a restart goes on from there.
func TestFileStoreRetentionRemovesSegments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := fileStoreConfig{dir: t.TempDir(), segmentBytes: 8 << 10}
		ts := openTestFileStore(t, cfg)
		for b := range 10 {
			ts.mustPut(makeRecords(uint64(b)*70, 70, 1000+int64(b)*100, 100)...) // one segment each
		}
		synctest.Wait()
		var before int64
		ts.locked(func(st store) { before = st.disk() })
		require.Len(t, segmentFiles(t, cfg.dir, ".seg"), 10)
		ts.trim(1420) // batches 0 to 3 have expired, batch 4 in part
		synctest.Wait()
		assert.Len(t, segmentFiles(t, cfg.dir, ".seg"), 6)
		assert.Len(t, segmentFiles(t, cfg.dir, ".idx"), 6)
		assert.Equal(t, segmentName(280, ".seg"), segmentFiles(t, cfg.dir, ".seg")[0])
		ts.locked(func(st store) {
			assert.Less(t, st.disk(), before*7/10)
			first, _ := st.first()
			assert.LessOrEqual(t, first, uint64(320))
		})
		assert.Equal(t, uint64(320), ts.all(0)[0].counter)

		ts.trim(3000) // everything
		synctest.Wait()
		assert.Equal(t, []string{segmentName(700, ".seg")}, segmentFiles(t, cfg.dir, ".seg"))
		assert.Empty(t, ts.all(0))
		ts.locked(func(st store) {
			assert.Equal(t, int64(2*fileHeaderLen), st.disk())
			n, _ := st.size()
			assert.Zero(t, n)
		})
		ts, next := ts.reopen(cfg)
		assert.Equal(t, uint64(700), next)
		assert.Empty(t, ts.all(0))
	})
}

// A failed write is never acknowledged: its writers get an error naming
// the file, its records never become readable, the file is truncated back
// and the store goes on. A failed fsync, or a failed truncation, fails the
// store closed: later puts fail at once, what was durable stays readable,
// and close reports the error.
func TestFileStoreWriteFaults(t *testing.T) {
	cases := []struct {
		name   string
		file   string // the file whose fault fails the put
		inject func(*faultFS)
		closed bool // the store fails closed
	}{
		{"short write", ".seg", func(f *faultFS) { f.shortWrites = 1 }, false},
		{"disk full", ".seg", func(f *faultFS) { f.space = 100 }, false},
		{"short write of the index", ".idx", func(f *faultFS) { f.shortWrites = 1 }, false},
		{"fsync", ".seg", func(f *faultFS) { f.syncErrs = 1 }, true},
		{"short write, then the truncation", ".seg", func(f *faultFS) { f.shortWrites, f.truncErrs = 1, 1 }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ffs := newFaultFS()
			cfg := fileStoreConfig{dir: t.TempDir(), fs: ffs}
			ts := openTestFileStore(t, cfg)
			good := makeRecords(0, 100, 100, 100)
			ts.mustPut(good...)
			seg := filepath.Join(cfg.dir, segmentName(0, ".seg"))
			size := fileSize(t, seg)
			ffs.on(c.file, c.inject)
			err := ts.put(makeRecords(100, 100, 200, 100)...) // 12 KiB: index entries too
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInternalFailure)
			assert.Contains(t, err.Error(), filepath.Join(cfg.dir, segmentName(0, c.file)))
			assert.Equal(t, good, ts.all(0), "the failed put's records are not readable")
			ffs.on("", func(f *faultFS) { f.space, f.shortWrites, f.syncErrs, f.truncErrs = -1, 0, 0, 0 })
			more := makeRecords(300, 10, 300, 100)
			err2 := ts.put(more...)
			if c.closed {
				require.Error(t, err2, "the store failed closed")
				assert.Contains(t, err2.Error(), cfg.dir)
				assert.Equal(t, good, ts.all(0), "what was durable stays readable")
				assert.Error(t, ts.st.close())
				return
			}
			require.NoError(t, err2, "the store goes on")
			assert.Equal(t, size+int64(len(more))*(recordHeaderLen+7+100), fileSize(t, seg), "truncated back, then written")
			ts, _ = ts.reopen(cfg)
			assert.Equal(t, append(good, more...), ts.all(0))
		})
	}
}

// A failure to start a new segment (the disk is full) fails the put that
// needed it, leaves no file behind, and the store goes on in the old
// segment once there is room.
func TestFileStoreRollFault(t *testing.T) {
	ffs := newFaultFS()
	cfg := fileStoreConfig{dir: t.TempDir(), fs: ffs, segmentBytes: 8 << 10}
	ts := openTestFileStore(t, cfg)
	good := makeRecords(0, 100, 100, 100) // 13 KiB: the next put starts a segment
	ts.mustPut(good...)
	ffs.on(".seg", func(f *faultFS) { f.space = 0 })
	err := ts.put(makeRecords(100, 10, 200, 100)...)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInternalFailure)
	assert.Contains(t, err.Error(), filepath.Join(cfg.dir, segmentName(100, ".seg")))
	assert.Equal(t, []string{segmentName(0, ".seg")}, segmentFiles(t, cfg.dir, ".seg"))
	assert.Equal(t, []string{segmentName(0, ".idx")}, segmentFiles(t, cfg.dir, ".idx"))
	ffs.on("", func(f *faultFS) { f.space = -1 })
	more := makeRecords(110, 10, 300, 100)
	ts.mustPut(more...)
	assert.Equal(t, []string{segmentName(0, ".seg"), segmentName(110, ".seg")}, segmentFiles(t, cfg.dir, ".seg"))
	ts, next := ts.reopen(cfg)
	assert.Equal(t, uint64(120), next)
	assert.Equal(t, append(good, more...), ts.all(0))
}

// Under SyncInterval and SyncOS a put is acknowledged before it is
// written, so a failed write fails the store closed: later puts fail, and
// close reports it.
func TestFileStoreWriteFaultsAcknowledged(t *testing.T) {
	for _, p := range policies[1:] {
		t.Run(p.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ffs := newFaultFS()
				cfg := fileStoreConfig{dir: t.TempDir(), fs: ffs, sync: p}
				ts := openTestFileStore(t, cfg)
				ts.mustPut(makeRecords(0, 10, 100, 100)...)
				synctest.Wait()
				ffs.on(".seg", func(f *faultFS) { f.space = 10 })
				acked := makeRecords(10, 10, 200, 100)
				require.NoError(t, ts.put(acked...), "acknowledged before it is written")
				time.Sleep(time.Second)
				synctest.Wait()
				err := ts.put(makeRecords(20, 1, 300, 1)...)
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInternalFailure)
				assert.Contains(t, err.Error(), segmentName(0, ".seg"))
				err = ts.st.close()
				assert.Error(t, err)
				assert.Contains(t, err.Error(), "no space left")
			})
		})
	}
}

// Under SyncInterval, records are written and fsynced an interval after
// the previous write, in virtual time, and not before.
func TestFileStoreInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ffs := newFaultFS()
		cfg := fileStoreConfig{dir: t.TempDir(), fs: ffs, sync: SyncInterval(time.Second)}
		ts := openTestFileStore(t, cfg)
		seg := filepath.Join(cfg.dir, segmentName(0, ".seg"))
		ts.mustPut(makeRecords(0, 5, 100, 10)...) // the first write comes at once
		synctest.Wait()
		written, syncs := fileSize(t, seg), ffs.fsyncs(".seg")
		start := time.Now()
		for i := range 10 {
			ts.mustPut(makeRecords(5+uint64(i), 1, 200, 10)...) // readable at once
			time.Sleep(50 * time.Millisecond)
		}
		assert.Len(t, ts.all(0), 15)
		time.Sleep(time.Second - 1*time.Millisecond - time.Since(start))
		synctest.Wait()
		assert.Equal(t, written, fileSize(t, seg), "nothing written before the interval has passed")
		assert.Equal(t, syncs, ffs.fsyncs(".seg"))
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		assert.Greater(t, fileSize(t, seg), written, "written once the interval has passed")
		assert.Equal(t, syncs+1, ffs.fsyncs(".seg"), "and fsynced once")
	})
}

// The unwritten records are bounded: past the bound a put waits for the
// writer, which writes at once, and its records are readable only then.
func TestFileStoreBackPressure(t *testing.T) {
	for _, p := range []SyncPolicy{SyncInterval(time.Hour), SyncOS()} {
		t.Run(p.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := fileStoreConfig{dir: t.TempDir(), sync: p, bufferBytes: 4 << 10}
				ts := openTestFileStore(t, cfg)
				ts.mustPut(makeRecords(0, 1, 100, 10)...)
				synctest.Wait()
				start := time.Now()
				ts.mustPut(makeRecords(1, 30, 100, 100)...) // 3 KiB
				held := makeRecords(31, 30, 100, 100)
				ts.mu.Lock()
				for _, r := range held {
					ts.st.append(r.counter, r.arrivalMs, r.key, []byte(r.data))
				}
				pw := ts.st.commit()
				if pw == nil && p.mode == syncOS {
					ts.mu.Unlock()
					return // the writer had written the put before: no back-pressure to see
				}
				require.NotNil(t, pw, "over the bound, the put waits")
				spans, _, _ := ts.st.readSpans(nil, 31, 100, 1<<20)
				assert.Empty(t, spans, "and its records are not readable yet")
				ts.mu.Unlock()
				require.NoError(t, pw.wait(context.Background()))
				assert.Less(t, time.Since(start), time.Hour, "without waiting for the interval")
				assert.Len(t, ts.all(0), 61)
			})
		})
	}
}

// A put that comes while a put that waits is being written (and the
// buffer is under its bound) waits for that write only: its records are
// published with it, and the puts after it are published at once.
func TestFileStoreBehindWaitingPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ffs := newFaultFS()
		cfg := fileStoreConfig{dir: t.TempDir(), fs: ffs, sync: SyncInterval(time.Hour), bufferBytes: 4 << 10}
		ts := openTestFileStore(t, cfg)
		ts.mustPut(makeRecords(0, 1, 100, 10)...) // the first write comes at once
		synctest.Wait()
		gate := make(chan struct{})
		ffs.on("", func(f *faultFS) { f.syncGate = gate })
		commit := func(recs []testRecord) pendingWrite {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			for _, r := range recs {
				ts.st.append(r.counter, r.arrivalMs, r.key, []byte(r.data))
			}
			return ts.st.commit()
		}
		start := time.Now()
		big := commit(makeRecords(1, 50, 100, 100)) // over the bound: waits for its write
		require.NotNil(t, big)
		synctest.Wait() // the writer is in the fsync
		behind := commit(makeRecords(51, 2, 100, 10))
		require.NotNil(t, behind, "a put behind one that waits waits")
		ts.locked(func(st store) {
			spans, _, _ := st.readSpans(nil, 0, 100, 1<<20)
			assert.Len(t, spans, 1, "only the first put is readable")
			assert.Len(t, spans[0].metas, 1)
		})
		gate <- struct{}{}
		require.NoError(t, big.wait(context.Background()))
		require.NoError(t, behind.wait(context.Background()))
		assert.Zero(t, time.Since(start), "without waiting for the interval")
		assert.Len(t, ts.all(0), 53)
		ffs.on("", func(f *faultFS) { f.syncGate = nil })
		assert.Nil(t, commit(makeRecords(53, 2, 100, 10)), "the next put is published at once")
	})
}

// Under SyncAlways, puts appended while a write and fsync run share the
// next one (group commit).
func TestFileStoreGroupCommit(t *testing.T) {
	ffs := newFaultFS()
	ts := openTestFileStore(t, fileStoreConfig{dir: t.TempDir(), fs: ffs})
	const writers, puts = 8, 40
	var mu sync.Mutex
	next := uint64(0)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range puts {
				// Counters are assigned under the store's lock, as the shard does.
				ts.mu.Lock()
				mu.Lock()
				recs := makeRecords(next, 10, 100, 100)
				next += 10
				mu.Unlock()
				for _, r := range recs {
					ts.st.append(r.counter, r.arrivalMs, r.key, []byte(r.data))
				}
				pw := ts.st.commit()
				ts.mu.Unlock()
				assert.NoError(t, pw.wait(context.Background()))
			}
		})
	}
	wg.Wait()
	got := ts.all(0)
	require.Len(t, got, writers*puts*10)
	for i, r := range got {
		require.Equal(t, uint64(i), r.counter)
	}
	assert.Less(t, ffs.fsyncs(".seg"), writers*puts*3/4, "fsyncs for %d puts", writers*puts)
	t.Logf("%d fsyncs for %d puts", ffs.fsyncs(".seg"), writers*puts)
}

// Memory stays bounded while much more is written than the cache holds:
// the cache, the index and the buffers.
func TestFileStoreMemoryBounded(t *testing.T) {
	const cache, buffer = 1 << 20, 1 << 20
	ts := openTestFileStore(t, fileStoreConfig{dir: t.TempDir(), sync: SyncOS(), segmentBytes: 4 << 20, cacheBytes: cache, bufferBytes: buffer})
	const total = 64 << 20
	data := strings.Repeat("x", 1000)
	var peak int64
	recs := make([]testRecord, 500)
	counter := uint64(0)
	for written := 0; written < total; written += len(recs) * len(data) {
		for i := range recs {
			recs[i] = testRecord{counter, 100, "key", data}
			counter++
		}
		ts.mustPut(recs...)
		ts.locked(func(st store) { peak = max(peak, st.memory()) })
	}
	index := int64(total / indexInterval * 24)
	bound := 2*cache + index + 3*2*(buffer+int64(len(recs)*(len(data)+30)))
	t.Logf("peak memory %d bytes (bound %d) for %d MiB written", peak, bound, total>>20)
	assert.Less(t, peak, bound)
	ts.locked(func(st store) {
		n, _ := st.size()
		assert.Equal(t, int64(counter), n)
		assert.Greater(t, st.disk(), int64(total))
	})
}

// Recovery reads the index files and, of the segments, only the tail
// after the last segment's last index entry: its time does not grow with
// the data held.
func TestFileStoreRecoveryScansTail(t *testing.T) {
	cfg := fileStoreConfig{dir: t.TempDir(), segmentBytes: 64 << 10}
	ts := openTestFileStore(t, cfg)
	for b := range 40 {
		ts.mustPut(makeRecords(uint64(b)*200, 200, 100+int64(b)*100, 100)...) // 25 KiB a put
	}
	require.NoError(t, ts.st.close())
	require.Greater(t, len(segmentFiles(t, cfg.dir, ".seg")), 10)
	ffs := newFaultFS()
	cfg.fs = ffs
	ts = openTestFileStore(t, cfg)
	read := ffs.bytesRead(".seg")
	t.Logf("recovery read %d bytes of segments, %d of indexes", read, ffs.bytesRead(".idx"))
	assert.LessOrEqual(t, read, int64(indexInterval+256), "bytes of segments read by recovery")
	assert.Len(t, ts.all(0), 8000)
}

// Cold reads of a segment that retention removed meanwhile return no
// records and no error.
func TestFileStoreColdReadOfRemovedSegment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := openTestFileStore(t, fileStoreConfig{dir: t.TempDir(), segmentBytes: 4 << 10, cacheBytes: 1})
		for b := range 5 {
			ts.mustPut(makeRecords(uint64(b)*50, 50, 100+int64(b)*100, 100)...)
		}
		synctest.Wait()
		var cold coldReader
		ts.locked(func(st store) { cold = st.cold(0) })
		require.NotNil(t, cold)
		ts.trim(150)
		synctest.Wait()
		recs, next, _, err := cold.read(nil, 0, 100, 1<<20, 0)
		require.NoError(t, err)
		assert.Empty(t, recs)
		assert.Equal(t, uint64(50), next)
	})
}

// close writes and fsyncs what is pending under every policy, may be
// called twice, and leaves no goroutine behind.
func TestFileStoreClose(t *testing.T) {
	for _, p := range []SyncPolicy{SyncInterval(time.Hour), SyncOS(), SyncAlways()} {
		t.Run(p.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ffs := newFaultFS()
			cfg := fileStoreConfig{dir: t.TempDir(), fs: ffs, sync: p}
			st, _, err := openFileStore(withLock(cfg))
			require.NoError(t, err)
			ts := &testStore{t: t, st: st, mu: st.mu}
			want := makeRecords(0, 20, 100, 10)
			ts.mustPut(want[:10]...)
			ts.mustPut(want[10:]...)
			syncs := ffs.fsyncs(".seg")
			require.NoError(t, st.close())
			require.NoError(t, st.close())
			assert.Greater(t, ffs.fsyncs(".seg"), syncs, "close fsyncs")
			assert.ErrorIs(t, ts.put(makeRecords(20, 1, 100, 1)...), ErrClosed)
			st, next, err := openFileStore(withLock(cfg))
			require.NoError(t, err)
			assert.Equal(t, uint64(20), next)
			assert.Equal(t, want, (&testStore{t: t, st: st, mu: st.mu}).all(0))
			require.NoError(t, st.close())
		})
	}
}

// A file that is not a segment fails the open with ErrCorrupt.
func TestFileStoreOpenNotASegment(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, segmentName(0, ".seg")), []byte("not a segment file"), 0o644))
	_, _, err := openFileStore(withLock(fileStoreConfig{dir: dir}))
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), segmentName(0, ".seg"))
}

// benchPut writes PutRecords of perPut 100-byte records to the stores
// from 4 goroutines, each put spread over every store as PutRecords
// spreads over a stream's shards, with retention trimming the oldest
// records, and reports records/s.
func benchPut(b *testing.B, stores []*testStore, perPut int) {
	data := []byte(strings.Repeat("d", benchRecordSize))
	keys := benchKeys(perPut)
	next := make([]uint64, len(stores)) // next[i] is guarded by stores[i].mu
	b.ReportAllocs()
	b.SetParallelism(4 / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		pws := make([]pendingWrite, len(stores))
		for pb.Next() {
			for i, ts := range stores {
				ts.mu.Lock()
				// A record arrives every 1/1024 ms; records expire after
				// 100 ms: a store holds about 100,000.
				ts.st.trim(int64(next[i]>>10) - 100)
				for k := i; k < perPut; k += len(stores) {
					ts.st.append(next[i], int64(next[i]>>10), keys[k], data)
					next[i]++
				}
				pws[i] = ts.st.commit()
				ts.mu.Unlock()
			}
			for _, pw := range pws {
				if pw != nil {
					if err := pw.wait(context.Background()); err != nil {
						panic(err)
					}
				}
			}
		}
	})
	reportRecords(b, b.N*perPut)
}

// BenchmarkFileStorePut: PutRecords of 500 records from 4 goroutines to 4
// shards' stores, by policy, against the memory store.
func BenchmarkFileStorePut(b *testing.B) {
	kinds := []struct {
		name string
		open func(b *testing.B) *testStore
	}{
		{"memory", func(b *testing.B) *testStore { return &testStore{t: b, st: newMemStore(), mu: new(sync.Mutex)} }},
	}
	for _, p := range policies {
		kinds = append(kinds, struct {
			name string
			open func(b *testing.B) *testStore
		}{"file/" + p.String(), func(b *testing.B) *testStore {
			return openTestFileStore(b, fileStoreConfig{dir: b.TempDir(), sync: p})
		}})
	}
	// SyncAlways on a model of a disk whose fsync takes 250 µs: the
	// writer's batching, apart from this machine's fsync latency.
	kinds = append(kinds, struct {
		name string
		open func(b *testing.B) *testStore
	}{"file/always/fsync=250µs", func(b *testing.B) *testStore {
		ffs := newFaultFS()
		ffs.syncLatency = 250 * time.Microsecond
		return openTestFileStore(b, fileStoreConfig{dir: b.TempDir(), fs: ffs})
	}})
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			stores := make([]*testStore, 4)
			for i := range stores {
				stores[i] = k.open(b)
			}
			benchPut(b, stores, 500)
		})
	}
}

// BenchmarkFileStoreColdRead: GetRecords of 10,000 records draining a
// shard from its segment files (the operating system's cache holds them).
func BenchmarkFileStoreColdRead(b *testing.B) {
	ts := openTestFileStore(b, fileStoreConfig{dir: b.TempDir(), sync: SyncOS(), cacheBytes: 1})
	const n = 200_000
	data := []byte(strings.Repeat("d", benchRecordSize))
	keys := benchKeys(1000)
	for c := uint64(0); c < n; c += 1000 {
		ts.mu.Lock()
		for i := range uint64(1000) {
			ts.st.append(c+i, 100, keys[i], data)
		}
		pw := ts.st.commit()
		ts.mu.Unlock()
		if pw != nil {
			require.NoError(b, pw.wait(context.Background()))
		}
	}
	require.NoError(b, ts.st.close()) // everything on disk
	ts, _ = ts.reopen(fileStoreConfig{dir: ts.st.(*fileStore).dir})
	dst := make([]Record, 0, 10_000)
	records := 0
	b.ReportAllocs()
	for b.Loop() {
		from := uint64(0)
		for {
			ts.mu.Lock()
			cold := ts.st.cold(from)
			ts.mu.Unlock()
			if cold == nil {
				break
			}
			recs, next, _, err := cold.read(dst[:0], 0, 10_000, 10<<20, 0)
			if err != nil {
				b.Fatal(err)
			}
			records += len(recs)
			from = next
		}
	}
	reportRecords(b, records)
}

// A put whose context ends while its fsync hangs returns the context's
// error rather than waiting for the disk; its record is not acknowledged.
// Once the disk answers the store goes on, and the record, which reached
// it, is readable.
func TestDurablePutContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ffs := newFaultFS()
		c, err := Open(t.TempDir(), withFileSystem(ffs))
		require.NoError(t, err)
		defer c.Close()
		s, err := c.CreateStream(context.Background(), "ctx", WithShardCount(1))
		require.NoError(t, err)
		gate := make(chan struct{})
		ffs.on("", func(f *faultFS) { f.syncGate = gate })
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("x")})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, "PutRecord", e.Op)
		ffs.on("", func(f *faultFS) { f.syncGate = nil })
		close(gate)
		out, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", Data: []byte("y")})
		require.NoError(t, err)
		var data []string
		for rec, err := range s.Records(context.Background(), out.ShardID, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			data = append(data, string(rec.Data))
		}
		assert.Equal(t, []string{"x", "y"}, data)
	})
}

// A put that a full disk fails is not acknowledged and not counted: the
// shard's RecordsPut counts only what it stored, and it goes on taking
// puts once there is room again.
func TestDurablePutDiskFull(t *testing.T) {
	ffs := newFaultFS()
	c, err := Open(t.TempDir(), withFileSystem(ffs))
	require.NoError(t, err)
	defer c.Close()
	s, err := c.CreateStream(context.Background(), "full", WithShardCount(1))
	require.NoError(t, err)
	put := func(data string) error {
		_, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", Data: []byte(data)})
		return err
	}
	require.NoError(t, put("a"))
	ffs.on(".seg", func(f *faultFS) { f.space = 0 })
	err = put("b")
	require.ErrorIs(t, err, ErrInternalFailure)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.Equal(t, int64(1), s.Stats().Total.RecordsPut, "the failed record is not counted")
	ffs.on(".seg", func(f *faultFS) { f.space = -1 })
	require.NoError(t, put("c"))
	assert.Equal(t, int64(2), s.Stats().Total.RecordsPut)
	var data []string
	for rec, err := range s.Records(context.Background(), "shardId-000000000000", StartingPosition{Type: TrimHorizon}) {
		require.NoError(t, err)
		data = append(data, string(rec.Data))
	}
	assert.Equal(t, []string{"a", "c"}, data, "the failed record is never readable")
}
