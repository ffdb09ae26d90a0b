package runnel

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatsEmpty(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(3))
	st := s.Stats()
	assert.Equal(t, "test", st.StreamName)
	assert.Equal(t, ShardStats{}, st.Total)
	require.Len(t, st.Shards, 3)
	for i, sh := range st.Shards {
		assert.Equal(t, ShardStats{ShardID: shardID(uint64(i)), Open: true}, sh)
	}
}

func TestStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		ctx := context.Background()
		t0 := time.UnixMilli(time.Now().UnixMilli()).UTC()

		// Shard 0: two records at t0 and t0+1s; shard 1: one record at t0+3s.
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "ab", ExplicitHashKey: toShard0, Data: []byte("12345")})
		require.NoError(t, err)
		time.Sleep(time.Second)
		out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "c", ExplicitHashKey: toShard0, Data: []byte("123")}}})
		require.NoError(t, err)
		require.Zero(t, out.FailedRecordCount)
		time.Sleep(2 * time.Second)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "d", ExplicitHashKey: toShard1, Data: make([]byte, 10)})
		require.NoError(t, err)

		// Shard 0 is read twice (one record each), plus one empty read.
		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		r := get(t, s, it, 1)
		r = get(t, s, r.NextShardIterator, 1)
		get(t, s, r.NextShardIterator, 1)

		st := s.Stats()
		require.Len(t, st.Shards, 2)
		s0, s1 := st.Shards[0], st.Shards[1]
		assert.Equal(t, ShardStats{
			ShardID:         shard0,
			Open:            true,
			RecordsRetained: 2,
			BytesRetained:   7 + 4,
			RecordsPut:      2,
			BytesPut:        7 + 4,
			GetCalls:        3,
			RecordsRead:     2,
			BytesRead:       7 + 4,
			OldestArrival:   t0,
			NewestArrival:   t0.Add(time.Second),
		}, normalizeTimes(s0))
		assert.Equal(t, ShardStats{
			ShardID:         shard1,
			Open:            true,
			RecordsRetained: 1,
			BytesRetained:   11,
			RecordsPut:      1,
			BytesPut:        11,
			OldestArrival:   t0.Add(3 * time.Second),
			NewestArrival:   t0.Add(3 * time.Second),
		}, normalizeTimes(s1))
		assert.Equal(t, ShardStats{
			RecordsRetained: 3,
			BytesRetained:   22,
			RecordsPut:      3,
			BytesPut:        22,
			GetCalls:        3,
			RecordsRead:     2,
			BytesRead:       11,
			OldestArrival:   t0,
			NewestArrival:   t0.Add(3 * time.Second),
		}, normalizeTimes(st.Total))
	})
}

// normalizeTimes drops the location and monotonic reading of the arrival
// times so that ShardStats compare with ==. It also drops MemoryBytes, which
// depends on chunk sizing (TestExpiredMemoryIsReleased checks it).
func normalizeTimes(s ShardStats) ShardStats {
	s.MemoryBytes = 0
	norm := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return time.UnixMilli(t.UnixMilli()).UTC()
	}
	s.OldestArrival, s.NewestArrival = norm(s.OldestArrival), norm(s.NewestArrival)
	return s
}

func TestStatsThrottlesAndExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithRetention(time.Minute),
			WithLimits(Limits{WriteRecordsPerSecond: 2, ReadCallsPerSecond: 1}))
		ctx := context.Background()
		putString(t, s, "k", "a")
		putString(t, s, "k", "b")
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("c")})
		require.ErrorIs(t, err, ErrProvisionedThroughputExceeded)
		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		get(t, s, it, 0)
		_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
		require.ErrorIs(t, err, ErrProvisionedThroughputExceeded)

		st := s.Stats().Total
		assert.EqualValues(t, 1, st.WriteThrottles)
		assert.EqualValues(t, 1, st.ReadThrottles)
		assert.EqualValues(t, 2, st.GetCalls)
		assert.EqualValues(t, 2, st.RecordsPut)
		assert.EqualValues(t, 2, st.RecordsRead)

		time.Sleep(time.Minute)
		putString(t, s, "k", "d")
		time.Sleep(time.Second)
		putString(t, s, "k", "e") // trims a and b
		st = s.Stats().Total
		assert.EqualValues(t, 2, st.RecordsRetained)
		assert.EqualValues(t, 4, st.BytesRetained)
		assert.EqualValues(t, 4, st.RecordsPut, "cumulative counters do not shrink")
		assert.True(t, st.OldestArrival.Equal(time.Now().Add(-time.Second)))
		assert.True(t, st.NewestArrival.Equal(time.Now()))
	})
}

func TestStatsOfDeletedStream(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	putString(t, s, "k", "v")
	require.NoError(t, c.DeleteStream(context.Background(), "test"))
	// Stats has no error result; a deleted stream reports its last figures.
	assert.EqualValues(t, 1, s.Stats().Total.RecordsPut)
}

// TestStatsTotalsNeverGoDown checks that a stream's totals keep the counts
// of a resharded parent once it is gone (closed and all its records
// expired), before and after the sweep drops it from the listing.
func TestStatsTotalsNeverGoDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithRetention(time.Hour), WithLimits(Unlimited()))
		for range 5 {
			putString(t, s, "k", "x")
		}
		require.NoError(t, s.SplitShard(context.Background(), shard0, HashKeyRange{EndingHashKey: MaxHashKey()}.Mid()))
		putString(t, s, "k", "y")
		before := s.Stats()
		require.EqualValues(t, 6, before.Total.RecordsPut)
		time.Sleep(2 * time.Hour) // the parent's records expire
		st := s.Stats()
		assert.Len(t, st.Shards, 2, "the gone parent is no longer listed")
		assert.EqualValues(t, 6, st.Total.RecordsPut, "before the sweep")
		time.Sleep(time.Minute) // the sweep drops the parent
		synctest.Wait()
		st = s.Stats()
		assert.Len(t, st.Shards, 2)
		assert.EqualValues(t, 6, st.Total.RecordsPut, "after the sweep")
		assert.Equal(t, before.Total.BytesPut, st.Total.BytesPut)
	})
}
