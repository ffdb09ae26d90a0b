package runnel

import (
	"cmp"
	"context"
	"os"
	"slices"
	"sort"
	"time"
)

// Stream quotas of resharding, as in Kinesis.
const (
	// MaxShardsPerStream is the most open shards UpdateShardCount produces.
	MaxShardsPerStream = 10_000
	// updateShardCountWindow is the rolling window of the call limit.
	updateShardCountWindow = 24 * time.Hour
)

// WithReshardDuration makes every split or merge take d of (virtual) time,
// as on AWS where each takes seconds: SplitShard, MergeShards and
// UpdateShardCount return at once, the stream is UPDATING until the change
// completes, and other resharding meanwhile fails with ErrResourceInUse. An
// UpdateShardCount that needs n splits and merges takes n·d, and its new
// shards appear together when it completes (its intermediate splits and
// merges are not seen one by one, as they would be on AWS). Default 0:
// resharding completes before the call returns.
func WithReshardDuration(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.reshardDuration = d }
}

// WithUpdateShardCountLimit sets how many UpdateShardCount calls a stream
// accepts in a rolling 24 hours; n ≤ 0 switches the limit off. Default 10,
// as in Kinesis.
func WithUpdateShardCountLimit(n int) StreamOption {
	return func(c *streamConfig) { c.updateShardCountLimit = n }
}

// SplitShard splits an open shard in two at newStartingHashKey: the
// children cover [start, key−1] and [key, end] of the parent's range and name
// it as their parent. The parent closes: it keeps its records (readable until
// they expire) and gets its ending sequence number; writes go to the
// children, whose sequence numbers are all greater than the parent's.
func (s *Stream) SplitShard(ctx context.Context, shardToSplit string, newStartingHashKey HashKey) error {
	const op = "SplitShard"
	return s.reshard(ctx, op, func(p *reshardPlan) error {
		i, err := p.openShard(op, shardToSplit)
		if err != nil {
			return err
		}
		r := p.open[i].hashRange
		if newStartingHashKey.Cmp(r.StartingHashKey.add(1)) <= 0 || newStartingHashKey.Cmp(r.EndingHashKey) >= 0 {
			return errorf(op, ErrInvalidArgument, "NewStartingHashKey %s must be above %s (the shard's StartingHashKey + 1) and below %s (its EndingHashKey)",
				newStartingHashKey, r.StartingHashKey.add(1), r.EndingHashKey)
		}
		p.split(i, newStartingHashKey)
		return nil
	})
}

// MergeShards merges two adjacent open shards into one child covering both
// ranges, with ParentShardID shardToMerge and AdjacentParentShardID
// adjacentShardToMerge. Both parents close as in SplitShard.
func (s *Stream) MergeShards(ctx context.Context, shardToMerge, adjacentShardToMerge string) error {
	const op = "MergeShards"
	return s.reshard(ctx, op, func(p *reshardPlan) error {
		i, err := p.openShard(op, shardToMerge)
		if err != nil {
			return err
		}
		j, err := p.openShard(op, adjacentShardToMerge)
		if err != nil {
			return err
		}
		if i == j {
			return errorf(op, ErrInvalidArgument, "cannot merge shard %s with itself", shardToMerge)
		}
		if j != i+1 && i != j+1 {
			return errorf(op, ErrInvalidArgument, "shards %s and %s are not adjacent: their hash-key ranges must be contiguous", shardToMerge, adjacentShardToMerge)
		}
		p.merge(i, j)
		return nil
	})
}

// UpdateShardCountOutput reports an UpdateShardCount.
type UpdateShardCountOutput struct {
	CurrentShardCount int // open shards before the call
	TargetShardCount  int // open shards once it completes
}

// UpdateShardCount changes the number of open shards to target with uniform
// scaling: afterwards the open shards divide the hash space evenly, as at
// creation. It does so with splits and merges, so lineage stays as Kinesis
// has it (at most two parents per shard). target must lie within half and
// double the current count and at most 10,000; the calls per rolling 24
// hours are limited (WithUpdateShardCountLimit).
func (s *Stream) UpdateShardCount(ctx context.Context, target int) (UpdateShardCountOutput, error) {
	const op = "UpdateShardCount"
	var out UpdateShardCountOutput
	if target < 1 {
		return out, errorf(op, ErrValidation, "target shard count %d must be at least 1", target)
	}
	err := s.reshard(ctx, op, func(p *reshardPlan) error {
		cur := len(p.open)
		out = UpdateShardCountOutput{CurrentShardCount: cur, TargetShardCount: target}
		switch {
		case target > MaxShardsPerStream:
			return errorf(op, ErrLimitExceeded, "target shard count %d is above the stream limit of %d", target, MaxShardsPerStream)
		case target > 2*cur:
			return errorf(op, ErrLimitExceeded, "target shard count %d is more than double the current %d", target, cur)
		case 2*target < cur:
			return errorf(op, ErrLimitExceeded, "target shard count %d is less than half the current %d", target, cur)
		}
		if err := s.checkUpdateCalls(op, p.now); err != nil {
			return err
		}
		p.uniform(target)
		p.countsAsUpdate = true
		return nil
	})
	return out, err
}

// checkUpdateCalls enforces the rolling 24-hour limit on UpdateShardCount;
// an accepted call is recorded by reshard. Called with s.mu held.
func (s *Stream) checkUpdateCalls(op string, now time.Time) error {
	limit := s.cfg.updateShardCountLimit
	if limit <= 0 {
		return nil
	}
	s.updateCalls = slices.DeleteFunc(s.updateCalls, func(t time.Time) bool { return now.Sub(t) >= updateShardCountWindow })
	if len(s.updateCalls) >= limit {
		return errorf(op, ErrLimitExceeded, "stream %s had %d UpdateShardCount calls in the last 24 hours; the limit is %d (the next is allowed at %s)",
			s.name, len(s.updateCalls), limit, s.updateCalls[0].Add(updateShardCountWindow).Format(time.RFC3339))
	}
	return nil
}

// reshard runs one resharding operation: plan builds the change on a copy of
// the open shards, and the change is committed at once or, with
// WithReshardDuration, after the emulated time.
func (s *Stream) reshard(ctx context.Context, op string, plan func(*reshardPlan) error) error {
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	var committed *reshardPlan // logged once s.mu is released
	defer func() {
		if committed != nil {
			s.logReshard(op, committed)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.live(op); err != nil {
		return err
	}
	if s.status != StatusActive {
		return errorf(op, ErrResourceInUse, "stream %s is %s; one resharding at a time", s.name, s.status)
	}
	if s.set.mode == ModeOnDemand {
		return errorf(op, ErrInvalidArgument, "stream %s is ON_DEMAND: its shards are not resharded by request", s.name)
	}
	now := s.now()
	p := &reshardPlan{s: s, now: now, open: slices.Clone(s.shards.Load().open),
		parentsOf: map[*shardState][]*shardState{}, children: map[*shardState][]*shardState{}}
	nextShard := s.nextShard
	err := plan(p)
	if err == nil && len(p.created) > 0 {
		err = s.cluster.reserveShards(op, s, len(p.open)-len(s.shards.Load().open))
	}
	if err != nil || len(p.created) == 0 {
		s.nextShard = nextShard // nothing was created
		return err
	}
	updateCalls := s.updateCalls
	if p.countsAsUpdate && s.cfg.updateShardCountLimit > 0 {
		s.updateCalls = append(s.updateCalls, now)
	}
	if s.cfg.reshardDuration > 0 {
		s.status = StatusUpdating
	}
	if err := s.prepare(op, p); err != nil {
		s.nextShard, s.updateCalls, s.status = nextShard, updateCalls, StatusActive
		s.cluster.reserveShards(op, s, len(s.shards.Load().open)-len(p.open))
		return err
	}
	if s.cfg.reshardDuration <= 0 {
		s.commit(p, now)
		committed = p
		return s.persistLocked(op)
	}
	return s.cluster.after(op, time.Duration(p.steps)*s.cfg.reshardDuration, func() {
		s.mu.Lock()
		live := s.live(op) == nil && s.pending == p
		var err error
		if live {
			s.commit(p, s.now())
			s.status = StatusActive
			err = s.persistLocked(op)
		}
		s.mu.Unlock()
		if live {
			s.logReshard(op, p)
		}
		if err != nil {
			s.cluster.cfg.logger.Error("runnel: could not record a committed resharding; a restart commits it again", "stream", s.name, "err", err)
		}
	})
}

// prepare opens the stores of the shards a plan creates and, in a durable
// cluster, records the plan, so that a crash before or during its commit
// leaves it to be committed at the next Open: records written to the new
// shards are then never lost. Called with s.mu held.
func (s *Stream) prepare(op string, p *reshardPlan) error {
	s.pending = p // until commit
	if !s.cluster.durable() {
		return nil
	}
	for _, par := range p.parents {
		par.mu.Lock()
		p.floor = max(p.floor, par.next+crashGap)
		par.mu.Unlock()
	}
	// undo closes the stores of the first n new shards and removes their
	// directories: nothing refers to them.
	undo := func(n int) {
		for _, o := range p.created[:n] {
			releaseStore(o)
			os.RemoveAll(s.cluster.shardDir(s.id, o.num))
		}
	}
	for i, sh := range p.created {
		if _, err := s.cluster.openStore(op, s.id, sh); err != nil {
			s.pending = nil
			undo(i)
			return err
		}
	}
	if err := s.persistLocked(op); err != nil {
		s.pending = nil
		undo(len(p.created))
		return err
	}
	return nil
}

// logReshard logs a committed resharding.
func (s *Stream) logReshard(op string, p *reshardPlan) {
	s.cluster.cfg.logger.Info("runnel: resharded", "op", op, "stream", s.name,
		"open_shards", len(p.open), "shards_created", len(p.created), "shards_closed", len(p.parents))
}

// reserveShards adds delta open shards of s to the quota count, or fails
// with ErrLimitExceeded. The count changes when the resharding is accepted,
// so that a pending one holds its shards.
func (c *Cluster) reserveShards(op string, s *Stream, delta int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkShardQuotaLocked(op, s.name, delta, false); err != nil {
		return err
	}
	if c.streams[s.name] == s && s.state.Load() == streamLive { // a deleted or DELETING stream no longer counts
		c.openShards += delta
		s.quotaShards += delta
	}
	return nil
}

// after runs fn when d has passed on the cluster's clock (virtual time in
// a synctest bubble), unless the cluster closes first; Close waits for a
// running fn. It returns ErrClosed if the cluster is closed already.
func (c *Cluster) after(op string, d time.Duration, fn func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.afterLocked(op, d, fn)
}

// afterLocked is after for a caller that holds c.mu.
func (c *Cluster) afterLocked(op string, d time.Duration, fn func()) error {
	if c.closed {
		return errClusterClosed(op)
	}
	deadline := c.now().Add(d)
	c.wg.Go(func() {
		if c.waitUntil(deadline, c.stop) {
			fn()
		}
	})
	return nil
}

// reshardPlan is a resharding in the making: the open shards as they will
// be, and the shards it creates. Nothing is visible until commit.
type reshardPlan struct {
	s         *Stream
	now       time.Time
	open      []*shardState // ordered by hash range
	created   []*shardState // in creation (shard number) order
	parents   []*shardState // existing shards that the plan closes
	parentsOf map[*shardState][]*shardState
	children  map[*shardState][]*shardState
	steps     int // splits and merges

	countsAsUpdate bool // an UpdateShardCount call, counted against its limit

	// floor is the least counter the new shards start at: in a durable
	// cluster, crashGap above what the parents had issued when the plan
	// was made, recorded with the plan, so that a commit redone at Open
	// after a crash gives the same starts and leaves room for any number
	// the parents issued before it (see recommit); 0 in memory.
	floor uint64
}

// openShard finds an open shard by id, or explains why it cannot be resharded.
func (p *reshardPlan) openShard(op, id string) (int, error) {
	num, err := parseShardID(op, id)
	if err != nil {
		return 0, err
	}
	for i, sh := range p.open {
		if sh.num == num {
			return i, nil
		}
	}
	if p.s.listedShard(num) != nil {
		return 0, errorf(op, ErrInvalidArgument, "shard %s in stream %s has already been merged or split, and cannot be resharded again", id, p.s.name)
	}
	return 0, errorf(op, ErrResourceNotFound, "shard %s does not exist in stream %s", id, p.s.name)
}

func (p *reshardPlan) newShard(rng HashKeyRange, parent, adjacent *shardState) *shardState {
	s := p.s
	sh := newShardState(s.nextShard, rng, 0, p.now.UnixMilli(), 0, s.cfg.limits, int(s.maxRecordSize.Load()))
	s.nextShard++
	sh.parentID = parent.id
	parents := []*shardState{parent}
	if adjacent != nil {
		sh.adjacentParentID = adjacent.id
		parents = append(parents, adjacent)
	}
	for _, par := range parents {
		if _, isNew := p.parentsOf[par]; !isNew && !slices.Contains(p.parents, par) {
			p.parents = append(p.parents, par)
		}
		p.children[par] = append(p.children[par], sh)
	}
	p.parentsOf[sh] = parents
	p.created = append(p.created, sh)
	return sh
}

// split replaces open[i] by its two halves at key.
func (p *reshardPlan) split(i int, key HashKey) {
	par := p.open[i]
	lo := p.newShard(HashKeyRange{StartingHashKey: par.hashRange.StartingHashKey, EndingHashKey: key.sub(1)}, par, nil)
	hi := p.newShard(HashKeyRange{StartingHashKey: key, EndingHashKey: par.hashRange.EndingHashKey}, par, nil)
	p.open = slices.Replace(p.open, i, i+1, lo, hi)
	p.steps++
}

// merge replaces open[i] and open[j] (adjacent) by one shard.
func (p *reshardPlan) merge(i, j int) {
	a, b := p.open[i], p.open[j]
	first, last := min(i, j), max(i, j)
	rng := HashKeyRange{StartingHashKey: p.open[first].hashRange.StartingHashKey, EndingHashKey: p.open[last].hashRange.EndingHashKey}
	child := p.newShard(rng, a, b)
	p.open = slices.Replace(p.open, first, last+1, child)
	p.steps++
}

// uniform reshapes the open shards into n even ranges: first it splits every
// shard at each target boundary inside it, then it merges the pieces of each
// target range, left to right.
func (p *reshardPlan) uniform(n int) {
	want := splitEvenly(n)
	for _, r := range want[1:] {
		b := r.StartingHashKey
		i := p.indexOf(b)
		if p.open[i].hashRange.StartingHashKey != b {
			p.split(i, b)
		}
	}
	for _, r := range want {
		i := p.indexOf(r.StartingHashKey)
		for p.open[i].hashRange.EndingHashKey != r.EndingHashKey {
			p.merge(i, i+1)
		}
	}
}

// indexOf returns the index of the open shard holding key k.
func (p *reshardPlan) indexOf(k HashKey) int {
	return sort.Search(len(p.open), func(i int) bool { return p.open[i].hashRange.StartingHashKey.Cmp(k) > 0 }) - 1
}

// commit applies a plan atomically with respect to writers: it locks every
// parent, closes them, gives the new shards sequence numbers above their
// parents', and publishes the new shard map before any writer can route
// again. Called with s.mu held.
func (s *Stream) commit(p *reshardPlan, now time.Time) {
	nowMs := now.UnixMilli()
	locked := slices.Clone(p.parents)
	slices.SortFunc(locked, func(a, b *shardState) int { return cmp.Compare(a.num, b.num) })
	for _, par := range locked {
		par.mu.Lock()
	}
	old := s.shards.Load()
	gen := old.gen + 1
	final := make(map[*shardState]bool, len(p.open))
	for _, sh := range p.open {
		final[sh] = true
	}
	// Every shard starts above the counters its parents reached, so its
	// sequence numbers exceed theirs, and at the plan's floor.
	for _, sh := range p.created {
		start := p.floor
		for _, par := range p.parentsOf[sh] {
			start = max(start, par.next)
		}
		sh.startCounter, sh.next, sh.createdMs, sh.openedGen = start, start, nowMs, gen
		if !final[sh] {
			// An intermediate shard of UpdateShardCount: closed at birth.
			sh.closeLocked(nowMs, gen, p.children[sh])
		}
	}
	for _, par := range p.parents {
		par.closeLocked(nowMs, gen, p.children[par])
	}
	s.shards.Store(newShardMap(gen, p.open, append(slices.Clip(old.all), p.created...)))
	for _, par := range locked {
		par.mu.Unlock()
	}
	s.pending = nil
}

// ReadableShards returns the shards of a listing that a reader following
// lineage may read now: those not yet finished whose parents are finished or
// no longer listed (expired). shards must be a complete, unfiltered listing
// (every page of ListShards): a parent missing from it counts as expired. A
// reader that finishes every parent before its children reads each
// partition key's records in write order, which Kinesis guarantees only to
// such readers. finished reports whether a shard has been
// read to its end; the result keeps the listing's order.
func ReadableShards(shards []Shard, finished func(shardID string) bool) []Shard {
	listed := make(map[string]bool, len(shards))
	for _, sh := range shards {
		listed[sh.ShardID] = true
	}
	done := func(id string) bool { return id == "" || !listed[id] || finished(id) }
	var out []Shard
	for _, sh := range shards {
		if !finished(sh.ShardID) && done(sh.ParentShardID) && done(sh.AdjacentParentShardID) {
			out = append(out, sh)
		}
	}
	return out
}
