package runnel

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Putter is what a Producer needs from a stream: writing batches and
// learning the open shards. *Stream implements it; an adapter can implement
// it for Amazon Kinesis, so that the same producer code runs there.
// PutRecords must not keep the entries' Data after it returns: the producer
// reuses that memory.
type Putter interface {
	PutRecords(ctx context.Context, entries []PutRecordsEntry) (PutRecordsOutput, error)
	ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error)
}

// hashedPutter is implemented by *Stream: it takes precomputed hash keys and
// refuses aggregates whose user records would span shards.
type hashedPutter interface {
	putRecordsHashed(ctx context.Context, entries []PutRecordsEntry, keys []HashKey, spans []HashKeyRange) (PutRecordsOutput, error)
}

// Errors of the Producer (not Kinesis errors).
var (
	// ErrBufferFull is returned by TryPut, and by Put with
	// WithFailWhenBufferFull, when the producer's buffer has no room.
	ErrBufferFull = errors.New("runnel: producer buffer is full")
	// ErrRecordExpired is wrapped by the error of a record that could not be
	// delivered within its RecordTTL; the error also wraps the last error
	// the record met.
	ErrRecordExpired = errors.New("runnel: record TTL expired")
)

// ProducerRecord is a user record to put through a Producer.
type ProducerRecord struct {
	// PartitionKey routes the record: 1 to 256 Unicode characters. Required.
	PartitionKey string
	// ExplicitHashKey, if not empty, routes the record instead (decimal).
	ExplicitHashKey string
	// Data is the payload. The producer copies it; the caller may reuse it.
	Data []byte
}

// ProducerResult is the outcome of one user record.
type ProducerResult struct {
	// ShardID and SequenceNumber say where the record was stored. With
	// aggregation several user records share a SequenceNumber and differ in
	// SubSequenceNumber, as Deaggregate reports them.
	ShardID           string         // the shard that stored the record
	SequenceNumber    SequenceNumber // the Kinesis record that carries it
	SubSequenceNumber int            // its index within an aggregate
	// Aggregated reports whether the record travelled in an aggregate.
	Aggregated bool
	// RecordID is the record's unique id when WithRecordIDs is on.
	RecordID string
	// Attempts is the number of PutRecords calls that carried the record.
	Attempts int
	// Err is nil when the record was stored. Otherwise it wraps
	// ErrRecordExpired and the last error (for example
	// ErrProvisionedThroughputExceeded), ErrClosed when Close gave up on it,
	// or a non-retryable error of the stream. When the last error was one
	// of a whole call (a timeout, a call cut off by Close), the stream may
	// have stored the record all the same, as with any Kinesis client.
	Err error
}

// ProducerMetrics is a snapshot of a Producer's counters.
type ProducerMetrics struct {
	// UserRecordsPut counts user records stored; KinesisRecordsPut the
	// Kinesis records (aggregates or plain records) that carried them.
	UserRecordsPut, KinesisRecordsPut int64
	// UserRecordsFailed counts user records reported with an error.
	UserRecordsFailed int64
	// PutRecordsCalls counts calls made; Retries user records that failed
	// and were queued to be sent again (records that were only refused
	// because of a stale shard map, or not attempted after an earlier
	// failure, are requeued without counting); Throttles Kinesis records
	// refused by a shard's limit.
	PutRecordsCalls, Retries, Throttles int64
	// BufferedRecords and BufferedBytes are held now (queued or in flight).
	BufferedRecords, BufferedBytes int64
	// BufferedTimeTotal is the time user records waited from Put until
	// their outcome, summed; BufferedTimeMax the longest.
	BufferedTimeTotal, BufferedTimeMax time.Duration
}

// AggregationRatio returns user records per Kinesis record stored.
func (m ProducerMetrics) AggregationRatio() float64 {
	if m.KinesisRecordsPut == 0 {
		return 0
	}
	return float64(m.UserRecordsPut) / float64(m.KinesisRecordsPut)
}

type producerConfig struct {
	aggregation     bool
	aggMaxCount     int
	aggMaxSize      int
	collMaxCount    int
	collMaxSize     int
	maxBufferedTime time.Duration
	recordTTL       time.Duration
	rateLimit       int     // percent of shardLimits; 0: off
	shardLimits     *Limits // nil: the stream's
	failIfThrottled bool
	bufferBytes     int
	bufferRecords   int
	failWhenFull    bool
	maxInFlight     int
	maxRecordSize   int
	backoffBase     time.Duration
	backoffMax      time.Duration
	recordIDs       bool
}

// ProducerOption configures a Producer.
type ProducerOption func(*producerConfig)

// WithAggregation switches KPL aggregation on or off. Default on.
func WithAggregation(on bool) ProducerOption { return func(c *producerConfig) { c.aggregation = on } }

// WithAggregationMaxCount bounds the user records in one aggregate.
// Default 4,294,967,295 (the KPL's).
func WithAggregationMaxCount(n int) ProducerOption {
	return func(c *producerConfig) { c.aggMaxCount = n }
}

// WithAggregationMaxSize bounds the bytes of one aggregate. Default 51,200
// (the KPL's), or less when the stream's records must be smaller.
func WithAggregationMaxSize(bytes int) ProducerOption {
	return func(c *producerConfig) { c.aggMaxSize = bytes }
}

// WithCollectionMaxCount bounds the Kinesis records of one PutRecords call
// (1 to 500). Default 500.
func WithCollectionMaxCount(n int) ProducerOption {
	return func(c *producerConfig) { c.collMaxCount = n }
}

// WithCollectionMaxSize bounds the bytes of one PutRecords call. Default:
// the stream's PutRecords limit, when the Putter can describe it (as *Stream
// does), else 5 MiB.
func WithCollectionMaxSize(bytes int) ProducerOption {
	return func(c *producerConfig) { c.collMaxSize = bytes }
}

// WithRecordMaxBufferedTime sets how long a record may wait for a batch to
// fill before it is sent anyway. Default 100 ms.
func WithRecordMaxBufferedTime(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.maxBufferedTime = d }
}

// WithRecordTTL sets how long the producer keeps trying to deliver a record;
// then the record fails with ErrRecordExpired and its last error. Default 30 s.
func WithRecordTTL(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.recordTTL = d }
}

// WithRateLimit limits what the producer sends to each shard to percent of
// the shard's limits (WithShardLimits), so that it does not hammer a
// throttled shard. Default 150, as in the KPL; 0 switches it off.
func WithRateLimit(percent int) ProducerOption {
	return func(c *producerConfig) { c.rateLimit = percent }
}

// WithShardLimits tells the producer the stream's per-shard write limits,
// the basis of WithRateLimit. Default: the stream's, when the Putter can
// describe it (as *Stream does), else KinesisLimits(). Unlimited() switches
// rate limiting off.
func WithShardLimits(l Limits) ProducerOption { return func(c *producerConfig) { c.shardLimits = &l } }

// WithFailIfThrottled makes throttled records fail at once instead of being
// retried. Default off.
func WithFailIfThrottled(on bool) ProducerOption {
	return func(c *producerConfig) { c.failIfThrottled = on }
}

// WithBufferLimits bounds the user records and bytes (data + keys) the
// producer holds, queued or in flight. When either is reached, Put blocks
// until there is room (or fails with ErrBufferFull, see
// WithFailWhenBufferFull). Default 64 MiB and 1,000,000 records.
func WithBufferLimits(bytes, records int) ProducerOption {
	return func(c *producerConfig) { c.bufferBytes, c.bufferRecords = bytes, records }
}

// WithFailWhenBufferFull makes Put fail with ErrBufferFull instead of
// blocking when the buffer is full. Default off.
func WithFailWhenBufferFull(on bool) ProducerOption {
	return func(c *producerConfig) { c.failWhenFull = on }
}

// WithMaxInFlight bounds the concurrent PutRecords calls. Calls never
// overlap on a shard, which keeps each partition key's records in order.
// Default 4.
func WithMaxInFlight(n int) ProducerOption { return func(c *producerConfig) { c.maxInFlight = n } }

// WithProducerMaxRecordSize sets the stream's record size limit (data +
// partition key) the producer packs to. Default: the stream's, when the
// Putter can describe it (as *Stream does), else 1 MiB.
func WithProducerMaxRecordSize(bytes int) ProducerOption {
	return func(c *producerConfig) { c.maxRecordSize = bytes }
}

// WithRetryBackoff sets the exponential backoff of retries: the n-th retry
// of a shard waits about base·2^(n−1), at most max, with jitter. Default
// 100 ms and 5 s.
func WithRetryBackoff(base, max time.Duration) ProducerOption {
	return func(c *producerConfig) { c.backoffBase, c.backoffMax = base, max }
}

// WithRecordIDs gives every user record a unique id, carried in the
// aggregate as a tag (RecordIDTag) and returned by Deaggregate as
// UserRecord.RecordID, so that consumers can drop the duplicates that
// retries after a lost response create. Records then always travel in the
// aggregated format, also alone. Default off.
func WithRecordIDs(on bool) ProducerOption { return func(c *producerConfig) { c.recordIDs = on } }

// streamDescriber is implemented by Putters that can tell their stream's
// limits, as *Stream does; the producer then packs to them.
type streamDescriber interface {
	Describe(ctx context.Context) (StreamSummary, error)
}

// newProducerConfig applies the options over the defaults; the stream's
// own limits, when dst can describe them, replace the defaults of the
// sizes and shard limits that no option set.
func newProducerConfig(ctx context.Context, dst Putter, opts []ProducerOption) (producerConfig, error) {
	const op = "NewProducer"
	c := producerConfig{
		aggregation:     true,
		aggMaxCount:     int(min(4_294_967_295, math.MaxInt)),
		collMaxCount:    MaxPutRecordsEntries,
		maxBufferedTime: 100 * time.Millisecond,
		recordTTL:       30 * time.Second,
		rateLimit:       150,
		bufferBytes:     64 << 20,
		bufferRecords:   1_000_000,
		maxInFlight:     4,
		backoffBase:     100 * time.Millisecond,
		backoffMax:      5 * time.Second,
	}
	for _, o := range opts {
		o(&c)
	}
	stream := StreamSummary{Limits: KinesisLimits(), MaxRecordSize: 1 << 20, MaxPutRecordsSize: 5 << 20}
	if d, ok := dst.(streamDescriber); ok && (c.maxRecordSize == 0 || c.collMaxSize == 0 || c.shardLimits == nil) {
		sum, err := d.Describe(ctx)
		if err != nil {
			return c, fmt.Errorf("runnel: producer: describing the stream: %w", err)
		}
		stream = sum
	}
	if c.maxRecordSize == 0 {
		c.maxRecordSize = stream.MaxRecordSize
	}
	if c.collMaxSize == 0 {
		c.collMaxSize = stream.MaxPutRecordsSize
	}
	if c.shardLimits == nil {
		c.shardLimits = &stream.Limits
	}
	if c.aggMaxSize == 0 {
		c.aggMaxSize = min(51_200, c.maxRecordSize-1)
	}
	switch {
	case c.aggMaxCount < 1:
		return c, errorf(op, ErrInvalidArgument, "aggregation max count %d must be at least 1", c.aggMaxCount)
	case c.maxRecordSize < 1 || c.maxRecordSize > maxRecordSizeLimit:
		return c, errorf(op, ErrInvalidArgument, "max record size %d must be between 1 and %d", c.maxRecordSize, maxRecordSizeLimit)
	case (c.aggregation || c.recordIDs) && (c.aggMaxSize < aggOverhead+16 || c.aggMaxSize > c.maxRecordSize-1):
		return c, errorf(op, ErrInvalidArgument, "aggregation max size %d must be between %d and %d (the record size limit less the 1-byte partition key)", c.aggMaxSize, aggOverhead+16, c.maxRecordSize-1)
	case c.collMaxCount < 1 || c.collMaxCount > MaxPutRecordsEntries:
		return c, errorf(op, ErrInvalidArgument, "collection max count %d must be between 1 and %d", c.collMaxCount, MaxPutRecordsEntries)
	case c.collMaxSize < c.maxRecordSize:
		return c, errorf(op, ErrInvalidArgument, "collection max size %d is below the max record size %d", c.collMaxSize, c.maxRecordSize)
	case c.maxBufferedTime < 0:
		return c, errorf(op, ErrInvalidArgument, "record max buffered time %v is negative", c.maxBufferedTime)
	case c.recordTTL <= 0:
		return c, errorf(op, ErrInvalidArgument, "record TTL %v must be positive", c.recordTTL)
	case c.maxBufferedTime >= c.recordTTL:
		return c, errorf(op, ErrInvalidArgument, "record max buffered time %v must be below the record TTL %v", c.maxBufferedTime, c.recordTTL)
	case c.rateLimit < 0:
		return c, errorf(op, ErrInvalidArgument, "rate limit %d%% is negative", c.rateLimit)
	case c.bufferBytes < c.maxRecordSize || c.bufferRecords < 1:
		return c, errorf(op, ErrInvalidArgument, "buffer limits %d bytes / %d records must hold at least one record of %d bytes", c.bufferBytes, c.bufferRecords, c.maxRecordSize)
	case c.maxInFlight < 1:
		return c, errorf(op, ErrInvalidArgument, "max in flight %d must be at least 1", c.maxInFlight)
	case c.backoffBase <= 0 || c.backoffMax < c.backoffBase:
		return c, errorf(op, ErrInvalidArgument, "retry backoff base %v and max %v must be positive and base ≤ max", c.backoffBase, c.backoffMax)
	}
	return c, nil
}

// Producer puts user records to a stream asynchronously, the way the KPL
// does: it collects records into PutRecords calls, aggregates records bound
// for the same shard into KPL aggregates, retries what failed with backoff,
// and limits its rate per shard. Unlike the KPL its memory is bounded (Put
// blocks when the buffer is full) and it never drops a record silently:
// every accepted record's outcome is reported, also on Close.
//
// Each partition key's records are stored in the order they were put, also
// across retries and resharding: calls never overlap on a shard, and a
// retried record goes back to the head of its shard's queue. Through a
// runnel Stream this holds without exception. Through another Putter (real
// Kinesis), as with the KPL, an aggregate packed just before a split lands
// whole in the child of its first record, so another key in it may be
// stored in a sibling shard that does not own it; the producer refreshes
// its shard map as soon as a result shows the split, and Deaggregate still
// returns every record.
//
// All methods are safe for concurrent use. Result callbacks run one at a
// time on the producer's goroutines and must not block: while one runs, no
// other result is delivered and its sender sends nothing. A callback that
// puts again should use TryPut; it must not call PutSync, Flush or Close,
// which wait for results and would wait for themselves.
//
// Memory is bounded by WithBufferLimits for the records held, plus, per call
// in flight (WithMaxInFlight), the aggregates being sent (at most
// CollectionMaxSize each).
type Producer struct {
	dst    Putter
	hashed hashedPutter // dst's fast path, when it has one
	cfg    producerConfig
	idBase string // random prefix of record ids

	mu          sync.Mutex
	shards      []*producerShard // the open shards, ordered by hash range
	starts      []HashKey        // their starting hash keys
	mapStale    bool             // refresh the shard map once nothing is in flight
	refreshing  bool
	unsent      int // records queued (not in flight)
	unsentBytes int
	held        int // records held: queued or in flight (for back-pressure)
	heldBytes   int
	inFlight    int // PutRecords calls under way
	nextID      uint64
	gen         uint64     // flush generation of new records
	flushGen    uint64     // records of generations below are due now
	outstanding []genCount // records without an outcome, by generation (ascending)
	closing     bool
	aborted     bool
	room        chan struct{} // closed when records complete; nil if nobody waits
	completed   chan struct{} // likewise, for Flush and Close
	rr          int           // round-robin start for fairness between shards
	slab        []byte        // where put copies small records' data
	metrics     ProducerMetrics

	// callbacks (capacity 1) lets one sender at a time run callbacks. A
	// channel rather than a mutex, so that a sender waiting for it counts as
	// blocked inside a synctest bubble.
	callbacks chan struct{}

	wake     chan struct{} // (cap 1) something may be sendable
	stop     chan struct{} // closed when the senders must exit
	sendCtx  context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closeErr error
	closed   bool
}

// producerShard is the producer's view of one open shard: its queue of
// records and its rate limiters.
type producerShard struct {
	id        string
	rng       HashKeyRange
	queue     fifo
	busy      bool          // a call carrying its records is in flight
	notBefore time.Time     // backoff or rate limit
	limits    shardLimiters // the producer's rate limit for the shard
}

// fifo is a shard's queue of records. Records taken for a call keep their
// slots until the shard is idle again, so that the ones to retry go back to
// the head without moving the rest of the queue.
type fifo struct {
	buf  []pending
	head int
}

func (q *fifo) len() int { return len(q.buf) - q.head }

// items returns the queued records, oldest first.
func (q *fifo) items() []pending { return q.buf[q.head:] }

func (q *fifo) push(r pending) { q.buf = append(q.buf, r) }

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

// settle frees the slots of records that are gone. Only while no records
// are taken.
func (q *fifo) settle() {
	switch {
	case q.head == 0:
	case q.head == len(q.buf):
		clear(q.buf)
		q.buf, q.head = q.buf[:0], 0
	case q.head >= len(q.buf)/2:
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
}

// recordIDLen bounds the length of a record id: 16 hex digits, a dash and
// a base-36 counter.
const recordIDLen = 30

// pending is a user record held by the producer.
type pending struct {
	key, ehk string
	data     []byte
	hk       HashKey
	done     func(ProducerResult)
	putAt    time.Time
	gen      uint64
	attempts int
	lastErr  error
	id       string
}

func (r *pending) size() int { return len(r.key) + len(r.data) }

// NewProducer returns a producer writing to dst, after learning dst's open
// shards with ListShards. Close it to deliver what it holds and stop its
// goroutines.
func NewProducer(ctx context.Context, dst Putter, opts ...ProducerOption) (*Producer, error) {
	cfg, err := newProducerConfig(ctx, dst, opts)
	if err != nil {
		return nil, err
	}
	p := &Producer{dst: dst, cfg: cfg, wake: make(chan struct{}, 1), stop: make(chan struct{}), callbacks: make(chan struct{}, 1)}
	p.hashed, _ = dst.(hashedPutter)
	var seed [8]byte
	crand.Read(seed[:])
	p.idBase = hex.EncodeToString(seed[:]) + "-"
	shards, err := p.listShards(ctx)
	if err != nil {
		return nil, err
	}
	p.setShards(shards)
	p.sendCtx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range cfg.maxInFlight {
		p.wg.Go(p.sendLoop)
	}
	return p, nil
}

// listShards reads dst's open shards, following NextTokens.
func (p *Producer) listShards(ctx context.Context) ([]*producerShard, error) {
	var out []*producerShard
	in := ListShardsInput{Filter: ShardFilter{Type: FilterAtLatest}}
	for {
		page, err := p.dst.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("runnel: producer: listing shards: %w", err)
		}
		for _, sh := range page.Shards {
			if sh.Open() {
				out = append(out, p.newShard(sh))
			}
		}
		if page.NextToken == "" {
			break
		}
		in = ListShardsInput{NextToken: page.NextToken}
	}
	if len(out) == 0 {
		return nil, errorf("NewProducer", ErrResourceNotFound, "the stream has no open shards")
	}
	slices.SortFunc(out, func(a, b *producerShard) int { return a.rng.StartingHashKey.Cmp(b.rng.StartingHashKey) })
	return out, nil
}

// setShards installs a shard map. Called with p.mu held (or before the
// producer runs).
func (p *Producer) setShards(shards []*producerShard) {
	p.shards = shards
	p.starts = make([]HashKey, len(shards))
	for i, sh := range shards {
		p.starts[i] = sh.rng.StartingHashKey
	}
}

func (p *Producer) newShard(sh Shard) *producerShard {
	ps := &producerShard{id: sh.ShardID, rng: sh.HashKeyRange}
	if p.cfg.rateLimit > 0 {
		scale := func(perSecond int) int { return int(int64(perSecond) * int64(p.cfg.rateLimit) / 100) }
		ps.limits = newShardLimiters(Limits{
			WriteBytesPerSecond:   scale(p.cfg.shardLimits.WriteBytesPerSecond),
			WriteRecordsPerSecond: scale(p.cfg.shardLimits.WriteRecordsPerSecond),
		}, p.cfg.maxRecordSize)
	}
	return ps
}

// route returns the index of the shard holding k.
func (p *Producer) route(k HashKey) int { return routeKey(p.starts, k) }

// Put accepts a record for delivery and returns at once, unless the buffer
// is full: then it blocks until there is room or ctx ends (or fails with
// ErrBufferFull, see WithFailWhenBufferFull). done, if not nil, receives the
// record's outcome exactly once. An error from Put means the record was not
// accepted (invalid, closed, no room); done is then not called.
func (p *Producer) Put(ctx context.Context, r ProducerRecord, done func(ProducerResult)) error {
	return p.put(ctx, r, done, p.cfg.failWhenFull)
}

// TryPut is Put that never blocks: it fails with ErrBufferFull when the
// buffer has no room.
func (p *Producer) TryPut(r ProducerRecord, done func(ProducerResult)) error {
	return p.put(context.Background(), r, done, true)
}

// PutSync puts a record, sends it without waiting for a batch to fill, and
// waits for its outcome. If ctx ends first, PutSync returns ctx's error and
// the record stays accepted: it is delivered or fails as usual.
func (p *Producer) PutSync(ctx context.Context, r ProducerRecord) (ProducerResult, error) {
	ch := make(chan ProducerResult, 1)
	if err := p.put(ctx, r, func(res ProducerResult) { ch <- res }, p.cfg.failWhenFull); err != nil {
		return ProducerResult{}, err
	}
	p.mu.Lock()
	p.flushGen = p.gen + 1 // everything held is due now
	p.gen++
	p.mu.Unlock()
	p.signal()
	select {
	case res := <-ch:
		return res, res.Err
	case <-ctx.Done():
		return ProducerResult{}, ctx.Err()
	}
}

func (p *Producer) put(ctx context.Context, r ProducerRecord, done func(ProducerResult), failFast bool) error {
	const op = "Put"
	hk, err := routingKey(op, r.PartitionKey, r.ExplicitHashKey)
	if err != nil {
		return err
	}
	limit := p.cfg.maxRecordSize
	if p.cfg.recordIDs {
		// The record travels as an aggregate with its id: leave room for
		// the framing, the key table and the id tag.
		limit -= 1 + aggOverhead + len(r.PartitionKey) + len(r.ExplicitHashKey) + recordIDLen + 64
	}
	if err := checkRecordSize(op, len(r.PartitionKey)+len(r.Data), limit); err != nil {
		return err
	}
	rec := pending{key: r.PartitionKey, ehk: r.ExplicitHashKey, hk: hk, done: done}
	size := len(r.PartitionKey) + len(r.Data)

	p.mu.Lock()
	for {
		if p.closing {
			p.mu.Unlock()
			return errorf(op, ErrClosed, "producer is closed")
		}
		if p.held < p.cfg.bufferRecords && p.heldBytes+size <= p.cfg.bufferBytes {
			break
		}
		if failFast {
			p.mu.Unlock()
			return fmt.Errorf("%w: %d records / %d bytes held, the limits are %d / %d", ErrBufferFull, p.held, p.heldBytes, p.cfg.bufferRecords, p.cfg.bufferBytes)
		}
		room := p.roomLocked()
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	rec.data = p.copyLocked(r.Data)
	rec.putAt = time.Now()
	rec.gen = p.gen
	if p.cfg.recordIDs {
		p.nextID++
		rec.id = p.idBase + strconv.FormatUint(p.nextID, 36)
	}
	sh := p.shards[p.route(hk)]
	sh.queue.push(rec)
	p.unsent++
	p.unsentBytes += size
	p.held++
	p.heldBytes += size
	if n := len(p.outstanding); n > 0 && p.outstanding[n-1].gen == rec.gen {
		p.outstanding[n-1].n++
	} else {
		p.outstanding = append(p.outstanding, genCount{gen: rec.gen, n: 1})
	}
	signal := sh.queue.len() == 1 || p.fullLocked()
	p.mu.Unlock()
	if signal {
		p.signal()
	}
	return nil
}

// slabSize is the size of the blocks the producer copies records' data into:
// one allocation for many small records.
const slabSize = 64 << 10

// copyLocked copies a record's data into the current slab (or its own
// allocation when large). A slab is freed by the GC once none of its records
// is held any more.
func (p *Producer) copyLocked(d []byte) []byte {
	if len(d) > slabSize/8 {
		return slices.Clone(d)
	}
	if cap(p.slab)-len(p.slab) < len(d) {
		p.slab = make([]byte, 0, slabSize)
	}
	start := len(p.slab)
	p.slab = append(p.slab, d...)
	return p.slab[start:len(p.slab):len(p.slab)]
}

// roomLocked returns a channel closed when records complete.
func (p *Producer) roomLocked() <-chan struct{} {
	if p.room == nil {
		p.room = make(chan struct{})
	}
	return p.room
}

// fullLocked reports whether enough is queued to fill a call.
func (p *Producer) fullLocked() bool {
	return p.unsentBytes >= p.cfg.collMaxSize || (!p.cfg.aggregation && p.unsent >= p.cfg.collMaxCount)
}

// signal wakes a sender.
func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush sends everything held now without waiting for batches to fill, and
// waits until each record put before the call has its outcome (its callback
// has run), or until ctx ends. Records are not failed when ctx ends; they
// stay held and are delivered as usual.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.gen
	p.gen++
	p.flushGen = p.gen
	p.mu.Unlock()
	p.signal()
	return p.waitFor(ctx, target)
}

// waitFor waits until no record of a generation ≤ target is outstanding.
func (p *Producer) waitFor(ctx context.Context, target uint64) error {
	for {
		p.mu.Lock()
		if len(p.outstanding) == 0 || p.outstanding[0].gen > target {
			p.mu.Unlock()
			return nil
		}
		if p.completed == nil {
			p.completed = make(chan struct{})
		}
		ch := p.completed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops accepting records, delivers everything held, and stops the
// producer's goroutines. If ctx ends first, the records not yet delivered
// fail with an error wrapping ErrClosed (their callbacks run before Close
// returns), and Close returns ctx's error. Close may be called more than
// once; later calls return the first call's result.
func (p *Producer) Close(ctx context.Context) error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return p.closeErr
	}
	p.closed = true
	p.mu.Lock()
	p.closing = true
	target := p.gen
	p.gen++
	p.flushGen = p.gen
	p.mu.Unlock()
	p.signal()
	err := p.waitFor(ctx, target)
	if err != nil {
		p.mu.Lock()
		p.aborted = true // senders fail what is queued instead of sending it
		p.mu.Unlock()
		p.cancel() // and calls in flight end
		p.signal()
		_ = p.waitFor(context.Background(), target)
	}
	close(p.stop)
	p.cancel() // nothing is held any more: end a shard-map refresh under way
	p.wg.Wait()
	p.closeErr = err
	return err
}

// Metrics returns a snapshot of the producer's counters.
func (p *Producer) Metrics() ProducerMetrics {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.metrics
	m.BufferedRecords, m.BufferedBytes = int64(p.held), int64(p.heldBytes)
	return m
}

// outcomes collects the outcomes of records for finish: the callbacks to run
// and the accounting to apply after them.
type outcomes struct {
	calls     []outcome
	records   int
	bytes     int
	ok, fail  int64
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
			p.refreshShards()
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
			p.expireLocked(&p.dequeueLocked(sh, 1)[0], done, now)
		}
		if sh.queue.len() > 0 {
			wait = min(wait, max(sh.queue.items()[0].putAt.Add(p.cfg.recordTTL).Sub(now), time.Millisecond))
		}
	}
	if p.mapStale {
		if p.inFlight == 0 && !p.refreshing {
			p.refreshing = true
			return nil, done, true, 0
		}
		return nil, done, false, wait // wait for the calls in flight
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
		taken, bytes := 0, 0
		for _, r := range sh.queue.items() {
			est := r.size() + len(r.ehk) + len(r.id) + 24
			if taken > 0 && (bytes+est > budgetBytes || (!p.cfg.aggregation && taken == budgetEntries)) {
				break
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
		claims = append(claims, claim{shard: sh, records: p.dequeueLocked(sh, taken)})
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
// runnel's own stream refuses a shard's records after its first failure; on
// any other Putter a partition key travels in at most one Kinesis record per
// shard and call.
func (p *Producer) send(claims []claim, buf *sendBuffers) {
	now := time.Now()
	buf.reset()
	entries, puts := buf.entries, buf.puts
	var leftovers []claim
	bytes := 0
	var sent map[uint64]struct{} // hash keys (low half) of the shard's earlier records
	if p.hashed == nil {
		sent = make(map[uint64]struct{})
	}
	for _, c := range claims {
		recs := c.records
		clear(sent)
		for len(recs) > 0 && len(puts) < p.cfg.collMaxCount {
			e, put, n := p.pack(buf.agg, c.shard, recs, sent, &buf.data)
			size := len(put.Data) + len(put.PartitionKey)
			if n == 0 || (len(puts) > 0 && bytes+size > p.cfg.collMaxSize) {
				break
			}
			if !c.shard.limits.allowWrite(now, size) {
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
func (p *Producer) pack(agg *aggregator, sh *producerShard, recs []pending, sent map[uint64]struct{}, scratch *[]byte) (entry, PutRecordsEntry, int) {
	first := recs[0]
	if _, dup := sent[first.hk.lo]; dup {
		return entry{}, PutRecordsEntry{}, 0
	}
	single := !p.cfg.aggregation || len(first.data)+len(first.key) >= p.cfg.aggMaxSize
	if single && !p.cfg.recordIDs {
		return entry{shard: sh, members: recs[:1]},
			PutRecordsEntry{PartitionKey: first.key, ExplicitHashKey: first.ehk, Data: first.data}, 1
	}
	agg.reset()
	n := 0
	for _, r := range recs {
		if n > 0 {
			if _, dup := sent[r.hk.lo]; single || dup || n == p.cfg.aggMaxCount ||
				agg.sizeWith(r.key, r.ehk, r.id, len(r.data)) > p.cfg.aggMaxSize {
				break
			}
		}
		agg.add(r.key, r.ehk, r.id, r.data)
		n++
	}
	if n == 1 && !p.cfg.recordIDs {
		// A lone record travels plain, as with the KPL.
		return entry{shard: sh, members: recs[:1]},
			PutRecordsEntry{PartitionKey: first.key, ExplicitHashKey: first.ehk, Data: first.data}, 1
	}
	// An aggregate is routed by its first record's hash key, as the KPL
	// does; the stream's fast path takes the key itself.
	start := len(*scratch)
	*scratch = agg.appendTo(*scratch)
	put := PutRecordsEntry{PartitionKey: "a", Data: (*scratch)[start:len(*scratch):len(*scratch)]}
	if p.hashed == nil {
		put.ExplicitHashKey = first.hk.String()
	}
	return entry{shard: sh, members: recs[:n]}, put, n
}

// call makes one PutRecords call, through the stream's fast path when it
// has one.
func (p *Producer) call(buf *sendBuffers) (PutRecordsOutput, error) {
	if p.hashed == nil {
		return p.dst.PutRecords(p.sendCtx, buf.puts)
	}
	for _, e := range buf.entries {
		buf.keys = append(buf.keys, e.members[0].hk)
		// The stream refuses an entry unless its shard still holds the whole
		// range the producer queued for: after a split it refuses all of
		// the parent's records until the producer has the new map.
		buf.spans = append(buf.spans, e.shard.rng)
	}
	return p.hashed.putRecordsHashed(p.sendCtx, buf.puts, buf.keys, buf.spans)
}

// complete handles a call's outcome: results for stored records, retries
// for failed ones, and the leftovers back to the head of their queues.
func (p *Producer) complete(claims []claim, entries []entry, leftovers []claim, out PutRecordsOutput, callErr error, sentAt time.Time) {
	done := &outcomes{calls: make([]outcome, 0, len(entries))}
	now := time.Now()
	var retry map[*producerShard][]pending
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
			err = out.Records[i].Err
		default:
			err = errorf("PutRecords", ErrInternalFailure, "response has %d results for %d records", len(out.Records), len(entries))
		}
		if err == nil {
			r := out.Records[i]
			if r.ShardID != e.shard.id {
				p.mapStale = true // the stream was resharded: learn the new shards
			}
			p.metrics.KinesisRecordsPut++
			aggregated := len(e.members) > 1 || p.cfg.recordIDs
			for j := range e.members {
				m := &e.members[j]
				res := ProducerResult{ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, Aggregated: aggregated, RecordID: m.id, Attempts: m.attempts}
				if aggregated {
					res.SubSequenceNumber = j
				}
				done.add(&e.members[j], res, now)
			}
			continue
		}
		if errors.Is(err, errStaleShardMap) || errors.Is(err, errNotAttempted) {
			p.mapStale = p.mapStale || errors.Is(err, errStaleShardMap)
			if retry == nil {
				retry = make(map[*producerShard][]pending)
			}
			retry[e.shard] = append(retry[e.shard], e.members...)
			continue
		}
		throttled := errors.Is(err, ErrProvisionedThroughputExceeded)
		if throttled {
			p.metrics.Throttles++
		}
		backoff := false
		for _, m := range e.members {
			m.lastErr = err
			switch {
			case p.aborted && callErr != nil:
				done.add(&m, p.failure(&m, fmt.Errorf("%w: the call was cut off: %w", errClosedUndelivered, err)), now)
			case (throttled && p.cfg.failIfThrottled) || !retryable(err):
				done.add(&m, p.failure(&m, err), now)
			default:
				if retry == nil {
					retry = make(map[*producerShard][]pending)
				}
				retry[e.shard] = append(retry[e.shard], m)
				p.metrics.Retries++
				backoff = true
			}
		}
		if backoff {
			e.shard.notBefore = maxTime(e.shard.notBefore, sentAt.Add(p.backoff(e.members[0].attempts)))
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
	p.finish(done)
	p.signal()
}

// attempted reports whether a record's result counts as a delivery attempt:
// a record refused for a stale shard map, or not tried, does not.
func attempted(err error) bool {
	return !errors.Is(err, errStaleShardMap) && !errors.Is(err, errNotAttempted)
}

// retryable reports whether a failed record may succeed if sent again.
func retryable(err error) bool {
	for _, fatal := range []error{ErrValidation, ErrInvalidArgument, ErrResourceNotFound, ErrClosed, ErrExpiredIterator} {
		if errors.Is(err, fatal) {
			return false
		}
	}
	return true
}

// backoff is the wait before the attempts-th retry: exponential with
// jitter, so that many producers do not retry in step.
func (p *Producer) backoff(attempts int) time.Duration {
	d := p.cfg.backoffMax
	if shift := min(max(attempts-1, 0), 30); p.cfg.backoffBase <= p.cfg.backoffMax>>shift {
		d = p.cfg.backoffBase << shift
	}
	return d/2 + rand.N(d/2+1)
}

// errClosedUndelivered fails the records that Close gave up on.
var errClosedUndelivered = errorf("Close", ErrClosed, "the producer closed before the record was delivered")

// failure is the result of a record that failed with err.
func (p *Producer) failure(r *pending, err error) ProducerResult {
	return ProducerResult{RecordID: r.id, Attempts: r.attempts, Err: err}
}

// expireLocked fails a record whose TTL passed.
func (p *Producer) expireLocked(r *pending, done *outcomes, now time.Time) {
	err := fmt.Errorf("%w after %v and %d attempts", ErrRecordExpired, p.cfg.recordTTL, r.attempts)
	if r.lastErr != nil {
		err = fmt.Errorf("%w after %v and %d attempts: %w", ErrRecordExpired, p.cfg.recordTTL, r.attempts, r.lastErr)
	}
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

// refreshShards learns the stream's open shards after a reshard and moves
// the queued records to the shards that now own their hash keys, keeping
// each key's order. It runs while no call is in flight.
func (p *Producer) refreshShards() {
	ctx, cancel := context.WithTimeout(p.sendCtx, p.cfg.backoffMax)
	shards, err := p.listShards(ctx)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshing = false
	if err != nil {
		// Keep the old map and try again after a pause.
		for _, sh := range p.shards {
			sh.notBefore = time.Now().Add(p.cfg.backoffBase)
		}
		p.mapStale = false
		return
	}
	old := p.shards
	p.setShards(shards)
	// Requeue in put order (a stable sort keeps each old queue's order, so
	// each key's), so that every queue's head is its oldest record again.
	var all []pending
	for _, sh := range old {
		for _, r := range sh.queue.items() {
			all = append(all, r)
			ns := p.shards[p.route(r.hk)]
			ns.notBefore = maxTime(ns.notBefore, sh.notBefore)
		}
	}
	slices.SortStableFunc(all, func(a, b pending) int { return a.putAt.Compare(b.putAt) })
	for _, r := range all {
		p.shards[p.route(r.hk)].queue.push(r)
	}
	p.mapStale = false
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
