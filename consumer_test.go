package runnel

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// delivery is one user record a test processor received.
type delivery struct {
	worker string
	shard  string
	key    string
	data   string
	at     Checkpoint
}

// recorder is a test application: it records every user record delivered
// to any of its processors, and checkpoints after every batch unless told
// not to.
type recorder struct {
	mu         sync.Mutex
	got        []delivery
	events     []string                // "worker shard event"
	checkpoint bool                    // checkpoint after every batch
	lostErrs   []error                 // errors of checkpoints tried in LeaseLost
	cps        map[string]Checkpointer // the last checkpointer of each "worker shard"
}

func (r *recorder) factory(worker string) func(string) RecordProcessor {
	return func(shardID string) RecordProcessor {
		return &recProcessor{r: r, worker: worker, shard: shardID}
	}
}

func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recorder) event(worker, shard, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, worker+" "+shard+" "+what)
}

type recProcessor struct {
	r      *recorder
	worker string
	shard  string
	cp     Checkpointer
}

func (p *recProcessor) Initialize(_ context.Context, in InitializeInput) error {
	p.r.event(p.worker, p.shard, "init "+in.Checkpoint.String())
	return nil
}

func (p *recProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	p.cp = in.Checkpointer
	p.r.mu.Lock()
	if p.r.cps == nil {
		p.r.cps = map[string]Checkpointer{}
	}
	p.r.cps[p.worker+" "+p.shard] = in.Checkpointer
	for _, u := range in.Records {
		p.r.got = append(p.r.got, delivery{p.worker, p.shard, u.PartitionKey, string(u.Data), u.Checkpoint()})
	}
	checkpoint := p.r.checkpoint
	p.r.mu.Unlock()
	if checkpoint {
		return in.Checkpointer.Checkpoint(ctx)
	}
	return nil
}

func (p *recProcessor) LeaseLost(ctx context.Context, _ LeaseLostInput) {
	p.r.event(p.worker, p.shard, "lost")
	if p.cp != nil {
		err := p.cp.Checkpoint(ctx)
		p.r.mu.Lock()
		p.r.lostErrs = append(p.r.lostErrs, err)
		p.r.mu.Unlock()
	}
}

func (p *recProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	p.r.event(p.worker, p.shard, "ended")
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *recProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	p.r.event(p.worker, p.shard, "shutdown")
	return in.Checkpointer.Checkpoint(ctx)
}

// startWorker starts a consumer worker closed at the test's end.
func startWorker(t *testing.T, src StreamReader, store LeaseStore, r *recorder, id string, opts ...ConsumerOption) *Consumer {
	t.Helper()
	opts = append([]ConsumerOption{WithLeaseStore(store), WithWorkerID(id)}, opts...)
	c, err := NewConsumer(src, "test-app", r.factory(id), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// putKeys writes n records over keys k0…k(keys-1), data "key:i" numbered
// per key, and returns how many records each key got.
func putKeys(t *testing.T, s *Stream, n, keys int, next map[string]int) {
	t.Helper()
	for i := range n {
		k := "k" + strconv.Itoa(i%keys)
		putString(t, s, k, fmt.Sprintf("%s:%d", k, next[k]))
		next[k]++
	}
}

// settle lets a bubble's readers, paced by the stream's read limits,
// catch up: a second of virtual time, then until every goroutine waits.
func settle() {
	time.Sleep(time.Second)
	synctest.Wait()
}

// heldCounts returns how many leases each worker holds.
func heldCounts(cs ...*Consumer) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.Stats().LeasesHeld
	}
	return out
}

// checkOrderNoLoss asserts that every key's records were delivered in
// order from 0 to want[key]-1, allowing redeliveries only as a replay of a
// suffix (at least once), and returns the number of duplicates.
func checkOrderNoLoss(t *testing.T, got []delivery, want map[string]int) int {
	t.Helper()
	seen := map[string]map[int]bool{}
	last := map[string]int{}
	dups := 0
	for _, d := range got {
		colon := len(d.data) - 1
		for d.data[colon] != ':' {
			colon--
		}
		k, i := d.data[:colon], atoi(t, d.data[colon+1:])
		if seen[k] == nil {
			seen[k] = map[int]bool{}
			last[k] = -1
		}
		if seen[k][i] {
			dups++
		} else {
			require.Equal(t, last[k]+1, i, "key %s: record %d delivered after %d, skipping some", k, i, last[k])
		}
		if i > last[k] {
			last[k] = i
		}
		seen[k][i] = true
	}
	for k, n := range want {
		assert.Equal(t, n, len(seen[k]), "key %s: distinct records delivered", k)
	}
	return dups
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func TestConsumerThreeWorkersShareEightShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(8))
		store := NewMemoryLeaseStore()
		r := &recorder{checkpoint: true}
		want := map[string]int{}
		ws := []*Consumer{
			startWorker(t, s, store, r, "w1"),
			startWorker(t, s, store, r, "w2"),
			startWorker(t, s, store, r, "w3"),
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		counts := heldCounts(ws...)
		slices.Sort(counts)
		assert.Equal(t, []int{2, 3, 3}, counts, "leases per worker")
		putKeys(t, s, 800, 40, want)
		settle()
		assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want), "duplicates without any failover")
	})
}

func TestConsumerFailoverAfterCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(4))
		store := NewMemoryLeaseStore()
		r := &recorder{checkpoint: true}
		want := map[string]int{}
		a := startWorker(t, s, store, r, "a")
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, 4, a.Stats().LeasesHeld)
		b := startWorker(t, s, store, r, "b")
		time.Sleep(30 * time.Second) // b steals its half
		synctest.Wait()
		require.Equal(t, []int{2, 2}, heldCounts(a, b))

		// Records, half checkpointed; then more that nobody checkpoints.
		putKeys(t, s, 200, 20, want)
		settle()
		r.mu.Lock()
		r.checkpoint = false
		r.mu.Unlock()
		checkpointed := len(r.deliveries())
		putKeys(t, s, 200, 20, want)
		settle()
		before := r.deliveries()
		var aAfter []delivery // what a processed after its last checkpoint
		for _, d := range before[checkpointed:] {
			if d.worker == "a" {
				aAfter = append(aAfter, d)
			}
		}
		require.NotEmpty(t, aAfter)

		start := time.Now()
		a.stop(true) // crash: no checkpoint, no release
		for b.Stats().LeasesHeld < 4 {
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		failover := 10 * time.Second
		assert.LessOrEqual(t, took, failover+failover/3, "takeover time")
		t.Logf("every lease taken over %v (virtual) after the crash", took)
		settle()
		all := r.deliveries()
		var redelivered []delivery
		for _, d := range all[len(before):] {
			redelivered = append(redelivered, delivery{worker: "a", shard: d.shard, key: d.key, data: d.data, at: d.at})
		}
		assert.ElementsMatch(t, aAfter, redelivered, "the duplicates are exactly the records after the last checkpoint")
		checkOrderNoLoss(t, all, want)
	})
}

func TestConsumerStaleOwnerCannotCheckpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		store := NewMemoryLeaseStore()
		r := &recorder{}
		a := startWorker(t, s, store, r, "a")
		want := map[string]int{}
		putKeys(t, s, 10, 2, want)
		settle()
		require.Equal(t, 1, a.Stats().LeasesHeld)

		// Another worker takes the lease behind a's back, as after a pause of
		// a longer than the failover time.
		leases, err := store.ListLeases(context.Background())
		require.NoError(t, err)
		l := leases[0]
		l.Owner, l.Counter = "b", l.Counter+1
		require.NoError(t, store.PutLease(context.Background(), l, l.Counter-1))

		// a's processor still holds its Checkpointer: its checkpoint is
		// refused and writes nothing.
		r.mu.Lock()
		cp := r.cps["a "+l.ShardID]
		r.mu.Unlock()
		require.NotNil(t, cp)
		err = cp.Checkpoint(context.Background())
		require.ErrorIs(t, err, ErrLeaseLost)
		after, err := store.ListLeases(context.Background())
		require.NoError(t, err)
		assert.Equal(t, l, after[0], "the new owner's lease is untouched")
		settle()
		assert.Equal(t, 0, a.Stats().LeasesHeld)
		assert.Equal(t, int64(1), a.Stats().LeasesLost)
		assert.Contains(t, r.events, "a "+l.ShardID+" lost")
		require.Len(t, r.lostErrs, 1)
		assert.ErrorIs(t, r.lostErrs[0], ErrLeaseLost, "checkpointing in LeaseLost fails")
	})
}

func TestConsumerCloseHandsOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()))
		store := NewMemoryLeaseStore()
		r := &recorder{} // checkpoints only on shutdown
		want := map[string]int{}
		a := startWorker(t, s, store, r, "a")
		settle()
		putKeys(t, s, 100, 10, want)
		settle()
		require.NoError(t, a.Close())
		require.NoError(t, a.Close(), "Close twice")
		leases, err := store.ListLeases(context.Background())
		require.NoError(t, err)
		for _, l := range leases {
			assert.Empty(t, l.Owner, "lease %s released", l.ShardID)
			assert.False(t, l.Checkpoint.IsZero(), "lease %s checkpointed on shutdown", l.ShardID)
		}
		// b takes every lease at once, not after the failover time, and
		// redelivers nothing.
		start := time.Now()
		b := startWorker(t, s, store, r, "b")
		synctest.Wait()
		assert.Equal(t, 4, b.Stats().LeasesHeld)
		assert.Less(t, time.Since(start), time.Second)
		putKeys(t, s, 100, 10, want)
		settle()
		assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want))
	})
}

func TestConsumerInitialPosition(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pos   func(t0 time.Time) StartingPosition
		first int // index of the first record delivered
	}{
		{"trim horizon", func(time.Time) StartingPosition { return StartingPosition{Type: TrimHorizon} }, 0},
		{"latest", func(time.Time) StartingPosition { return StartingPosition{Type: Latest} }, 20},
		{"at timestamp", func(t0 time.Time) StartingPosition {
			return StartingPosition{Type: AtTimestamp, Timestamp: t0.Add(5 * time.Second)}
		}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
				t0 := time.Now()
				want := map[string]int{}
				putKeys(t, s, 10, 1, want) // k0:0…9 at t0
				time.Sleep(10 * time.Second)
				putKeys(t, s, 10, 1, want)   // k0:10…19 at t0+10s
				time.Sleep(time.Millisecond) // LATEST is fixed to the millisecond
				r := &recorder{}
				startWorker(t, s, NewMemoryLeaseStore(), r, "a", WithInitialPosition(tc.pos(t0)))
				settle()
				putKeys(t, s, 5, 1, want) // k0:20…24
				settle()
				got := r.deliveries()
				require.NotEmpty(t, got)
				assert.Equal(t, fmt.Sprintf("k0:%d", tc.first), got[0].data)
				assert.Equal(t, "k0:24", got[len(got)-1].data)
				assert.Len(t, got, 25-tc.first)
			})
		})
	}
}

// failingProcessor fails ProcessRecords the first n times.
type failingProcessor struct {
	recProcessor
	fails *int
}

func (p *failingProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	p.r.mu.Lock()
	fail := *p.fails > 0
	if fail {
		*p.fails--
	}
	p.r.mu.Unlock()
	if fail {
		return fmt.Errorf("the database is down")
	}
	return p.recProcessor.ProcessRecords(ctx, in)
}

func TestConsumerProcessorErrorRedelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		r := &recorder{checkpoint: true}
		fails := 2
		c, err := NewConsumer(s, "test-app", func(id string) RecordProcessor {
			return &failingProcessor{recProcessor{r: r, worker: "a", shard: id}, &fails}
		}, WithFailoverTime(3*time.Second))
		require.NoError(t, err)
		defer c.Close()
		want := map[string]int{}
		putKeys(t, s, 10, 2, want)
		time.Sleep(10 * time.Second) // the lease is released and taken again
		synctest.Wait()
		assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want), "the failed batches were not processed, so not duplicated")
		st := c.Stats()
		assert.Equal(t, int64(2), st.ProcessorErrors)
		assert.Equal(t, int64(3), st.LeasesTaken)
		assert.Equal(t, 1, st.LeasesHeld)
	})
}

func TestNewConsumerValidation(t *testing.T) {
	_, s := newTestStream(t)
	f := func(string) RecordProcessor {
		return ProcessorFunc(func(context.Context, ProcessRecordsInput) error { return nil })
	}
	for _, tc := range []struct {
		name  string
		src   StreamReader
		app   string
		f     func(string) RecordProcessor
		opts  []ConsumerOption
		inMsg string
	}{
		{"nil reader", nil, "app", f, nil, "StreamReader is nil"},
		{"nil *Stream", (*Stream)(nil), "app", f, nil, "StreamReader is nil"},
		{"nil factory", s, "app", nil, nil, "factory is nil"},
		{"short app", s, "ab", f, nil, `"ab" is 2 characters`},
		{"bad app", s, "my app", f, nil, `character ' '`},
		{"nil store", s, "app", f, []ConsumerOption{WithLeaseStore(nil)}, "lease store is nil"},
		{"empty worker", s, "app", f, []ConsumerOption{WithWorkerID("")}, "worker id is empty"},
		{"failover", s, "app", f, []ConsumerOption{WithFailoverTime(time.Millisecond)}, "1ms"},
		{"sync", s, "app", f, []ConsumerOption{WithShardSyncInterval(0)}, "0s"},
		{"position", s, "app", f, []ConsumerOption{WithInitialPosition(StartingPosition{Type: AtSequenceNumber})}, "AT_SEQUENCE_NUMBER"},
		{"timestamp", s, "app", f, []ConsumerOption{WithInitialPosition(StartingPosition{Type: AtTimestamp})}, "Timestamp"},
		{"reader option", s, "app", f, []ConsumerOption{WithReaderOptions(WithReaderBatchLimit(0))}, "batch limit 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewConsumer(tc.src, tc.app, tc.f, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.inMsg)
		})
	}
}

func TestConsumerRestartFromFileStoreMidAggregate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		ctx := context.Background()
		var users []UserRecord
		for i := range 10 {
			users = append(users, UserRecord{PartitionKey: "k" + strconv.Itoa(i), Data: []byte(strconv.Itoa(i))})
		}
		agg, err := Aggregate(users)
		require.NoError(t, err)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "agg", Data: agg})
		require.NoError(t, err)
		putString(t, s, "plain", "10")
		path := t.TempDir() + "/leases.json"

		run := func(process func(ctx context.Context, in ProcessRecordsInput) error) *Consumer {
			store, err := OpenFileLeaseStore(path)
			require.NoError(t, err)
			t.Cleanup(func() { store.Close() })
			c, err := NewConsumer(s, "test-app", func(string) RecordProcessor { return ProcessorFunc(process) },
				WithLeaseStore(store), WithWorkerID("the-service"))
			require.NoError(t, err)
			return c
		}
		// The first run checkpoints at user record 4 of the aggregate, then
		// dies before its next checkpoint.
		var first []string
		c := run(func(ctx context.Context, in ProcessRecordsInput) error {
			for _, u := range in.Records {
				first = append(first, string(u.Data))
			}
			return in.Checkpointer.CheckpointAt(ctx, in.Records[4].Checkpoint())
		})
		settle()
		c.stop(true)
		require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}, first)

		// The restarted service resumes at user record 5, not after the
		// whole aggregate.
		var second []string
		c = run(func(ctx context.Context, in ProcessRecordsInput) error {
			for _, u := range in.Records {
				second = append(second, string(u.Data))
			}
			return nil
		})
		settle()
		c.Close()
		assert.Equal(t, []string{"5", "6", "7", "8", "9", "10"}, second)
	})
}

// flakyStore is a lease store whose calls fail while down is set, as a
// worker cut off from its lease table sees it.
type flakyStore struct {
	LeaseStore
	down atomic.Bool
}

func (f *flakyStore) err() error {
	return errorf("PutLease", ErrInternalFailure, "the lease table is unreachable")
}

func (f *flakyStore) ListLeases(ctx context.Context) ([]Lease, error) {
	if f.down.Load() {
		return nil, f.err()
	}
	return f.LeaseStore.ListLeases(ctx)
}

func (f *flakyStore) PutLease(ctx context.Context, l Lease, expect int64) error {
	if f.down.Load() {
		return f.err()
	}
	return f.LeaseStore.PutLease(ctx, l, expect)
}

// TestConsumerCutOffWorkerStopsBeforeTakeover: a worker whose lease table
// is unreachable stops processing before another worker takes its
// shards, so that no shard is ever processed by two workers at once.
func TestConsumerCutOffWorkerStopsBeforeTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
		store := NewMemoryLeaseStore()
		flaky := &flakyStore{LeaseStore: store}
		r := &recorder{checkpoint: true}
		a := startWorker(t, s, flaky, r, "a")
		settle()
		require.Equal(t, 2, a.Stats().LeasesHeld)
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		want := map[string]int{}
		var mu sync.Mutex
		wg.Go(func() { // a record every 100 ms
			for ctx.Err() == nil {
				mu.Lock()
				putKeys(t, s, 1, 4, want)
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
		})
		time.Sleep(2 * time.Second)
		flaky.down.Store(true)
		b := startWorker(t, s, store, r, "b")
		time.Sleep(30 * time.Second)
		stop()
		wg.Wait()
		settle()
		assert.Equal(t, 2, b.Stats().LeasesHeld)
		// a gave both up: lost when not renewed in time, or released after
		// its processor's checkpoint failed.
		assert.Equal(t, 0, a.Stats().LeasesHeld)
		// Per shard, a's deliveries all come before b's first one.
		got := r.deliveries()
		lastA, firstB := map[string]int{}, map[string]int{}
		for i, d := range got {
			if d.worker == "a" {
				lastA[d.shard] = i
			} else if _, ok := firstB[d.shard]; !ok {
				firstB[d.shard] = i
			}
		}
		for shard, fb := range firstB {
			assert.Less(t, lastA[shard], fb, "shard %s: a processed a record after b started", shard)
		}
		mu.Lock()
		defer mu.Unlock()
		checkOrderNoLoss(t, got, want)
	})
}

func TestConsumerCloseCancelsStuckProcessors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		c, err := NewConsumer(s, "test-app", func(string) RecordProcessor {
			return ProcessorFunc(func(ctx context.Context, in ProcessRecordsInput) error {
				<-ctx.Done()
				return ctx.Err()
			})
		}, WithShutdownTimeout(5*time.Second))
		require.NoError(t, err)
		putString(t, s, "k", "v")
		settle()
		start := time.Now()
		require.NoError(t, c.Close())
		assert.Equal(t, 5*time.Second, time.Since(start))
	})
}

func TestNewConsumerNilStream(t *testing.T) {
	var s *Stream
	_, err := NewConsumer(s, "test-app", func(string) RecordProcessor { return nil })
	require.ErrorIs(t, err, ErrInvalidArgument)
}

// TestConsumerLatestAfterReshard: with LATEST, a group that starts on a
// stream resharded before it skips the children's old records too.
func TestConsumerLatestAfterReshard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		_, err := s.UpdateShardCount(context.Background(), 2)
		require.NoError(t, err)
		want := map[string]int{}
		putKeys(t, s, 20, 4, want)
		time.Sleep(time.Millisecond)
		r := &recorder{}
		startWorker(t, s, NewMemoryLeaseStore(), r, "a", WithInitialPosition(StartingPosition{Type: Latest}))
		settle()
		assert.Empty(t, r.deliveries(), "records written before the group started")
		putKeys(t, s, 8, 4, want)
		settle()
		assert.Len(t, r.deliveries(), 8)
	})
}

// logLines is a slog handler's output, safe for concurrent use.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestConsumerObservability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		for i := range 10 { // one record a second
			putString(t, s, "k", strconv.Itoa(i))
			time.Sleep(time.Second)
		}
		var logs logLines
		var c *Consumer
		ready := make(chan struct{}) // c is set
		var behind []int64
		var mu sync.Mutex
		c, err := NewConsumer(s, "test-app", func(string) RecordProcessor {
			return ProcessorFunc(func(ctx context.Context, in ProcessRecordsInput) error {
				<-ready
				mu.Lock()
				defer mu.Unlock()
				behind = append(behind, c.Stats().Shards[0].MillisBehindLatest)
				return in.Checkpointer.Checkpoint(ctx)
			})
		}, WithWorkerID("w"), WithReaderOptions(WithReaderBatchLimit(1)),
			WithConsumerLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		require.NoError(t, err)
		close(ready)
		settle()
		st := c.Stats()
		assert.Equal(t, "w", st.WorkerID)
		assert.Equal(t, 1, st.LeasesHeld)
		assert.Equal(t, int64(1), st.LeasesTaken)
		assert.Equal(t, int64(10), st.RecordsProcessed)
		assert.Equal(t, int64(10*(1+1)), st.BytesProcessed, "key and data bytes")
		require.Len(t, st.Shards, 1)
		assert.Equal(t, int64(10), st.Shards[0].RecordsProcessed)
		assert.False(t, st.Shards[0].Checkpoint.IsZero())
		mu.Lock()
		require.Len(t, behind, 10)
		assert.GreaterOrEqual(t, behind[0], int64(9000), "the first record is 10 s old, the newest 1 s")
		assert.Equal(t, int64(0), behind[9], "caught up")
		mu.Unlock()
		require.NoError(t, c.Close())
		out := logs.String()
		for _, event := range []string{"lease taken", "lease released"} {
			assert.Contains(t, out, event)
		}
		assert.Contains(t, out, "worker=w")
	})
}

// slowStore is a lease store whose every call takes a while.
type slowStore struct {
	LeaseStore
	delay time.Duration
}

func (s slowStore) ListLeases(ctx context.Context) ([]Lease, error) {
	time.Sleep(s.delay)
	return s.LeaseStore.ListLeases(ctx)
}

func (s slowStore) PutLease(ctx context.Context, l Lease, expect int64) error {
	time.Sleep(s.delay)
	return s.LeaseStore.PutLease(ctx, l, expect)
}

// TestConsumerSlowStore: a lease store that answers in a second still
// works, and virtual time goes on while writes are in flight.
func TestConsumerSlowStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
		r := &recorder{checkpoint: true}
		want := map[string]int{}
		startWorker(t, s, slowStore{NewMemoryLeaseStore(), time.Second}, r, "a")
		for range 10 {
			putKeys(t, s, 4, 4, want)
			time.Sleep(3 * time.Second)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, 0, checkOrderNoLoss(t, r.deliveries(), want))
	})
}

// TestConsumerDuplicateWorkerID: two live workers with one id do not both
// process a shard.
func TestConsumerDuplicateWorkerID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		store := NewMemoryLeaseStore()
		r := &recorder{checkpoint: true}
		a := startWorker(t, s, store, r, "same")
		settle()
		b := startWorker(t, s, store, r, "same")
		want := map[string]int{}
		for range 20 {
			putKeys(t, s, 2, 2, want)
			time.Sleep(3 * time.Second)
		}
		settle()
		assert.Equal(t, 1, a.Stats().LeasesHeld+b.Stats().LeasesHeld, "one of them holds the lease")
		assert.LessOrEqual(t, checkOrderNoLoss(t, r.deliveries(), want), 2, "at most the batch in flight when the conflict showed")
	})
}

// TestConsumerLeaseKCLFields: the leases carry what the KCL's lease table
// keeps beside the checkpoint: the shard's hash key range from its
// creation, the children with the SHARD_END checkpoint, and the owner
// switches since the last checkpoint (counted when a lease is stolen from
// a live owner, reset by a checkpoint).
func TestConsumerLeaseKCLFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		store := NewMemoryLeaseStore()
		r := &recorder{checkpoint: true}
		want := map[string]int{}
		putKeys(t, s, 40, 10, want)
		startWorker(t, s, store, r, "a")
		settle()
		shards, err := s.ListShards(t.Context(), ListShardsInput{})
		require.NoError(t, err)
		parent := shards.Shards[0]
		require.NoError(t, s.SplitShard(t.Context(), parent.ShardID, parent.HashKeyRange.Mid()))
		time.Sleep(time.Minute)
		synctest.Wait()

		leases, err := store.ListLeases(t.Context())
		require.NoError(t, err)
		byID := map[string]Lease{}
		for _, l := range leases {
			byID[l.ShardID] = l
		}
		p := byID[parent.ShardID]
		assert.True(t, p.Checkpoint.ShardEnd)
		assert.Equal(t, parent.HashKeyRange, p.HashKeyRange)
		assert.Len(t, p.ChildShardIDs, 2, "the children are recorded with SHARD_END")
		for _, id := range p.ChildShardIDs {
			assert.Equal(t, []string{parent.ShardID}, byID[id].ParentShardIDs)
		}

		// b steals from a, which is alive: an owner switch; the next
		// checkpoint resets the count.
		b := startWorker(t, s, store, r, "b")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Positive(t, b.Stats().LeasesStolen)
		leases, err = store.ListLeases(t.Context())
		require.NoError(t, err)
		switched := 0
		for _, l := range leases {
			if l.Owner == "b" {
				switched += int(l.OwnerSwitchesSinceCheckpoint)
			}
		}
		assert.Positive(t, switched, "a stolen lease counts an owner switch")
		putKeys(t, s, 200, 10, want)
		settle()
		leases, err = store.ListLeases(t.Context())
		require.NoError(t, err)
		for _, l := range leases {
			if l.Owner == "b" && !l.Checkpoint.ShardEnd {
				assert.Zero(t, l.OwnerSwitchesSinceCheckpoint, "a checkpoint resets the count of %s", l.ShardID)
			}
		}
		checkOrderNoLoss(t, r.deliveries(), want)
	})
}

// A lease can say AT_TIMESTAMP without a time, as a KCL worker writes it
// into its lease table: the group's initial position supplies the time, or
// the lease is not read and the error is counted.
func TestConsumerLeaseAtTimestampWithoutTime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial StartingPosition
	}{
		{"GroupAtTimestamp", StartingPosition{Type: AtTimestamp}}, // Timestamp set below
		{"GroupAtTrimHorizon", StartingPosition{Type: TrimHorizon}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1))
				shards, err := s.ListShards(t.Context(), ListShardsInput{})
				require.NoError(t, err)
				store := NewMemoryLeaseStore()
				kcl := Lease{ShardID: shards.Shards[0].ShardID, Counter: 1, Start: StartingPosition{Type: AtTimestamp}}
				require.NoError(t, store.PutLease(t.Context(), kcl, 0))
				putString(t, s, "early", "before")
				time.Sleep(time.Second)
				mark := time.Now()
				time.Sleep(time.Second)
				putString(t, s, "late", "after")

				initial := tc.initial
				if initial.Type == AtTimestamp {
					initial.Timestamp = mark
				}
				r := &recorder{checkpoint: true}
				c := startWorker(t, s, store, r, "a", WithInitialPosition(initial))
				settle()
				var got []string
				for _, d := range r.deliveries() {
					got = append(got, d.data)
				}
				if initial.Type == AtTimestamp {
					assert.Equal(t, []string{"after"}, got, "the group's timestamp is the lease's")
					assert.Zero(t, c.Stats().ProcessorErrors)
					return
				}
				assert.Empty(t, got)
				st := c.Stats()
				assert.Positive(t, st.ProcessorErrors, "the shard that cannot be started is an error")
				require.ErrorIs(t, st.LastError, ErrInvalidArgument)
				assert.Contains(t, st.LastError.Error(), kcl.ShardID, "the error names the lease")
				assert.Contains(t, st.LastError.Error(), "AT_TIMESTAMP with no timestamp, which a group started at TRIM_HORIZON cannot supply")
			})
		})
	}
}

// A worker that cannot reach its stream keeps trying, and says so in its
// stats: a deleted stream here, as a misspelt name or missing credentials
// would be.
func TestConsumerStatsShowRetriedErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cluster, s := newTestStream(t)
		require.NoError(t, cluster.DeleteStream(t.Context(), s.Name()))
		c := startWorker(t, s, NewMemoryLeaseStore(), &recorder{}, "a", WithShardSyncInterval(5*time.Second))
		assert.NoError(t, c.Stats().LastError)
		time.Sleep(time.Minute)
		synctest.Wait()
		st := c.Stats()
		assert.Greater(t, st.RetriedErrors, int64(1), "it keeps trying")
		require.ErrorIs(t, st.LastError, ErrResourceNotFound)
		assert.Contains(t, st.LastError.Error(), s.Name())
	})
	// The shard readers' retries count too.
	synctest.Test(t, func(t *testing.T) {
		cluster, s := newTestStream(t, WithShardCount(1))
		fault, err := cluster.InjectFaultTracked(Fault{Op: OpGetRecords, Err: ErrProvisionedThroughputExceeded, Times: 3})
		require.NoError(t, err)
		r := &recorder{checkpoint: true}
		want := map[string]int{}
		putKeys(t, s, 10, 2, want)
		c := startWorker(t, s, NewMemoryLeaseStore(), r, "a")
		time.Sleep(time.Minute)
		synctest.Wait()
		require.True(t, fault.Spent())
		checkOrderNoLoss(t, r.deliveries(), want)
		st := c.Stats()
		assert.EqualValues(t, 3, st.RetriedErrors, "each throttled GetRecords")
		require.ErrorIs(t, st.LastError, ErrProvisionedThroughputExceeded)
	})
}
