package runnel

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every test here runs in a synctest bubble: the limits refill on the
// bubble's virtual clock, which stands still unless a test sleeps.

func TestWriteRecordsLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		ctx := context.Background()
		for i := range 1000 {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte{byte(i)}})
			require.NoError(t, err, "record %d", i)
		}
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("one too many")})
		assertKind(t, err, ErrProvisionedThroughputExceeded, shard0)
		assert.Equal(t, "ProvisionedThroughputExceededException", ErrorName(err))

		time.Sleep(500 * time.Millisecond)
		for range 500 { // half a second refills 500 records
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
			require.NoError(t, err)
		}
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)

		time.Sleep(time.Second)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("after a second")})
		assert.NoError(t, err)

		st := s.Stats().Total
		assert.EqualValues(t, 1501, st.RecordsPut)
		assert.EqualValues(t, 2, st.WriteThrottles)
	})
}

func TestWriteLimitIsPerShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		ctx := context.Background()
		low, high := "0", maxHashKeyText
		for range 1000 {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: low})
			require.NoError(t, err)
		}
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: low})
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: high})
		assert.NoError(t, err, "the other shard has its own budget")
	})
}

func TestWriteBytesLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		ctx := context.Background()
		quarter := make([]byte, 256<<10-1) // with the one-byte key: 1/4 MiB
		for i := range 4 {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: quarter})
			require.NoError(t, err, "record %d", i)
		}
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("x")})
		assertKind(t, err, ErrProvisionedThroughputExceeded, "2-byte record")

		time.Sleep(250 * time.Millisecond) // refills a quarter MiB
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: quarter})
		require.NoError(t, err)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: quarter})
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)

		time.Sleep(time.Second)
		// A full 1 MiB record fits an idle shard's budget.
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: make([]byte, 1<<20-1)})
		assert.NoError(t, err)

		st := s.Stats().Total
		assert.EqualValues(t, 6, st.RecordsPut)
		assert.EqualValues(t, 2, st.WriteThrottles)
		assert.EqualValues(t, 5*(256<<10)+1<<20, st.BytesPut)
	})
}

func TestPutRecordsMarksOnlyOverLimitEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		ctx := context.Background()
		low, high := "0", maxHashKeyText
		batch := func(n int, hashKey string, prefix string) []PutRecordsEntry {
			es := make([]PutRecordsEntry, n)
			for i := range es {
				es[i] = PutRecordsEntry{PartitionKey: "k", ExplicitHashKey: hashKey, Data: fmt.Appendf(nil, "%s%d", prefix, i)}
			}
			return es
		}
		for _, n := range []int{500, 495} {
			out, err := s.PutRecords(ctx, PutRecordsInput{Records: batch(n, low, "fill")})
			require.NoError(t, err)
			require.Zero(t, out.FailedRecordCount)
		}
		// 5 records left on the low shard; interleave entries for both shards.
		var entries []PutRecordsEntry
		for i := range 10 {
			entries = append(entries, batch(1, low, fmt.Sprint("low", i))...)
			entries = append(entries, batch(1, high, fmt.Sprint("high", i))...)
		}
		out, err := s.PutRecords(ctx, PutRecordsInput{Records: entries})
		require.NoError(t, err, "throttling fails entries, not the call")
		assert.Equal(t, 5, out.FailedRecordCount)
		require.Len(t, out.Records, 20)
		for i, r := range out.Records {
			lowEntry := i%2 == 0
			if lowEntry && i/2 >= 5 {
				assertKind(t, r.Err, ErrProvisionedThroughputExceeded, shard0)
				assert.Empty(t, r.ShardID)
				assert.True(t, r.SequenceNumber.IsZero())
				continue
			}
			assert.NoError(t, r.Err, "entry %d", i)
			assert.NotEmpty(t, r.ShardID)
			assert.False(t, r.SequenceNumber.IsZero())
		}

		// The accepted low-shard records are the first five, in order.
		recs := readAll(t, s, shard0, StartingPosition{Type: AtSequenceNumber, SequenceNumber: out.Records[0].SequenceNumber})
		assert.Equal(t, []string{"low00", "low10", "low20", "low30", "low40"}, datas(recs))

		// A second later the failed entries can be retried.
		time.Sleep(time.Second)
		var retry []PutRecordsEntry
		for i, r := range out.Records {
			if r.Err != nil {
				retry = append(retry, entries[i])
			}
		}
		out, err = s.PutRecords(ctx, PutRecordsInput{Records: retry})
		require.NoError(t, err)
		assert.Zero(t, out.FailedRecordCount)
		assert.EqualValues(t, 5, s.Stats().Total.WriteThrottles)
	})
}

func TestReadCallsLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		ctx := context.Background()
		putString(t, s, "k", "v")
		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		for i := range 5 {
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			require.NoError(t, err, "call %d", i)
		}
		out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
		assertKind(t, err, ErrProvisionedThroughputExceeded, shard0, "5 calls/s")
		assert.Zero(t, out, "a throttled call returns nothing")

		// The other shard has its own budget.
		other := iterator(t, s, "shardId-000000000001", StartingPosition{Type: TrimHorizon})
		_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: other})
		assert.NoError(t, err)

		time.Sleep(200 * time.Millisecond) // one call's worth
		_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
		require.NoError(t, err)
		_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)

		time.Sleep(time.Second)
		for i := range 5 {
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			require.NoError(t, err, "call %d after a second", i)
		}

		st := s.Stats()
		assert.EqualValues(t, 2, st.Shards[0].ReadThrottles)
		assert.EqualValues(t, 13, st.Shards[0].GetCalls, "throttled calls are counted too")
		assert.EqualValues(t, 0, st.Shards[1].ReadThrottles)
		assert.EqualValues(t, 2, st.Total.ReadThrottles)
	})
}

func TestReadBytesDebt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const readRate = 2 << 20 // KinesisLimits().ReadBytesPerSecond
		_, s := newTestStream(t, WithShardCount(1), WithMaxRecordSize(10<<20), WithMaxPutRecordsSize(10<<20))
		ctx := context.Background()
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: make([]byte, 10<<20-1)})
		require.NoError(t, err)
		time.Sleep(time.Second) // the write used the shard's whole write budget
		putString(t, s, "k", "small")

		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
		require.NoError(t, err)
		require.Len(t, out.Records, 1, "one call may read 10 MiB, five times the per-second rate")
		start := time.Now()
		next := out.NextShardIterator

		// 10 MiB at 2 MiB/s is 5 s of the shard's read budget.
		paidBack := time.Duration(10<<20/readRate) * time.Second
		for _, at := range []time.Duration{time.Second, 3 * time.Second} {
			time.Sleep(at - time.Since(start))
			out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: next})
			assertKind(t, err, ErrProvisionedThroughputExceeded, "bytes/s")
			assert.Empty(t, out.Records, "a throttled call returns no data (at %v)", at)
			assert.True(t, out.NextShardIterator.IsZero())
		}
		time.Sleep(paidBack + 100*time.Millisecond - time.Since(start))
		out, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: next})
		require.NoError(t, err, "the debt is paid back after %v", paidBack)
		assert.Equal(t, []string{"small"}, datas(out.Records))
		assert.EqualValues(t, 2, s.Stats().Total.ReadThrottles)
	})
}

func TestReadBytesWithinRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Reading at the byte rate never throttles.
		_, s := newTestStream(t, WithShardCount(1))
		ctx := context.Background()
		data := make([]byte, 400<<10)
		it := iterator(t, s, shard0, StartingPosition{Type: Latest})
		for range 20 {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data})
			require.NoError(t, err)
			out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			require.NoError(t, err)
			require.Len(t, out.Records, 1)
			it = out.NextShardIterator
			time.Sleep(500 * time.Millisecond) // 400 KiB per 0.5 s is under both limits
		}
		assert.Zero(t, s.Stats().Total.ReadThrottles)
		assert.Zero(t, s.Stats().Total.WriteThrottles)
	})
}

func TestUnlimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		ctx := context.Background()
		data := make([]byte, 100<<10)
		entries := make([]PutRecordsEntry, MaxPutRecordsEntries)
		for i := range entries {
			entries[i] = PutRecordsEntry{PartitionKey: "k", Data: data[:1+i%10]}
		}
		for range 10 { // 5,000 records in no time
			out, err := s.PutRecords(ctx, PutRecordsInput{Records: entries})
			require.NoError(t, err)
			require.Zero(t, out.FailedRecordCount)
		}
		for range 30 { // 3 MB in no time
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data})
			require.NoError(t, err)
		}
		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		for range 50 {
			out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Limit: 1000})
			require.NoError(t, err)
			it = out.NextShardIterator
		}
		st := s.Stats().Total
		assert.Zero(t, st.WriteThrottles)
		assert.Zero(t, st.ReadThrottles)
		assert.EqualValues(t, 5030, st.RecordsRead)
	})
}

func TestPartialLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A zero field switches just that limit off.
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Limits{WriteRecordsPerSecond: 3}))
		ctx := context.Background()
		big := make([]byte, 1<<20-1)
		for range 3 {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: big})
			require.NoError(t, err, "no byte limit")
		}
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)
		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		for range 20 {
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			require.NoError(t, err, "no read limit")
		}
	})
}

// TestReadBytesDebtLastsFiveSeconds checks that a 10 MiB read from an idle
// shard throttles its reads for the 5 s that Kinesis documents ("If a call
// returns 10 MiB of data, subsequent calls made within the next 5 seconds
// throw ProvisionedThroughputExceededException"), as Limits.ReadBytesPerSecond
// promises: a read above the per-second budget is paid from empty, whatever
// credit the shard had saved.
func TestReadBytesDebtLastsFiveSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithMaxRecordSize(10<<20), WithMaxPutRecordsSize(10<<20))
		ctx := context.Background()
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: make([]byte, 10<<20-1)})
		require.NoError(t, err)
		time.Sleep(time.Minute) // an idle shard: full read and write budgets
		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		out := get(t, s, it, 0)
		require.Len(t, out.Records, 1)

		time.Sleep(4500 * time.Millisecond)
		_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: out.NextShardIterator})
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded, "4.5 s after a 10 MiB read")
	})
}
