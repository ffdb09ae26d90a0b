package runnel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const shard1 = "shardId-000000000001"

// low and high hash keys route to shard0 and shard1 of a two-shard stream.
var (
	toShard0 = "0"
	toShard1 = maxHashKeyText
)

func TestFaultOnce(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	injectFault(t, c, Fault{Op: OpPutRecord, Err: ErrInternalFailure, Times: 1})

	_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("lost")})
	assertKind(t, err, ErrInternalFailure, "PutRecord", "injected fault")
	assert.Equal(t, "InternalFailureException", ErrorName(err))
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "PutRecord", e.Op)

	putString(t, s, "k", "kept")
	putString(t, s, "k", "kept too")
	assert.Equal(t, []string{"kept", "kept too"}, datas(readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})))
}

func TestFaultTimes(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	injectFault(t, c, Fault{Op: OpListShards, Err: ErrLimitExceeded, Times: 3})
	var errs []error
	for range 5 {
		_, err := s.ListShards(ctx, ListShardsInput{})
		errs = append(errs, err)
	}
	for i, err := range errs {
		if i < 3 {
			assert.ErrorIs(t, err, ErrLimitExceeded, "call %d", i)
		} else {
			assert.NoError(t, err, "call %d", i)
		}
	}
}

func TestFaultUntilRemoved(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	remove := injectFault(t, c, Fault{Op: OpGetShardIterator, Err: ErrProvisionedThroughputExceeded})
	for range 20 {
		_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: shard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
		require.ErrorIs(t, err, ErrProvisionedThroughputExceeded)
	}
	// Other operations are not affected.
	putString(t, s, "k", "v")

	remove()
	_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: shard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
	assert.NoError(t, err)
	remove() // removing twice is harmless
	_, err = s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: shard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
	assert.NoError(t, err)
}

func TestFaultAllOperations(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	remove := injectFault(t, c, Fault{Err: ErrInternalFailure})
	for name, op := range streamOps(it) {
		if name == "GetRecords without iterator" {
			continue // rejected before any operation starts
		}
		assert.ErrorIs(t, op(s), ErrInternalFailure, name)
	}
	remove()
	for name, op := range streamOps(it) {
		if name == "GetRecords without iterator" {
			continue
		}
		assert.NoError(t, op(s), name)
	}
}

func TestFaultStreamName(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	other, err := c.CreateStream(ctx, "other", WithShardCount(1))
	require.NoError(t, err)
	injectFault(t, c, Fault{StreamName: "other", Err: ErrInternalFailure})
	_, err = other.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
	assert.ErrorIs(t, err, ErrInternalFailure)
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
	assert.NoError(t, err)
}

func TestFaultFirstMatchFires(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	injectFault(t, c, Fault{Op: OpPutRecord, Err: ErrInternalFailure, Times: 1})
	injectFault(t, c, Fault{Op: OpPutRecord, Err: ErrProvisionedThroughputExceeded, Times: 1})
	_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
	assert.ErrorIs(t, err, ErrInternalFailure)
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
	assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
	assert.NoError(t, err)
}

func TestFaultCustomError(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	boom := errors.New("boom")
	injectFault(t, c, Fault{Op: OpDescribeStreamSummary, Err: boom})
	_, err := s.Describe(context.Background())
	assert.ErrorIs(t, err, boom)
	assert.ErrorIs(t, err, ErrInternalFailure, "an error without a Kinesis name is an internal failure")
	assert.Equal(t, "InternalFailureException", ErrorName(err))
	assert.Equal(t, "runnel: DescribeStreamSummary: InternalFailureException: injected fault on test: boom", err.Error())
}

func TestFaultRecordPredicate(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(2))
	ctx := context.Background()
	var calls atomic.Int64
	injectFault(t, c, Fault{
		Record: func(key string, data []byte) bool {
			calls.Add(1)
			return strings.HasPrefix(key, "bad")
		},
		Err: ErrInternalFailure,
	})

	entries := []PutRecordsEntry{
		{PartitionKey: "good0", ExplicitHashKey: toShard0, Data: []byte("g0")},
		{PartitionKey: "bad1", ExplicitHashKey: toShard0, Data: []byte("b1")},
		{PartitionKey: "good2", ExplicitHashKey: toShard1, Data: []byte("g2")},
		{PartitionKey: "bad3", ExplicitHashKey: toShard1, Data: []byte("b3")},
		{PartitionKey: "good4", ExplicitHashKey: toShard0, Data: []byte("g4")},
	}
	out, err := s.PutRecords(ctx, PutRecordsInput{Records: entries})
	require.NoError(t, err, "a record fault fails entries, not the call")
	assert.Equal(t, 2, out.FailedRecordCount)
	for i, r := range out.Records {
		if strings.HasPrefix(entries[i].PartitionKey, "bad") {
			assert.ErrorIs(t, r.Err, ErrInternalFailure, "entry %d", i)
			assert.Empty(t, r.ShardID)
			continue
		}
		assert.NoError(t, r.Err, "entry %d", i)
	}
	assert.EqualValues(t, 5, calls.Load(), "the predicate sees every entry once")

	// PutRecord is affected the same way.
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "bad5"})
	assert.ErrorIs(t, err, ErrInternalFailure)
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "good6", ExplicitHashKey: toShard0, Data: []byte("g6")})
	require.NoError(t, err)

	// Record faults do not affect whole operations.
	assert.Equal(t, []string{"g0", "g4", "g6"}, datas(readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})))
	assert.Equal(t, []string{"g2"}, datas(readAll(t, s, shard1, StartingPosition{Type: TrimHorizon})))
	assert.EqualValues(t, 4, s.Stats().Total.RecordsPut)
}

func TestFaultRecordPredicateOnce(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	injectFault(t, c, Fault{
		Op:     OpPutRecords,
		Record: func(key string, _ []byte) bool { return key == "x" },
		Err:    ErrProvisionedThroughputExceeded,
		Times:  1,
	})
	out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: []PutRecordsEntry{
		{PartitionKey: "a"}, {PartitionKey: "x"}, {PartitionKey: "x"}, {PartitionKey: "b"},
	}})
	require.NoError(t, err)
	assert.Equal(t, 1, out.FailedRecordCount)
	assert.ErrorIs(t, out.Records[1].Err, ErrProvisionedThroughputExceeded)
	assert.NoError(t, out.Records[2].Err, "the fault fired once")
	// A fault on OpPutRecords does not affect PutRecord.
	_, err = s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "x"})
	assert.NoError(t, err)
}

func TestFaultShardID(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(2))
	ctx := context.Background()
	it0 := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	it1 := iterator(t, s, shard1, StartingPosition{Type: TrimHorizon})
	injectFault(t, c, Fault{ShardID: shard1, Err: ErrInternalFailure})

	// Reads of that shard fail; the other shard works.
	_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it1})
	assert.ErrorIs(t, err, ErrInternalFailure)
	_, err = s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: shard1, StartingPosition: StartingPosition{Type: Latest}})
	assert.ErrorIs(t, err, ErrInternalFailure)
	_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it0})
	assert.NoError(t, err)
	_, err = s.ListShards(ctx, ListShardsInput{})
	assert.NoError(t, err, "operations that name no shard are not affected")

	// Writes fail per record routed to that shard.
	out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{
		{PartitionKey: "k", ExplicitHashKey: toShard0, Data: []byte("a")},
		{PartitionKey: "k", ExplicitHashKey: toShard1, Data: []byte("b")},
		{PartitionKey: "k", ExplicitHashKey: toShard0, Data: []byte("c")},
	}})
	require.NoError(t, err)
	assert.Equal(t, 1, out.FailedRecordCount)
	assert.ErrorIs(t, out.Records[1].Err, ErrInternalFailure)
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: toShard1})
	assert.ErrorIs(t, err, ErrInternalFailure)
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: toShard0, Data: []byte("d")})
	assert.NoError(t, err)

	st := s.Stats()
	assert.EqualValues(t, 3, st.Shards[0].RecordsPut)
	assert.EqualValues(t, 0, st.Shards[1].RecordsPut)
}

func TestFaultExpiredIterator(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	putString(t, s, "k", "v")
	it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	injectFault(t, c, Fault{Op: OpGetRecords, Err: ErrExpiredIterator, Times: 1})

	_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
	assertKind(t, err, ErrExpiredIterator, "GetRecords")
	assert.Equal(t, "ExpiredIteratorException", ErrorName(err))

	// What a client does: get a new iterator and carry on.
	it = iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	assert.Equal(t, []string{"v"}, datas(get(t, s, it, 0).Records))
}

func TestFaultLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		ctx := context.Background()
		injectFault(t, c, Fault{Op: OpPutRecord, Latency: 250 * time.Millisecond, Times: 2})

		start := time.Now()
		out := putString(t, s, "k", "slow")
		assert.Equal(t, 250*time.Millisecond, time.Since(start), "the call takes the latency in virtual time")

		recs := readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})
		require.Len(t, recs, 1)
		assert.True(t, recs[0].ApproximateArrivalTimestamp.Equal(start.Add(250*time.Millisecond)),
			"the record arrives after the delay")
		assert.Equal(t, out.SequenceNumber, recs[0].SequenceNumber)

		// Latency and an error together: the error comes after the delay.
		injectFault(t, c, Fault{Op: OpGetShardIterator, Latency: time.Second, Err: ErrInternalFailure, Times: 1})
		start = time.Now()
		_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: shard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
		assert.ErrorIs(t, err, ErrInternalFailure)
		assert.Equal(t, time.Second, time.Since(start))

		// Calls run concurrently while delayed.
		start = time.Now()
		var wg sync.WaitGroup
		wg.Go(func() { putString(t, s, "k", "concurrent") }) // the fault's second firing
		wg.Go(func() {
			_, err := s.ListShards(ctx, ListShardsInput{})
			assert.NoError(t, err)
			assert.Zero(t, time.Since(start), "unaffected calls are not delayed")
		})
		wg.Wait()
		assert.Equal(t, 250*time.Millisecond, time.Since(start))

		start = time.Now()
		putString(t, s, "k", "fast")
		assert.Zero(t, time.Since(start), "the fault is spent")
	})
}

func TestFaultLatencyContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		injectFault(t, c, Fault{Op: OpPutRecord, Latency: time.Minute})

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("never")})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 100*time.Millisecond, time.Since(start))

		// Cancelled from another goroutine.
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() {
			time.Sleep(3 * time.Second)
			cancel2()
		}()
		start = time.Now()
		_, err = s.PutRecord(ctx2, PutRecordInput{PartitionKey: "k", Data: []byte("never")})
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 3*time.Second, time.Since(start))

		assert.Zero(t, s.Stats().Total.RecordsPut, "a cancelled call stores nothing")
	})
}

func TestFaultConcurrentTimes(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()))
	injectFault(t, c, Fault{Op: OpPutRecord, Err: ErrInternalFailure, Times: 37})
	var failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				_, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: fmt.Sprint(g, i)})
				if errors.Is(err, ErrInternalFailure) {
					failed.Add(1)
				} else {
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 37, failed.Load(), "a fault fires exactly Times times")
	assert.EqualValues(t, 8*50-37, s.Stats().Total.RecordsPut)
}

// TestFaultShardLatencyDelaysPutRecordsOnce checks that a shard-scoped
// latency fault delays a PutRecords call once, however many of its entries
// route to the shard, as Fault.Latency promises ("once per call also when
// several of its records are affected").
func TestFaultShardLatencyDelaysPutRecordsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(2))
		injectFault(t, c, Fault{ShardID: shard0, Latency: time.Second})
		start := time.Now()
		out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: []PutRecordsEntry{
			{PartitionKey: "a", ExplicitHashKey: "0"},
			{PartitionKey: "b", ExplicitHashKey: "1"},
			{PartitionKey: "c", ExplicitHashKey: "2"},
		}})
		require.NoError(t, err)
		assert.Zero(t, out.FailedRecordCount)
		assert.Equal(t, time.Second, time.Since(start), "one delay per PutRecords call")
	})
}

// TestFaultRecordLatencyContextFailsCall checks that when ctx ends during a
// record fault's latency, the whole PutRecords call fails with ctx's error,
// as Fault.Latency promises, and no entry reports an error without a
// Kinesis error code.
func TestFaultRecordLatencyContextFailsCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		injectFault(t, c, Fault{
			Op:      OpPutRecords,
			Record:  func(key string, _ []byte) bool { return key == "slow" },
			Latency: time.Minute,
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "fast"}, {PartitionKey: "slow"}}})
		assert.ErrorIs(t, err, context.DeadlineExceeded, "the call fails with ctx's error")
		assert.Empty(t, out.Records, "a failed call has no per-entry results")
		assert.Zero(t, s.Stats().Total.RecordsPut, "and stores nothing, not even the fast entry")
	})
}

// TestParseOperation checks that every operation's name parses back to it,
// and that other names are refused.
func TestParseOperation(t *testing.T) {
	for o := AnyOperation; o < numOperations; o++ {
		got, err := ParseOperation(o.String())
		require.NoError(t, err)
		assert.Equal(t, o, got)
	}
	_, err := ParseOperation("PutRecordz")
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorContains(t, err, "PutRecordz")
}

// TestStreamsMeetNoFaults checks that Cluster.Streams, unlike ListStreams,
// is not subject to injected faults.
func TestStreamsMeetNoFaults(t *testing.T) {
	c, s := newTestStream(t)
	_, err := c.InjectFault(Fault{Err: ErrInternalFailure})
	require.NoError(t, err)
	_, err = c.ListStreams(context.Background())
	require.ErrorIs(t, err, ErrInternalFailure)
	assert.Equal(t, []*Stream{s}, c.Streams())
}

// TestSpentFaultIsRemoved checks that a fault whose Times have all fired is
// uninstalled, so that the paths without faults are fast again.
func TestSpentFaultIsRemoved(t *testing.T) {
	c, s := newTestStream(t)
	remove, err := c.InjectFault(Fault{Op: OpPutRecord, Err: ErrInternalFailure, Times: 2})
	require.NoError(t, err)
	for range 2 {
		_, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", Data: []byte("x")})
		require.ErrorIs(t, err, ErrInternalFailure)
	}
	assert.False(t, c.faults.active(), "the spent fault is gone")
	putString(t, s, "k", "x")
	remove() // does nothing now
}

// TestInjectFaultTracked checks that a tracked fault counts its firings
// and says when it is spent.
func TestInjectFaultTracked(t *testing.T) {
	c, s := newTestStream(t)
	inj, err := c.InjectFaultTracked(Fault{Op: OpPutRecord, Err: ErrInternalFailure, Times: 2})
	require.NoError(t, err)
	assert.Zero(t, inj.Fired())
	_, err = s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", Data: []byte("x")})
	require.ErrorIs(t, err, ErrInternalFailure)
	assert.Equal(t, 1, inj.Fired())
	assert.False(t, inj.Spent())
	_, err = s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", Data: []byte("x")})
	require.ErrorIs(t, err, ErrInternalFailure)
	assert.Equal(t, 2, inj.Fired())
	assert.True(t, inj.Spent())
	putString(t, s, "k", "x")
	inj.Remove()
	_, err = c.InjectFaultTracked(Fault{})
	assert.ErrorIs(t, err, ErrInvalidArgument)
}
