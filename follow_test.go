package runnel

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFollowWakesOnWrite checks that Follow delivers records written after
// it reached the tip, at once and without polling, and ends with ctx.
func TestFollowWakesOnWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		shard := putString(t, s, "k", "first").ShardID
		ctx, cancel := context.WithCancel(t.Context())
		got := make(chan string, 10)
		var lastErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			for rec, err := range s.Follow(ctx, shard, StartingPosition{Type: TrimHorizon}) {
				if err != nil {
					lastErr = err
					return
				}
				got <- string(rec.Data)
			}
		}()
		synctest.Wait()
		assert.Equal(t, "first", <-got)
		start := time.Now()
		time.Sleep(10 * time.Minute) // idle past the iterator TTL: no polling, no expiry
		putString(t, s, "k", "second")
		synctest.Wait()
		assert.Equal(t, "second", <-got)
		assert.Equal(t, 10*time.Minute, time.Since(start), "delivered at once")
		assert.LessOrEqual(t, s.Stats().Total.GetCalls, int64(5), "Follow waits instead of polling")
		cancel()
		<-done
		assert.ErrorIs(t, lastErr, context.Canceled)
	})
}

// TestFollowEndsAtClosedShard checks that Follow ends after the last record
// of a shard that closes while it waits.
func TestFollowEndsAtClosedShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		list, err := s.ListShards(t.Context(), ListShardsInput{})
		require.NoError(t, err)
		parent := list.Shards[0]
		var got []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			for rec, err := range s.Follow(t.Context(), parent.ShardID, StartingPosition{Type: Latest}) {
				if !assert.NoError(t, err) {
					return
				}
				got = append(got, string(rec.Data))
			}
		}()
		synctest.Wait()
		putString(t, s, "k", "last")
		require.NoError(t, s.SplitShard(t.Context(), parent.ShardID, parent.HashKeyRange.Mid()))
		<-done
		assert.Equal(t, []string{"last"}, got)
	})
}

// TestFollowEndsWhenStreamGoes checks that a Follow waiting at the tip ends
// with the right error when its stream is deleted or its cluster closed.
func TestFollowEndsWhenStreamGoes(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*Cluster) error
		want error
	}{
		{"DeleteStream", func(c *Cluster) error { return c.DeleteStream(context.Background(), "test") }, ErrResourceNotFound},
		{"Close", func(c *Cluster) error { return c.Close() }, ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, s := newTestStream(t, WithShardCount(1))
				list, err := s.ListShards(t.Context(), ListShardsInput{})
				require.NoError(t, err)
				var last error
				done := make(chan struct{})
				go func() {
					defer close(done)
					for _, err := range s.Follow(context.Background(), list.Shards[0].ShardID, StartingPosition{Type: Latest}) {
						last = err
					}
				}()
				synctest.Wait()
				require.NoError(t, tc.end(c))
				<-done
				assert.ErrorIs(t, last, tc.want)
			})
		})
	}
}

// TestFollowForgetsItsWakeUp: a Follow that ends (its ctx ends, or the
// caller stops iterating) leaves no wake-up registered with the shard, so
// many short-lived followers cost writers nothing.
func TestFollowForgetsItsWakeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		shard := putString(t, s, "k", "first").ShardID
		sh := s.shards.Load().open[0]
		waiters := func() int {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			return len(sh.waiters)
		}
		for range 100 {
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, err := range s.Follow(ctx, shard, StartingPosition{Type: Latest}) {
					if err != nil {
						return
					}
				}
			}()
			synctest.Wait() // waiting at the tip
			require.Equal(t, 1, waiters())
			cancel()
			<-done
		}
		for rec := range s.Follow(t.Context(), shard, StartingPosition{Type: TrimHorizon}) {
			assert.Equal(t, "first", string(rec.Data))
			break // the caller stops
		}
		assert.Zero(t, waiters(), "every ended Follow unregistered")
	})
}
