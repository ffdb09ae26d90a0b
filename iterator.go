package runnel

import (
	"context"
	"encoding/binary"
	"errors"
	"iter"
	"time"
)

// IteratorType says where a shard iterator starts.
type IteratorType string

// The five Kinesis shard iterator types.
const (
	// TrimHorizon starts at the oldest record still retained.
	TrimHorizon IteratorType = "TRIM_HORIZON"
	// Latest starts after the newest record: only later writes are read.
	Latest IteratorType = "LATEST"
	// AtSequenceNumber starts at the record with the given number.
	AtSequenceNumber IteratorType = "AT_SEQUENCE_NUMBER"
	// AfterSequenceNumber starts after the record with the given number.
	AfterSequenceNumber IteratorType = "AFTER_SEQUENCE_NUMBER"
	// AtTimestamp starts at the first record that arrived at or after the
	// given time.
	AtTimestamp IteratorType = "AT_TIMESTAMP"
)

// StartingPosition says where to start reading a shard.
type StartingPosition struct {
	// Type is where to start. Required.
	Type IteratorType
	// SequenceNumber for AtSequenceNumber and AfterSequenceNumber.
	SequenceNumber SequenceNumber
	// Timestamp for AtTimestamp.
	Timestamp time.Time
}

// ShardIterator is a position in a shard, as GetShardIterator and GetRecords
// return it. It is a value: copy it freely. Its String form is the opaque,
// self-describing token that the Kinesis API hands out; ParseShardIterator
// reads it back. An iterator expires a stream-configured time (5 minutes by
// default) after it was returned. The zero value is "no iterator", which
// GetRecords returns at the end of a closed shard.
//
// An iterator may also carry a token that another StreamReader issued (an
// adapter over Amazon Kinesis, say): see OpaqueShardIterator.
type ShardIterator struct {
	token    string // set only for an opaque iterator: the token itself
	stream   string
	streamID uint64
	shard    uint64
	pos      uint64 // next counter to read
	atMs     int64  // when seek: read from the first record arriving at or after atMs
	seek     bool
	issuedMs int64
}

// OpaqueShardIterator returns an iterator that carries token unchanged: a
// shard iterator issued by another implementation of StreamReader (an
// adapter over Amazon Kinesis returns Kinesis's iterators this way), or a
// runnel token received as text. String returns the token; StreamName and
// ShardID return "". A runnel Stream's GetRecords accepts it when the token
// is one of runnel's (ParseShardIterator). An empty token gives the zero
// value.
func OpaqueShardIterator(token string) ShardIterator { return ShardIterator{token: token} }

// IsZero reports whether it is the zero value (no iterator).
func (it ShardIterator) IsZero() bool { return it == ShardIterator{} }

// StreamName returns the name of the stream the iterator reads ("" for an
// opaque iterator).
func (it ShardIterator) StreamName() string { return it.stream }

// ShardID returns the id of the shard the iterator reads ("" for the zero
// value and for an opaque iterator).
func (it ShardIterator) ShardID() string {
	if it.IsZero() || it.token != "" {
		return ""
	}
	return shardID(it.shard)
}

const iteratorVersion = 1

// String returns the iterator as an opaque token (URL-safe base64), or ""
// for the zero value. An opaque iterator returns its token.
func (it ShardIterator) String() string {
	if it.IsZero() || it.token != "" {
		return it.token
	}
	b := make([]byte, 0, 48+len(it.stream))
	b = append(b, iteratorVersion)
	b = binary.AppendUvarint(b, it.streamID)
	b = binary.AppendUvarint(b, it.shard)
	b = binary.AppendUvarint(b, it.pos)
	if it.seek {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendVarint(b, it.atMs)
	b = binary.AppendVarint(b, it.issuedMs)
	b = append(b, it.stream...)
	return sealToken(b)
}

// ParseShardIterator reads a token made by String. A token that was not
// made by runnel, or was damaged, is an ErrInvalidArgument. Parsing does not
// check expiry: GetRecords does.
func ParseShardIterator(token string) (ShardIterator, error) {
	const op = "ParseShardIterator"
	bad := func(why string) (ShardIterator, error) {
		return ShardIterator{}, errorf(op, ErrInvalidArgument, "shard iterator %s is not valid: %s", clip(token, 40), why)
	}
	body, ok := openToken(token)
	if !ok {
		return bad("not a runnel token, or damaged")
	}
	if body[0] != iteratorVersion {
		return bad("unknown version")
	}
	r := body[1:]
	var it ShardIterator
	uv := func(dst *uint64) bool {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			return false
		}
		*dst, r = v, r[n:]
		return true
	}
	sv := func(dst *int64) bool {
		v, n := binary.Varint(r)
		if n <= 0 {
			return false
		}
		*dst, r = v, r[n:]
		return true
	}
	if !uv(&it.streamID) || !uv(&it.shard) || !uv(&it.pos) || len(r) < 1 {
		return bad("truncated")
	}
	if r[0] > 1 {
		return bad("bad mode")
	}
	it.seek, r = r[0] == 1, r[1:]
	if !sv(&it.atMs) || !sv(&it.issuedMs) {
		return bad("truncated")
	}
	if err := validateStreamName(op, string(r)); err != nil {
		return bad("bad stream name")
	}
	it.stream = string(r)
	return it, nil
}

// checkIteratorType is the one validator of an iterator type; kind is the
// sentinel a violation wraps.
func checkIteratorType(op string, kind error, t IteratorType) error {
	switch t {
	case TrimHorizon, Latest, AtSequenceNumber, AfterSequenceNumber, AtTimestamp:
		return nil
	}
	return errorf(op, kind, "iterator type %.40q is not one of TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP", t)
}

// GetShardIteratorInput is a GetShardIterator request.
type GetShardIteratorInput struct {
	// ShardID is the shard to read. Required.
	ShardID string
	// StartingPosition is where to start. Required.
	StartingPosition StartingPosition
}

// GetShardIterator returns an iterator at the given position of a shard
// (open or closed). AtSequenceNumber and AfterSequenceNumber need a sequence
// number issued by that shard; AtTimestamp needs a timestamp.
func (s *Stream) GetShardIterator(ctx context.Context, in GetShardIteratorInput) (ShardIterator, error) {
	const op = "GetShardIterator"
	shardID, from := in.ShardID, in.StartingPosition
	if err := s.ready(ctx, op); err != nil {
		return ShardIterator{}, err
	}
	sh, err := s.shardByID(op, shardID)
	if err != nil {
		return ShardIterator{}, err
	}
	if err := s.begin(ctx, op, sh.num); err != nil {
		return ShardIterator{}, err
	}
	it := ShardIterator{stream: s.name, streamID: s.id, shard: sh.num, issuedMs: s.now().UnixMilli()}
	if it.pos, it.seek, it.atMs, err = s.startAt(op, sh, from); err != nil {
		return ShardIterator{}, err
	}
	return it, nil
}

// startAt resolves a starting position in shard sh, as GetShardIterator
// and SubscribeToShard take it: the counter to read from, or, for
// AtTimestamp, seek set with the time to seek to. AtSequenceNumber and
// AfterSequenceNumber need a number that the shard has issued.
func (s *Stream) startAt(op string, sh *shardState, from StartingPosition) (pos uint64, seek bool, atMs int64, err error) {
	switch from.Type {
	case TrimHorizon:
		return sh.startCounter, false, 0, nil
	case Latest:
		return sh.latest(), false, 0, nil
	case AtSequenceNumber, AfterSequenceNumber:
		n := from.SequenceNumber
		if n.IsZero() {
			return 0, false, 0, errorf(op, ErrInvalidArgument, "iterator type %s needs a StartingSequenceNumber", from.Type)
		}
		if !n.native() || n.shard != sh.num || n.counter < sh.startCounter || n.counter >= sh.latest() {
			return 0, false, 0, errorf(op, ErrInvalidArgument, "sequence number %s does not belong to shard %s of stream %s", n, sh.id, s.name)
		}
		if from.Type == AfterSequenceNumber {
			return n.counter + 1, false, 0, nil
		}
		return n.counter, false, 0, nil
	case AtTimestamp:
		if from.Timestamp.IsZero() {
			return 0, false, 0, errorf(op, ErrInvalidArgument, "iterator type %s needs a Timestamp", from.Type)
		}
		return 0, true, from.Timestamp.UnixMilli(), nil
	}
	return 0, false, 0, checkIteratorType(op, ErrValidation, from.Type)
}

// GetRecordsInput is a GetRecords request.
type GetRecordsInput struct {
	// ShardIterator is where to read. Required.
	ShardIterator ShardIterator
	// Limit is the most records to return: 1 to 10,000; 0 means 10,000.
	Limit int
	// Buffer, if not nil, is reused for the returned records (they are
	// appended to Buffer[:0]), so that a reading loop allocates nothing.
	Buffer []Record
}

// ChildShard is a shard created from the shard a GetRecords call finished.
type ChildShard struct {
	ShardID      string       // the child
	ParentShards []string     // its parents: the shard read, and a merge's other parent
	HashKeyRange HashKeyRange // the child's hash keys
}

// GetRecordsOutput is a GetRecords result.
type GetRecordsOutput struct {
	// Records are the records read, in order; possibly none. They alias the
	// stream's memory: see Record.
	Records []Record
	// NextShardIterator continues after Records. It is the zero value when
	// the shard is closed and every record has been read.
	NextShardIterator ShardIterator
	// MillisBehindLatest is how far the iterator is behind the newest record
	// of the shard; 0 when caught up.
	MillisBehindLatest int64
	// ChildShards are set once a closed shard has been read to its end.
	ChildShards []ChildShard
}

// GetRecords reads records at an iterator: at most Limit records and about
// 10 MiB (at least one record). Records that have expired are skipped, so an
// iterator behind the trim horizon continues at the oldest retained record.
// A call over the shard's read limits fails with
// ErrProvisionedThroughputExceeded and returns nothing; an iterator older
// than its TTL fails with ErrExpiredIterator.
func (s *Stream) GetRecords(ctx context.Context, in GetRecordsInput) (GetRecordsOutput, error) {
	const op = "GetRecords"
	it := in.ShardIterator
	if err := s.ready(ctx, op); err != nil {
		return GetRecordsOutput{}, err
	}
	if it.IsZero() {
		return GetRecordsOutput{}, errorf(op, ErrInvalidArgument, "shard iterator is empty")
	}
	if it.token != "" {
		parsed, err := ParseShardIterator(it.token)
		if err != nil {
			return GetRecordsOutput{}, asError(op, "", err)
		}
		it = parsed
	}
	limit := in.Limit
	switch {
	case limit == 0:
		limit = MaxGetRecordsLimit
	case limit < 0:
		return GetRecordsOutput{}, errorf(op, ErrValidation, "limit %d must be at least 1", limit)
	case limit > MaxGetRecordsLimit:
		return GetRecordsOutput{}, errorf(op, ErrInvalidArgument, "limit %d is above the maximum %d", limit, MaxGetRecordsLimit)
	}
	switch {
	case it.stream != s.name:
		return GetRecordsOutput{}, errorf(op, ErrInvalidArgument, "shard iterator belongs to stream %.140q, not to %s", it.stream, s.name)
	case it.streamID != s.id:
		return GetRecordsOutput{}, errorf(op, ErrInvalidArgument, "shard iterator belongs to an earlier stream named %s, which was deleted", s.name)
	}
	if err := s.begin(ctx, op, it.shard); err != nil {
		if isThrottle(err) {
			if sh := s.shards.Load().shard(it.shard); sh != nil {
				sh.countThrottle(false)
			}
		}
		return GetRecordsOutput{}, err
	}
	now := s.now()
	if age := now.UnixMilli() - it.issuedMs; age > s.cfg.iteratorTTL.Milliseconds() {
		return GetRecordsOutput{}, errorf(op, ErrExpiredIterator, "shard iterator for %s expired %v ago (it lives %v)",
			shardID(it.shard), time.Duration(age)*time.Millisecond-s.cfg.iteratorTTL, s.cfg.iteratorTTL)
	}
	sh := s.shards.Load().shard(it.shard)
	if sh == nil {
		return GetRecordsOutput{}, errorf(op, ErrResourceNotFound, "shard %s of stream %s has expired", shardID(it.shard), s.name)
	}
	pos := it.pos
	if it.seek {
		var err error
		if pos, err = sh.positionAt(it.atMs); err != nil {
			return GetRecordsOutput{}, asError(op, "", err)
		}
	}
	res := sh.read(now, s.cutoffMs(now), pos, limit, MaxGetRecordsBytes, in.Buffer[:0])
	if res.err != nil && len(res.records) == 0 {
		return GetRecordsOutput{}, asError(op, "", res.err)
	}
	if res.gone {
		return GetRecordsOutput{}, errorf(op, ErrResourceNotFound, "shard %s of stream %s has expired", sh.id, s.name)
	}
	if res.throttled {
		s.cluster.cfg.logger.Debug("runnel: read throttled", "op", op, "stream", s.name, "shard", sh.id)
		return GetRecordsOutput{}, errorf(op, ErrProvisionedThroughputExceeded, "rate exceeded for shard %s: over its read limit of %d calls/s or %d bytes/s",
			sh.id, s.cfg.limits.ReadCallsPerSecond, s.cfg.limits.ReadBytesPerSecond)
	}
	out := GetRecordsOutput{Records: res.records, MillisBehindLatest: res.behindMs}
	switch {
	case res.end:
		out.ChildShards = childShards(res.children)
	case it.seek && len(res.records) == 0:
		// Nothing has arrived at or after the timestamp yet: keep seeking,
		// so later records that arrived before it are not returned.
		it.issuedMs = now.UnixMilli()
		out.NextShardIterator = it
	default:
		out.NextShardIterator = ShardIterator{stream: s.name, streamID: s.id, shard: sh.num, pos: res.next, issuedMs: now.UnixMilli()}
	}
	return out, nil
}

func childShards(children []*shardState) []ChildShard {
	out := make([]ChildShard, 0, len(children))
	for _, c := range children {
		parents := []string{c.parentID}
		if c.adjacentParentID != "" {
			parents = append(parents, c.adjacentParentID)
		}
		out = append(out, ChildShard{ShardID: c.id, ParentShards: parents, HashKeyRange: c.hashRange})
	}
	return out
}

// Records returns an iterator over the records of one shard, from a starting
// position up to the newest record at the time the iteration reaches it (or
// the end of a closed shard). It reads with GetRecords, so it honours the
// shard's read limits: when throttled it waits (200 ms, in virtual time
// inside a synctest bubble) and tries again. Iteration stops at the first
// other error, which it yields with a zero Record. Records alias the
// stream's memory: see Record.
func (s *Stream) Records(ctx context.Context, shardID string, from StartingPosition) iter.Seq2[Record, error] {
	return s.readShard(ctx, shardID, from, false)
}

// Follow is Records that does not stop at the newest record: there it waits
// until the shard receives a record or closes, and goes on. Writers wake it
// at once; it does not poll. It ends after the last record of a closed
// shard, or yields ctx's error when ctx ends.
func (s *Stream) Follow(ctx context.Context, shardID string, from StartingPosition) iter.Seq2[Record, error] {
	return s.readShard(ctx, shardID, from, true)
}

func (s *Stream) readShard(ctx context.Context, shardID string, from StartingPosition, follow bool) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		it, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: shardID, StartingPosition: from})
		if err != nil {
			yield(Record{}, err)
			return
		}
		var buf []Record
		var wake shardWaker
		if follow {
			wake = newShardWaker()
			defer wake.stop()
		}
		for !it.IsZero() {
			if follow {
				wake.arm(s, it.shard)
			}
			// The iterator is this loop's own: renew it, so that a slow
			// consumer or a long wait does not let it expire.
			it.issuedMs = s.now().UnixMilli()
			out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Buffer: buf})
			if err != nil {
				if isThrottle(err) {
					if err := sleepCtx(ctx, 200*time.Millisecond); err == nil {
						continue
					}
					err = ctxError("GetRecords", ctx.Err())
				}
				yield(Record{}, err)
				return
			}
			for _, r := range out.Records {
				if !yield(r, nil) {
					return
				}
			}
			it, buf = out.NextShardIterator, out.Records
			if it.IsZero() || out.MillisBehindLatest > 0 {
				continue
			}
			if !follow {
				return // caught up
			}
			select {
			case <-wake.ch:
			case <-ctx.Done():
				yield(Record{}, ctxError("GetRecords", ctx.Err()))
				return
			}
		}
	}
}

func isThrottle(err error) bool { return errors.Is(err, ErrProvisionedThroughputExceeded) }

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
