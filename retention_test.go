package runnel

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// retained returns the records and bytes a stream holds now.
func retained(s *Stream) (records, bytes int64) {
	st := s.Stats().Total
	return st.RecordsRetained, st.BytesRetained
}

// chunks returns how many storage chunks a shard holds: the memory that
// expiry must give back.
func chunks(t *testing.T, s *Stream, shard int) int {
	t.Helper()
	sh := s.shards.Load().all[shard]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m, ok := sh.store.(*memStore)
	require.True(t, ok)
	return m.chunks.Len()
}

func TestRecordsExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithRetention(time.Hour), WithLimits(Unlimited()))
		r0 := putString(t, s, "k", "r0")
		time.Sleep(30 * time.Minute)
		putString(t, s, "k", "r1")

		time.Sleep(30 * time.Minute) // r0 is exactly one retention period old
		assert.Equal(t, []string{"r0", "r1"}, datas(readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})),
			"a record is readable for its whole retention period")

		time.Sleep(time.Millisecond)
		assert.Equal(t, []string{"r1"}, datas(readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})),
			"TRIM_HORIZON moves past the expired record")
		assert.Equal(t, []string{"r1"}, datas(readAll(t, s, shard0, StartingPosition{Type: AtSequenceNumber, SequenceNumber: r0.SequenceNumber})),
			"an expired record is never returned")
		assert.Equal(t, []string{"r1"}, datas(readAll(t, s, shard0, StartingPosition{Type: AtTimestamp, Timestamp: time.Now().Add(-2 * time.Hour)})))
		n, _ := retained(s)
		assert.EqualValues(t, 1, n)

		time.Sleep(30 * time.Minute)
		assert.Empty(t, readAll(t, s, shard0, StartingPosition{Type: TrimHorizon}))
		n, b := retained(s)
		assert.Zero(t, n)
		assert.Zero(t, b)
		assert.Zero(t, chunks(t, s, 0), "the memory of expired records is released")

		// The shard keeps going after it emptied.
		putString(t, s, "k", "r2")
		assert.Equal(t, []string{"r2"}, datas(readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})))
	})
}

func TestExpiryReleasesMemoryOnWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithRetention(time.Minute), WithLimits(Unlimited()))
		ctx := context.Background()
		data := make([]byte, 1000)
		for range 5000 { // several chunks
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data})
			require.NoError(t, err)
		}
		n, b := retained(s)
		assert.EqualValues(t, 5000, n)
		assert.EqualValues(t, 5000*1001, b)
		require.Greater(t, chunks(t, s, 0), 1)

		time.Sleep(time.Minute + time.Millisecond)
		putString(t, s, "k", "fresh") // a write trims the shard it writes to
		n, b = retained(s)
		assert.EqualValues(t, 1, n)
		assert.EqualValues(t, len("k")+len("fresh"), b)
		assert.Equal(t, 1, chunks(t, s, 0))
	})
}

func TestSweepReleasesIdleShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(WithSweepInterval(10 * time.Minute))
		defer c.Close()
		s, err := c.CreateStream(context.Background(), "idle", WithShardCount(3), WithRetention(time.Hour), WithLimits(Unlimited()))
		require.NoError(t, err)
		entries := make([]PutRecordsEntry, 300)
		for i := range entries {
			entries[i] = PutRecordsEntry{PartitionKey: string(rune('a' + i%26)), Data: make([]byte, 100)}
		}
		out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: entries})
		require.NoError(t, err)
		require.Zero(t, out.FailedRecordCount)
		n, _ := retained(s)
		require.EqualValues(t, 300, n)

		// Nobody touches the stream. Before retention ends nothing goes.
		time.Sleep(time.Hour)
		n, _ = retained(s)
		assert.EqualValues(t, 300, n)

		// After retention plus one sweep interval the sweep has released
		// everything.
		time.Sleep(10*time.Minute + time.Second)
		n, b := retained(s)
		assert.Zero(t, n)
		assert.Zero(t, b)
		for i := range 3 {
			assert.Zero(t, chunks(t, s, i), "shard %d", i)
		}
		st := s.Stats()
		assert.EqualValues(t, 300, st.Total.RecordsPut, "counters survive expiry")
		assert.True(t, st.Total.OldestArrival.IsZero())
		assert.True(t, st.Total.NewestArrival.IsZero())
	})
}

func TestIncreaseRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithRetention(time.Hour))
		ctx := context.Background()
		putString(t, s, "k", "r0")
		time.Sleep(50 * time.Minute)
		require.NoError(t, s.IncreaseRetentionPeriod(ctx, 2*time.Hour))
		sum, err := s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2*time.Hour, sum.RetentionPeriod)

		time.Sleep(time.Hour) // 110 min: past the old period, within the new one
		assert.Equal(t, []string{"r0"}, datas(readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})))
		time.Sleep(10*time.Minute + time.Millisecond)
		assert.Empty(t, readAll(t, s, shard0, StartingPosition{Type: TrimHorizon}))
	})
}

func TestDecreaseRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		ctx := context.Background()
		putString(t, s, "a", "old")
		putString(t, s, "b", "old")
		time.Sleep(3 * time.Hour)
		putString(t, s, "a", "new")
		putString(t, s, "b", "new")
		time.Sleep(time.Hour)
		n, _ := retained(s)
		require.EqualValues(t, 4, n)

		require.NoError(t, s.DecreaseRetentionPeriod(ctx, 2*time.Hour))
		n, _ = retained(s)
		assert.EqualValues(t, 2, n, "records older than the new period expire at once, in every shard")
		for _, id := range shardIDs(t, s) {
			for _, r := range readAll(t, s, id, StartingPosition{Type: TrimHorizon}) {
				assert.Equal(t, "new", string(r.Data))
			}
		}
		sum, err := s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2*time.Hour, sum.RetentionPeriod)

		// Increasing again does not bring expired records back.
		require.NoError(t, s.IncreaseRetentionPeriod(ctx, 24*time.Hour))
		n, _ = retained(s)
		assert.EqualValues(t, 2, n)
	})
}

func TestIteratorBehindTrimHorizon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithRetention(time.Minute))
		putString(t, s, "k", "r0")
		putString(t, s, "k", "r1")
		first := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		out := get(t, s, first, 1)
		require.Equal(t, []string{"r0"}, datas(out.Records))
		next := out.NextShardIterator // points at r1

		time.Sleep(30 * time.Second)
		putString(t, s, "k", "r2")
		time.Sleep(40 * time.Second) // r0 and r1 expired; both iterators still valid

		out = get(t, s, next, 0)
		assert.Equal(t, []string{"r2"}, datas(out.Records), "continues at the trim horizon")
		out = get(t, s, first, 0)
		assert.Equal(t, []string{"r2"}, datas(out.Records))

		time.Sleep(time.Minute)
		out = get(t, s, out.NextShardIterator, 0)
		assert.Empty(t, out.Records)
		assert.Zero(t, out.MillisBehindLatest)
		putString(t, s, "k", "r3")
		assert.Equal(t, []string{"r3"}, datas(get(t, s, out.NextShardIterator, 0).Records))
	})
}

// TestRetentionInVirtualTime shows how to test code that depends on
// retention without waiting for it: run the test in a testing/synctest
// bubble, where time.Sleep advances a virtual clock at once. Copy it as a
// starting point.
func TestRetentionInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Create the cluster inside the bubble, so that its background sweep
		// runs on the bubble's clock, and close it inside the bubble too.
		c := NewCluster()
		defer c.Close()
		ctx := context.Background()
		s, err := c.CreateStream(ctx, "orders", WithShardCount(1)) // 24 h retention
		require.NoError(t, err)

		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "order-1", Data: []byte("created")})
		require.NoError(t, err)

		// A day passes in no time.
		time.Sleep(23 * time.Hour)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "order-1", Data: []byte("shipped")})
		require.NoError(t, err)
		time.Sleep(time.Hour + time.Second)

		// A consumer that starts now has missed the first event: it expired.
		var events []string
		for r, err := range s.Records(ctx, "shardId-000000000000", StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			events = append(events, string(r.Data))
		}
		assert.Equal(t, []string{"shipped"}, events)

		// time.Now is virtual too: the record's arrival time is exact.
		st := s.Stats().Total
		assert.True(t, st.OldestArrival.Equal(time.Now().Add(-time.Hour-time.Second)), "arrived at %v", st.OldestArrival)
	})
}
