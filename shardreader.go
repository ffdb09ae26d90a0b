package runnel

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// ErrShardEnded is returned by ShardReader.Next after the batch that ended
// the shard: the shard is closed and every record of it has been read. It
// is not a Kinesis error and not retryable.
var ErrShardEnded error = &runnelError{text: "the shard has ended: every record of the closed shard was read"}

// Batch is what ShardReader.Next returns: the next user records of a shard,
// in order.
type Batch struct {
	// ShardID is the shard read.
	ShardID string
	// Records are the user records, deaggregated: a plain Kinesis record is
	// one user record with SubSequenceNumber 0, an aggregate gives each of
	// its user records with its index. Their Data alias the stream's memory
	// and are read-only; the slice itself is reused by the next call of
	// Next, so keep what you need (copying a UserRecord does not copy Data).
	Records []UserRecord
	// Bytes is the size of the Kinesis records read for this batch
	// (partition keys and data).
	Bytes int
	// MillisBehindLatest is how far the batch is behind the newest record of
	// the shard, as GetRecords reports it; 0 when caught up.
	MillisBehindLatest int64
	// Dropped counts the user records of aggregates that were dropped
	// because their hash key lies outside the shard's range (see
	// ShardReader).
	Dropped int
	// End is set on the last batch of a closed shard, which may hold no
	// records; ChildShards then names the shards that continue it.
	End bool
	// ChildShards are the shards created from this one, set with End.
	ChildShards []ChildShard
}

// readerConfig is a ShardReader's configuration.
type readerConfig struct {
	from        StartingPosition
	after       Checkpoint
	idleWait    time.Duration
	calls       int // GetRecords calls per second; 0: unpaced
	bytes       int // bytes per second; 0: unpaced
	rateSet     bool
	limit       int
	maxBackoff  time.Duration
	fanOut      string // the consumer ARN to subscribe with; "" to poll
	logger      *slog.Logger
	retried     func(error) // told of each failure the reader retries; may be nil
	optionError error
}

// ReaderOption configures a ShardReader (and, through WithReaderOptions, the
// readers of a Consumer).
type ReaderOption func(*readerConfig)

// WithReaderStart sets where a reader starts: TrimHorizon (the default),
// Latest, AtTimestamp, AtSequenceNumber or AfterSequenceNumber.
// WithReaderCheckpoint overrides it.
func WithReaderStart(p StartingPosition) ReaderOption {
	return func(c *readerConfig) {
		if err := checkIteratorType("WithReaderStart", ErrInvalidArgument, p.Type); err != nil {
			c.optionError = err
		}
		c.from = p
	}
}

// WithReaderCheckpoint makes a reader start right after a checkpoint: after
// the user record it names, which may be in the middle of an aggregate, or,
// for a checkpoint at ShardEnd, at the end of the shard. The zero Checkpoint
// leaves WithReaderStart in force.
func WithReaderCheckpoint(cp Checkpoint) ReaderOption { return func(c *readerConfig) { c.after = cp } }

// WithReaderIdleWait sets how long a polling reader waits before asking
// again once it has caught up with the shard (the KCL's
// idleTimeBetweenReadsInMillis). Default 1 s. A reader of a *Stream does not
// poll: writers wake it.
func WithReaderIdleWait(d time.Duration) ReaderOption {
	return func(c *readerConfig) {
		if d < 0 {
			c.optionError = errorf("WithReaderIdleWait", ErrInvalidArgument, "idle wait %v is negative", d)
		}
		c.idleWait = d
	}
}

// WithReaderRate caps a reader's GetRecords calls per second and bytes read
// per second. A shard's read limits (5 calls/s and 2 MiB/s on Kinesis) are
// shared by every reader of the shard, so a reader that shares a shard
// with others should take only its share; a reader that is throttled anyway
// backs off. 0 leaves a dimension unpaced. The default is Kinesis's limits
// for a StreamReader other than *Stream, and the stream's own Limits for a
// *Stream (unpaced for a stream without limits).
func WithReaderRate(callsPerSecond, bytesPerSecond int) ReaderOption {
	return func(c *readerConfig) {
		if callsPerSecond < 0 || bytesPerSecond < 0 {
			c.optionError = errorf("WithReaderRate", ErrInvalidArgument, "read rate %d calls/s and %d bytes/s must not be negative", callsPerSecond, bytesPerSecond)
		}
		c.calls, c.bytes, c.rateSet = callsPerSecond, bytesPerSecond, true
	}
}

// WithReaderBatchLimit sets the most Kinesis records one GetRecords call
// asks for: 1 to 10,000. Default 10,000.
func WithReaderBatchLimit(n int) ReaderOption {
	return func(c *readerConfig) {
		if n < 1 || n > MaxGetRecordsLimit {
			c.optionError = errorf("WithReaderBatchLimit", ErrInvalidArgument, "batch limit %d is not between 1 and %d", n, MaxGetRecordsLimit)
		}
		c.limit = n
	}
}

// WithReaderMaxBackoff sets the longest wait between attempts after a throttle or
// a retryable failure; waits double from the pacing interval (at least
// 100 ms) up to it, with jitter. Default 5 s.
func WithReaderMaxBackoff(d time.Duration) ReaderOption {
	return func(c *readerConfig) {
		if d <= 0 {
			c.optionError = errorf("WithReaderMaxBackoff", ErrInvalidArgument, "maximum backoff %v must be positive", d)
		}
		c.maxBackoff = d
	}
}

// WithReaderFanOut makes a reader use enhanced fan-out: it subscribes to
// the shard as the registered consumer consumerARN (see
// RegisterStreamConsumer) and takes the records pushed to it, instead of
// polling with GetRecords. Its StreamReader must also be a
// ShardSubscriber (*Stream is).
// The reader renews the subscription when it ends (every 5 minutes on
// Kinesis), after the last continuation sequence number, so that no
// record is skipped or repeated, and subscribes again, backing off, after a
// takeover (ErrResourceInUse), the subscribe rate (ErrLimitExceeded) or a
// retryable failure. Two readers of one consumer and shard therefore take
// the shard from each other in turn: give each its own consumer.
// WithReaderIdleWait does not apply (the reader waits for pushed records),
// WithReaderRate only sets the floor of the backoff (default 1 s: one
// subscribe call a second), and WithReaderBatchLimit still bounds batches;
// the consumer's own read budget paces the reads.
func WithReaderFanOut(consumerARN string) ReaderOption {
	return func(c *readerConfig) {
		if _, _, err := parseConsumerARN("WithReaderFanOut", consumerARN); err != nil {
			c.optionError = err
		}
		c.fanOut = consumerARN
	}
}

// WithReaderLogger sets where a reader logs its retries (at debug level)
// and the aggregates it cannot decode (at warn level). Default: nowhere.
func WithReaderLogger(l *slog.Logger) ReaderOption {
	return func(c *readerConfig) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	}
}

// Kinesis's per-shard read limits, the default pace of a polling reader.
const (
	kinesisReadCalls = 5
	kinesisReadBytes = 2 << 20
	minBackoff       = 100 * time.Millisecond
)

func newReaderConfig(opts []ReaderOption) (readerConfig, error) {
	c := readerConfig{
		from:       StartingPosition{Type: TrimHorizon},
		idleWait:   time.Second,
		limit:      MaxGetRecordsLimit,
		maxBackoff: 5 * time.Second,
		logger:     slog.New(slog.DiscardHandler),
	}
	for i, o := range opts {
		if o == nil {
			return c, errorf("NewShardReader", ErrInvalidArgument, "reader option %d is nil", i)
		}
		o(&c)
		if c.optionError != nil {
			return c, c.optionError
		}
	}
	return c, nil
}

// ShardReader reads the user records of one shard through a StreamReader,
// as a KCL record processor receives them. It is what a Consumer runs for
// each shard it holds, and can be used on its own.
//
// Reading a *Stream, it waits at the end of the shard until a writer wakes
// it: it never polls. On a stream without read limits a record reaches it
// about a microsecond after the write; on a stream with Kinesis's limits it
// keeps to the shard's 5 calls/s (see WithReaderRate), so a record may
// wait up to 200 ms.
// Reading another StreamReader (an adapter over Amazon Kinesis, say), it
// polls: within WithReaderRate's pace, waiting WithReaderIdleWait once caught up,
// and backing off when throttled. With WithReaderFanOut it polls nothing:
// it takes the events that a subscription of a registered consumer pushes
// (enhanced fan-out), on a *Stream or over any ShardSubscriber.
//
// It deaggregates KPL aggregates, giving each user record its sub-sequence
// number, and drops the user records of an aggregate whose hash key lies
// outside the shard's HashKeyRange, as the KCL does. Those records are not
// lost: such an aggregate is stored when a producer routed it with an
// outdated shard map, and the producer sends the records again to the
// shard that owns them (the runnel Producer does; so does the KPL). An
// aggregate that carries a valid digest but does not decode is passed on
// whole as one plain user record, so that nothing is lost silently.
//
// After an expired iterator, a throttle or a retryable failure
// (IsRetryable), it resumes right after the last user record it returned:
// none is skipped and none repeated. Other errors are returned.
//
// A ShardReader is not safe for concurrent use: one goroutine calls Next.
type ShardReader struct {
	src    StreamReader
	stream *Stream         // src, when it is a *Stream: writers wake the reader
	fanOut ShardSubscriber // src, in fan-out mode (WithReaderFanOut)
	shard  Shard
	cfg    readerConfig

	it        ShardIterator
	sub       ShardSubscription  // in fan-out mode, the live subscription
	cancelSub context.CancelFunc // ends the context sub was made with
	cont      SequenceNumber     // in fan-out mode, the last continuation number, once records came
	srcEnded  bool               // the source has nothing after pending: the shard ended
	pending   []Record           // records of the last GetRecords call not yet served
	behind    int64              // MillisBehindLatest of that call
	children  []ChildShard       // ChildShards of that call
	last      Checkpoint         // the last user record returned (zero: none yet)
	resume    Checkpoint         // after a seek: user records up to it are skipped
	ended     bool
	closed    bool
	buf       []Record
	urs       []UserRecord
	wake      shardWaker
	nextCall  time.Time // pacing: the earliest time of the next call
	backoff   time.Duration
	expired   int // iterators expired since the last successful read
}

// NewShardReader returns a reader of a shard of src. shard is the shard as
// ListShards describes it: its ShardID is required, and its HashKeyRange
// decides which user records of aggregates are dropped (see ShardReader);
// when shard holds only a ShardID, the reader lists the stream's shards
// to learn the range.
// The reader calls src only when Next is called; call Close when done.
func NewShardReader(src StreamReader, shard Shard, opts ...ReaderOption) (*ShardReader, error) {
	const op = "NewShardReader"
	if isNil(src) {
		return nil, errorf(op, ErrInvalidArgument, "the StreamReader is nil")
	}
	if shard.ShardID == "" {
		return nil, errorf(op, ErrInvalidArgument, "the shard has no ShardID")
	}
	if r := shard.HashKeyRange; r.StartingHashKey.Cmp(r.EndingHashKey) > 0 {
		return nil, errorf(op, ErrInvalidArgument, "hash key range %v–%v of shard %s is empty", r.StartingHashKey, r.EndingHashKey, shard.ShardID)
	}
	cfg, err := newReaderConfig(opts)
	if err != nil {
		return nil, err
	}
	if why := cfg.after.invalid(); why != "" {
		return nil, errorf(op, ErrInvalidArgument, "checkpoint to read after %s", why)
	}
	r := &ShardReader{src: src, shard: shard, cfg: cfg, last: cfg.after, ended: cfg.after.ShardEnd}
	if r.ended {
		r.last = Checkpoint{}
	}
	s, ok := src.(*Stream)
	if cfg.fanOut != "" {
		if r.fanOut, ok = src.(ShardSubscriber); !ok {
			return nil, errorf(op, ErrInvalidArgument, "fan-out needs a StreamReader that is a ShardSubscriber; %T is not", src)
		}
		if !cfg.rateSet {
			r.cfg.calls = 1 // subscribe calls: Kinesis allows one a second
		}
	} else if ok {
		r.stream = s
		r.wake = newShardWaker()
		if !cfg.rateSet {
			r.cfg.calls, r.cfg.bytes = s.cfg.limits.ReadCallsPerSecond, s.cfg.limits.ReadBytesPerSecond
		}
	} else if !cfg.rateSet {
		r.cfg.calls, r.cfg.bytes = kinesisReadCalls, kinesisReadBytes
	}
	return r, nil
}

// Shard returns the shard the reader reads. A reader made from a ShardID
// alone learns the rest (the hash key range, the parents) at its first
// Next.
func (r *ShardReader) Shard() Shard { return r.shard }

// Position returns the checkpoint of the last user record Next returned
// (ShardEnd once the shard has ended), or the WithReaderCheckpoint
// checkpoint if Next has returned none yet.
func (r *ShardReader) Position() Checkpoint {
	if r.ended {
		return Checkpoint{ShardEnd: true}
	}
	return r.last
}

// Close releases the reader's wake-up registration or subscription; Next
// then fails with ErrClosed. It never fails and may be called more than
// once.
func (r *ShardReader) Close() error {
	r.wake.stop()
	r.unsubscribe()
	r.closed = true
	return nil
}

// Next returns the next batch of user records: it blocks until there is at
// least one, until the shard ends (a last batch with End set, possibly
// empty), or until ctx ends (ctx's error). After the end it returns
// ErrShardEnded. Batch.Records is valid until the next call.
//
// A batch holds the user records of at most WithReaderBatchLimit Kinesis records,
// and stops after the Kinesis record that brings it to that many user
// records: the user records of one GetRecords call are served over several
// batches when its aggregates hold more, so that memory stays bounded.
func (r *ShardReader) Next(ctx context.Context) (Batch, error) {
	const op = "ShardReader.Next"
	b := Batch{ShardID: r.shard.ShardID}
	switch {
	case r.closed:
		return b, errorf(op, ErrClosed, "the reader of shard %s is closed", r.shard.ShardID)
	case r.ended:
		return b, errorf(op, ErrShardEnded, "shard %s", r.shard.ShardID)
	}
	for {
		if err := ctx.Err(); err != nil {
			return b, ctxError(op, err)
		}
		if len(r.pending) == 0 {
			got, err := r.fetch(ctx, op)
			if err != nil {
				return b, err
			}
			if !got {
				continue
			}
		}
		urs, n, dropped := r.deaggregate()
		b.Records, b.Bytes, b.Dropped = urs, b.Bytes+n, b.Dropped+dropped
		b.MillisBehindLatest = r.behind
		if len(r.pending) == 0 && r.srcEnded {
			r.ended, b.End, b.ChildShards = true, true, r.children
			r.wake.stop()
			return b, nil
		}
		if len(b.Records) > 0 {
			r.last = b.Records[len(b.Records)-1].Checkpoint()
			return b, nil
		}
		if len(r.pending) > 0 || r.behind > 0 {
			continue // more to read at once
		}
		if err := r.idle(ctx); err != nil {
			return b, ctxError(op, err)
		}
	}
}

// fetch reads the next Kinesis records into r.pending with one GetRecords
// call, getting an iterator first when the reader has none, or, in fan-out
// mode, with the next event of its subscription. It reports false, with no
// error, when the call is to be tried again: after an expired iterator, or
// a retryable failure it has waited out.
func (r *ShardReader) fetch(ctx context.Context, op string) (bool, error) {
	if r.fanOut != nil {
		return r.fetchPushed(ctx, op)
	}
	if r.it.IsZero() {
		if err := r.seekOnce(ctx); err != nil {
			if err := r.retry(ctx, op, err); err != nil {
				return false, asError(op, "", err)
			}
			return false, nil
		}
	}
	if err := r.pace(ctx); err != nil {
		return false, ctxError(op, err)
	}
	if r.stream != nil && r.it.token == "" {
		r.wake.arm(r.stream, r.it.shard)
		// The iterator is this reader's own: renew it, so that a long wait
		// at the tip does not let it expire.
		r.it.issuedMs = time.Now().UnixMilli()
	}
	out, err := r.src.GetRecords(ctx, GetRecordsInput{ShardIterator: r.it, Limit: r.cfg.limit, Buffer: r.buf})
	r.charge(out.Records)
	if err != nil {
		if errors.Is(err, ErrExpiredIterator) {
			r.it = ShardIterator{} // get a new one after the last record returned
			if r.expired++; r.expired == 1 {
				return false, nil // at once
			}
			// Expired again with no read in between: back off as after
			// a failure, so that a stream whose iterators expire at once
			// is not asked in a loop.
			if err := r.sleepBackoff(ctx, op, err); err != nil {
				return false, err
			}
			return false, nil
		}
		if err := r.retry(ctx, op, err); err != nil {
			return false, asError(op, "", err)
		}
		return false, nil
	}
	r.backoff, r.expired = 0, 0
	r.buf, r.pending = out.Records, out.Records
	r.behind, r.children, r.it = out.MillisBehindLatest, out.ChildShards, out.NextShardIterator
	r.srcEnded = r.it.IsZero()
	return true, nil
}

// fetchPushed takes the next event of the reader's subscription into
// r.pending, subscribing first when the reader has no subscription.
func (r *ShardReader) fetchPushed(ctx context.Context, op string) (bool, error) {
	if r.sub == nil {
		if err := r.subscribe(ctx); err != nil {
			if err := r.retrySubscribe(ctx, op, err); err != nil {
				return false, asError(op, "", err)
			}
			return false, nil
		}
	}
	ev, err := r.sub.Next(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctxError(op, ctx.Err())
		}
		r.unsubscribe()
		if errors.Is(err, ErrSubscriptionEnded) {
			return false, nil // renew at once
		}
		if err := r.retrySubscribe(ctx, op, err); err != nil {
			return false, asError(op, "", err)
		}
		return false, nil
	}
	r.backoff = 0
	r.pending, r.behind = ev.Records, ev.MillisBehindLatest
	switch {
	case ev.ContinuationSequenceNumber.IsZero(): // the last event of a closed shard
		r.srcEnded, r.children = true, ev.ChildShards
		r.unsubscribe()
	case len(ev.Records) > 0 || !r.cont.IsZero():
		// From the first record on: before it, a subscription still
		// seeking a future AtTimestamp has idle continuation numbers that
		// lie before that time.
		r.cont = ev.ContinuationSequenceNumber
	}
	return true, nil
}

// subscribe starts a subscription after the last continuation number, or
// else after the last user record returned or at the starting position.
func (r *ShardReader) subscribe(ctx context.Context) error {
	if err := r.learnShard(ctx); err != nil {
		return err
	}
	from := r.position()
	if !r.cont.IsZero() {
		// Every record up to it has been returned (or dropped).
		from, r.resume = StartingPosition{Type: AfterSequenceNumber, SequenceNumber: r.cont}, Checkpoint{}
	}
	asked := time.Now()
	// The subscription is the reader's until Close, not bound to the Next
	// call that starts it; that call's ctx bounds only the subscribe call.
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	sub, err := r.fanOut.SubscribeToShard(subCtx, SubscribeToShardInput{ConsumerARN: r.cfg.fanOut, ShardID: r.shard.ShardID, StartingPosition: from})
	if !stop() { // ctx ended during the call
		if sub != nil {
			sub.Close()
		}
		return ctxError("SubscribeToShard", ctx.Err())
	}
	if err != nil {
		cancel()
		return err
	}
	r.pinLatest(from, asked)
	r.sub, r.cancelSub = sub, cancel
	return nil
}

// retrySubscribe is retry for fan-out, which also retries when another
// subscription holds the shard or the consumer is not ACTIVE yet
// (ErrResourceInUse).
func (r *ShardReader) retrySubscribe(ctx context.Context, op string, err error) error {
	if errors.Is(err, ErrResourceInUse) && ctx.Err() == nil {
		return r.sleepBackoff(ctx, op, err)
	}
	return r.retry(ctx, op, err)
}

// unsubscribe closes the reader's subscription, if it has one.
func (r *ShardReader) unsubscribe() {
	if r.sub != nil {
		r.sub.Close()
		r.cancelSub()
		r.sub, r.cancelSub = nil, nil
	}
}

// seekOnce learns the shard's range if it is not known, then seeks.
func (r *ShardReader) seekOnce(ctx context.Context) error {
	if err := r.learnShard(ctx); err != nil {
		return err
	}
	return r.seek(ctx)
}

// learnShard lists the shards to learn the shard's range if it is not
// known.
func (r *ShardReader) learnShard(ctx context.Context) error {
	if r.shard.HashKeyRange != (HashKeyRange{}) {
		return nil
	}
	sh, err := findShard(ctx, r.src, r.shard.ShardID)
	if err != nil {
		return err
	}
	r.shard = sh
	return nil
}

// findShard lists the shards of src to find shardID.
func findShard(ctx context.Context, src StreamReader, shardID string) (Shard, error) {
	shards, err := listAllShards(ctx, src)
	if err != nil {
		return Shard{}, err
	}
	for _, sh := range shards {
		if sh.ShardID == shardID {
			return sh, nil
		}
	}
	return Shard{}, errorf("ListShards", ErrResourceNotFound, "shard %s is not listed", shardID)
}

// seek gets an iterator right after the last user record returned, or at
// the starting position when none was.
func (r *ShardReader) seek(ctx context.Context) error {
	from := r.position()
	asked := time.Now()
	it, err := r.src.GetShardIterator(ctx, GetShardIteratorInput{ShardID: r.shard.ShardID, StartingPosition: from})
	if err != nil {
		return err
	}
	r.pinLatest(from, asked)
	r.it = it
	return nil
}

// position is where to read from: at the last user record returned (the
// user records of its aggregate up to that one are skipped by deaggregate),
// or the starting position when none was.
func (r *ShardReader) position() StartingPosition {
	if r.last.IsZero() {
		return r.cfg.from
	}
	r.resume = r.last
	return StartingPosition{Type: AtSequenceNumber, SequenceNumber: r.last.SequenceNumber}
}

// pinLatest makes a LATEST start, once asked for at asked, start at that
// moment if the reader must seek again before a record came, rather than
// at the newest record then.
func (r *ShardReader) pinLatest(from StartingPosition, asked time.Time) {
	if from.Type == Latest {
		r.cfg.from = StartingPosition{Type: AtTimestamp, Timestamp: asked}
	}
}

// deaggregate turns pending Kinesis records into a batch's user records,
// until the batch holds the batch limit, skipping those up to the resume
// point and dropping aggregated ones outside the shard's range.
func (r *ShardReader) deaggregate() (urs []UserRecord, bytes, dropped int) {
	urs = r.urs[:0]
	for len(r.pending) > 0 && len(urs) < r.cfg.limit {
		rec := &r.pending[0]
		r.pending = r.pending[1:]
		bytes += len(rec.PartitionKey) + len(rec.Data)
		resuming := !r.resume.IsZero()
		if resuming {
			if c := rec.SequenceNumber.Cmp(r.resume.SequenceNumber); c > 0 {
				r.resume, resuming = Checkpoint{}, false // past the resume point
			} else if c < 0 {
				continue // before it
			}
		}
		body, agg := aggBody(rec.Data)
		if !agg {
			if !resuming { // the resume point is this record itself otherwise
				urs = append(urs, plainUserRecord(rec))
			}
			continue
		}
		n := len(urs)
		var err error
		if urs, err = appendAggregate(urs, body, rec.SequenceNumber, rec.ApproximateArrivalTimestamp); err != nil {
			r.cfg.logger.Warn("runnel: passing on an aggregate that does not decode as one plain record",
				"shard", r.shard.ShardID, "sequenceNumber", rec.SequenceNumber, "err", err)
			if !resuming {
				urs = append(urs, plainUserRecord(rec))
			}
			continue
		}
		// Keep the user records after the resume point that lie in the
		// shard's range.
		kept := n
		for j := n; j < len(urs); j++ {
			u := &urs[j]
			if resuming && int64(u.SubSequenceNumber) <= r.resume.SubSequenceNumber {
				continue
			}
			if !r.inRange(u) {
				dropped++
				continue
			}
			if kept != j {
				urs[kept] = *u
			}
			kept++
		}
		clear(urs[kept:])
		urs = urs[:kept]
	}
	r.urs = urs
	return urs, bytes, dropped
}

// plainUserRecord is a Kinesis record that is not an aggregate, as a user
// record.
func plainUserRecord(rec *Record) UserRecord {
	return UserRecord{
		PartitionKey:                rec.PartitionKey,
		Data:                        rec.Data,
		SequenceNumber:              rec.SequenceNumber,
		ApproximateArrivalTimestamp: rec.ApproximateArrivalTimestamp,
	}
}

// inRange reports whether a user record belongs to the shard's hash keys. A
// malformed explicit hash key cannot be routed anywhere: it is kept, so that
// it is not lost.
func (r *ShardReader) inRange(u *UserRecord) bool {
	k, err := u.HashKey()
	return err != nil || r.shard.HashKeyRange.Contains(k)
}

// pace waits until the reader's rate allows the next call.
func (r *ShardReader) pace(ctx context.Context) error {
	if d := time.Until(r.nextCall); d > 0 {
		return sleepCtx(ctx, d)
	}
	return nil
}

// charge sets the earliest time of the next call after a call that returned
// recs.
func (r *ShardReader) charge(recs []Record) {
	if r.cfg.calls == 0 && r.cfg.bytes == 0 {
		return
	}
	var gap time.Duration
	if r.cfg.calls > 0 {
		gap = time.Second / time.Duration(r.cfg.calls)
	}
	if r.cfg.bytes > 0 {
		n := 0
		for i := range recs {
			n += len(recs[i].PartitionKey) + len(recs[i].Data)
		}
		gap = max(gap, time.Duration(int64(n)*int64(time.Second)/int64(r.cfg.bytes)))
	}
	r.nextCall = time.Now().Add(gap)
}

// retry waits before another attempt after a retryable error, doubling the
// wait each time; it returns err when err is not retryable or ctx ends.
func (r *ShardReader) retry(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctxError(op, ctx.Err())
	}
	if !IsRetryable(err) {
		return err
	}
	return r.sleepBackoff(ctx, op, err)
}

// sleepBackoff waits the next backoff, doubling it; it fails with ctx's
// error if ctx ends first.
func (r *ShardReader) sleepBackoff(ctx context.Context, op string, err error) error {
	floor := minBackoff
	if r.cfg.calls > 0 {
		floor = max(floor, time.Second/time.Duration(r.cfg.calls))
	}
	r.backoff = min(max(2*r.backoff, floor), max(r.cfg.maxBackoff, floor))
	wait := r.backoff/2 + rand.N(r.backoff/2+1)
	r.cfg.logger.Debug("runnel: reader retrying", "op", op, "shard", r.shard.ShardID, "wait", wait, "err", err)
	if r.cfg.retried != nil {
		r.cfg.retried(err)
	}
	if sleepCtx(ctx, wait) != nil {
		return ctxError(op, ctx.Err())
	}
	return nil
}

// idle waits once the reader has caught up: for a writer's wake-up on a
// *Stream, for the idle wait otherwise.
func (r *ShardReader) idle(ctx context.Context) error {
	if r.fanOut != nil {
		return nil // the subscription waits for records itself
	}
	if r.stream == nil || r.it.token != "" {
		return sleepCtx(ctx, r.cfg.idleWait)
	}
	select {
	case <-r.wake.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shardWaker is a reader's wake-up from a shard of a *Stream: armed before
// each read, so that no record can arrive unnoticed between the read and
// the wait. Its channel is the reader's own, reused for every wait, so
// waiting allocates nothing.
type shardWaker struct {
	ch      chan struct{}
	watched *shardState
}

func newShardWaker() shardWaker { return shardWaker{ch: make(chan struct{}, 1)} }

// arm drops an old signal (the read that follows sees its record) and asks
// the shard for the next one.
func (w *shardWaker) arm(s *Stream, shard uint64) {
	select {
	case <-w.ch:
	default:
	}
	if w.watched != nil && w.watched.num != shard {
		w.stop()
	}
	if w.watched = s.shards.Load().shard(shard); w.watched != nil {
		w.watched.watch(w.ch)
	}
}

// stop forgets the registration.
func (w *shardWaker) stop() {
	if w.watched != nil {
		w.watched.unwatch(w.ch)
		w.watched = nil
	}
}
