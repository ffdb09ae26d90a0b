package runnel

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The behaviour every store shares, at the level of the store interface,
// run against the memory store and the file store under each policy. The
// file stores have small segments and a small cache, so that reads go
// to their files.

// storeKind opens a store of one implementation for a test.
type storeKind struct {
	name string
	open func(t testing.TB, base uint64) *testStore
}

func storeKinds() []storeKind {
	file := func(p SyncPolicy) func(testing.TB, uint64) *testStore {
		return func(t testing.TB, base uint64) *testStore {
			return openTestFileStore(t, fileStoreConfig{dir: t.TempDir(), sync: p, segmentBytes: 16 << 10, cacheBytes: 8 << 10, base: base})
		}
	}
	return []storeKind{
		{"memory", func(t testing.TB, _ uint64) *testStore {
			return &testStore{t: t, st: newMemStore(), mu: new(sync.Mutex), cutoffMs: math.MinInt64}
		}},
		{"file/always", file(SyncAlways())},
		{"file/interval", file(SyncInterval(2 * time.Millisecond))},
		{"file/os", file(SyncOS())},
	}
}

// forEachStore runs test against every kind of store.
func forEachStore(t *testing.T, test func(t *testing.T, open func(base uint64) *testStore)) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			test(t, func(base uint64) *testStore { return k.open(t, base) })
		})
	}
}

// testStore is a store under test with the lock it is called under, used
// the way a shard uses it. The store is closed when the test ends.
type testStore struct {
	t        testing.TB
	st       store
	mu       *sync.Mutex
	cutoffMs int64 // of the last trim
}

// openTestFileStore opens a file store with cfg (and a lock of its own if
// cfg has none) and closes it when the test ends.
func openTestFileStore(t testing.TB, cfg fileStoreConfig) *testStore {
	t.Helper()
	if cfg.mu == nil {
		cfg.mu = new(sync.Mutex)
	}
	st, _, err := openFileStore(cfg)
	require.NoError(t, err)
	ts := &testStore{t: t, st: st, mu: cfg.mu, cutoffMs: math.MinInt64}
	t.Cleanup(func() { ts.st.close() })
	return ts
}

// testRecord is a record as the tests write and expect it.
type testRecord struct {
	counter   uint64
	arrivalMs int64
	key       string
	data      string
}

func (r testRecord) String() string {
	return fmt.Sprintf("#%d@%d %q=%dB", r.counter, r.arrivalMs, r.key, len(r.data))
}

// put appends recs as one put, commits and waits for the store.
func (ts *testStore) put(recs ...testRecord) error {
	ts.mu.Lock()
	for _, r := range recs {
		ts.st.append(r.counter, r.arrivalMs, r.key, []byte(r.data))
	}
	pw := ts.st.commit()
	ts.mu.Unlock()
	if pw == nil {
		return nil
	}
	return pw.wait(context.Background())
}

// mustPut is put that fails the test on error.
func (ts *testStore) mustPut(recs ...testRecord) {
	ts.t.Helper()
	require.NoError(ts.t, ts.put(recs...))
}

// locked runs f with the store's lock held.
func (ts *testStore) locked(f func(st store)) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	f(ts.st)
}

// trim trims the store at cutoffMs.
func (ts *testStore) trim(cutoffMs int64) {
	ts.cutoffMs = max(ts.cutoffMs, cutoffMs)
	ts.locked(func(st store) { st.trim(ts.cutoffMs) })
}

// readOnce is one read from counter from as a shard does it: records
// held only on disk through cold(), the others with readSpans, skipping
// records that arrived before the last trim's cutoff. It returns the
// records, the counter to continue from and the error of a cold read.
func (ts *testStore) readOnce(from uint64, limit, maxBytes int) ([]testRecord, uint64, error) {
	ts.mu.Lock()
	if first, ok := ts.st.first(); ok && first > from {
		from = first
	}
	if cold := ts.st.cold(from); cold != nil {
		ts.mu.Unlock()
		recs, next, _, err := cold.read(nil, 3, limit, maxBytes, ts.cutoffMs)
		return testRecords(recs), max(next, from), err
	}
	spans, next, _ := ts.st.readSpans(nil, from, limit, maxBytes)
	ts.mu.Unlock()
	return testRecords(appendSpans(nil, 3, spans)), max(next, from), nil
}

// readFrom reads everything from counter from on, in reads of at most
// limit records and maxBytes, and returns the records and the counter
// after them.
func (ts *testStore) readFrom(from uint64, limit, maxBytes int) ([]testRecord, uint64, error) {
	var out []testRecord
	for range 1_000_000 {
		recs, next, err := ts.readOnce(from, limit, maxBytes)
		out = append(out, recs...)
		if err != nil || len(recs) == 0 && next == from {
			return out, next, err
		}
		require.LessOrEqual(ts.t, len(recs), limit)
		from = next
	}
	ts.t.Fatal("readFrom did not reach the end")
	return nil, 0, nil
}

// all reads every record from counter from on, failing the test on error.
func (ts *testStore) all(from uint64) []testRecord {
	ts.t.Helper()
	recs, _, err := ts.readFrom(from, 1000, 1<<20)
	require.NoError(ts.t, err)
	return recs
}

// seek resolves a timestamp as a shard does: seekTime, then the cold
// reader's seek when it returns one. It returns the lower bound seekTime
// gave too.
func (ts *testStore) seek(tsMs int64, next uint64) (at, bound uint64, err error) {
	ts.mu.Lock()
	bound, cold := ts.st.seekTime(tsMs, next)
	ts.mu.Unlock()
	if cold == nil {
		return bound, bound, nil
	}
	at, err = cold.seek(tsMs)
	return at, bound, err
}

func testRecords(recs []Record) []testRecord {
	out := make([]testRecord, len(recs))
	for i, r := range recs {
		out[i] = testRecord{r.SequenceNumber.counter, r.ApproximateArrivalTimestamp.UnixMilli(), r.PartitionKey, string(r.Data)}
	}
	return out
}

// makeRecords returns n records with counters from first on, arriving
// from arrivalMs on, one millisecond apart every other record.
func makeRecords(first uint64, n int, arrivalMs int64, dataLen int) []testRecord {
	recs := make([]testRecord, n)
	for i := range recs {
		c := first + uint64(i)
		recs[i] = testRecord{c, arrivalMs + int64(i/2), fmt.Sprintf("key-%d", c), fmt.Sprintf("%0*d", dataLen, c)}
	}
	return recs
}

// kept returns the records of want with a counter ≥ from that
// arrived at or after cutoffMs.
func kept(want []testRecord, from uint64, cutoffMs int64) []testRecord {
	var out []testRecord
	for _, r := range want {
		if r.counter >= from && r.arrivalMs >= cutoffMs {
			out = append(out, r)
		}
	}
	return out
}

func TestStoreAppendRead(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(uint64) *testStore) {
		ts := open(100)
		var want []testRecord
		for b := range 20 {
			recs := makeRecords(100+uint64(b)*50, 50, 1000+int64(b)*100, 100)
			ts.mustPut(recs...)
			want = append(want, recs...)
		}
		assert.Equal(t, want, ts.all(0), "everything")
		assert.Equal(t, want, ts.all(100), "from the first record")
		assert.Equal(t, want[537:], ts.all(637), "from a record in the middle")
		assert.Empty(t, ts.all(1100), "from the end")
		// Small reads return at most their limit and byte budget, and at
		// least one record.
		for _, c := range []struct{ limit, maxBytes int }{{1, 1 << 20}, {7, 1 << 20}, {1000, 1}, {1000, 1000}} {
			recs, _, err := ts.readFrom(100, c.limit, c.maxBytes)
			require.NoError(t, err)
			assert.Equal(t, want, recs, "limit %d, %d bytes", c.limit, c.maxBytes)
			got, _, err := ts.readOnce(100, c.limit, c.maxBytes)
			require.NoError(t, err)
			bytes := 0
			for _, r := range got[:max(len(got)-1, 0)] {
				bytes += len(r.key) + len(r.data)
			}
			assert.NotEmpty(t, got)
			assert.LessOrEqual(t, len(got), c.limit)
			assert.LessOrEqual(t, bytes, c.maxBytes)
		}
		ts.locked(func(st store) {
			assert.False(t, st.pending())
			first, ok := st.first()
			assert.True(t, ok)
			assert.Equal(t, uint64(100), first)
			n, bytes := st.size()
			assert.Equal(t, int64(len(want)), n)
			wantBytes := 0
			for _, r := range want {
				wantBytes += len(r.key) + len(r.data)
			}
			assert.Equal(t, int64(wantBytes), bytes)
			oldest, newest := st.oldestNewest()
			assert.Equal(t, want[0].arrivalMs, oldest)
			assert.Equal(t, want[len(want)-1].arrivalMs, newest)
			assert.Positive(t, st.memory())
			for _, c := range []uint64{100, 637, 1099} {
				arrival, ok := st.arrivalAt(c)
				assert.True(t, ok)
				assert.LessOrEqual(t, arrival, want[c-100].arrivalMs, "arrivalAt(%d)", c)
			}
			_, ok = st.arrivalAt(1100)
			assert.False(t, ok, "arrivalAt past the newest record")
		})
	})
}

func TestStoreEmpty(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(uint64) *testStore) {
		ts := open(5)
		assert.Empty(t, ts.all(0))
		ts.locked(func(st store) {
			_, ok := st.first()
			assert.False(t, ok)
			n, bytes := st.size()
			assert.Zero(t, n)
			assert.Zero(t, bytes)
			at, cold := st.seekTime(10, 5)
			assert.Nil(t, cold)
			assert.Equal(t, uint64(5), at)
			assert.Nil(t, st.commit(), "a commit of no records")
		})
	})
}

// Counters may have gaps (SequenceNumberForOrdering skips ahead): reads
// from inside a gap start at the next record.
func TestStoreGaps(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(uint64) *testStore) {
		ts := open(0)
		var want []testRecord
		c := uint64(0)
		for i := range 300 {
			if i%7 == 3 {
				c += uint64(i % 5 * 100)
			}
			want = append(want, testRecord{c, 50 + int64(i), "k", fmt.Sprintf("%0200d", i)})
			c++
		}
		for i := 0; i < len(want); i += 30 {
			ts.mustPut(want[i:min(i+30, len(want))]...)
		}
		assert.Equal(t, want, ts.all(0))
		for i, r := range want[1:] {
			if prev := want[i]; r.counter > prev.counter+1 {
				assert.Equal(t, want[i+1:], ts.all(prev.counter+1), "from the gap after %d", prev.counter)
				ts.locked(func(st store) {
					arrival, ok := st.arrivalAt(prev.counter + 1)
					assert.True(t, ok)
					assert.LessOrEqual(t, arrival, r.arrivalMs)
				})
			}
		}
	})
}

// seekTime finds the first record that arrived at or after a time,
// exactly, through the cold reader when it returns one; its own answer
// is then a lower bound.
func TestStoreSeekTime(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(uint64) *testStore) {
		ts := open(10)
		var want []testRecord
		for b := range 30 {
			recs := makeRecords(10+uint64(b)*40, 40, 1000+int64(b)*30, 150) // two records a millisecond
			ts.mustPut(recs...)
			want = append(want, recs...)
		}
		next := want[len(want)-1].counter + 1
		for tsMs := int64(990); tsMs <= want[len(want)-1].arrivalMs+2; tsMs++ {
			expect := next
			for _, r := range want {
				if r.arrivalMs >= tsMs {
					expect = r.counter
					break
				}
			}
			at, bound, err := ts.seek(tsMs, next)
			require.NoError(t, err)
			require.Equal(t, expect, at, "seek %d", tsMs)
			require.LessOrEqual(t, bound, at, "seekTime's bound at %d", tsMs)
		}
	})
}

// Trimming drops the records that arrived before the cutoff: reads no
// longer return them, first is at most the first retained record, and
// size counts at least the retained records. Once all have expired, the
// store reports none.
func TestStoreTrim(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(uint64) *testStore) {
		ts := open(0)
		var want []testRecord
		for b := range 40 {
			recs := makeRecords(uint64(b)*25, 25, 1000+int64(b)*100, 300)
			ts.mustPut(recs...)
			want = append(want, recs...)
		}
		for _, cutoff := range []int64{1000, 1550, 2400, 3999, 4400, 4412} {
			ts.trim(cutoff)
			keep := kept(want, 0, cutoff)
			assert.Equal(t, keep, ts.all(0), "after a trim at %d", cutoff)
			ts.locked(func(st store) {
				first, ok := st.first()
				require.True(t, ok)
				assert.LessOrEqual(t, first, keep[0].counter, "first after a trim at %d", cutoff)
				n, _ := st.size()
				assert.GreaterOrEqual(t, n, int64(len(keep)), "size after a trim at %d", cutoff)
				assert.LessOrEqual(t, n, int64(len(want)))
				oldest, newest := st.oldestNewest()
				assert.LessOrEqual(t, oldest, keep[0].arrivalMs)
				assert.GreaterOrEqual(t, oldest, cutoff)
				assert.Equal(t, want[len(want)-1].arrivalMs, newest)
			})
			at, _, err := ts.seek(cutoff, 1000)
			require.NoError(t, err)
			assert.Equal(t, keep, kept(ts.all(at), 0, cutoff), "from seek(%d)", cutoff)
		}
		ts.trim(5000)
		assert.Empty(t, ts.all(0))
		ts.locked(func(st store) {
			_, ok := st.first()
			assert.False(t, ok, "first once every record expired")
			n, bytes := st.size()
			assert.Zero(t, n)
			assert.Zero(t, bytes)
		})
		// New records after everything expired.
		more := makeRecords(1000, 10, 6000, 10)
		ts.mustPut(more...)
		assert.Equal(t, more, ts.all(0))
	})
}

// A put's records are pending until its wait returns (for the policies
// that wait), and readable after.
func TestStorePending(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(uint64) *testStore) {
		ts := open(0)
		recs := makeRecords(0, 10, 100, 10)
		ts.mu.Lock()
		for _, r := range recs {
			ts.st.append(r.counter, r.arrivalMs, r.key, []byte(r.data))
		}
		pw := ts.st.commit()
		if pw != nil {
			assert.True(t, ts.st.pending(), "records wait for a write")
			spans, _, _ := ts.st.readSpans(nil, 0, 100, 1<<20)
			assert.Empty(t, spans, "the records are not readable before they are written")
		} else {
			assert.False(t, ts.st.pending())
		}
		ts.mu.Unlock()
		if pw != nil {
			require.NoError(t, pw.wait(context.Background()))
		}
		ts.locked(func(st store) { assert.False(t, st.pending()) })
		assert.Equal(t, recs, ts.all(0))
	})
}

// TestStoreProperty runs random batches (with gaps in the counters and
// records of many sizes), trims and reads against a model of the
// records: nothing is lost or duplicated, and the order is kept.
func TestStoreProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	forEachStore(t, func(t *testing.T, open func(uint64) *testStore) {
		rng := rand.New(rand.NewPCG(seed, 7))
		ts := open(1000)
		var model []testRecord
		next, nowMs, cutoff := uint64(1000), int64(1_000_000), int64(math.MinInt64)
		for op := range 400 {
			switch k := rng.IntN(10); {
			case k < 6:
				batch := make([]testRecord, 1+rng.IntN(40))
				for i := range batch {
					if rng.IntN(25) == 0 {
						next += uint64(rng.IntN(10))
					}
					size := rng.IntN(200)
					if rng.IntN(30) == 0 {
						size = rng.IntN(20 << 10)
					}
					batch[i] = testRecord{next, nowMs, fmt.Sprintf("k%d", rng.IntN(1000)), string(randomBytes(rng, size))}
					next++
					nowMs += int64(rng.IntN(3))
				}
				ts.mustPut(batch...)
				model = append(model, batch...)
			case k < 7:
				cutoff = max(cutoff, nowMs-int64(rng.IntN(400)))
				ts.trim(cutoff)
			default:
				from := uint64(900 + rng.IntN(int(next-900)+10))
				limit, maxBytes := 1+rng.IntN(300), 1+rng.IntN(64<<10)
				got, end, err := ts.readFrom(from, limit, maxBytes)
				require.NoError(t, err, "op %d", op)
				require.Equal(t, kept(model, from, cutoff), got, "op %d: read from %d, limit %d, %d bytes", op, from, limit, maxBytes)
				require.LessOrEqual(t, end, max(next, from), "op %d: where the read ended", op)
				if len(model) > 0 {
					tsMs := model[0].arrivalMs + rng.Int64N(nowMs-model[0].arrivalMs+2)
					at, _, err := ts.seek(tsMs, next)
					require.NoError(t, err)
					if first := kept(model, 0, tsMs); tsMs >= cutoff && len(first) > 0 {
						assert.Equal(t, first[0].counter, at, "op %d: seek(%d)", op, tsMs)
					}
					expect := kept(model, 0, max(cutoff, tsMs))
					assert.Equal(t, expect, kept(ts.all(at), 0, max(cutoff, tsMs)), "op %d: from seek(%d)", op, tsMs)
				}
			}
		}
		assert.Equal(t, kept(model, 0, cutoff), ts.all(0), "everything at the end")
	})
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
