package runnel

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
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
	events     []string // "worker shard event"
	checkpoint bool     // checkpoint after every batch
	lostErrs   []error  // errors of checkpoints tried in LeaseLost
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
	cp     *Checkpointer
}

func (p *recProcessor) Initialize(_ context.Context, in InitializeInput) error {
	p.r.event(p.worker, p.shard, "init "+in.Checkpoint.String())
	return nil
}

func (p *recProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	p.cp = in.Checkpointer
	p.r.mu.Lock()
	for _, u := range in.Records {
		p.r.got = append(p.r.got, delivery{p.worker, p.shard, u.PartitionKey, string(u.Data), checkpointOf(&u)})
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
