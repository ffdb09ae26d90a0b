package runnel

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Property tests of a consumer group across resharding. A writer puts
// records "key:n" for 50 keys while the stream splits, merges and changes
// its shard count at random, and one to three workers, joining at random
// moments, consume with a checkpoint after every batch. Variants write
// through a Producer, read through a polling StreamReader of wire values,
// let a worker leave or crash, inject read faults, or make each resharding
// take time. Each run checks, from logs of every processor call:
//
//   - every key's records were delivered in order and none was lost;
//   - every record was in exactly one batch whose checkpoint succeeded,
//     and came from one shard only; a batch whose checkpoint failed (its
//     processor had lost the lease) belongs to a shard whose lease moved,
//     at most one per move; so every duplicate is a redelivery after a
//     lease move, and with one worker there are none;
//   - no child shard's processor was initialized before the checkpointed
//     ShardEnded of each of its parents (both, for a merge), with the
//     lineage from ListShards;
//   - with a Producer as the writer, every user record id it reported was
//     delivered with its data, and the user records that its generic path
//     stored in the wrong child (an outdated shard map) were dropped by
//     the readers and sent again.
//
// Every run is in virtual time, in a synctest bubble of its own per seed.

// crSeeds are the seeds of every property.
var crSeeds = []uint64{1, 7, 42, 2026, 90210}

const (
	crKeys       = 50 // partition keys k0 … k49
	crMaxShards  = 8  // open shards the random resharding keeps at most
	crMaxUpdates = 8  // UpdateShardCount calls per run, below the default limit of 10 a day
)

// crScenario is one configuration of a run.
type crScenario struct {
	workers  int   // 1 to 3; the first starts at once, the others at random steps
	ops      int   // random resharding operations
	script   []int // instead of ops: UpdateShardCount targets, in order
	wire     bool  // consume through crWire (the polling path) instead of *Stream
	producer bool  // write through a Producer with aggregation and record ids
	generic  bool  // the producer's generic path, with WithStrictOrder
	// late starts every worker only after the last resharding, with a
	// backlog of closed shards to work through in lineage order.
	late bool
	// leave makes the first worker leave in the second half of the run:
	// "close" (Close: its processors checkpoint and release their leases)
	// or "crash" (no processor call, no lease write: the others wait out
	// the failover time).
	leave string
	// faults injects, at random steps, a few retryable failures, expired
	// iterators or slow calls of GetRecords and GetShardIterator.
	faults bool
	// fanOut makes the workers read with enhanced fan-out (WithFanOut)
	// instead of polling; with faults, SubscribeToShard fails at times too.
	fanOut bool
	// batchLimit is WithReaderBatchLimit for the readers (0: the default).
	batchLimit int
	// reshardDuration is WithReshardDuration: each split or merge keeps the
	// stream UPDATING this long, and the next resharding waits it out.
	reshardDuration time.Duration
}

// crEvent is one processor call, in the probe's global order.
type crEvent struct {
	seq    int       // index in the probe's log
	at     time.Time // virtual time of the call
	worker string
	shard  string
	kind   string // "init", "batch" (an instance's first), "ended", "lost", "shutdown"
	ok     bool   // for "ended": the processor checkpointed the end
}

// crBatch is one batch a processor was handed.
type crBatch struct {
	worker, shard string
	data          []string
	checkpointed  bool // the checkpoint after it succeeded
}

// crProbe logs the lifecycle calls of every processor of a group in one
// sequence, the batches, and the record ids delivered.
type crProbe struct {
	mu      sync.Mutex
	events  []crEvent
	batches []crBatch
	ids     map[string]int    // RecordID → deliveries
	idData  map[string]string // RecordID → the data delivered with it
	idBad   []string          // an id delivered with other data than before
}

func newCrProbe() *crProbe {
	return &crProbe{ids: map[string]int{}, idData: map[string]string{}}
}

// add logs an event and returns its index.
func (p *crProbe) add(worker, shard, kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := len(p.events)
	p.events = append(p.events, crEvent{seq: i, at: time.Now(), worker: worker, shard: shard, kind: kind})
	return i
}

func (p *crProbe) markOK(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events[i].ok = true
}

func (p *crProbe) delivered(worker, shard string, recs []UserRecord, checkpointed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := crBatch{worker: worker, shard: shard, checkpointed: checkpointed}
	for i := range recs {
		b.data = append(b.data, string(recs[i].Data))
	}
	p.batches = append(p.batches, b)
	for i := range recs {
		id := recs[i].RecordID
		if id == "" {
			continue
		}
		p.ids[id]++
		data := string(recs[i].Data)
		if old, ok := p.idData[id]; ok && old != data {
			p.idBad = append(p.idBad, fmt.Sprintf("record id %s delivered with %q and with %q", id, old, data))
		}
		p.idData[id] = data
	}
}

func (p *crProbe) log() []crEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *crProbe) handed() []crBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.batches)
}

// crProcessor wraps a recorder's processor and logs its calls in a probe.
// ShardEnded is logged on entry, so that a child started after the
// parent's end checkpoint (written inside the call) is always logged after
// it.
type crProcessor struct {
	inner   RecordProcessor
	probe   *crProbe
	worker  string
	shard   string
	batched bool
}

func (p *crProcessor) Initialize(ctx context.Context, in InitializeInput) error {
	p.probe.add(p.worker, p.shard, "init")
	return p.inner.Initialize(ctx, in)
}

func (p *crProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	if !p.batched {
		p.batched = true
		p.probe.add(p.worker, p.shard, "batch")
	}
	err := p.inner.ProcessRecords(ctx, in) // checkpoints
	p.probe.delivered(p.worker, p.shard, in.Records, err == nil)
	return err
}

func (p *crProcessor) LeaseLost(ctx context.Context, in LeaseLostInput) {
	p.probe.add(p.worker, p.shard, "lost")
	p.inner.LeaseLost(ctx, in)
}

func (p *crProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	i := p.probe.add(p.worker, p.shard, "ended")
	err := p.inner.ShardEnded(ctx, in)
	if err == nil {
		p.probe.markOK(i)
	}
	return err
}

func (p *crProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	p.probe.add(p.worker, p.shard, "shutdown")
	return p.inner.ShutdownRequested(ctx, in)
}

// crStartWorker is startWorker with the recorder's processors wrapped in
// crProcessor.
func crStartWorker(t *testing.T, src StreamReader, store LeaseStore, r *recorder, probe *crProbe, id string, opts ...ConsumerOption) *Consumer {
	t.Helper()
	inner := r.factory(id)
	newProcessor := func(shardID string) RecordProcessor {
		return &crProcessor{inner: inner(shardID), probe: probe, worker: id, shard: shardID}
	}
	opts = append([]ConsumerOption{WithLeaseStore(store), WithWorkerID(id)}, opts...)
	c, err := NewConsumer(src, "test-app", newProcessor, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// crWire is a StreamReader over a *Stream made of the exported API only,
// as an adapter over the AWS SDK would be: iterators and sequence numbers
// cross it as their wire text and records are copied, so a ShardReader
// over it takes the polling path. (reader_test.go has the same seam for
// the black-box tests, in package runnel_test.)
type crWire struct{ s *Stream }

func (w crWire) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	return w.s.ListShards(ctx, in)
}

func (w crWire) GetShardIterator(ctx context.Context, in GetShardIteratorInput) (ShardIterator, error) {
	if n := in.StartingPosition.SequenceNumber; !n.IsZero() {
		parsed, err := ParseSequenceNumber(n.String())
		if err != nil {
			return ShardIterator{}, err
		}
		in.StartingPosition.SequenceNumber = parsed
	}
	it, err := w.s.GetShardIterator(ctx, in)
	if err != nil {
		return ShardIterator{}, err
	}
	return OpaqueShardIterator(it.String()), nil
}

func (w crWire) GetRecords(ctx context.Context, in GetRecordsInput) (GetRecordsOutput, error) {
	in.ShardIterator, in.Buffer = OpaqueShardIterator(in.ShardIterator.String()), nil
	out, err := w.s.GetRecords(ctx, in)
	if err != nil {
		return GetRecordsOutput{}, err
	}
	recs := make([]Record, len(out.Records))
	for i, rec := range out.Records {
		seq, err := ParseSequenceNumber(rec.SequenceNumber.String())
		if err != nil {
			return GetRecordsOutput{}, err
		}
		recs[i] = Record{SequenceNumber: seq, PartitionKey: rec.PartitionKey, Data: slices.Clone(rec.Data),
			ApproximateArrivalTimestamp: rec.ApproximateArrivalTimestamp}
	}
	out.Records = recs
	out.NextShardIterator = OpaqueShardIterator(out.NextShardIterator.String())
	return out, nil
}

// crWriter writes records "key:n", numbered per key, to the stream or
// through a Producer.
type crWriter struct {
	t     *testing.T
	s     *Stream
	p     *Producer
	want  map[string]int // records written per key
	total int

	mu     sync.Mutex
	ids    map[string]string // RecordID → data, from the producer's results
	failed []string
}

func newCrWriter(t *testing.T, s *Stream, sc crScenario) *crWriter {
	t.Helper()
	w := &crWriter{t: t, s: s, want: map[string]int{}, ids: map[string]string{}}
	if !sc.producer {
		return w
	}
	opts := []ProducerOption{WithAggregation(true), WithRecordIDs(true), WithAggregationMaxCount(20), WithCollectionMaxCount(50)}
	if sc.generic {
		opts = append(opts, WithGenericPath(true), WithStrictOrder(true))
	}
	p, err := NewProducer(context.Background(), s, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close(context.Background()) })
	w.p = p
	return w
}

// put writes n records with random keys.
func (w *crWriter) put(rng *rand.Rand, n int) {
	w.t.Helper()
	for range n {
		k := "k" + strconv.Itoa(rng.IntN(crKeys))
		data := fmt.Sprintf("%s:%d", k, w.want[k])
		w.want[k]++
		w.total++
		if w.p == nil {
			putString(w.t, w.s, k, data)
			continue
		}
		err := w.p.Put(context.Background(), ProducerRecord{PartitionKey: k, Data: []byte(data)}, func(res ProducerResult) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if res.Err != nil {
				w.failed = append(w.failed, fmt.Sprintf("%s: %v", data, res.Err))
				return
			}
			w.ids[res.RecordID] = data
		})
		require.NoError(w.t, err)
	}
}

// flush waits for the producer's outcomes.
func (w *crWriter) flush() {
	w.t.Helper()
	if w.p != nil {
		require.NoError(w.t, w.p.Flush(context.Background()))
	}
}

// crWaitActive waits, in virtual time, until a resharding under
// WithReshardDuration has completed.
func crWaitActive(t *testing.T, s *Stream) {
	t.Helper()
	deadline := time.Now().Add(time.Hour)
	for reshardStatus(t, s) != StatusActive {
		require.True(t, time.Now().Before(deadline), "the stream stays UPDATING")
		time.Sleep(50 * time.Millisecond)
	}
}

// crReshard performs a random split (at a random key), merge (of a random
// adjacent pair, in either order) or UpdateShardCount, keeping 1 to
// crMaxShards open shards and at most crMaxUpdates UpdateShardCount calls,
// and names it.
func crReshard(t *testing.T, s *Stream, rng *rand.Rand, updates *int) string {
	t.Helper()
	ctx := context.Background()
	crWaitActive(t, s)
	open := reshardOpen(t, s)
	n := len(open)
	for {
		switch k := rng.IntN(10); {
		case k < 4:
			if n >= crMaxShards {
				continue
			}
			sh := open[rng.IntN(n)]
			key, ok := reshardSplitKey(t, rng, sh)
			if !ok {
				continue
			}
			require.NoError(t, s.SplitShard(ctx, sh.ShardID, key))
			return "split"
		case k < 7:
			if n < 2 {
				continue
			}
			i := rng.IntN(n - 1)
			a, b := open[i].ShardID, open[i+1].ShardID
			if rng.IntN(2) == 0 {
				a, b = b, a
			}
			require.NoError(t, s.MergeShards(ctx, a, b))
			return "merge"
		default:
			if *updates >= crMaxUpdates {
				continue
			}
			lo, hi := (n+1)/2, min(2*n, crMaxShards)
			target := lo + rng.IntN(hi-lo+1)
			_, err := s.UpdateShardCount(ctx, target)
			require.NoError(t, err)
			*updates++
			return fmt.Sprintf("update %d→%d", n, target)
		}
	}
}

// crFaults are the faults a run with faults injects: none of them ends a
// reader (they are retryable, or an expired iterator, which the reader
// replaces), so none may lose or repeat a record.
var crFaults = []Fault{
	{Op: OpGetRecords, Err: ErrExpiredIterator},
	{Op: OpGetRecords, Err: ErrProvisionedThroughputExceeded},
	{Op: OpGetRecords, Err: ErrInternalFailure},
	{Op: OpGetRecords, Latency: 300 * time.Millisecond},
	{Op: OpGetShardIterator, Err: ErrInternalFailure},
	{Op: OpGetShardIterator, Err: ErrProvisionedThroughputExceeded},
	{Op: OpSubscribeToShard, Err: ErrInternalFailure},
	{Op: OpSubscribeToShard, Err: ErrLimitExceeded},
	{Op: OpSubscribeToShard, Latency: 300 * time.Millisecond},
}

// crReport is what a run measured.
type crReport struct {
	records    int // records written
	deliveries int // records delivered, duplicates included
	dups       int
	moves      int // processor instances beyond the first per shard: lease moves
	stolen     int64
	splits     int   // split children in the final listing
	merges     int   // merge children
	pairs      int   // parent → child orders checked
	misplaced  int   // user records stored in a shard that does not own them
	pushed     int64 // records pushed to subscriptions (fan-out)
	read       int64 // records read by GetRecords
	virtual    time.Duration
	ops        map[string]int
}

// crRun runs a scenario with one seed inside a synctest bubble and checks
// every property.
func crRun(t *testing.T, sc crScenario, seed uint64) crReport {
	t.Helper()
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	cluster, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()), WithReshardDuration(sc.reshardDuration))
	store := NewMemoryLeaseStore()
	r := &recorder{checkpoint: true}
	probe := newCrProbe()
	var src StreamReader = s
	opts := []ConsumerOption{WithFailoverTime(3 * time.Second), WithShardSyncInterval(2 * time.Second)}
	if sc.wire {
		src = crWire{s}
		opts = append(opts, WithReaderOptions(WithReaderIdleWait(50*time.Millisecond)))
	}
	if sc.batchLimit > 0 {
		opts = append(opts, WithReaderOptions(WithReaderBatchLimit(sc.batchLimit)))
	}
	if sc.fanOut {
		opts = append(opts, WithFanOut(""))
	}
	w := newCrWriter(t, s, sc)

	steps := sc.ops
	if sc.script != nil {
		steps = len(sc.script)
	}
	joinAt := make([]int, sc.workers) // the first worker joins at step 0
	for i := range joinAt {
		switch {
		case sc.late:
			joinAt[i] = steps
		case i > 0:
			joinAt[i] = 1 + rng.IntN(max(1, steps/2))
		}
	}
	leaveAt := -1
	if sc.leave != "" {
		leaveAt = steps/2 + 1 + rng.IntN(max(1, steps-steps/2-1))
	}
	var workers []*Consumer
	var removeFaults []func()
	rep := crReport{ops: map[string]int{}}
	updates := 0
	for step := 0; step <= steps; step++ {
		for i, at := range joinAt {
			if at == step {
				workers = append(workers, crStartWorker(t, src, store, r, probe, "w"+strconv.Itoa(i+1), opts...))
			}
		}
		switch {
		case step != leaveAt:
		case sc.leave == "close":
			require.NoError(t, workers[0].Close())
		case sc.leave == "crash":
			workers[0].stop(true)
		}
		if sc.faults && rng.IntN(2) == 0 {
			f := crFaults[rng.IntN(len(crFaults))]
			f.Times = 1 + rng.IntN(5)
			removeFaults = append(removeFaults, injectFault(t, cluster, f))
			rep.ops["fault "+f.Op.String()]++
		}
		// A burst of writes, then mostly a pause in which the workers
		// consume, then a resharding, often while records are unread.
		w.put(rng, 20+rng.IntN(100))
		if rng.IntN(3) > 0 {
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		}
		switch {
		case step == steps:
		case sc.script != nil:
			crWaitActive(t, s)
			_, err := s.UpdateShardCount(context.Background(), sc.script[step])
			require.NoError(t, err)
			rep.ops[fmt.Sprint("update→", sc.script[step])]++
		default:
			rep.ops[crReshard(t, s, rng, &updates)]++
		}
	}
	w.flush()
	crWaitActive(t, s)
	all := reshardList(t, s, ShardFilter{})
	reshardCheckLineage(t, all)

	// Wait until every record has been delivered in a batch that was
	// checkpointed (a thief redelivers what its victim could not
	// checkpoint) and every shard processed (every closed one to its
	// checkpointed end), then a little longer, so that stale owners deliver
	// what they would.
	done := func() bool {
		distinct := map[string]bool{}
		for _, b := range probe.handed() {
			for _, d := range b.data {
				distinct[d] = distinct[d] || b.checkpointed
			}
		}
		for _, ok := range distinct {
			if !ok {
				return false
			}
		}
		_, _, bad := crCheckLineage(all, probe.log())
		return len(distinct) == w.total && len(bad) == 0
	}
	for deadline := time.Now().Add(5 * time.Minute); !done() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	settle()

	got, events := r.deliveries(), probe.log()
	rep.records, rep.deliveries = w.total, len(got)
	rep.dups = checkOrderNoLoss(t, got, w.want)
	dups, bad := crCheckRedeliveries(probe.handed(), events)
	crNone(t, bad, "duplicates that are not redeliveries after a lease move")
	assert.Equal(t, rep.dups, dups, "duplicates in the batches and in the recorder")
	for _, e := range events {
		if e.kind == "init" {
			rep.moves++
		}
	}
	rep.moves -= len(all)
	if rep.moves == 0 {
		assert.Zero(t, rep.dups, "duplicates although no lease moved")
	}
	var pairBad []string
	rep.pairs, rep.merges, pairBad = crCheckLineage(all, events)
	crNone(t, pairBad, "lineage order of processors")
	for _, sh := range all {
		if sh.ParentShardID != "" && sh.AdjacentParentShardID == "" {
			rep.splits++
		}
	}
	for _, c := range workers {
		st := c.Stats()
		rep.stolen += st.LeasesStolen
		assert.Zero(t, st.ProcessorErrors, "processor errors of %s", st.WorkerID)
		if sc.workers == 1 {
			assert.Zero(t, st.LeasesStolen+st.LeasesLost, "lease moves with one worker")
		}
	}
	// A processor that lost its lease cannot checkpoint any more.
	r.mu.Lock()
	for _, err := range r.lostErrs {
		if err != nil {
			assert.ErrorIs(t, err, ErrLeaseLost, "a checkpoint in LeaseLost")
		}
	}
	r.mu.Unlock()
	if sc.workers == 1 {
		assert.Zero(t, rep.moves, "processor restarts with one worker")
		assert.Zero(t, rep.dups, "duplicates with one worker")
	}
	total := s.Stats().Total // before crMisplaced reads the shards
	rep.pushed, rep.read = total.RecordsPushed, total.RecordsRead
	if sc.fanOut {
		assert.Zero(t, rep.read, "records polled by fan-out workers")
	}
	if sc.producer {
		for _, remove := range removeFaults {
			remove()
		}
		rep.misplaced = crMisplaced(t, s, all)
		if !sc.generic {
			assert.Zero(t, rep.misplaced, "user records stored outside their shard's range by the fast path")
		}
		w.mu.Lock()
		assert.Empty(t, w.failed, "records the producer failed")
		assert.Len(t, w.ids, w.total, "record ids reported")
		ids := w.ids
		w.mu.Unlock()
		probe.mu.Lock()
		assert.Empty(t, probe.idBad)
		idDups := 0
		for id, n := range probe.ids {
			idDups += n - 1
			assert.Equal(t, ids[id], probe.idData[id], "data of record id %s", id)
		}
		for id, data := range ids {
			assert.Positive(t, probe.ids[id], "record id %s (%s) never delivered", id, data)
		}
		probe.mu.Unlock()
		assert.Equal(t, rep.dups, idDups, "duplicates by record id and by data")
	}
	rep.virtual = time.Since(start)
	t.Logf("seed %d: %d records over %d shards (%d split, %d merge children; ops %v), %d workers: %d deliveries, %d duplicates, %d lease moves (%d steals), %d parent→child orders checked, %d misplaced user records; %v virtual",
		seed, rep.records, len(all), rep.splits, rep.merges, rep.ops, sc.workers, rep.deliveries, rep.dups, rep.moves, rep.stolen, rep.pairs, rep.misplaced, rep.virtual)
	return rep
}

// crMisplaced counts the user records stored in a shard that does not own
// their hash key: those of aggregates routed by an outdated shard map,
// which readers must drop (the producer sends them again).
func crMisplaced(t *testing.T, s *Stream, all []Shard) int {
	t.Helper()
	n := 0
	for _, sh := range all {
		for rec, err := range s.Records(context.Background(), sh.ShardID, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			urs, err := Deaggregate(rec)
			require.NoError(t, err)
			for _, u := range urs {
				k, err := u.HashKey()
				require.NoError(t, err)
				if !sh.HashKeyRange.Contains(k) {
					n++
				}
			}
		}
	}
	return n
}

// crNone asserts that a checker found nothing wrong, showing the first few
// findings if it did.
func crNone(t *testing.T, bad []string, what string) {
	t.Helper()
	if len(bad) > 0 {
		assert.Failf(t, what, "%d findings, the first: %q", len(bad), bad[:min(len(bad), 8)])
	}
}

// crCheckRedeliveries checks the batches handed to processors against
// at-least-once delivery with a checkpoint after every batch: every record
// was in exactly one batch whose checkpoint succeeded, and came from one
// shard only; a batch whose checkpoint failed (its processor had lost the
// lease) is of a shard whose lease moved, at most one per move, so every
// duplicate is a redelivery after a lease move. It returns the duplicates
// (deliveries beyond a record's first) and what breaks the rules.
func crCheckRedeliveries(batches []crBatch, events []crEvent) (dups int, bad []string) {
	inits := map[string]int{}
	for _, e := range events {
		if e.kind == "init" {
			inits[e.shard]++
		}
	}
	confirmed, failed := map[string]int{}, map[string]int{}
	shardOf := map[string]string{}
	for _, b := range batches {
		if !b.checkpointed {
			failed[b.shard]++
		}
		for _, d := range b.data {
			sh, seen := shardOf[d]
			switch {
			case !seen:
				shardOf[d] = b.shard
			case sh != b.shard:
				bad = append(bad, fmt.Sprintf("%s delivered from %s and from %s", d, sh, b.shard))
				dups++
			default:
				dups++
			}
			if b.checkpointed {
				confirmed[d]++
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(shardOf)) {
		if n := confirmed[d]; n != 1 {
			bad = append(bad, fmt.Sprintf("%s was in %d batches whose checkpoint succeeded; want 1", d, n))
		}
	}
	for _, sh := range slices.Sorted(maps.Keys(failed)) {
		if n, moves := failed[sh], inits[sh]-1; n > moves {
			bad = append(bad, fmt.Sprintf("shard %s had %d batches whose checkpoint failed, but its lease moved %d times", sh, n, moves))
		}
	}
	return dups, bad
}

// crCheckLineage checks the processors' calls against a complete listing:
// every shard was initialized, every closed shard's end was checkpointed
// in ShardEnded, and no child's first Initialize or first batch came
// before the checkpointed ShardEnded of any of its parents (both, for a
// merge). It returns the parent → child orders checked, the merge children
// among them, and what is wrong.
func crCheckLineage(all []Shard, events []crEvent) (pairs, merges int, bad []string) {
	firstInit, firstBatch, ended := map[string]crEvent{}, map[string]crEvent{}, map[string]crEvent{}
	for _, e := range events {
		m := map[string]map[string]crEvent{"init": firstInit, "batch": firstBatch, "ended": ended}[e.kind]
		if m == nil || (e.kind == "ended" && !e.ok) {
			continue
		}
		if _, ok := m[e.shard]; !ok {
			m[e.shard] = e
		}
	}
	for _, sh := range all {
		id := sh.ShardID
		init, ok := firstInit[id]
		if !ok {
			bad = append(bad, fmt.Sprintf("shard %s was never initialized", id))
			continue
		}
		if _, ok := ended[id]; !ok && !sh.Open() {
			bad = append(bad, fmt.Sprintf("closed shard %s never checkpointed its end", id))
		}
		if sh.AdjacentParentShardID != "" {
			merges++
		}
		for _, par := range []string{sh.ParentShardID, sh.AdjacentParentShardID} {
			if par == "" {
				continue
			}
			pe, ok := ended[par]
			if !ok {
				bad = append(bad, fmt.Sprintf("child %s started (event %d) but its parent %s never ended", id, init.seq, par))
				continue
			}
			pairs++
			if init.seq < pe.seq || init.at.Before(pe.at) {
				bad = append(bad, fmt.Sprintf("child %s was initialized by %s (event %d, %v) before its parent %s ended at %s (event %d, %v)",
					id, init.worker, init.seq, init.at, par, pe.worker, pe.seq, pe.at))
			}
			if b, ok := firstBatch[id]; ok && b.seq < pe.seq {
				bad = append(bad, fmt.Sprintf("child %s got its first batch (event %d) before its parent %s ended (event %d)", id, b.seq, par, pe.seq))
			}
		}
	}
	return pairs, merges, bad
}

// crRunSeeds runs a scenario for every seed, one subtest and one bubble
// each, and returns the reports.
func crRunSeeds(t *testing.T, name string, sc crScenario) []crReport {
	var reps []crReport
	for _, seed := range crSeeds {
		t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { reps = append(reps, crRun(t, sc, seed)) })
		})
	}
	return reps
}

// TestConsumerReshardOrderNoLoss is property 1: random splits, merges and
// UpdateShardCount while a writer puts records for 50 keys and one to
// three workers consume. Each key's records arrive in order with none
// lost; duplicates are only redeliveries after lease moves, and there are
// none with one worker.
func TestConsumerReshardOrderNoLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   crScenario
	}{
		{"one worker", crScenario{workers: 1, ops: 12}},
		{"two workers", crScenario{workers: 2, ops: 12}},
		{"three workers", crScenario{workers: 3, ops: 12}},
		{"three workers, 2→4→3→6→3→2", crScenario{workers: 3, script: []int{4, 3, 6, 3, 2}}},
		{"three workers, one closes", crScenario{workers: 3, ops: 12, leave: "close"}},
		{"two workers, one crashes", crScenario{workers: 2, ops: 12, leave: "crash"}},
		{"three workers, read faults, batch limit 5", crScenario{workers: 3, ops: 12, faults: true, batchLimit: 5}},
		{"three workers start after the resharding", crScenario{workers: 3, ops: 12, late: true}},
	} {
		reps := crRunSeeds(t, tc.name, tc.sc)
		// Workers that start together after the resharding balance by
		// stealing or not as the goroutines happen to be scheduled (under
		// the race detector on a busy machine, none may move in any seed),
		// so only the scenarios that move leases mid-stream must.
		if tc.sc.workers > 1 && !tc.sc.late && len(reps) == len(crSeeds) {
			moves := 0
			for _, rep := range reps {
				moves += rep.moves
			}
			assert.Positive(t, moves, "%s: no lease moved in any seed, so redelivery went untested", tc.name)
		}
	}
}

// TestConsumerReshardChildrenAfterParents is property 2: with three workers
// handing shards around, every child shard's processor starts after the
// processors of all its parents (both parents of a merge) have
// checkpointed their ends, also when each resharding takes time
// (WithReshardDuration) and the stream is UPDATING meanwhile.
func TestConsumerReshardChildrenAfterParents(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   crScenario
	}{
		{"instant resharding", crScenario{workers: 3, ops: 14}},
		{"2s per split or merge", crScenario{workers: 3, ops: 14, reshardDuration: 2 * time.Second}},
	} {
		for _, rep := range crRunSeeds(t, tc.name, tc.sc) {
			assert.Positive(t, rep.merges, "%s: the resharding made no merge child", tc.name)
			assert.Positive(t, rep.splits, "%s: the resharding made no split child", tc.name)
			assert.GreaterOrEqual(t, rep.pairs, rep.splits+2*rep.merges, "%s: parent → child orders checked", tc.name)
		}
	}
}

// TestConsumerReshardProducer is property 3: the writer is a Producer with
// aggregation and record ids. On the fast path it routes by the stream's
// map; on the generic path (WithGenericPath, WithStrictOrder) an aggregate
// packed for a shard that has split lands whole in one child, the readers
// drop its user records outside that child's range, and the producer sends
// them again. Either way every user record id is delivered, and each key's
// records arrive in put order.
func TestConsumerReshardProducer(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   crScenario
	}{
		{"fast path, one worker", crScenario{workers: 1, ops: 12, producer: true}},
		{"fast path, three workers", crScenario{workers: 3, ops: 12, producer: true}},
		{"generic path, one worker", crScenario{workers: 1, ops: 12, producer: true, generic: true}},
		{"generic path, three workers", crScenario{workers: 3, ops: 12, producer: true, generic: true}},
		{"generic path, three workers, read faults, batch limit 3", crScenario{workers: 3, ops: 12, producer: true, generic: true, faults: true, batchLimit: 3}},
	} {
		misplaced := 0
		for _, rep := range crRunSeeds(t, tc.name, tc.sc) {
			misplaced += rep.misplaced
		}
		if tc.sc.generic {
			assert.Positive(t, misplaced, "%s: no aggregate was misplaced by a stale shard map in any seed, so dropping went untested", tc.name)
		}
	}
}

// TestConsumerReshardOverWire is property 4: the checks of properties 1 and
// 2 (and 3 for one case) with the workers reading through crWire, a
// StreamReader of wire values only, so that every ShardReader polls.
func TestConsumerReshardOverWire(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   crScenario
	}{
		{"one worker", crScenario{workers: 1, ops: 12, wire: true}},
		{"three workers", crScenario{workers: 3, ops: 12, wire: true}},
		{"three workers, 1s per split or merge", crScenario{workers: 3, ops: 10, wire: true, reshardDuration: time.Second}},
		{"producer generic path, two workers", crScenario{workers: 2, ops: 10, wire: true, producer: true, generic: true}},
		{"three workers, one crashes", crScenario{workers: 3, ops: 10, wire: true, leave: "crash"}},
		{"three workers, read faults, batch limit 5", crScenario{workers: 3, ops: 10, wire: true, faults: true, batchLimit: 5}},
	} {
		crRunSeeds(t, tc.name, tc.sc)
	}
}

// TestConsumerReshardFanOut is property 5: the checks of properties 1 to 3
// with the workers reading with enhanced fan-out (WithFanOut), so that
// every ShardReader takes pushed events from subscriptions that are taken
// over when leases move and renewed every 5 minutes of virtual time.
func TestConsumerReshardFanOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   crScenario
	}{
		{"one worker", crScenario{workers: 1, ops: 12, fanOut: true}},
		{"three workers", crScenario{workers: 3, ops: 12, fanOut: true}},
		{"three workers, one closes", crScenario{workers: 3, ops: 12, fanOut: true, leave: "close"}},
		{"two workers, one crashes", crScenario{workers: 2, ops: 12, fanOut: true, leave: "crash"}},
		{"three workers, faults, batch limit 5", crScenario{workers: 3, ops: 12, fanOut: true, faults: true, batchLimit: 5}},
		{"producer generic path, two workers", crScenario{workers: 2, ops: 10, fanOut: true, producer: true, generic: true}},
		{"three workers, 2s per split or merge", crScenario{workers: 3, ops: 10, fanOut: true, reshardDuration: 2 * time.Second}},
	} {
		for _, rep := range crRunSeeds(t, tc.name, tc.sc) {
			assert.Positive(t, rep.pushed, "%s: nothing was pushed, so fan-out went untested", tc.name)
		}
	}
}

// TestConsumerReshardCheckersDetect is the control of the checkers above:
// given a log that breaks each rule, they say so.
func TestConsumerReshardCheckersDetect(t *testing.T) {
	end, err := ParseSequenceNumber("99")
	require.NoError(t, err)
	closed := SequenceNumberRange{EndingSequenceNumber: end}
	// s0 and s1 merge into s2, which splits into s3 and s4.
	all := []Shard{
		{ShardID: "s0", SequenceNumberRange: closed},
		{ShardID: "s1", SequenceNumberRange: closed},
		{ShardID: "s2", ParentShardID: "s0", AdjacentParentShardID: "s1", SequenceNumberRange: closed},
		{ShardID: "s3", ParentShardID: "s2"},
		{ShardID: "s4", ParentShardID: "s2"},
	}
	ev := func(shard, kind string, ok bool) crEvent {
		return crEvent{worker: "w", shard: shard, kind: kind, ok: ok}
	}
	good := []crEvent{
		ev("s0", "init", false), ev("s1", "init", false), ev("s0", "ended", true), ev("s1", "ended", true),
		ev("s2", "init", false), ev("s2", "batch", false), ev("s2", "ended", true),
		ev("s3", "init", false), ev("s4", "init", false),
	}
	number := func(es []crEvent) []crEvent {
		es = slices.Clone(es)
		for i := range es {
			es[i].seq = i
		}
		return es
	}
	pairs, merges, bad := crCheckLineage(all, number(good))
	assert.Empty(t, bad)
	assert.Equal(t, 4, pairs)
	assert.Equal(t, 1, merges)

	for _, tc := range []struct {
		name   string
		events []crEvent
	}{
		{"merge child before its adjacent parent ended", slices.Concat(good[:3], good[4:5], good[3:4], good[5:])},
		{"merge child whose adjacent parent failed to checkpoint its end", slices.Concat(good[:3], []crEvent{ev("s1", "ended", false)}, good[4:])},
		{"split child before its parent ended", slices.Concat(good[:6], good[7:8], good[6:7], good[8:])},
		{"a shard never initialized", good[:8]},
	} {
		_, _, bad := crCheckLineage(all, number(tc.events))
		assert.NotEmpty(t, bad, tc.name)
	}

	// a had k:0 and k:1 from s0, failed to checkpoint, and b had them again.
	lost := crBatch{worker: "a", shard: "s0", data: []string{"k:0", "k:1"}}
	again := crBatch{worker: "b", shard: "s0", data: []string{"k:0", "k:1"}, checkpointed: true}
	moved := []crEvent{ev("s0", "init", false), ev("s0", "init", false)}
	dups, bad := crCheckRedeliveries([]crBatch{lost, again}, moved)
	assert.Empty(t, bad)
	assert.Equal(t, 2, dups)
	for _, tc := range []struct {
		name    string
		batches []crBatch
		events  []crEvent
	}{
		{"a failed checkpoint on a shard whose lease never moved", []crBatch{lost, again}, moved[:1]},
		{"two failed checkpoints after one move", []crBatch{lost, lost, again}, moved},
		{"a record never checkpointed", []crBatch{lost}, moved},
		{"a record checkpointed twice", []crBatch{again, again}, moved},
		{"a record from two shards", []crBatch{lost, {worker: "b", shard: "s1", data: again.data, checkpointed: true}}, moved},
	} {
		_, bad := crCheckRedeliveries(tc.batches, tc.events)
		assert.NotEmpty(t, bad, tc.name)
	}
}
