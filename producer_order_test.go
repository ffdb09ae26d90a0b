package runnel

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Producer promises that each partition key's records are stored in the
// order they were put, also across retries and resharding, and that none is
// lost or duplicated. These tests put records for a few keys while records
// fail at random and the stream reshards, then read the stream in lineage
// order and check every key's sequence.

// prodOrderCase is one scenario of TestProducerPerKeyOrder.
type prodOrderCase struct {
	name        string
	aggregation bool
	throttle    bool // a fault throttles random records
	reshard     bool // the stream reshards while records are put
	generic     bool // a prodFake in front of the stream fails random entries
	batched     bool // on the generic path, without WithStrictOrder: order may break, nothing is lost
}

func TestProducerPerKeyOrder(t *testing.T) {
	var cases []prodOrderCase
	for _, agg := range []bool{false, true} {
		for _, c := range []prodOrderCase{
			{name: "throttle", throttle: true},
			{name: "reshard", reshard: true},
			{name: "throttle+reshard", throttle: true, reshard: true},
			{name: "generic putter", generic: true},
			{name: "generic putter, batched", generic: true, batched: true},
		} {
			c.aggregation = agg
			c.name = fmt.Sprintf("%s/aggregation=%v", c.name, agg)
			cases = append(cases, c)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(3) {
				synctest.Test(t, func(t *testing.T) { prodRunOrder(t, tc, seed) })
			}
		})
	}
}

// TestProducerPerKeyOrderGenericReshard runs the generic path (what real
// Kinesis sees) while the stream reshards and records fail at random, with
// WithStrictOrder: aggregates are routed by their first user record's
// ExplicitHashKey, as the KPL does, so some land in a sibling that does not
// own all their records. The producer sends those records again, so a
// reader that drops records outside its shard's range (as the KCL does)
// reads every key's records once, in put order.
func TestProducerPerKeyOrderGenericReshard(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(fmt.Sprint("aggregation=", agg), func(t *testing.T) {
			for seed := range uint64(3) {
				synctest.Test(t, func(t *testing.T) {
					prodRunOrder(t, prodOrderCase{aggregation: agg, generic: true, reshard: true}, seed)
				})
			}
		})
	}
}

// prodSplitKeys returns a partition key in each half of a shard's range.
func prodSplitKeys(rng HashKeyRange) (low, high string) {
	mid := rng.Mid()
	for i := 0; low == "" || high == ""; i++ {
		k := fmt.Sprint("key-", i)
		if !rng.Contains(HashKeyOf(k)) {
			continue
		}
		if HashKeyOf(k).Cmp(mid) < 0 {
			low = cmp.Or(low, k)
		} else {
			high = cmp.Or(high, k)
		}
	}
	return low, high
}

// prodLockedRand is a seeded source safe for the producer's goroutines.
type prodLockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (r *prodLockedRand) intN(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.r.IntN(n)
}

func prodRunOrder(t *testing.T, tc prodOrderCase, seed uint64) {
	const (
		keys   = 20
		perKey = 150
	)
	ctx := context.Background()
	c, s := newTestStream(t, WithShardCount(4), WithUpdateShardCountLimit(0))
	rng := &prodLockedRand{r: rand.New(rand.NewPCG(seed, 42))}

	var dst Putter = s
	if tc.generic {
		f := &prodFake{s: s}
		f.fail = func(PutRecordsEntry) error {
			// Without aggregation the generic path sends a partition key
			// at most once per shard and call, and every failure backs the
			// shard off: keep failures rare enough to finish within the TTL.
			switch rng.intN(40) {
			case 0:
				return errorf("PutRecords", ErrProvisionedThroughputExceeded, "fake throttle")
			case 1:
				return errorf("PutRecords", ErrInternalFailure, "fake failure")
			}
			return nil
		}
		dst = f
	}
	var removeFault func()
	if tc.throttle {
		removeFault = injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded,
			Record: func(string, []byte) bool { return rng.intN(8) == 0 }})
	}
	opts := []ProducerOption{WithAggregation(tc.aggregation), WithCollectionMaxCount(40), WithStrictOrder(!tc.batched)}
	if tc.aggregation {
		// Small aggregates: several per shard and call.
		opts = append(opts, WithAggregationMaxSize(300))
	}
	p, err := NewProducer(ctx, dst, opts...)
	require.NoError(t, err)

	results := prodNewResults()
	var putters, resharder sync.WaitGroup
	stopReshard := make(chan struct{})
	reshards := 0
	if tc.reshard {
		resharder.Go(func() {
			r := rand.New(rand.NewPCG(seed, 7))
			for {
				select {
				case <-stopReshard:
					return
				case <-time.After(time.Duration(20+r.IntN(60)) * time.Millisecond):
				}
				prodReshardOnce(t, s, r)
				reshards++
			}
		})
	}
	// One goroutine per group of keys: each key is put by one goroutine,
	// so its put order is well defined.
	for g := range 4 {
		putters.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := range perKey {
				for k := g; k < keys; k += 4 {
					key := fmt.Sprint("key-", k)
					data := fmt.Sprintf("%s/%04d", key, i)
					if err := p.Put(ctx, prodRecord(key, data), results.done(data)); !assert.NoError(t, err) {
						return
					}
				}
				if r.IntN(10) == 0 {
					time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
				}
			}
		})
	}
	putters.Wait()
	close(stopReshard)
	resharder.Wait()
	if tc.reshard {
		require.Positive(t, reshards)
	}
	if removeFault != nil {
		removeFault()
	}
	require.NoError(t, p.Close(ctx))

	res, calls := results.snapshot()
	require.Len(t, res, keys*perKey, "every record has an outcome")
	for id, r := range res {
		require.Equal(t, 1, calls[id], "callback of %s ran once", id)
		require.NoError(t, r.Err, id)
	}

	m := p.Metrics()
	assert.EqualValues(t, keys*perKey, m.UserRecordsPut)
	if tc.throttle || tc.generic {
		assert.Positive(t, m.Retries)
	}

	// Read as the KCL does: a user record stored in a shard whose range
	// lacks its hash key is dropped (the producer sent it again).
	recs := prodReadLineage(t, s)
	next := map[string]int{} // key → next counter expected
	seen := map[string]int{}
	var problems []string
	misplaced, kept := 0, 0
	for _, u := range recs {
		if !u.shard.HashKeyRange.Contains(HashKeyOf(u.PartitionKey)) {
			misplaced++
			continue
		}
		kept++
		key, n, ok := strings.Cut(string(u.Data), "/")
		require.True(t, ok, "record %q", u.Data)
		require.Equal(t, key, u.PartitionKey)
		i, err := strconv.Atoi(n)
		require.NoError(t, err)
		seen[string(u.Data)]++
		if i != next[key] && len(problems) < 10 {
			problems = append(problems, fmt.Sprintf("%s: read %d, expected %d (shard %s, seq %s/%d)", key, i, next[key], u.shard.ShardID, u.SequenceNumber, u.SubSequenceNumber))
		}
		if i >= next[key] {
			next[key] = i + 1
		}
		r := res[string(u.Data)]
		assert.Equal(t, r.SequenceNumber, u.SequenceNumber, "%s: the result names where it was stored", u.Data)
	}
	assert.Equal(t, keys*perKey, kept, "a KCL-style reader reads every record")
	assert.Len(t, seen, keys*perKey, "no record is lost")
	for id, n := range seen {
		require.Equal(t, 1, n, "%s is read once", id)
	}
	if !tc.generic {
		assert.Zero(t, misplaced, "user records stored in a shard that does not own their hash key")
	}
	if tc.batched {
		return // order may break when a record fails and a later one of its key in the same call does not
	}
	assert.Empty(t, problems, "every key's records are read in put order")
}

// prodReshardOnce splits, merges or rescales s at random, keeping between
// 1 and 8 open shards.
func prodReshardOnce(t *testing.T, s *Stream, r *rand.Rand) {
	ctx := context.Background()
	out, err := s.ListShards(ctx, ListShardsInput{Filter: ShardFilter{Type: FilterAtLatest}})
	require.NoError(t, err)
	open := out.Shards
	slices.SortFunc(open, func(a, b Shard) int { return a.HashKeyRange.StartingHashKey.Cmp(b.HashKeyRange.StartingHashKey) })
	switch op := r.IntN(3); {
	case op == 0 && len(open) < 8:
		sh := open[r.IntN(len(open))]
		assert.NoError(t, s.SplitShard(ctx, sh.ShardID, sh.HashKeyRange.Mid()))
	case op == 1 && len(open) > 1:
		i := r.IntN(len(open) - 1)
		assert.NoError(t, s.MergeShards(ctx, open[i].ShardID, open[i+1].ShardID))
	default:
		lo, hi := (len(open)+1)/2, min(2*len(open), 8)
		_, err := s.UpdateShardCount(ctx, lo+r.IntN(hi-lo+1))
		assert.NoError(t, err)
	}
}

// TestProducerOrderStaleMapAggregates: when the producer's shard map is
// stale (the stream has split the shard), an aggregate whose user records
// span both children is refused with ErrShardMapChanged, and so is every
// later aggregate of the same producer shard, so none is stored ahead of
// the earlier records of its keys.
func TestProducerOrderStaleMapAggregates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, s, WithAggregationMaxCount(2))
		whole, err := s.ListShards(t.Context(), ListShardsInput{})
		require.NoError(t, err)
		mid := whole.Shards[0].HashKeyRange.Mid()
		low, high := prodSplitKeys(whole.Shards[0].HashKeyRange)
		// The producer still sees one shard when it sends these.
		require.NoError(t, p.Put(t.Context(), prodRecord(low, "low/0"), nil))
		require.NoError(t, p.Put(t.Context(), prodRecord(high, "high/0"), nil))
		require.NoError(t, p.Put(t.Context(), prodRecord(high, "high/1"), nil))
		require.NoError(t, p.Put(t.Context(), prodRecord(high, "high/2"), nil))
		require.NoError(t, s.SplitShard(t.Context(), whole.Shards[0].ShardID, mid))
		require.NoError(t, p.Flush(t.Context()))

		var highs []string
		for _, u := range prodReadLineage(t, s) {
			if u.PartitionKey == high {
				highs = append(highs, string(u.Data))
			}
		}
		assert.Equal(t, []string{"high/0", "high/1", "high/2"}, highs, "a key's records are stored in put order")
	})
}

// TestProducerGenericAggregateAfterSplit: on the generic path an aggregate
// built for a shard that has split meanwhile is routed by its first user
// record's ExplicitHashKey, as with the KPL, so another of its user records
// may be stored in a sibling that does not own its hash key. The producer
// sees the result name another shard, learns the new shards and sends that
// record again, so a reader that drops such records (as the KCL does)
// loses nothing.
func TestProducerGenericAggregateAfterSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, &prodFake{s: s})
		whole, err := s.ListShards(t.Context(), ListShardsInput{})
		require.NoError(t, err)
		low, high := prodSplitKeys(whole.Shards[0].HashKeyRange)
		require.NoError(t, p.Put(t.Context(), prodRecord(low, "low/0"), nil))
		require.NoError(t, p.Put(t.Context(), prodRecord(high, "high/0"), nil))
		require.NoError(t, s.SplitShard(t.Context(), whole.Shards[0].ShardID, whole.Shards[0].HashKeyRange.Mid()))
		require.NoError(t, p.Flush(t.Context()))
		require.NoError(t, p.Put(t.Context(), prodRecord(high, "high/1"), nil))
		require.NoError(t, p.Flush(t.Context()))

		var kept, dropped []string
		for _, u := range prodReadLineage(t, s) {
			if u.shard.HashKeyRange.Contains(HashKeyOf(u.PartitionKey)) {
				kept = append(kept, string(u.Data))
			} else {
				dropped = append(dropped, string(u.Data))
			}
		}
		assert.ElementsMatch(t, []string{"low/0", "high/0", "high/1"}, kept, "a KCL-style reader reads every record once")
		assert.Equal(t, []string{"high/0"}, dropped, "high/0 travelled in low/0's aggregate, into the low child")
		assert.Positive(t, p.Metrics().Retries, "high/0 was sent again")
	})
}

// TestProducerHotKeyCalls counts the PutRecords calls that 100 records of
// one partition key take on the generic path: the default batches them in
// one call; WithStrictOrder sends the key once per shard and call, which
// without aggregation means one record per call, and with aggregation one
// aggregate per call (holding them all here).
func TestProducerHotKeyCalls(t *testing.T) {
	tests := []struct {
		name        string
		strict, agg bool
		calls       int64
	}{
		{name: "batched", calls: 1},
		{name: "batched aggregated", agg: true, calls: 1},
		{name: "strict", strict: true, calls: 100},
		{name: "strict aggregated", strict: true, agg: true, calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
				p := prodNew(t, s, WithGenericPath(true), WithStrictOrder(tt.strict), WithAggregation(tt.agg), WithShardLimits(Unlimited()))
				for i := range 100 {
					require.NoError(t, p.Put(t.Context(), prodRecord("hot", fmt.Sprint(i)), nil))
				}
				require.NoError(t, p.Flush(t.Context()))
				m := p.Metrics()
				assert.EqualValues(t, 100, m.UserRecordsPut)
				assert.Equal(t, tt.calls, m.PutRecordsCalls)
				var got []string
				for _, u := range prodReadLineage(t, s) {
					got = append(got, string(u.Data))
				}
				want := make([]string, 100)
				for i := range want {
					want[i] = fmt.Sprint(i)
				}
				assert.Equal(t, want, got, "stored in put order")
			})
		})
	}
}

// failingLister is a generic-path Putter over a stream whose ListShards
// fails once fail is set, as a Kinesis endpoint might while it throttles
// control calls.
type failingLister struct {
	s    *Stream
	fail atomic.Bool
}

func (f *failingLister) PutRecords(ctx context.Context, in PutRecordsInput) (PutRecordsOutput, error) {
	return f.s.PutRecords(ctx, in)
}

func (f *failingLister) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	if f.fail.Load() {
		return ListShardsOutput{}, errorf("ListShards", ErrLimitExceeded, "injected")
	}
	return f.s.ListShards(ctx, in)
}

// TestProducerMisplacedWhileListingFails: an aggregate lands in a child
// that may not own its other user records while ListShards keeps failing.
// The record that routed it is reported stored; the others cannot be
// checked, so they fail at their TTL (saying where they were stored), and
// Flush and Close return.
func TestProducerMisplacedWhileListingFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		f := &failingLister{s: s}
		p := prodNew(t, f, WithRecordTTL(5*time.Second))
		whole, err := s.ListShards(t.Context(), ListShardsInput{})
		require.NoError(t, err)
		low, high := prodSplitKeys(whole.Shards[0].HashKeyRange)
		results := prodNewResults()
		require.NoError(t, p.Put(t.Context(), prodRecord(low, "low/0"), results.done("low/0")))
		require.NoError(t, p.Put(t.Context(), prodRecord(high, "high/0"), results.done("high/0")))
		require.NoError(t, s.SplitShard(t.Context(), whole.Shards[0].ShardID, whole.Shards[0].HashKeyRange.Mid()))
		f.fail.Store(true)
		start := time.Now()
		require.NoError(t, p.Flush(t.Context()))
		assert.Less(t, time.Since(start), 6*time.Second, "the unchecked record fails at its TTL")
		res, _ := results.snapshot()
		assert.NoError(t, res["low/0"].Err, "the record that routed the aggregate is stored where it belongs")
		assert.ErrorIs(t, res["high/0"].Err, ErrRecordExpired)
		assert.ErrorContains(t, res["high/0"].Err, "may not own")
		require.NoError(t, p.Close(t.Context()))
	})
}
