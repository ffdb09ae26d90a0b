package runnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StreamReader is what a consumer needs from a stream: listing its shards,
// getting shard iterators and reading records, as Kinesis's polling API
// offers them. *Stream implements it; an adapter over the AWS SDK's
// Kinesis client can implement it too, so that the same consumer code runs
// on Amazon Kinesis.
//
// At this seam shard iterators and sequence numbers are opaque,
// Kinesis-shaped values: an implementation other than *Stream returns the
// tokens it got as OpaqueShardIterator values and its sequence numbers
// through ParseSequenceNumber (which takes any number Kinesis issues), and
// reports its failures with the sentinels of the error table (see
// ErrorForName). Push delivery (enhanced fan-out) is in separate
// interfaces, ShardSubscriber and FanOutReader, that a reader may also
// implement, so that polling-only implementations stay as they are.
type StreamReader interface {
	// ListShards lists the stream's shards (one page; see ListShardsInput).
	ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error)
	// GetShardIterator returns an iterator at a position of a shard.
	GetShardIterator(ctx context.Context, in GetShardIteratorInput) (ShardIterator, error)
	// GetRecords reads records at an iterator. An implementation may use
	// in.Buffer for the returned records or ignore it.
	GetRecords(ctx context.Context, in GetRecordsInput) (GetRecordsOutput, error)
}

// ShardSubscriber is what a ShardReader needs for enhanced fan-out
// (WithReaderFanOut): subscriptions that push a shard's records to a
// registered consumer. *Stream implements it; so can an adapter over
// Kinesis's SubscribeToShard, with the same rules (see
// Stream.SubscribeToShard). SubscribeToShard returns an interface, not a
// concrete type, so that implementations can differ.
type ShardSubscriber interface {
	// SubscribeToShard starts a subscription of a registered consumer to a
	// shard.
	SubscribeToShard(ctx context.Context, in SubscribeToShardInput) (ShardSubscription, error)
}

// FanOutReader is what a Consumer needs for enhanced fan-out (WithFanOut):
// subscriptions, and the registration of the group's consumer with the
// stream, as Kinesis's RegisterStreamConsumer and DescribeStreamConsumer
// offer it. *Stream implements it.
type FanOutReader interface {
	ShardSubscriber
	// RegisterStreamConsumer registers a consumer; a name in use is an
	// ErrResourceInUse.
	RegisterStreamConsumer(ctx context.Context, in RegisterStreamConsumerInput) (StreamConsumer, error)
	// DescribeStreamConsumer returns a registered consumer, or
	// ErrResourceNotFound.
	DescribeStreamConsumer(ctx context.Context, in StreamConsumerRef) (StreamConsumer, error)
}

// ShardSubscription is a subscription to a shard, as SubscribeToShard
// returns it: Kinesis's event stream, read one event at a time.
type ShardSubscription interface {
	// Next returns the next event, waiting for one. The last event of a
	// closed shard has a zero ContinuationSequenceNumber and the
	// ChildShards; after it Next fails with ErrShardEnded. It fails with
	// ErrSubscriptionEnded when the subscription has lasted its time (an
	// adapter over Kinesis's event stream reports so when the stream ends
	// without an error before the shard's end), and with the error that
	// ended it otherwise (ErrResourceInUse when another subscription took
	// over). An event's Records are valid until the next call. Next is not
	// safe for concurrent use.
	Next(ctx context.Context) (SubscribeToShardEvent, error)
	// Close ends the subscription. It may be called from any goroutine,
	// more than once.
	Close() error
}

// The seams that *Stream implements.
var (
	_ StreamReader = (*Stream)(nil)
	_ FanOutReader = (*Stream)(nil)
	_ Putter       = (*Stream)(nil)
	_ RoutedPutter = (*Stream)(nil)
)

// RecordProcessor processes the records of one shard for a Consumer, with
// the lifecycle of the KCL's ShardRecordProcessor. A Consumer makes one per
// shard lease it takes and calls its methods from one goroutine, in this
// order: Initialize once, ProcessRecords for every batch, and then one of
// LeaseLost, ShardEnded or ShutdownRequested. None of the three follows
// when Initialize or ProcessRecords failed, or when Close's shutdown
// timeout cancelled the processor's context.
//
// An error from Initialize, ProcessRecords, ShardEnded or
// ShutdownRequested ends the processing of the shard on this worker: the
// error is logged and counted (ConsumerStats.ProcessorErrors), no other
// method is called, and the lease is released without a checkpoint. The
// shard is then taken again at its last checkpoint, by another worker at
// once or by this one after the failover time, so the records after the
// checkpoint are delivered again. A ShardEnded that returns nil without
// checkpointing the end counts as such an error.
type RecordProcessor interface {
	// Initialize is called before the first batch, with the checkpoint the
	// shard's processing resumes after.
	Initialize(ctx context.Context, in InitializeInput) error
	// ProcessRecords processes a batch. It may checkpoint with
	// in.Checkpointer.
	ProcessRecords(ctx context.Context, in ProcessRecordsInput) error
	// LeaseLost is called when another worker has taken the lease, or it
	// could not be renewed in time: checkpointing is no longer possible.
	LeaseLost(ctx context.Context, in LeaseLostInput)
	// ShardEnded is called after the last batch of a closed shard. The
	// processor must checkpoint (in.Checkpointer.Checkpoint), or the
	// shard's children never start.
	ShardEnded(ctx context.Context, in ShardEndedInput) error
	// ShutdownRequested is called when the Consumer is closed; the
	// processor may checkpoint, and the lease is then released for another
	// worker to take at once.
	ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error
}

// InitializeInput is the input of RecordProcessor.Initialize.
type InitializeInput struct {
	// ShardID is the shard the processor processes.
	ShardID string
	// Checkpoint is the lease's checkpoint; zero when the shard has not
	// been processed yet and starts at the lease's starting position.
	Checkpoint Checkpoint
}

// ProcessRecordsInput is the input of RecordProcessor.ProcessRecords.
type ProcessRecordsInput struct {
	// ShardID is the shard the records come from.
	ShardID string
	// Records are the user records, in order, as ShardReader.Next returns
	// them: their Data are read-only, and the slice is reused after
	// ProcessRecords returns.
	Records []UserRecord
	// MillisBehindLatest is how far the batch is behind the shard's newest
	// record.
	MillisBehindLatest int64
	// Checkpointer records progress in the lease.
	Checkpointer Checkpointer
}

// LeaseLostInput is the input of RecordProcessor.LeaseLost.
type LeaseLostInput struct {
	// ShardID is the shard whose lease was lost.
	ShardID string
}

// ShardEndedInput is the input of RecordProcessor.ShardEnded.
type ShardEndedInput struct {
	// ShardID is the shard that ended.
	ShardID string
	// Checkpointer must checkpoint the end of the shard.
	Checkpointer Checkpointer
}

// ShutdownRequestedInput is the input of RecordProcessor.ShutdownRequested.
type ShutdownRequestedInput struct {
	// ShardID is the shard being handed off.
	ShardID string
	// Checkpointer may checkpoint the records processed.
	Checkpointer Checkpointer
}

// ProcessorFunc is a RecordProcessor made of one function that processes
// batches. It checkpoints the end of a shard when the shard ends, and the
// last record handed to it when the Consumer is closed (the function has
// returned nil for it, so it was processed); it does nothing on Initialize
// and LeaseLost. Between those it checkpoints only when the function does.
type ProcessorFunc func(ctx context.Context, in ProcessRecordsInput) error

// Initialize does nothing.
func (f ProcessorFunc) Initialize(context.Context, InitializeInput) error { return nil }

// ProcessRecords calls f.
func (f ProcessorFunc) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	return f(ctx, in)
}

// LeaseLost does nothing.
func (f ProcessorFunc) LeaseLost(context.Context, LeaseLostInput) {}

// ShardEnded checkpoints the end of the shard.
func (f ProcessorFunc) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested checkpoints the last record processed.
func (f ProcessorFunc) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// Checkpointer records how far a RecordProcessor has processed its shard,
// in the shard's lease, as the KCL's RecordProcessorCheckpointer does. The
// Consumer's checkpointer accepts a checkpoint only while the worker holds
// the lease: once the lease is lost, checkpoints fail with ErrLeaseLost and
// nothing is written, so a stale owner cannot overwrite the new owner's
// progress. It is safe for concurrent use. Checkpointer is an interface so
// that a processor's unit tests can pass a fake.
type Checkpointer interface {
	// Checkpoint checkpoints the last user record handed to the processor;
	// in ShardEnded, the end of the shard. Checkpointing what is
	// checkpointed already writes nothing.
	Checkpoint(ctx context.Context) error
	// CheckpointAt checkpoints at a user record handed to the processor: at
	// must not be after the last one handed out nor before the current
	// checkpoint, else the error wraps ErrInvalidArgument. A checkpoint at
	// ShardEnd is accepted once the shard has ended. After a restart or a
	// failover, processing resumes right after at, in the middle of an
	// aggregate if at is.
	CheckpointAt(ctx context.Context, at Checkpoint) error
}

// leaseCheckpointer is the Consumer's Checkpointer of one held lease.
type leaseCheckpointer struct {
	c *Consumer
	h *heldLease

	writing  chan struct{} // one slot: the checkpoint in progress, so that checkpoints stay in order
	mu       sync.Mutex    // guards the fields below; never held across a store call
	handed   Checkpoint    // the last user record handed to the processor
	ended    bool          // the shard has ended: ShardEnd may be checkpointed
	children []string      // when ended: the shards that continue it
	written  Checkpoint    // the checkpoint in the lease
}

// Checkpoint implements Checkpointer.
func (cp *leaseCheckpointer) Checkpoint(ctx context.Context) error {
	cp.mu.Lock()
	at := cp.handed
	if cp.ended {
		at = Checkpoint{ShardEnd: true}
	}
	cp.mu.Unlock()
	if at.IsZero() {
		return nil // nothing handed out yet
	}
	return cp.CheckpointAt(ctx, at)
}

// CheckpointAt implements Checkpointer.
func (cp *leaseCheckpointer) CheckpointAt(ctx context.Context, at Checkpoint) error {
	const op = "Checkpoint"
	select {
	case cp.writing <- struct{}{}:
	case <-ctx.Done():
		return ctxError(op, ctx.Err())
	}
	defer func() { <-cp.writing }()
	if err := cp.check(op, at); err != nil || at == cp.checkpointed() {
		return err
	}
	cp.mu.Lock()
	children := cp.children
	cp.mu.Unlock()
	err := cp.c.writeLease(ctx, op, cp.h, func(l *Lease) {
		l.Checkpoint, l.OwnerSwitchesSinceCheckpoint = at, 0
		if at.ShardEnd {
			l.ChildShardIDs = children
		}
	})
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.written = at
	cp.mu.Unlock()
	return nil
}

// check validates a checkpoint against what was handed out and written.
func (cp *leaseCheckpointer) check(op string, at Checkpoint) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	switch why := at.invalid(); {
	case why != "":
		return errorf(op, ErrInvalidArgument, "checkpoint of shard %s %s", cp.h.shardID, why)
	case at.IsZero():
		return errorf(op, ErrInvalidArgument, "checkpoint of shard %s is empty", cp.h.shardID)
	case at.ShardEnd && !cp.ended:
		return errorf(op, ErrInvalidArgument, "checkpoint SHARD_END of shard %s: the shard has not ended", cp.h.shardID)
	case !at.ShardEnd && at.cmp(cp.handed) > 0:
		return errorf(op, ErrInvalidArgument, "checkpoint %s of shard %s is after the last record handed to the processor (%s)", at, cp.h.shardID, cp.handed)
	case at.cmp(cp.written) < 0:
		return errorf(op, ErrInvalidArgument, "checkpoint %s of shard %s is before its current checkpoint %s", at, cp.h.shardID, cp.written)
	}
	return nil
}

// hand records the last user record handed to the processor.
func (cp *leaseCheckpointer) hand(at Checkpoint) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.handed = at
}

// end records that the shard has ended, and the shards that continue it.
func (cp *leaseCheckpointer) end(children []ChildShard) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.ended = true
	cp.children = nil
	for _, ch := range children {
		cp.children = append(cp.children, ch.ShardID)
	}
}

// checkpointed returns the checkpoint in the lease.
func (cp *leaseCheckpointer) checkpointed() Checkpoint {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.written
}

// consumerConfig is a Consumer's configuration.
type consumerConfig struct {
	store           LeaseStore
	workerID        string
	failover        time.Duration
	syncInterval    time.Duration
	shutdownTimeout time.Duration
	start           StartingPosition
	readerOpts      []ReaderOption
	fanOut          bool
	fanOutName      string // the stream consumer's name; "" for the application's
	logger          *slog.Logger
	optionError     error
}

// ConsumerOption configures a Consumer.
type ConsumerOption func(*consumerConfig)

// WithLeaseStore sets where the Consumer keeps its leases and checkpoints.
// Every worker of an application must use the same store. Default: a new
// MemoryLeaseStore, private to the Consumer (a group of one worker whose
// checkpoints end with the process).
func WithLeaseStore(s LeaseStore) ConsumerOption {
	return func(c *consumerConfig) {
		if s == nil {
			c.optionError = errorf("WithLeaseStore", ErrInvalidArgument, "the lease store is nil")
		}
		c.store = s
	}
}

// WithWorkerID sets the worker's name, the owner written in the leases it
// holds. It must be unique in the group; a worker started again with the
// same id takes its leases back at once. A second live worker with the
// same id takes them too, and the first one, when it notices, gives them
// up and logs an error rather than taking them back. Default: the
// application name followed by a random suffix.
func WithWorkerID(id string) ConsumerOption {
	return func(c *consumerConfig) {
		if id == "" {
			c.optionError = errorf("WithWorkerID", ErrInvalidArgument, "the worker id is empty")
		}
		c.workerID = id
	}
}

// WithFailoverTime sets how long a lease lives without renewal before
// another worker may take it (the KCL's failoverTimeMillis). Leases are
// renewed, and expired leases looked for, every third of it. Default 10 s.
func WithFailoverTime(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) {
		if d < 30*time.Millisecond {
			c.optionError = errorf("WithFailoverTime", ErrInvalidArgument, "failover time %v is below the minimum of 30ms", d)
		}
		c.failover = d
	}
}

// WithShardSyncInterval sets how often the Consumer lists the stream's
// shards to create leases for new shards and delete those of shards that
// have gone. A worker also lists them as soon as one of its shards ends.
// Default 1 minute.
func WithShardSyncInterval(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) {
		if d <= 0 {
			c.optionError = errorf("WithShardSyncInterval", ErrInvalidArgument, "shard sync interval %v must be positive", d)
		}
		c.syncInterval = d
	}
}

// WithInitialPosition sets where the processing of a shard that has no
// checkpoint starts, when the group first sees the stream: TrimHorizon
// (the default), Latest or AtTimestamp. Shards created by resharding
// afterwards always start at their beginning, so that nothing written to
// them is missed. With Latest only the open shards get leases at first.
//
// Latest is fixed, when the lease is created, as AtTimestamp of that
// moment, so that a worker that takes the lease over before anything was
// checkpointed starts where the first one did (records that arrived in the
// same millisecond are delivered too).
//
// The KCL's default is LATEST; runnel's is TRIM_HORIZON, so that records
// written before the consumer started are not skipped silently.
//
// A lease that says AT_TIMESTAMP without a time (as a KCL worker writes it)
// starts at this position's Timestamp, and cannot be read by a group
// started at another position.
func WithInitialPosition(p StartingPosition) ConsumerOption {
	return func(c *consumerConfig) {
		switch {
		case p.Type != TrimHorizon && p.Type != Latest && p.Type != AtTimestamp:
			c.optionError = errorf("WithInitialPosition", ErrInvalidArgument, "initial position %.40q is not TRIM_HORIZON, LATEST or AT_TIMESTAMP", p.Type)
		case p.Type == AtTimestamp && p.Timestamp.IsZero():
			c.optionError = errorf("WithInitialPosition", ErrInvalidArgument, "initial position AT_TIMESTAMP needs a Timestamp")
		}
		c.start = p
	}
}

// WithShutdownTimeout sets how long Close lets processors finish their
// batch and shut down before it cancels their contexts. Default: the
// failover time.
func WithShutdownTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) {
		if d <= 0 {
			c.optionError = errorf("WithShutdownTimeout", ErrInvalidArgument, "shutdown timeout %v must be positive", d)
		}
		c.shutdownTimeout = d
	}
}

// WithReaderOptions sets options for the ShardReader of every shard (its
// pace, idle wait, batch limit, …). WithReaderStart and WithReaderCheckpoint
// are set by the Consumer from the lease and cannot be overridden.
func WithReaderOptions(opts ...ReaderOption) ConsumerOption {
	return func(c *consumerConfig) { c.readerOpts = append(c.readerOpts, opts...) }
}

// WithFanOut makes the workers read with enhanced fan-out, as KCL 2.x
// does: records are pushed to a consumer registered with the stream under
// consumerName (the application's name when empty), which has its own read
// budget on every shard (see Stream.SubscribeToShard). Leases,
// checkpoints and the order of parents and children are the same as when
// polling. A worker registers the consumer if it is not registered yet,
// and takes no lease before it is ACTIVE; if the consumer is deregistered
// while the worker runs, the worker registers it again. A registration
// that fails (a stream at its consumer limit, say) is logged and tried
// again every second: Stats().FanOutConsumerARN is empty until it
// succeeds. The StreamReader must also be a FanOutReader; *Stream is.
func WithFanOut(consumerName string) ConsumerOption {
	return func(c *consumerConfig) {
		if consumerName != "" {
			if err := validateName("WithFanOut", "consumer", consumerName); err != nil {
				c.optionError = err
			}
		}
		c.fanOut, c.fanOutName = true, consumerName
	}
}

// WithConsumerLogger sets where the Consumer logs its lease events (taken,
// stolen, lost, released) and shard ends (at info level), the failed calls
// it tries again (at warn level: see ConsumerStats.RetriedErrors) and
// processor errors (at error level). Default: nowhere.
func WithConsumerLogger(l *slog.Logger) ConsumerOption {
	return func(c *consumerConfig) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	}
}

// Consumer is one worker of a consumer group: an application that
// processes every record of a stream, as the KCL's Scheduler does. The
// workers of a group share a LeaseStore; each shard has one lease, and its
// holder runs a RecordProcessor for it on a ShardReader. Workers renew the
// leases they hold, take leases that are free or expired (not renewed for
// the failover time), and balance the shards evenly by taking at most one
// lease from the busiest worker at a time. A shard's children start only
// after every parent has been checkpointed at its end.
//
// Delivery is at least once: after a failover, a steal or a restart the
// shard resumes after its last checkpoint, so the records processed since
// then are delivered again (and only those). A worker that steals a lease
// waits a renewal interval before it starts the shard, so that the
// previous owner, at its next renewal, has stopped. DedupWindow helps make
// processing idempotent.
//
// A Consumer starts working when it is created and stops with Close. Its
// methods are safe for concurrent use.
type Consumer struct {
	src          StreamReader
	app          string
	newProcessor func(shardID string) RecordProcessor
	cfg          consumerConfig
	log          *slog.Logger
	renewEvery   time.Duration

	ctx       context.Context // the coordinator's; cancelled by Close
	cancel    context.CancelFunc
	coordDone chan struct{}  // closed when the coordinator has returned
	wg        sync.WaitGroup // the shards' goroutines
	kick      chan struct{}  // asks the coordinator to list the shards now

	// Locks: mu, heldLease.mu and leaseCheckpointer.mu are each taken on
	// their own, briefly, never while holding another and never across a
	// store call; the writes of a lease are ordered by one-slot channels
	// instead (leaseCheckpointer.writing, then heldLease.writing).
	mu      sync.Mutex
	held    map[string]*heldLease
	shards  map[string]Shard     // as last listed
	penalty map[string]time.Time // shards not to take before then: their processor failed
	closing bool
	closed  chan struct{}

	seen map[string]observed // the coordinator's own: when each lease's counter last moved

	fanOutARN   string         // guarded by mu: the stream consumer's ARN once ACTIVE; "" before, or when polling
	registering bool           // guarded by mu: a registration is under way
	regWG       sync.WaitGroup // the registration's goroutine

	leasesTaken, leasesStolen, leasesLost atomic.Int64
	records, bytes, dropped               atomic.Int64
	processorErrors                       atomic.Int64
	retriedErrors                         atomic.Int64
	lastError                             atomic.Pointer[error]
}

// observed is when a worker first saw a lease's counter at a value.
type observed struct {
	counter int64
	at      time.Time
}

// heldLease is a lease the worker holds, and the goroutine processing its
// shard.
type heldLease struct {
	shardID string

	writing   chan struct{} // one slot: the lease write in progress (see writeLease)
	mu        sync.Mutex    // guards the fields below; never held across a store call
	lease     Lease         // as this worker last wrote it
	renewedAt time.Time
	lost      bool // lost or released: no more writes

	expiry      *time.Timer        // gives the lease up when it is late: see loseIfLate
	cancelLease context.CancelFunc // stops processing: the lease is lost, or the worker crashed
	cancelRead  context.CancelFunc // stops reading: shutdown requested
	crashed     atomic.Bool

	behind         atomic.Int64
	records, bytes atomic.Int64
}

// NewConsumer starts a worker of the consumer group of application app on
// the stream src. app names the group (3 to 255 letters, digits, '_', '-'
// or '.', as a KCL lease table is named); newProcessor makes the
// RecordProcessor of each shard the worker takes. Close stops it.
func NewConsumer(src StreamReader, app string, newProcessor func(shardID string) RecordProcessor, opts ...ConsumerOption) (*Consumer, error) {
	const op = "NewConsumer"
	if isNil(src) {
		return nil, errorf(op, ErrInvalidArgument, "the StreamReader is nil")
	}
	if newProcessor == nil {
		return nil, errorf(op, ErrInvalidArgument, "the record processor factory is nil")
	}
	if err := validateAppName(op, app); err != nil {
		return nil, err
	}
	cfg := consumerConfig{
		failover:     10 * time.Second,
		syncInterval: time.Minute,
		start:        StartingPosition{Type: TrimHorizon},
		logger:       slog.New(slog.DiscardHandler),
	}
	for i, o := range opts {
		if o == nil {
			return nil, errorf(op, ErrInvalidArgument, "option %d is nil", i)
		}
		o(&cfg)
		if cfg.optionError != nil {
			return nil, cfg.optionError
		}
	}
	if _, err := newReaderConfig(cfg.readerOpts); err != nil {
		return nil, err
	}
	if cfg.fanOut {
		if _, ok := src.(FanOutReader); !ok {
			return nil, errorf(op, ErrInvalidArgument, "fan-out needs a StreamReader that is a FanOutReader; %T is not", src)
		}
		if cfg.fanOutName == "" {
			if err := validateName(op, "consumer", app); err != nil {
				return nil, errorf(op, ErrInvalidArgument, "application name %s cannot name a stream consumer; give WithFanOut a name", app)
			}
			cfg.fanOutName = app
		}
	}
	if cfg.store == nil {
		cfg.store = NewMemoryLeaseStore()
	}
	if cfg.shutdownTimeout == 0 {
		cfg.shutdownTimeout = cfg.failover
	}
	if cfg.workerID == "" {
		cfg.workerID = fmt.Sprintf("%s-%08x", app, rand.Uint32())
	}
	c := &Consumer{
		src:          src,
		app:          app,
		newProcessor: newProcessor,
		cfg:          cfg,
		log:          cfg.logger.With("app", app, "worker", cfg.workerID),
		renewEvery:   cfg.failover / 3,
		kick:         make(chan struct{}, 1),
		coordDone:    make(chan struct{}),
		held:         make(map[string]*heldLease),
		shards:       make(map[string]Shard),
		penalty:      make(map[string]time.Time),
		closed:       make(chan struct{}),
		seen:         make(map[string]observed),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.coordinate()
	return c, nil
}

// validateAppName checks an application name against the rules of a
// DynamoDB table name, which a KCL application's lease table takes.
func validateAppName(op, app string) error {
	if len(app) < 3 || len(app) > 255 {
		return errorf(op, ErrInvalidArgument, "application name %.40q is %d characters; it must have 3 to 255", app, len(app))
	}
	for _, r := range app {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_', r == '-', r == '.':
		default:
			return errorf(op, ErrInvalidArgument, "application name %.40q has the character %q; only ASCII letters, digits, '_', '-' and '.' are allowed", app, r)
		}
	}
	return nil
}

// WorkerID returns the worker's name in the leases.
func (c *Consumer) WorkerID() string { return c.cfg.workerID }

// Close stops the worker gracefully: it takes no more leases, each
// processor finishes the batch in hand and is asked to shut down
// (ShutdownRequested, where it may checkpoint), and each lease is then
// released so that another worker takes it at once. Leases are renewed
// until their processors have shut down. Processors still busy after the
// shutdown timeout (WithShutdownTimeout) have their contexts cancelled and
// get no further call; their leases are left to expire. Close then waits
// for every goroutine of the Consumer, so a processor that ignores its
// context holds Close up, and a processor must not call Close itself. It
// may be called more than once; it returns nil.
func (c *Consumer) Close() error {
	c.stop(false)
	return nil
}

// stop stops the worker; crash stops it as a process crash would, without
// a processor call or a lease write (for tests of failover).
func (c *Consumer) stop(crash bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.closed
		return
	}
	c.closing = true // take starts no more shards
	c.mu.Unlock()
	if crash {
		c.cancel()
		<-c.coordDone
	}
	c.mu.Lock()
	for _, h := range c.held {
		if crash {
			h.crashed.Store(true)
			h.cancelLease()
		} else {
			h.cancelRead()
		}
	}
	c.mu.Unlock()
	shardsDone := make(chan struct{})
	go func() { c.wg.Wait(); close(shardsDone) }()
	t := time.NewTimer(c.cfg.shutdownTimeout)
	select {
	case <-shardsDone:
	case <-t.C:
		// Processors still busy: cancel their contexts. Their leases are
		// not released; they expire for other workers to take.
		c.log.Warn("runnel: processors did not shut down in time; cancelling them", "timeout", c.cfg.shutdownTimeout)
		for _, h := range c.heldLeases() {
			h.crashed.Store(true)
			h.cancelLease()
		}
		<-shardsDone
	}
	t.Stop()
	c.cancel()
	<-c.coordDone
	c.regWG.Wait()
	close(c.closed)
}

// isClosing reports whether Close has begun.
func (c *Consumer) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// storeCtx bounds one call of the lease store, so that a store that hangs
// cannot stall renewals past the failover time.
func (c *Consumer) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.renewEvery)
}

// coordinate is the worker's lease loop: renew, list the shards now and
// then, take and balance leases.
func (c *Consumer) coordinate() {
	defer close(c.coordDone)
	var nextSync time.Time
	for {
		now := time.Now()
		c.renewAll()
		// In fan-out mode no lease is created or taken before the stream
		// consumer is ACTIVE.
		registered := !c.cfg.fanOut || c.consumerARN() != ""
		if !registered {
			c.register()
		}
		if registered && !now.Before(nextSync) && !c.isClosing() {
			if err := c.syncShards(); err != nil && c.ctx.Err() == nil {
				c.retrying("runnel: syncing the leases with the stream's shards failed", err)
			}
			nextSync = time.Now().Add(c.cfg.syncInterval)
		}
		wait := c.renewEvery
		if registered {
			wait = min(wait, time.Until(nextSync))
			if wake := c.takeLeases(time.Now()); !wake.IsZero() {
				wait = min(wait, time.Until(wake))
			}
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-c.kick:
			nextSync = time.Time{}
		case <-t.C:
		}
		t.Stop()
	}
}

// consumerARN returns the ARN of the stream consumer the worker reads as
// in fan-out mode, or "" when it is not registered and ACTIVE yet.
func (c *Consumer) consumerARN() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fanOutARN
}

// register starts registering the group's stream consumer in the
// background, unless that is under way; the coordinator takes leases once
// it is done.
func (c *Consumer) register() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.registering {
		return
	}
	c.registering = true
	c.regWG.Go(func() {
		arn := c.registerFanOut()
		c.mu.Lock()
		c.fanOutARN, c.registering = arn, false
		c.mu.Unlock()
		c.kickSync()
	})
}

// forgetConsumer drops the stream consumer's ARN after a subscription
// found it gone (deregistered), so that the coordinator registers it
// again.
// Any ErrResourceNotFound will do: if the consumer is still there, the
// registration finds it at once.
func (c *Consumer) forgetConsumer(arn string) {
	c.mu.Lock()
	forgot := c.fanOutARN == arn
	if forgot {
		c.fanOutARN = ""
	}
	c.mu.Unlock()
	if forgot {
		c.log.Warn("runnel: the stream consumer may be gone; looking it up again", "consumer", arn)
	}
}

// registerFanOut finds the group's stream consumer, registering it if it
// is not registered, and waits until it is ACTIVE, as a KCL worker does at
// its start. It returns the consumer's ARN, or "" if the worker is closed
// first.
func (c *Consumer) registerFanOut() string {
	fo := c.src.(FanOutReader)
	name := c.cfg.fanOutName
	for {
		con, err := fo.DescribeStreamConsumer(c.ctx, StreamConsumerRef{ConsumerName: name})
		if errors.Is(err, ErrResourceNotFound) {
			if con, err = fo.RegisterStreamConsumer(c.ctx, RegisterStreamConsumerInput{ConsumerName: name}); err == nil {
				c.log.Info("runnel: stream consumer registered", "consumer", con.ConsumerARN)
			}
		}
		switch {
		case c.ctx.Err() != nil:
			return ""
		case err == nil && con.ConsumerStatus == StreamConsumerActive:
			return con.ConsumerARN
		case err != nil && !errors.Is(err, ErrResourceInUse): // in use: registered meanwhile
			c.retrying("runnel: registering the stream consumer failed; trying again", err, "consumer", name)
		}
		if sleepCtx(c.ctx, time.Second) != nil {
			return ""
		}
	}
}

// kickSync asks the coordinator to list the shards now.
func (c *Consumer) kickSync() { signal(c.kick) }

// syncShards creates the leases of shards that have none and deletes those
// of shards that have gone.
func (c *Consumer) syncShards() error {
	ctx, cancel := c.storeCtx()
	defer cancel()
	// Leases first: a lease seen here was written before the listing
	// began, so a lease of a shard the listing lacks is of a shard that
	// has gone, never of one created since.
	leases, err := c.cfg.store.ListLeases(ctx)
	if err != nil {
		return err
	}
	shards, err := listAllShards(ctx, c.src)
	if err != nil {
		return err
	}
	listed := make(map[string]Shard, len(shards))
	for _, sh := range shards {
		listed[sh.ShardID] = sh
	}
	c.mu.Lock()
	c.shards = listed
	c.mu.Unlock()
	have := make(map[string]bool, len(leases))
	for _, l := range leases {
		have[l.ShardID] = true
	}
	first := len(leases) == 0
	existed := maps.Clone(have) // before this sync's new leases
	// Shard ids grow with creation, so parents get their leases before
	// their children.
	slices.SortFunc(shards, func(a, b Shard) int { return compareShardIDs(a.ShardID, b.ShardID) })
	for _, sh := range shards {
		if have[sh.ShardID] {
			continue
		}
		l := Lease{ShardID: sh.ShardID, Counter: 1, Start: c.cfg.start, HashKeyRange: sh.HashKeyRange}
		leasedParent := false
		for _, p := range []string{sh.ParentShardID, sh.AdjacentParentShardID} {
			if p != "" {
				l.ParentShardIDs = append(l.ParentShardIDs, p)
				leasedParent = leasedParent || existed[p]
			}
		}
		if c.cfg.start.Type == Latest {
			switch {
			case leasedParent || (!first && len(l.ParentShardIDs) > 0):
				// Created by a reshard since the group started: from its
				// first record, so that nothing written to it is missed.
				l.Start = StartingPosition{Type: TrimHorizon}
			case !sh.Open():
				// Closed before the group started: done, so its children
				// may start.
				l.Checkpoint = Checkpoint{ShardEnd: true}
			default:
				// A fixed point, so that a worker taking over a lease that
				// has no checkpoint yet starts where the first one did.
				l.Start = StartingPosition{Type: AtTimestamp, Timestamp: time.Now()}
			}
		}
		if err := c.cfg.store.PutLease(ctx, l, 0); err != nil && !errors.Is(err, ErrLeaseConflict) {
			return err // stop: a child must not get a lease before its parent
		}
		have[sh.ShardID] = true
	}
	for _, l := range leases {
		if _, ok := listed[l.ShardID]; ok || (l.Owner != "" && !l.Checkpoint.ShardEnd) {
			continue
		}
		// The shard has gone (its records expired). A lease still owned is
		// left to its owner, whose reader finds the shard gone.
		if err := c.cfg.store.DeleteLease(ctx, l.ShardID, l.Counter); err != nil && !errors.Is(err, ErrLeaseConflict) {
			return err
		}
		c.log.Debug("runnel: deleted the lease of a shard that has gone", "shard", l.ShardID)
	}
	return nil
}

// compareShardIDs orders shard ids of Kinesis's form ("shardId-" and 12
// digits) by number: by length, then as strings.
func compareShardIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// renewAll renews the leases the worker holds. A lease that another worker
// has taken is lost; so is one not renewed for the failover time less one
// renewal interval (its expiry timer checks that too, whatever the
// coordinator is doing), so that it is given up before another worker may
// take it.
func (c *Consumer) renewAll() {
	for _, h := range c.heldLeases() {
		ctx, cancel := c.storeCtx()
		err := c.writeLease(ctx, "RenewLease", h, func(*Lease) {})
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) || c.ctx.Err() != nil {
			continue
		}
		c.retrying("runnel: renewing a lease failed", err, "shard", h.shardID)
		c.loseIfLate(h)
	}
}

// loseIfLate loses a held lease whose last renewal is so old that another
// worker may take it before the next renewal round.
func (c *Consumer) loseIfLate(h *heldLease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.renewedAt) >= c.cfg.failover-c.renewEvery {
		c.loseLeaseLocked(h, "not renewed within the failover time")
	}
}

// heldLeases returns the leases the worker holds.
func (c *Consumer) heldLeases() []*heldLease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.held))
}

// writeLease writes the held lease with change applied and its counter
// bumped, on the condition that nobody else wrote it since: the one write
// path of renewals, checkpoints and releases. A failed condition loses the
// lease and gives ErrLeaseLost. Writes of a lease run one at a time (a
// renewal and a checkpoint must not both expect the same counter); h.mu is
// never held across the store call, so the expiry timer can always give
// the lease up in time.
func (c *Consumer) writeLease(ctx context.Context, op string, h *heldLease, change func(*Lease)) error {
	select {
	case h.writing <- struct{}{}:
	case <-ctx.Done():
		return ctxError(op, ctx.Err())
	}
	defer func() { <-h.writing }()
	ctx, cancel := context.WithTimeout(ctx, c.renewEvery/2)
	defer cancel()
	h.mu.Lock()
	if h.lost {
		h.mu.Unlock()
		return errorf(op, ErrLeaseLost, "shard %s", h.shardID)
	}
	prev := h.lease.Counter
	next := h.lease.clone()
	h.mu.Unlock()
	next.Counter++
	change(&next)
	start := time.Now()
	err := c.cfg.store.PutLease(ctx, next, prev)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.lost: // given up meanwhile, as too late
		return errorf(op, ErrLeaseLost, "shard %s", h.shardID)
	case err == nil:
		h.lease, h.renewedAt = next, start
		if h.expiry != nil {
			h.expiry.Reset(time.Until(start.Add(c.cfg.failover - c.renewEvery)))
		}
		if next.Owner != c.cfg.workerID {
			h.lost = true // released
		}
		return nil
	case errors.Is(err, ErrLeaseConflict):
		c.loseLeaseLocked(h, "another worker took it")
		return errorf(op, ErrLeaseLost, "shard %s: another worker wrote the lease", h.shardID)
	}
	return asError(op, "shard "+h.shardID, err)
}

// loseLeaseLocked marks a held lease lost and stops the processing of its
// shard. Called with h.mu held.
func (c *Consumer) loseLeaseLocked(h *heldLease, why string) {
	if h.lost {
		return
	}
	h.lost = true
	c.leasesLost.Add(1)
	h.cancelLease()
	if h.expiry != nil {
		h.expiry.Stop()
	}
	c.log.Info("runnel: lease lost", "shard", h.shardID, "why", why)
}

// takeLeases takes free and expired leases, and steals one from the
// busiest worker when that evens the load. It returns when the next lease
// it watches may expire (zero if none).
func (c *Consumer) takeLeases(now time.Time) (nextExpiry time.Time) {
	if c.isClosing() {
		return time.Time{}
	}
	ctx, cancel := c.storeCtx()
	leases, err := c.cfg.store.ListLeases(ctx)
	cancel()
	if err != nil {
		if c.ctx.Err() == nil {
			c.retrying("runnel: listing leases failed", err)
		}
		return time.Time{}
	}
	byID := make(map[string]*Lease, len(leases))
	for i := range leases {
		byID[leases[i].ShardID] = &leases[i]
	}
	for id := range c.seen {
		if byID[id] == nil {
			delete(c.seen, id)
		}
	}
	c.mu.Lock()
	mine := len(c.held)
	held := make(map[string]bool, mine)
	for id := range c.held {
		held[id] = true
	}
	listed := c.shards
	penalised := func(id string) bool {
		until, ok := c.penalty[id]
		return ok && now.Before(until)
	}
	c.mu.Unlock()

	var free []*Lease             // ready leases no live worker holds
	load := map[string][]*Lease{} // live workers' ready leases
	load[c.cfg.workerID] = nil    // this worker counts itself
	ready := 0
	for i := range leases {
		l := &leases[i]
		o, seen := c.seen[l.ShardID]
		moved := seen && o.counter != l.Counter
		if !seen || moved {
			o = observed{counter: l.Counter, at: now}
			c.seen[l.ShardID] = o
		}
		ours := l.Owner == c.cfg.workerID && !held[l.ShardID]
		if ours && moved {
			// Written since we last looked, in our name, by a lease we do
			// not hold: another live worker has our id.
			c.log.Error("runnel: another worker uses this worker id; worker ids must be unique in a group", "shard", l.ShardID)
		}
		if !readyLease(l, byID, listed) {
			continue
		}
		ready++
		switch {
		case held[l.ShardID]:
			load[c.cfg.workerID] = append(load[c.cfg.workerID], l)
		// Free, expired, or held in our name by an earlier run of this
		// worker (seen for the first time): taken at once.
		case l.Owner == "" || (ours && !seen) || now.Sub(o.at) >= c.cfg.failover:
			c.mu.Lock()
			skip := penalised(l.ShardID)
			c.mu.Unlock()
			if !skip {
				free = append(free, l)
			}
		default:
			if !ours { // another worker with our id is not counted as one
				load[l.Owner] = append(load[l.Owner], l)
			}
			if exp := o.at.Add(c.cfg.failover); nextExpiry.IsZero() || exp.Before(nextExpiry) {
				nextExpiry = exp
			}
		}
	}
	if ready == 0 || c.ctx.Err() != nil {
		return nextExpiry
	}
	target := (ready + len(load) - 1) / len(load)
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, l := range free {
		if mine >= target {
			break
		}
		if c.take(l, false) {
			mine++
		}
	}
	if mine >= target || len(free) > 0 {
		return nextExpiry
	}
	// Steal one lease from the busiest worker, if that evens the load.
	var busiest string
	for w, ls := range load {
		if w != c.cfg.workerID && (busiest == "" || len(ls) > len(load[busiest]) || (len(ls) == len(load[busiest]) && w < busiest)) {
			busiest = w
		}
	}
	if n := len(load[busiest]); busiest != "" && (n > target || (n == target && mine < target-1)) {
		c.take(load[busiest][rand.N(n)], true)
	}
	return nextExpiry
}

// readyLease reports whether a lease's shard can be processed: it has not
// ended, and every parent's lease has ended, or the parent has gone (no
// lease, and not listed).
func readyLease(l *Lease, byID map[string]*Lease, listed map[string]Shard) bool {
	if l.Checkpoint.ShardEnd {
		return false
	}
	for _, p := range l.ParentShardIDs {
		pl := byID[p]
		_, isListed := listed[p]
		if (pl != nil && !pl.Checkpoint.ShardEnd) || (pl == nil && isListed) {
			return false
		}
	}
	return true
}

// take takes a lease and starts processing its shard.
func (c *Consumer) take(l *Lease, steal bool) bool {
	next := l.clone()
	prev := next.Owner
	next.Owner, next.Counter = c.cfg.workerID, l.Counter+1
	if prev != "" && prev != next.Owner {
		next.OwnerSwitchesSinceCheckpoint++
	}
	ctx, cancel := c.storeCtx()
	now := time.Now()
	err := c.cfg.store.PutLease(ctx, next, l.Counter)
	cancel()
	if err != nil {
		if !errors.Is(err, ErrLeaseConflict) && c.ctx.Err() == nil {
			c.retrying("runnel: taking a lease failed", err, "shard", l.ShardID)
		}
		return false
	}
	c.seen[l.ShardID] = observed{counter: next.Counter, at: now}
	h := &heldLease{shardID: l.ShardID, lease: next, renewedAt: now, writing: make(chan struct{}, 1)}
	leaseCtx, cancelLease := context.WithCancel(context.Background())
	readCtx, cancelRead := context.WithCancel(leaseCtx)
	h.cancelLease, h.cancelRead = cancelLease, cancelRead
	c.mu.Lock()
	if c.closing { // Close began since takeLeases looked
		c.mu.Unlock()
		cancelLease()
		c.release(h)
		return false
	}
	c.held[l.ShardID] = h
	c.wg.Add(1) // under c.mu: Close's Wait cannot miss it
	c.mu.Unlock()
	// The lease is given up a renewal interval before another worker may
	// take it, whatever the coordinator is busy with.
	h.mu.Lock()
	h.expiry = time.AfterFunc(c.cfg.failover-c.renewEvery, func() { c.loseIfLate(h) })
	h.mu.Unlock()
	if steal {
		c.leasesStolen.Add(1)
		c.log.Info("runnel: lease stolen", "shard", l.ShardID, "from", prev)
	} else {
		c.leasesTaken.Add(1)
		c.log.Info("runnel: lease taken", "shard", l.ShardID, "previousOwner", prev)
	}
	go func() {
		defer c.wg.Done()
		defer cancelLease()
		if steal && sleepCtx(readCtx, c.renewEvery) != nil {
			if !h.crashed.Load() {
				c.release(h) // shut down before it started, or lost
			}
		} else {
			c.process(leaseCtx, readCtx, h)
		}
		h.mu.Lock()
		h.expiry.Stop()
		h.mu.Unlock()
		c.mu.Lock()
		delete(c.held, h.shardID)
		c.mu.Unlock()
	}()
	return true
}

// leaseStart is where the reader of a lease with no checkpoint starts. A
// lease can hold AT_TIMESTAMP with no time: the KCL's lease table keeps
// only that sentinel, and each KCL worker supplies the time from its own
// configuration. The group's WithInitialPosition supplies it here, as it
// does for a KCL worker; a group started at another position cannot read
// such a shard, and the error says so.
func (c *Consumer) leaseStart(l Lease) (StartingPosition, error) {
	if l.Start.Type != AtTimestamp || !l.Start.Timestamp.IsZero() || !l.Checkpoint.IsZero() {
		return l.Start, nil
	}
	if c.cfg.start.Type == AtTimestamp {
		return c.cfg.start, nil
	}
	return StartingPosition{}, errorf("Consumer", ErrInvalidArgument,
		"the lease of %.80q starts AT_TIMESTAMP with no timestamp, which a group started at %s cannot supply: start it WithInitialPosition(AT_TIMESTAMP) and a time, or checkpoint the shard first", l.ShardID, c.cfg.start.Type)
}

// process runs the record processor of a held lease until the shard ends,
// the lease is lost or the worker stops.
func (c *Consumer) process(leaseCtx, readCtx context.Context, h *heldLease) {
	id := h.shardID
	log := c.log.With("shard", id)
	// fail ends the processing after an error: the lease is released, and
	// the shard is not taken again for the failover time.
	fail := func(what string, err error) {
		if h.crashed.Load() || leaseCtx.Err() != nil {
			return // lost meanwhile: nothing to release
		}
		c.processorErrors.Add(1)
		c.lastError.Store(&err)
		log.Error("runnel: "+what+" failed; releasing the lease", "err", err)
		c.mu.Lock()
		c.penalty[id] = time.Now().Add(c.cfg.failover)
		c.mu.Unlock()
		c.release(h)
	}
	h.mu.Lock()
	lease := h.lease.clone()
	h.mu.Unlock()
	cp := &leaseCheckpointer{c: c, h: h, written: lease.Checkpoint, handed: lease.Checkpoint, writing: make(chan struct{}, 1)}

	start, err := c.leaseStart(lease)
	if err != nil {
		fail("starting the shard reader", err)
		return
	}
	opts := append(slices.Clip(c.cfg.readerOpts), WithReaderStart(start), WithReaderCheckpoint(lease.Checkpoint),
		func(rc *readerConfig) { rc.retried = c.noteRetried })
	arn := c.consumerARN()
	if c.cfg.fanOut {
		if arn == "" { // gone since the lease was taken: let it be taken again
			c.release(h)
			return
		}
		opts = append(opts, WithReaderFanOut(arn))
	}
	c.mu.Lock()
	desc, ok := c.shards[id]
	c.mu.Unlock()
	if !ok {
		desc = Shard{ShardID: id}
	}
	r, err := NewShardReader(c.src, desc, opts...)
	if err != nil {
		fail("starting the shard reader", err)
		return
	}
	defer r.Close()

	p := c.newProcessor(id)
	if p == nil {
		fail("the processor factory", errorf("RecordProcessor", ErrInvalidArgument, "the factory returned a nil RecordProcessor for shard %s", id))
		return
	}
	if err := p.Initialize(leaseCtx, InitializeInput{ShardID: id, Checkpoint: lease.Checkpoint}); err != nil {
		fail("Initialize", err)
		return
	}
	for {
		b, err := r.Next(readCtx)
		switch {
		case h.crashed.Load():
			return
		case leaseCtx.Err() != nil:
			p.LeaseLost(context.Background(), LeaseLostInput{ShardID: id})
			return
		case readCtx.Err() != nil: // shutdown requested
			if err := p.ShutdownRequested(leaseCtx, ShutdownRequestedInput{ShardID: id, Checkpointer: cp}); err != nil {
				fail("ShutdownRequested", err)
				return
			}
			c.release(h)
			return
		case err != nil:
			if c.cfg.fanOut && errors.Is(err, ErrResourceNotFound) {
				c.forgetConsumer(arn) // deregistered, perhaps: look again
			}
			fail("reading the shard", err)
			return
		}
		c.dropped.Add(int64(b.Dropped))
		if len(b.Records) > 0 {
			cp.hand(b.Records[len(b.Records)-1].Checkpoint())
			h.behind.Store(b.MillisBehindLatest)
			h.records.Add(int64(len(b.Records)))
			h.bytes.Add(int64(b.Bytes))
			c.records.Add(int64(len(b.Records)))
			c.bytes.Add(int64(b.Bytes))
			err := p.ProcessRecords(leaseCtx, ProcessRecordsInput{ShardID: id, Records: b.Records, MillisBehindLatest: b.MillisBehindLatest, Checkpointer: cp})
			if err != nil {
				fail("ProcessRecords", err)
				return
			}
		}
		if !b.End {
			continue
		}
		h.behind.Store(0)
		cp.end(b.ChildShards)
		if err := p.ShardEnded(leaseCtx, ShardEndedInput{ShardID: id, Checkpointer: cp}); err != nil {
			fail("ShardEnded", err)
			return
		}
		if !cp.checkpointed().ShardEnd {
			fail("ShardEnded", errorf("ShardEnded", ErrInvalidArgument, "the processor did not checkpoint the end of shard %s, so its children cannot start", id))
			return
		}
		log.Info("runnel: shard ended")
		c.release(h)
		c.kickSync()
		return
	}
}

// release gives a lease up so that any worker can take it at once.
func (c *Consumer) release(h *heldLease) {
	ctx, cancel := context.WithTimeout(context.Background(), c.renewEvery)
	defer cancel()
	if err := c.writeLease(ctx, "ReleaseLease", h, func(l *Lease) { l.Owner = "" }); err != nil {
		if !errors.Is(err, ErrLeaseLost) {
			c.retrying("runnel: releasing a lease failed; it will expire", err, "shard", h.shardID)
		}
		return
	}
	c.log.Info("runnel: lease released", "shard", h.shardID)
}

// ConsumerStats is a snapshot of a Consumer's counters, as Stream.Stats is
// of a stream's.
type ConsumerStats struct {
	// WorkerID is the worker's name.
	WorkerID string
	// LeasesHeld is the number of leases the worker holds now.
	LeasesHeld int
	// LeasesTaken counts leases taken free or expired; LeasesStolen those
	// taken from a busier worker; LeasesLost those another worker took or
	// that could not be renewed.
	LeasesTaken, LeasesStolen, LeasesLost int64
	// RecordsProcessed counts the user records handed to processors;
	// BytesProcessed the bytes of the Kinesis records that carried them
	// (data and partition keys).
	RecordsProcessed, BytesProcessed int64
	// RecordsDropped counts the aggregated user records dropped because
	// they lie outside their shard's range (see ShardReader).
	RecordsDropped int64
	// ProcessorErrors counts the errors of processors and shard readers
	// that ended a shard's processing.
	ProcessorErrors int64
	// RetriedErrors counts the failed calls to the stream and the lease
	// store that the worker tries again: its own (syncing the shards,
	// registering the stream consumer, and listing, taking, renewing and
	// releasing leases, each logged at warn level) and its shard readers'
	// (GetShardIterator, GetRecords and SubscribeToShard, throttles and
	// subscription takeovers included, logged by WithReaderLogger at debug
	// level). A worker that cannot reach its stream or its lease store (a
	// deleted stream, missing credentials, a dead endpoint) keeps trying,
	// and shows it here and in LastError.
	RetriedErrors int64
	// LastError is the latest error the worker met, of those calls or of a
	// processor or shard reader; nil before the first.
	LastError error
	// FanOutConsumerARN is, in fan-out mode (WithFanOut), the ARN of the
	// stream consumer the worker reads as; empty while it is not
	// registered and ACTIVE (a registration that fails is logged and tried
	// again every second).
	FanOutConsumerARN string
	// Shards are the shards the worker holds, in shard-id order.
	Shards []ConsumerShardStats
}

// ConsumerShardStats are the counters of one shard a worker holds.
type ConsumerShardStats struct {
	// ShardID is the shard.
	ShardID string
	// MillisBehindLatest is how far the last batch was behind the shard's
	// newest record (the iterator age of the KCL's metrics).
	MillisBehindLatest int64
	// RecordsProcessed and BytesProcessed count since the worker took the
	// lease.
	RecordsProcessed, BytesProcessed int64
	// Checkpoint is the shard's checkpoint.
	Checkpoint Checkpoint
}

// retrying logs and counts the failure of a call to the stream or the lease
// store that the worker tries again.
func (c *Consumer) retrying(msg string, err error, attrs ...any) {
	c.noteRetried(err)
	c.log.Warn(msg, append(attrs, "err", err)...)
}

// noteRetried counts a failure that is tried again; a shard reader's (which
// logs its own, at debug level) or the worker's.
func (c *Consumer) noteRetried(err error) {
	c.retriedErrors.Add(1)
	c.lastError.Store(&err)
}

// Stats returns a snapshot of the worker's counters.
func (c *Consumer) Stats() ConsumerStats {
	st := ConsumerStats{
		WorkerID:         c.cfg.workerID,
		LeasesTaken:      c.leasesTaken.Load(),
		LeasesStolen:     c.leasesStolen.Load(),
		LeasesLost:       c.leasesLost.Load(),
		RecordsProcessed: c.records.Load(),
		BytesProcessed:   c.bytes.Load(),
		RecordsDropped:   c.dropped.Load(),
		ProcessorErrors:  c.processorErrors.Load(),
		RetriedErrors:    c.retriedErrors.Load(),

		FanOutConsumerARN: c.consumerARN(),
	}
	if err := c.lastError.Load(); err != nil {
		st.LastError = *err
	}
	for _, h := range c.heldLeases() {
		h.mu.Lock() // brief: never held across a store call
		lost, cp := h.lost, h.lease.Checkpoint
		h.mu.Unlock()
		if lost {
			continue // lost or released; its goroutine is finishing
		}
		st.Shards = append(st.Shards, ConsumerShardStats{
			ShardID:            h.shardID,
			MillisBehindLatest: h.behind.Load(),
			RecordsProcessed:   h.records.Load(),
			BytesProcessed:     h.bytes.Load(),
			Checkpoint:         cp,
		})
	}
	st.LeasesHeld = len(st.Shards)
	slices.SortFunc(st.Shards, func(a, b ConsumerShardStats) int { return compareShardIDs(a.ShardID, b.ShardID) })
	return st
}
