package runnel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of enhanced fan-out (fanout.go): consumer registration, ARNs,
// SubscribeToShard's starting positions, events and continuation numbers,
// child shards, the per-consumer read budget, Kinesis's subscription
// rules, cancellation and slow subscribers. Everything time-dependent runs
// in a synctest bubble; a bubble starts at 2000-01-01T00:00:00Z.

// ---- Helpers ----

// foRegister registers a consumer and fails the test on error.
func foRegister(t testing.TB, s *Stream, name string) StreamConsumer {
	t.Helper()
	c, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: name})
	require.NoError(t, err)
	return c
}

// foWaitingNext calls sub.Next in a goroutine and returns once it waits
// (inside a synctest bubble); its error comes on the channel.
func foWaitingNext(ctx context.Context, sub ShardSubscription) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := sub.Next(ctx)
		done <- err
	}()
	synctest.Wait()
	return done
}

// foSubscribe subscribes a consumer to a shard, fails the test on error,
// and closes the subscription when the test ends.
func foSubscribe(t testing.TB, s *Stream, arn, shard string, from StartingPosition) ShardSubscription {
	t.Helper()
	sub, err := s.SubscribeToShard(context.Background(), SubscribeToShardInput{ConsumerARN: arn, ShardID: shard, StartingPosition: from})
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })
	return sub
}

// foNext returns the next event and fails the test on error. The event's
// records are cloned, so they outlive the next call.
func foNext(t testing.TB, sub ShardSubscription) SubscribeToShardEvent {
	t.Helper()
	ev, err := sub.Next(context.Background())
	require.NoError(t, err)
	ev.Records = slices.Clone(ev.Records)
	return ev
}

// foNextAtOnce calls Next, which must return without waiting. A Next that
// busy-loops would stop virtual time (a bubble's clock advances only when
// every goroutine is blocked), so a sleep or synctest.Wait would hang the
// test; instead Next runs on its own goroutine, and if it has not returned
// after many yields it is cancelled and the test fails.
func foNextAtOnce(t *testing.T, sub ShardSubscription) (SubscribeToShardEvent, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		ev  SubscribeToShardEvent
		err error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := sub.Next(ctx)
		ev.Records = slices.Clone(ev.Records)
		done <- result{ev, err}
	}()
	for range 200_000 {
		select {
		case r := <-done:
			return r.ev, r.err
		default:
			runtime.Gosched()
		}
	}
	cancel()
	r := <-done
	t.Errorf("Next did not return at once: it was still running (blocked, or busy-looping) after 200,000 yields; cancelled, it returned %v", r.err)
	return SubscribeToShardEvent{}, errors.New("next did not return at once")
}

// foRead reads events until it has n records and returns them. It fails
// the test if an event has ChildShards or an error comes first.
func foRead(t testing.TB, sub ShardSubscription, n int) []Record {
	t.Helper()
	var recs []Record
	for len(recs) < n {
		ev := foNext(t, sub)
		require.Empty(t, ev.ChildShards)
		recs = append(recs, ev.Records...)
	}
	require.Len(t, recs, n, "more records than written")
	return recs
}

// foSeqs returns the records' sequence numbers.
func foSeqs(recs []Record) []SequenceNumber {
	out := make([]SequenceNumber, len(recs))
	for i, r := range recs {
		out[i] = r.SequenceNumber
	}
	return out
}

// foPos is a starting position of a type that needs no value.
func foPos(typ IteratorType) StartingPosition { return StartingPosition{Type: typ} }

// ---- 1. Registration ----

// TestFanOutRegisterARNAndActive shows that a registered consumer is ACTIVE
// at once by default, that its ARN is the stream's ARN followed by
// "/consumer/<name>:<unix seconds>", and that Describe and List report it.
func TestFanOutRegisterARNAndActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := NewCluster(WithRegion("eu-west-1"), WithAccountID("123456789012"))
		t.Cleanup(func() { cl.Close() })
		s, err := cl.CreateStream(t.Context(), "orders", WithShardCount(1))
		require.NoError(t, err)

		now := time.Now()
		c, err := s.RegisterStreamConsumer(t.Context(), RegisterStreamConsumerInput{ConsumerName: "billing"})
		require.NoError(t, err)
		assert.Equal(t, "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/billing:"+strconv.FormatInt(now.Unix(), 10), c.ConsumerARN)
		assert.Equal(t, "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/billing:946684800", c.ConsumerARN, "the bubble's epoch")
		assert.Equal(t, s.ARN()+"/consumer/billing:946684800", c.ConsumerARN)
		assert.Equal(t, "billing", c.ConsumerName)
		assert.Equal(t, StreamConsumerActive, c.ConsumerStatus)
		assert.Equal(t, s.ARN(), c.StreamARN)
		assert.True(t, c.ConsumerCreationTimestamp.Equal(now), "created %v, registered at %v", c.ConsumerCreationTimestamp, now)

		stream, name, err := ParseConsumerARN(c.ConsumerARN)
		require.NoError(t, err)
		assert.Equal(t, "orders", stream)
		assert.Equal(t, "billing", name)

		d, err := s.DescribeStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "billing"})
		require.NoError(t, err)
		assert.Equal(t, c, d)
		list, err := s.ListStreamConsumers(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []StreamConsumer{c}, list)

		// A registration again, in the same second or a later one, is
		// another ARN: the old one names nothing any more.
		sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(TrimHorizon))
		require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "billing"}))
		_, err = sub.Next(t.Context())
		assertKind(t, err, ErrResourceNotFound, "billing", "deregistered")
		again := foRegister(t, s, "billing")
		assert.Equal(t, s.ARN()+"/consumer/billing:946684801", again.ConsumerARN, "re-registered within the second")
		_, err = s.SubscribeToShard(t.Context(), SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(TrimHorizon)})
		assertKind(t, err, ErrResourceNotFound, c.ConsumerARN)
		foSubscribe(t, s, again.ConsumerARN, shard0, foPos(TrimHorizon))

		time.Sleep(5 * time.Second)
		require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerARN: again.ConsumerARN}))
		third := foRegister(t, s, "billing")
		assert.Equal(t, s.ARN()+"/consumer/billing:946684805", third.ConsumerARN, "registered in a later second")
		assert.True(t, third.ConsumerCreationTimestamp.Equal(now.Add(5*time.Second)))
		for _, old := range []string{c.ConsumerARN, again.ConsumerARN} {
			_, err = s.DescribeStreamConsumer(t.Context(), StreamConsumerRef{ConsumerARN: old})
			assertKind(t, err, ErrResourceNotFound, old)
		}
	})
}

// TestFanOutConsumerRef shows how DescribeStreamConsumer and
// DeregisterStreamConsumer find a consumer: by name, by ARN (of this
// registration, with this stream), or by both when they agree.
func TestFanOutConsumerRef(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl, s := newTestStream(t, WithShardCount(1))
		ctx := t.Context()
		other, err := cl.CreateStream(ctx, "other", WithShardCount(1))
		require.NoError(t, err)
		c := foRegister(t, s, "reader")
		foRegister(t, s, "writer")
		o := foRegister(t, other, "reader")

		for _, ref := range []StreamConsumerRef{
			{ConsumerName: "reader"},
			{ConsumerARN: c.ConsumerARN},
			{ConsumerName: "reader", ConsumerARN: c.ConsumerARN},
		} {
			got, err := s.DescribeStreamConsumer(ctx, ref)
			if assert.NoError(t, err, "%+v", ref) {
				assert.Equal(t, c, got)
			}
		}
		for _, tc := range []struct {
			name string
			ref  StreamConsumerRef
			kind error
			want []string
		}{
			{"nothing", StreamConsumerRef{}, ErrValidation, []string{`consumer name ""`}},
			{"unknown name", StreamConsumerRef{ConsumerName: "ghost"}, ErrResourceNotFound, []string{"ghost"}},
			{"name and ARN disagree", StreamConsumerRef{ConsumerName: "writer", ConsumerARN: c.ConsumerARN}, ErrInvalidArgument, []string{"writer", c.ConsumerARN}},
			{"other stream's ARN", StreamConsumerRef{ConsumerARN: o.ConsumerARN}, ErrResourceNotFound, []string{o.ConsumerARN, "test"}},
			{"another registration's ARN", StreamConsumerRef{ConsumerARN: s.ARN() + "/consumer/reader:1"}, ErrResourceNotFound, []string{"reader:1"}},
			{"unknown ARN", StreamConsumerRef{ConsumerARN: s.ARN() + "/consumer/ghost:946684800"}, ErrResourceNotFound, []string{"consumer/ghost"}},
			{"malformed ARN", StreamConsumerRef{ConsumerARN: "arn:reader"}, ErrValidation, []string{`"arn:reader"`}},
		} {
			_, err := s.DescribeStreamConsumer(ctx, tc.ref)
			assertKind(t, err, tc.kind, tc.want...)
			err = s.DeregisterStreamConsumer(ctx, tc.ref)
			assertKind(t, err, tc.kind, tc.want...)
		}
		list, err := s.ListStreamConsumers(ctx)
		require.NoError(t, err)
		assert.Len(t, list, 2, "the refused deregistrations changed nothing")

		require.NoError(t, s.DeregisterStreamConsumer(ctx, StreamConsumerRef{ConsumerName: "reader", ConsumerARN: c.ConsumerARN}))
		_, err = s.DescribeStreamConsumer(ctx, StreamConsumerRef{ConsumerName: "reader"})
		assertKind(t, err, ErrResourceNotFound, "reader")
		got, err := other.DescribeStreamConsumer(ctx, StreamConsumerRef{ConsumerARN: o.ConsumerARN})
		require.NoError(t, err, "the other stream's consumer of the same name stays")
		assert.Equal(t, o, got)
	})
}

// TestFanOutConsumerStatusDelay shows the life of a consumer with
// WithConsumerStatusDelay: CREATING (not subscribable) until the delay has
// passed, then ACTIVE; DELETING after deregistration (name still taken)
// until the delay has passed again, then gone.
func TestFanOutConsumerStatusDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 10 * time.Second
		_, s := newTestStream(t, WithShardCount(1), WithConsumerStatusDelay(d))
		ctx := t.Context()
		status := func() StreamConsumerStatus {
			t.Helper()
			c, err := s.DescribeStreamConsumer(ctx, StreamConsumerRef{ConsumerName: "slow"})
			require.NoError(t, err)
			return c.ConsumerStatus
		}

		c := foRegister(t, s, "slow")
		assert.Equal(t, StreamConsumerCreating, c.ConsumerStatus)
		_, err := s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(TrimHorizon)})
		assertKind(t, err, ErrResourceInUse, "slow", "CREATING")
		time.Sleep(d - time.Millisecond)
		synctest.Wait()
		assert.Equal(t, StreamConsumerCreating, status(), "just before the delay")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		assert.Equal(t, StreamConsumerActive, status(), "once the delay has passed")
		list, err := s.ListStreamConsumers(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, StreamConsumerActive, list[0].ConsumerStatus)

		sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(TrimHorizon))
		foNext(t, sub)
		require.NoError(t, s.DeregisterStreamConsumer(ctx, StreamConsumerRef{ConsumerName: "slow"}))
		assert.Equal(t, StreamConsumerDeleting, status())
		_, err = sub.Next(ctx)
		assertKind(t, err, ErrResourceNotFound, "slow", "deregistered")
		err = s.DeregisterStreamConsumer(ctx, StreamConsumerRef{ConsumerName: "slow"})
		assertKind(t, err, ErrResourceInUse, "slow")
		_, err = s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: "slow"})
		assertKind(t, err, ErrResourceInUse, "slow")
		time.Sleep(time.Second) // past the call rate: the status is what refuses
		_, err = s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(TrimHorizon)})
		assertKind(t, err, ErrResourceInUse, "DELETING")
		list, err = s.ListStreamConsumers(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1, "a DELETING consumer is listed")
		assert.Equal(t, StreamConsumerDeleting, list[0].ConsumerStatus)

		time.Sleep(d - time.Second - time.Millisecond)
		synctest.Wait()
		assert.Equal(t, StreamConsumerDeleting, status(), "just before the delay")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		_, err = s.DescribeStreamConsumer(ctx, StreamConsumerRef{ConsumerName: "slow"})
		assertKind(t, err, ErrResourceNotFound, "slow")
		list, err = s.ListStreamConsumers(ctx)
		require.NoError(t, err)
		assert.Empty(t, list)
		c2 := foRegister(t, s, "slow")
		assert.Equal(t, StreamConsumerCreating, c2.ConsumerStatus)
		assert.NotEqual(t, c.ConsumerARN, c2.ConsumerARN)
	})
}

// TestFanOutRegisterErrors shows the refusals of RegisterStreamConsumer,
// DescribeStreamConsumer and DeregisterStreamConsumer, each naming the
// offending value.
func TestFanOutRegisterErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(s *Stream) error
		kind error
		want []string
	}{
		{"duplicate name", func(s *Stream) error {
			_, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: "taken"})
			return err
		}, ErrResourceInUse, []string{"taken", "already exists"}},
		{"empty name", func(s *Stream) error {
			_, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: ""})
			return err
		}, ErrValidation, []string{`consumer name ""`}},
		{"129 characters", func(s *Stream) error {
			_, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: strings.Repeat("a", 129)})
			return err
		}, ErrValidation, []string{"consumer name", "128"}},
		{"space", func(s *Stream) error {
			_, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: "a b"})
			return err
		}, ErrValidation, []string{`"a b"`}},
		{"slash", func(s *Stream) error {
			_, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: "a/b"})
			return err
		}, ErrValidation, []string{`"a/b"`}},
		{"colon", func(s *Stream) error {
			_, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: "a:b"})
			return err
		}, ErrValidation, []string{`"a:b"`}},
		{"non-ASCII", func(s *Stream) error {
			_, err := s.RegisterStreamConsumer(context.Background(), RegisterStreamConsumerInput{ConsumerName: "café"})
			return err
		}, ErrValidation, []string{"caf"}},
		{"describe unknown", func(s *Stream) error {
			_, err := s.DescribeStreamConsumer(context.Background(), StreamConsumerRef{ConsumerName: "ghost"})
			return err
		}, ErrResourceNotFound, []string{"ghost", "test"}},
		{"describe bad name", func(s *Stream) error {
			_, err := s.DescribeStreamConsumer(context.Background(), StreamConsumerRef{ConsumerName: "a b"})
			return err
		}, ErrValidation, []string{`"a b"`}},
		{"deregister unknown", func(s *Stream) error {
			return s.DeregisterStreamConsumer(context.Background(), StreamConsumerRef{ConsumerName: "ghost"})
		}, ErrResourceNotFound, []string{"ghost"}},
		{"deregister bad name", func(s *Stream) error {
			return s.DeregisterStreamConsumer(context.Background(), StreamConsumerRef{ConsumerName: ""})
		}, ErrValidation, []string{"consumer name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1))
				foRegister(t, s, "taken")
				assertKind(t, tc.call(s), tc.kind, tc.want...)
				list, err := s.ListStreamConsumers(t.Context())
				require.NoError(t, err)
				assert.Len(t, list, 1, "a refused call changes nothing")
			})
		})
	}
	t.Run("128 characters is fine", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(1))
			foRegister(t, s, strings.Repeat("a", 128))
			foRegister(t, s, "A-z_0.9")
		})
	})
}

// TestFanOutConsumerLimit shows the most consumers a stream may have: 20
// by default, WithConsumerLimit otherwise; deregistering one makes room.
func TestFanOutConsumerLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []StreamOption
		limit int
	}{
		{"default 20", nil, 20},
		{"WithConsumerLimit(3)", []StreamOption{WithConsumerLimit(3)}, 3},
		{"WithConsumerLimit(1)", []StreamOption{WithConsumerLimit(1)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, append([]StreamOption{WithShardCount(1)}, tc.opts...)...)
				for i := range tc.limit {
					foRegister(t, s, fmt.Sprintf("c%02d", i))
				}
				_, err := s.RegisterStreamConsumer(t.Context(), RegisterStreamConsumerInput{ConsumerName: "one-more"})
				assertKind(t, err, ErrLimitExceeded, "one-more", fmt.Sprintf("%d consumers", tc.limit))
				require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "c00"}))
				foRegister(t, s, "one-more")
				_, err = s.RegisterStreamConsumer(t.Context(), RegisterStreamConsumerInput{ConsumerName: "two-more"})
				assertKind(t, err, ErrLimitExceeded, "two-more")
			})
		})
	}
	t.Run("below 1 is refused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := NewCluster()
			defer c.Close()
			_, err := c.CreateStream(t.Context(), "test", WithConsumerLimit(0))
			assertKind(t, err, ErrInvalidArgument, "consumer limit 0")
		})
	})
}

// TestFanOutCreatingLimit shows that at most 5 consumers are CREATING at
// once: a sixth waits until one is ACTIVE.
func TestFanOutCreatingLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithConsumerStatusDelay(5*time.Second))
		for i := range 5 {
			foRegister(t, s, fmt.Sprintf("c%d", i))
		}
		_, err := s.RegisterStreamConsumer(t.Context(), RegisterStreamConsumerInput{ConsumerName: "sixth"})
		assertKind(t, err, ErrLimitExceeded, "sixth", "5 consumers CREATING")
		time.Sleep(time.Second)
		_, err = s.RegisterStreamConsumer(t.Context(), RegisterStreamConsumerInput{ConsumerName: "sixth"})
		assertKind(t, err, ErrLimitExceeded, "sixth")

		// A consumer deregistered while CREATING is DELETING, not CREATING.
		require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "c0"}))
		sixth := foRegister(t, s, "sixth")
		assert.Equal(t, StreamConsumerCreating, sixth.ConsumerStatus)
		_, err = s.RegisterStreamConsumer(t.Context(), RegisterStreamConsumerInput{ConsumerName: "seventh"})
		assertKind(t, err, ErrLimitExceeded, "seventh")

		time.Sleep(4 * time.Second) // c1…c4 are ACTIVE now
		synctest.Wait()
		for i := range 4 {
			foRegister(t, s, fmt.Sprintf("later%d", i))
		}
		list, err := s.ListStreamConsumers(t.Context())
		require.NoError(t, err)
		creating := 0
		for _, c := range list {
			if c.ConsumerStatus == StreamConsumerCreating {
				creating++
			}
		}
		assert.Equal(t, 5, creating, "sixth and later0…3")
	})
}

// TestFanOutListStreamConsumersOrder shows that ListStreamConsumers lists
// oldest first, and by name among consumers registered at one instant.
func TestFanOutListStreamConsumersOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		list, err := s.ListStreamConsumers(t.Context())
		require.NoError(t, err)
		assert.Empty(t, list)
		var want []StreamConsumer
		for _, batch := range [][]string{{"m", "b", "z"}, {"a"}, {"y", "c"}} {
			var regs []StreamConsumer
			for _, name := range batch {
				regs = append(regs, foRegister(t, s, name))
			}
			slices.SortFunc(regs, func(a, b StreamConsumer) int { return strings.Compare(a.ConsumerName, b.ConsumerName) })
			want = append(want, regs...)
			time.Sleep(1500 * time.Millisecond)
		}
		list, err = s.ListStreamConsumers(t.Context())
		require.NoError(t, err)
		names := func(cs []StreamConsumer) []string {
			out := make([]string, len(cs))
			for i, c := range cs {
				out[i] = c.ConsumerName
			}
			return out
		}
		assert.Equal(t, []string{"b", "m", "z", "a", "c", "y"}, names(list))
		assert.Equal(t, want, list)
	})
}

// TestFanOutDeleteStreamWithConsumers shows that DeleteStream refuses a
// stream with registered consumers unless WithEnforceConsumerDeletion is
// given, and that deleting one ends its subscriptions with
// ErrResourceNotFound.
func TestFanOutDeleteStreamWithConsumers(t *testing.T) {
	t.Run("refused, then enforced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cl, s := newTestStream(t, WithShardCount(1))
			ctx := t.Context()
			c := foRegister(t, s, "reader")
			foRegister(t, s, "other")
			sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(Latest))
			foNext(t, sub)

			err := cl.DeleteStream(ctx, "test")
			assertKind(t, err, ErrResourceInUse, "test", "registered consumers (other, reader)")
			putString(t, s, "k", "still here")
			assert.Equal(t, []string{"still here"}, datas(foNext(t, sub).Records), "a refused delete leaves the stream and its subscriptions")

			done := foWaitingNext(ctx, sub)
			start := time.Now()
			require.NoError(t, cl.DeleteStream(ctx, "test", WithEnforceConsumerDeletion()))
			err = <-done
			assertKind(t, err, ErrResourceNotFound, "test")
			assert.Zero(t, time.Since(start), "the waiting Next returns at once")
			_, err = sub.Next(ctx)
			assertKind(t, err, ErrResourceNotFound)

			_, err = s.ListStreamConsumers(ctx)
			assertKind(t, err, ErrResourceNotFound, "test")
			_, err = s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: "late"})
			assertKind(t, err, ErrResourceNotFound, "test")
			_, err = s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(Latest)})
			assertKind(t, err, ErrResourceNotFound, "test")

			// The name is free, with no consumers.
			s2, err := cl.CreateStream(ctx, "test", WithShardCount(1))
			require.NoError(t, err)
			list, err := s2.ListStreamConsumers(ctx)
			require.NoError(t, err)
			assert.Empty(t, list)
		})
	})
	t.Run("only DELETING consumers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cl, s := newTestStream(t, WithShardCount(1), WithConsumerStatusDelay(time.Minute))
			foRegister(t, s, "going")
			assertKind(t, cl.DeleteStream(t.Context(), "test"), ErrResourceInUse, "registered consumers (going)")
			require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "going"}))
			require.NoError(t, cl.DeleteStream(t.Context(), "test"), "a DELETING consumer does not hold the stream")
		})
	})
	t.Run("all deregistered", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cl, s := newTestStream(t, WithShardCount(1))
			foRegister(t, s, "gone")
			require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "gone"}))
			require.NoError(t, cl.DeleteStream(t.Context(), "test"))
		})
	})
}

// TestFanOutClusterCloseEndsSubscriptions shows that closing the cluster
// ends a subscription waiting in Next with ErrClosed, and that later calls
// fail with ErrClosed.
func TestFanOutClusterCloseEndsSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl, s := newTestStream(t, WithShardCount(2))
		ctx := t.Context()
		c := foRegister(t, s, "reader")
		subs := []ShardSubscription{
			foSubscribe(t, s, c.ConsumerARN, shard0, foPos(Latest)),
			foSubscribe(t, s, c.ConsumerARN, shard1, foPos(Latest)),
		}
		errs := make([]error, len(subs))
		var wg sync.WaitGroup
		for i, sub := range subs {
			foNext(t, sub)
			wg.Go(func() { _, errs[i] = sub.Next(ctx) })
		}
		synctest.Wait()
		start := time.Now()
		require.NoError(t, cl.Close())
		wg.Wait()
		assert.Zero(t, time.Since(start), "the waiting Nexts return at once")
		for _, err := range errs {
			assertKind(t, err, ErrClosed, "test")
		}
		_, err := subs[0].Next(ctx)
		assertKind(t, err, ErrClosed)
		time.Sleep(time.Second)
		_, err = s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(Latest)})
		assertKind(t, err, ErrClosed)
		_, err = s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: "late"})
		assertKind(t, err, ErrClosed)
	})
}

// ---- 2. ParseConsumerARN ----

// TestParseConsumerARN shows which ARNs ParseConsumerARN accepts and what
// it returns, and that it names a refused ARN.
func TestParseConsumerARN(t *testing.T) {
	long := strings.Repeat("x", 128)
	for _, tc := range []struct {
		arn, stream, consumer string
	}{
		{"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:946684800", "test", "c"},
		{"arn:aws:kinesis:eu-west-1:123456789012:stream/my.stream-1_x/consumer/A-z_0.9:1", "my.stream-1_x", "A-z_0.9"},
		{"arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s/consumer/c:1700000000", "s", "c"},
		{"arn:aws-us-gov:kinesis:us-gov-west-1:1:stream/s/consumer/c:0", "s", "c"},
		{"arn:aws:kinesis:::stream/s/consumer/c:9223372036854775807", "s", "c"},
		{"arn:aws:kinesis:r:a:stream/" + long + "/consumer/" + long + ":1", long, long},
	} {
		stream, consumer, err := ParseConsumerARN(tc.arn)
		if assert.NoError(t, err, tc.arn) {
			assert.Equal(t, tc.stream, stream, tc.arn)
			assert.Equal(t, tc.consumer, consumer, tc.arn)
		}
	}
	for _, arn := range []string{
		"",
		"not-an-arn",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:12a",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:-1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:12345678901234567890",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream//consumer/c:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/te st/consumer/c:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c d:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/a/b/consumer/c:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:1/extra",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:1\n",
		" arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:1",
		"arn:aws:sqs:us-east-1:000000000000:stream/test/consumer/c:1",
		"arn:aws:kinesis:us-east-1:000000000000:table/test/consumer/c:1",
		"arn:aws:kinesis:us:east:1:000000000000:stream/test/consumer/c:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/" + long + "x/consumer/c:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/" + long + "x:1",
		"ARN:AWS:KINESIS:us-east-1:000000000000:stream/test/consumer/c:1",
	} {
		stream, consumer, err := ParseConsumerARN(arn)
		assertKind(t, err, ErrValidation, clip(arn, 300))
		assert.Empty(t, stream+consumer, arn)
	}
	_, _, err := ParseConsumerARN(strings.Repeat("y", 10_000))
	assertKind(t, err, ErrValidation, `"yyyy`)
	assert.Less(t, len(err.Error()), 1000, "a long ARN is clipped in the message")
}

// FuzzParseConsumerARN checks that ParseConsumerARN never panics, that it
// accepts only ARNs whose names are valid stream names, and that an
// accepted ARN round-trips: rebuilt from its parts as RegisterStreamConsumer
// builds it (stream ARN + "/consumer/" + name + ":" + seconds), it parses
// to the same names, and is the same string when it was in the "aws"
// partition.
func FuzzParseConsumerARN(f *testing.F) {
	for _, seed := range []string{
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:946684800",
		"arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d/consumer/X:1",
		"arn:aws:kinesis:::stream/s/consumer/c:0",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:1\n",
		"arn:aws:kinesis:us-east-1:000000000000:stream/a/b/consumer/c:1",
		"arn:aws:kinesis:us-east-1:000000000000:stream/test/consumer/c:d:1",
		"arn:aws:kinesis:r:a:stream/s/consumer/c:99999999999999999999",
		"",
		"arn:",
		"\xff\xfe",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, arn string) {
		stream, consumer, err := ParseConsumerARN(arn)
		if err != nil {
			assertKind(t, err, ErrValidation)
			assert.Empty(t, stream)
			assert.Empty(t, consumer)
			return
		}
		require.NoError(t, ValidateStreamName(stream), "stream name of %q", arn)
		require.NoError(t, ValidateStreamName(consumer), "consumer name of %q", arn)
		fields := strings.SplitN(arn, ":", 6) // arn, partition, service, region, account, resource
		require.Len(t, fields, 6, arn)
		seconds := arn[strings.LastIndexByte(arn, ':')+1:]
		rebuilt := "arn:aws:kinesis:" + fields[3] + ":" + fields[4] + ":stream/" + stream + "/consumer/" + consumer + ":" + seconds
		s2, c2, err := ParseConsumerARN(rebuilt)
		require.NoError(t, err, "rebuilt %q from %q", rebuilt, arn)
		assert.Equal(t, stream, s2)
		assert.Equal(t, consumer, c2)
		if fields[1] == "aws" {
			assert.Equal(t, arn, rebuilt)
		}
	})
}

// ---- 3. Starting positions ----

// TestSubscribeToShardStartingPositions shows where a subscription starts
// for each kind of starting position, and that it then delivers the next
// record written.
func TestSubscribeToShardStartingPositions(t *testing.T) {
	// Records r0, r1, r2 arrive at t0, t0+1s and t0+2s; the subscription
	// starts at t0+3s.
	t0 := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // the bubble's epoch
	for _, tc := range []struct {
		name string
		from func(seqs []SequenceNumber) StartingPosition
		want []string
	}{
		{"TRIM_HORIZON", func([]SequenceNumber) StartingPosition { return foPos(TrimHorizon) }, []string{"r0", "r1", "r2"}},
		{"LATEST", func([]SequenceNumber) StartingPosition { return foPos(Latest) }, nil},
		{"AT_SEQUENCE_NUMBER first", func(seqs []SequenceNumber) StartingPosition {
			return StartingPosition{Type: AtSequenceNumber, SequenceNumber: seqs[0]}
		}, []string{"r0", "r1", "r2"}},
		{"AT_SEQUENCE_NUMBER middle", func(seqs []SequenceNumber) StartingPosition {
			return StartingPosition{Type: AtSequenceNumber, SequenceNumber: seqs[1]}
		}, []string{"r1", "r2"}},
		{"AFTER_SEQUENCE_NUMBER middle", func(seqs []SequenceNumber) StartingPosition {
			return StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[1]}
		}, []string{"r2"}},
		{"AFTER_SEQUENCE_NUMBER last", func(seqs []SequenceNumber) StartingPosition {
			return StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[2]}
		}, nil},
		{"AT_TIMESTAMP long ago", func([]SequenceNumber) StartingPosition {
			return StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(-time.Hour)}
		}, []string{"r0", "r1", "r2"}},
		{"AT_TIMESTAMP between records", func([]SequenceNumber) StartingPosition {
			return StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(500 * time.Millisecond)}
		}, []string{"r1", "r2"}},
		{"AT_TIMESTAMP at a record's arrival", func([]SequenceNumber) StartingPosition {
			return StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(time.Second)}
		}, []string{"r1", "r2"}},
		{"AT_TIMESTAMP after the newest record", func([]SequenceNumber) StartingPosition {
			return StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(2500 * time.Millisecond)}
		}, nil},
		{"AT_TIMESTAMP now", func([]SequenceNumber) StartingPosition {
			return StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(3 * time.Second)}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				require.True(t, t0.Equal(time.Now()), "the bubble starts at %v", t0)
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				c := foRegister(t, s, "reader")
				var seqs []SequenceNumber
				for i := range 3 {
					seqs = append(seqs, putString(t, s, "k", fmt.Sprintf("r%d", i)).SequenceNumber)
					time.Sleep(time.Second)
				}
				sub := foSubscribe(t, s, c.ConsumerARN, shard0, tc.from(seqs))
				start := time.Now()
				ev := foNext(t, sub)
				assert.Zero(t, time.Since(start), "the first Next returns at once")
				assert.Equal(t, tc.want, nilIfEmpty(datas(ev.Records)))
				assert.False(t, ev.ContinuationSequenceNumber.IsZero())
				assert.Zero(t, ev.MillisBehindLatest, "caught up")
				if len(ev.Records) > 0 {
					assert.Equal(t, ev.Records[len(ev.Records)-1].SequenceNumber, ev.ContinuationSequenceNumber)
				}
				out := putString(t, s, "k", "r3")
				ev = foNext(t, sub)
				assert.Equal(t, []string{"r3"}, datas(ev.Records))
				assert.Equal(t, out.SequenceNumber, ev.ContinuationSequenceNumber)
			})
		})
	}
}

// TestSubscribeToShardAtFutureTimestamp shows a subscription AT_TIMESTAMP
// of a time still to come: records that arrive before it are skipped, the
// first one at or after it is delivered, and meanwhile the subscription
// gets idle events like any other (the first at once).
func TestSubscribeToShardAtFutureTimestamp(t *testing.T) {
	t.Run("empty shard", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
			c := foRegister(t, s, "reader")
			t0 := time.Now()
			sub := foSubscribe(t, s, c.ConsumerARN, shard0, StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(7 * time.Second)})
			ev := foNext(t, sub)
			assert.Empty(t, ev.Records)
			go func() {
				time.Sleep(8 * time.Second)
				putString(t, s, "k", "late")
			}()
			ev = foNext(t, sub)
			assert.Empty(t, ev.Records)
			assert.Equal(t, 5*time.Second, time.Since(t0), "an idle event")
			ev = foNext(t, sub)
			assert.Equal(t, []string{"late"}, datas(ev.Records))
			assert.Equal(t, 8*time.Second, time.Since(t0))
		})
	})
	t.Run("records before the time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
			c := foRegister(t, s, "reader")
			t0 := time.Now()
			putString(t, s, "k", "before")
			sub := foSubscribe(t, s, c.ConsumerARN, shard0, StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(10 * time.Second)})

			ev, err := foNextAtOnce(t, sub)
			if assert.NoError(t, err, "the first Next returns at once") {
				assert.Empty(t, datas(ev.Records), "the record before the time is skipped")
				assert.False(t, ev.ContinuationSequenceNumber.IsZero())
			}
			time.Sleep(2 * time.Second)
			putString(t, s, "k", "early")
			time.Sleep(4 * time.Second) // 6 s after the first event: an idle event is due
			ev, err = foNextAtOnce(t, sub)
			if assert.NoError(t, err, "an idle event is due at once") {
				assert.Empty(t, datas(ev.Records), "the record before the time is skipped")
			}
			time.Sleep(5 * time.Second)
			putString(t, s, "k", "after")
			ev, err = foNextAtOnce(t, sub)
			require.NoError(t, err)
			assert.Equal(t, []string{"after"}, datas(ev.Records))
		})
	})
}

// TestSubscribeToShardInvalid shows the refusals of SubscribeToShard, each
// naming the offending value.
func TestSubscribeToShardInvalid(t *testing.T) {
	type env struct {
		s, other *Stream
		arn      string // of consumer "reader" of s
		otherARN string // of consumer "reader" of other
		seq1     SequenceNumber
	}
	for _, tc := range []struct {
		name string
		in   func(e env) SubscribeToShardInput
		kind error
		want []string
	}{
		{"bad type", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: shard0, StartingPosition: foPos("SOMEWHERE")}
		}, ErrValidation, []string{"SOMEWHERE"}},
		{"no type", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: shard0}
		}, ErrValidation, nil},
		{"AT_SEQUENCE_NUMBER without a number", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: shard0, StartingPosition: foPos(AtSequenceNumber)}
		}, ErrInvalidArgument, []string{"AT_SEQUENCE_NUMBER"}},
		{"AFTER_SEQUENCE_NUMBER without a number", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: shard0, StartingPosition: foPos(AfterSequenceNumber)}
		}, ErrInvalidArgument, []string{"AFTER_SEQUENCE_NUMBER"}},
		{"AT_TIMESTAMP without a time", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: shard0, StartingPosition: foPos(AtTimestamp)}
		}, ErrInvalidArgument, []string{"AT_TIMESTAMP", "Timestamp"}},
		{"another shard's number", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: shard0, StartingPosition: StartingPosition{Type: AtSequenceNumber, SequenceNumber: e.seq1}}
		}, ErrInvalidArgument, []string{e1String, shard0}},
		{"unknown shard", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: "shardId-000000000099", StartingPosition: foPos(TrimHorizon)}
		}, ErrResourceNotFound, []string{"shardId-000000000099"}},
		{"malformed shard id", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.arn, ShardID: "shard-0", StartingPosition: foPos(TrimHorizon)}
		}, ErrResourceNotFound, []string{"shard-0"}},
		{"unknown consumer", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.s.ARN() + "/consumer/ghost:946684800", ShardID: shard0, StartingPosition: foPos(TrimHorizon)}
		}, ErrResourceNotFound, []string{"ghost"}},
		{"stale registration", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.s.ARN() + "/consumer/reader:946684799", ShardID: shard0, StartingPosition: foPos(TrimHorizon)}
		}, ErrResourceNotFound, []string{"reader:946684799"}},
		{"other stream's consumer", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.otherARN, ShardID: shard0, StartingPosition: foPos(TrimHorizon)}
		}, ErrResourceNotFound, []string{"stream/other/consumer/reader"}},
		{"other account", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: strings.Replace(e.arn, "000000000000", "111111111111", 1), ShardID: shard0, StartingPosition: foPos(TrimHorizon)}
		}, ErrResourceNotFound, []string{"111111111111"}},
		{"malformed ARN", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: "reader", ShardID: shard0, StartingPosition: foPos(TrimHorizon)}
		}, ErrValidation, []string{`"reader"`}},
		{"stream ARN", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ConsumerARN: e.s.ARN(), ShardID: shard0, StartingPosition: foPos(TrimHorizon)}
		}, ErrValidation, []string{`:stream/test"`}},
		{"no ARN", func(e env) SubscribeToShardInput {
			return SubscribeToShardInput{ShardID: shard0, StartingPosition: foPos(TrimHorizon)}
		}, ErrValidation, []string{`""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cl, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
				other, err := cl.CreateStream(t.Context(), "other", WithShardCount(1))
				require.NoError(t, err)
				e := env{s: s, other: other, arn: foRegister(t, s, "reader").ConsumerARN, otherARN: foRegister(t, other, "reader").ConsumerARN}
				putString(t, s, "k", "x")
				out, err := s.PutRecord(t.Context(), PutRecordInput{PartitionKey: "k", ExplicitHashKey: MaxHashKey().String(), Data: []byte("y")})
				require.NoError(t, err)
				require.Equal(t, shard1, out.ShardID)
				e.seq1 = out.SequenceNumber
				in := tc.in(e)
				want := slices.Clone(tc.want)
				for i, w := range want {
					if w == e1String {
						want[i] = e.seq1.String()
					}
				}
				sub, err := s.SubscribeToShard(t.Context(), in)
				assert.Nil(t, sub)
				assertKind(t, err, tc.kind, want...)

				// The refusal took nothing: the consumer subscribes at once.
				foSubscribe(t, s, e.arn, shard0, foPos(TrimHorizon))
			})
		})
	}
}

// e1String stands for the sequence number of TestSubscribeToShardInvalid's
// record in shard 1, which its table cannot know.
const e1String = "<seq1>"

// ---- 4. Events and continuation numbers ----

// TestFanOutIdleEvents shows that an idle subscription gets an event with
// no records at once and then every 5 s, each with a greater continuation
// number, and that subscribing after an idle event's continuation number
// misses nothing.
func TestFanOutIdleEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		c := foRegister(t, s, "reader")
		t0 := time.Now()
		sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(Latest))
		var last SequenceNumber
		next := func(at time.Duration, want ...string) SubscribeToShardEvent {
			t.Helper()
			ev := foNext(t, sub)
			assert.Equal(t, at, time.Since(t0), "event time")
			assert.Equal(t, want, nilIfEmpty(datas(ev.Records)))
			assert.Positive(t, ev.ContinuationSequenceNumber.Cmp(last), "continuation %s after %s", ev.ContinuationSequenceNumber, last)
			assert.Zero(t, ev.MillisBehindLatest)
			assert.Empty(t, ev.ChildShards)
			last = ev.ContinuationSequenceNumber
			return ev
		}
		next(0)
		next(5 * time.Second)
		next(10 * time.Second)
		go func() {
			time.Sleep(2 * time.Second)
			putString(t, s, "k", "x")
		}()
		ev := next(12*time.Second, "x")
		assert.Equal(t, ev.Records[0].SequenceNumber, ev.ContinuationSequenceNumber)
		next(17 * time.Second)
		idle := next(22 * time.Second)

		// An idle event's continuation is a resume point like any other.
		putString(t, s, "k", "y")
		require.NoError(t, sub.Close())
		resumed := foSubscribe(t, s, c.ConsumerARN, shard0, StartingPosition{Type: AfterSequenceNumber, SequenceNumber: idle.ContinuationSequenceNumber})
		assert.Equal(t, []string{"y"}, datas(foNext(t, resumed).Records))

		// Polling readers are not disturbed by the numbers idle events take.
		assert.Equal(t, []string{"x", "y"}, datas(readAll(t, s, shard0, foPos(TrimHorizon))))
		st := s.Stats().Total
		assert.EqualValues(t, 2, st.RecordsPut)
		assert.EqualValues(t, 2, st.RecordsRetained)
	})
}

// TestFanOutRenewalsLoseNothing is a property test: writers write at
// random virtual times across several 10 s subscription lifetimes, and a
// reader that renews its subscription AfterSequenceNumber the last
// continuation number each time Next returns ErrSubscriptionEnded gets
// every record exactly once, in order. Continuation numbers strictly
// increase across all events, idle ones and renewals included; events come
// at least every 5 s, the first of each subscription at once.
func TestFanOutRenewalsLoseNothing(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { foRenewals(t, seed) })
		})
	}
}

func foRenewals(t *testing.T, seed uint64) {
	const (
		writers   = 3
		perWriter = 40
		lifetime  = 10 * time.Second
	)
	_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()), WithSubscriptionDuration(lifetime))
	ctx := t.Context()
	c := foRegister(t, s, "renewer")

	var mu sync.Mutex
	written := map[SequenceNumber]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; i < perWriter; {
				time.Sleep(time.Duration(rng.IntN(4000)) * time.Millisecond)
				n := min(1+rng.IntN(3), perWriter-i)
				entries := make([]PutRecordsEntry, n)
				for j := range entries {
					entries[j] = PutRecordsEntry{PartitionKey: fmt.Sprintf("w%d", w), Data: fmt.Appendf(nil, "w%d-%03d", w, i+j)}
				}
				var seqs []SequenceNumber
				if n == 1 && rng.IntN(2) == 0 {
					out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: entries[0].PartitionKey, Data: entries[0].Data})
					if !assert.NoError(t, err) {
						return
					}
					seqs = append(seqs, out.SequenceNumber)
				} else {
					out, err := s.PutRecords(ctx, PutRecordsInput{Records: entries})
					if !assert.NoError(t, err) || !assert.Zero(t, out.FailedRecordCount) {
						return
					}
					for _, r := range out.Records {
						seqs = append(seqs, r.SequenceNumber)
					}
				}
				mu.Lock()
				for j, seq := range seqs {
					written[seq] = string(entries[j].Data)
				}
				mu.Unlock()
				i += n
			}
		})
	}

	total := writers * perWriter
	var got []Record
	var last SequenceNumber
	from := foPos(TrimHorizon)
	subscriptions, idle := 0, 0
	for len(got) < total {
		subscribed := time.Now()
		sub, err := s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: from})
		require.NoError(t, err, "renewal %d", subscriptions)
		subscriptions++
		prev := subscribed
		for first := true; len(got) < total; first = false {
			ev, err := sub.Next(ctx)
			if errors.Is(err, ErrSubscriptionEnded) {
				assert.Equal(t, lifetime, time.Since(subscribed), "a subscription lasts its duration")
				assertKind(t, err, ErrSubscriptionEnded, c.ConsumerARN, shard0)
				break
			}
			require.NoError(t, err)
			if first {
				assert.Zero(t, time.Since(subscribed), "the first Next returns at once")
			}
			assert.LessOrEqual(t, time.Since(prev), heartbeatEvery, "events at least every 5 s")
			prev = time.Now()
			require.Positive(t, ev.ContinuationSequenceNumber.Cmp(last), "continuation %s after %s", ev.ContinuationSequenceNumber, last)
			last = ev.ContinuationSequenceNumber
			if len(ev.Records) == 0 {
				idle++
			} else {
				assert.Equal(t, ev.Records[len(ev.Records)-1].SequenceNumber, last)
			}
			assert.Zero(t, ev.MillisBehindLatest, "the reader keeps up")
			got = append(got, ev.Records...)
		}
		require.NoError(t, sub.Close())
		from = StartingPosition{Type: AfterSequenceNumber, SequenceNumber: last}
	}
	wg.Wait()

	assert.GreaterOrEqual(t, subscriptions, 4, "several lifetimes")
	assert.Positive(t, idle, "some events are idle")
	require.Len(t, got, total)
	seen := map[SequenceNumber]bool{}
	perKey := map[string][]string{}
	for i, r := range got {
		if i > 0 {
			require.Positive(t, r.SequenceNumber.Cmp(got[i-1].SequenceNumber), "in order")
		}
		require.False(t, seen[r.SequenceNumber], "record %s twice", r.SequenceNumber)
		seen[r.SequenceNumber] = true
		require.Equal(t, written[r.SequenceNumber], string(r.Data), "record %s", r.SequenceNumber)
		perKey[r.PartitionKey] = append(perKey[r.PartitionKey], string(r.Data))
	}
	assert.Len(t, seen, len(written), "none missing")
	for w := range writers {
		want := make([]string, perWriter)
		for i := range want {
			want[i] = fmt.Sprintf("w%d-%03d", w, i)
		}
		assert.Equal(t, want, perKey[fmt.Sprintf("w%d", w)], "writer %d in write order", w)
	}
}

// ---- 5. Child shards ----

// TestFanOutChildShards splits one shard and merges two others while
// subscriptions to them are live: the last event of each parent names its
// children (as ListShards shows them) and has no continuation number, Next
// then fails with ErrShardEnded, and subscriptions to the children from
// TRIM_HORIZON give the rest, so that per partition key every record comes
// in write order across parent and child.
func TestFanOutChildShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(3), WithLimits(Unlimited()))
		ctx := t.Context()
		c := foRegister(t, s, "lineage")
		before, err := s.ListShards(ctx, ListShardsInput{})
		require.NoError(t, err)
		parents := shardIDs(t, s)
		require.Len(t, parents, 3)

		type result struct {
			events []SubscribeToShardEvent
			err    error
		}
		results := map[string]*result{}
		subs := map[string]ShardSubscription{}
		for _, id := range parents {
			subs[id] = foSubscribe(t, s, c.ConsumerARN, id, foPos(TrimHorizon))
			results[id] = &result{}
		}
		var wg sync.WaitGroup
		read := func(id string) {
			r := results[id]
			wg.Go(func() {
				for {
					ev, err := subs[id].Next(ctx)
					if err != nil {
						r.err = err
						return
					}
					ev.Records = slices.Clone(ev.Records)
					r.events = append(r.events, ev)
				}
			})
		}
		// The split parent's and one merge parent's readers wait at the tip
		// through the reshard; the other merge parent's subscription is
		// read only afterwards, with its records still unread.
		read(parents[0])
		read(parents[1])

		order := map[string][]string{}
		write := func(phase int) map[string]int {
			counts := map[string]int{}
			for round := range 3 {
				for k := range 20 {
					key := fmt.Sprintf("k%02d", k)
					data := fmt.Sprintf("%s/%d.%d", key, phase, round)
					counts[putString(t, s, key, data).ShardID]++
					order[key] = append(order[key], data)
				}
			}
			return counts
		}
		phase1 := write(1)
		synctest.Wait()
		require.NoError(t, s.SplitShard(ctx, parents[0], reshardMid(t, before.Shards[0])))
		require.NoError(t, s.MergeShards(ctx, parents[1], parents[2]))
		read(parents[2])
		wg.Wait()

		after, err := s.ListShards(ctx, ListShardsInput{})
		require.NoError(t, err)
		gotByKey := map[string][]string{}
		for _, p := range parents {
			var want []ChildShard
			for _, sh := range after.Shards {
				if sh.ParentShardID == p || sh.AdjacentParentShardID == p {
					ps := []string{sh.ParentShardID}
					if sh.AdjacentParentShardID != "" {
						ps = append(ps, sh.AdjacentParentShardID)
					}
					want = append(want, ChildShard{ShardID: sh.ShardID, ParentShards: ps, HashKeyRange: sh.HashKeyRange})
				}
			}
			r := results[p]
			assertKind(t, r.err, ErrShardEnded, p)
			require.NotEmpty(t, r.events, p)
			end := r.events[len(r.events)-1]
			assert.ElementsMatch(t, want, end.ChildShards, "children of %s", p)
			assert.True(t, end.ContinuationSequenceNumber.IsZero(), "the last event of %s has no continuation number", p)
			n := 0
			for _, ev := range r.events {
				if ev.ChildShards == nil {
					assert.False(t, ev.ContinuationSequenceNumber.IsZero())
				}
				n += len(ev.Records)
				for _, rec := range ev.Records {
					gotByKey[rec.PartitionKey] = append(gotByKey[rec.PartitionKey], string(rec.Data))
				}
			}
			for _, ev := range r.events[:len(r.events)-1] {
				assert.Empty(t, ev.ChildShards, "only the last event of %s names children", p)
			}
			assert.Equal(t, phase1[p], n, "records of %s", p)
			_, err := subs[p].Next(ctx)
			assertKind(t, err, ErrShardEnded, p)
		}
		require.Len(t, results[parents[0]].events[len(results[parents[0]].events)-1].ChildShards, 2, "a split has two children")
		require.Len(t, results[parents[1]].events[len(results[parents[1]].events)-1].ChildShards, 1, "a merge has one child")

		phase2 := write(2)
		for _, sh := range after.Shards {
			if !sh.Open() {
				continue
			}
			sub := foSubscribe(t, s, c.ConsumerARN, sh.ShardID, foPos(TrimHorizon))
			for _, rec := range foRead(t, sub, phase2[sh.ShardID]) {
				gotByKey[rec.PartitionKey] = append(gotByKey[rec.PartitionKey], string(rec.Data))
			}
		}
		assert.Equal(t, order, gotByKey, "per key, parent then child, in write order")
	})
}

// ---- 6. The per-consumer read budget ----

// TestFanOutPerConsumerBudget drains 20 MiB from a shard with Kinesis's
// 2 MiB/s read limit through two consumers at once: each takes about
// 20 MiB / 2 MiB/s of virtual time on its own budget (not twice as long,
// as a shared budget would), and a poller reading the same shard with
// GetRecords meanwhile is never throttled by them.
func TestFanOutPerConsumerBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			rate    = 2 << 20 // KinesisLimits().ReadBytesPerSecond
			records = 20      // of 1 MiB with their key
			size    = records << 20
		)
		// The write limits would take 20 s to write it: leave them off.
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Limits{ReadBytesPerSecond: rate}))
		ctx := t.Context()
		data := make([]byte, 1<<20-1)
		for range records {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data})
			require.NoError(t, err)
		}

		start := time.Now()
		took := make([]time.Duration, 2)
		var wg sync.WaitGroup
		for i := range took {
			c := foRegister(t, s, fmt.Sprintf("reader-%d", i))
			sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(TrimHorizon))
			wg.Go(func() {
				var last time.Time
				for n := 0; n < records; {
					ev, err := sub.Next(ctx)
					if !assert.NoError(t, err) {
						return
					}
					bytes := 0
					for _, r := range ev.Records {
						bytes += len(r.PartitionKey) + len(r.Data)
					}
					assert.LessOrEqual(t, bytes, rate, "an event holds at most a second of budget")
					if n >= 4 {
						// Past the saved second, one event a second.
						assert.Equal(t, time.Second, time.Since(last), "steady rate")
					}
					n += len(ev.Records)
					last = time.Now()
				}
				took[i] = time.Since(start)
			})
		}

		it := iterator(t, s, shard0, foPos(TrimHorizon))
		for range 10 {
			out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Limit: 1})
			require.NoError(t, err, "polling has its own budget")
			require.Len(t, out.Records, 1)
			it = out.NextShardIterator
			time.Sleep(time.Second)
		}
		wg.Wait()

		// The budget holds one second's worth and, as GetRecords's, lets a
		// read start once earlier reads are paid for: the first two events
		// come at once, so 20 MiB take 8 s, not quite 10.
		ideal := time.Duration(size/rate) * time.Second
		for i, d := range took {
			assert.GreaterOrEqual(t, d, ideal-2*time.Second, "consumer %d", i)
			assert.LessOrEqual(t, d, ideal, "consumer %d", i)
		}
		assert.Equal(t, took[0], took[1], "each consumer has a budget of its own")
		st := s.Stats().Total
		assert.Zero(t, st.ReadThrottles)
		assert.EqualValues(t, 2*records, st.RecordsPushed)
		assert.EqualValues(t, 2*size, st.BytesPushed)
		assert.EqualValues(t, 10, st.RecordsRead)
	})
}

// ---- 7. The subscription rules ----

// TestFanOutSubscribeRules shows Kinesis's rules for one consumer and one
// shard: 1 call a second (ErrLimitExceeded), no second subscription within
// 5 s of the first (ErrResourceInUse), and a takeover 5 s or later, after
// which the old subscription's Next fails with ErrResourceInUse while the
// new one works.
func TestFanOutSubscribeRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
		ctx := t.Context()
		c := foRegister(t, s, "reader")
		other := foRegister(t, s, "other")
		t0 := time.Now()
		subscribe := func(at time.Duration, arn, shard string) (ShardSubscription, error) {
			t.Helper()
			time.Sleep(at - time.Since(t0))
			sub, err := s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: arn, ShardID: shard, StartingPosition: foPos(Latest)})
			if err == nil {
				t.Cleanup(func() { sub.Close() })
			}
			return sub, err
		}
		put := func(data string) { // to shard 0
			t.Helper()
			out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: "0", Data: []byte(data)})
			require.NoError(t, err)
			require.Equal(t, shard0, out.ShardID)
		}

		a, err := subscribe(0, c.ConsumerARN, shard0)
		require.NoError(t, err)
		foNext(t, a)
		_, err = subscribe(500*time.Millisecond, c.ConsumerARN, shard0)
		assertKind(t, err, ErrLimitExceeded, "reader", shard0)
		_, err = subscribe(500*time.Millisecond, c.ConsumerARN, shard1)
		assert.NoError(t, err, "the rate is per shard")
		_, err = subscribe(500*time.Millisecond, other.ConsumerARN, shard0)
		assert.NoError(t, err, "the rate and the hold are per consumer")
		_, err = subscribe(time.Second, c.ConsumerARN, shard0)
		assertKind(t, err, ErrResourceInUse, "reader", shard0)
		_, err = subscribe(1500*time.Millisecond, c.ConsumerARN, shard0)
		assert.ErrorIs(t, err, ErrLimitExceeded, "a refused call counts against the rate")
		_, err = subscribe(4*time.Second, c.ConsumerARN, shard0)
		assertKind(t, err, ErrResourceInUse, "reader", shard0, "4s")

		put("to a")
		assert.Equal(t, []string{"to a"}, datas(foRead(t, a, 1)), "a refused call leaves the subscription")

		b, err := subscribe(5*time.Second, c.ConsumerARN, shard0)
		require.NoError(t, err, "5 s after the first, a new subscription takes over")
		_, err = a.Next(ctx)
		assertKind(t, err, ErrResourceInUse, "took over", "reader", shard0)
		_, err = a.Next(ctx)
		assert.ErrorIs(t, err, ErrResourceInUse, "for good")
		foNext(t, b)
		put("to b")
		assert.Equal(t, []string{"to b"}, datas(foRead(t, b, 1)))

		_, err = subscribe(9*time.Second, c.ConsumerARN, shard0)
		assert.ErrorIs(t, err, ErrResourceInUse, "the new subscription holds the shard in turn")
		_, err = subscribe(10*time.Second, c.ConsumerARN, shard0)
		require.NoError(t, err, "and is taken over 5 s after it started")
		_, err = b.Next(ctx)
		assert.ErrorIs(t, err, ErrResourceInUse)
	})
}

// TestFanOutSubscribeAgainAfterEnd shows that the rules count from the
// last subscription that started, however it ended since (Close, its ctx,
// its duration): within a second another call is an ErrLimitExceeded,
// within 5 s an ErrResourceInUse, and 5 s after it a new subscription
// starts; the old one keeps the reason it ended with.
func TestFanOutSubscribeAgainAfterEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		// end ends sub (subscribed at t0 with ctx, for a 2 s duration)
		// and returns the error its Next then gives, or nil if it is not
		// to be asked.
		end  func(t *testing.T, sub ShardSubscription, cancel context.CancelFunc) error
		kind error
	}{
		{"Close", func(t *testing.T, sub ShardSubscription, _ context.CancelFunc) error {
			require.NoError(t, sub.Close())
			_, err := sub.Next(t.Context())
			return err
		}, ErrClosed},
		{"ctx cancelled", func(t *testing.T, sub ShardSubscription, cancel context.CancelFunc) error {
			cancel()
			synctest.Wait()
			_, err := sub.Next(t.Context())
			return err
		}, context.Canceled},
		{"duration over", func(t *testing.T, sub ShardSubscription, _ context.CancelFunc) error {
			_, err := sub.Next(t.Context())
			return err
		}, ErrSubscriptionEnded},
		{"duration over, not noticed", func(t *testing.T, sub ShardSubscription, _ context.CancelFunc) error {
			time.Sleep(2 * time.Second)
			return nil
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithSubscriptionDuration(2*time.Second))
				c := foRegister(t, s, "reader")
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				t0 := time.Now()
				sub, err := s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(Latest)})
				require.NoError(t, err)
				defer sub.Close()
				foNext(t, sub)
				if err := tc.end(t, sub, cancel); tc.kind != nil {
					require.ErrorIs(t, err, tc.kind)
				}
				subscribeAt := func(at time.Duration) error {
					t.Helper()
					require.GreaterOrEqual(t, at, time.Since(t0))
					time.Sleep(at - time.Since(t0))
					sub, err := s.SubscribeToShard(t.Context(), SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(Latest)})
					if err == nil {
						t.Cleanup(func() { sub.Close() })
					}
					return err
				}
				if time.Since(t0) < time.Second {
					assertKind(t, subscribeAt(time.Since(t0)), ErrLimitExceeded, "reader", shard0)
				}
				assertKind(t, subscribeAt(2*time.Second), ErrResourceInUse, "reader", shard0, "2s ago")
				assertKind(t, subscribeAt(4*time.Second), ErrResourceInUse, "reader", shard0, "4s ago")
				require.NoError(t, subscribeAt(5*time.Second), "5 s after the last subscription started")
				_, err = sub.Next(t.Context())
				if tc.kind != nil {
					assert.ErrorIs(t, err, tc.kind, "the old subscription keeps its reason")
				} else {
					// Past its duration but never asked: it ends as one
					// taken over, or as one that lasted its time.
					assert.True(t, errors.Is(err, ErrSubscriptionEnded) || errors.Is(err, ErrResourceInUse), "got %v", err)
				}
			})
		})
	}
}

// ---- 8. Cancellation and Close ----

// TestFanOutSubscribeContextEnds shows that the ctx given to
// SubscribeToShard bounds the subscription: when it is cancelled, a Next
// waiting meanwhile and every later one fail wrapping context.Canceled,
// and a ctx that has ended subscribes nothing.
func TestFanOutSubscribeContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		c := foRegister(t, s, "reader")
		ctx, cancel := context.WithCancel(t.Context())
		sub, err := s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(Latest)})
		require.NoError(t, err)
		defer sub.Close()
		foNext(t, sub)
		done := foWaitingNext(t.Context(), sub)
		start := time.Now()
		cancel()
		err = <-done
		assert.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "SubscribeToShard")
		assert.Zero(t, time.Since(start), "at once")
		_, err = sub.Next(t.Context())
		assert.ErrorIs(t, err, context.Canceled, "the subscription has ended")

		_, err = s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: c.ConsumerARN, ShardID: shard0, StartingPosition: foPos(Latest)})
		assert.ErrorIs(t, err, context.Canceled, "an ended ctx subscribes nothing")
	})
}

// TestFanOutNextContextEnds shows that a Next whose own ctx ends returns
// its error and leaves the subscription usable.
func TestFanOutNextContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		c := foRegister(t, s, "reader")
		sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(Latest))
		t0 := time.Now()
		foNext(t, sub)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := sub.Next(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(t0))

		cancelled, cancel2 := context.WithCancel(t.Context())
		cancel2()
		_, err = sub.Next(cancelled)
		assert.ErrorIs(t, err, context.Canceled)

		ev := foNext(t, sub)
		assert.Empty(t, ev.Records)
		assert.Equal(t, 5*time.Second, time.Since(t0), "the idle event comes on time")
		putString(t, s, "k", "still working")
		assert.Equal(t, []string{"still working"}, datas(foNext(t, sub).Records))
	})
}

// TestFanOutCloseUnblocksNext shows that Close makes a Next blocked on
// another goroutine return ErrClosed at once, that Close may be called
// twice, and that later Nexts fail with ErrClosed too.
func TestFanOutCloseUnblocksNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		c := foRegister(t, s, "reader")
		sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(Latest))
		foNext(t, sub)
		done := foWaitingNext(t.Context(), sub)
		start := time.Now()
		require.NoError(t, sub.Close())
		err := <-done
		assertKind(t, err, ErrClosed, c.ConsumerARN, shard0)
		assert.Zero(t, time.Since(start), "at once")
		require.NoError(t, sub.Close(), "Close twice")
		_, err = sub.Next(t.Context())
		assertKind(t, err, ErrClosed)
		putString(t, s, "k", "after close")
		_, err = sub.Next(t.Context())
		assert.ErrorIs(t, err, ErrClosed, "a closed subscription delivers nothing")
	})
}

// TestFanOutStatsRecordsPushed shows that Stats counts what subscriptions
// delivered, per consumer, apart from what GetRecords read.
func TestFanOutStatsRecordsPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		var subs []ShardSubscription
		for _, name := range []string{"a", "b"} {
			c := foRegister(t, s, name)
			sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(TrimHorizon))
			foNext(t, sub) // an idle event: nothing pushed
			subs = append(subs, sub)
		}
		assert.Zero(t, s.Stats().Total.RecordsPushed)
		bytes := 0
		for i := range 4 {
			data := strings.Repeat("x", 10*i)
			putString(t, s, "key", data)
			bytes += len("key") + len(data)
		}
		for _, sub := range subs {
			foRead(t, sub, 4)
		}
		st := s.Stats()
		assert.EqualValues(t, 8, st.Total.RecordsPushed)
		assert.EqualValues(t, 2*bytes, st.Total.BytesPushed)
		assert.EqualValues(t, 8, st.Shards[0].RecordsPushed)
		assert.Zero(t, st.Total.RecordsRead)
		assert.Zero(t, st.Total.GetCalls)
	})
}

// ---- 9. Slow subscribers ----

// TestFanOutSlowSubscriberLosesNothing shows that a subscription that is
// not read meanwhile blocks no writer (every PutRecords succeeds without
// virtual time passing) and then delivers every record, in order, in
// events of at most 10,000 records, with MillisBehindLatest counting down
// to 0.
func TestFanOutSlowSubscriberLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const batches = 50 // of 500: 25,000 records
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		ctx := t.Context()
		c := foRegister(t, s, "slow")
		sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(TrimHorizon))
		foNext(t, sub)

		// One Next waits at the tip while the writes begin; then nobody
		// reads for a minute.
		first := make(chan SubscribeToShardEvent, 1)
		go func() {
			ev, err := sub.Next(ctx)
			assert.NoError(t, err)
			ev.Records = slices.Clone(ev.Records)
			first <- ev
		}()
		synctest.Wait()
		var want []SequenceNumber
		start := time.Now()
		entries := make([]PutRecordsEntry, MaxPutRecordsEntries)
		for b := range batches {
			for i := range entries {
				entries[i] = PutRecordsEntry{PartitionKey: "k", Data: fmt.Appendf(nil, "%05d", b*len(entries)+i)}
			}
			out, err := s.PutRecords(ctx, PutRecordsInput{Records: entries})
			require.NoError(t, err)
			require.Zero(t, out.FailedRecordCount)
			for _, r := range out.Records {
				want = append(want, r.SequenceNumber)
			}
		}
		assert.Zero(t, time.Since(start), "no writer waited")
		time.Sleep(time.Minute)

		ev := <-first
		recs := ev.Records
		for len(recs) < len(want) {
			ev := foNext(t, sub)
			require.NotEmpty(t, ev.Records)
			assert.LessOrEqual(t, len(ev.Records), MaxGetRecordsLimit, "an event holds at most 10,000 records")
			if len(recs)+len(ev.Records) < len(want) {
				assert.Equal(t, int64(time.Minute/time.Millisecond), ev.MillisBehindLatest, "behind by the minute nobody read")
			} else {
				assert.Zero(t, ev.MillisBehindLatest, "caught up")
			}
			recs = append(recs, ev.Records...)
		}
		assert.Equal(t, want, foSeqs(recs), "every record, once, in order")
		for i, r := range recs {
			if string(r.Data) != fmt.Sprintf("%05d", i) {
				require.Failf(t, "wrong data", "record %d is %q", i, r.Data)
			}
		}
		ev = foNext(t, sub)
		assert.Empty(t, ev.Records, "nothing more")
	})
}

// ---- Storage ----

// TestFanOutIdleEventsKeepStorageCompact shows that idle events, which
// take a sequence number each, do not make the shard's storage hold
// records sparsely: a shard written every 6 s holds about the same memory
// whether or not a subscription that gets an idle event between every two
// writes reads it.
func TestFanOutIdleEventsKeepStorageCompact(t *testing.T) {
	memory := func(t *testing.T, subscribed bool) int64 {
		var mem int64
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
			if subscribed {
				c := foRegister(t, s, "idle")
				sub := foSubscribe(t, s, c.ConsumerARN, shard0, foPos(Latest))
				go func() {
					for {
						if _, err := sub.Next(context.Background()); err != nil {
							return
						}
					}
				}()
			}
			for range 200 {
				time.Sleep(6 * time.Second)
				putString(t, s, "k", strings.Repeat("x", 100))
			}
			st := s.Stats().Total
			require.EqualValues(t, 200, st.RecordsRetained)
			mem = st.MemoryBytes
		})
		return mem
	}
	without, with := memory(t, false), memory(t, true)
	assert.LessOrEqual(t, with, 2*without, "memory of 200 records of 101 bytes: %d bytes with an idle subscription, %d without", with, without)
}

// TestFanOutDescribeStreamConsumerCount shows that DescribeStreamSummary
// counts the registered consumers, as Kinesis's ConsumerCount does.
func TestFanOutDescribeStreamConsumerCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithConsumerStatusDelay(time.Second))
		for _, name := range []string{"a", "b"} {
			_, err := s.RegisterStreamConsumer(t.Context(), RegisterStreamConsumerInput{ConsumerName: name})
			require.NoError(t, err)
		}
		sum, err := s.Describe(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, sum.ConsumerCount, "CREATING consumers count")
		time.Sleep(time.Second)
		synctest.Wait()
		require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "a"}))
		sum, err = s.Describe(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, sum.ConsumerCount, "a DELETING consumer counts")
		time.Sleep(time.Second)
		synctest.Wait() // the removal runs in the cluster's goroutine
		sum, err = s.Describe(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, sum.ConsumerCount)
	})
}
