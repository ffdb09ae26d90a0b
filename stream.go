package runnel

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Kinesis's fixed request limits.
const (
	// MaxPutRecordsEntries is the most entries one PutRecords call takes.
	MaxPutRecordsEntries = 500
	// MaxGetRecordsLimit is the largest Limit of a GetRecords call.
	MaxGetRecordsLimit = 10_000
	// MaxGetRecordsBytes is the most data one GetRecords call returns.
	MaxGetRecordsBytes = 10 << 20
	// MaxPartitionKeyLength is the longest partition key, in Unicode characters.
	MaxPartitionKeyLength = 256
	// maxRecordSizeLimit is the largest record size a stream can be set to.
	maxRecordSizeLimit = 10 << 20
)

// StreamStatus is a stream's state as Kinesis reports it.
type StreamStatus string

// The stream states. runnel creates and deletes streams at once, so streams
// are seen ACTIVE, or UPDATING while they reshard.
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
type Stream struct {
	cluster *Cluster
	id      uint64 // unique in the cluster; iterators of a deleted stream fail
	name    string
	arn     string
	created time.Time
	cfg     streamConfig

	retention   atomic.Int64             // time.Duration
	shards      atomic.Pointer[shardMap] // replaced whole when resharding
	state       atomic.Uint32            // streamLive, streamDeleted or streamClosed
	mu          sync.Mutex               // serialises control operations
	status      StreamStatus             // guarded by mu
	nextShard   uint64                   // guarded by mu: number of the next new shard
	updateCalls []time.Time              // guarded by mu: recent UpdateShardCount calls
	quotaShards int                      // guarded by the cluster's mu: open shards counted against its quota
	scratch     sync.Pool                // *putScratch for PutRecords calls
}

const (
	streamLive uint32 = iota
	streamDeleted
	streamClosed
)

// shardMap is an immutable view of a stream's shards. Writers load it
// without locking; resharding publishes a new one.
type shardMap struct {
	open   []*shardState // open shards ordered by starting hash key; they tile the space
	starts []HashKey     // the open shards' starting hash keys, for routing
	all    []*shardState // every listed shard, ordered by shard number
}

func newShardMap(open, all []*shardState) *shardMap {
	m := &shardMap{open: open, all: all, starts: make([]HashKey, len(open))}
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

func newStreamConfig(op string, opts []StreamOption) (streamConfig, error) {
	cfg := streamConfig{
		shardCount:     4,
		retention:      24 * time.Hour,
		limits:         KinesisLimits(),
		maxRecordSize:  1 << 20,
		maxRequestSize: 0, // 5 MiB, or the record size if that is larger
		iteratorTTL:    5 * time.Minute,

		updateShardCountLimit: 10,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxRequestSize == 0 {
		cfg.maxRequestSize = max(5<<20, cfg.maxRecordSize)
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
	case cfg.limits.WriteBytesPerSecond < 0 || cfg.limits.WriteRecordsPerSecond < 0 ||
		cfg.limits.ReadBytesPerSecond < 0 || cfg.limits.ReadCallsPerSecond < 0:
		return cfg, errorf(op, ErrInvalidArgument, "limits %+v must not be negative", cfg.limits)
	}
	return cfg, nil
}

func newStream(c *Cluster, id uint64, name string, cfg streamConfig, now time.Time) *Stream {
	s := &Stream{
		cluster: c,
		id:      id,
		name:    name,
		arn:     "arn:aws:kinesis:" + c.cfg.region + ":" + c.cfg.account + ":stream/" + name,
		created: now,
		cfg:     cfg,
		status:  StatusActive,
	}
	s.scratch.New = func() any { return new(putScratch) }
	s.retention.Store(int64(cfg.retention))
	var open []*shardState
	for _, rng := range splitEvenly(cfg.shardCount) {
		open = append(open, newShardState(s.nextShard, rng, 1, now.UnixMilli(), cfg.limits, cfg.maxRecordSize))
		s.nextShard++
	}
	s.shards.Store(newShardMap(open, slices.Clone(open)))
	return s
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.name }

// ARN returns the stream's ARN: arn:aws:kinesis:<region>:<account>:stream/<name>.
func (s *Stream) ARN() string { return s.arn }

// live returns the error for operations on a deleted or closed stream.
func (s *Stream) live(op string) error {
	switch s.state.Load() {
	case streamDeleted:
		return errorf(op, ErrResourceNotFound, "stream %s was deleted", s.name)
	case streamClosed:
		return errorf(op, ErrClosed, "the cluster of stream %s is closed", s.name)
	}
	return nil
}

// begin starts an operation: it checks the stream and ctx and applies any
// injected fault that matches the whole operation.
func (s *Stream) begin(ctx context.Context, op, shardID string) error {
	if err := s.live(op); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.cluster.faults.apply(ctx, op, s.name, shardID)
}

// end marks the stream deleted or closed and wakes every reader waiting at
// a shard's tip, so that it reads again and meets the error.
func (s *Stream) end(state uint32) {
	s.state.Store(state)
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
}

// PutRecord writes one record to the shard its hash key maps to. Beyond the
// shard's write limits it fails with ErrProvisionedThroughputExceeded; an
// invalid record fails with ErrValidation or ErrInvalidArgument.
func (s *Stream) PutRecord(ctx context.Context, in PutRecordInput) (PutRecordOutput, error) {
	const op = "PutRecord"
	if err := s.begin(ctx, op, ""); err != nil {
		return PutRecordOutput{}, err
	}
	hk, err := s.validateRecord(op, -1, in.PartitionKey, in.ExplicitHashKey, len(in.Data))
	if err != nil {
		return PutRecordOutput{}, err
	}
	m := s.shards.Load()
	if err := s.cluster.faults.applyRecord(ctx, op, s.name, m.open[m.route(hk)].id, in.PartitionKey, in.Data); err != nil {
		return PutRecordOutput{}, err
	}
	now := time.Now()
	cutoff := s.cutoffMs(now)
	ws := [1]write{{key: in.PartitionKey, data: in.Data, ordering: in.SequenceNumberForOrdering}}
	var res [1]PutRecordsResult
	for {
		sh := m.open[m.route(hk)]
		sh.put(op, now, cutoff, ws[:], res[:])
		switch res[0].Err {
		case nil:
			return PutRecordOutput{ShardID: sh.id, SequenceNumber: res[0].SequenceNumber}, nil
		case errShardClosed:
			m = s.shards.Load() // resharded meanwhile: route with the new map
		default:
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
	// ErrorCodes Kinesis reports per record), or an injected fault's error.
	Err error
}

// PutRecordsOutput holds one result per entry, in the order of the request.
type PutRecordsOutput struct {
	FailedRecordCount int                // entries whose Err is set
	Records           []PutRecordsResult // one per entry, in request order
}

// PutRecords writes 1 to 500 records. Each record succeeds or fails on its
// own (throttling fails only the records over a shard's limit); records for
// one shard are stored in request order. A request that is invalid as a
// whole (count, sizes, a bad key) fails entirely and stores nothing.
func (s *Stream) PutRecords(ctx context.Context, entries []PutRecordsEntry) (PutRecordsOutput, error) {
	const op = "PutRecords"
	if err := s.begin(ctx, op, ""); err != nil {
		return PutRecordsOutput{}, err
	}
	if err := checkEntryCount(op, len(entries)); err != nil {
		return PutRecordsOutput{}, err
	}
	keys := make([]HashKey, len(entries))
	total := 0
	for i := range entries {
		e := &entries[i]
		hk, err := s.validateRecord(op, i, e.PartitionKey, e.ExplicitHashKey, len(e.Data))
		if err != nil {
			return PutRecordsOutput{}, err
		}
		keys[i] = hk
		total += len(e.PartitionKey) + len(e.Data)
	}
	if total > s.cfg.maxRequestSize {
		return PutRecordsOutput{}, errorf(op, ErrInvalidArgument, "request is %d bytes of data and partition keys; the limit is %d", total, s.cfg.maxRequestSize)
	}

	return s.putRouted(ctx, op, entries, keys, nil, false)
}

// checkEntryCount checks the number of entries of a PutRecords request.
func checkEntryCount(op string, n int) *Error {
	if n == 0 || n > MaxPutRecordsEntries {
		return errorf(op, ErrValidation, "request has %d records; it must have 1 to %d", n, MaxPutRecordsEntries)
	}
	return nil
}

// checkRequestSize checks the size of a PutRecords request.
func (s *Stream) checkRequestSize(op string, total int) *Error {
	if total > s.cfg.maxRequestSize {
		return errorf(op, ErrInvalidArgument, "request is %d bytes of data and partition keys; the limit is %d", total, s.cfg.maxRequestSize)
	}
	return nil
}

// putRecordsHashed is PutRecords for a caller that has validated the
// entries and computed their hash keys (the Producer): keys[i] routes
// entries[i], and spans[i] is the range of the shard the caller believes
// entry i belongs to. An entry is stored only in a shard whose range holds
// all of its span, otherwise it fails with errStaleShardMap: so an aggregate
// never lands in a shard that does not own all its records, and the caller
// learns of a split before anything of the split shard is stored. Within a
// shard, the entries after a failed one are refused (errNotAttempted), so
// none overtakes a record that will be retried.
func (s *Stream) putRecordsHashed(ctx context.Context, entries []PutRecordsEntry, keys []HashKey, spans []HashKeyRange) (PutRecordsOutput, error) {
	const op = "PutRecords"
	if err := s.begin(ctx, op, ""); err != nil {
		return PutRecordsOutput{}, err
	}
	if err := checkEntryCount(op, len(entries)); err != nil {
		return PutRecordsOutput{}, err
	}
	total := 0
	for i := range entries {
		n := len(entries[i].PartitionKey) + len(entries[i].Data)
		if err := checkRecordSize(op, n, s.cfg.maxRecordSize); err != nil {
			err.Msg += " (record " + strconv.Itoa(i) + ")"
			return PutRecordsOutput{}, err
		}
		total += n
	}
	if err := s.checkRequestSize(op, total); err != nil {
		return PutRecordsOutput{}, err
	}
	return s.putRouted(ctx, op, entries, keys, spans, true)
}

// putRouted writes validated entries, routed by keys, grouping them by shard
// so that each shard is locked once and keeps request order. With inOrder, a
// shard refuses the rest of its entries after one fails (errNotAttempted),
// so that no entry is stored ahead of an earlier one that must be retried.
func (s *Stream) putRouted(ctx context.Context, op string, entries []PutRecordsEntry, keys []HashKey, spans []HashKeyRange, inOrder bool) (PutRecordsOutput, error) {
	injected, err := s.cluster.faults.recordFaults(ctx, op, s.name, s.shards.Load(), entries, keys)
	if err != nil {
		return PutRecordsOutput{}, err
	}
	now := time.Now() // after any injected latency
	cutoff := s.cutoffMs(now)
	out := PutRecordsOutput{Records: make([]PutRecordsResult, len(entries))}
	results := out.Records
	sc := s.scratch.Get().(*putScratch)
	defer s.scratch.Put(sc)
	pending := sc.pending[:0]
	for i := range entries {
		pending = append(pending, i)
	}
	for len(pending) > 0 {
		m := s.shards.Load()
		// Group the pending entries by shard, keeping request order within
		// each shard, then write each group under one lock.
		counts := slices.Grow(sc.counts[:0], len(m.open)+1)[:len(m.open)+1]
		clear(counts)
		shardOf := slices.Grow(sc.shardOf[:0], len(entries))[:len(entries)]
		for _, i := range pending {
			shardOf[i] = int32(m.route(keys[i]))
			counts[shardOf[i]+1]++
		}
		for j := 1; j < len(counts); j++ {
			counts[j] += counts[j-1]
		}
		ws := slices.Grow(sc.writes[:0], len(pending))[:len(pending)]
		for _, i := range pending {
			j := shardOf[i]
			ws[counts[j]] = write{key: entries[i].PartitionKey, data: entries[i].Data, index: i, inOrder: inOrder}
			if spans != nil {
				ws[counts[j]].span = &spans[i]
			}
			if injected != nil {
				ws[counts[j]].err = injected[i]
			}
			counts[j]++
		}
		start := 0
		for j, sh := range m.open {
			group := ws[start:counts[j]]
			start = counts[j]
			if len(group) > 0 {
				sh.put(op, now, cutoff, group, results)
			}
		}
		clear(ws) // drop references to the caller's data
		sc.counts, sc.shardOf, sc.writes = counts, shardOf, ws
		pending = pending[:0]
		for i := range results {
			if results[i].Err == errShardClosed {
				results[i].Err = nil
				pending = append(pending, i)
			}
		}
	}
	sc.pending = pending
	for _, r := range results {
		if r.Err != nil {
			out.FailedRecordCount++
		}
	}
	return out, nil
}

// putScratch is the working memory of one PutRecords call, pooled per stream.
type putScratch struct {
	pending []int
	counts  []int
	shardOf []int32
	writes  []write
}

// validateRecord checks one record's partition key, explicit hash key and
// size, and returns the hash key that routes it. index is the entry's
// position in a PutRecords request, or -1.
func (s *Stream) validateRecord(op string, index int, key, explicit string, dataLen int) (HashKey, error) {
	hk, err := s.checkRecord(op, key, explicit, dataLen)
	if err != nil && index >= 0 {
		err.Msg += " (record " + strconv.Itoa(index) + ")"
	}
	if err != nil {
		return HashKey{}, err
	}
	return hk, nil
}

func (s *Stream) checkRecord(op string, key, explicit string, dataLen int) (HashKey, *Error) {
	if err := validatePartitionKey(op, key); err != nil {
		return HashKey{}, err
	}
	if dataLen > s.cfg.maxRecordSize {
		return HashKey{}, errorf(op, ErrValidation, "data is %d bytes; the limit is %d", dataLen, s.cfg.maxRecordSize)
	}
	if err := checkRecordSize(op, len(key)+dataLen, s.cfg.maxRecordSize); err != nil {
		return HashKey{}, err
	}
	return routingKey(op, key, explicit)
}

// checkRecordSize checks a record's size (data + partition key).
func checkRecordSize(op string, n, limit int) *Error {
	if n > limit {
		return errorf(op, ErrInvalidArgument, "record is %d bytes of data and partition key; the limit is %d", n, limit)
	}
	return nil
}

// validatePartitionKey checks Kinesis's partition-key constraint: 1 to 256
// Unicode characters (runnel also requires valid UTF-8, which any key sent
// through the Kinesis API is).
func validatePartitionKey(op, key string) *Error {
	switch {
	case key == "":
		return errorf(op, ErrValidation, "partition key is empty; it must have 1 to %d characters", MaxPartitionKeyLength)
	case len(key) > MaxPartitionKeyLength && utf8.RuneCountInString(key) > MaxPartitionKeyLength:
		return errorf(op, ErrValidation, "partition key %.20q… is %d characters; the limit is %d", key, utf8.RuneCountInString(key), MaxPartitionKeyLength)
	case !utf8.ValidString(key):
		return errorf(op, ErrValidation, "partition key %q is not valid UTF-8", key)
	}
	return nil
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
}

// Describe returns the stream's summary (DescribeStreamSummary).
func (s *Stream) Describe(ctx context.Context) (StreamSummary, error) {
	if err := s.begin(ctx, "DescribeStreamSummary", ""); err != nil {
		return StreamSummary{}, err
	}
	s.mu.Lock()
	status := s.status
	s.mu.Unlock()
	return StreamSummary{
		StreamName:              s.name,
		StreamARN:               s.arn,
		StreamStatus:            status,
		RetentionPeriod:         time.Duration(s.retention.Load()),
		StreamCreationTimestamp: s.created,
		OpenShardCount:          len(s.shards.Load().open),
		Limits:                  s.cfg.limits,
		MaxRecordSize:           s.cfg.maxRecordSize,
		MaxPutRecordsSize:       s.cfg.maxRequestSize,
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
	if err := s.begin(ctx, op, ""); err != nil {
		return err
	}
	if err := s.setRetention(op, d, sign); err != nil {
		return err
	}
	if sign < 0 {
		s.expire(time.Now())
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
	return nil
}

// expire drops expired records from every shard, and forgets closed shards
// whose records have all expired.
func (s *Stream) expire(now time.Time) {
	cutoff := s.cutoffMs(now)
	m := s.shards.Load()
	gone := false
	for _, sh := range m.all {
		sh.mu.Lock()
		sh.expireLocked(cutoff)
		gone = gone || sh.goneLocked(cutoff)
		sh.mu.Unlock()
	}
	if gone {
		s.dropExpiredShards(cutoff)
	}
}

// dropExpiredShards publishes a shard map without the closed shards whose
// data has expired.
func (s *Stream) dropExpiredShards(cutoffMs int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.shards.Load()
	m := &shardMap{open: old.open, starts: old.starts}
	for _, sh := range old.all {
		sh.mu.Lock()
		gone := sh.goneLocked(cutoffMs)
		sh.mu.Unlock()
		if !gone {
			m.all = append(m.all, sh)
		}
	}
	s.shards.Store(m)
}

// shardByID finds a listed shard by id, or returns ErrResourceNotFound.
func (s *Stream) shardByID(op, id string) (*shardState, error) {
	num, err := parseShardID(op, id)
	if err != nil {
		return nil, err
	}
	if sh := s.shards.Load().shard(num); sh != nil {
		return sh, nil
	}
	return nil, errorf(op, ErrResourceNotFound, "shard %s does not exist in stream %s", id, s.name)
}
