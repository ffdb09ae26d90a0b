package runnel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Tests of enhanced fan-out as the readers use it: a ShardReader in fan-out
// mode (WithReaderFanOut) and a Consumer group reading with WithFanOut.
// fanout_test.go tests the subscriptions themselves. Everything
// time-dependent runs in a synctest bubble.
//
// The helpers of this file start with "fr" (fan-out reader); it also uses
// the "fo" helpers of fanout_test.go, the "sr" helpers of
// shardreader_test.go and the consumer helpers of consumer_test.go.

// ---- Helpers ----

// frSubscriber is a *Stream whose SubscribeToShard calls are logged, so
// that a test sees when a fan-out reader subscribed and what it was told.
// It is a StreamReader, a ShardSubscriber and a FanOutReader, but not a
// *Stream.
type frSubscriber struct {
	*Stream

	mu    sync.Mutex
	calls []frCall
}

// frCall is one logged SubscribeToShard call.
type frCall struct {
	at  time.Time
	err error
}

func (w *frSubscriber) SubscribeToShard(ctx context.Context, in SubscribeToShardInput) (ShardSubscription, error) {
	sub, err := w.Stream.SubscribeToShard(ctx, in)
	w.mu.Lock()
	w.calls = append(w.calls, frCall{at: time.Now(), err: err})
	w.mu.Unlock()
	return sub, err
}

// log returns the calls so far.
func (w *frSubscriber) log() []frCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// frSucceeded counts the calls that succeeded.
func frSucceeded(calls []frCall) int {
	n := 0
	for _, c := range calls {
		if c.err == nil {
			n++
		}
	}
	return n
}

// frPollOnly has only the three StreamReader methods: it is not a
// ShardSubscriber.
type frPollOnly struct{ s *Stream }

func (p frPollOnly) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	return p.s.ListShards(ctx, in)
}

func (p frPollOnly) GetShardIterator(ctx context.Context, in GetShardIteratorInput) (ShardIterator, error) {
	return p.s.GetShardIterator(ctx, in)
}

func (p frPollOnly) GetRecords(ctx context.Context, in GetRecordsInput) (GetRecordsOutput, error) {
	return p.s.GetRecords(ctx, in)
}

// frSubscribeOnly is a StreamReader and a ShardSubscriber, but cannot
// register consumers: it is not a FanOutReader.
type frSubscribeOnly struct{ frPollOnly }

func (p frSubscribeOnly) SubscribeToShard(ctx context.Context, in SubscribeToShardInput) (ShardSubscription, error) {
	return p.s.SubscribeToShard(ctx, in)
}

// frActiveSubs counts the live subscriptions of the stream consumer name,
// over all shards (0 if it is not registered).
func frActiveSubs(s *Stream, name string) int {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	c := s.consumers[name]
	if c == nil {
		return 0
	}
	n := 0
	for _, cs := range c.shards {
		if cs.active != nil {
			n++
		}
	}
	return n
}

// frCtx returns a context for the Next calls of a test that ends after an
// hour of virtual time, so that a reader that never returns fails the test
// rather than hanging it (heartbeats keep virtual time moving). One context
// for all calls keeps these tests apart from
// TestShardReaderFanOutNextContextPerCall.
func frCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	t.Cleanup(cancel)
	return ctx
}

// frReadN is srReadN with the caller's context: it calls Next until it has
// n user records (or the shard's end) and returns them.
func frReadN(t testing.TB, ctx context.Context, r *ShardReader, n int) []srView {
	t.Helper()
	var got []srView
	for len(got) < n {
		b, err := r.Next(ctx)
		require.NoError(t, err, "after %d of %d user records", len(got), n)
		got = append(got, srViews(b.Records)...)
		if b.End {
			break
		}
	}
	return got
}

// frCollector calls a reader's Next in a goroutine until it fails, and
// keeps what the batches held.
type frCollector struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	views []srView
	err   error // the error Next ended with
}

// frCollect starts collecting r's batches. The collector is stopped at
// the test's end, before r is closed (cleanups run last in, first out).
func frCollect(t testing.TB, r *ShardReader) *frCollector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &frCollector{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			b, err := r.Next(ctx)
			c.mu.Lock()
			c.views = append(c.views, srViews(b.Records)...)
			c.err = err
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

// got returns the user records collected so far.
func (c *frCollector) got() []srView {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]srView{}, c.views...)
}

// stop stops the collector and returns the error Next ended with.
func (c *frCollector) stop() error {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// frStartWorker starts a worker of application app, closed at the test's
// end (startWorker with the application's name as a parameter).
func frStartWorker(t *testing.T, src StreamReader, app string, store LeaseStore, r *recorder, id string, opts ...ConsumerOption) *Consumer {
	t.Helper()
	opts = append([]ConsumerOption{WithLeaseStore(store), WithWorkerID(id)}, opts...)
	c, err := NewConsumer(src, app, r.factory(id), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// frHeld sums the leases the workers hold.
func frHeld(cs ...*Consumer) int {
	n := 0
	for _, h := range heldCounts(cs...) {
		n += h
	}
	return n
}

// frOwners returns the owner of every lease in the store, by shard.
func frOwners(t *testing.T, store LeaseStore) map[string]string {
	t.Helper()
	leases, err := store.ListLeases(context.Background())
	require.NoError(t, err)
	out := make(map[string]string, len(leases))
	for _, l := range leases {
		out[l.ShardID] = l.Owner
	}
	return out
}

// ---- 1. Reading every record across renewals ----

// TestShardReaderFanOutRenewals shows that a fan-out reader whose
// subscriptions last 10 s returns every record once and in order while a
// writer writes at random virtual times (bursts, and pauses longer than a
// heartbeat and than a subscription): dozens of renewals, each after the
// last continuation number, lose nothing and repeat nothing. Every record
// was pushed, none polled.
func TestShardReaderFanOutRenewals(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 400
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()), WithSubscriptionDuration(10*time.Second))
				con := foRegister(t, s, "renewals")
				src := &frSubscriber{Stream: s}
				r := srNewReader(t, src, srShards(t, s)[0], WithReaderFanOut(con.ConsumerARN))
				col := frCollect(t, r)
				start := time.Now()

				rng := rand.New(rand.NewPCG(seed, 0x5eed))
				var want []srView
				bytes := 0
				for i := range n {
					switch p := rng.IntN(10); {
					case p < 6: // a burst: no time passes
					case p < 9:
						time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Second))))
					default: // idle: heartbeats, and the subscription ends
						time.Sleep(5*time.Second + time.Duration(rng.Int64N(int64(20*time.Second))))
					}
					key := fmt.Sprint("k", rng.IntN(5))
					data := fmt.Sprintf("r%d-%s", i, strings.Repeat("x", rng.IntN(40)))
					out := putString(t, s, key, data)
					bytes += len(key) + len(data)
					want = append(want, srView{Data: data, Seq: out.SequenceNumber})
					if rng.IntN(4) == 0 {
						synctest.Wait() // the reader takes it at once, and waits again
						require.Equal(t, want, col.got(), "the reader is not up to date after %d records", i+1)
					}
				}
				time.Sleep(time.Minute) // nothing more comes, in several renewals
				synctest.Wait()
				assert.Equal(t, want, col.got(), "every record once, in order")

				elapsed := time.Since(start)
				calls := src.log()
				renewals := int(elapsed / (10 * time.Second))
				assert.GreaterOrEqual(t, renewals, 20, "the writer's pauses should span many subscriptions")
				assert.GreaterOrEqual(t, frSucceeded(calls), renewals, "subscriptions in %v of 10 s subscriptions", elapsed)
				assert.Equal(t, len(calls), frSucceeded(calls), "a renewal 10 s after the last subscription is never refused")

				st := s.Stats().Total
				assert.Zero(t, st.GetCalls, "a fan-out reader makes no GetRecords call")
				assert.Zero(t, st.RecordsRead, "nothing polled")
				assert.EqualValues(t, n, st.RecordsPushed, "every record pushed exactly once")
				assert.EqualValues(t, bytes, st.BytesPushed)
			})
		})
	}
}

// ---- 2. Takeover ----

// TestShardReaderFanOutTakeover shows what a fan-out reader does when
// another subscription of its consumer to its shard takes over (6 s after
// the reader's started, past Kinesis's 5 s): the reader's subscription
// ends with ErrResourceInUse and the reader backs off and subscribes
// again, which Kinesis refuses (ErrResourceInUse) within 5 s of the other
// one's start, even once that one is closed. After that the reader goes on
// after its last continuation number, losing and repeating nothing. Left
// open, the other subscription is itself taken over by the reader's retry
// and fails with ErrResourceInUse.
func TestShardReaderFanOutTakeover(t *testing.T) {
	for _, tc := range []struct {
		name       string
		closeOther bool
	}{
		{"other subscription closed after 2s", true},
		{"other subscription left open", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				con := foRegister(t, s, "takeover")
				shard := srShards(t, s)[0]
				src := &frSubscriber{Stream: s}
				r := srNewReader(t, src, shard, WithReaderFanOut(con.ConsumerARN))
				col := frCollect(t, r)
				synctest.Wait()
				require.Len(t, src.log(), 1, "the reader subscribed at its first Next")
				require.NoError(t, src.log()[0].err)

				var want []srView
				write := func(batch string, k int) []SequenceNumber {
					var seqs []SequenceNumber
					for i := range k {
						data := fmt.Sprintf("%s-%d", batch, i)
						out := putString(t, s, "k", data)
						want = append(want, srView{Data: data, Seq: out.SequenceNumber})
						seqs = append(seqs, out.SequenceNumber)
					}
					return seqs
				}
				write("a", 10)
				synctest.Wait()
				require.Equal(t, want, col.got(), "the reader reads before the takeover")

				time.Sleep(6 * time.Second)
				takeover := time.Now()
				other, err := s.SubscribeToShard(context.Background(), SubscribeToShardInput{ConsumerARN: con.ConsumerARN, ShardID: shard.ShardID, StartingPosition: StartingPosition{Type: Latest}})
				require.NoError(t, err, "a subscription 6 s after the reader's takes over")
				defer other.Close()
				seqsB := write("b", 10)
				synctest.Wait()
				assert.Len(t, col.got(), 10, "the reader, taken over, reads nothing")

				ev, err := other.Next(context.Background())
				require.NoError(t, err)
				var otherGot []SequenceNumber
				for _, rec := range ev.Records {
					otherGot = append(otherGot, rec.SequenceNumber)
				}
				assert.Equal(t, seqsB, otherGot, "the subscription that took over gets the records")

				if tc.closeOther {
					time.Sleep(2 * time.Second)
					require.NoError(t, other.Close())
				}
				time.Sleep(time.Until(takeover.Add(4900 * time.Millisecond)))
				synctest.Wait()
				assert.Len(t, col.got(), 10, "the reader subscribed again within 5 s of the takeover (closed: %v)", tc.closeOther)

				time.Sleep(time.Until(takeover.Add(11 * time.Second)))
				synctest.Wait()
				assert.Equal(t, want, col.got(), "the reader is back after its backoff with the records it missed")
				write("c", 10)
				synctest.Wait()
				assert.Equal(t, want, col.got(), "every record once, in order")

				calls := src.log()
				var back time.Time
				for _, c := range calls[1:] {
					switch {
					case c.err == nil && back.IsZero():
						back = c.at
					case c.err != nil:
						assert.True(t, errors.Is(c.err, ErrResourceInUse) || errors.Is(c.err, ErrLimitExceeded), "a retry refused for another reason: %v", c.err)
						assert.Less(t, c.at.Sub(takeover), 5*time.Second, "a retry refused 5 s or more after the takeover")
					}
				}
				require.False(t, back.IsZero(), "the reader subscribed again")
				assert.GreaterOrEqual(t, back.Sub(takeover), 5*time.Second, "subscribed again within 5 s of the takeover")
				assert.Equal(t, 2, frSucceeded(calls), "one subscription before the takeover, one after")
				assert.Equal(t, 1, frActiveSubs(s, "takeover"))

				_, err = other.Next(context.Background())
				if tc.closeOther {
					assert.ErrorIs(t, err, ErrClosed)
				} else {
					assert.ErrorIs(t, err, ErrResourceInUse, "the reader's retry took the shard back")
				}
				assert.ErrorIs(t, col.stop(), context.Canceled, "the reader never failed")
			})
		})
	}
}

// ---- 3. Resuming in the middle of an aggregate ----

// TestShardReaderFanOutCheckpointMidAggregate shows that a fan-out reader
// started at a checkpoint (WithReaderCheckpoint) returns exactly the user
// records after it, for a checkpoint at every user record of a mix of
// plain records and KPL aggregates, including those in the middle of an
// aggregate; and that the renewals that follow (10 s subscriptions) do
// not bring back the user records of that aggregate before the
// checkpoint.
func TestShardReaderFanOutCheckpointMidAggregate(t *testing.T) {
	for _, limit := range []int{0, 1} {
		for i := range 13 { // srWriteMix's user records
			t.Run(fmt.Sprintf("limit=%d/after=%d", limit, i), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()), WithSubscriptionDuration(10*time.Second))
					want := srWriteMix(t, s)
					require.Len(t, want, 13)
					at := want[i]
					con := foRegister(t, s, "resume")
					opts := []ReaderOption{
						WithReaderFanOut(con.ConsumerARN),
						WithReaderCheckpoint(Checkpoint{SequenceNumber: at.Seq, SubSequenceNumber: int64(at.Sub)}),
					}
					if limit > 0 {
						opts = append(opts, WithReaderBatchLimit(limit))
					}
					r := srNewReader(t, s, srShards(t, s)[0], opts...)
					col := frCollect(t, r)
					synctest.Wait()
					assert.Equal(t, want[i+1:], col.got(), "the user records after %+v", at)
					time.Sleep(time.Minute) // several renewals
					synctest.Wait()
					assert.Equal(t, want[i+1:], col.got(), "renewals bring nothing back")

					out := srPutAggregate(t, s, "", UserRecord{PartitionKey: "k-e0", Data: []byte("e0")}, UserRecord{PartitionKey: "k-e1", Data: []byte("e1")})
					want = append(want, srView{Data: "e0", Seq: out.SequenceNumber, Agg: true}, srView{Data: "e1", Seq: out.SequenceNumber, Sub: 1, Agg: true})
					time.Sleep(time.Minute)
					synctest.Wait()
					assert.Equal(t, want[i+1:], col.got(), "after renewals, the new records only")
					assert.Zero(t, s.Stats().Total.GetCalls)
				})
			})
		}
	}
}

// ---- 4. The end of a closed shard ----

// TestShardReaderFanOutShardEnd shows that a fan-out reader of a shard
// that is split returns its records, then a last batch with End and the
// ChildShards (holding the last records when they came in the same event),
// then ErrShardEnded, without subscribing again and leaving no
// subscription behind.
func TestShardReaderFanOutShardEnd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int
		backlog int // records before the split
		atTip   bool
	}{
		{"backlog in the last event", 0, 5, false},
		{"backlog two per batch", 2, 5, false},
		{"waiting at the tip", 0, 2, true},
		{"empty shard", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				parent := srShards(t, s)[0]
				var want []srView
				for i := range tc.backlog {
					out := putString(t, s, "k", fmt.Sprint("r", i))
					want = append(want, srView{Data: fmt.Sprint("r", i), Seq: out.SequenceNumber})
				}
				con := foRegister(t, s, "ends")
				src := &frSubscriber{Stream: s}
				opts := []ReaderOption{WithReaderFanOut(con.ConsumerARN)}
				if tc.limit > 0 {
					opts = append(opts, WithReaderBatchLimit(tc.limit))
				}
				r := srNewReader(t, src, parent, opts...)
				ctx := frCtx(t)
				split := func() {
					require.NoError(t, s.SplitShard(t.Context(), parent.ShardID, parent.HashKeyRange.Mid()))
					putString(t, s, "k", "in a child")
				}
				var got []srView
				var last Batch
				if tc.atTip {
					got = frReadN(t, ctx, r, len(want))
					done := srNextAsync(ctx, r)
					time.Sleep(7 * time.Second) // past a heartbeat
					synctest.Wait()
					split()
					res := <-done
					require.NoError(t, res.err)
					assert.Empty(t, res.views)
					last = res.batch
				} else {
					split()
					for !last.End {
						b, err := r.Next(ctx)
						require.NoError(t, err)
						require.False(t, len(got) == len(want) && !b.End, "a batch with no records before the end")
						got = append(got, srViews(b.Records)...)
						last = b
					}
					if tc.limit == 0 {
						assert.Len(t, last.Records, len(want), "one event: the backlog and the end")
					}
				}
				assert.Equal(t, want, got)
				require.True(t, last.End)
				assert.Equal(t, parent.ShardID, last.ShardID)
				assert.ElementsMatch(t, srSplitChildren(t, s, parent.ShardID), last.ChildShards)
				assert.Equal(t, Checkpoint{ShardEnd: true}, r.Position())
				assert.Zero(t, frActiveSubs(s, "ends"), "no subscription left after the end")

				calls := len(src.log())
				for range 2 {
					b, err := r.Next(ctx)
					assert.ErrorIs(t, err, ErrShardEnded)
					assert.Empty(t, b.Records)
					assert.False(t, b.End)
				}
				assert.Len(t, src.log(), calls, "no subscription after the end")
				assert.Equal(t, 1, calls, "one subscription for the whole shard")
				assert.Zero(t, s.Stats().Total.GetCalls)
			})
		})
	}
}

// ---- 5. Errors ----

// TestNewShardReaderFanOutInvalid shows that NewShardReader refuses a
// fan-out reader with a consumer ARN that is not one, or over a
// StreamReader that cannot subscribe, with an error naming the problem:
// ErrValidation for an ARN that breaks the pattern (a constraint, as
// Kinesis reports it), ErrInvalidArgument for a reader that cannot
// subscribe.
func TestNewShardReaderFanOutInvalid(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	sh := srShards(t, s)[0]
	con := foRegister(t, s, "valid")
	for _, tc := range []struct {
		name  string
		src   StreamReader
		arn   string
		kind  error
		inMsg string
	}{
		{"empty ARN", s, "", ErrValidation, "consumer ARN"},
		{"not an ARN", s, "my-consumer", ErrValidation, "my-consumer"},
		{"stream ARN", s, s.ARN(), ErrValidation, s.ARN()},
		{"no creation time", s, s.ARN() + "/consumer/valid", ErrValidation, s.ARN() + "/consumer/valid"},
		{"bad consumer name", s, s.ARN() + "/consumer/bad name:946684800", ErrValidation, "bad name"},
		{"not a ShardSubscriber", frPollOnly{s}, con.ConsumerARN, ErrInvalidArgument, "frPollOnly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewShardReader(tc.src, sh, WithReaderFanOut(tc.arn))
			require.Error(t, err)
			assert.Nil(t, r)
			assert.ErrorIs(t, err, tc.kind)
			assert.Contains(t, err.Error(), tc.inMsg)
			assert.Equal(t, 1, strings.Count(err.Error(), "Exception"), "one kind in the message: %v", err)
		})
	}
	r, err := NewShardReader(frSubscribeOnly{frPollOnly{s}}, sh, WithReaderFanOut(con.ConsumerARN))
	require.NoError(t, err, "a ShardSubscriber that is not a *Stream will do")
	require.NoError(t, r.Close())
}

// TestShardReaderFanOutDeregistered shows that a fan-out reader whose
// consumer is deregistered (while it reads, before it starts, with a
// DELETING period, or registered again under the same name, which is
// another registration) fails with an error wrapping ErrResourceNotFound
// rather than retrying for ever, and fails again on the next call.
func TestShardReaderFanOutDeregistered(t *testing.T) {
	for _, tc := range []struct {
		name       string
		delay      time.Duration // WithConsumerStatusDelay
		beforeRead bool          // deregistered before the first Next
		again      bool          // registered again under the same name
	}{
		{"while reading", 0, false, false},
		{"before the first Next", 0, true, false},
		{"while reading, DELETING for 3s", 3 * time.Second, false, false},
		{"registered again", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := []StreamOption{WithShardCount(1), WithLimits(Unlimited())}
				if tc.delay > 0 {
					opts = append(opts, WithConsumerStatusDelay(tc.delay))
				}
				_, s := newTestStream(t, opts...)
				con := foRegister(t, s, "gone")
				time.Sleep(tc.delay) // ACTIVE
				r := srNewReader(t, s, srShards(t, s)[0], WithReaderFanOut(con.ConsumerARN))
				ctx := frCtx(t)
				deregister := func() {
					require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "gone"}))
					if tc.again {
						time.Sleep(time.Second) // a later ARN
						foRegister(t, s, "gone")
					}
				}
				if tc.beforeRead {
					deregister()
				} else {
					putString(t, s, "k", "first")
					require.Len(t, frReadN(t, ctx, r, 1), 1)
				}
				start := time.Now()
				done := srNextAsync(ctx, r)
				synctest.Wait()
				if !tc.beforeRead {
					deregister()
				}
				var res srResult
				select {
				case res = <-done:
				case <-time.After(time.Hour):
					t.Fatal("Next still retrying an hour after the consumer was deregistered")
				}
				assert.ErrorIs(t, res.err, ErrResourceNotFound)
				assert.Zero(t, res.at.Sub(start), "Next failed at once, with no retry")

				// Again: the consumer is not found (a DELETING one is waited out).
				start = time.Now()
				_, err := r.Next(ctx)
				assert.ErrorIs(t, err, ErrResourceNotFound)
				assert.LessOrEqual(t, time.Since(start), tc.delay+5*time.Second, "the second Next retried past the DELETING time")
				if tc.again {
					assert.Zero(t, frActiveSubs(s, "gone"), "the old ARN did not subscribe the new registration")
				}
			})
		})
	}
}

// ---- 5b. The context of a Next call ----

// TestShardReaderFanOutNextContextPerCall shows that the context of one
// Next call bounds that call only, as it does for a polling reader: after
// a Next whose context is cancelled once it has returned, or whose
// deadline passes while it waits at the tip, the next Next with a live
// context returns the next record. The polling rows are the control.
func TestShardReaderFanOutNextContextPerCall(t *testing.T) {
	for _, mode := range []string{"polling", "fan-out"} {
		for _, how := range []string{"cancelled after it returned", "deadline at the tip"} {
			t.Run(mode+"/"+how, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
					var opts []ReaderOption
					if mode == "fan-out" {
						opts = append(opts, WithReaderFanOut(foRegister(t, s, "per-call").ConsumerARN))
					}
					r := srNewReader(t, s, srShards(t, s)[0], opts...)
					first := putString(t, s, "k", "first")
					ctx1, cancel1 := context.WithTimeout(context.Background(), time.Minute)
					b, err := r.Next(ctx1)
					require.NoError(t, err)
					require.Equal(t, []srView{{Data: "first", Seq: first.SequenceNumber}}, srViews(b.Records))
					if how == "deadline at the tip" {
						_, err = r.Next(ctx1)
						require.ErrorIs(t, err, context.DeadlineExceeded)
					}
					cancel1()
					synctest.Wait() // whatever ctx1's end sets off has run

					second := putString(t, s, "k", "second")
					b, err = r.Next(frCtx(t))
					require.NoError(t, err, "a Next with a live context failed with the error of an earlier call's context")
					assert.Equal(t, []srView{{Data: "second", Seq: second.SequenceNumber}}, srViews(b.Records))
				})
			})
		}
	}
}

// ---- 6. Consumer groups with WithFanOut ----

// TestConsumerFanOutGroup shows that a group of two workers reading a
// 4-shard stream with WithFanOut gets every record in order with no loss
// and no duplicate, across subscription renewals, from pushed events only,
// and that the group's stream consumer is registered once, under the
// application's name when WithFanOut is given "" and under the given name
// otherwise.
func TestConsumerFanOutGroup(t *testing.T) {
	for _, tc := range []struct {
		name     string // given to WithFanOut
		consumer string // the stream consumer registered
	}{
		{"", "test-app"},
		{"billing", "billing"},
	} {
		t.Run(fmt.Sprintf("WithFanOut(%q)", tc.name), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()), WithSubscriptionDuration(10*time.Second))
				store := NewMemoryLeaseStore()
				r := &recorder{checkpoint: true}
				ws := []*Consumer{
					startWorker(t, s, store, r, "w1", WithFanOut(tc.name)),
					startWorker(t, s, store, r, "w2", WithFanOut(tc.name)),
				}
				time.Sleep(time.Minute)
				synctest.Wait()
				assert.Equal(t, []int{2, 2}, heldCounts(ws...), "leases per worker")

				cons, err := s.ListStreamConsumers(t.Context())
				require.NoError(t, err)
				require.Len(t, cons, 1, "one stream consumer for the group")
				assert.Equal(t, tc.consumer, cons[0].ConsumerName)
				assert.Equal(t, StreamConsumerActive, cons[0].ConsumerStatus)
				assert.Equal(t, 4, frActiveSubs(s, tc.consumer), "a subscription per shard")

				want := map[string]int{}
				putKeys(t, s, 200, 20, want)
				time.Sleep(30 * time.Second) // renewals
				putKeys(t, s, 200, 20, want)
				settle()
				assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want), "duplicates without any failover")
				st := s.Stats().Total
				assert.Zero(t, st.GetCalls, "fan-out workers make no GetRecords call")
				assert.Zero(t, st.RecordsRead)
				assert.EqualValues(t, 400, st.RecordsPushed)
				var processed int64
				for _, w := range ws {
					processed += w.Stats().RecordsProcessed
				}
				assert.EqualValues(t, 400, processed)
			})
		})
	}
}

// TestConsumerFanOutWaitsForActive shows that workers whose stream
// consumer is CREATING for 3 s (WithConsumerStatusDelay) register it once
// between them and take no lease until it is ACTIVE; then they take them
// all and read every record.
func TestConsumerFanOutWaitsForActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()), WithConsumerStatusDelay(3*time.Second))
		store := NewMemoryLeaseStore()
		r := &recorder{checkpoint: true}
		want := map[string]int{}
		putKeys(t, s, 50, 10, want) // waiting to be read
		start := time.Now()
		ws := []*Consumer{
			startWorker(t, s, store, r, "w1", WithFanOut("")),
			startWorker(t, s, store, r, "w2", WithFanOut("")),
		}
		time.Sleep(2900 * time.Millisecond)
		synctest.Wait()
		con, err := s.DescribeStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "test-app"})
		require.NoError(t, err, "registered at the start")
		require.Equal(t, StreamConsumerCreating, con.ConsumerStatus)
		assert.Zero(t, frHeld(ws...), "a lease taken while the consumer is CREATING")
		for shard, owner := range frOwners(t, store) {
			assert.Empty(t, owner, "lease %s taken while the consumer is CREATING", shard)
		}
		assert.Empty(t, r.deliveries())
		assert.Zero(t, s.Stats().Total.GetCalls, "nothing polled meanwhile")

		time.Sleep(time.Until(start.Add(5 * time.Second)))
		synctest.Wait()
		con, err = s.DescribeStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "test-app"})
		require.NoError(t, err)
		require.Equal(t, StreamConsumerActive, con.ConsumerStatus)
		assert.Positive(t, frHeld(ws...), "no lease taken once the consumer is ACTIVE")
		cons, err := s.ListStreamConsumers(t.Context())
		require.NoError(t, err)
		assert.Len(t, cons, 1, "the workers registered one consumer")

		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, 4, frHeld(ws...))
		owners := frOwners(t, store)
		assert.Len(t, owners, 4)
		for shard, owner := range owners {
			assert.NotEmpty(t, owner, "lease %s", shard)
		}
		// Both workers start at once on a backlog: a lease one takes and
		// the other steals at the same moment may be delivered twice (at
		// least once), but nothing is lost. Once balanced, nothing is
		// delivered twice.
		dups := checkOrderNoLoss(t, r.deliveries(), want)
		putKeys(t, s, 50, 10, want)
		settle()
		assert.Equal(t, dups, checkOrderNoLoss(t, r.deliveries(), want), "duplicates once the leases are balanced")
		assert.Zero(t, s.Stats().Total.GetCalls)
	})
}

// TestNewConsumerFanOutInvalid shows that NewConsumer refuses WithFanOut
// over a StreamReader that is not a FanOutReader (ErrInvalidArgument),
// with a consumer name that is not valid, or with "" when the
// application's name cannot name a stream consumer; and that it registers
// nothing when it refuses.
func TestNewConsumerFanOutInvalid(t *testing.T) {
	_, s := newTestStream(t)
	f := func(string) RecordProcessor {
		return ProcessorFunc(func(context.Context, ProcessRecordsInput) error { return nil })
	}
	longApp := strings.Repeat("a", 200) // a valid application name, too long for a consumer
	for _, tc := range []struct {
		name    string
		src     StreamReader
		app     string
		fanOut  string
		invalid bool // ErrInvalidArgument expected; ErrValidation otherwise
		inMsg   string
	}{
		{"polling only", frPollOnly{s}, "test-app", "", true, "FanOutReader"},
		{"ShardSubscriber only", frSubscribeOnly{frPollOnly{s}}, "test-app", "", true, "FanOutReader"},
		{"name with a space", s, "test-app", "bad name", false, "bad name"},
		{"name with a slash", s, "test-app", "a/b", false, "a/b"},
		{"name too long", s, "test-app", strings.Repeat("c", 129), false, "ccc"},
		{"app name too long for a consumer", s, longApp, "", true, "give WithFanOut a name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewConsumer(tc.src, tc.app, f, WithFanOut(tc.fanOut))
			require.Error(t, err)
			assert.Nil(t, c)
			if tc.invalid {
				assert.ErrorIs(t, err, ErrInvalidArgument)
			} else {
				assert.ErrorIs(t, err, ErrValidation, "a name against the pattern is a constraint violation")
			}
			assert.Contains(t, err.Error(), tc.inMsg)
		})
	}
	cons, err := s.ListStreamConsumers(t.Context())
	require.NoError(t, err)
	assert.Empty(t, cons, "a refused Consumer registered a stream consumer")

	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t)
		c, err := NewConsumer(s, longApp, f, WithFanOut("short"))
		require.NoError(t, err, "the long application name is fine with a consumer name")
		synctest.Wait()
		require.NoError(t, c.Close())
		_, err = s.DescribeStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "short"})
		assert.NoError(t, err)
	})
}

// TestConsumerFanOutTwoApplications shows that two applications reading
// one stream with their own stream consumers each get every record, and
// independently: both hold a subscription to every shard, and when one
// application stops, the other goes on reading.
func TestConsumerFanOutTwoApplications(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()))
		ra, rb := &recorder{checkpoint: true}, &recorder{checkpoint: true}
		storeA, storeB := NewMemoryLeaseStore(), NewMemoryLeaseStore()
		a := []*Consumer{
			frStartWorker(t, s, "app-a", storeA, ra, "a1", WithFanOut("")),
			frStartWorker(t, s, "app-a", storeA, ra, "a2", WithFanOut("")),
		}
		b := frStartWorker(t, s, "app-b", storeB, rb, "b1", WithFanOut("reporting"))
		time.Sleep(time.Minute)
		synctest.Wait()
		cons, err := s.ListStreamConsumers(t.Context())
		require.NoError(t, err)
		var names []string
		for _, c := range cons {
			names = append(names, c.ConsumerName)
		}
		assert.ElementsMatch(t, []string{"app-a", "reporting"}, names)
		assert.Equal(t, 4, frHeld(a...))
		assert.Equal(t, 4, frHeld(b))
		assert.Equal(t, 4, frActiveSubs(s, "app-a"))
		assert.Equal(t, 4, frActiveSubs(s, "reporting"))

		want := map[string]int{}
		putKeys(t, s, 300, 15, want)
		settle()
		assert.Equal(t, 0, checkOrderNoLoss(t, ra.deliveries(), want), "application a")
		assert.Equal(t, 0, checkOrderNoLoss(t, rb.deliveries(), want), "application b")
		assert.EqualValues(t, 600, s.Stats().Total.RecordsPushed, "each record pushed to each consumer")

		wantA := maps.Clone(want)
		for _, c := range a {
			require.NoError(t, c.Close())
		}
		assert.Zero(t, frActiveSubs(s, "app-a"))
		assert.Equal(t, 4, frActiveSubs(s, "reporting"), "b's subscriptions outlive a's workers")
		putKeys(t, s, 100, 15, want)
		settle()
		assert.Equal(t, 0, checkOrderNoLoss(t, rb.deliveries(), want), "application b after a stopped")
		assert.Equal(t, 0, checkOrderNoLoss(t, ra.deliveries(), wantA), "application a")
		assert.Len(t, ra.deliveries(), 300)
		assert.Zero(t, s.Stats().Total.GetCalls)
	})
}

// ---- 7. Close ----

// TestConsumerFanOutClose shows that Close of a fan-out worker, inside the
// bubble, releases its leases with their checkpoints, ends its
// subscriptions and leaves no goroutine, also when it is closed while its
// stream consumer is still CREATING (it does not wait for it); a worker
// started afterwards takes the leases at once and goes on from the
// checkpoints.
func TestConsumerFanOutClose(t *testing.T) {
	t.Run("after reading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()))
			before := goleak.IgnoreCurrent()
			store := NewMemoryLeaseStore()
			r := &recorder{} // checkpoints only on shutdown
			want := map[string]int{}
			a := startWorker(t, s, store, r, "a", WithFanOut(""))
			settle()
			putKeys(t, s, 100, 10, want)
			settle()
			require.Equal(t, 4, frActiveSubs(s, "test-app"))
			require.NoError(t, a.Close())
			require.NoError(t, a.Close(), "Close twice")
			assert.Zero(t, a.Stats().LeasesHeld)
			assert.Zero(t, frActiveSubs(s, "test-app"), "subscriptions left after Close")
			leases, err := store.ListLeases(t.Context())
			require.NoError(t, err)
			require.Len(t, leases, 4)
			for _, l := range leases {
				assert.Empty(t, l.Owner, "lease %s released", l.ShardID)
				assert.False(t, l.Checkpoint.IsZero(), "lease %s checkpointed on shutdown", l.ShardID)
			}
			assert.NoError(t, goleak.Find(before), "goroutines of the closed Consumer")

			b := startWorker(t, s, store, r, "b", WithFanOut(""))
			synctest.Wait()
			assert.Equal(t, 4, b.Stats().LeasesHeld, "taken at once")
			putKeys(t, s, 100, 10, want)
			time.Sleep(10 * time.Second) // b's subscriptions may wait out a's 5 s
			synctest.Wait()
			assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want), "redelivered after a clean hand-off")
		})
	})
	t.Run("while CREATING", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()), WithConsumerStatusDelay(3*time.Second))
			// The stream's timer that makes the consumer ACTIVE is the
			// cluster's, not the Consumer's.
			before := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/runnel-go/runnel.(*Cluster).afterLocked.func1")}
			store := NewMemoryLeaseStore()
			a := startWorker(t, s, store, &recorder{}, "a", WithFanOut(""))
			time.Sleep(time.Second)
			synctest.Wait()
			start := time.Now()
			require.NoError(t, a.Close())
			assert.Zero(t, time.Since(start), "Close waited for the consumer to be ACTIVE")
			assert.Empty(t, frOwners(t, store), "leases created before the consumer was ACTIVE")
			assert.NoError(t, goleak.Find(before...), "goroutines of the closed Consumer")
		})
	})
}

// TestConsumerFanOutReregisters shows that a worker whose stream consumer
// is deregistered while it runs registers it again and goes on, losing
// nothing (the records after the last checkpoint come again); and that a
// registration that cannot succeed (the stream is at its consumer limit)
// shows in Stats, takes no lease, and succeeds once a place is free.
func TestConsumerFanOutReregisters(t *testing.T) {
	t.Run("deregistered while running", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
			r := &recorder{checkpoint: true}
			w := frStartWorker(t, s, "billing", NewMemoryLeaseStore(), r, "w1", WithFanOut(""))
			want := map[string]int{}
			putKeys(t, s, 100, 10, want)
			settle()
			first := w.Stats().FanOutConsumerARN
			require.NotEmpty(t, first)
			require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "billing"}))
			time.Sleep(time.Second) // a second later, so that the new ARN differs
			putKeys(t, s, 100, 10, want)
			time.Sleep(time.Minute)
			synctest.Wait()
			st := w.Stats()
			assert.NotEmpty(t, st.FanOutConsumerARN)
			assert.NotEqual(t, first, st.FanOutConsumerARN, "registered again, under a new ARN")
			con, err := s.DescribeStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "billing"})
			require.NoError(t, err)
			assert.Equal(t, st.FanOutConsumerARN, con.ConsumerARN)
			assert.Equal(t, 2, st.LeasesHeld)
			assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want))
		})
	})
	t.Run("at the consumer limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()), WithConsumerLimit(1))
			foRegister(t, s, "other")
			r := &recorder{checkpoint: true}
			w := frStartWorker(t, s, "billing", NewMemoryLeaseStore(), r, "w1", WithFanOut(""))
			want := map[string]int{}
			putKeys(t, s, 50, 10, want)
			time.Sleep(10 * time.Second)
			synctest.Wait()
			st := w.Stats()
			assert.Empty(t, st.FanOutConsumerARN, "no consumer while the stream is at its limit")
			assert.Zero(t, st.LeasesHeld)
			assert.Empty(t, r.deliveries())
			require.NoError(t, s.DeregisterStreamConsumer(t.Context(), StreamConsumerRef{ConsumerName: "other"}))
			time.Sleep(10 * time.Second)
			synctest.Wait()
			assert.NotEmpty(t, w.Stats().FanOutConsumerARN)
			assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want))
		})
	})
}

// TestShardReaderFanOutFutureTimestamp shows that a fan-out reader that
// starts AtTimestamp in the future keeps to that time across renewals: a
// record that arrives after some idle events but before the time is not
// returned, though resuming after those events' continuation numbers
// would return it.
func TestShardReaderFanOutFutureTimestamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()), WithSubscriptionDuration(10*time.Second))
		con := foRegister(t, s, "reader")
		at := time.Now().Add(time.Minute)
		r, err := NewShardReader(s, srShards(t, s)[0], WithReaderFanOut(con.ConsumerARN), WithReaderStart(StartingPosition{Type: AtTimestamp, Timestamp: at}))
		require.NoError(t, err)
		defer r.Close()
		got := make(chan []srView, 1)
		go func() { got <- frReadN(t, frCtx(t), r, 1) }()
		time.Sleep(30 * time.Second) // idle events and renewals
		putString(t, s, "k", "early")
		time.Sleep(time.Minute) // past the time
		putString(t, s, "k", "late")
		views := <-got
		require.Len(t, views, 1)
		assert.Equal(t, "late", views[0].Data)
	})
}
