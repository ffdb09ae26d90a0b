package runnel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExpiredMemoryIsReleased checks, through Stats, that the memory of
// expired records is given back chunk by chunk, on an idle stream too.
func TestExpiredMemoryIsReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(WithSweepInterval(time.Minute))
		defer c.Close()
		s, err := c.CreateStream(context.Background(), "mem", WithShardCount(1), WithRetention(time.Hour), WithLimits(Unlimited()))
		require.NoError(t, err)
		data := make([]byte, 100)
		put := func(n int) {
			for i := 0; i < n; i += MaxPutRecordsEntries {
				batch := make([]PutRecordsEntry, min(MaxPutRecordsEntries, n-i))
				for j := range batch {
					batch[j] = PutRecordsEntry{PartitionKey: fmt.Sprint(i + j), Data: data}
				}
				_, err := s.PutRecords(context.Background(), PutRecordsInput{Records: batch})
				require.NoError(t, err)
			}
		}
		put(10_000)
		early := s.Stats().Total
		assert.Greater(t, early.MemoryBytes, early.BytesRetained, "the storage holds the records")
		assert.Less(t, early.MemoryBytes, early.BytesRetained+48*early.RecordsRetained, "with little overhead")

		time.Sleep(30 * time.Minute)
		put(10_000)
		both := s.Stats().Total.MemoryBytes
		time.Sleep(32 * time.Minute) // the first 10,000 expire; the sweep releases them
		half := s.Stats().Total
		assert.Equal(t, int64(10_000), half.RecordsRetained)
		assert.Less(t, half.MemoryBytes, both*6/10, "whole expired chunks are freed")

		time.Sleep(time.Hour)
		assert.Zero(t, s.Stats().Total.MemoryBytes)
	})
}

func TestStreamQuota(t *testing.T) {
	c := NewCluster(WithStreamQuota(2))
	defer c.Close()
	ctx := context.Background()
	_, err := c.CreateStream(ctx, "a", WithShardCount(1))
	require.NoError(t, err)
	_, err = c.CreateStream(ctx, "b", WithShardCount(1))
	require.NoError(t, err)
	_, err = c.CreateStream(ctx, "c", WithShardCount(1))
	require.ErrorIs(t, err, ErrLimitExceeded)
	assert.Contains(t, err.Error(), "stream c would be stream 3; the stream quota is 2")
	require.NoError(t, c.DeleteStream(ctx, "a"))
	_, err = c.CreateStream(ctx, "c", WithShardCount(1))
	assert.NoError(t, err, "deleting a stream frees its place")
}

// TestWithStreamDefaults shows that a cluster's stream defaults apply to
// every stream it creates, and that CreateStream's options override them.
func TestWithStreamDefaults(t *testing.T) {
	c := NewCluster(WithStreamDefaults(WithLimits(Unlimited()), WithShardCount(2)))
	defer c.Close()
	s, err := c.CreateStream(t.Context(), "a")
	require.NoError(t, err)
	sum, err := s.Describe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, Unlimited(), sum.Limits)
	assert.Equal(t, 2, sum.OpenShardCount)
	s, err = c.CreateStream(t.Context(), "b", WithShardCount(3))
	require.NoError(t, err)
	sum, err = s.Describe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 3, sum.OpenShardCount, "CreateStream's option wins")
	assert.Equal(t, Unlimited(), sum.Limits)
}

// TestCreateStreamNilOption shows that a nil option is refused, not a panic.
func TestCreateStreamNilOption(t *testing.T) {
	c := NewCluster()
	defer c.Close()
	_, err := c.CreateStream(t.Context(), "a", WithShardCount(1), nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorContains(t, err, "option 1")
}

// aheadClock is a clock that a test moves ahead of the system clock.
type aheadClock struct{ ahead atomic.Int64 }

func (c *aheadClock) Now() time.Time { return time.Now().Add(time.Duration(c.ahead.Load())) }

// TestWithClock checks that a cluster lives by its clock: arrival
// timestamps come from it, and moving it ahead expires records and
// iterators at once.
func TestWithClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := new(aheadClock)
		clock.ahead.Store(int64(time.Hour))
		c := NewCluster(WithClock(clock))
		defer c.Close()
		s, err := c.CreateStream(context.Background(), "clock", WithShardCount(1), WithRetention(24*time.Hour))
		require.NoError(t, err)
		put := putString(t, s, "k", "r0")
		it, err := s.GetShardIterator(context.Background(), GetShardIteratorInput{ShardID: shard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
		require.NoError(t, err)
		out, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it})
		require.NoError(t, err)
		require.Len(t, out.Records, 1)
		assert.Equal(t, put.SequenceNumber, out.Records[0].SequenceNumber)
		assert.Equal(t, time.Now().Add(time.Hour).UnixMilli(), out.Records[0].ApproximateArrivalTimestamp.UnixMilli(),
			"the arrival timestamp is the clock's")

		clock.ahead.Add(int64(6 * time.Minute))
		_, err = s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: out.NextShardIterator})
		assert.ErrorIs(t, err, ErrExpiredIterator, "an iterator ages on the cluster's clock")

		clock.ahead.Add(int64(24 * time.Hour))
		assert.Empty(t, readAll(t, s, shard0, StartingPosition{Type: TrimHorizon}), "records expire on the cluster's clock")
	})
}

// jumpingClock is an AdvancingClock for tests.
type jumpingClock struct {
	aheadClock
	mu     sync.Mutex
	jumped chan struct{}
}

func (c *jumpingClock) Advanced() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jumped == nil {
		c.jumped = make(chan struct{})
	}
	return c.jumped
}

func (c *jumpingClock) jump(d time.Duration) {
	c.ahead.Add(int64(d))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jumped != nil {
		close(c.jumped)
		c.jumped = nil
	}
}

// TestAdvancingClockEndsWaits checks that the cluster's waits follow an
// AdvancingClock: a status delay and a subscription's lifetime end when the
// clock jumps past them, without the system clock's time passing.
func TestAdvancingClockEndsWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := new(jumpingClock)
		c := NewCluster(WithClock(clock))
		defer c.Close()
		ctx := context.Background()
		s, err := c.CreateStream(ctx, "s", WithShardCount(1), WithStreamStatusDelay(time.Hour))
		require.NoError(t, err)
		start := time.Now()
		clock.jump(time.Hour)
		synctest.Wait()
		sum, err := s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, StatusActive, sum.StreamStatus, "ACTIVE once the clock passed the delay")
		assert.Zero(t, time.Since(start), "without waiting")

		cons, err := s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: "app"})
		require.NoError(t, err)
		sub, err := s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: cons.ConsumerARN, ShardID: shard0, StartingPosition: StartingPosition{Type: Latest}})
		require.NoError(t, err)
		defer sub.Close()
		_, err = sub.Next(ctx) // the first, idle event
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := sub.Next(ctx)
			done <- err
		}()
		synctest.Wait()
		clock.jump(5 * time.Minute)
		synctest.Wait()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, ErrSubscriptionEnded)
		default:
			t.Fatal("the subscription outlived its 5 minutes on the clock")
		}
		assert.Zero(t, time.Since(start))
	})
}
