package runnel

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Putter is what a Producer needs from a stream: writing batches and
// learning the shards. *Stream implements it; an adapter can implement it
// for Amazon Kinesis, so that the same producer code runs there. PutRecords
// must not keep the records' Data after it returns: the producer reuses
// that memory. Errors should wrap the sentinels of the error table (see
// ErrorForName); an error that wraps none is taken as ErrInternalFailure,
// and retried.
//
// Two optional interfaces widen it: a Putter that is also a StreamDescriber
// tells the producer its stream's limits, and one that is also a
// RoutedPutter gets the producer's fast path.
type Putter interface {
	PutRecords(ctx context.Context, in PutRecordsInput) (PutRecordsOutput, error)
	ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error)
}

// Errors of the Producer (not Kinesis errors).
var (
	// ErrBufferFull is returned by TryPut, and by Put with
	// WithFailWhenBufferFull, when the producer's buffer has no room. It is
	// retryable: room frees as records complete.
	ErrBufferFull error = &runnelError{text: "producer buffer is full", isRetryable: true}
	// ErrRecordExpired is wrapped by the error of a record that could not be
	// delivered within its RecordTTL; the error also wraps the last error
	// the record met. Not retryable.
	ErrRecordExpired error = &runnelError{text: "record TTL expired"}
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
	genericPath     bool
	strictOrder     bool
	logger          *slog.Logger
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

// WithBufferLimits bounds the user records and the memory the producer
// holds for them, queued or in flight: bytes counts each record's data and
// partition key plus a fixed 640 bytes of the producer's bookkeeping (its
// queue entry and the queue's spare room), so that it bounds memory rather
// than payload alone. When
// either limit is reached, Put blocks until there is room (or fails with
// ErrBufferFull, see WithFailWhenBufferFull); an empty buffer takes any
// valid record. Default 64 MiB and 1,000,000 records.
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
// of a shard waits about base·2^(n−1), at most max, with jitter; so does
// the n-th retry of NewProducer's startup calls. Default 100 ms and 5 s.
func WithRetryBackoff(base, max time.Duration) ProducerOption {
	return func(c *producerConfig) { c.backoffBase, c.backoffMax = base, max }
}

// WithRecordIDs gives every user record a unique id, carried in the
// aggregate as a tag (RecordIDTag) and returned by Deaggregate as
// UserRecord.RecordID, so that consumers can drop the duplicates that
// retries after a lost response create. Records then always travel in the
// aggregated format, also alone. Default off.
func WithRecordIDs(on bool) ProducerOption { return func(c *producerConfig) { c.recordIDs = on } }

// WithGenericPath makes the producer use only the Putter methods, even when
// its Putter offers the RoutedPutter fast path (as *Stream does): then it
// sends exactly what it would send to Amazon Kinesis, so that tests can
// exercise that path against a runnel stream. Default off.
func WithGenericPath(on bool) ProducerOption { return func(c *producerConfig) { c.genericPath = on } }

// WithStrictOrder keeps each partition key's records in put order on the
// generic path (a Putter without RoutedPutter, such as Amazon Kinesis) even
// when some records of a call fail: a key then travels in at most one
// Kinesis record per shard and call, so that a retried record is never
// overtaken by a later one of its key stored by the same call. This costs
// throughput for hot keys: without aggregation, 1,000 records of one key
// take 1,000 calls. Default off: as with the KPL, calls are filled
// regardless of keys, and when a record fails while a later record of its
// key in the same call succeeds, the retried record lands after it. The
// fast path into a runnel Stream keeps order without this cost, always.
func WithStrictOrder(on bool) ProducerOption { return func(c *producerConfig) { c.strictOrder = on } }

// WithProducerLogger makes the producer log shard-map refreshes (Info),
// retries and throttling (Debug, one line per call), and records that
// failed at their TTL or at Close (Warn). Default: no logging.
func WithProducerLogger(l *slog.Logger) ProducerOption {
	return func(c *producerConfig) { c.logger = l }
}

// StreamDescriber is an optional interface of a Putter that can tell its
// stream's limits, as *Stream does: the producer then packs to the stream's
// record and request sizes and rate-limits to its shard limits, unless an
// option sets them. An adapter over Amazon Kinesis can implement it with
// DescribeStreamSummary.
type StreamDescriber interface {
	Describe(ctx context.Context) (StreamSummary, error)
}

// newProducerConfig applies the options over the defaults; the stream's
// own limits, when dst can describe them, replace the defaults of the
// sizes and shard limits that no option set.
func newProducerConfig(ctx context.Context, dst Putter, opts []ProducerOption) (producerConfig, error) {
	const op = "NewProducer"
	if isNil(dst) {
		return producerConfig{}, errorf(op, ErrInvalidArgument, "the Putter is nil")
	}
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
	for i, o := range opts {
		if o == nil {
			return c, errorf(op, ErrInvalidArgument, "option %d is nil", i)
		}
		o(&c)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.backoffBase <= 0 || c.backoffMax < c.backoffBase {
		return c, errorf(op, ErrInvalidArgument, "retry backoff base %v and max %v must be positive and base ≤ max", c.backoffBase, c.backoffMax)
	}
	stream := StreamSummary{Limits: KinesisLimits(), MaxRecordSize: DefaultMaxRecordSize, MaxPutRecordsSize: MaxPutRecordsSize(DefaultMaxRecordSize)}
	if d, ok := dst.(StreamDescriber); ok && (c.maxRecordSize == 0 || c.collMaxSize == 0 || c.shardLimits == nil) {
		err := c.retryStartup(ctx, op, "describing the stream", func() (err error) {
			stream, err = d.Describe(ctx)
			return err
		})
		if err != nil {
			return c, err
		}
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
	}
	return c, nil
}

// backoff is the wait before the attempts-th retry: exponential with
// jitter, so that many producers do not retry in step.
func (c *producerConfig) backoff(attempts int) time.Duration {
	d := c.backoffMax
	if shift := min(max(attempts-1, 0), 30); c.backoffBase <= c.backoffMax>>shift {
		d = c.backoffBase << shift
	}
	return d/2 + rand.N(d/2+1)
}

// startupAttempts is how often NewProducer makes each of its calls
// (Describe, ListShards) that fails retryably before it gives up.
const startupAttempts = 5

// retryStartup calls f until it succeeds, fails for good, or has failed
// retryably startupAttempts times, with the backoff in between; its error
// is an *Error of op, classified as the send path classifies errors, and
// says what op was doing.
func (c *producerConfig) retryStartup(ctx context.Context, op, what string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		e := asError(op, what, err)
		if !IsRetryable(e) || attempt == startupAttempts || ctx.Err() != nil {
			return e
		}
		c.logger.Debug("runnel: producer retrying", "op", op, "attempt", attempt, "err", err)
		if sleepCtx(ctx, c.backoff(attempt)) != nil {
			return &Error{Op: op, Kind: ctx.Err(), Msg: what, Err: err} // with what it was retrying
		}
	}
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
// runnel Stream (the RoutedPutter fast path) this holds without exception.
//
// Through another Putter (real Kinesis, or WithGenericPath), two things
// differ. First, by default a call may carry several records of a key, as
// with the KPL, so when one fails and a later one of its key in the same
// call is stored, the retried record lands after it; WithStrictOrder
// prevents that at a cost for hot keys. Second, an aggregate packed just
// before a split lands whole in the child of its first record, so its other
// user records may be stored in a sibling that does not own their keys. The
// producer sees the result name an unexpected shard, lists the shards, and
// sends those records again, ahead of their keys' later records: a consumer
// that drops user records outside its shard's range (see
// UserRecord.HashKey), as the KCL does, reads each record once and, with
// WithStrictOrder, in order. A consumer that keeps them reads those records
// twice.
//
// All methods are safe for concurrent use. Result callbacks run one at a
// time on the producer's goroutines and must not block: while one runs, no
// other result is delivered and its sender sends nothing. A callback that
// puts again should use TryPut; it must not call PutSync, Flush or Close,
// which wait for results and would wait for themselves.
//
// Memory is bounded by WithBufferLimits for the records held (their bytes
// and bookkeeping), plus, for each of its WithMaxInFlight senders, a buffer
// for the aggregates of one call (at most CollectionMaxSize, kept for its
// next call) and its aggregator tables and entry arrays (about 256 KiB),
// plus two partly used 64 KiB data blocks per shard (small records' data is
// copied into per-shard blocks, each freed once none of its records is
// held): with the defaults and 4 shards, 64 MiB + 4 × 5.25 MiB + 0.5 MiB.
// TestProducerMemoryBound asserts this over 10 virtual minutes of writes
// refused by every shard, or by one. Not counted: after load has moved
// between shards, the queue arrays of emptied shards for up to a second
// (see recordOverhead).
type Producer struct {
	dst    Putter
	routed RoutedPutter // dst's fast path, when it has one and it is used
	cfg    producerConfig
	idBase string // random prefix of record ids

	mu          sync.Mutex
	shards      []*producerShard        // the open shards, ordered by hash range
	starts      []HashKey               // their starting hash keys
	ranges      map[string]HashKeyRange // every listed shard's range, by id
	mapStale    bool                    // refresh the shard map once nothing is in flight
	refreshing  bool
	refreshAt   time.Time   // a failed refresh is tried again no earlier
	misplaced   []misplaced // stored aggregates to check against the next shard map
	unsent      int         // records queued (not in flight)
	unsentBytes int
	held        int // records held: queued or in flight (for back-pressure)
	heldBytes   int
	inFlight    int // PutRecords calls under way
	nextID      uint64
	puts        uint64     // records accepted so far: the last one's order
	gen         uint64     // flush generation of new records
	flushGen    uint64     // records of generations below are due now
	outstanding []genCount // records without an outcome, by generation (ascending)
	closing     bool
	aborted     bool
	room        chan struct{}       // closed when records complete; nil if nobody waits
	completed   chan struct{}       // likewise, for Flush and Close
	rr          int                 // round-robin start for fairness between shards
	takenKeys   map[uint64]struct{} // scratch of take with strict order: keys taken for a shard
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
	slab      []byte        // where put copies the shard's small records' data
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
	order    uint64 // put order, for requeueing after a refresh
	gen      uint64
	attempts int
	lastErr  error
	id       string
}

func (r *pending) size() int { return len(r.key) + len(r.data) }

// recordOverhead is what the producer's bookkeeping of a held record costs
// beyond its data and key: its entry in a shard's queue, whose array may
// be 4 times as large as what it holds (see fifo.settle;
// TestProducerMemoryBound checks that this covers 4 entries). The buffer
// limit counts it, so that the limit bounds memory and not only payload.
// A queue's array is shrunk at most once a second, once it has been more
// than 4 times larger than needed (shrinking it at every emptying cost a
// quarter of the producer's throughput).
const recordOverhead = 640

// NewProducer returns a producer writing to dst, after learning dst's
// limits (when dst is a StreamDescriber and no option sets them all) and
// its open shards with ListShards. Each of those calls is tried up to 5
// times while it fails retryably, with the retry backoff in between, so
// NewProducer may take a second or two before it gives up; ctx bounds it.
// Close the producer to deliver what it holds and stop its goroutines.
func NewProducer(ctx context.Context, dst Putter, opts ...ProducerOption) (*Producer, error) {
	cfg, err := newProducerConfig(ctx, dst, opts)
	if err != nil {
		return nil, err
	}
	p := &Producer{dst: dst, cfg: cfg, wake: make(chan struct{}, 1), stop: make(chan struct{}), callbacks: make(chan struct{}, 1),
		takenKeys: make(map[uint64]struct{})}
	if !cfg.genericPath {
		p.routed, _ = dst.(RoutedPutter)
	}
	var seed [8]byte
	crand.Read(seed[:])
	p.idBase = hex.EncodeToString(seed[:]) + "-"
	shards, ranges, err := p.listShards(ctx)
	if err != nil {
		return nil, err
	}
	p.setShards(shards, ranges)
	p.sendCtx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range cfg.maxInFlight {
		p.wg.Go(p.sendLoop)
	}
	return p, nil
}

// listShards reads all of dst's shards, following NextTokens, and returns
// the open ones, ordered by hash range, and every shard's range by id. It
// installs nothing that does not tile the hash space: such a listing (a
// Putter that is not consistent while the stream reshards) is read again,
// a few times, before it fails.
func (p *Producer) listShards(ctx context.Context) ([]*producerShard, map[string]HashKeyRange, error) {
	const op, attempts = "ListShards", 5
	for attempt := 1; ; attempt++ {
		var listed []Shard
		err := p.cfg.retryStartup(ctx, op, "", func() (err error) {
			listed, err = listAllShards(ctx, p.dst)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		var open []*producerShard
		ranges := make(map[string]HashKeyRange, len(listed))
		for _, sh := range listed {
			ranges[sh.ShardID] = sh.HashKeyRange
			if sh.Open() {
				open = append(open, p.newShard(sh))
			}
		}
		slices.SortFunc(open, func(a, b *producerShard) int { return a.rng.StartingHashKey.Cmp(b.rng.StartingHashKey) })
		rngs := make([]HashKeyRange, len(open))
		for i, sh := range open {
			rngs[i] = sh.rng
		}
		if tilesHashSpace(rngs) {
			return open, ranges, nil
		}
		if attempt == attempts {
			kind := ErrInternalFailure
			if len(open) == 0 {
				kind = ErrResourceNotFound
			}
			return nil, nil, errorf(op, kind, "the %d open shards listed do not tile the hash space 0…2^128-1, %d times in a row", len(open), attempts)
		}
		if err := sleepCtx(ctx, p.cfg.backoffBase); err != nil {
			return nil, nil, ctxError(op, err)
		}
	}
}

// setShards installs a shard map. Called with p.mu held (or before the
// producer runs).
func (p *Producer) setShards(shards []*producerShard, ranges map[string]HashKeyRange) {
	p.shards, p.ranges = shards, ranges
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
		return ProducerResult{}, ctxError("PutSync", ctx.Err())
	}
}

func (p *Producer) put(ctx context.Context, r ProducerRecord, done func(ProducerResult), failFast bool) error {
	const op = "Put"
	limit := p.cfg.maxRecordSize
	if p.cfg.recordIDs {
		// The record travels as an aggregate with its id: leave room for
		// the framing, the key table and the id tag.
		limit -= 1 + aggOverhead + len(r.PartitionKey) + len(r.ExplicitHashKey) + recordIDLen + 64
	}
	hk, err := checkRecord(op, r.PartitionKey, r.ExplicitHashKey, len(r.Data), limit, true)
	if err != nil {
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
		// An empty buffer takes any valid record, so that a record as large
		// as the buffer (the bookkeeping aside) is not refused forever.
		if p.held == 0 || (p.held < p.cfg.bufferRecords && p.heldBytes+(p.held+1)*recordOverhead+size <= p.cfg.bufferBytes) {
			break
		}
		if failFast {
			p.mu.Unlock()
			return errorf(op, ErrBufferFull, "%d records / %d bytes held (%d with the producer's %d bytes per record), the limits are %d / %d",
				p.held, p.heldBytes, p.heldBytes+p.held*recordOverhead, recordOverhead, p.cfg.bufferRecords, p.cfg.bufferBytes)
		}
		room := p.roomLocked()
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctxError(op, ctx.Err())
		}
		p.mu.Lock()
	}
	sh := p.shards[p.route(hk)]
	rec.data = sh.copyLocked(r.Data)
	rec.putAt = time.Now()
	p.puts++
	rec.order = p.puts
	rec.gen = p.gen
	if p.cfg.recordIDs {
		p.nextID++
		rec.id = p.idBase + strconv.FormatUint(p.nextID, 36)
	}
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

// copyLocked copies a record's data into the shard's current slab (or its
// own allocation when large). A slab is freed by the GC once none of its
// records is held any more; a shard's records leave about in order, so at
// most its oldest and newest slabs are partly dead, whatever other shards
// do. Slabs grow from 4 KiB, so that quiet shards hold little.
func (sh *producerShard) copyLocked(d []byte) []byte {
	if len(d) > slabSize/8 {
		return slices.Clone(d)
	}
	if cap(sh.slab)-len(sh.slab) < len(d) {
		sh.slab = make([]byte, 0, max(len(d), min(2*cap(sh.slab), slabSize), 4<<10))
	}
	start := len(sh.slab)
	sh.slab = append(sh.slab, d...)
	return sh.slab[start:len(sh.slab):len(sh.slab)]
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
func (p *Producer) signal() { signal(p.wake) }

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
	if err := p.waitFor(ctx, target); err != nil {
		return ctxError("Flush", err)
	}
	return nil
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
	if err != nil {
		p.closeErr = ctxError("Close", err)
	}
	return p.closeErr
}

// Metrics returns a snapshot of the producer's counters.
func (p *Producer) Metrics() ProducerMetrics {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.metrics
	m.BufferedRecords, m.BufferedBytes = int64(p.held), int64(p.heldBytes)
	return m
}
