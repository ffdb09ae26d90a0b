package runnel

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every test of the Producer runs in a synctest bubble: the producer's
// linger, backoff and TTL timers, the stream's limits and the faults'
// latency all run on the bubble's virtual clock.

// prodNew returns a producer writing to dst, closed when the test ends
// (inside the bubble, before the cluster that newTestStream registered).
func prodNew(t *testing.T, dst Putter, opts ...ProducerOption) *Producer {
	t.Helper()
	p, err := NewProducer(context.Background(), dst, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// prodRecord returns a user record with string data.
func prodRecord(key, data string) ProducerRecord {
	return ProducerRecord{PartitionKey: key, Data: []byte(data)}
}

// prodResults collects the results of records by an id of the test's
// choosing (usually the data), and how often each callback ran.
type prodResults struct {
	mu    sync.Mutex
	res   map[string]ProducerResult
	calls map[string]int
}

func prodNewResults() *prodResults {
	return &prodResults{res: map[string]ProducerResult{}, calls: map[string]int{}}
}

// done returns the callback of the record id.
func (c *prodResults) done(id string) func(ProducerResult) {
	return func(r ProducerResult) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.res[id] = r
		c.calls[id]++
	}
}

// get returns the result of id and whether its callback ran.
func (c *prodResults) get(id string) (ProducerResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.res[id]
	return r, ok
}

// snapshot copies the results and call counts.
func (c *prodResults) snapshot() (map[string]ProducerResult, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	res := make(map[string]ProducerResult, len(c.res))
	for k, v := range c.res {
		res[k] = v
	}
	calls := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		calls[k] = v
	}
	return res, calls
}

// prodSum is an order-independent digest of user records: their count and
// the sum of a hash of each (key, data).
type prodSum struct {
	n   int
	sum uint64
}

func (s *prodSum) add(key string, data []byte) {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(data)
	s.n++
	s.sum += h.Sum64()
}

// prodUserRecord is a user record read back from a stream, with the shard
// it was read from.
type prodUserRecord struct {
	UserRecord
	shard Shard
}

// prodReadLineage reads every shard of s from TRIM_HORIZON in lineage order
// (a shard only after its parents), deaggregates each record, and returns
// the user records in the order read. Data is copied.
func prodReadLineage(t *testing.T, s *Stream) []prodUserRecord {
	t.Helper()
	ctx := context.Background()
	var shards []Shard
	in := ListShardsInput{}
	for {
		out, err := s.ListShards(ctx, in)
		require.NoError(t, err)
		shards = append(shards, out.Shards...)
		if out.NextToken == "" {
			break
		}
		in = ListShardsInput{NextToken: out.NextToken}
	}
	finished := map[string]bool{}
	var recs []prodUserRecord
	for {
		next := ReadableShards(shards, func(id string) bool { return finished[id] })
		if len(next) == 0 {
			break
		}
		for _, sh := range next {
			recs = append(recs, prodReadShard(t, s, sh)...)
			finished[sh.ShardID] = true
		}
	}
	require.Len(t, finished, len(shards), "every shard is read")
	return recs
}

// prodReadShard reads one shard to its end (or tip) and deaggregates it.
func prodReadShard(t *testing.T, s *Stream, sh Shard) []prodUserRecord {
	t.Helper()
	var recs []prodUserRecord
	for r, err := range s.Records(context.Background(), sh.ShardID, StartingPosition{Type: TrimHorizon}) {
		require.NoError(t, err)
		urs, err := Deaggregate(r)
		require.NoError(t, err)
		for _, u := range urs {
			u.Data = slices.Clone(u.Data)
			recs = append(recs, prodUserRecord{UserRecord: u, shard: sh})
		}
	}
	return recs
}

// prodFake is a Putter that is not a *Stream, so the producer takes its
// generic path (no precomputed hash keys, aggregates routed by
// ExplicitHashKey). It records every call and can fail chosen entries. The
// entries that do not fail go to s if set; otherwise prodFake stores them
// itself, routing them over its own even shards.
type prodFake struct {
	s      *Stream // forward to this stream; nil: store in memory
	shards []Shard // the shards listed when s is nil

	mu      sync.Mutex
	calls   []prodCall
	fail    func(e PutRecordsEntry) error // nil error: write the entry; called with mu held
	callErr func() error                  // non-nil error: fail the whole call; called with mu held
	seq     uint64
	stored  map[string][]PutRecordsEntry // by shard id, when s is nil

	mangle      func(*PutRecordsOutput) // if set, changes a response (s nil only); called with mu held
	latency     time.Duration           // each call takes this long (s nil only)
	inFlight    int                     // calls under way
	maxInFlight int                     // the most calls under way at once
	busy        map[string]int          // calls under way per shard
	overlaps    int                     // calls that found one of their shards busy
}

// prodCall is one PutRecords call seen by a prodFake.
type prodCall struct {
	at      time.Time
	entries []PutRecordsEntry // copies
}

// bytes returns the call's data + partition key bytes.
func (c prodCall) bytes() int {
	n := 0
	for _, e := range c.entries {
		n += len(e.PartitionKey) + len(e.Data)
	}
	return n
}

// prodNewFake returns an in-memory fake with n shards dividing the hash
// space evenly, as a new stream's do.
func prodNewFake(n int) *prodFake {
	f := &prodFake{stored: map[string][]PutRecordsEntry{}}
	for i, rng := range splitEvenly(n) {
		f.shards = append(f.shards, Shard{
			ShardID:             shardID(uint64(i)),
			HashKeyRange:        rng,
			SequenceNumberRange: SequenceNumberRange{StartingSequenceNumber: SequenceNumber{counter: 1, shard: uint64(i)}},
		})
	}
	return f
}

func (f *prodFake) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	if f.s != nil {
		return f.s.ListShards(ctx, in)
	}
	return ListShardsOutput{Shards: slices.Clone(f.shards)}, nil
}

func (f *prodFake) PutRecords(ctx context.Context, in PutRecordsInput) (PutRecordsOutput, error) {
	entries := in.Records
	f.mu.Lock()
	call := prodCall{at: time.Now(), entries: make([]PutRecordsEntry, len(entries))}
	for i, e := range entries {
		e.Data = slices.Clone(e.Data) // the producer reuses the memory
		call.entries[i] = e
	}
	f.calls = append(f.calls, call)
	if len(entries) == 0 || len(entries) > MaxPutRecordsEntries {
		f.mu.Unlock()
		return PutRecordsOutput{}, errorf("PutRecords", ErrValidation, "request has %d records", len(entries))
	}
	if f.callErr != nil {
		if err := f.callErr(); err != nil {
			f.mu.Unlock()
			return PutRecordsOutput{}, err
		}
	}
	out := PutRecordsOutput{Records: make([]PutRecordsResult, len(entries))}
	var fwd []int
	for i, e := range call.entries {
		if f.fail != nil {
			if err := f.fail(e); err != nil {
				out.Records[i].Err = err
				out.FailedRecordCount++
				continue
			}
		}
		fwd = append(fwd, i)
	}
	if f.s == nil && f.latency > 0 {
		shards := map[string]bool{}
		for _, e := range call.entries {
			shards[f.route(e).ShardID] = true
		}
		if f.busy == nil {
			f.busy = map[string]int{}
		}
		for id := range shards {
			if f.busy[id] > 0 {
				f.overlaps++
			}
			f.busy[id]++
		}
		f.inFlight++
		f.maxInFlight = max(f.maxInFlight, f.inFlight)
		f.mu.Unlock()
		time.Sleep(f.latency)
		f.mu.Lock()
		f.inFlight--
		for id := range shards {
			f.busy[id]--
		}
	}
	if f.s == nil {
		for _, i := range fwd {
			e := call.entries[i]
			sh := f.route(e)
			f.seq++
			f.stored[sh.ShardID] = append(f.stored[sh.ShardID], e)
			out.Records[i] = PutRecordsResult{ShardID: sh.ShardID, SequenceNumber: SequenceNumber{counter: f.seq, shard: uint64(slices.Index(f.shards, sh))}}
		}
		if f.mangle != nil {
			f.mangle(&out)
		}
		f.mu.Unlock()
		return out, nil
	}
	f.mu.Unlock()
	if len(fwd) == 0 {
		return out, nil
	}
	sub := make([]PutRecordsEntry, len(fwd))
	for j, i := range fwd {
		sub[j] = call.entries[i]
	}
	res, err := f.s.PutRecords(ctx, PutRecordsInput{Records: sub})
	if err != nil {
		return PutRecordsOutput{}, err
	}
	for j, i := range fwd {
		out.Records[i] = res.Records[j]
		if res.Records[j].Err != nil {
			out.FailedRecordCount++
		}
	}
	return out, nil
}

// route returns the fake shard an entry goes to (by its explicit hash key,
// else its partition key's).
func (f *prodFake) route(e PutRecordsEntry) Shard {
	hk := HashKeyOf(e.PartitionKey)
	if e.ExplicitHashKey != "" {
		if k, err := ParseHashKey(e.ExplicitHashKey); err == nil {
			hk = k
		}
	}
	j := sort.Search(len(f.shards), func(j int) bool { return f.shards[j].HashKeyRange.EndingHashKey.Cmp(hk) >= 0 })
	return f.shards[j]
}

// callLog returns a copy of the calls made so far.
func (f *prodFake) callLog() []prodCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// callSizes returns the number of entries of each call so far.
func (f *prodFake) callSizes() []int {
	var n []int
	for _, c := range f.callLog() {
		n = append(n, len(c.entries))
	}
	return n
}

// prodAssertCallsValid checks that every call respected Kinesis's request
// limits and the producer's collection limits.
func prodAssertCallsValid(t *testing.T, calls []prodCall, maxCount, maxBytes int) {
	t.Helper()
	for i, c := range calls {
		assert.GreaterOrEqual(t, len(c.entries), 1, "call %d", i)
		assert.LessOrEqual(t, len(c.entries), maxCount, "call %d", i)
		assert.LessOrEqual(t, c.bytes(), maxBytes, "call %d", i)
	}
}

// ---- 1. Batching -----------------------------------------------------------

func TestProducerBatchByCount(t *testing.T) {
	cases := []struct {
		n         int
		atOnce    []int // calls sent at once, before the linger passes
		afterWait []int // all calls after 100 ms
	}{
		{n: 499, afterWait: []int{499}},
		{n: 500, atOnce: []int{500}, afterWait: []int{500}},
		{n: 501, atOnce: []int{500}, afterWait: []int{500, 1}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := prodNewFake(4)
				p := prodNew(t, f, WithAggregation(false))
				for i := range tc.n {
					require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("key-", i), "x"), nil))
				}
				synctest.Wait()
				assert.Equal(t, tc.atOnce, f.callSizes(), "a full call of 500 goes at once, across shards")
				time.Sleep(99 * time.Millisecond)
				synctest.Wait()
				assert.Equal(t, tc.atOnce, f.callSizes(), "the rest waits for RecordMaxBufferedTime")
				time.Sleep(time.Millisecond)
				synctest.Wait()
				assert.Equal(t, tc.afterWait, f.callSizes(), "after 100 ms the rest is sent in one call")
				m := p.Metrics()
				assert.EqualValues(t, tc.n, m.UserRecordsPut)
				assert.EqualValues(t, len(tc.afterWait), m.PutRecordsCalls)
			})
		})
	}
	t.Run("1000", func(t *testing.T) {
		// How 1,000 records split depends on how far the senders lag behind
		// Put, and calls on different shards run at once, so the fake may see
		// them in either order; but one call is full and none is larger.
		synctest.Test(t, func(t *testing.T) {
			f := prodNewFake(4)
			p := prodNew(t, f, WithAggregation(false))
			for i := range 1000 {
				require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("key-", i), "x"), nil))
			}
			synctest.Wait()
			sizes := f.callSizes()
			require.NotEmpty(t, sizes)
			assert.Equal(t, 500, slices.Max(sizes))
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			total := 0
			for _, n := range f.callSizes() {
				assert.LessOrEqual(t, n, 500)
				total += n
			}
			assert.Equal(t, 1000, total)
		})
	})
}

func TestProducerBatchBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxBytes = 2000
		f := prodNewFake(2)
		// Aggregation is off, yet its max size must fit the record size.
		p := prodNew(t, f, WithAggregation(false), WithProducerMaxRecordSize(1000), WithAggregationMaxSize(999), WithCollectionMaxSize(maxBytes))
		data := strings.Repeat("d", 98)
		// 19 records of 100 bytes (2-byte keys) are not enough for a call.
		for i := range 19 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprintf("%02d", i), data), nil))
		}
		synctest.Wait()
		assert.Empty(t, f.callLog(), "1,900 bytes do not fill a 2,000-byte call")
		// The 20th fills one: it goes at once.
		require.NoError(t, p.Put(t.Context(), prodRecord("19", data), nil))
		for i := 20; i < 50; i++ {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprintf("%02d", i), data), nil))
		}
		synctest.Wait()
		calls := f.callLog()
		require.NotEmpty(t, calls, "a full call is sent without waiting")
		for _, c := range calls {
			assert.True(t, c.at.Equal(calls[0].at), "sent at once, not after the linger")
		}
		require.NoError(t, p.Flush(t.Context()))
		calls = f.callLog()
		prodAssertCallsValid(t, calls, 500, maxBytes)
		total := 0
		for _, c := range calls {
			total += len(c.entries)
		}
		assert.Equal(t, 50, total)
		assert.GreaterOrEqual(t, len(calls), 3, "5,000 bytes need at least three 2,000-byte calls")
	})
}

func TestProducerBatchByTime(t *testing.T) {
	t.Run("stream", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(2))
			p := prodNew(t, s)
			require.NoError(t, p.Put(t.Context(), prodRecord("k", "v"), nil))
			time.Sleep(99 * time.Millisecond)
			synctest.Wait()
			assert.Zero(t, s.Stats().Total.RecordsPut, "nothing is sent before RecordMaxBufferedTime")
			time.Sleep(time.Millisecond)
			synctest.Wait()
			assert.EqualValues(t, 1, s.Stats().Total.RecordsPut, "the record is sent after 100 ms")
		})
	})
	t.Run("linger joins later records", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := prodNewFake(1)
			p := prodNew(t, f, WithAggregation(false))
			start := time.Now()
			require.NoError(t, p.Put(t.Context(), prodRecord("a", "1"), nil))
			time.Sleep(50 * time.Millisecond)
			require.NoError(t, p.Put(t.Context(), prodRecord("b", "2"), nil))
			time.Sleep(50 * time.Millisecond)
			synctest.Wait()
			calls := f.callLog()
			require.Len(t, calls, 1)
			assert.Len(t, calls[0].entries, 2, "the second record rides with the first")
			assert.Equal(t, 100*time.Millisecond, calls[0].at.Sub(start))
		})
	})
	t.Run("custom", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := prodNewFake(1)
			p := prodNew(t, f, WithRecordMaxBufferedTime(time.Second))
			start := time.Now()
			require.NoError(t, p.Put(t.Context(), prodRecord("a", "1"), nil))
			time.Sleep(999 * time.Millisecond)
			synctest.Wait()
			assert.Empty(t, f.callLog())
			time.Sleep(time.Millisecond)
			synctest.Wait()
			calls := f.callLog()
			require.Len(t, calls, 1)
			assert.Equal(t, time.Second, calls[0].at.Sub(start))
		})
	})
	t.Run("zero", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := prodNewFake(1)
			p := prodNew(t, f, WithRecordMaxBufferedTime(0))
			start := time.Now()
			require.NoError(t, p.Put(t.Context(), prodRecord("a", "1"), nil))
			synctest.Wait()
			calls := f.callLog()
			require.Len(t, calls, 1, "with no linger a record goes at once")
			assert.Equal(t, start, calls[0].at)
		})
	})
}

func TestProducerFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(4))
		p := prodNew(t, s)
		var called atomic.Int64
		for i := range 100 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("k", i%7), fmt.Sprint(i)), func(r ProducerResult) {
				assert.NoError(t, r.Err)
				called.Add(1)
			}))
		}
		start := time.Now()
		require.NoError(t, p.Flush(t.Context()))
		assert.Zero(t, time.Since(start), "Flush does not wait for the linger")
		assert.EqualValues(t, 100, called.Load(), "Flush returns after the callbacks ran")
		assert.EqualValues(t, 100, p.Metrics().UserRecordsPut)
		assert.Zero(t, p.Metrics().BufferedRecords)

		// Flush with nothing held returns at once.
		require.NoError(t, p.Flush(t.Context()))

		// Flush's ctx ends: the records stay held and are delivered.
		remove := injectFault(t, c, Fault{Op: OpPutRecords, Latency: time.Second})
		require.NoError(t, p.Put(t.Context(), prodRecord("k", "late"), func(r ProducerResult) {
			assert.NoError(t, r.Err)
			called.Add(1)
		}))
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, p.Flush(ctx), context.DeadlineExceeded)
		remove()
		require.NoError(t, p.Flush(t.Context()))
		assert.EqualValues(t, 101, called.Load())
	})
}

func TestProducerPutSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(2))
		p := prodNew(t, s)
		start := time.Now()
		res, err := p.PutSync(t.Context(), prodRecord("k", "sync"))
		require.NoError(t, err)
		assert.Zero(t, time.Since(start), "PutSync does not wait for the linger")
		assert.NoError(t, res.Err)
		assert.Equal(t, 1, res.Attempts)
		assert.False(t, res.Aggregated)
		assert.Equal(t, res.SequenceNumber.ShardID(), res.ShardID)
		got := readAll(t, s, res.ShardID, StartingPosition{Type: AtSequenceNumber, SequenceNumber: res.SequenceNumber})
		require.NotEmpty(t, got)
		assert.Equal(t, "sync", string(got[0].Data))

		// Records put before PutSync go with it.
		var early atomic.Bool
		require.NoError(t, p.Put(t.Context(), prodRecord("k", "early"), func(r ProducerResult) { early.Store(r.Err == nil) }))
		_, err = p.PutSync(t.Context(), prodRecord("k", "second"))
		require.NoError(t, err)
		assert.Zero(t, time.Since(start))
		assert.True(t, early.Load(), "an earlier record of the same key is stored first")

		// A failed record's error is returned as PutSync's error too.
		injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrInternalFailure, Times: 1})
		res, err = p.PutSync(t.Context(), prodRecord("k", "retried"))
		require.NoError(t, err, "an internal failure is retried")
		assert.Equal(t, 2, res.Attempts)

		// ctx ends first: PutSync returns, the record is still delivered.
		remove := injectFault(t, c, Fault{Op: OpPutRecords, Latency: time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		before := s.Stats().Total.RecordsPut
		_, err = p.PutSync(ctx, prodRecord("k", "slow"))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		remove()
		require.NoError(t, p.Flush(t.Context()))
		assert.Equal(t, before+1, s.Stats().Total.RecordsPut, "the record stays accepted and is delivered")
	})
}

// ---- 2. Aggregation -------------------------------------------------------

func TestProducerAggregationPacksPerShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(4))
		p := prodNew(t, s)
		results := prodNewResults()
		var put prodSum
		const n = 1000
		for i := range n {
			r := prodRecord(fmt.Sprint("key-", i%40), fmt.Sprint("data-", i))
			if i%10 == 3 {
				// Some records route by explicit hash key, anywhere in the space.
				r.ExplicitHashKey = HashKeyOf(fmt.Sprint("ehk-", i)).String()
			}
			put.add(r.PartitionKey, r.Data)
			require.NoError(t, p.Put(t.Context(), r, results.done(string(r.Data))))
		}
		require.NoError(t, p.Flush(t.Context()))
		res, calls := results.snapshot()
		require.Len(t, res, n)

		// Results: one sequence number per Kinesis record, sub-sequence
		// numbers 0..k-1 within it.
		type kinesisRec struct {
			shard string
			seq   SequenceNumber
		}
		groups := map[kinesisRec][]ProducerResult{}
		for id, r := range res {
			require.NoError(t, r.Err, id)
			assert.Equal(t, 1, calls[id])
			k := kinesisRec{r.ShardID, r.SequenceNumber}
			groups[k] = append(groups[k], r)
		}
		aggregated := 0
		for k, g := range groups {
			subs := make([]int, len(g))
			for i, r := range g {
				subs[i] = r.SubSequenceNumber
				assert.Equal(t, len(g) > 1, r.Aggregated, "%v", k)
			}
			slices.Sort(subs)
			for i := range subs {
				assert.Equal(t, i, subs[i], "sub-sequence numbers of %v are 0..n-1", k)
			}
			if len(g) > 1 {
				aggregated++
			}
		}
		assert.Positive(t, aggregated, "records are aggregated")
		assert.Less(t, len(groups), n/10, "about one aggregate per shard")

		// The stream: every user record of an aggregate belongs to the
		// shard holding it, and the data equals what was put.
		shards, err := s.ListShards(t.Context(), ListShardsInput{})
		require.NoError(t, err)
		var got prodSum
		byPos := map[string]UserRecord{}
		for _, sh := range shards.Shards {
			for _, u := range prodReadShard(t, s, sh) {
				got.add(u.PartitionKey, u.Data)
				hk := HashKeyOf(u.PartitionKey)
				if u.ExplicitHashKey != "" {
					hk, err = ParseHashKey(u.ExplicitHashKey)
					require.NoError(t, err)
				}
				assert.True(t, sh.HashKeyRange.Contains(hk), "user record %q (hash key %s) is in shard %s %v", u.Data, hk, sh.ShardID, sh.HashKeyRange)
				byPos[fmt.Sprint(u.SequenceNumber, "/", u.SubSequenceNumber)] = u.UserRecord
			}
		}
		assert.Equal(t, put, got, "count and checksum of the stored user records")
		assert.Equal(t, int64(len(groups)), s.Stats().Total.RecordsPut)
		for id, r := range res {
			u, ok := byPos[fmt.Sprint(r.SequenceNumber, "/", r.SubSequenceNumber)]
			if assert.True(t, ok, "result of %s points at a stored user record", id) {
				assert.Equal(t, id, string(u.Data))
			}
		}
		m := p.Metrics()
		assert.EqualValues(t, n, m.UserRecordsPut)
		assert.EqualValues(t, len(groups), m.KinesisRecordsPut)
	})
}

func TestProducerAggregationLimits(t *testing.T) {
	cases := []struct {
		name     string
		opts     []ProducerOption
		maxCount int
		maxSize  int
	}{
		{name: "max count", opts: []ProducerOption{WithAggregationMaxCount(7)}, maxCount: 7, maxSize: 51_200},
		{name: "max size", opts: []ProducerOption{WithAggregationMaxSize(1000)}, maxCount: 1 << 30, maxSize: 1000},
		{name: "both", opts: []ProducerOption{WithAggregationMaxCount(3), WithAggregationMaxSize(300)}, maxCount: 3, maxSize: 300},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := prodNewFake(1)
				p := prodNew(t, f, tc.opts...)
				var put prodSum
				var want []string
				for i := range 200 {
					r := prodRecord(fmt.Sprint("k", i%3), fmt.Sprintf("record %03d %s", i, strings.Repeat("x", i%50)))
					put.add(r.PartitionKey, r.Data)
					want = append(want, string(r.Data))
					require.NoError(t, p.Put(t.Context(), r, nil))
				}
				require.NoError(t, p.Flush(t.Context()))
				var got prodSum
				var order []string
				aggregates := 0
				for _, c := range f.callLog() {
					for _, e := range c.entries {
						urs, err := Deaggregate(Record{PartitionKey: e.PartitionKey, Data: e.Data})
						require.NoError(t, err)
						if urs[0].Aggregated {
							aggregates++
							assert.LessOrEqual(t, len(e.Data), tc.maxSize, "aggregate size")
							assert.LessOrEqual(t, len(urs), tc.maxCount, "aggregate count")
							assert.Greater(t, len(urs), 1, "an aggregate of one is sent plain")
						}
						for _, u := range urs {
							got.add(u.PartitionKey, u.Data)
							order = append(order, string(u.Data))
						}
					}
				}
				assert.Positive(t, aggregates)
				assert.Equal(t, put, got)
				assert.Equal(t, want, order, "one shard: everything in put order")
			})
		})
	}
}

func TestProducerAggregationLoneRecordPlain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		p := prodNew(t, s)
		results := prodNewResults()
		require.NoError(t, p.Put(t.Context(), prodRecord("alone", "just me"), results.done("x")))
		require.NoError(t, p.Flush(t.Context()))
		r, ok := results.get("x")
		require.True(t, ok)
		require.NoError(t, r.Err)
		assert.False(t, r.Aggregated)
		assert.Zero(t, r.SubSequenceNumber)
		recs := readAll(t, s, r.ShardID, StartingPosition{Type: TrimHorizon})
		require.Len(t, recs, 1)
		assert.Equal(t, "just me", string(recs[0].Data), "a lone record is stored plain, without magic or digest")
		assert.Equal(t, "alone", recs[0].PartitionKey)
		assert.Equal(t, r.SequenceNumber, recs[0].SequenceNumber)

		// A record too large to aggregate travels plain between aggregates.
		big := strings.Repeat("B", 60_000)
		for i := range 5 {
			require.NoError(t, p.Put(t.Context(), prodRecord("alone", fmt.Sprint("small ", i)), nil))
		}
		require.NoError(t, p.Put(t.Context(), prodRecord("alone", big), results.done("big")))
		require.NoError(t, p.Put(t.Context(), prodRecord("alone", "after"), nil))
		require.NoError(t, p.Flush(t.Context()))
		rb, _ := results.get("big")
		require.NoError(t, rb.Err)
		assert.False(t, rb.Aggregated)
		var order []string
		for _, u := range prodReadShard(t, s, Shard{ShardID: r.ShardID}) {
			d := string(u.Data)
			if d == big {
				d = "big"
				assert.False(t, u.Aggregated)
			}
			order = append(order, d)
		}
		assert.Equal(t, []string{"just me", "small 0", "small 1", "small 2", "small 3", "small 4", "big", "after"}, order)
	})
}

func TestProducerAggregationGenericPutter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := prodNewFake(4)
		p := prodNew(t, f)
		var put prodSum
		first := map[string]string{} // shard → partition key of its first record
		for i := range 200 {
			key := fmt.Sprint("key-", i)
			r := prodRecord(key, fmt.Sprint("data-", i))
			put.add(r.PartitionKey, r.Data)
			sh := f.shards[routeKey([]HashKey{f.shards[0].HashKeyRange.StartingHashKey, f.shards[1].HashKeyRange.StartingHashKey,
				f.shards[2].HashKeyRange.StartingHashKey, f.shards[3].HashKeyRange.StartingHashKey}, HashKeyOf(key))].ShardID
			if _, ok := first[sh]; !ok {
				first[sh] = key
			}
			require.NoError(t, p.Put(t.Context(), r, nil))
		}
		require.NoError(t, p.Flush(t.Context()))
		calls := f.callLog()
		require.Len(t, calls, 1)
		require.Len(t, calls[0].entries, 4, "one aggregate per shard")
		var got prodSum
		for _, e := range calls[0].entries {
			assert.Equal(t, "a", e.PartitionKey, "aggregates are sent with partition key \"a\", as the KPL does")
			urs, err := Deaggregate(Record{PartitionKey: e.PartitionKey, Data: e.Data})
			require.NoError(t, err)
			require.True(t, urs[0].Aggregated)
			assert.Equal(t, HashKeyOf(urs[0].PartitionKey).String(), e.ExplicitHashKey,
				"routed by the first user record's hash key, in decimal")
			ehk, err := ParseHashKey(e.ExplicitHashKey)
			require.NoError(t, err)
			var shard Shard
			for _, sh := range f.shards {
				if sh.HashKeyRange.Contains(ehk) {
					shard = sh
				}
			}
			assert.Equal(t, first[shard.ShardID], urs[0].PartitionKey)
			for _, u := range urs {
				assert.True(t, shard.HashKeyRange.Contains(HashKeyOf(u.PartitionKey)), "aggregates never mix shards")
				got.add(u.PartitionKey, u.Data)
			}
		}
		assert.Equal(t, put, got)

		// With an explicit hash key, the aggregate is routed by it.
		ehk := f.shards[2].HashKeyRange.StartingHashKey.String()
		require.NoError(t, p.Put(t.Context(), ProducerRecord{PartitionKey: "x", ExplicitHashKey: ehk, Data: []byte("1")}, nil))
		require.NoError(t, p.Put(t.Context(), ProducerRecord{PartitionKey: "y", ExplicitHashKey: ehk, Data: []byte("2")}, nil))
		require.NoError(t, p.Flush(t.Context()))
		calls = f.callLog()
		require.Len(t, calls, 2)
		require.Len(t, calls[1].entries, 1)
		assert.Equal(t, ehk, calls[1].entries[0].ExplicitHashKey)
		urs, err := Deaggregate(Record{Data: calls[1].entries[0].Data})
		require.NoError(t, err)
		require.Len(t, urs, 2)
		assert.Equal(t, ehk, urs[0].ExplicitHashKey)
		assert.Equal(t, ehk, urs[1].ExplicitHashKey)
	})
}

// ---- 3. Retries -----------------------------------------------------------

func TestProducerRetryPartialFailure(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(fmt.Sprint("aggregation=", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, s := newTestStream(t, WithShardCount(2))
				p := prodNew(t, s, WithAggregation(agg))
				// Without aggregation the fault sees the user record; with it,
				// the aggregate (key "a") that carries it.
				injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrInternalFailure, Times: 1, Record: func(key string, data []byte) bool {
					return strings.Contains(string(data), "retry-me")
				}})
				results := prodNewResults()
				keys := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
				for _, k := range keys {
					require.NoError(t, p.Put(t.Context(), prodRecord(k, "ok "+k), results.done(k)))
				}
				require.NoError(t, p.Put(t.Context(), prodRecord("k1", "retry-me"), results.done("retry-me")))
				require.NoError(t, p.Flush(t.Context()))

				res, _ := results.snapshot()
				retried := 0
				for id, r := range res {
					require.NoError(t, r.Err, id)
					if r.Attempts == 2 {
						retried++
					} else {
						assert.Equal(t, 1, r.Attempts, id)
					}
				}
				assert.Equal(t, 2, res["retry-me"].Attempts, "the failed record is sent again and succeeds")
				m := p.Metrics()
				assert.EqualValues(t, retried, m.Retries)
				assert.EqualValues(t, 7, m.UserRecordsPut)
				assert.Zero(t, m.UserRecordsFailed)
				assert.Zero(t, m.Throttles)
				if !agg {
					assert.Equal(t, 1, retried, "only the failed record is retried")
				}
				var got []string
				for _, u := range prodReadLineage(t, s) {
					got = append(got, string(u.Data))
				}
				assert.ElementsMatch(t, []string{"ok k1", "ok k2", "ok k3", "ok k4", "ok k5", "ok k6", "retry-me"}, got)
			})
		})
	}
}

func TestProducerRetryThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, s)
		injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded, Times: 2})
		start := time.Now()
		res, err := p.PutSync(t.Context(), prodRecord("k", "v"))
		require.NoError(t, err)
		assert.Equal(t, 3, res.Attempts)
		// Backoff 100 ms then 200 ms, each with jitter down to half.
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, 150*time.Millisecond, "throttled calls back off")
		assert.LessOrEqual(t, elapsed, 300*time.Millisecond)
		m := p.Metrics()
		assert.EqualValues(t, 2, m.Throttles)
		assert.EqualValues(t, 2, m.Retries)
		assert.EqualValues(t, 3, m.PutRecordsCalls)
		assert.EqualValues(t, 1, s.Stats().Total.RecordsPut)
	})
}

func TestProducerRetryBackoffCustom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, s, WithRetryBackoff(time.Second, 2*time.Second))
		injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded, Times: 4})
		start := time.Now()
		res, err := p.PutSync(t.Context(), prodRecord("k", "v"))
		require.NoError(t, err)
		assert.Equal(t, 5, res.Attempts)
		// 1 s, 2 s, 2 s, 2 s (capped), each at least half.
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, 3500*time.Millisecond)
		assert.LessOrEqual(t, elapsed, 7*time.Second)
	})
}

func TestProducerFailIfThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, s, WithFailIfThrottled(true))
		injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded, Times: 1})
		start := time.Now()
		res, err := p.PutSync(t.Context(), prodRecord("k", "v"))
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)
		assert.ErrorIs(t, res.Err, ErrProvisionedThroughputExceeded)
		assert.Equal(t, 1, res.Attempts)
		assert.Zero(t, time.Since(start), "the record fails at once")
		assert.Zero(t, s.Stats().Total.RecordsPut)
		// PutSync returns once the callback ran; the counters follow when
		// the record is done, which Flush waits for.
		require.NoError(t, p.Flush(t.Context()))
		m := p.Metrics()
		assert.EqualValues(t, 1, m.UserRecordsFailed)
		assert.EqualValues(t, 1, m.Throttles)
		assert.Zero(t, m.Retries)

		// Other errors are still retried.
		injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrInternalFailure, Times: 1})
		res, err = p.PutSync(t.Context(), prodRecord("k", "w"))
		require.NoError(t, err)
		assert.Equal(t, 2, res.Attempts)
	})
}

func TestProducerRecordTTL(t *testing.T) {
	cases := []struct {
		name string
		opts []ProducerOption
		ttl  time.Duration
	}{
		{name: "default", ttl: 30 * time.Second},
		{name: "custom", opts: []ProducerOption{WithRecordTTL(2 * time.Second)}, ttl: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, s := newTestStream(t, WithShardCount(1))
				p := prodNew(t, s, tc.opts...)
				remove := injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded, Record: func(string, []byte) bool { return true }})
				results := prodNewResults()
				start := time.Now()
				for i := range 3 {
					require.NoError(t, p.Put(t.Context(), prodRecord("k", fmt.Sprint(i)), results.done(fmt.Sprint(i))))
				}
				require.NoError(t, p.Flush(t.Context()))
				elapsed := time.Since(start)
				assert.GreaterOrEqual(t, elapsed, tc.ttl)
				assert.Less(t, elapsed, tc.ttl+100*time.Millisecond, "records fail when their TTL passes")
				res, calls := results.snapshot()
				require.Len(t, res, 3)
				for id, r := range res {
					assert.Equal(t, 1, calls[id])
					assert.ErrorIs(t, r.Err, ErrRecordExpired, id)
					assert.ErrorIs(t, r.Err, ErrProvisionedThroughputExceeded, "the error wraps the last error met")
					assert.Greater(t, r.Attempts, 1)
					assert.Empty(t, r.ShardID)
				}
				m := p.Metrics()
				assert.EqualValues(t, 3, m.UserRecordsFailed)
				assert.Zero(t, m.UserRecordsPut)
				assert.Positive(t, m.Throttles)
				assert.Zero(t, s.Stats().Total.RecordsPut)
				remove()
			})
		})
	}
}

func TestProducerTTLWithoutAttempt(t *testing.T) {
	// Records held back by the producer's own rate limit expire too, with
	// ErrRecordExpired alone: they met no error and made no attempt.
	synctest.Test(t, func(t *testing.T) {
		f := prodNewFake(1)
		limits := Limits{WriteRecordsPerSecond: 1}
		p := prodNew(t, f, WithAggregation(false), WithRateLimit(100), WithShardLimits(limits), WithRecordTTL(3*time.Second))
		results := prodNewResults()
		start := time.Now()
		for i := range 10 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("k", i), fmt.Sprint(i)), results.done(fmt.Sprint(i))))
		}
		require.NoError(t, p.Flush(t.Context()))
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, 3*time.Second)
		assert.Less(t, elapsed, 3*time.Second+100*time.Millisecond)
		res, _ := results.snapshot()
		require.Len(t, res, 10)
		stored, expired := 0, 0
		for id, r := range res {
			if r.Err == nil {
				stored++
				assert.Equal(t, 1, r.Attempts)
				continue
			}
			expired++
			assert.ErrorIs(t, r.Err, ErrRecordExpired, id)
			assert.NotErrorIs(t, r.Err, ErrProvisionedThroughputExceeded, id)
			assert.Zero(t, r.Attempts, id)
		}
		assert.Equal(t, 3, stored, "one record a second: the burst at once, then two more")
		assert.Equal(t, 7, expired)
		assert.Len(t, f.callLog(), 3)
	})
}

func TestProducerNonRetryable(t *testing.T) {
	t.Run("fault", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, s := newTestStream(t, WithShardCount(1))
			p := prodNew(t, s)
			injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrValidation, Times: 1})
			start := time.Now()
			res, err := p.PutSync(t.Context(), prodRecord("k", "v"))
			assert.ErrorIs(t, err, ErrValidation)
			assert.ErrorIs(t, res.Err, ErrValidation)
			assert.Equal(t, 1, res.Attempts, "not retried")
			assert.Zero(t, time.Since(start))
			assert.Zero(t, s.Stats().Total.RecordsPut)
			require.NoError(t, p.Flush(t.Context())) // the counters follow the callback
			assert.EqualValues(t, 1, p.Metrics().UserRecordsFailed)
			assert.Zero(t, p.Metrics().Retries)
		})
	})
	t.Run("deleted stream", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, s := newTestStream(t, WithShardCount(1))
			p := prodNew(t, s)
			results := prodNewResults()
			for i := range 5 {
				require.NoError(t, p.Put(t.Context(), prodRecord("k", fmt.Sprint(i)), results.done(fmt.Sprint(i))))
			}
			require.NoError(t, c.DeleteStream(t.Context(), "test"))
			start := time.Now()
			require.NoError(t, p.Flush(t.Context()))
			assert.Zero(t, time.Since(start))
			res, _ := results.snapshot()
			require.Len(t, res, 5)
			for _, r := range res {
				assert.ErrorIs(t, r.Err, ErrResourceNotFound)
				assert.Equal(t, 1, r.Attempts)
			}
		})
	})
	t.Run("generic putter call error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := prodNewFake(1)
			f.callErr = func() error { return errorf("PutRecords", ErrInvalidArgument, "bad request") }
			p := prodNew(t, f)
			res, err := p.PutSync(t.Context(), prodRecord("k", "v"))
			assert.ErrorIs(t, err, ErrInvalidArgument)
			assert.Equal(t, 1, res.Attempts)
			assert.Len(t, f.callLog(), 1)
		})
	})
}

// ---- 4. Back-pressure -----------------------------------------------------

func TestProducerBackPressureBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		injectFault(t, c, Fault{Op: OpPutRecords, Latency: time.Second})
		p := prodNew(t, s, WithBufferLimits(1<<20, 3))
		results := prodNewResults()
		for i := range 3 {
			require.NoError(t, p.Put(t.Context(), prodRecord("k", fmt.Sprint(i)), results.done(fmt.Sprint(i))))
		}
		assert.EqualValues(t, 3, p.Metrics().BufferedRecords)

		start := time.Now()
		var returned atomic.Bool
		var putErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			putErr = p.Put(t.Context(), prodRecord("k", "3"), results.done("3"))
			returned.Store(true)
		})
		synctest.Wait()
		assert.False(t, returned.Load(), "Put blocks while the buffer is full")

		// TryPut and a cancelled Put fail meanwhile.
		err := p.TryPut(prodRecord("k", "try"), results.done("try"))
		assert.ErrorIs(t, err, ErrBufferFull)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		err = p.Put(ctx, prodRecord("k", "ctx"), results.done("ctx"))
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 50*time.Millisecond, time.Since(start))
		ctx, cancel = context.WithCancel(t.Context())
		cancel()
		assert.ErrorIs(t, p.Put(ctx, prodRecord("k", "cancelled"), results.done("cancelled")), context.Canceled)

		wg.Wait()
		require.NoError(t, putErr)
		// The first three wait 100 ms and take 1 s to store.
		assert.Equal(t, 1100*time.Millisecond, time.Since(start), "Put returns when records complete")
		require.NoError(t, p.Flush(t.Context()))
		_, calls := results.snapshot()
		assert.Equal(t, map[string]int{"0": 1, "1": 1, "2": 1, "3": 1}, calls, "rejected records' callbacks never run")
		assert.EqualValues(t, 4, p.Metrics().UserRecordsPut)
	})
}

func TestProducerBackPressureBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		injectFault(t, c, Fault{Op: OpPutRecords, Latency: time.Second})
		// The limit counts each record's data and key plus the producer's
		// bookkeeping of it (recordOverhead).
		limit := 1000 + 3*recordOverhead
		p := prodNew(t, s, WithProducerMaxRecordSize(1000), WithAggregationMaxSize(999), WithCollectionMaxSize(1<<20),
			WithBufferLimits(limit, 1000))
		data := strings.Repeat("x", 399) // 400 bytes with the key
		require.NoError(t, p.TryPut(prodRecord("k", data), nil))
		require.NoError(t, p.TryPut(prodRecord("k", data), nil))
		assert.EqualValues(t, 800, p.Metrics().BufferedBytes)
		assert.ErrorIs(t, p.TryPut(prodRecord("k", data), nil), ErrBufferFull, "1,200 bytes (and bookkeeping) are over the limit")
		require.NoError(t, p.TryPut(prodRecord("k", strings.Repeat("y", 199)), nil), "a record that fits is taken")
		assert.EqualValues(t, 1000, p.Metrics().BufferedBytes)
		assert.ErrorIs(t, p.TryPut(prodRecord("k", ""), nil), ErrBufferFull, "even a 1-byte record needs its bookkeeping")
		require.NoError(t, p.Flush(t.Context()))
		assert.Zero(t, p.Metrics().BufferedBytes)
		assert.EqualValues(t, 3, p.Metrics().UserRecordsPut)
	})
}

func TestProducerFailWhenBufferFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		injectFault(t, c, Fault{Op: OpPutRecords, Latency: time.Second})
		p := prodNew(t, s, WithBufferLimits(1<<20, 2), WithFailWhenBufferFull(true))
		called := atomic.Int64{}
		cb := func(ProducerResult) { called.Add(1) }
		require.NoError(t, p.Put(t.Context(), prodRecord("k", "1"), cb))
		require.NoError(t, p.Put(t.Context(), prodRecord("k", "2"), cb))
		start := time.Now()
		err := p.Put(t.Context(), prodRecord("k", "3"), cb)
		assert.ErrorIs(t, err, ErrBufferFull)
		assert.Zero(t, time.Since(start), "Put fails at once")
		_, err = p.PutSync(t.Context(), prodRecord("k", "4"))
		assert.ErrorIs(t, err, ErrBufferFull)
		require.NoError(t, p.Flush(t.Context()))
		assert.EqualValues(t, 2, called.Load())
		require.NoError(t, p.Put(t.Context(), prodRecord("k", "5"), cb), "room again after the records completed")
	})
}

func TestProducerBufferLimitsNeverExceeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxRecords, maxBytes = 50, 4000
		c, s := newTestStream(t, WithShardCount(3))
		// Slow and sometimes throttled: records pile up.
		injectFault(t, c, Fault{Op: OpPutRecords, Latency: 30 * time.Millisecond})
		var n atomic.Int64
		injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded, Record: func(string, []byte) bool { return n.Add(1)%5 == 0 }})
		p := prodNew(t, s, WithProducerMaxRecordSize(1000), WithAggregationMaxSize(999), WithCollectionMaxSize(2000),
			WithBufferLimits(maxBytes, maxRecords))
		var violations atomic.Int64
		sample := func() {
			m := p.Metrics()
			if m.BufferedRecords > maxRecords || m.BufferedBytes > maxBytes || m.BufferedRecords < 0 || m.BufferedBytes < 0 {
				violations.Add(1)
			}
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond):
					sample()
				}
			}
		})
		var accepted atomic.Int64
		for g := range 4 {
			wg.Go(func() {
				for i := range 100 {
					err := p.Put(t.Context(), prodRecord(fmt.Sprint("k", g, i%5), strings.Repeat("d", 10+i%90)), func(r ProducerResult) {
						assert.NoError(t, r.Err)
						sample()
					})
					if assert.NoError(t, err) {
						accepted.Add(1)
					}
					sample()
				}
			})
		}
		time.Sleep(10 * time.Second)
		close(done)
		wg.Wait()
		require.NoError(t, p.Flush(t.Context()))
		assert.Zero(t, violations.Load(), "buffered records and bytes stay within the limits")
		assert.EqualValues(t, 400, accepted.Load())
		assert.EqualValues(t, 400, p.Metrics().UserRecordsPut)
	})
}

// ---- 5. Close -------------------------------------------------------------

func TestProducerCloseDelivers(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(fmt.Sprint("aggregation=", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, s := newTestStream(t, WithShardCount(4))
				injectFault(t, c, Fault{Op: OpPutRecords, Latency: 500 * time.Millisecond})
				p, err := NewProducer(t.Context(), s, WithAggregation(agg), WithCollectionMaxCount(50), WithMaxInFlight(2))
				require.NoError(t, err)
				results := prodNewResults()
				var put prodSum
				const n = 2000
				for i := range n {
					r := prodRecord(fmt.Sprint("key-", i%37), fmt.Sprint("data-", i))
					put.add(r.PartitionKey, r.Data)
					require.NoError(t, p.Put(t.Context(), r, results.done(string(r.Data))))
					if i == n/2 {
						time.Sleep(200 * time.Millisecond) // some calls are in flight
					}
				}
				assert.Positive(t, p.Metrics().BufferedRecords)
				require.NoError(t, p.Close(t.Context()))
				res, calls := results.snapshot()
				assert.Len(t, res, n, "every callback ran before Close returned")
				for id, k := range calls {
					assert.Equal(t, 1, k, "callback of %s ran once", id)
					assert.NoError(t, res[id].Err)
				}
				var got prodSum
				for _, u := range prodReadLineage(t, s) {
					got.add(u.PartitionKey, u.Data)
				}
				assert.Equal(t, put, got, "the stream holds exactly what was put")
				m := p.Metrics()
				assert.EqualValues(t, n, m.UserRecordsPut)
				assert.Zero(t, m.BufferedRecords)
				assert.Zero(t, m.BufferedBytes)

				// After Close.
				err = p.Put(t.Context(), prodRecord("k", "late"), results.done("late"))
				assert.ErrorIs(t, err, ErrClosed)
				assert.ErrorIs(t, p.TryPut(prodRecord("k", "late"), nil), ErrClosed)
				_, err = p.PutSync(t.Context(), prodRecord("k", "late"))
				assert.ErrorIs(t, err, ErrClosed)
				assert.NoError(t, p.Close(t.Context()), "Close twice is fine")
				assert.NoError(t, p.Flush(t.Context()))
				_, ok := results.get("late")
				assert.False(t, ok)
			})
		})
	}
}

func TestProducerCloseExpiredContext(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(fmt.Sprint("aggregation=", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, s := newTestStream(t, WithShardCount(4))
				injectFault(t, c, Fault{Op: OpPutRecords, Latency: time.Second})
				p, err := NewProducer(t.Context(), s, WithAggregation(agg), WithCollectionMaxCount(20), WithMaxInFlight(2))
				require.NoError(t, err)
				results := prodNewResults()
				const n = 1000
				for i := range n {
					r := prodRecord(fmt.Sprint("key-", i%37), fmt.Sprint("data-", i))
					require.NoError(t, p.Put(t.Context(), r, results.done(string(r.Data))))
					if i == 300 {
						time.Sleep(1500 * time.Millisecond) // some delivered, some in flight
					}
				}
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				start := time.Now()
				err = p.Close(ctx)
				assert.ErrorIs(t, err, context.Canceled)
				assert.Zero(t, time.Since(start), "Close gives up at once")
				assert.ErrorIs(t, p.Close(t.Context()), context.Canceled, "a second Close returns the first one's result")

				res, calls := results.snapshot()
				require.Len(t, res, n, "every accepted record has an outcome")
				ok := map[string]bool{}
				failed := 0
				for id, r := range res {
					assert.Equal(t, 1, calls[id], "callback of %s ran once", id)
					if r.Err == nil {
						ok[id] = true
						continue
					}
					failed++
					assert.ErrorIs(t, r.Err, ErrClosed, id)
				}
				assert.Positive(t, len(ok), "some records were delivered before Close")
				assert.Positive(t, failed, "some records were given up")
				stored := map[string]bool{}
				for _, u := range prodReadLineage(t, s) {
					assert.False(t, stored[string(u.Data)], "duplicate %s", u.Data)
					stored[string(u.Data)] = true
				}
				assert.Equal(t, ok, stored, "the stream holds exactly the records reported stored")
				m := p.Metrics()
				assert.EqualValues(t, len(ok), m.UserRecordsPut)
				assert.EqualValues(t, failed, m.UserRecordsFailed)
				assert.Zero(t, m.BufferedRecords)
				assert.ErrorIs(t, p.Put(t.Context(), prodRecord("k", "late"), nil), ErrClosed)
			})
		})
	}
}

func TestProducerCloseUnblocksPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		injectFault(t, c, Fault{Op: OpPutRecords, Latency: time.Second})
		p := prodNew(t, s, WithBufferLimits(1<<20, 1))
		require.NoError(t, p.Put(t.Context(), prodRecord("k", "1"), nil))
		var putErr error
		var wg sync.WaitGroup
		wg.Go(func() { putErr = p.Put(t.Context(), prodRecord("k", "2"), nil) })
		synctest.Wait()
		require.NoError(t, p.Close(t.Context()))
		wg.Wait()
		assert.ErrorIs(t, putErr, ErrClosed, "a Put blocked by a full buffer fails when the producer closes")
		assert.EqualValues(t, 1, s.Stats().Total.RecordsPut)
	})
}

func TestProducerCloseIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t)
		p, err := NewProducer(t.Context(), s)
		require.NoError(t, err)
		require.NoError(t, p.Close(t.Context()))
		require.NoError(t, p.Close(t.Context()))
		assert.Equal(t, ProducerMetrics{}, p.Metrics())
	})
}

// ---- 7. Record IDs --------------------------------------------------------

func TestProducerRecordIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(3))
		p := prodNew(t, s, WithRecordIDs(true))
		results := prodNewResults()
		for i := range 300 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("k", i%11), fmt.Sprint("data-", i)), results.done(fmt.Sprint("data-", i))))
		}
		require.NoError(t, p.Flush(t.Context()))
		lone, err := p.PutSync(t.Context(), prodRecord("lone", "lone"))
		require.NoError(t, err)
		assert.True(t, lone.Aggregated, "with record ids a lone record travels aggregated")
		assert.NotEmpty(t, lone.RecordID)
		res, _ := results.snapshot()
		res["lone"] = lone

		ids := map[string]string{}
		for data, r := range res {
			require.NoError(t, r.Err)
			require.NotEmpty(t, r.RecordID, data)
			assert.LessOrEqual(t, len(r.RecordID), recordIDLen)
			prev, dup := ids[r.RecordID]
			assert.False(t, dup, "record id %s of %s also given to %s", r.RecordID, data, prev)
			ids[r.RecordID] = data
		}
		stored := 0
		for _, u := range prodReadLineage(t, s) {
			stored++
			assert.True(t, u.Aggregated)
			r, ok := res[string(u.Data)]
			if assert.True(t, ok, "%s", u.Data) {
				assert.Equal(t, r.RecordID, u.RecordID, "Deaggregate returns the result's record id")
				assert.Equal(t, r.SequenceNumber, u.SequenceNumber)
				assert.Equal(t, r.SubSequenceNumber, u.SubSequenceNumber)
			}
		}
		assert.Equal(t, 301, stored)

		// Ids differ between producers.
		q := prodNew(t, s, WithRecordIDs(true))
		r2, err := q.PutSync(t.Context(), prodRecord("lone", "other"))
		require.NoError(t, err)
		_, dup := ids[r2.RecordID]
		assert.False(t, dup)
	})
}

func TestProducerRecordIDsOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, s)
		r, err := p.PutSync(t.Context(), prodRecord("k", "v"))
		require.NoError(t, err)
		assert.Empty(t, r.RecordID)
	})
}

func TestProducerRecordIDsLargeRecord(t *testing.T) {
	// With ids every record is an aggregate: the largest record Put accepts
	// must still fit the stream's record limit once framed.
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithMaxRecordSize(10_000))
		p := prodNew(t, s, WithRecordIDs(true), WithProducerMaxRecordSize(10_000), WithAggregationMaxSize(5000))
		key := strings.Repeat("k", 256)
		// The largest record Put takes with ids on; one byte more is refused.
		largest := 10_000 - (1 + aggOverhead + len(key) + recordIDLen + 64) - len(key)
		err := p.Put(t.Context(), ProducerRecord{PartitionKey: key, Data: make([]byte, largest+1)}, nil)
		assert.ErrorIs(t, err, ErrInvalidArgument)
		res, err := p.PutSync(t.Context(), ProducerRecord{PartitionKey: key, Data: make([]byte, largest)})
		require.NoError(t, err, "an accepted record fits the stream's limit once framed with its id")
		assert.True(t, res.Aggregated)
		assert.EqualValues(t, 1, s.Stats().Total.RecordsPut)
	})
}

// ---- 8. Metrics -----------------------------------------------------------

func TestProducerMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewCluster()
		defer st.Close()
		s, err := st.CreateStream(t.Context(), "metrics", WithShardCount(2))
		require.NoError(t, err)
		f := &prodFake{s: s}
		var calls atomic.Int64
		throttle, internal := 2, 1
		f.fail = func(e PutRecordsEntry) error {
			n := calls.Add(1)
			switch {
			case n <= int64(throttle):
				return errorf("PutRecords", ErrProvisionedThroughputExceeded, "fake")
			case n <= int64(throttle+internal):
				return errorf("PutRecords", ErrInternalFailure, "fake")
			}
			return nil
		}
		p, err := NewProducer(t.Context(), f)
		require.NoError(t, err)
		defer p.Close(t.Context())
		results := prodNewResults()
		const n = 200
		start := time.Now()
		for i := range n {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("k", i%9), fmt.Sprint(i)), results.done(fmt.Sprint(i))))
		}
		time.Sleep(5 * time.Second)
		m := p.Metrics()
		res, _ := results.snapshot()
		require.Len(t, res, n)
		retried := 0
		for _, r := range res {
			require.NoError(t, r.Err)
			retried += r.Attempts - 1
		}
		stats := s.Stats().Total
		assert.EqualValues(t, n, m.UserRecordsPut)
		assert.Zero(t, m.UserRecordsFailed)
		assert.Equal(t, stats.RecordsPut, m.KinesisRecordsPut, "Kinesis records stored")
		assert.InDelta(t, float64(n)/float64(stats.RecordsPut), m.AggregationRatio(), 1e-9)
		assert.Greater(t, m.AggregationRatio(), 1.0)
		assert.EqualValues(t, throttle, m.Throttles)
		assert.EqualValues(t, retried, m.Retries, "retries = attempts beyond the first")
		assert.Positive(t, m.Retries)
		assert.EqualValues(t, len(f.callLog()), m.PutRecordsCalls)
		assert.Zero(t, m.BufferedRecords)
		assert.Zero(t, m.BufferedBytes)
		assert.GreaterOrEqual(t, m.BufferedTimeMax, 100*time.Millisecond, "records waited for the linger")
		assert.LessOrEqual(t, m.BufferedTimeMax, time.Since(start))
		assert.GreaterOrEqual(t, m.BufferedTimeTotal, time.Duration(n)*100*time.Millisecond)

		// A failure is counted once.
		f.mu.Lock()
		f.fail = func(PutRecordsEntry) error { return errorf("PutRecords", ErrValidation, "fake") }
		f.mu.Unlock()
		_, err = p.PutSync(t.Context(), prodRecord("k", "bad"))
		assert.ErrorIs(t, err, ErrValidation)
		// PutSync returns once the callback ran; the counters follow when
		// the record is done, which Flush waits for.
		require.NoError(t, p.Flush(t.Context()))
		m2 := p.Metrics()
		assert.EqualValues(t, 1, m2.UserRecordsFailed)
		assert.Equal(t, m.UserRecordsPut, m2.UserRecordsPut)
		assert.Equal(t, m.PutRecordsCalls+1, m2.PutRecordsCalls)
	})
}

func TestProducerMetricsWithoutAggregation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		p := prodNew(t, s, WithAggregation(false))
		assert.Zero(t, p.Metrics().AggregationRatio(), "no records yet")
		for i := range 100 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint(i), "v"), nil))
		}
		assert.EqualValues(t, 100, p.Metrics().BufferedRecords)
		assert.EqualValues(t, 100*3-10, p.Metrics().BufferedBytes, "keys 0..99 and 1-byte data")
		require.NoError(t, p.Flush(t.Context()))
		m := p.Metrics()
		assert.EqualValues(t, 100, m.UserRecordsPut)
		assert.EqualValues(t, 100, m.KinesisRecordsPut)
		assert.Equal(t, 1.0, m.AggregationRatio())
		assert.EqualValues(t, 1, m.PutRecordsCalls)
	})
}

// ---- 9. Validation --------------------------------------------------------

// A nil Putter, a nil *Stream or a nil option is refused rather than a
// panic.
func TestProducerNilPutter(t *testing.T) {
	for _, dst := range []Putter{nil, (*Stream)(nil)} {
		p, err := NewProducer(t.Context(), dst)
		assert.Nil(t, p)
		require.ErrorIs(t, err, ErrInvalidArgument)
		assert.Contains(t, err.Error(), "the Putter is nil")
	}
	p, err := NewProducer(t.Context(), prodNewFake(1), WithAggregation(true), nil)
	assert.Nil(t, p)
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "option 1 is nil")
}

// flakyStart is a Putter whose Describe and ListShards fail with err the
// first fails times each.
type flakyStart struct {
	*prodFake
	err                 error
	fails               int
	describes, listings int
}

func (f *flakyStart) Describe(context.Context) (StreamSummary, error) {
	if f.describes++; f.describes <= f.fails {
		return StreamSummary{}, f.err
	}
	return StreamSummary{Limits: KinesisLimits(), MaxRecordSize: 2 << 20, MaxPutRecordsSize: MaxPutRecordsSize(2 << 20)}, nil
}

func (f *flakyStart) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	if f.listings++; f.listings <= f.fails {
		return ListShardsOutput{}, f.err
	}
	return f.prodFake.ListShards(ctx, in)
}

// NewProducer retries its Describe and ListShards calls a few times when
// they fail retryably (a throttle, a network blip), and not otherwise.
func TestProducerStartupRetries(t *testing.T) {
	throttled := errorf("DescribeStreamSummary", ErrLimitExceeded, "rate exceeded")
	for _, tc := range []struct {
		name      string
		err       error
		fails     int
		ok        bool
		describes int
	}{
		{"retryable, then fine", throttled, startupAttempts - 1, true, startupAttempts},
		{"retryable every time", throttled, startupAttempts, false, startupAttempts},
		{"not retryable", errorf("DescribeStreamSummary", ErrAccessDenied, "no permission"), 1, false, 1},
		{"unclassified, as an internal failure", errors.New("connection reset"), startupAttempts - 1, true, startupAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &flakyStart{prodFake: prodNewFake(2), err: tc.err, fails: tc.fails}
				p, err := NewProducer(t.Context(), f)
				assert.Equal(t, tc.describes, f.describes, "Describe calls")
				if !tc.ok {
					require.ErrorIs(t, err, tc.err)
					assert.Nil(t, p)
					return
				}
				require.NoError(t, err)
				defer p.Close(t.Context())
				assert.Equal(t, startupAttempts, f.listings, "ListShards calls")
			})
		})
	}
	// A deadline that ends the retries keeps what was being retried.
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		f := &flakyStart{prodFake: prodNewFake(1), err: throttled, fails: startupAttempts}
		_, err := NewProducer(ctx, f)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, ErrLimitExceeded, "the throttle it was retrying")
		assert.Contains(t, err.Error(), "describing the stream")
	})
}

func TestProducerInvalidOptions(t *testing.T) {
	cases := []struct {
		name  string
		opt   ProducerOption
		value string // the offending value, named in the message
	}{
		{"aggregation max count 0", WithAggregationMaxCount(0), "0"},
		{"aggregation max count negative", WithAggregationMaxCount(-5), "-5"},
		{"max record size negative", WithProducerMaxRecordSize(-1), "-1"},
		{"max record size too large", WithProducerMaxRecordSize(11 << 20), "11534336"},
		{"aggregation max size too small", WithAggregationMaxSize(10), "10"},
		{"aggregation max size above the record size", WithAggregationMaxSize(1 << 20), "1048576"},
		{"collection max count 0", WithCollectionMaxCount(0), "0"},
		{"collection max count 501", WithCollectionMaxCount(501), "501"},
		{"collection max size below a record", WithCollectionMaxSize(1000), "1000"},
		{"negative buffered time", WithRecordMaxBufferedTime(-time.Millisecond), "-1ms"},
		{"zero TTL", WithRecordTTL(0), "0s"},
		{"negative TTL", WithRecordTTL(-time.Second), "-1s"},
		{"negative rate limit", WithRateLimit(-1), "-1"},
		{"buffer bytes below a record", WithBufferLimits(1000, 10), "1000"},
		{"buffer records 0", WithBufferLimits(64<<20, 0), "0 records"},
		{"max in flight 0", WithMaxInFlight(0), "0"},
		{"backoff base 0", WithRetryBackoff(0, time.Second), "0s"},
		{"backoff max below base", WithRetryBackoff(2*time.Second, time.Second), "2s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := prodNewFake(1)
				p, err := NewProducer(t.Context(), f, tc.opt)
				require.Error(t, err)
				assert.Nil(t, p)
				assert.ErrorIs(t, err, ErrInvalidArgument)
				var e *Error
				if assert.ErrorAs(t, err, &e) {
					assert.Equal(t, "NewProducer", e.Op)
					assert.Contains(t, e.Msg, tc.value, "the message names the value")
				}
			})
		})
	}
	t.Run("valid edge values", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := prodNewFake(1)
			p, err := NewProducer(t.Context(), f, WithAggregationMaxCount(1), WithCollectionMaxCount(1),
				WithCollectionMaxCount(500), WithRecordMaxBufferedTime(0), WithRateLimit(0), WithMaxInFlight(1),
				WithProducerMaxRecordSize(10<<20), WithCollectionMaxSize(10<<20), WithBufferLimits(10<<20, 1))
			require.NoError(t, err)
			require.NoError(t, p.Close(t.Context()))
		})
	})
	t.Run("no open shards", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &prodFake{}
			_, err := NewProducer(t.Context(), f)
			assert.ErrorIs(t, err, ErrResourceNotFound)
		})
	})
	t.Run("closed stream", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, s := newTestStream(t)
			c.Close()
			_, err := NewProducer(t.Context(), s)
			assert.ErrorIs(t, err, ErrClosed)
		})
	})
}

func TestProducerInvalidRecords(t *testing.T) {
	cases := []struct {
		name string
		rec  ProducerRecord
		kind error
		msg  string
	}{
		{"empty key", ProducerRecord{Data: []byte("x")}, ErrValidation, "empty"},
		{"key too long", ProducerRecord{PartitionKey: strings.Repeat("k", 257)}, ErrValidation, "257"},
		{"key not UTF-8", ProducerRecord{PartitionKey: "\xff"}, ErrValidation, "UTF-8"},
		{"explicit hash key not decimal", ProducerRecord{PartitionKey: "k", ExplicitHashKey: "12a"}, ErrValidation, "12a"},
		{"explicit hash key leading zero", ProducerRecord{PartitionKey: "k", ExplicitHashKey: "01"}, ErrValidation, "01"},
		{"explicit hash key too large", ProducerRecord{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456"}, ErrInvalidArgument, "340282366920938463463374607431768211456"},
		{"data too large", ProducerRecord{PartitionKey: "k", Data: make([]byte, 1<<20)}, ErrInvalidArgument, "1048577"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t)
				p := prodNew(t, s)
				called := false
				cb := func(ProducerResult) { called = true }
				for _, put := range []func() error{
					func() error { return p.Put(t.Context(), tc.rec, cb) },
					func() error { return p.TryPut(tc.rec, cb) },
					func() error { _, err := p.PutSync(t.Context(), tc.rec); return err },
				} {
					err := put()
					assert.ErrorIs(t, err, tc.kind)
					var e *Error
					if assert.ErrorAs(t, err, &e) {
						assert.Equal(t, "Put", e.Op)
						assert.Contains(t, e.Msg, tc.msg)
					}
				}
				require.NoError(t, p.Flush(t.Context()))
				assert.False(t, called, "the callback of a rejected record never runs")
				assert.Zero(t, p.Metrics().BufferedRecords)
				assert.Zero(t, s.Stats().Total.RecordsPut)
			})
		})
	}
	t.Run("largest record", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(1))
			p := prodNew(t, s)
			res, err := p.PutSync(t.Context(), ProducerRecord{PartitionKey: "k", Data: make([]byte, 1<<20-1)})
			require.NoError(t, err, "data + key of exactly 1 MiB is accepted")
			assert.False(t, res.Aggregated)
			assert.EqualValues(t, 1, s.Stats().Total.RecordsPut)
		})
	})
	t.Run("data copied", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(1))
			p := prodNew(t, s)
			buf := []byte("original")
			require.NoError(t, p.Put(t.Context(), ProducerRecord{PartitionKey: "k", Data: buf}, nil))
			copy(buf, "modified")
			require.NoError(t, p.Flush(t.Context()))
			recs := readAll(t, s, shardID(0), StartingPosition{Type: TrimHorizon})
			require.Len(t, recs, 1)
			assert.Equal(t, "original", string(recs[0].Data), "Put copies the data")
		})
	})
}

// TestProducerCallbacksOneAtATime checks that callbacks never run
// concurrently, even with several calls in flight.
func TestProducerCallbacksOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(8), WithLimits(Unlimited()))
		injectFault(t, c, Fault{Op: OpPutRecords, Latency: 10 * time.Millisecond})
		p := prodNew(t, s, WithAggregation(false), WithCollectionMaxCount(10), WithMaxInFlight(8), WithShardLimits(Unlimited()))
		var running, overlap atomic.Int64
		for i := range 2000 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint(i), "v"), func(ProducerResult) {
				if running.Add(1) > 1 {
					overlap.Add(1)
				}
				for range 10 {
					runtime.Gosched() // a slow callback; it must not block on the bubble's clock (see below)
				}
				running.Add(-1)
			}))
		}
		require.NoError(t, p.Flush(t.Context()))
		assert.Zero(t, overlap.Load())
		assert.EqualValues(t, 2000, p.Metrics().UserRecordsPut)
	})
}

// TestProducerRateLimit checks that the producer keeps a shard within
// WithRateLimit percent of its limits: with 100% against a stream with
// the same limits nothing is throttled.
func TestProducerRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limits := Limits{WriteRecordsPerSecond: 100, WriteBytesPerSecond: 1 << 20}
		_, s := newTestStream(t, WithShardCount(1), WithLimits(limits))
		p := prodNew(t, s, WithAggregation(false), WithRateLimit(100), WithShardLimits(limits))
		start := time.Now()
		for i := range 500 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint(i), "v"), nil))
		}
		require.NoError(t, p.Flush(t.Context()))
		elapsed := time.Since(start)
		m := p.Metrics()
		assert.EqualValues(t, 500, m.UserRecordsPut)
		assert.Zero(t, m.Throttles, "the producer stays within the shard's limit")
		assert.Zero(t, s.Stats().Total.WriteThrottles)
		// 100 records at once (the burst), then 100/s.
		assert.GreaterOrEqual(t, elapsed, 4*time.Second)
		assert.LessOrEqual(t, elapsed, 5*time.Second)
	})
}

// TestProducerCallbackWaitsInBubble checks that a callback that waits on
// the bubble's clock (a short sleep) does not hang a synctest bubble while
// other senders have results to deliver: they wait for their turn on a
// channel, which synctest sees as durably blocked (a sync.Mutex is not).
func TestProducerCallbackWaitsInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(8), WithLimits(Unlimited()))
		injectFault(t, c, Fault{Op: OpPutRecords, Latency: 10 * time.Millisecond})
		p := prodNew(t, s, WithAggregation(false), WithCollectionMaxCount(10), WithMaxInFlight(8), WithShardLimits(Unlimited()))
		for i := range 200 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint(i), "v"), func(ProducerResult) {
				time.Sleep(time.Millisecond) // a callback that takes 1 ms
			}))
		}
		require.NoError(t, p.Flush(t.Context()))
		assert.EqualValues(t, 200, p.Metrics().UserRecordsPut)
	})
}

// TestProducerStreamRecordSize checks that a producer on a *Stream packs to
// the stream's record size by default, as WithProducerMaxRecordSize
// documents ("Default: the stream's, when the Putter can describe it"):
// a record over the stream's limit is refused by Put, and aggregates stay
// within it.
func TestProducerStreamRecordSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithMaxRecordSize(1000))
		p := prodNew(t, s)
		err := p.Put(t.Context(), ProducerRecord{PartitionKey: "k", Data: make([]byte, 1000)}, func(r ProducerResult) {
			t.Errorf("a record over the stream's limit was accepted, then failed: %v", r.Err)
		})
		assert.ErrorIs(t, err, ErrInvalidArgument, "Put refuses a record over the stream's 1,000-byte limit")

		results := prodNewResults()
		for i := range 300 {
			require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("k", i%5), strings.Repeat("x", 90)), results.done(fmt.Sprint(i))))
		}
		require.NoError(t, p.Flush(t.Context()))
		res, _ := results.snapshot()
		failed := 0
		for _, r := range res {
			if r.Err != nil {
				failed++
			}
		}
		assert.Zero(t, failed, "small records are aggregated within the stream's record size (first error: %v)", func() error {
			for _, r := range res {
				if r.Err != nil {
					return r.Err
				}
			}
			return nil
		}())
		assert.EqualValues(t, 300, p.Metrics().UserRecordsPut)
	})
}

// TestProducerCallbackTryPut checks that a callback may put again with
// TryPut (for example to re-put a failed record elsewhere).
func TestProducerCallbackTryPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, s, WithBufferLimits(1<<20, 1))
		var again error
		var wg sync.WaitGroup
		wg.Add(1)
		require.NoError(t, p.Put(t.Context(), prodRecord("k", "first"), func(r ProducerResult) {
			defer wg.Done()
			assert.NoError(t, r.Err)
			// The first record's space is free again: a one-record buffer
			// takes the follow-up.
			again = p.TryPut(prodRecord("k", "follow-up"), nil)
		}))
		require.NoError(t, p.Flush(t.Context()))
		wg.Wait()
		require.NoError(t, again)
		require.NoError(t, p.Flush(t.Context()))
		assert.EqualValues(t, 2, p.Metrics().UserRecordsPut)
		assert.Equal(t, []string{"first", "follow-up"}, datas(readAll(t, s, shardID(0), StartingPosition{Type: TrimHorizon})))
	})
}

// TestProducerMaxInFlight checks that at most WithMaxInFlight calls run at
// once and that calls never overlap on a shard.
func TestProducerMaxInFlight(t *testing.T) {
	for _, inFlight := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(inFlight), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := prodNewFake(8)
				f.latency = 50 * time.Millisecond
				p := prodNew(t, f, WithAggregation(false), WithCollectionMaxCount(20), WithMaxInFlight(inFlight))
				for i := range 2000 {
					require.NoError(t, p.Put(t.Context(), prodRecord(fmt.Sprint("k", i), "v"), nil))
				}
				require.NoError(t, p.Flush(t.Context()))
				f.mu.Lock()
				defer f.mu.Unlock()
				assert.Equal(t, inFlight, f.maxInFlight, "calls under way at once")
				assert.Zero(t, f.overlaps, "calls never overlap on a shard")
				assert.EqualValues(t, 2000, p.Metrics().UserRecordsPut)
			})
		})
	}
}

// TestProducerShortResponse checks that a Putter answering with fewer
// results than entries does not lose records: those without a result are
// retried.
func TestProducerShortResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := prodNewFake(1)
		first := true
		f.mangle = func(out *PutRecordsOutput) {
			if first {
				first = false
				out.Records = out.Records[:1]
			}
		}
		p := prodNew(t, f, WithAggregation(false))
		results := prodNewResults()
		for _, k := range []string{"a", "b", "c"} {
			require.NoError(t, p.Put(t.Context(), prodRecord(k, k), results.done(k)))
		}
		require.NoError(t, p.Flush(t.Context()))
		res, _ := results.snapshot()
		require.Len(t, res, 3)
		assert.Equal(t, 1, res["a"].Attempts)
		for _, k := range []string{"b", "c"} {
			assert.NoError(t, res[k].Err)
			assert.Equal(t, 2, res[k].Attempts, "%s had no result and was sent again", k)
		}
		assert.Equal(t, []int{3, 2}, f.callSizes())
	})
}
