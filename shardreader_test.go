package runnel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The helpers of this file start with "sr" (ShardReader).

// srPoller is a StreamReader over a *Stream that is not a *Stream, so that a
// ShardReader polls it as it polls an adapter over Amazon Kinesis: iterators
// cross it as opaque tokens. It logs every call with its (virtual) time.
//
// It exists besides reader_test.go's wireReader because that one lives in
// package runnel_test, and these tests need the internals (shardState).
type srPoller struct {
	s *Stream
	// afterSeek, if set, is called after each GetShardIterator call with the
	// number of calls so far (outside the poller's lock).
	afterSeek func(n int)

	mu    sync.Mutex
	gets  []srCall // GetRecords calls
	seeks []srCall // GetShardIterator calls
	lists int      // ListShards calls
}

// srCall is one logged call.
type srCall struct {
	at      time.Time
	records int // records returned
	bytes   int // their partition keys and data
	err     error
}

func (p *srPoller) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	p.mu.Lock()
	p.lists++
	p.mu.Unlock()
	return p.s.ListShards(ctx, in)
}

func (p *srPoller) GetShardIterator(ctx context.Context, in GetShardIteratorInput) (ShardIterator, error) {
	it, err := p.s.GetShardIterator(ctx, in)
	p.mu.Lock()
	p.seeks = append(p.seeks, srCall{at: time.Now(), err: err})
	n := len(p.seeks)
	p.mu.Unlock()
	if p.afterSeek != nil {
		p.afterSeek(n)
	}
	return OpaqueShardIterator(it.String()), err
}

func (p *srPoller) GetRecords(ctx context.Context, in GetRecordsInput) (GetRecordsOutput, error) {
	out, err := p.s.GetRecords(ctx, in)
	c := srCall{at: time.Now(), records: len(out.Records), err: err}
	for _, r := range out.Records {
		c.bytes += len(r.PartitionKey) + len(r.Data)
	}
	p.mu.Lock()
	p.gets = append(p.gets, c)
	p.mu.Unlock()
	out.NextShardIterator = OpaqueShardIterator(out.NextShardIterator.String())
	return out, err
}

// getCalls returns the GetRecords calls so far.
func (p *srPoller) getCalls() []srCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.gets)
}

// seekCalls returns the GetShardIterator calls so far.
func (p *srPoller) seekCalls() []srCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seeks)
}

// listCalls returns the number of ListShards calls so far.
func (p *srPoller) listCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lists
}

// srFailures counts the calls that failed with kind.
func srFailures(calls []srCall, kind error) int {
	n := 0
	for _, c := range calls {
		if errors.Is(c.err, kind) {
			n++
		}
	}
	return n
}

// srPaths are the two ways a ShardReader reads: woken by the writers of a
// *Stream ("stream"), or polling another StreamReader ("polling").
var srPaths = []string{"stream", "polling"}

// srSource returns the StreamReader a test of path reads s through, and the
// poller when path is "polling".
func srSource(s *Stream, path string) (StreamReader, *srPoller) {
	if path == "polling" {
		p := &srPoller{s: s}
		return p, p
	}
	return s, nil
}

// srShards lists the shards of s.
func srShards(t testing.TB, s *Stream) []Shard {
	t.Helper()
	out, err := s.ListShards(context.Background(), ListShardsInput{})
	require.NoError(t, err)
	return out.Shards
}

// srNewReader returns a reader of shard that is closed when the test ends.
func srNewReader(t testing.TB, src StreamReader, shard Shard, opts ...ReaderOption) *ShardReader {
	t.Helper()
	r, err := NewShardReader(src, shard, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// srView is what the tests compare of a user record.
type srView struct {
	Data string
	Seq  SequenceNumber
	Sub  int
	Agg  bool
}

func srViewOf(u UserRecord) srView {
	return srView{Data: string(u.Data), Seq: u.SequenceNumber, Sub: u.SubSequenceNumber, Agg: u.Aggregated}
}

// srSplitChildren returns the two children of a split parent, as the
// ChildShards of its last read name them.
func srSplitChildren(t *testing.T, s *Stream, parent string) []ChildShard {
	t.Helper()
	var children []ChildShard
	for _, sh := range srShards(t, s) {
		if sh.ParentShardID == parent {
			children = append(children, ChildShard{ShardID: sh.ShardID, ParentShards: []string{parent}, HashKeyRange: sh.HashKeyRange})
		}
	}
	require.Len(t, children, 2)
	return children
}

func srViews(urs []UserRecord) []srView {
	out := make([]srView, len(urs))
	for i, u := range urs {
		out[i] = srViewOf(u)
	}
	return out
}

// srReadN calls Next until it has returned at least n user records and
// returns them, with the sum of the batches' Dropped. It fails the test on
// an error, and if an hour of virtual time passes first.
func srReadN(t testing.TB, r *ShardReader, n int) (got []srView, dropped int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for len(got) < n {
		b, err := r.Next(ctx)
		require.NoError(t, err, "after %d of %d user records", len(got), n)
		got = append(got, srViews(b.Records)...)
		dropped += b.Dropped
		if b.End {
			break
		}
	}
	return got, dropped
}

// srNoMore checks that the reader has nothing more for a minute: Next ends
// with the context's deadline and no records.
func srNoMore(t testing.TB, r *ShardReader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := r.Next(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a reader with nothing left to read")
	assert.Empty(t, srViews(b.Records), "records after the last one")
}

// srPutAggregate writes urs as one aggregate (partition key "a") routed by
// ehk ("" routes by the key "a").
func srPutAggregate(t testing.TB, s *Stream, ehk string, urs ...UserRecord) PutRecordOutput {
	t.Helper()
	data, err := Aggregate(urs)
	require.NoError(t, err)
	out, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "a", ExplicitHashKey: ehk, Data: data})
	require.NoError(t, err)
	return out
}

// srPutAt writes a plain record routed by the explicit hash key ehk.
func srPutAt(t testing.TB, s *Stream, ehk, key string, data []byte) PutRecordOutput {
	t.Helper()
	out, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: key, ExplicitHashKey: ehk, Data: data})
	require.NoError(t, err)
	return out
}

// srWriteMix writes plain records and aggregates (one of a single user
// record) to a one-shard stream and returns the user records a reader must
// return, in order: 7 Kinesis records, 13 user records.
func srWriteMix(t testing.TB, s *Stream) []srView {
	t.Helper()
	var want []srView
	plain := func(data string) {
		out := putString(t, s, "k-"+data, data)
		want = append(want, srView{Data: data, Seq: out.SequenceNumber})
	}
	agg := func(datas ...string) {
		urs := make([]UserRecord, len(datas))
		for i, d := range datas {
			urs[i] = UserRecord{PartitionKey: "k-" + d, Data: []byte(d)}
		}
		out := srPutAggregate(t, s, "", urs...)
		for i, d := range datas {
			want = append(want, srView{Data: d, Seq: out.SequenceNumber, Sub: i, Agg: true})
		}
	}
	plain("p0")
	agg("a0", "a1", "a2")
	plain("p1")
	agg("b0", "b1")
	agg("c0")
	plain("p2")
	agg("d0", "d1", "d2", "d3")
	return want
}

// srKeyIn returns a partition key whose hash lies in rng.
func srKeyIn(t testing.TB, rng HashKeyRange, prefix string) string {
	t.Helper()
	for i := range 10_000 {
		if k := fmt.Sprintf("%s%d", prefix, i); rng.Contains(HashKeyOf(k)) {
			return k
		}
	}
	t.Fatalf("no partition key %s… hashes into %v", prefix, rng)
	return ""
}

// srWaiters returns the number of readers registered for a wake-up on a
// shard.
func srWaiters(t testing.TB, s *Stream, shardID string) int {
	t.Helper()
	sh, err := s.shardByID("test", shardID)
	require.NoError(t, err)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.waiters)
}

// srResult is what a Next in another goroutine returned; Records are copied
// as views, since the next call reuses the batch's slice.
type srResult struct {
	views []srView
	batch Batch
	err   error
	at    time.Time // when Next returned
}

// srNextAsync calls Next in a goroutine; the result arrives on the channel.
func srNextAsync(ctx context.Context, r *ShardReader) <-chan srResult {
	done := make(chan srResult, 1)
	go func() {
		b, err := r.Next(ctx)
		done <- srResult{views: srViews(b.Records), batch: b, err: err, at: time.Now()}
	}()
	return done
}

// TestShardReaderWaitsAtTipWithoutPolling: a reader of a *Stream caught up
// with its shard makes no GetRecords call however long it waits, and a write
// wakes it at once (no virtual time passes between the write and Next's
// return).
func TestShardReaderWaitsAtTipWithoutPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1)) // Kinesis's limits: pacing applies too
		putString(t, s, "k", "first")
		sh := srShards(t, s)[0]
		r := srNewReader(t, s, sh)

		got, _ := srReadN(t, r, 1)
		require.Equal(t, "first", got[0].Data)

		done := srNextAsync(t.Context(), r)
		time.Sleep(time.Second) // past the pace: the reader has read and waits
		synctest.Wait()
		calls := s.Stats().Shards[0].GetCalls
		require.Equal(t, int64(2), calls, "the first read and the read that found the tip")
		time.Sleep(time.Hour)
		synctest.Wait()
		assert.Equal(t, calls, s.Stats().Shards[0].GetCalls, "a reader waiting at the tip of a *Stream polled")
		select {
		case res := <-done:
			t.Fatalf("Next returned with nothing written: %+v", res)
		default:
		}

		wrote := time.Now()
		out := putString(t, s, "k", "second")
		res := <-done
		require.NoError(t, res.err)
		assert.Equal(t, []srView{{Data: "second", Seq: out.SequenceNumber}}, res.views)
		assert.Equal(t, wrote, res.at, "the write woke the reader at once")
		assert.Equal(t, calls+1, s.Stats().Shards[0].GetCalls, "one read after the wake-up")
		assert.Zero(t, s.Stats().Shards[0].ReadThrottles)
	})
}

// TestShardReaderPollsOncePerIdleWait: a polling reader caught up with its
// shard asks at most once per idle wait, with or without a pace.
func TestShardReaderPollsOncePerIdleWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		idle time.Duration
		opts []ReaderOption
	}{
		{"500ms", 500 * time.Millisecond, nil},
		{"500ms unpaced", 500 * time.Millisecond, []ReaderOption{WithReaderRate(0, 0)}},
		{"2s", 2 * time.Second, nil},
		{"default 1s", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				putString(t, s, "k", "r0")
				p := &srPoller{s: s}
				opts, idle := tc.opts, tc.idle
				if idle == 0 {
					idle = time.Second
				} else {
					opts = append(opts, WithReaderIdleWait(idle))
				}
				r := srNewReader(t, p, srShards(t, s)[0], opts...)
				srReadN(t, r, 1)
				before := len(p.getCalls())

				ctx, cancel := context.WithCancel(t.Context())
				done := srNextAsync(ctx, r)
				time.Sleep(10 * time.Second)
				cancel()
				require.ErrorIs(t, (<-done).err, context.Canceled)

				calls := p.getCalls()[before:]
				most := int(10*time.Second/idle) + 1
				assert.LessOrEqual(t, len(calls), most, "calls in 10 s at the tip")
				assert.GreaterOrEqual(t, len(calls), most-2, "the reader kept polling")
				for i := 1; i < len(calls); i++ {
					assert.GreaterOrEqual(t, calls[i].at.Sub(calls[i-1].at), idle, "calls %d and %d", i-1, i)
					assert.Zero(t, calls[i].records)
				}
			})
		})
	}
}

// TestShardReaderPacesCalls: reading a backlog one record per call, a reader
// never makes more calls in a second than its rate allows, and by default it
// keeps to the shard's limits (no throttle on a stream with Kinesis's
// limits). MillisBehindLatest is positive until the last batch.
func TestShardReaderPacesCalls(t *testing.T) {
	const n = 30
	for _, tc := range []struct {
		name   string
		path   string
		limits Limits
		opts   []ReaderOption
		perSec int // the expected pace
	}{
		{"polling 5/s", "polling", Unlimited(), []ReaderOption{WithReaderRate(5, 0)}, 5},
		{"polling 2/s", "polling", Unlimited(), []ReaderOption{WithReaderRate(2, 0)}, 2},
		{"polling default on Kinesis limits", "polling", KinesisLimits(), nil, 5},
		{"polling default on unlimited stream", "polling", Unlimited(), nil, 5},
		{"stream default on Kinesis limits", "stream", KinesisLimits(), nil, 5},
		{"stream 4/s", "stream", Unlimited(), []ReaderOption{WithReaderRate(4, 0)}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(tc.limits))
				var want []string
				for i := range n {
					want = append(want, fmt.Sprint("r", i))
					putString(t, s, "k", want[i])
				}
				src, p := srSource(s, tc.path)
				r := srNewReader(t, src, srShards(t, s)[0], append(tc.opts, WithReaderBatchLimit(1))...)
				start := time.Now()
				var got []string
				for i := range n {
					b, err := r.Next(t.Context())
					require.NoError(t, err)
					require.Len(t, b.Records, 1)
					got = append(got, string(b.Records[0].Data))
					if i < n-1 {
						assert.Positive(t, b.MillisBehindLatest, "batch %d of a backlog", i)
					} else {
						assert.Zero(t, b.MillisBehindLatest, "the last batch")
					}
				}
				elapsed := time.Since(start)
				assert.Equal(t, want, got)
				gap := time.Second / time.Duration(tc.perSec)
				assert.GreaterOrEqual(t, elapsed, (n-1)*gap, "reading %d records one per call", n)
				assert.Less(t, elapsed, (n-1)*gap+time.Second, "no slower than the pace")
				assert.Zero(t, s.Stats().Shards[0].ReadThrottles)
				if p == nil {
					return
				}
				calls := p.getCalls()
				require.Len(t, calls, n)
				for i := 0; i+tc.perSec < len(calls); i++ {
					assert.GreaterOrEqual(t, calls[i+tc.perSec].at.Sub(calls[i].at), time.Second,
						"%d calls within a second from call %d", tc.perSec+1, i)
				}
			})
		})
	}
}

// TestShardReaderPacesBytes: with a byte rate, each call waits for the bytes
// of the call before it to be paid for, so about 3 MiB at 1 MiB/s take more
// than 2 s, however many records a call returns.
func TestShardReaderPacesBytes(t *testing.T) {
	const (
		records = 31
		size    = 100 << 10
		rate    = 1 << 20
	)
	for _, tc := range []struct {
		name  string
		limit int // batch limit; 0: the default
	}{
		{"4 per call", 4},
		{"all in one call", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				for i := range records {
					data := make([]byte, size)
					data[0] = byte(i)
					putString(t, s, "k", string(data))
				}
				p := &srPoller{s: s}
				opts := []ReaderOption{WithReaderRate(0, rate)}
				if tc.limit > 0 {
					opts = append(opts, WithReaderBatchLimit(tc.limit))
				}
				r := srNewReader(t, p, srShards(t, s)[0], opts...)
				got, _ := srReadN(t, r, records)
				require.Len(t, got, records)
				for i, v := range got {
					assert.Equal(t, byte(i), v.Data[0], "record %d", i)
				}
				srNoMore(t, r) // one more call, at the tip

				calls := p.getCalls()
				require.Greater(t, len(calls), 1)
				total := 0
				for i := 1; i < len(calls); i++ {
					prev := calls[i-1]
					total += prev.bytes
					want := time.Duration(int64(prev.bytes) * int64(time.Second) / rate)
					assert.GreaterOrEqual(t, calls[i].at.Sub(prev.at), want, "call %d after %d bytes", i, prev.bytes)
				}
				require.Greater(t, total, 3<<20-(3<<20)/50, "about 3 MiB read before the last call")
				assert.GreaterOrEqual(t, calls[len(calls)-1].at.Sub(calls[0].at), 2*time.Second)
			})
		})
	}
}

// TestShardReaderPacesBytesOnStream: a reader of a *Stream paces its bytes
// too: after one call that read 3.1 MiB at 1 MiB/s it makes no call for
// 3.1 s.
func TestShardReaderPacesBytesOnStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		for range 31 {
			putString(t, s, "k", strings.Repeat("x", 100<<10))
		}
		r := srNewReader(t, s, srShards(t, s)[0], WithReaderRate(0, 1<<20))
		got, _ := srReadN(t, r, 31)
		require.Len(t, got, 31)
		require.Equal(t, int64(1), s.Stats().Shards[0].GetCalls, "one call read them all")

		ctx, cancel := context.WithCancel(t.Context())
		done := srNextAsync(ctx, r)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		assert.Equal(t, int64(1), s.Stats().Shards[0].GetCalls, "a call before the bytes were paid for")
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, int64(2), s.Stats().Shards[0].GetCalls, "the call once they were")
		cancel()
		assert.ErrorIs(t, (<-done).err, context.Canceled)
	})
}

// TestShardReaderBacksOffWhenThrottled: throttled calls are retried with
// doubling waits, bounded by WithReaderMaxBackoff; the records come through once
// each, in order.
func TestShardReaderBacksOffWhenThrottled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		times    int
		opts     []ReaderOption
		min, max time.Duration // of the Next that meets the throttles
	}{
		// Unpaced, the first wait is 100 ms: waits of [b/2, b] for b = 100, 200, 400 ms.
		{"3 throttles", 3, nil, 350 * time.Millisecond, 700*time.Millisecond + 50*time.Millisecond},
		// b = 100, 200, 300, 300, …
		{"capped at 300ms", 10, []ReaderOption{WithReaderMaxBackoff(300 * time.Millisecond)}, 50*time.Millisecond + 9*150*time.Millisecond, 2900*time.Millisecond + 50*time.Millisecond},
		// b = 100, 200, …, 3.2 s, then 5 s.
		{"default cap 5s", 10, nil, 3150*time.Millisecond + 4*2500*time.Millisecond, 26300*time.Millisecond + 50*time.Millisecond},
		// Paced at 5/s, waits start at 200 ms: calls at 0.2 s (the pace), at
		// 0.4 s (after [100, 200] ms), at [0.6, 0.8] s and, after [400, 800] ms,
		// at [1.0, 1.6] s; pacing alone would make the fourth call at 0.8 s.
		{"paced floor", 3, []ReaderOption{WithReaderRate(5, 0)}, time.Second, 1600 * time.Millisecond},
	} {
		for _, path := range srPaths {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
					want := srWriteMix(t, s)
					src, p := srSource(s, path)
					sh := srShards(t, s)[0]
					opts := append([]ReaderOption{WithReaderRate(0, 0)}, tc.opts...)
					r := srNewReader(t, src, sh, append(opts, WithReaderBatchLimit(2))...)
					got, _ := srReadN(t, r, 4) // p0 and the aggregate a0…a2

					injectFault(t, c, Fault{Op: OpGetRecords, ShardID: sh.ShardID, Err: ErrProvisionedThroughputExceeded, Times: tc.times})
					start := time.Now()
					next, _ := srReadN(t, r, 1)
					elapsed := time.Since(start)
					rest, _ := srReadN(t, r, len(want)-len(got)-len(next))
					assert.Equal(t, want, slices.Concat(got, next, rest), "every user record once, in order")
					assert.GreaterOrEqual(t, elapsed, tc.min, "backed off")
					assert.LessOrEqual(t, elapsed, tc.max, "backed off no longer than the cap allows")
					assert.Equal(t, int64(tc.times), s.Stats().Shards[0].ReadThrottles)
					if p != nil {
						assert.Equal(t, tc.times, srFailures(p.getCalls(), ErrProvisionedThroughputExceeded))
					}
					srNoMore(t, r)
				})
			})
		}
	}
}

// srSplitStream returns a stream whose one shard was split in two, and its
// children: low holds the hash key 0, high the rest.
func srSplitStream(t testing.TB, opts ...StreamOption) (c *Cluster, s *Stream, low, high Shard) {
	t.Helper()
	c, s = newTestStream(t, append([]StreamOption{WithShardCount(1), WithLimits(Unlimited())}, opts...)...)
	parent := srShards(t, s)[0]
	require.NoError(t, s.SplitShard(context.Background(), parent.ShardID, parent.HashKeyRange.Mid()))
	var children []Shard
	for _, sh := range srShards(t, s) {
		if sh.ParentShardID == parent.ShardID {
			children = append(children, sh)
		}
	}
	require.Len(t, children, 2)
	if children[1].HashKeyRange.Contains(HashKey{}) {
		children[0], children[1] = children[1], children[0]
	}
	require.True(t, children[0].HashKeyRange.Contains(HashKey{}))
	return c, s, children[0], children[1]
}

// TestShardReaderDeaggregates: aggregates mixed with plain records come out
// as user records with their aggregate's sequence number and their index;
// in a shard created by resharding, user records whose hash key lies
// outside the shard are dropped and counted; damaged aggregates (valid
// digest, bad protobuf) are passed on whole as plain user records.
func TestShardReaderDeaggregates(t *testing.T) {
	for _, limit := range []int{0, 1, 2} {
		for _, path := range srPaths {
			t.Run(fmt.Sprintf("limit %d/%s", limit, path), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					_, s, in, out := srSplitStream(t)
					outKey := out.HashKeyRange.StartingHashKey.String()
					inPK := srKeyIn(t, in.HashKeyRange, "in-")
					outPK := srKeyIn(t, out.HashKeyRange, "out-")

					truncated := wrapAggregate([]byte{0x1A, 0x05, 0x0A})                  // records: length 5, 1 byte left
					badIndex := wrapAggregate([]byte{0x1A, 0x04, 0x08, 0x05, 0x1A, 0x00}) // partition key index 5 of none
					for _, d := range [][]byte{truncated, badIndex} {
						_, ok := aggBody(d)
						require.True(t, ok, "the digest is valid")
						_, err := Deaggregate(Record{Data: d})
						require.Error(t, err, "the protobuf is damaged")
					}

					wrote := time.Now()
					p0 := srPutAt(t, s, "0", "plain-0", []byte("p0"))
					a := srPutAggregate(t, s, "0",
						UserRecord{PartitionKey: "x", ExplicitHashKey: "1", Data: []byte("a0")},
						UserRecord{PartitionKey: "y", ExplicitHashKey: outKey, Data: []byte("a1 out")},
						UserRecord{PartitionKey: "z", ExplicitHashKey: "2", Data: []byte("a2"), RecordID: "id-a2"},
						UserRecord{PartitionKey: inPK, Data: []byte("a3")},
						UserRecord{PartitionKey: outPK, Data: []byte("a4 out")},
						UserRecord{PartitionKey: "w", ExplicitHashKey: MaxHashKey().String(), Data: []byte("a5 out")},
					)
					d1 := srPutAt(t, s, "5", "damaged-1", truncated)
					p1 := srPutAt(t, s, "6", "plain-1", []byte("p1"))
					d2 := srPutAt(t, s, "7", "damaged-2", badIndex)
					b := srPutAggregate(t, s, "8",
						UserRecord{PartitionKey: "x", ExplicitHashKey: "9", Data: []byte("b0")},
						UserRecord{PartitionKey: "y", ExplicitHashKey: outKey, Data: []byte("b1 out")},
					)
					for _, o := range []PutRecordOutput{p0, a, d1, p1, d2, b} {
						require.Equal(t, in.ShardID, o.ShardID)
					}

					src, _ := srSource(s, path)
					var opts []ReaderOption
					if limit > 0 {
						opts = append(opts, WithReaderBatchLimit(limit))
					}
					r := srNewReader(t, src, in, opts...)
					var urs []UserRecord
					dropped, bytes := 0, 0
					for len(urs) < 8 {
						batch, err := r.Next(t.Context())
						require.NoError(t, err)
						assert.Equal(t, in.ShardID, batch.ShardID)
						assert.False(t, batch.End)
						urs = append(urs, batch.Records...)
						dropped += batch.Dropped
						bytes += batch.Bytes
					}
					srNoMore(t, r)

					assert.Equal(t, []srView{
						{Data: "p0", Seq: p0.SequenceNumber},
						{Data: "a0", Seq: a.SequenceNumber, Sub: 0, Agg: true},
						{Data: "a2", Seq: a.SequenceNumber, Sub: 2, Agg: true},
						{Data: "a3", Seq: a.SequenceNumber, Sub: 3, Agg: true},
						{Data: string(truncated), Seq: d1.SequenceNumber},
						{Data: "p1", Seq: p1.SequenceNumber},
						{Data: string(badIndex), Seq: d2.SequenceNumber},
						{Data: "b0", Seq: b.SequenceNumber, Sub: 0, Agg: true},
					}, srViews(urs))
					assert.Equal(t, 4, dropped, "a1, a4, a5 and b1 lie outside the shard")
					wantBytes := 0
					for _, rec := range readAll(t, s, in.ShardID, StartingPosition{Type: TrimHorizon}) {
						wantBytes += len(rec.PartitionKey) + len(rec.Data)
					}
					assert.Equal(t, wantBytes, bytes, "the Kinesis records' keys and data")

					assert.Equal(t, []string{"plain-0", "x", "z", inPK, "damaged-1", "plain-1", "damaged-2", "x"}, srField(urs, func(u UserRecord) string { return u.PartitionKey }))
					assert.Equal(t, []string{"", "1", "2", "", "", "", "", "9"}, srField(urs, func(u UserRecord) string { return u.ExplicitHashKey }))
					assert.Equal(t, []string{"", "", "id-a2", "", "", "", "", ""}, srField(urs, func(u UserRecord) string { return u.RecordID }))
					for _, u := range urs {
						assert.WithinDuration(t, wrote, u.ApproximateArrivalTimestamp, time.Millisecond, "arrival of %q", u.Data)
					}
				})
			})
		}
	}
}

// srField maps the user records to one of their fields.
func srField(urs []UserRecord, f func(UserRecord) string) []string {
	out := make([]string, len(urs))
	for i, u := range urs {
		out[i] = f(u)
	}
	return out
}

// TestShardReaderDropsStraysInOriginalShards: the range check holds in the
// shards a stream was created with too: an aggregate written to shard 0 of
// a two-shard stream gives only its user records that hash into shard 0.
func TestShardReaderDropsStraysInOriginalShards(t *testing.T) {
	for _, path := range srPaths {
		t.Run(path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
				shards := srShards(t, s)
				require.Empty(t, shards[0].ParentShardID)
				a := srPutAggregate(t, s, "0",
					UserRecord{PartitionKey: "x", ExplicitHashKey: "1", Data: []byte("in")},
					UserRecord{PartitionKey: "y", ExplicitHashKey: shards[1].HashKeyRange.StartingHashKey.String(), Data: []byte("stray")},
					UserRecord{PartitionKey: "z", ExplicitHashKey: shards[0].HashKeyRange.EndingHashKey.String(), Data: []byte("last in")},
				)
				require.Equal(t, shards[0].ShardID, a.ShardID)
				src, _ := srSource(s, path)
				r := srNewReader(t, src, shards[0])
				got, dropped := srReadN(t, r, 2)
				assert.Equal(t, []srView{
					{Data: "in", Seq: a.SequenceNumber, Sub: 0, Agg: true},
					{Data: "last in", Seq: a.SequenceNumber, Sub: 2, Agg: true},
				}, got)
				assert.Equal(t, 1, dropped)
			})
		})
	}
}

// TestShardReaderCountsDropsOfRecordlessCalls: when every user record a
// GetRecords call brought is dropped, the reader reads on; the drops must
// still be counted in the Dropped of the batch it returns.
func TestShardReaderCountsDropsOfRecordlessCalls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		later bool // the plain record is written after the reader caught up
	}{
		{"one record per call", 1, false},
		{"written later", 0, true},
	} {
		for _, path := range srPaths {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					_, s, low, high := srSplitStream(t)
					stray := high.HashKeyRange.StartingHashKey.String()
					srPutAggregate(t, s, "0",
						UserRecord{PartitionKey: "x", ExplicitHashKey: stray, Data: []byte("s0")},
						UserRecord{PartitionKey: "y", ExplicitHashKey: stray, Data: []byte("s1")},
					)
					src, _ := srSource(s, path)
					var opts []ReaderOption
					if tc.limit > 0 {
						opts = append(opts, WithReaderBatchLimit(tc.limit))
					}
					r := srNewReader(t, src, low, opts...)
					var done <-chan srResult
					if tc.later {
						done = srNextAsync(t.Context(), r)
						time.Sleep(5 * time.Second)
						synctest.Wait()
					}
					p := srPutAt(t, s, "0", "k", []byte("plain"))
					if done == nil {
						done = srNextAsync(t.Context(), r)
					}
					res := <-done
					require.NoError(t, res.err)
					assert.Equal(t, []srView{{Data: "plain", Seq: p.SequenceNumber}}, res.views)
					assert.Equal(t, 2, res.batch.Dropped, "the two stray user records read on the way")
				})
			})
		}
	}
}

// TestShardReaderLooksUpShardRange: given a Shard with only its ShardID, the
// reader lists the shards to learn it (once), and so still drops the
// user records of a child shard's aggregates that lie outside it. An
// unknown shard is an error.
func TestShardReaderLooksUpShardRange(t *testing.T) {
	for _, path := range srPaths {
		t.Run(path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s, low, high := srSplitStream(t)
				a := srPutAggregate(t, s, "0",
					UserRecord{PartitionKey: "x", ExplicitHashKey: "1", Data: []byte("in")},
					UserRecord{PartitionKey: "y", ExplicitHashKey: high.HashKeyRange.StartingHashKey.String(), Data: []byte("out")},
				)
				src, p := srSource(s, path)
				r := srNewReader(t, src, Shard{ShardID: low.ShardID})
				got, dropped := srReadN(t, r, 1)
				assert.Equal(t, []srView{{Data: "in", Seq: a.SequenceNumber, Agg: true}}, got)
				assert.Equal(t, 1, dropped)
				assert.Equal(t, low, r.Shard(), "the listed shard")
				srPutAt(t, s, "0", "k", []byte("more"))
				srReadN(t, r, 1)
				if p != nil {
					assert.Equal(t, 1, p.listCalls(), "the shards are listed once")
				}

				unknown := srNewReader(t, src, Shard{ShardID: "shardId-000000000099"})
				start := time.Now()
				_, err := unknown.Next(t.Context())
				assert.ErrorIs(t, err, ErrResourceNotFound)
				assert.ErrorContains(t, err, "shardId-000000000099")
				assert.Equal(t, start, time.Now(), "not retried")
			})
		})
	}
}

// TestShardReaderBatchLimit: a batch stops after the Kinesis record that
// brings it to the batch limit in user records; the rest of a GetRecords
// call is served by the next batches without another call.
func TestShardReaderBatchLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		aggs  bool
		sizes []int // of the batches
		calls int   // GetRecords calls that returned records
	}{
		{"plain", false, []int{2, 2, 2, 2}, 4},
		{"aggregates", true, []int{3, 3, 3, 3}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				var want []string
				for i := range 8 {
					if !tc.aggs {
						want = append(want, fmt.Sprint("p", i))
						putString(t, s, "k", want[len(want)-1])
						continue
					}
					if i >= 4 {
						break
					}
					var urs []UserRecord
					for j := range 3 {
						want = append(want, fmt.Sprintf("a%d.%d", i, j))
						urs = append(urs, UserRecord{PartitionKey: "k", Data: []byte(want[len(want)-1])})
					}
					srPutAggregate(t, s, "", urs...)
				}
				p := &srPoller{s: s}
				r := srNewReader(t, p, srShards(t, s)[0], WithReaderBatchLimit(2))
				var sizes []int
				var got []string
				for len(got) < len(want) {
					b, err := r.Next(t.Context())
					require.NoError(t, err)
					sizes = append(sizes, len(b.Records))
					for _, u := range b.Records {
						got = append(got, string(u.Data))
					}
				}
				assert.Equal(t, want, got)
				assert.Equal(t, tc.sizes, sizes)
				n := 0
				for _, c := range p.getCalls() {
					if c.records > 0 {
						n++
						assert.LessOrEqual(t, c.records, 2, "GetRecords asks for the batch limit")
					}
				}
				assert.Equal(t, tc.calls, n)
			})
		})
	}
}

// TestShardReaderReadAfter: a reader that starts after any user record's
// checkpoint (plain, first, middle or last of an aggregate, the very last)
// returns exactly the user records after it; WithReaderCheckpoint overrides WithReaderStart,
// and Position reports the checkpoint until a batch is returned.
func TestShardReaderReadAfter(t *testing.T) {
	for _, limit := range []int{0, 1, 3} {
		for _, path := range srPaths {
			t.Run(fmt.Sprintf("limit %d/%s", limit, path), func(t *testing.T) {
				for i := range 13 {
					synctest.Test(t, func(t *testing.T) {
						_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
						want := srWriteMix(t, s)
						require.Len(t, want, 13)
						cp := Checkpoint{SequenceNumber: want[i].Seq, SubSequenceNumber: int64(want[i].Sub)}
						src, _ := srSource(s, path)
						opts := []ReaderOption{WithReaderStart(StartingPosition{Type: Latest}), WithReaderCheckpoint(cp)}
						if limit > 0 {
							opts = append(opts, WithReaderBatchLimit(limit))
						}
						r := srNewReader(t, src, srShards(t, s)[0], opts...)
						assert.Equal(t, cp, r.Position())
						rest := want[i+1:]
						if len(rest) > 0 {
							got, _ := srReadN(t, r, len(rest))
							assert.Equal(t, rest, got, "after %v (user record %d)", cp, i)
							last := rest[len(rest)-1]
							assert.Equal(t, Checkpoint{SequenceNumber: last.Seq, SubSequenceNumber: int64(last.Sub)}, r.Position())
						}
						srNoMore(t, r)
					})
				}
			})
		}
	}
}

// TestShardReaderReadAfterZero: the zero Checkpoint leaves WithReaderStart in
// force.
func TestShardReaderReadAfterZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		want := srWriteMix(t, s)
		r := srNewReader(t, s, srShards(t, s)[0], WithReaderCheckpoint(Checkpoint{}))
		got, _ := srReadN(t, r, len(want))
		assert.Equal(t, want, got)

		latest := srNewReader(t, s, srShards(t, s)[0], WithReaderStart(StartingPosition{Type: Latest}), WithReaderCheckpoint(Checkpoint{}))
		srNoMore(t, latest)
	})
}

// TestShardReaderReadAfterShardEnd: a reader after a SHARD_END checkpoint
// reports the end at once, without a call.
func TestShardReaderReadAfterShardEnd(t *testing.T) {
	for _, path := range srPaths {
		t.Run(path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				putString(t, s, "k", "r0")
				src, p := srSource(s, path)
				sh := srShards(t, s)[0]
				r := srNewReader(t, src, sh, WithReaderCheckpoint(Checkpoint{ShardEnd: true}))
				assert.Equal(t, Checkpoint{ShardEnd: true}, r.Position())
				start := time.Now()
				for range 2 {
					b, err := r.Next(t.Context())
					require.ErrorIs(t, err, ErrShardEnded)
					assert.Empty(t, b.Records)
					assert.Equal(t, sh.ShardID, b.ShardID)
				}
				assert.Equal(t, start, time.Now())
				assert.Zero(t, s.Stats().Shards[0].GetCalls)
				if p != nil {
					assert.Empty(t, p.seekCalls())
				}
			})
		})
	}
}

// srReadBatches calls Next k times (or until the user records run out) and
// returns the user records.
func srReadBatches(t testing.TB, r *ShardReader, k, total int) []srView {
	t.Helper()
	var got []srView
	for range k {
		if len(got) == total {
			break
		}
		more, _ := srReadN(t, r, 1)
		got = append(got, more...)
	}
	return got
}

// TestShardReaderExpiredIteratorResumes: when GetRecords reports expired
// iterators (twice in a row) at any point of a shard holding aggregates,
// the reader gets a new iterator after the last user record it returned:
// over the whole read every user record comes once, in order. Also when
// the reader started after a checkpoint in the middle of an aggregate.
func TestShardReaderExpiredIteratorResumes(t *testing.T) {
	for _, limit := range []int{1, 3} {
		for _, path := range srPaths {
			for _, after := range []int{-1, 1} { // user record to start after; -1: none
				t.Run(fmt.Sprintf("limit %d/%s/after %d", limit, path, after), func(t *testing.T) {
					for k := range 8 {
						synctest.Test(t, func(t *testing.T) {
							c, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
							want := srWriteMix(t, s)
							sh := srShards(t, s)[0]
							src, p := srSource(s, path)
							opts := []ReaderOption{WithReaderBatchLimit(limit)}
							if after >= 0 {
								opts = append(opts, WithReaderCheckpoint(Checkpoint{SequenceNumber: want[after].Seq, SubSequenceNumber: int64(want[after].Sub)}))
								want = want[after+1:]
							}
							r := srNewReader(t, src, sh, opts...)
							got := srReadBatches(t, r, k, len(want))
							injectFault(t, c, Fault{Op: OpGetRecords, ShardID: sh.ShardID, Err: ErrExpiredIterator, Times: 2})
							rest, _ := srReadN(t, r, len(want)-len(got))
							assert.Equal(t, want, append(got, rest...), "expiry after %d batches", k)
							srNoMore(t, r)
							if p != nil {
								assert.Equal(t, 2, srFailures(p.getCalls(), ErrExpiredIterator), "the fault fired")
								assert.Len(t, p.seekCalls(), 3, "one iterator, and one after each expiry")
							}
						})
					}
				})
			}
		}
	}
}

// TestShardReaderIteratorTTL: a polling reader that waits longer than the
// iterator's TTL between calls of Next meets a real ExpiredIterator, gets a
// new iterator and continues where it was. A reader of a *Stream renews
// its own iterator and never meets one.
func TestShardReaderIteratorTTL(t *testing.T) {
	for _, path := range srPaths {
		t.Run(path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()), WithIteratorTTL(time.Minute))
				want := srWriteMix(t, s)
				src, p := srSource(s, path)
				r := srNewReader(t, src, srShards(t, s)[0], WithReaderBatchLimit(1))
				got := srReadBatches(t, r, 2, len(want))
				time.Sleep(2 * time.Minute)
				rest, _ := srReadN(t, r, len(want)-len(got))
				assert.Equal(t, want, append(got, rest...))
				time.Sleep(2 * time.Minute)
				srNoMore(t, r)
				if p != nil {
					assert.Equal(t, 2, srFailures(p.getCalls(), ErrExpiredIterator), "one expiry after each wait")
					assert.Len(t, p.seekCalls(), 3)
				}
			})
		})
	}
}

// TestShardReaderRetriesFailures: an ErrInternalFailure of GetRecords or of
// GetShardIterator (twice) is retried after doubling waits, at the start or
// in the middle of the shard; nothing is skipped or repeated.
func TestShardReaderRetriesFailures(t *testing.T) {
	for _, op := range []Operation{OpGetRecords, OpGetShardIterator} {
		for _, path := range srPaths {
			t.Run(op.String()+"/"+path, func(t *testing.T) {
				for _, k := range []int{0, 2, 5} {
					synctest.Test(t, func(t *testing.T) {
						c, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
						want := srWriteMix(t, s)
						sh := srShards(t, s)[0]
						src, p := srSource(s, path)
						r := srNewReader(t, src, sh, WithReaderBatchLimit(1), WithReaderRate(0, 0))
						got := srReadBatches(t, r, k, len(want))
						if op == OpGetShardIterator && k > 0 {
							// A new iterator is needed only after an expiry.
							injectFault(t, c, Fault{Op: OpGetRecords, ShardID: sh.ShardID, Err: ErrExpiredIterator, Times: 1})
						}
						injectFault(t, c, Fault{Op: op, ShardID: sh.ShardID, Err: ErrInternalFailure, Times: 2})
						start := time.Now()
						next, _ := srReadN(t, r, 1)
						elapsed := time.Since(start)
						rest, _ := srReadN(t, r, len(want)-len(got)-len(next))
						assert.Equal(t, want, slices.Concat(got, next, rest), "failures after %d batches", k)
						// Unpaced, waits are [b/2, b] for b = 100, 200 ms.
						assert.GreaterOrEqual(t, elapsed, 150*time.Millisecond, "backed off")
						assert.LessOrEqual(t, elapsed, 300*time.Millisecond)
						srNoMore(t, r)
						if p != nil {
							calls := p.getCalls()
							if op == OpGetShardIterator {
								calls = p.seekCalls()
							}
							assert.Equal(t, 2, srFailures(calls, ErrInternalFailure))
						}
					})
				}
			})
		}
	}
}

// TestShardReaderNonRetryableError: an error that is not retryable is
// returned at once, wrapped so that errors.Is finds it, after one attempt;
// the reader works again once the cause is gone.
func TestShardReaderNonRetryableError(t *testing.T) {
	for _, op := range []Operation{OpGetRecords, OpGetShardIterator, OpListShards} {
		for _, path := range srPaths {
			t.Run(op.String()+"/"+path, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
					out := putString(t, s, "k", "r0")
					sh := srShards(t, s)[0]
					if op == OpListShards {
						sh = Shard{ShardID: sh.ShardID} // the reader lists the shards
					}
					f := Fault{Op: op, Err: ErrAccessDenied}
					if op != OpListShards {
						f.ShardID = sh.ShardID
					}
					remove := injectFault(t, c, f)
					src, p := srSource(s, path)
					r := srNewReader(t, src, sh)
					start := time.Now()
					b, err := r.Next(t.Context())
					require.Error(t, err)
					assert.Equal(t, start, time.Now(), "returned at once")
					assert.ErrorIs(t, err, ErrAccessDenied)
					assert.False(t, IsRetryable(err))
					var e *Error
					require.ErrorAs(t, err, &e)
					assert.Contains(t, err.Error(), "ShardReader.Next")
					assert.Empty(t, b.Records)
					if p != nil {
						switch op {
						case OpGetRecords:
							assert.Len(t, p.getCalls(), 1)
						case OpGetShardIterator:
							assert.Len(t, p.seekCalls(), 1)
							assert.Empty(t, p.getCalls())
						case OpListShards:
							assert.Equal(t, 1, p.listCalls())
							assert.Empty(t, p.seekCalls())
						}
					}

					remove()
					got, _ := srReadN(t, r, 1)
					assert.Equal(t, []srView{{Data: "r0", Seq: out.SequenceNumber}}, got)
				})
			})
		}
	}
}

// TestShardReaderCanceledDuringBackoff: a context that ends while the
// reader backs off from a retryable failure ends Next promptly with the
// context's error ("until ctx ends (ctx's error)"), not with the failure.
func TestShardReaderCanceledDuringBackoff(t *testing.T) {
	for _, op := range []Operation{OpGetRecords, OpGetShardIterator} {
		for _, path := range srPaths {
			t.Run(op.String()+"/"+path, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
					putString(t, s, "k", "r0")
					sh := srShards(t, s)[0]
					// Far more failures than 3 s of backoff can meet, but finite:
					// a reader that did not back off would not hang the test.
					injectFault(t, c, Fault{Op: op, ShardID: sh.ShardID, Err: ErrInternalFailure, Times: 1000})
					src, _ := srSource(s, path)
					r := srNewReader(t, src, sh)
					ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
					defer cancel()
					start := time.Now()
					_, err := r.Next(ctx)
					assert.LessOrEqual(t, time.Since(start), 3*time.Second, "returned when ctx ended")
					assert.ErrorIs(t, err, context.DeadlineExceeded)
				})
			})
		}
	}
}

// TestShardReaderPersistentExpiryBacksOff: an iterator that expires again
// and again (a clock skew, a TTL shorter than a call) must not make an
// unpaced reader spin: new iterators are asked for with a backoff, not in
// a busy loop that never lets time pass.
func TestShardReaderPersistentExpiryBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		putString(t, s, "k", "r0")
		sh := srShards(t, s)[0]
		injectFault(t, c, Fault{Op: OpGetRecords, ShardID: sh.ShardID, Err: ErrExpiredIterator})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := &srPoller{s: s, afterSeek: func(n int) {
			if n == 100 {
				cancel()
			}
		}}
		r := srNewReader(t, p, sh, WithReaderRate(0, 0))
		start := time.Now()
		_, err := r.Next(ctx)
		assert.ErrorIs(t, err, context.Canceled)
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "100 iterators, each expired at once, were asked for without a pause")
	})
}

// TestShardReaderLatestSurvivesExpiredIterator: a reader started at Latest
// that meets an expired iterator before it returned anything must not skip
// the records written since it started. Arrival times have a millisecond's
// precision: a record written in the very millisecond the reader started,
// before it, may be returned too ("same millisecond"); one written a
// millisecond earlier must not.
func TestShardReaderLatestSurvivesExpiredIterator(t *testing.T) {
	for _, sameMs := range []bool{false, true} {
		for _, path := range srPaths {
			t.Run(fmt.Sprintf("same millisecond %t/%s", sameMs, path), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
					putString(t, s, "k", "old")
					if !sameMs {
						time.Sleep(time.Millisecond)
					}
					sh := srShards(t, s)[0]
					src, _ := srSource(s, path)
					r := srNewReader(t, src, sh, WithReaderStart(StartingPosition{Type: Latest}))
					ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
					defer cancel()
					done := srNextAsync(ctx, r)
					synctest.Wait() // at the tip
					injectFault(t, c, Fault{Op: OpGetRecords, ShardID: sh.ShardID, Err: ErrExpiredIterator, Times: 1})
					n1 := putString(t, s, "k", "new")
					time.Sleep(2 * time.Second) // the reader reads again, and meets the expiry
					n2 := putString(t, s, "k", "newer")
					var got []srView
					for {
						res := <-done
						require.NoError(t, res.err, "after %v", got)
						got = append(got, res.views...)
						if slices.ContainsFunc(got, func(v srView) bool { return v.Data == "newer" }) {
							break
						}
						done = srNextAsync(ctx, r)
					}
					want := []srView{{Data: "new", Seq: n1.SequenceNumber}, {Data: "newer", Seq: n2.SequenceNumber}}
					if sameMs && len(got) > 0 && got[0].Data == "old" {
						got = got[1:]
					}
					assert.Equal(t, want, got, "the records written after the reader started, once each")
				})
			})
		}
	}
}

// TestShardReaderShardEnd: a reader of a split shard returns its records,
// then a last batch with End and the children (with records if they ended
// the shard, empty if the reader waited at the tip when the shard closed);
// afterwards Next returns ErrShardEnded without a call and Position is
// SHARD_END.
func TestShardReaderShardEnd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int
		backlog int // records before the split
		atTip   bool
	}{
		{"backlog in one call", 0, 5, false},
		{"backlog two per call", 2, 5, false},
		{"waiting at the tip", 0, 2, true},
		{"empty shard", 0, 0, true},
	} {
		for _, path := range srPaths {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
					parent := srShards(t, s)[0]
					var want []srView
					for i := range tc.backlog {
						out := putString(t, s, "k", fmt.Sprint("r", i))
						want = append(want, srView{Data: fmt.Sprint("r", i), Seq: out.SequenceNumber})
					}
					src, p := srSource(s, path)
					var opts []ReaderOption
					if tc.limit > 0 {
						opts = append(opts, WithReaderBatchLimit(tc.limit))
					}
					r := srNewReader(t, src, parent, opts...)
					var got []srView
					var last Batch
					split := func() {
						require.NoError(t, s.SplitShard(t.Context(), parent.ShardID, parent.HashKeyRange.Mid()))
						putString(t, s, "k", "in a child")
					}
					if tc.atTip {
						got, _ = srReadN(t, r, len(want))
						done := srNextAsync(t.Context(), r)
						time.Sleep(3 * time.Second)
						synctest.Wait()
						split()
						res := <-done
						require.NoError(t, res.err)
						assert.Empty(t, res.views)
						last = res.batch
					} else {
						split()
						for !last.End {
							b, err := r.Next(t.Context())
							require.NoError(t, err)
							require.False(t, len(got) == len(want) && !b.End, "a batch with no records before the end")
							got = append(got, srViews(b.Records)...)
							last = b
						}
					}
					assert.Equal(t, want, got)
					require.True(t, last.End)
					assert.Equal(t, parent.ShardID, last.ShardID)
					assert.ElementsMatch(t, srSplitChildren(t, s, parent.ShardID), last.ChildShards)
					assert.Equal(t, Checkpoint{ShardEnd: true}, r.Position())

					calls := s.Stats().Total.GetCalls
					for range 2 {
						b, err := r.Next(t.Context())
						assert.ErrorIs(t, err, ErrShardEnded)
						assert.Empty(t, b.Records)
						assert.False(t, b.End)
					}
					assert.Equal(t, calls, s.Stats().Total.GetCalls, "no call after the end")
					assert.Zero(t, srWaiters(t, s, parent.ShardID))
					if p != nil {
						assert.Len(t, p.seekCalls(), 1)
					}
				})
			})
		}
	}
}

// TestNewShardReaderValidation: every bad argument or option is an
// ErrInvalidArgument whose message names the bad value; boundary values
// are accepted.
func TestNewShardReaderValidation(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	sh := srShards(t, s)[0]
	seq := putString(t, s, "k", "r0").SequenceNumber
	for _, tc := range []struct {
		name  string
		src   StreamReader
		shard Shard
		opts  []ReaderOption
		inMsg string // "" when valid
	}{
		{"nil src", nil, sh, nil, "StreamReader is nil"},
		{"nil *Stream", (*Stream)(nil), sh, nil, "StreamReader is nil"},
		{"empty ShardID", s, Shard{}, nil, "ShardID"},
		{"empty range", s, Shard{ShardID: sh.ShardID, HashKeyRange: HashKeyRange{StartingHashKey: MaxHashKey()}}, nil, "340282366920938463463374607431768211455"},
		{"negative idle wait", s, sh, []ReaderOption{WithReaderIdleWait(-time.Second)}, "-1s"},
		{"batch limit 0", s, sh, []ReaderOption{WithReaderBatchLimit(0)}, "batch limit 0"},
		{"batch limit 10001", s, sh, []ReaderOption{WithReaderBatchLimit(10_001)}, "batch limit 10001"},
		{"batch limit -1", s, sh, []ReaderOption{WithReaderBatchLimit(-1)}, "batch limit -1"},
		{"negative calls", s, sh, []ReaderOption{WithReaderRate(-1, 0)}, "-1 calls/s"},
		{"negative bytes", s, sh, []ReaderOption{WithReaderRate(5, -2)}, "-2 bytes/s"},
		{"zero max backoff", s, sh, []ReaderOption{WithReaderMaxBackoff(0)}, "0s"},
		{"negative max backoff", s, sh, []ReaderOption{WithReaderMaxBackoff(-time.Millisecond)}, "-1ms"},
		{"bad option first", s, sh, []ReaderOption{WithReaderBatchLimit(0), WithReaderBatchLimit(5)}, "batch limit 0"},
		{"nil option", s, sh, []ReaderOption{WithReaderBatchLimit(5), nil}, "option 1 is nil"},
		{"checkpoint without sequence number", s, sh, []ReaderOption{WithReaderCheckpoint(Checkpoint{SubSequenceNumber: 3})}, "no sequence number"},
		{"checkpoint with negative sub-sequence", s, sh, []ReaderOption{WithReaderCheckpoint(Checkpoint{SequenceNumber: seq, SubSequenceNumber: -1})}, "-1"},
		{"SHARD_END checkpoint with a sequence number", s, sh, []ReaderOption{WithReaderCheckpoint(Checkpoint{SequenceNumber: seq, ShardEnd: true})}, seq.String()},

		{"batch limits 1 and 10000", s, sh, []ReaderOption{WithReaderBatchLimit(1), WithReaderBatchLimit(10_000)}, ""},
		{"zero idle wait and rates", s, sh, []ReaderOption{WithReaderIdleWait(0), WithReaderRate(0, 0)}, ""},
		{"nil logger", s, sh, []ReaderOption{WithReaderLogger(nil)}, ""},
		{"ShardID only", s, Shard{ShardID: sh.ShardID}, nil, ""},
		{"checkpoint", s, sh, []ReaderOption{WithReaderCheckpoint(Checkpoint{SequenceNumber: seq, SubSequenceNumber: 2})}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewShardReader(tc.src, tc.shard, tc.opts...)
			if tc.inMsg == "" {
				require.NoError(t, err)
				require.NotNil(t, r)
				assert.NoError(t, r.Close())
				return
			}
			require.Error(t, err)
			assert.Nil(t, r)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			assert.ErrorContains(t, err, tc.inMsg)
		})
	}
}

// TestShardReaderCanceledAtTip: a context canceled while the reader waits at
// the tip ends Next at once with context.Canceled; the reader can be used
// again with another context.
func TestShardReaderCanceledAtTip(t *testing.T) {
	for _, path := range srPaths {
		t.Run(path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				putString(t, s, "k", "r0")
				src, _ := srSource(s, path)
				r := srNewReader(t, src, srShards(t, s)[0])
				srReadN(t, r, 1)

				ctx, cancel := context.WithCancel(t.Context())
				done := srNextAsync(ctx, r)
				time.Sleep(2500 * time.Millisecond) // the poller is idle between calls
				synctest.Wait()
				canceled := time.Now()
				cancel()
				res := <-done
				assert.ErrorIs(t, res.err, context.Canceled)
				assert.Equal(t, canceled, res.at, "returned at once")
				assert.Empty(t, res.views)

				out := putString(t, s, "k", "r1")
				got, _ := srReadN(t, r, 1)
				assert.Equal(t, []srView{{Data: "r1", Seq: out.SequenceNumber}}, got)
			})
		})
	}
}

// TestShardReaderCloseUnregisters: Close removes the reader's wake-up
// registration from the shard, whether it waited at the tip or returned
// records last, and leaves other readers' registrations alone; Next then
// fails with ErrClosed.
func TestShardReaderCloseUnregisters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		sh := srShards(t, s)[0]
		putString(t, s, "k", "r0")
		putString(t, s, "k", "r1")

		waiting, err := NewShardReader(s, sh)
		require.NoError(t, err)
		srReadN(t, waiting, 2)
		ctx, cancel := context.WithCancel(t.Context())
		done := srNextAsync(ctx, waiting)
		synctest.Wait()
		cancel()
		require.ErrorIs(t, (<-done).err, context.Canceled)
		require.Equal(t, 1, srWaiters(t, s, sh.ShardID), "the reader waited for a write")

		reading, err := NewShardReader(s, sh, WithReaderBatchLimit(1))
		require.NoError(t, err)
		srReadN(t, reading, 1) // not at the tip
		other := srNewReader(t, s, sh)
		srReadN(t, other, 2)
		srNoMore(t, other)
		before := srWaiters(t, s, sh.ShardID)
		require.GreaterOrEqual(t, before, 2)

		require.NoError(t, waiting.Close())
		require.NoError(t, reading.Close())
		require.NoError(t, reading.Close(), "Close twice")
		assert.Equal(t, 1, srWaiters(t, s, sh.ShardID), "only the open reader is left")
		require.NoError(t, other.Close())
		assert.Zero(t, srWaiters(t, s, sh.ShardID))

		start := time.Now()
		_, err = waiting.Next(t.Context())
		assert.ErrorIs(t, err, ErrClosed, "Next after Close")
		assert.Equal(t, start, time.Now())
		assert.Zero(t, srWaiters(t, s, sh.ShardID), "Next after Close registers nothing")

		polling := srNewReader(t, &srPoller{s: s}, sh)
		srReadN(t, polling, 2)
		assert.Zero(t, srWaiters(t, s, sh.ShardID), "a polling reader never registers")
	})
}
