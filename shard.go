package runnel

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Shard describes a shard as ListShards reports it.
type Shard struct {
	// ShardID is "shardId-" followed by 12 digits.
	ShardID string
	// ParentShardID is the shard this one was split from, or the first of the
	// two shards it was merged from; "" for a shard created with the stream.
	ParentShardID string
	// AdjacentParentShardID is the second shard of a merge; "" otherwise.
	AdjacentParentShardID string
	// HashKeyRange is the range of hash keys the shard accepts (while open).
	HashKeyRange HashKeyRange
	// SequenceNumberRange holds the shard's first possible sequence number
	// and, once the shard is closed, its last.
	SequenceNumberRange SequenceNumberRange
}

// SequenceNumberRange is the range of sequence numbers of a shard.
type SequenceNumberRange struct {
	// StartingSequenceNumber is the first number the shard may issue.
	StartingSequenceNumber SequenceNumber
	// EndingSequenceNumber is zero while the shard is open.
	EndingSequenceNumber SequenceNumber
}

// Open reports whether the shard still accepts writes.
func (s Shard) Open() bool { return s.SequenceNumberRange.EndingSequenceNumber.IsZero() }

// errShardClosed tells a writer that its shard closed (was resharded) after
// it routed the record there: it routes again with the new shard map.
var errShardClosed = errors.New("shard closed")

// shardState is one shard: its description, its records and its token
// buckets, guarded by one mutex that is held only for the duration of a
// store call, never across I/O, callbacks or channel sends.
type shardState struct {
	num              uint64
	id               string
	hashRange        HashKeyRange
	parentID         string
	adjacentParentID string
	startCounter     uint64 // first counter the shard may issue
	createdMs        int64  // when the shard opened (Unix ms)
	openedGen        uint64 // generation of the first shard map that lists it

	mu         sync.Mutex
	store      store
	limits     shardLimiters
	next       uint64 // counter of the next record
	lastArrive int64  // arrival (Unix ms) of the newest record; arrivals never go back
	oldest     int64  // arrival of the oldest retained record; MaxInt64 if none
	closed     bool
	released   bool // the store was closed (releaseStore): puts fail
	closedAtMs int64
	closedGen  uint64          // generation of the shard map published with the close
	children   []*shardState   // set when closed
	waiters    []chan struct{} // readers' wake-up channels (capacity 1), signalled on the next append or close
	counters   shardCounters
	spans      []span // read's scratch
	idleCont   uint64 // the last idle continuation counter readPush issued; 0: none
}

// shardCounters are a shard's cumulative counters, reported by Stats.
type shardCounters struct {
	recordsPut, bytesPut          int64
	getCalls, recordsRead         int64
	bytesRead                     int64
	recordsPushed, bytesPushed    int64
	writeThrottles, readThrottles int64
}

func newShardState(num uint64, rng HashKeyRange, startCounter uint64, createdMs int64, gen uint64, l Limits, maxRecordSize int) *shardState {
	return &shardState{
		openedGen:    gen,
		createdMs:    createdMs,
		num:          num,
		id:           shardID(num),
		hashRange:    rng,
		startCounter: startCounter,
		store:        newMemStore(),
		limits:       newShardLimiters(l, maxRecordSize),
		next:         startCounter,
		oldest:       math.MaxInt64,
	}
}

// expireLocked drops the records that arrived before cutoffMs.
func (s *shardState) expireLocked(cutoffMs int64) {
	if cutoffMs <= s.oldest {
		return
	}
	s.store.trim(cutoffMs)
	s.findOldestLocked()
}

// findOldestLocked sets oldest from the store: the arrival of its oldest
// retained record, or MaxInt64 if it holds none.
func (s *shardState) findOldestLocked() {
	s.oldest = math.MaxInt64
	if first, ok := s.store.first(); ok {
		s.oldest, _ = s.store.arrivalAt(first)
	}
}

// goneLocked reports whether the shard is closed and all its records have
// expired: it then disappears from listings.
func (s *shardState) goneLocked(cutoffMs int64) bool {
	return s.closed && s.oldest == math.MaxInt64 && s.closedAtMs < cutoffMs
}

// write is one record bound for a shard.
type write struct {
	key      string
	data     []byte
	ordering SequenceNumber // zero unless SequenceNumberForOrdering was given
	index    int            // position in the caller's request
	span     *HashKeyRange  // if set, the shard's range must hold it all
	inOrder  bool           // refuse this write if an earlier one of the request failed
	err      error          // an injected fault: the write fails with it
}

// put appends records to the shard in order, at time now. Each record
// succeeds or fails on its own, except that an in-order write after a failed
// one is refused (ErrNotAttempted). It writes results[w.index]. When the
// store has yet to make the records durable, it returns the handle to wait
// on (see settle) once every shard of the request has been written.
func (s *shardState) put(op string, now time.Time, cutoffMs int64, ws []write, results []PutRecordsResult) pendingWrite {
	nowMs := now.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		for _, w := range ws {
			results[w.index].Err = errorf(op, ErrClosed, "shard %s is closed: its stream was closed or deleted", s.id)
		}
		return nil
	}
	if s.closed {
		for _, w := range ws {
			results[w.index].Err = errShardClosed
		}
		return nil
	}
	s.expireLocked(cutoffMs)
	arrival := max(nowMs, s.lastArrive)
	appended, failed := false, false
	for _, w := range ws {
		if failed && w.inOrder {
			results[w.index].Err = &Error{Op: op, Kind: ErrNotAttempted, Msg: "shard " + s.id}
			continue
		}
		if w.err != nil {
			results[w.index].Err = w.err
			failed = true
			continue
		}
		if w.span != nil && !(s.hashRange.Contains(w.span.StartingHashKey) && s.hashRange.Contains(w.span.EndingHashKey)) {
			results[w.index].Err = &Error{Op: op, Kind: ErrShardMapChanged, Msg: "shard " + s.id + " does not hold the record's whole expected range"}
			failed = true
			continue
		}
		// The new number must exceed SequenceNumberForOrdering: skip ahead
		// to it, unless it lies beyond what the shard can issue.
		skip := !w.ordering.IsZero() && (SequenceNumber{counter: s.next, shard: s.num}).Cmp(w.ordering) <= 0
		if skip && (!w.ordering.native() || w.ordering.counter >= math.MaxUint64/2) {
			results[w.index].Err = errorf(op, ErrInvalidArgument, "SequenceNumberForOrdering %s is beyond any number this stream can issue", w.ordering)
			failed = true
			continue
		}
		n := len(w.key) + len(w.data)
		if !s.limits.allowWrite(now, n) {
			s.counters.writeThrottles++
			results[w.index].Err = errorf(op, ErrProvisionedThroughputExceeded,
				"rate exceeded for shard %s: its write budget this second has no room for a %d-byte record", s.id, n)
			failed = true
			continue
		}
		if skip {
			s.next = w.ordering.counter + 1
		}
		counter := s.next
		s.next++
		s.store.append(counter, arrival, w.key, w.data)
		s.counters.recordsPut++
		s.counters.bytesPut += int64(n)
		results[w.index] = PutRecordsResult{ShardID: s.id, SequenceNumber: SequenceNumber{counter: counter, shard: s.num}}
		appended = true
	}
	if !appended {
		return nil
	}
	s.lastArrive = arrival
	s.oldest = min(s.oldest, arrival)
	pw := s.store.commit()
	if pw == nil {
		s.wakeLocked() // readable now; otherwise the store wakes the readers when it publishes
	}
	return pw
}

// settle waits for a put's records to be durable, and fails those of the
// put's writes ws that the store could not write (results[w.index] of
// this shard's): they were never stored, so they are not acknowledged.
// If ctx ends first they fail with its error, not acknowledged either
// (they may yet be stored).
func (s *shardState) settle(ctx context.Context, op string, pw pendingWrite, ws []write, results []PutRecordsResult) {
	err := pw.wait(ctx)
	if err == nil {
		return
	}
	unknown := false // whether the records may yet be stored
	if ctxErr := ctx.Err(); ctxErr != nil && err == ctxErr {
		err, unknown = ctxError(op, err), true
	}
	var records, bytes int64
	for _, w := range ws {
		if r := &results[w.index]; r.Err == nil && r.ShardID == s.id {
			*r = PutRecordsResult{Err: err}
			records, bytes = records+1, bytes+int64(len(w.key)+len(w.data))
		}
	}
	if unknown {
		return
	}
	s.mu.Lock()
	s.counters.recordsPut -= records // put counted them: they were not stored
	s.counters.bytesPut -= bytes
	s.mu.Unlock()
}

// countThrottle counts a throttle that a fault injected: of a write, or
// of a read.
func (s *shardState) countThrottle(write bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if write {
		s.counters.writeThrottles++
	} else {
		s.counters.getCalls++ // a throttled call is a call, as in read
		s.counters.readThrottles++
	}
}

// signal sends on a wake-up channel of capacity 1 unless a signal is
// pending already.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wakeLocked signals every registered reader and forgets them.
func (s *shardState) wakeLocked() {
	for i, ch := range s.waiters {
		signal(ch)
		s.waiters[i] = nil
	}
	s.waiters = s.waiters[:0]
}

// watch registers ch (a reader's own channel, capacity 1) to be signalled
// when the shard next receives a record or closes: a cheap wake-up for
// readers waiting at the tip, which allocates nothing. A closed shard
// signals at once. Registering the same channel twice is harmless.
func (s *shardState) watch(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		signal(ch)
		return
	}
	if !slices.Contains(s.waiters, ch) {
		s.waiters = append(s.waiters, ch)
	}
}

// unwatch forgets a reader's channel registered with watch.
func (s *shardState) unwatch(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.waiters, ch); i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
	}
}

// readResult is what one read of the shard found.
type readResult struct {
	records   []Record       // the records read
	cont      SequenceNumber // readPush: an idle continuation number, when one was issued
	next      uint64         // counter to continue from
	behindMs  int64
	end       bool // the shard is closed and every record was read
	children  []*shardState
	throttled bool
	gone      bool  // the shard is closed and all its records expired
	cold      bool  // records holds what was read from a file store's disk
	err       error // reading the store's files failed
}

// read returns the records at or after counter from, honouring the read
// limits, Limit and the byte cap: a GetRecords call. Records that a file
// store holds only on disk are read after the lock is released.
func (s *shardState) read(now time.Time, cutoffMs int64, from uint64, limit, maxBytes int, dst []Record) readResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.goneLocked(cutoffMs) {
		return readResult{gone: true}
	}
	s.counters.getCalls++
	if !s.limits.allowRead(now) {
		s.counters.readThrottles++
		return readResult{throttled: true, next: from}
	}
	res, bytes := s.readLocked(now.UnixMilli(), cutoffMs, from, limit, maxBytes, dst, cutoffMs, &s.spans)
	if !res.cold {
		res.records = appendSpans(dst, s.num, s.spans)
		clear(s.spans) // keep no chunk alive
	}
	s.limits.readBytes.charge(now, bytes)
	s.counters.recordsRead += int64(len(res.records) - len(dst))
	s.counters.bytesRead += int64(bytes)
	return res
}

// readLocked finds the records read would return, without the shard's read
// limits, and returns the bytes found (data and partition keys). Records
// in memory are found as spans, set in *spans (the caller's scratch), for
// the caller to turn into records with appendSpans; records on disk are
// read by the store's coldReader into res.records (appended to dst, and
// res.cold set), skipping those that arrived before minArrivalMs, with the
// lock released meanwhile.
func (s *shardState) readLocked(nowMs, cutoffMs int64, from uint64, limit, maxBytes int, dst []Record, minArrivalMs int64, spans *[]span) (readResult, int) {
	s.expireLocked(cutoffMs)
	if first, ok := s.store.first(); ok && first > from {
		from = first // the records before have expired: continue at the trim horizon
	}
	var res readResult
	bytes := 0
	*spans = (*spans)[:0]
	if cold := s.store.cold(from); cold != nil {
		s.mu.Unlock()
		res.records, res.next, bytes, res.err = cold.read(dst, s.num, limit, maxBytes, minArrivalMs)
		res.cold = true
		s.mu.Lock()
	} else {
		*spans, res.next, bytes = s.store.readSpans(*spans, from, limit, maxBytes)
	}
	res.next = max(res.next, from)
	if arrival, ok := s.store.arrivalAt(res.next); ok {
		// At least 1 while records remain, so that "0 = caught up" holds
		// even when they arrived this millisecond.
		res.behindMs = max(nowMs-arrival, 1)
	} else if s.closed && res.err == nil {
		res.end = true
		res.children = s.children
	}
	return res, bytes
}

// readPush is a subscription's read at now: read without the shard's read
// limits, from sub.pos, or from the first record that arrived at or after
// sub.atMs while sub.seek is set. It appends the records to dst, turning
// the spans of records in memory into records after the lock is released,
// so that the subscribers of one shard do that work in parallel.
//
// When it finds nothing on an open shard, it issues an idle continuation
// number (res.cont) if beat is set, and otherwise registers sub.wake, as
// watch does, in the same critical section, so that no record can arrive
// unnoticed between the read and the wait (unless the subscription has
// ended: finishLocked unregisters it under this lock).
//
// An idle continuation number lies above every number issued so far and
// below every later one, so that continuation numbers advance while no
// records arrive, as Kinesis's do with time. It takes one counter of the
// shard (numbers may have gaps, as SequenceNumberForOrdering leaves too),
// shared by the idle subscriptions of the shard until a record comes. None
// is issued while the store holds records not yet readable, which the
// number would pass over.
func (s *shardState) readPush(sub *subscription, dst []Record, now time.Time, cutoffMs int64, beat bool) (readResult, int) {
	res, bytes := s.readPushLocked(sub, dst, now, cutoffMs, beat)
	if !res.cold && !res.gone {
		res.records = appendSpans(dst, s.num, sub.spans)
		clear(sub.spans) // keep no chunk alive
	}
	return res, bytes
}

// readPushLocked is readPush's work under the shard's lock.
func (s *shardState) readPushLocked(sub *subscription, dst []Record, now time.Time, cutoffMs int64, beat bool) (readResult, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.goneLocked(cutoffMs) {
		return readResult{gone: true}, 0
	}
	from, minArrival := sub.pos, cutoffMs
	if sub.seek {
		at, _ := s.store.seekTime(sub.atMs, s.next) // a lower bound when on disk: the read skips what came before
		from, minArrival = max(at, sub.pos), max(cutoffMs, sub.atMs)
	}
	res, bytes := s.readLocked(now.UnixMilli(), cutoffMs, from, MaxGetRecordsLimit, sub.maxBytes, dst, minArrival, &sub.spans)
	n := len(res.records) - len(dst)
	if !res.cold {
		n = 0
		for _, sp := range sub.spans {
			n += len(sp.metas)
		}
	}
	s.counters.recordsPushed += int64(n)
	s.counters.bytesPushed += int64(bytes)
	switch {
	case n > 0 || res.end || res.err != nil:
	case beat && res.behindMs == 0 && !s.store.pending():
		if s.idleCont == 0 || s.idleCont != s.next-1 || s.idleCont < res.next {
			s.idleCont = s.next
			s.next++
		}
		res.cont = SequenceNumber{counter: s.idleCont, shard: s.num}
	case sub.endErr.Load() == nil && !slices.Contains(s.waiters, sub.wake):
		s.waiters = append(s.waiters, sub.wake)
	}
	return res, bytes
}

// positionAt resolves a timestamp to the counter of the first record that
// arrived at or after it, reading a file store's index and files after the
// lock is released when the record is on disk.
func (s *shardState) positionAt(tsMs int64) (uint64, error) {
	s.mu.Lock()
	at, cold := s.store.seekTime(tsMs, s.next)
	s.mu.Unlock()
	if cold == nil {
		return at, nil
	}
	return cold.seek(tsMs)
}

// latest returns the counter after the newest record.
func (s *shardState) latest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// shardView is a shard as a listing at one shard-map generation sees it:
// a shard that closed in a later generation is still open in the view.
type shardView struct {
	closed     bool
	released   bool // the store was closed (releaseStore): puts fail
	closedAtMs int64
	createdMs  int64
}

// viewLocked returns the shard as the shard map of generation gen shows it.
func (s *shardState) viewLocked(gen uint64) shardView {
	v := shardView{createdMs: s.createdMs}
	if s.closed && s.closedGen <= gen {
		v.closed, v.closedAtMs = true, s.closedAtMs
	}
	return v
}

// describeLocked describes the shard as v sees it.
func (s *shardState) describeLocked(v shardView) Shard {
	d := Shard{
		ShardID:               s.id,
		ParentShardID:         s.parentID,
		AdjacentParentShardID: s.adjacentParentID,
		HashKeyRange:          s.hashRange,
		SequenceNumberRange:   SequenceNumberRange{StartingSequenceNumber: SequenceNumber{counter: s.startCounter, shard: s.num}},
	}
	if v.closed {
		d.SequenceNumberRange.EndingSequenceNumber = s.endingLocked()
	}
	return d
}

// endingLocked is the last number the shard issued (its last record's, or
// an idle subscription's continuation number), or its starting number if
// it issued none.
func (s *shardState) endingLocked() SequenceNumber {
	return SequenceNumber{counter: max(s.next-1, s.startCounter), shard: s.num}
}

// closeLocked stops the shard accepting writes and records its children.
// Writers that routed here before the close see errShardClosed and route
// again with the shard map published by the same resharding.
func (s *shardState) closeLocked(nowMs int64, gen uint64, children []*shardState) {
	s.closed = true
	s.closedAtMs = nowMs
	s.closedGen = gen
	s.children = children
	s.wakeLocked()
}
