package runnel

// The Producer's sending machinery: per-shard queues, taking due records,
// packing them into Kinesis records, the call, and its outcome.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// fifo is a shard's queue of records. Records taken for a call keep their
// slots until the shard is idle again, so that the ones to retry go back to
// the head without moving the rest of the queue.
type fifo struct {
	buf     []pending
	head    int
	cleared int       // buf[:cleared] holds no references (slots of gone records)
	peak    int       // the most slots used since checked
	checked time.Time // when trim last looked at the array
}

func (q *fifo) len() int { return len(q.buf) - q.head }

// items returns the queued records, oldest first.
func (q *fifo) items() []pending { return q.buf[q.head:] }

func (q *fifo) push(r pending) {
	q.buf = append(q.buf, r)
	q.peak = max(q.peak, len(q.buf))
}

// trim gives most of the array back once it has been more than 4 times
// larger than needed for a second, so that a queue's array follows what it
// holds without reallocating from call to call. Only while no records are
// taken.
func (q *fifo) trim(now time.Time) {
	if now.Sub(q.checked) < time.Second {
		return
	}
	q.checked = now
	if c := cap(q.buf); c > 256 && c > 4*q.peak {
		nb := make([]pending, len(q.buf)-q.head, max(2*q.peak, 64))
		copy(nb, q.buf[q.head:])
		q.buf, q.head, q.cleared = nb, 0, 0
	}
	q.peak = len(q.buf)
}

// take removes n records from the head and returns them; the slice stays
// valid while the records are away.
func (q *fifo) take(n int) []pending {
	out := q.buf[q.head : q.head+n : q.head+n]
	q.head += n
	return out
}

// giveBack returns records taken last to the head, in order; they must be
// some of the records that take returned.
func (q *fifo) giveBack(rs []pending) {
	q.head -= len(rs)
	copy(q.buf[q.head:], rs)
}

// settle frees the slots of records that are gone, so that they keep no
// record's data alive, and moves the queue to the front of its array once
// half of the array's length is gone: the array then holds at most twice
// the records queued, in a backing array at most twice its length (the
// bound behind recordOverhead). Only while no records are taken.
func (q *fifo) settle() {
	switch {
	case q.head == 0:
	case q.head == len(q.buf):
		clear(q.buf[q.cleared:])
		q.buf, q.head, q.cleared = q.buf[:0], 0, 0
	case q.head >= len(q.buf)/2:
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head, q.cleared = q.buf[:n], 0, 0
	default:
		clear(q.buf[q.cleared:q.head])
		q.cleared = q.head
	}
}

// outcomes collects the outcomes of records for finish: the callbacks to run
// and the accounting to apply after them.
type outcomes struct {
	calls     []outcome
	records   int
	bytes     int
	ok, fail  int64
	firstErr  error // of the first failed record
	gens      []genCount
	waited    time.Duration
	maxWaited time.Duration
}

// outcome is a record's result waiting for its callback.
type outcome struct {
	done func(ProducerResult)
	res  ProducerResult
}

type genCount struct {
	gen uint64
	n   int
}

// add records the outcome of r.
func (o *outcomes) add(r *pending, res ProducerResult, now time.Time) {
	if r.done != nil {
		o.calls = append(o.calls, outcome{done: r.done, res: res})
	}
	o.records++
	o.bytes += r.size()
	if res.Err == nil {
		o.ok++
	} else {
		o.fail++
		if o.firstErr == nil {
			o.firstErr = res.Err
		}
	}
	w := now.Sub(r.putAt)
	o.waited += w
	o.maxWaited = max(o.maxWaited, w)
	if n := len(o.gens); n > 0 && o.gens[n-1].gen == r.gen {
		o.gens[n-1].n++
	} else {
		o.gens = append(o.gens, genCount{gen: r.gen, n: 1})
	}
}

// claim is the records of one shard taken for a call.
type claim struct {
	shard   *producerShard
	records []pending
	bytes   int // an estimate that errs high of what they take in a call
}

// sendLoop is one sender: it takes due records, sends them in one call and
// handles the outcome, until Close.
func (p *Producer) sendLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := &sendBuffers{agg: &aggregator{}}
	for {
		claims, done, refresh, wait := p.take(time.Now())
		p.finish(done)
		switch {
		case refresh:
			p.finish(p.refreshShards())
			continue
		case claims != nil:
			if wait == 0 {
				p.signal() // more is due: another sender may take it
			}
			p.send(claims, buf)
			continue
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.stop:
			return
		}
	}
}

// take claims due records of idle shards for one call, within the call's
// limits, and fails records whose TTL has passed. If there is nothing to
// send, wait is how long until there may be.
func (p *Producer) take(now time.Time) (claims []claim, done *outcomes, refresh bool, wait time.Duration) {
	done = &outcomes{}
	p.mu.Lock()
	defer p.mu.Unlock()
	wait = time.Hour
	// Records past their TTL fail, whatever holds their shard or the
	// producer up.
	for _, sh := range p.shards {
		if sh.busy {
			continue
		}
		sh.queue.settle()
		for sh.queue.len() > 0 && now.Sub(sh.queue.items()[0].putAt) >= p.cfg.recordTTL {
			p.failExpiredLocked(&p.dequeueLocked(sh, 1)[0], done, now)
		}
		sh.queue.trim(now)
		if sh.queue.len() > 0 {
			wait = min(wait, max(sh.queue.items()[0].putAt.Add(p.cfg.recordTTL).Sub(now), time.Millisecond))
		}
	}
	// Records stored in a shard that may not own them wait for a new shard
	// map to be checked; they too fail at their TTL, or when Close gives up.
	kept := p.misplaced[:0]
	for _, mp := range p.misplaced {
		members := mp.members[:0]
		for _, m := range mp.members {
			r := &m.pending
			switch {
			case p.aborted:
				done.add(r, p.failure(r, errClosedUnverified), now)
			case now.Sub(r.putAt) >= p.cfg.recordTTL:
				r.lastErr = errorf("PutRecords", ErrInternalFailure, "stored in shard %s, which may not own the record's hash key, and not checked: the shard map could not be refreshed", mp.result.ShardID)
				p.failExpiredLocked(r, done, now)
			default:
				members = append(members, m)
				wait = min(wait, max(r.putAt.Add(p.cfg.recordTTL).Sub(now), time.Millisecond))
			}
		}
		if len(members) > 0 {
			mp.members = members
			kept = append(kept, mp)
		}
	}
	clear(p.misplaced[len(kept):])
	p.misplaced = kept
	if p.mapStale {
		switch {
		case p.inFlight > 0 || p.refreshing:
			return nil, done, false, wait // wait for the calls in flight
		case now.Before(p.refreshAt):
			return nil, done, false, min(wait, p.refreshAt.Sub(now))
		}
		p.refreshing = true
		return nil, done, true, 0
	}
	if p.inFlight >= p.cfg.maxInFlight {
		return nil, done, false, wait
	}
	budgetBytes, budgetEntries := p.cfg.collMaxSize, p.cfg.collMaxCount
	full := p.fullLocked()
	n := len(p.shards)
	for k := range n {
		sh := p.shards[(p.rr+k)%n]
		if sh.busy || sh.queue.len() == 0 {
			continue
		}
		if p.aborted {
			for _, r := range p.dequeueLocked(sh, sh.queue.len()) {
				done.add(&r, p.failure(&r, errClosedUndelivered), now)
			}
			continue
		}
		head := &sh.queue.items()[0]
		dueAt := head.putAt.Add(p.cfg.maxBufferedTime)
		due := full || p.closing || head.gen < p.flushGen || !now.Before(dueAt)
		if now.Before(sh.notBefore) || !due {
			next := sh.notBefore
			if !due {
				next = dueAt
			}
			wait = min(wait, max(next.Sub(now), time.Millisecond))
			continue
		}
		if budgetBytes <= 0 || budgetEntries <= 0 {
			wait = 0
			break
		}
		// Take records for this call: the estimate errs high, so that
		// what is taken fits the call once packed.
		// With strict order on the generic path and no aggregation, a call
		// carries a key once per shard, so nothing after the first repeated
		// key can be sent. (An aggregate may repeat its own keys.)
		strict := p.routed == nil && p.cfg.strictOrder && !p.cfg.aggregation
		if strict {
			clear(p.takenKeys)
		}
		taken, bytes := 0, 0
		for _, r := range sh.queue.items() {
			est := r.size() + len(r.ehk) + len(r.id) + 24
			if taken > 0 && (bytes+est > budgetBytes || (!p.cfg.aggregation && taken == budgetEntries)) {
				break
			}
			if strict {
				if _, dup := p.takenKeys[r.hk.lo]; dup {
					break
				}
				p.takenKeys[r.hk.lo] = struct{}{}
			}
			taken++
			bytes += est
		}
		budgetBytes -= bytes
		if p.cfg.aggregation {
			budgetEntries -= max(1, bytes/p.cfg.aggMaxSize)
		} else {
			budgetEntries -= taken
		}
		sh.busy = true
		claims = append(claims, claim{shard: sh, records: p.dequeueLocked(sh, taken), bytes: bytes})
	}
	if len(claims) > 0 {
		p.rr = (p.rr + 1) % n
		p.inFlight++
	}
	return claims, done, false, wait
}

// dequeueLocked takes n records from the head of a shard's queue.
func (p *Producer) dequeueLocked(sh *producerShard, n int) []pending {
	rs := sh.queue.take(n)
	for _, r := range rs {
		p.unsent--
		p.unsentBytes -= r.size()
	}
	return rs
}

// entry is one Kinesis record of a call: a plain record or an aggregate.
type entry struct {
	shard   *producerShard
	members []pending
}

// send packs claims into Kinesis records, makes the call and handles its
// outcome.
//
// Records of a call succeed or fail one by one, so a key in two records of
// one shard could see its later record stored and the earlier one retried.
// The fast path into a runnel stream refuses a shard's records after its
// first failure; on the generic path WithStrictOrder puts a partition key
// in at most one Kinesis record per shard and call.
func (p *Producer) send(claims []claim, buf *sendBuffers) {
	now := time.Now()
	if p.cfg.aggregation || p.cfg.recordIDs {
		// Size the aggregates' buffer for this call at once, so that it
		// never grows past what a call carries (CollectionMaxSize).
		need := 0
		for _, c := range claims {
			need += c.bytes
		}
		// (slices.Grow would round up, past CollectionMaxSize.)
		if want := min(need, p.cfg.collMaxSize); cap(buf.data) < want {
			buf.data = make([]byte, 0, min(want+want/8, p.cfg.collMaxSize))
		}
	}
	entries, puts := buf.entries, buf.puts
	var leftovers []claim
	bytes := 0
	var sent map[uint64]struct{} // with strict order: hash keys (low half) of the shard's earlier records
	if p.routed == nil && p.cfg.strictOrder {
		sent = make(map[uint64]struct{})
	}
	for _, c := range claims {
		recs := c.records
		clear(sent)
		for len(recs) > 0 && len(puts) < p.cfg.collMaxCount {
			mark, room := len(buf.data), -1
			if len(puts) > 0 {
				room = p.cfg.collMaxSize - bytes
			}
			e, put, n := p.pack(buf.agg, c.shard, recs, sent, &buf.data, room)
			size := len(put.Data) + len(put.PartitionKey)
			if n == 0 || (len(puts) > 0 && bytes+size > p.cfg.collMaxSize) {
				break
			}
			if !c.shard.limits.allowWrite(now, size) {
				buf.data = buf.data[:mark] // drop the refused aggregate
				p.mu.Lock()
				c.shard.notBefore = now.Add(c.shard.limits.writeDelay(now, size))
				p.mu.Unlock()
				break
			}
			if sent != nil {
				for _, m := range e.members {
					sent[m.hk.lo] = struct{}{}
				}
			}
			recs = recs[n:]
			entries = append(entries, e)
			puts = append(puts, put)
			bytes += size
		}
		if len(recs) > 0 {
			leftovers = append(leftovers, claim{shard: c.shard, records: recs})
		}
	}

	buf.entries, buf.puts = entries, puts
	var out PutRecordsOutput
	var err error
	if len(puts) > 0 {
		out, err = p.call(buf)
	}
	p.complete(claims, entries, leftovers, out, err, now)
	buf.reset() // now: an idle sender must not pin the call's records or queue arrays
}

// sendBuffers is a sender's memory for building calls, reused from call to
// call (Putters do not keep what they are given).
type sendBuffers struct {
	agg     *aggregator
	data    []byte // the aggregates of a call
	entries []entry
	puts    []PutRecordsEntry
	keys    []HashKey
	spans   []HashKeyRange
}

func (b *sendBuffers) reset() {
	clear(b.entries) // drop references to the last call's records
	clear(b.puts)
	b.data, b.entries, b.puts = b.data[:0], b.entries[:0], b.puts[:0]
	b.keys, b.spans = b.keys[:0], b.spans[:0]
}

// pack makes the next Kinesis record from the head of recs: an aggregate of
// as many records as fit, or a plain record. It returns how many records it
// used: none when the head's key was sent in an earlier record of the call.
func (p *Producer) pack(agg *aggregator, sh *producerShard, recs []pending, sent map[uint64]struct{}, scratch *[]byte, room int) (entry, PutRecordsEntry, int) {
	first := recs[0]
	if _, dup := sent[first.hk.lo]; dup {
		return entry{}, PutRecordsEntry{}, 0
	}
	// Up to maxCount records go into one aggregate; a record alone travels
	// plain, as with the KPL, unless it must carry its id in the aggregate.
	maxCount := p.cfg.aggMaxCount
	if !p.cfg.aggregation || len(first.data)+len(first.key) >= p.cfg.aggMaxSize {
		maxCount = 1
	}
	agg.reset()
	n := 0
	for _, r := range recs {
		if n > 0 {
			if _, dup := sent[r.hk.lo]; dup || n == maxCount ||
				agg.sizeWith(r.key, r.ehk, r.id, len(r.data)) > p.cfg.aggMaxSize {
				break
			}
		}
		if maxCount > 1 || p.cfg.recordIDs {
			agg.add(r.key, r.ehk, r.id, r.data)
		}
		n++
	}
	if n == 1 && !p.cfg.recordIDs {
		return entry{shard: sh, members: recs[:1]},
			PutRecordsEntry{PartitionKey: first.key, ExplicitHashKey: first.ehk, Data: first.data}, 1
	}
	if room >= 0 && agg.size()+1 > room {
		return entry{}, PutRecordsEntry{}, 0 // no room in the call: the scratch stays within CollectionMaxSize
	}
	// An aggregate is routed by its first record's hash key, as the KPL
	// does; the stream's fast path takes the key itself.
	start := len(*scratch)
	*scratch = agg.appendTo(*scratch)
	put := PutRecordsEntry{PartitionKey: "a", Data: (*scratch)[start:len(*scratch):len(*scratch)]}
	if p.routed == nil {
		put.ExplicitHashKey = first.hk.String()
	}
	return entry{shard: sh, members: recs[:n]}, put, n
}

// call makes one PutRecords call, through the stream's fast path when it
// has one.
func (p *Producer) call(buf *sendBuffers) (PutRecordsOutput, error) {
	if p.routed == nil {
		out, err := p.dst.PutRecords(p.sendCtx, PutRecordsInput{Records: buf.puts})
		switch {
		case err == nil:
		case p.sendCtx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
			// The Putter's own timeout (an SDK's per-call deadline), not
			// the producer's: the call may succeed when sent again.
			err = &Error{Op: "PutRecords", Kind: ErrInternalFailure, Msg: "the call timed out", Err: err}
		default:
			err = asError("PutRecords", "", err)
		}
		return out, err
	}
	for _, e := range buf.entries {
		buf.keys = append(buf.keys, e.members[0].hk)
		// The stream refuses an entry unless its shard still holds the whole
		// range the producer queued for: after a split it refuses all of
		// the parent's records until the producer has the new map.
		buf.spans = append(buf.spans, e.shard.rng)
	}
	return p.routed.PutRoutedRecords(p.sendCtx, PutRoutedRecordsInput{Entries: buf.puts, HashKeys: buf.keys, Ranges: buf.spans})
}

// complete handles a call's outcome: results for stored records, retries
// for failed ones, and the leftovers back to the head of their queues.
func (p *Producer) complete(claims []claim, entries []entry, leftovers []claim, out PutRecordsOutput, callErr error, sentAt time.Time) {
	done := &outcomes{calls: make([]outcome, 0, len(entries))}
	now := time.Now()
	var retry map[*producerShard][]pending // records to send again, by shard
	requeue := func(sh *producerShard, rs ...pending) {
		if retry == nil {
			retry = make(map[*producerShard][]pending)
		}
		retry[sh] = append(retry[sh], rs...)
	}
	throttles, retries := 0, 0
	var lastErr error
	p.mu.Lock()
	if len(entries) > 0 {
		p.metrics.PutRecordsCalls++
	}
	for i, e := range entries {
		if callErr != nil || i >= len(out.Records) || attempted(out.Records[i].Err) {
			for j := range e.members {
				e.members[j].attempts++
			}
		}
		var err error
		switch {
		case callErr != nil:
			err = callErr
		case i < len(out.Records):
			if err = out.Records[i].Err; err != nil && p.routed == nil {
				err = asError("PutRecords", "", err) // classify what a user's Putter returned
			}
		default:
			err = errorf("PutRecords", ErrInternalFailure, "response has %d results for %d records", len(out.Records), len(entries))
		}
		if err == nil {
			r := out.Records[i]
			p.metrics.KinesisRecordsPut++
			if r.ShardID != e.shard.id {
				p.mapStale = true // the stream was resharded: learn the new shards
				if p.routed == nil && len(e.members) > 1 {
					// A split raced the call: the aggregate may hold user
					// records that its shard does not own. The first one
					// routed it, so it is owned; check the others against
					// the new shard map before reporting them.
					done.add(&e.members[0], storedResult(&e.members[0], r, 0, true), now)
					mp := misplaced{result: r}
					for j := 1; j < len(e.members); j++ {
						mp.members = append(mp.members, misplacedRecord{pending: e.members[j], sub: j})
					}
					p.misplaced = append(p.misplaced, mp)
					continue
				}
			}
			aggregated := len(e.members) > 1 || p.cfg.recordIDs
			for j := range e.members {
				done.add(&e.members[j], storedResult(&e.members[j], r, j, aggregated), now)
			}
			continue
		}
		if !attempted(err) {
			p.mapStale = p.mapStale || errors.Is(err, ErrShardMapChanged)
			requeue(e.shard, e.members...)
			continue
		}
		throttled := errors.Is(err, ErrProvisionedThroughputExceeded)
		if throttled {
			p.metrics.Throttles++
			throttles++
		}
		backoff := false
		for _, m := range e.members {
			m.lastErr = err
			switch {
			case p.aborted && callErr != nil:
				done.add(&m, p.failure(&m, &Error{Op: "Close", Kind: ErrClosed, Msg: "the producer closed while the call carrying the record was cut off", Err: err}), now)
			case (throttled && p.cfg.failIfThrottled) || !IsRetryable(err):
				done.add(&m, p.failure(&m, err), now)
			default:
				requeue(e.shard, m)
				p.metrics.Retries++
				retries++
				lastErr = err
				backoff = true
			}
		}
		if backoff {
			e.shard.notBefore = maxTime(e.shard.notBefore, sentAt.Add(p.cfg.backoff(e.members[0].attempts)))
		}
	}
	// Put failed records, then leftovers, back at the head of their queues,
	// in their original order, and free the shards.
	for _, c := range claims {
		sh := c.shard
		back := retry[sh]
		for _, l := range leftovers {
			if l.shard == sh {
				back = append(back, l.records...)
			}
		}
		for _, r := range back {
			p.unsent++
			p.unsentBytes += r.size()
		}
		sh.queue.giveBack(back)
		sh.queue.settle()
		sh.busy = false
	}
	p.inFlight--
	p.mu.Unlock()
	if retries > 0 {
		p.cfg.logger.Debug("runnel: producer retrying records", "records", retries, "throttled_kinesis_records", throttles, "error", lastErr)
	}
	p.finish(done)
	p.signal()
}

// misplaced is an aggregate stored in a shard other than the one the
// producer routed it to, on the generic path: a split raced the call. Its
// members wait for the next shard map, which tells which of them the shard
// that stored them owns.
type misplaced struct {
	result  PutRecordsResult
	members []misplacedRecord
}

// misplacedRecord is a user record of a misplaced aggregate, and its index
// in the aggregate.
type misplacedRecord struct {
	pending
	sub int
}

// storedResult is the result of member j of a Kinesis record stored as r.
func storedResult(m *pending, r PutRecordsResult, j int, aggregated bool) ProducerResult {
	res := ProducerResult{ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, Aggregated: aggregated, RecordID: m.id, Attempts: m.attempts}
	if aggregated {
		res.SubSequenceNumber = j
	}
	return res
}

// attempted reports whether a record's result counts as a delivery attempt:
// a record refused for a stale shard map, or not tried, does not.
func attempted(err error) bool {
	return !errors.Is(err, ErrShardMapChanged) && !errors.Is(err, ErrNotAttempted)
}

// errClosedUndelivered fails the records that Close gave up on.
var errClosedUndelivered = errorf("Close", ErrClosed, "the producer closed before the record was delivered")

// errClosedUnverified fails the records of a misplaced aggregate that Close
// gave up on: a reader that drops records outside its shard's range, as the
// KCL does, does not see them.
var errClosedUnverified = errorf("Close", ErrClosed, "the producer closed before it could check, and send again, a record stored in a shard that may not own its hash key")

// failure is the result of a record that failed with err.
func (p *Producer) failure(r *pending, err error) ProducerResult {
	return ProducerResult{RecordID: r.id, Attempts: r.attempts, Err: err}
}

// failExpiredLocked fails a record whose TTL passed.
func (p *Producer) failExpiredLocked(r *pending, done *outcomes, now time.Time) {
	err := &Error{Op: "Put", Kind: ErrRecordExpired, Msg: fmt.Sprintf("after %v and %d attempt(s)", p.cfg.recordTTL, r.attempts), Err: r.lastErr}
	done.add(r, p.failure(r, err), now)
}

// finish releases the buffer space of completed records and counts them,
// runs their callbacks one at a time, and then marks them done for Flush
// and Close. Space is released first so that a callback may put again.
func (p *Producer) finish(done *outcomes) {
	if done == nil || done.records == 0 {
		return
	}
	p.mu.Lock()
	p.held -= done.records
	p.heldBytes -= done.bytes
	p.metrics.UserRecordsPut += done.ok
	p.metrics.UserRecordsFailed += done.fail
	p.metrics.BufferedTimeTotal += done.waited
	p.metrics.BufferedTimeMax = max(p.metrics.BufferedTimeMax, done.maxWaited)
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.mu.Unlock()

	if done.fail > 0 {
		p.cfg.logger.Warn("runnel: producer records failed", "records", done.fail, "first_error", done.firstErr)
	}
	if len(done.calls) > 0 {
		p.callbacks <- struct{}{}
		for _, c := range done.calls {
			c.done(c.res)
		}
		<-p.callbacks
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range done.gens {
		i, _ := slices.BinarySearchFunc(p.outstanding, g.gen, func(c genCount, gen uint64) int { return cmp.Compare(c.gen, gen) })
		p.outstanding[i].n -= g.n
	}
	p.outstanding = slices.DeleteFunc(p.outstanding, func(c genCount) bool { return c.n == 0 })
	if p.completed != nil {
		close(p.completed)
		p.completed = nil
	}
}

// refreshShards learns the stream's shards after a reshard and moves the
// queued records to the shards that now own their hash keys, keeping each
// key's order. It checks misplaced aggregates against the new map: their
// members that the storing shard owns are reported stored, the others are
// sent again, ahead of their keys' later records. It runs while no call is
// in flight, and returns the outcomes to finish.
func (p *Producer) refreshShards() *outcomes {
	ctx, cancel := context.WithTimeout(p.sendCtx, p.cfg.backoffMax)
	shards, ranges, err := p.listShards(ctx)
	cancel()
	if err != nil {
		p.cfg.logger.Warn("runnel: producer could not refresh its shard map", "error", err)
	}
	done, resent := p.installShards(shards, ranges, err)
	if err == nil {
		p.cfg.logger.Info("runnel: producer refreshed its shard map", "open_shards", len(shards), "records_resent", resent)
	}
	return done
}

// installShards installs the shard map a refresh listed (or, when err is
// set, keeps the old one and schedules another refresh), and returns the
// outcomes to finish and how many records it sends again.
func (p *Producer) installShards(shards []*producerShard, ranges map[string]HashKeyRange, err error) (*outcomes, int) {
	now := time.Now()
	done := &outcomes{}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshing = false
	if err != nil {
		// Keep the old map and try again after a pause.
		p.refreshAt = now.Add(p.cfg.backoffBase)
		p.mapStale = len(p.misplaced) > 0 // misplaced records need the new map
		for _, sh := range p.shards {
			sh.notBefore = maxTime(sh.notBefore, p.refreshAt)
		}
		return done, 0
	}
	old := p.shards
	p.setShards(shards, ranges)
	// Requeue in put order, so that every queue's head is its oldest record
	// again and each key's records keep their order.
	var all []pending
	for _, sh := range old {
		for _, r := range sh.queue.items() {
			all = append(all, r)
			ns := p.shards[p.route(r.hk)]
			ns.notBefore = maxTime(ns.notBefore, sh.notBefore)
		}
	}
	resent := 0
	for _, mp := range p.misplaced {
		rng, listed := ranges[mp.result.ShardID]
		for j := range mp.members {
			m := &mp.members[j].pending
			if listed && rng.Contains(m.hk) {
				done.add(m, storedResult(m, mp.result, mp.members[j].sub, true), now)
				continue
			}
			m.lastErr = errorf("PutRecords", ErrInternalFailure, "stored in shard %s, which does not own the record's hash key", mp.result.ShardID)
			all = append(all, *m)
			p.unsent++
			p.unsentBytes += m.size()
			p.metrics.Retries++
			resent++
		}
	}
	p.misplaced = nil
	slices.SortFunc(all, func(a, b pending) int { return cmp.Compare(a.order, b.order) })
	for _, r := range all {
		p.shards[p.route(r.hk)].queue.push(r)
	}
	p.mapStale = false
	return done, resent
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
