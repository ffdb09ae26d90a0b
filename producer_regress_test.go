package runnel

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stuckLister is a Putter whose results name unknown shards (as after a
// merge), so the producer refreshes its shard map, and whose ListShards
// hangs after the first call until its context ends.
type stuckLister struct {
	s     *Stream
	lists atomic.Int32
}

func (h *stuckLister) PutRecords(ctx context.Context, in PutRecordsInput) (PutRecordsOutput, error) {
	out, err := h.s.PutRecords(ctx, in)
	for i := range out.Records {
		out.Records[i].ShardID += "-merged"
	}
	return out, err
}

func (h *stuckLister) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	if h.lists.Add(1) > 1 {
		<-ctx.Done()
		return ListShardsOutput{}, ctx.Err()
	}
	return h.s.ListShards(ctx, in)
}

func TestProducerCloseWhileRefreshHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		p, err := NewProducer(t.Context(), &stuckLister{s: s}, WithRetryBackoff(time.Second, time.Hour))
		require.NoError(t, err)
		_, err = p.PutSync(t.Context(), ProducerRecord{PartitionKey: "k", Data: []byte("x")})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		p.Close(ctx)
		assert.LessOrEqual(t, time.Since(start), 100*time.Millisecond, "Close ends a hanging refresh")
	})
}

func TestProducerTTLDuringRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		p, err := NewProducer(t.Context(), &stuckLister{s: s}, WithRecordTTL(time.Second), WithRetryBackoff(time.Second, time.Hour))
		require.NoError(t, err)
		defer p.Close(t.Context())
		_, err = p.PutSync(t.Context(), ProducerRecord{PartitionKey: "k", Data: []byte("x")})
		require.NoError(t, err)
		synctest.Wait() // a sender is now stuck refreshing the shard map
		var res atomic.Pointer[ProducerResult]
		require.NoError(t, p.Put(t.Context(), ProducerRecord{PartitionKey: "k", Data: []byte("y")}, func(r ProducerResult) { res.Store(&r) }))
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		got := res.Load()
		require.NotNil(t, got, "the record's TTL ran out while the shard map was being refreshed")
		assert.True(t, errors.Is(got.Err, ErrRecordExpired), "%v", got.Err)
	})
}

func TestProducerBufferedTimeMustBeBelowTTL(t *testing.T) {
	_, s := newTestStream(t)
	_, err := NewProducer(t.Context(), s, WithRecordMaxBufferedTime(time.Second), WithRecordTTL(200*time.Millisecond))
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "1s")
	assert.Contains(t, err.Error(), "200ms")
}

// timeoutOnce is a Putter whose first PutRecords call fails as an SDK's
// per-call timeout does (an error wrapping context.DeadlineExceeded).
type timeoutOnce struct {
	s     *Stream
	calls atomic.Int32
}

func (p *timeoutOnce) PutRecords(ctx context.Context, in PutRecordsInput) (PutRecordsOutput, error) {
	if p.calls.Add(1) == 1 {
		return PutRecordsOutput{}, fmt.Errorf("operation error Kinesis: PutRecords: %w", context.DeadlineExceeded)
	}
	return p.s.PutRecords(ctx, in)
}

func (p *timeoutOnce) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	return p.s.ListShards(ctx, in)
}

// TestProducerRetriesPutterTimeout: a Putter's own timeout is retried
// within the record's TTL; only the producer's context ending is final.
func TestProducerRetriesPutterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		p := prodNew(t, &timeoutOnce{s: s})
		res, err := p.PutSync(t.Context(), prodRecord("k", "v"))
		require.NoError(t, err)
		assert.Equal(t, 2, res.Attempts)
	})
}
