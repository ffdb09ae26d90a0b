package runnel

import (
	"context"
	"maps"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Kinesis's fixed request limits.
const (
	// MaxPutRecordsEntries is the most entries one PutRecords call takes.
	MaxPutRecordsEntries = 500
	// MaxGetRecordsLimit is the largest Limit of a GetRecords call.
	MaxGetRecordsLimit = 10_000
	// MaxGetRecordsBytes is the most data one GetRecords call returns.
	MaxGetRecordsBytes = 10 << 20
	// maxRecordSizeLimit is the largest record size a stream can be set to.
	maxRecordSizeLimit = 10 << 20
)

// DefaultMaxRecordSize is a stream's record size limit (data and partition
// key, in bytes) unless it was set otherwise (MaxRecordSizeInKiB on
// Kinesis, which only raises it; WithMaxRecordSize here).
const DefaultMaxRecordSize = 1 << 20

// isNil reports whether x, a seam's value, is nil or a nil pointer (a nil
// *Stream, say): a mistake that would otherwise panic at the first call.
func isNil(x any) bool {
	if x == nil {
		return true
	}
	v := reflect.ValueOf(x)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// StreamStatus is a stream's state as Kinesis reports it.
type StreamStatus string

// The stream states. runnel creates and deletes streams at once, so streams
// are seen ACTIVE, or UPDATING while they reshard, unless
// WithStreamStatusDelay makes them CREATING and DELETING for a while.
const (
	StatusCreating StreamStatus = "CREATING"
	StatusActive   StreamStatus = "ACTIVE"
	StatusUpdating StreamStatus = "UPDATING"
	StatusDeleting StreamStatus = "DELETING"
)

// Stream is one Kinesis data stream: a set of shards that records are routed
// to by hash key. All methods are safe for concurrent use. Writes to
// different shards do not contend; writes to one shard are serialised by a
// short critical section.
//
// Locks, and the order they are taken in: Stream.mu (control operations:
// resharding, retention, the status), then Stream.cmu (registered consumers
// and their subscriptions), then Cluster.mu (the stream table and the
// shard quota, which a reshard reserves), then shardState.mu (a shard's
// records, counters and waiters; a reshard commit takes its parents' in
// shard-number order). A consumer's per-shard budget lock
// (consumerShard.mu) is a leaf, taken alone. Writers and polling readers
// take only shard locks, after loading the shard map without locking; a
// subscription's reads take its shard's lock and its budget's, and its
// start and end take cmu. No lock is held across a user callback, a
// blocking channel operation or logging; the Producer's own lock is never
// held while it calls into a stream. No shard lock is held across I/O: a
// durable cluster's file store takes a shard's lock only to swap buffers
// and publish what its writer wrote, and reads its files after the lock is
// released. A durable cluster's control operations write its catalog
// (catalog.go) under Stream.mu, and CreateStream under Cluster.mu too, so
// that no writer can find a stream or a shard that a crash would forget;
// they are rare, and take an fsync or two.
type Stream struct {
	cluster *Cluster
	id      uint64 // unique in the cluster; iterators of a deleted stream fail
	name    string
	arn     string
	created time.Time
	cfg     streamConfig

	retention   atomic.Int64             // time.Duration
	shards      atomic.Pointer[shardMap] // replaced whole when resharding
	state       atomic.Uint32            // streamLive, streamCreating, streamDeleting, streamDeleted or streamClosed
	mu          sync.Mutex               // serialises control operations
	status      StreamStatus             // guarded by mu
	nextShard   uint64                   // guarded by mu: number of the next new shard
	updateCalls []time.Time              // guarded by mu: recent UpdateShardCount calls
	tags        map[string]string        // guarded by mu
	quotaShards int                      // guarded by the cluster's mu: open shards counted against its quota
	set         settings                 // guarded by mu (settings.go)
	goneCounts  ShardStats               // guarded by mu: the counters of the shards no longer listed
	pending     *reshardPlan             // guarded by mu: a resharding accepted and not yet committed

	encryption     atomic.Pointer[[]encryptionChange] // replaced whole under mu
	maxRecordSize  atomic.Int64                       // bytes; changed under mu
	maxRequestSize atomic.Int64                       // bytes; changed under mu
	autoRoute      atomic.Bool                        // the AUTO record distribution; changed under mu
	autoSeq        atomic.Uint64                      // numbers the records an AUTO stream routes
	scratch        sync.Pool                          // *putScratch for PutRecords calls

	cmu        sync.Mutex                 // guards the registered consumers and their subscriptions
	consumers  map[string]*streamConsumer // by name; guarded by cmu
	arnSeconds map[string]int64           // by name: the seconds of ARNs issued this second or later; guarded by cmu
}

const (
	streamLive     uint32 = iota
	streamCreating        // CREATING for its status delay
	streamDeleting        // DELETING for its status delay: described, not used
	streamDeleted
	streamClosed
)

// shardMap is an immutable view of a stream's shards. Writers load it
// without locking; resharding publishes a new one with the next
// generation. A listing reads one map and shows each shard as that
// generation sees it, so it is one consistent snapshot even while a
// reshard commits: the open shards of a full listing tile the hash space.
type shardMap struct {
	gen    uint64        // increases with every reshard commit; 1 at creation
	open   []*shardState // open shards ordered by starting hash key; they tile the space
	starts []HashKey     // the open shards' starting hash keys, for routing
	all    []*shardState // every listed shard, ordered by shard number
}

func newShardMap(gen uint64, open, all []*shardState) *shardMap {
	m := &shardMap{gen: gen, open: open, all: all, starts: make([]HashKey, len(open))}
	for i, sh := range open {
		m.starts[i] = sh.hashRange.StartingHashKey
	}
	return m
}

// route returns the index of the open shard whose range holds k.
func (m *shardMap) route(k HashKey) int { return routeKey(m.starts, k) }

// routeKey returns the index of the range holding k, given the starting
// keys of ranges that tile the hash space in order: the last start ≤ k.
func routeKey(starts []HashKey, k HashKey) int {
	lo, hi := 0, len(starts)
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if starts[mid].Cmp(k) <= 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// shard returns the listed shard with the given number, or nil.
func (m *shardMap) shard(num uint64) *shardState {
	lo, hi := 0, len(m.all)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.all[mid].num < num {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(m.all) && m.all[lo].num == num {
		return m.all[lo]
	}
	return nil
}

type streamConfig struct {
	shardCount     int
	retention      time.Duration
	limits         Limits
	maxRecordSize  int
	maxRequestSize int
	iteratorTTL    time.Duration

	reshardDuration       time.Duration
	updateShardCountLimit int

	consumerLimit   int
	consumerDelay   time.Duration
	subscriptionTTL time.Duration
	statusDelay     time.Duration

	mode               StreamMode
	warmMiBps          int
	distribution       RecordDistribution
	defaultRequestSize bool // maxRequestSize follows maxRecordSize

	tags map[string]string
}

// StreamOption configures a stream at creation.
type StreamOption func(*streamConfig)

// WithShardCount sets the number of shards. Default 4 (what an ON_DEMAND
// stream starts with).
func WithShardCount(n int) StreamOption { return func(c *streamConfig) { c.shardCount = n } }

// WithRetention sets how long records stay readable. Default 24 hours. Any
// positive duration is accepted (Kinesis's 24–8,760 hour bounds apply only
// where runnel emulates the Kinesis API).
func WithRetention(d time.Duration) StreamOption { return func(c *streamConfig) { c.retention = d } }

// WithLimits sets each shard's throughput limits. Default KinesisLimits();
// pass Unlimited() for raw speed.
func WithLimits(l Limits) StreamOption { return func(c *streamConfig) { c.limits = l } }

// WithMaxRecordSize sets the largest record (data + partition key) in bytes.
// Default 1 MiB; Kinesis allows streams up to 10 MiB.
func WithMaxRecordSize(bytes int) StreamOption {
	return func(c *streamConfig) { c.maxRecordSize = bytes }
}

// WithMaxPutRecordsSize sets the largest PutRecords request (data +
// partition keys of all entries) in bytes. Default 5 MiB, or the maximum
// record size when that is larger.
func WithMaxPutRecordsSize(bytes int) StreamOption {
	return func(c *streamConfig) { c.maxRequestSize = bytes }
}

// WithIteratorTTL sets how long a shard iterator stays valid after it was
// returned. Default 5 minutes, as in Kinesis.
func WithIteratorTTL(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.iteratorTTL = d }
}

// WithConsumerLimit sets the most consumers that may be registered with
// the stream for enhanced fan-out at once. Default 20, as in Kinesis.
func WithConsumerLimit(n int) StreamOption { return func(c *streamConfig) { c.consumerLimit = n } }

// WithConsumerStatusDelay sets how long a consumer is CREATING after
// RegisterStreamConsumer and DELETING after DeregisterStreamConsumer (in
// virtual time inside a synctest bubble). Default 0: ACTIVE and gone at
// once; Kinesis takes seconds.
func WithConsumerStatusDelay(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.consumerDelay = d }
}

// WithSubscriptionDuration sets how long a SubscribeToShard subscription
// lasts before it ends and must be renewed. Default 5 minutes, as in
// Kinesis. Below 5 s, a renewal right after the end is refused until 5 s
// after the last subscription started (see SubscribeToShard).
func WithSubscriptionDuration(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.subscriptionTTL = d }
}

// WithStreamStatusDelay sets how long a stream is CREATING after
// CreateStream and DELETING after DeleteStream (in virtual time inside a
// synctest bubble). Meanwhile it is described, but other operations on it
// are an ErrResourceNotFound, and its name cannot be used again until it is
// gone. Default 0: ACTIVE and gone at once; Kinesis takes seconds.
func WithStreamStatusDelay(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.statusDelay = d }
}

func newStreamConfig(op string, opts []StreamOption) (streamConfig, error) {
	cfg := streamConfig{
		shardCount:     4,
		retention:      24 * time.Hour,
		limits:         KinesisLimits(),
		maxRecordSize:  DefaultMaxRecordSize,
		maxRequestSize: 0, // 5 MiB, or the record size if that is larger
		iteratorTTL:    5 * time.Minute,

		updateShardCountLimit: 10,

		consumerLimit:   20,
		subscriptionTTL: 5 * time.Minute,

		mode:         ModeProvisioned,
		distribution: DistributionUserPartitionKey,
	}
	for i, o := range opts {
		if o == nil {
			return cfg, errorf(op, ErrInvalidArgument, "stream option %d is nil", i)
		}
		o(&cfg)
	}
	if cfg.maxRequestSize == 0 {
		cfg.maxRequestSize, cfg.defaultRequestSize = MaxPutRecordsSize(cfg.maxRecordSize), true
	}
	if err := checkMode(op, cfg.mode); err != nil {
		return cfg, err
	}
	if err := checkWarmThroughput(op, cfg.warmMiBps, cfg.mode); err != nil {
		return cfg, err
	}
	if err := checkDistribution(op, cfg.distribution, cfg.mode); err != nil {
		return cfg, err
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.tags)) {
		if err := checkTag(op, k, cfg.tags[k]); err != nil {
			return cfg, err
		}
	}
	switch {
	case cfg.shardCount < 1:
		return cfg, errorf(op, ErrValidation, "shard count %d must be at least 1", cfg.shardCount)
	case cfg.retention <= 0:
		return cfg, errorf(op, ErrInvalidArgument, "retention %v must be positive", cfg.retention)
	case cfg.maxRecordSize < 1 || cfg.maxRecordSize > maxRecordSizeLimit:
		return cfg, errorf(op, ErrInvalidArgument, "maximum record size %d bytes must be between 1 and %d", cfg.maxRecordSize, maxRecordSizeLimit)
	case cfg.maxRequestSize < cfg.maxRecordSize:
		return cfg, errorf(op, ErrInvalidArgument, "maximum PutRecords size %d bytes is below the maximum record size %d", cfg.maxRequestSize, cfg.maxRecordSize)
	case cfg.iteratorTTL <= 0:
		return cfg, errorf(op, ErrInvalidArgument, "iterator TTL %v must be positive", cfg.iteratorTTL)
	case cfg.consumerLimit < 1:
		return cfg, errorf(op, ErrInvalidArgument, "consumer limit %d must be at least 1", cfg.consumerLimit)
	case cfg.consumerDelay < 0:
		return cfg, errorf(op, ErrInvalidArgument, "consumer status delay %v must not be negative", cfg.consumerDelay)
	case cfg.statusDelay < 0:
		return cfg, errorf(op, ErrInvalidArgument, "stream status delay %v must not be negative", cfg.statusDelay)
	case cfg.subscriptionTTL <= 0:
		return cfg, errorf(op, ErrInvalidArgument, "subscription duration %v must be positive", cfg.subscriptionTTL)
	case len(cfg.tags) > MaxTagsPerStream:
		return cfg, errorf(op, ErrLimitExceeded, "%d tags are more than the %d a stream may have", len(cfg.tags), MaxTagsPerStream)
	case cfg.limits.WriteBytesPerSecond < 0 || cfg.limits.WriteRecordsPerSecond < 0 ||
		cfg.limits.ReadBytesPerSecond < 0 || cfg.limits.ReadCallsPerSecond < 0:
		return cfg, errorf(op, ErrInvalidArgument, "limits %+v must not be negative", cfg.limits)
	}
	return cfg, nil
}

// newStream returns a new stream with its shards, their stores opened.
func newStream(c *Cluster, op string, id uint64, name string, cfg streamConfig, now time.Time) (*Stream, error) {
	s := newStreamShell(c, id, name, cfg, now)
	var open []*shardState
	for _, rng := range splitEvenly(cfg.shardCount) {
		sh := newShardState(s.nextShard, rng, 1, now.UnixMilli(), 1, cfg.limits, cfg.maxRecordSize)
		s.nextShard++
		if _, err := c.openStore(op, id, sh); err != nil {
			for _, o := range open {
				releaseStore(o)
			}
			return nil, err
		}
		open = append(open, sh)
	}
	s.shards.Store(newShardMap(1, open, slices.Clone(open)))
	return s, nil
}

// newStreamShell returns a stream without shards: newStream's, or one
// that a durable cluster restores.
func newStreamShell(c *Cluster, id uint64, name string, cfg streamConfig, created time.Time) *Stream {
	s := &Stream{
		cluster: c,
		id:      id,
		name:    name,
		arn:     "arn:aws:kinesis:" + c.cfg.region + ":" + c.cfg.account + ":stream/" + name,
		created: created,
		cfg:     cfg,
		status:  StatusActive,

		consumers:  make(map[string]*streamConsumer),
		arnSeconds: make(map[string]int64),
		tags:       cfg.tags,
		set:        settings{mode: cfg.mode, warmMiBps: cfg.warmMiBps, distribution: cfg.distribution},
	}
	s.encryption.Store(new([]encryptionChange))
	s.maxRecordSize.Store(int64(cfg.maxRecordSize))
	s.maxRequestSize.Store(int64(cfg.maxRequestSize))
	s.autoRoute.Store(cfg.distribution == DistributionAuto)
	if cfg.statusDelay > 0 {
		s.status = StatusCreating
		s.state.Store(streamCreating)
	}
	s.scratch.New = func() any { return new(putScratch) }
	s.retention.Store(int64(cfg.retention))
	return s
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.name }

// ARN returns the stream's ARN: arn:aws:kinesis:<region>:<account>:stream/<name>.
func (s *Stream) ARN() string { return s.arn }

// CreationTime returns when the stream was created (its
// StreamCreationTimestamp, which tells apart streams of one name).
func (s *Stream) CreationTime() time.Time { return s.created }

// live returns the error for operations on a deleted or closed stream, and
// on one CREATING or DELETING, which only describing operations may use.
func (s *Stream) live(op string) error {
	switch state := s.state.Load(); state {
	case streamCreating, streamDeleting:
		switch op {
		case "DescribeStreamSummary", "DescribeStream", "ListShards", "ListTagsForStream", "ListTagsForResource":
			return nil
		}
		status := StatusCreating
		if state == streamDeleting {
			status = StatusDeleting
		}
		switch op {
		case "PutRecord", "PutRecords", "GetShardIterator", "GetRecords", "SubscribeToShard":
			// The data operations know no ResourceInUse in Kinesis.
			return errorf(op, ErrResourceNotFound, "stream %s is %s, not ACTIVE", s.name, status)
		}
		return errorf(op, ErrResourceInUse, "stream %s is %s; the operation needs it ACTIVE", s.name, status)
	case streamDeleted:
		return errorf(op, ErrResourceNotFound, "stream %s was deleted", s.name)
	case streamClosed:
		return errorf(op, ErrClosed, "the cluster of stream %s is closed", s.name)
	}
	return nil
}

// ready checks that the stream is live and ctx has not ended.
func (s *Stream) ready(ctx context.Context, op string) error {
	if err := s.live(op); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return ctxError(op, err)
	}
	return nil
}

// begin starts an operation that is not a write: it checks the stream and
// ctx and applies any injected fault that matches the whole operation on
// shard (noShard when the operation names none).
func (s *Stream) begin(ctx context.Context, op string, shard uint64) error {
	if err := s.ready(ctx, op); err != nil {
		return err
	}
	return s.cluster.faults.apply(ctx, op, s.name, shard)
}

// end marks the stream deleted or closed and wakes every reader waiting at
// a shard's tip and every subscription, so that it reads again and meets
// the error.
func (s *Stream) end(state uint32) {
	s.state.Store(state)
	s.wakeAll()
}

// wakeAll wakes every reader waiting at a shard's tip and every
// subscription, so that they look at the stream's state again.
func (s *Stream) wakeAll() {
	s.signalSubscriptions()
	for _, sh := range s.shards.Load().all {
		sh.mu.Lock()
		sh.wakeLocked()
		sh.mu.Unlock()
	}
}

// cutoffMs is the arrival time before which records have expired.
func (s *Stream) cutoffMs(now time.Time) int64 {
	return now.Add(-time.Duration(s.retention.Load())).UnixMilli()
}

// PutRecordInput is a record to write with PutRecord.
type PutRecordInput struct {
	// PartitionKey routes the record (by its MD5 hash) and is returned
	// with it: 1 to 256 Unicode characters. Required.
	PartitionKey string
	// Data is the payload. It is copied; the caller may reuse the slice.
	Data []byte
	// ExplicitHashKey, if not empty, routes the record instead of the
	// partition key's hash: a decimal in 0 … 2^128−1.
	ExplicitHashKey string
	// SequenceNumberForOrdering, if not zero, makes the new record's sequence
	// number greater than this one (strict ordering for one client's records
	// of the same partition key).
	SequenceNumberForOrdering SequenceNumber
}

// PutRecordOutput is where PutRecord stored a record.
type PutRecordOutput struct {
	ShardID        string         // the shard that stored the record
	SequenceNumber SequenceNumber // the record's number in it
	EncryptionType EncryptionType // the stream's encryption when it arrived
}

// PutRecord writes one record to the shard its hash key maps to. Beyond the
// shard's write limits it fails with ErrProvisionedThroughputExceeded; an
// invalid record fails with ErrValidation or ErrInvalidArgument.
func (s *Stream) PutRecord(ctx context.Context, in PutRecordInput) (PutRecordOutput, error) {
	const op = "PutRecord"
	if err := s.ready(ctx, op); err != nil {
		return PutRecordOutput{}, err
	}
	hk, err := checkRecord(op, in.PartitionKey, in.ExplicitHashKey, len(in.Data), int(s.maxRecordSize.Load()), true)
	if err != nil {
		return PutRecordOutput{}, err
	}
	if s.autoRoute.Load() {
		hk = s.autoHashKey()
	}
	m := s.shards.Load()
	shard := int32(m.route(hk))
	if s.cluster.faults.active() {
		entry := []PutRecordsEntry{{PartitionKey: in.PartitionKey, Data: in.Data}}
		injected, err := s.writeFaults(ctx, op, m, []int32{shard}, entry)
		if err != nil {
			return PutRecordOutput{}, err
		}
		if injected != nil && injected[0] != nil {
			return PutRecordOutput{}, injected[0]
		}
	}
	now := s.now()
	cutoff := s.cutoffMs(now)
	ws := [1]write{{key: in.PartitionKey, data: in.Data, ordering: in.SequenceNumberForOrdering}}
	var res [1]PutRecordsResult
	for {
		sh := m.open[shard]
		if pw := sh.put(op, now, cutoff, ws[:], res[:]); pw != nil {
			sh.settle(ctx, op, pw, ws[:], res[:])
		}
		switch res[0].Err {
		case nil:
			return PutRecordOutput{ShardID: sh.id, SequenceNumber: res[0].SequenceNumber, EncryptionType: s.EncryptionAt(now)}, nil
		case errShardClosed:
			// Resharded after routing: route again with the new map.
			m = s.shards.Load()
			shard = int32(m.route(hk))
		default:
			s.cluster.cfg.logger.Debug("runnel: record failed", "op", op, "stream", s.name, "shard", sh.id, "error", res[0].Err)
			return PutRecordOutput{}, res[0].Err
		}
	}
}

// PutRecordsEntry is one record of a PutRecords request.
type PutRecordsEntry struct {
	// PartitionKey as in PutRecordInput. Required.
	PartitionKey string
	// Data is the payload. It is copied; the caller may reuse the slice.
	Data []byte
	// ExplicitHashKey as in PutRecordInput.
	ExplicitHashKey string
}

// PutRecordsResult is the outcome of one PutRecords entry: where it was
// stored, or why it failed.
type PutRecordsResult struct {
	ShardID        string         // the shard that stored the record, on success
	SequenceNumber SequenceNumber // the record's number in it, on success
	// Err is nil on success; otherwise it wraps
	// ErrProvisionedThroughputExceeded or ErrInternalFailure (the two
	// ErrorCodes Kinesis reports per record, see RecordErrorCode), an
	// injected fault's error, or, for PutRoutedRecords only,
	// ErrShardMapChanged or ErrNotAttempted.
	Err error
}

// PutRecordsInput is a PutRecords request.
type PutRecordsInput struct {
	// Records are the records to write: 1 to 500.
	Records []PutRecordsEntry
}

// PutRecordsOutput holds one result per entry, in the order of the request.
type PutRecordsOutput struct {
	FailedRecordCount int                // entries whose Err is set
	Records           []PutRecordsResult // one per entry, in request order
	EncryptionType    EncryptionType     // the stream's encryption when they arrived
}

// PutRecords writes 1 to 500 records. Each record succeeds or fails on its
// own (throttling fails only the records over a shard's limit); records for
// one shard are stored in request order. A request that is invalid as a
// whole (count, sizes, a bad key) fails entirely and stores nothing.
func (s *Stream) PutRecords(ctx context.Context, in PutRecordsInput) (PutRecordsOutput, error) {
	const op = "PutRecords"
	entries := in.Records
	if err := s.ready(ctx, op); err != nil {
		return PutRecordsOutput{}, err
	}
	sc := s.scratch.Get().(*putScratch)
	defer s.scratch.Put(sc)
	keys, err := s.checkEntries(op, entries, sc.keys[:0], true)
	sc.keys = keys
	if err != nil {
		return PutRecordsOutput{}, err
	}
	return s.putRouted(ctx, op, sc, entries, keys, nil)
}

// PutRoutedRecordsInput is a PutRecords request whose records the caller
// has routed itself, for PutRoutedRecords.
type PutRoutedRecordsInput struct {
	// Entries are the records, validated as PutRecords validates them.
	Entries []PutRecordsEntry
	// HashKeys[i] routes Entries[i], in place of its partition key's MD5
	// or its ExplicitHashKey (which, if set, must still be valid).
	HashKeys []HashKey
	// Ranges[i] is the hash-key range the caller believes Entries[i]'s
	// shard covers: the entry is stored only in a shard whose range holds
	// all of it. An aggregate of user records with different hash keys is
	// thus never stored in a shard that does not own them all.
	Ranges []HashKeyRange
}

// RoutedPutter is an optional interface of a Putter, which the Producer
// uses when its Putter has it: *Stream does. Beware of wrapping a *Stream
// by embedding it to change PutRecords: the wrapper then has the promoted
// PutRoutedRecords too, and the producer calls that instead; use
// WithGenericPath, or do not embed. Through it the producer sends
// the hash keys it computed (so the stream does not hash again), and the
// stream refuses what the producer routed with an out-of-date view of the
// shards, so that per-key order holds across resharding without exception.
// WithGenericPath makes a producer ignore it, to exercise exactly what
// real Kinesis sees.
type RoutedPutter interface {
	PutRoutedRecords(ctx context.Context, in PutRoutedRecordsInput) (PutRecordsOutput, error)
}

// PutRoutedRecords is PutRecords for a caller that has routed the records
// itself (see PutRoutedRecordsInput). An entry whose Range the shard it
// routes to does not hold whole fails with ErrShardMapChanged, which tells
// the caller of a reshard before anything of the resharded shard is stored.
// Within a shard, the entries after a failed one fail with ErrNotAttempted,
// so that none overtakes a record that will be retried.
func (s *Stream) PutRoutedRecords(ctx context.Context, in PutRoutedRecordsInput) (PutRecordsOutput, error) {
	const op = "PutRecords"
	if err := s.ready(ctx, op); err != nil {
		return PutRecordsOutput{}, err
	}
	if len(in.HashKeys) != len(in.Entries) || len(in.Ranges) != len(in.Entries) {
		return PutRecordsOutput{}, errorf(op, ErrInvalidArgument, "%d entries need as many HashKeys and Ranges; got %d and %d",
			len(in.Entries), len(in.HashKeys), len(in.Ranges))
	}
	if _, err := s.checkEntries(op, in.Entries, nil, false); err != nil {
		return PutRecordsOutput{}, err
	}
	for i, r := range in.Ranges {
		if r.StartingHashKey.Cmp(r.EndingHashKey) > 0 || !r.Contains(in.HashKeys[i]) {
			return PutRecordsOutput{}, errorf(op, ErrInvalidArgument, "hash key %s is not in its range %s…%s", in.HashKeys[i], r.StartingHashKey, r.EndingHashKey).atEntry(i)
		}
	}
	sc := s.scratch.Get().(*putScratch)
	defer s.scratch.Put(sc)
	return s.putRouted(ctx, op, sc, in.Entries, in.HashKeys, in.Ranges)
}

// checkEntries validates a PutRecords request: its entry count, each
// record, and its total size. With hash, it appends each entry's hash key
// to keys and returns them.
func (s *Stream) checkEntries(op string, entries []PutRecordsEntry, keys []HashKey, hash bool) ([]HashKey, error) {
	if err := checkEntryCount(op, len(entries)); err != nil {
		return keys, err
	}
	total := 0
	for i := range entries {
		e := &entries[i]
		hk, err := checkRecord(op, e.PartitionKey, e.ExplicitHashKey, len(e.Data), int(s.maxRecordSize.Load()), hash)
		if err != nil {
			return keys, err.atEntry(i)
		}
		if hash {
			if s.autoRoute.Load() {
				hk = s.autoHashKey()
			}
			keys = append(keys, hk)
		}
		total += len(e.PartitionKey) + len(e.Data)
	}
	if limit := int(s.maxRequestSize.Load()); total > limit {
		return keys, errorf(op, ErrInvalidArgument, "request is %d bytes of data and partition keys; the limit is %d", total, limit)
	}
	return keys, nil
}

// checkEntryCount checks the number of entries of a PutRecords request.
func checkEntryCount(op string, n int) *Error {
	if n == 0 || n > MaxPutRecordsEntries {
		return errorf(op, ErrValidation, "request has %d records; it must have 1 to %d", n, MaxPutRecordsEntries)
	}
	return nil
}

// writeFaults applies the injected faults of a write whose entries route to
// m.open[shardOf[i]]: a whole-operation fault fails the call, and record
// faults fail single entries (their errors are returned by entry, nil if
// none fired). Injected throttles count in the shards' Stats.
func (s *Stream) writeFaults(ctx context.Context, op string, m *shardMap, shardOf []int32, entries []PutRecordsEntry) ([]error, error) {
	shards := make([]*shardState, len(entries))
	for i, j := range shardOf {
		shards[i] = m.open[j]
	}
	if err := s.cluster.faults.apply(ctx, op, s.name, noShard); err != nil {
		if isThrottle(err) {
			for _, sh := range shards {
				sh.countThrottle(true)
			}
		}
		return nil, err
	}
	injected, err := s.cluster.faults.recordFaults(ctx, op, s.name, shards, entries)
	for i, e := range injected {
		if e != nil && isThrottle(e) {
			shards[i].countThrottle(true)
		}
	}
	return injected, err
}

// putRouted writes validated entries, routed by keys, grouping them by shard
// so that each shard is locked once and keeps request order. With spans (the
// routed path), an entry is stored only in a shard that holds its span, and
// a shard refuses the rest of its entries after one fails (ErrNotAttempted),
// so that no entry is stored ahead of an earlier one that must be retried.
func (s *Stream) putRouted(ctx context.Context, op string, sc *putScratch, entries []PutRecordsEntry, keys []HashKey, spans []HashKeyRange) (PutRecordsOutput, error) {
	m := s.shards.Load()
	shardOf := slices.Grow(sc.shardOf[:0], len(entries))[:len(entries)]
	sc.shardOf = shardOf
	for i := range entries {
		shardOf[i] = int32(m.route(keys[i]))
	}
	var injected []error
	if s.cluster.faults.active() {
		var err error
		if injected, err = s.writeFaults(ctx, op, m, shardOf, entries); err != nil {
			return PutRecordsOutput{}, err
		}
	}
	now := s.now() // after any injected latency
	cutoff := s.cutoffMs(now)
	out := PutRecordsOutput{Records: make([]PutRecordsResult, len(entries)), EncryptionType: s.EncryptionAt(now)}
	results := out.Records
	pending := sc.pending[:0]
	for i := range entries {
		pending = append(pending, i)
	}
	for {
		// Group the pending entries by shard, keeping request order within
		// each shard, then write each group under one lock.
		counts := slices.Grow(sc.counts[:0], len(m.open)+1)[:len(m.open)+1]
		clear(counts)
		for _, i := range pending {
			counts[shardOf[i]+1]++
		}
		for j := 1; j < len(counts); j++ {
			counts[j] += counts[j-1]
		}
		ws := slices.Grow(sc.writes[:0], len(pending))[:len(pending)]
		for _, i := range pending {
			j := shardOf[i]
			w := &ws[counts[j]]
			*w = write{key: entries[i].PartitionKey, data: entries[i].Data, index: i, inOrder: spans != nil}
			if spans != nil {
				w.span = &spans[i]
			}
			if injected != nil {
				w.err = injected[i]
			}
			counts[j]++
		}
		start := 0
		waits := sc.waits[:0]
		for j, sh := range m.open {
			if group := ws[start:counts[j]]; len(group) > 0 {
				if pw := sh.put(op, now, cutoff, group, results); pw != nil {
					waits = append(waits, shardWait{sh, pw, group})
				}
			}
			start = counts[j]
		}
		// Every shard has its records before any write waits: the shards'
		// writers make them durable in parallel.
		for _, w := range waits {
			w.sh.settle(ctx, op, w.pw, w.ws, results)
		}
		clear(waits)
		sc.waits = waits[:0]
		clear(ws) // drop references to the caller's data
		sc.counts, sc.writes = counts, ws
		pending = pending[:0]
		for i := range results {
			if results[i].Err == errShardClosed {
				results[i].Err = nil
				pending = append(pending, i)
			}
		}
		if len(pending) == 0 {
			break
		}
		// Resharded after routing: route the refused entries again.
		m = s.shards.Load()
		for _, i := range pending {
			shardOf[i] = int32(m.route(keys[i]))
		}
	}
	sc.pending = pending
	for _, r := range results {
		if r.Err != nil {
			out.FailedRecordCount++
		}
	}
	if out.FailedRecordCount > 0 {
		s.cluster.cfg.logger.Debug("runnel: records failed", "op", op, "stream", s.name, "records", out.FailedRecordCount)
	}
	return out, nil
}

// shardWait is one shard's writes of a PutRecords call that wait to be
// made durable.
type shardWait struct {
	sh *shardState
	pw pendingWrite
	ws []write
}

// putScratch is the working memory of one PutRecords call, pooled per stream.
type putScratch struct {
	waits   []shardWait
	keys    []HashKey
	pending []int
	counts  []int
	shardOf []int32
	writes  []write
}

// StreamSummary is what DescribeStreamSummary reports.
type StreamSummary struct {
	StreamName              string        // the stream's name
	StreamARN               string        // its ARN
	StreamStatus            StreamStatus  // ACTIVE, or UPDATING while it reshards
	RetentionPeriod         time.Duration // how long records stay readable
	StreamCreationTimestamp time.Time     // when it was created
	OpenShardCount          int           // shards accepting writes
	// Limits are the per-shard limits (a runnel extension).
	Limits Limits
	// MaxRecordSize is the largest record (data + partition key) in bytes.
	MaxRecordSize int
	// MaxPutRecordsSize is the largest PutRecords request in bytes (a
	// runnel extension).
	MaxPutRecordsSize int
	// ConsumerCount is the number of registered stream consumers (in every
	// status).
	ConsumerCount int
}

// Describe returns the stream's summary (DescribeStreamSummary).
func (s *Stream) Describe(ctx context.Context) (StreamSummary, error) {
	if err := s.begin(ctx, "DescribeStreamSummary", noShard); err != nil {
		return StreamSummary{}, err
	}
	s.mu.Lock()
	status := s.status
	s.mu.Unlock()
	s.cmu.Lock()
	consumers := len(s.consumers)
	s.cmu.Unlock()
	return StreamSummary{
		StreamName:              s.name,
		StreamARN:               s.arn,
		StreamStatus:            status,
		RetentionPeriod:         time.Duration(s.retention.Load()),
		StreamCreationTimestamp: s.created,
		OpenShardCount:          len(s.shards.Load().open),
		Limits:                  s.cfg.limits,
		MaxRecordSize:           int(s.maxRecordSize.Load()),
		MaxPutRecordsSize:       int(s.maxRequestSize.Load()),
		ConsumerCount:           consumers,
	}, nil
}

// IncreaseRetentionPeriod raises the retention period. A period below the
// current one is an ErrInvalidArgument, as in Kinesis.
func (s *Stream) IncreaseRetentionPeriod(ctx context.Context, d time.Duration) error {
	return s.changeRetention(ctx, "IncreaseStreamRetentionPeriod", d, +1)
}

// DecreaseRetentionPeriod lowers the retention period; records older than
// the new period expire at once. A period above the current one, or not
// positive, is an ErrInvalidArgument.
func (s *Stream) DecreaseRetentionPeriod(ctx context.Context, d time.Duration) error {
	return s.changeRetention(ctx, "DecreaseStreamRetentionPeriod", d, -1)
}

func (s *Stream) changeRetention(ctx context.Context, op string, d time.Duration, sign int) error {
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	if err := s.setRetention(op, d, sign); err != nil {
		return err
	}
	if sign < 0 {
		s.expire(s.now())
	}
	return nil
}

func (s *Stream) setRetention(op string, d time.Duration, sign int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := time.Duration(s.retention.Load())
	switch {
	case d <= 0:
		return errorf(op, ErrInvalidArgument, "retention period %v must be positive", d)
	case sign > 0 && d < cur:
		return errorf(op, ErrInvalidArgument, "retention period %v is below the current %v; use DecreaseRetentionPeriod", d, cur)
	case sign < 0 && d > cur:
		return errorf(op, ErrInvalidArgument, "retention period %v is above the current %v; use IncreaseRetentionPeriod", d, cur)
	}
	s.retention.Store(int64(d))
	return s.persistLocked(op)
}

// expire drops expired records from every shard, and forgets closed shards
// whose records have all expired. A gone shard is hidden at once (see
// goneLocked) but kept in the shard map while a ListShards NextToken issued
// when it was open may still be used, so that such a token's snapshot stays
// whole.
func (s *Stream) expire(now time.Time) {
	cutoff := s.cutoffMs(now)
	forget := cutoff - nextTokenTTL.Milliseconds()
	m := s.shards.Load()
	gone := false
	for _, sh := range m.all {
		sh.mu.Lock()
		sh.expireLocked(cutoff)
		gone = gone || sh.goneLocked(forget)
		sh.mu.Unlock()
	}
	if gone {
		s.dropExpiredShards(forget)
	}
}

// dropExpiredShards publishes a shard map without the closed shards whose
// data has expired.
func (s *Stream) dropExpiredShards(cutoffMs int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.shards.Load()
	m := &shardMap{gen: old.gen, open: old.open, starts: old.starts}
	var gone []*shardState
	for _, sh := range old.all {
		sh.mu.Lock()
		expired := sh.goneLocked(cutoffMs)
		counts := sh.counters
		sh.mu.Unlock()
		if expired {
			s.goneCounts.addCounters(counts) // Stats' totals never go down
			gone = append(gone, sh)
		} else {
			m.all = append(m.all, sh)
		}
	}
	s.shards.Store(m)
	if !s.cluster.durable() {
		return
	}
	if st := s.state.Load(); st == streamDeleted || st == streamClosed {
		for _, sh := range gone {
			releaseStore(sh) // a deleted stream's files go whole; a closed cluster's stay
		}
		return
	}
	// A gone shard's files go once the stream's file no longer lists it.
	persisted := s.persistLocked("DeleteExpiredShards")
	if persisted != nil {
		s.cluster.cfg.logger.Error("runnel: could not record expired shards", "stream", s.name, "err", persisted)
	}
	for _, sh := range gone {
		err := releaseStore(sh)
		if err == nil && persisted == nil {
			err = os.RemoveAll(s.cluster.shardDir(s.id, sh.num))
		}
		if err != nil {
			s.cluster.cfg.logger.Error("runnel: could not remove an expired shard's files", "stream", s.name, "shard", sh.id, "err", err)
		}
	}
}

// shardByID finds a listed shard by id, or returns ErrResourceNotFound.
func (s *Stream) shardByID(op, id string) (*shardState, error) {
	num, err := parseShardID(op, id)
	if err != nil {
		return nil, err
	}
	if sh := s.listedShard(num); sh != nil {
		return sh, nil
	}
	return nil, errorf(op, ErrResourceNotFound, "shard %s does not exist in stream %s", id, s.name)
}

// listedShard returns the shard with the given number, or nil if there is
// none or it is gone (closed, and all its records expired) though still
// kept in the shard map for the NextTokens that saw it open.
func (s *Stream) listedShard(num uint64) *shardState {
	sh := s.shards.Load().shard(num)
	if sh == nil {
		return nil
	}
	cutoff := s.cutoffMs(s.now())
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.goneLocked(cutoff) {
		return nil
	}
	return sh
}
