package runnel

import (
	"context"
	"encoding/binary"
	"time"
)

// ShardFilterType selects which shards ListShards returns.
type ShardFilterType string

// The ListShards filter types.
const (
	// FilterAfterShardID lists the shards after ShardFilter.ShardID.
	FilterAfterShardID ShardFilterType = "AFTER_SHARD_ID"
	// FilterAtTrimHorizon lists the shards that were open at the trim horizon.
	FilterAtTrimHorizon ShardFilterType = "AT_TRIM_HORIZON"
	// FilterFromTrimHorizon lists every shard with retained data: the default.
	FilterFromTrimHorizon ShardFilterType = "FROM_TRIM_HORIZON"
	// FilterAtLatest lists the open shards.
	FilterAtLatest ShardFilterType = "AT_LATEST"
	// FilterAtTimestamp lists the shards that were open at ShardFilter.Timestamp.
	FilterAtTimestamp ShardFilterType = "AT_TIMESTAMP"
	// FilterFromTimestamp lists the shards open at ShardFilter.Timestamp or
	// created after it.
	FilterFromTimestamp ShardFilterType = "FROM_TIMESTAMP"
)

// ShardFilter narrows ListShards.
type ShardFilter struct {
	// Type selects the shards; "" lists every shard.
	Type ShardFilterType
	// ShardID for FilterAfterShardID.
	ShardID string
	// Timestamp for FilterAtTimestamp and FilterFromTimestamp.
	Timestamp time.Time
}

// ListShardsInput is a ListShards request. The zero value lists the first
// 1,000 shards.
type ListShardsInput struct {
	// MaxResults is the most shards to return: 1 to 10,000; 0 means 1,000.
	MaxResults int
	// NextToken continues a listing; it cannot be combined with
	// ExclusiveStartShardID or Filter, and expires after 300 seconds.
	NextToken string
	// ExclusiveStartShardID lists the shards after this one.
	ExclusiveStartShardID string
	// Filter, if its Type is set, narrows the listing.
	Filter ShardFilter
}

// ListShardsOutput is one page of shards, in shard-id order.
type ListShardsOutput struct {
	// Shards are this page's shards.
	Shards []Shard
	// NextToken is set when more shards follow.
	NextToken string
}

const (
	defaultListShards = 1000
	maxListShards     = 10_000
	nextTokenTTL      = 300 * time.Second
)

// ListShards lists the stream's shards: open ones, and closed ones until
// their records have expired.
//
// Every listing is one consistent snapshot of the shards, also while the
// stream reshards: a page shows the shards as one shard map showed them,
// and the pages that follow a NextToken continue that same snapshot
// (shards created since are left out; shards closed since are still shown
// open). So the open shards of a full listing always tile the hash space
// 0…2^128−1 with no gap and no overlap.
func (s *Stream) ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error) {
	const op = "ListShards"
	if err := s.begin(ctx, op, noShard); err != nil {
		return ListShardsOutput{}, err
	}
	now := s.now()
	m := s.shards.Load()
	gen := m.gen
	switch {
	case in.MaxResults == 0:
		in.MaxResults = defaultListShards
	case in.MaxResults < 0 || in.MaxResults > maxListShards:
		return ListShardsOutput{}, errorf(op, ErrValidation, "MaxResults %d must be between 1 and %d", in.MaxResults, maxListShards)
	}
	var after uint64
	hasAfter := false
	if in.NextToken != "" {
		if in.ExclusiveStartShardID != "" || in.Filter.Type != "" {
			return ListShardsOutput{}, errorf(op, ErrInvalidArgument, "NextToken cannot be combined with ExclusiveStartShardId or ShardFilter")
		}
		tok, err := s.parseNextToken(op, in.NextToken, now)
		if err != nil {
			return ListShardsOutput{}, err
		}
		after, hasAfter, in.Filter, gen = tok.after, true, tok.filter, tok.gen
	}
	if in.ExclusiveStartShardID != "" {
		num, err := parseShardID(op, in.ExclusiveStartShardID)
		if err != nil {
			return ListShardsOutput{}, err
		}
		after, hasAfter = num, true
	}
	keep, err := s.shardFilter(op, in.Filter, now)
	if err != nil {
		return ListShardsOutput{}, err
	}
	if in.Filter.Type == FilterAfterShardID {
		num, _ := parseShardID(op, in.Filter.ShardID)
		if !hasAfter || num > after {
			after, hasAfter = num, true
		}
	}

	var out ListShardsOutput
	cutoff := s.cutoffMs(now)
	for _, sh := range m.all {
		if (hasAfter && sh.num <= after) || sh.openedGen > gen {
			continue
		}
		sh.mu.Lock()
		sh.expireLocked(cutoff)
		v := sh.viewLocked(gen)
		ok := keep(v) && !(v.closed && sh.goneLocked(cutoff)) // open in the snapshot: never gone from it
		var d Shard
		if ok {
			d = sh.describeLocked(v)
		}
		sh.mu.Unlock()
		if !ok {
			continue
		}
		if len(out.Shards) == in.MaxResults {
			last := out.Shards[len(out.Shards)-1].SequenceNumberRange.StartingSequenceNumber.shard
			out.NextToken = s.nextToken(listToken{after: last, gen: gen, filter: in.Filter}, now)
			break
		}
		out.Shards = append(out.Shards, d)
	}
	return out, nil
}

// shardFilter validates f and returns a predicate over shard views.
func (s *Stream) shardFilter(op string, f ShardFilter, now time.Time) (func(shardView) bool, error) {
	openAt := func(ts int64) func(shardView) bool {
		return func(v shardView) bool { return v.createdMs <= ts && (!v.closed || v.closedAtMs >= ts) }
	}
	switch f.Type {
	case "", FilterFromTrimHorizon, FilterAfterShardID:
		if f.Type == FilterAfterShardID {
			if _, err := parseShardID(op, f.ShardID); err != nil {
				return nil, err
			}
		}
		return func(shardView) bool { return true }, nil
	case FilterAtLatest:
		return func(v shardView) bool { return !v.closed }, nil
	case FilterAtTrimHorizon:
		// The trim horizon of a stream younger than its retention is its
		// creation.
		return openAt(max(s.cutoffMs(now), s.created.UnixMilli())), nil
	case FilterAtTimestamp, FilterFromTimestamp:
		if f.Timestamp.IsZero() {
			return nil, errorf(op, ErrInvalidArgument, "shard filter %s needs a Timestamp", f.Type)
		}
		ts := f.Timestamp.UnixMilli()
		if f.Type == FilterAtTimestamp {
			return openAt(ts), nil
		}
		return func(v shardView) bool { return !v.closed || v.closedAtMs >= ts }, nil
	}
	return nil, errorf(op, ErrValidation, "shard filter type %.40q is not one of AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP", f.Type)
}

// listToken is the state a ListShards NextToken carries: where the listing
// stands, the shard-map generation of its snapshot, and its filter.
type listToken struct {
	after  uint64
	gen    uint64
	filter ShardFilter
}

func (s *Stream) nextToken(t listToken, now time.Time) string {
	b := binary.AppendUvarint(nil, s.id)
	b = binary.AppendUvarint(b, t.after)
	b = binary.AppendUvarint(b, t.gen)
	b = binary.AppendVarint(b, now.UnixMilli())
	b = binary.AppendVarint(b, t.filter.Timestamp.UnixMilli())
	b = binary.AppendUvarint(b, uint64(len(t.filter.Type)))
	b = append(b, t.filter.Type...)
	b = append(b, t.filter.ShardID...)
	return sealToken(b)
}

func (s *Stream) parseNextToken(op, token string, now time.Time) (listToken, error) {
	bad := errorf(op, ErrInvalidArgument, "NextToken %s is not valid for stream %s", clip(token, 40), s.name)
	r, ok := openToken(token)
	if !ok {
		return listToken{}, bad
	}
	// id, after, gen, issued (signed), timestamp (signed), filter type length
	var vals [6]uint64
	for i := range vals {
		var n int
		if i == 3 || i == 4 {
			var v int64
			v, n = binary.Varint(r)
			vals[i] = uint64(v)
		} else {
			vals[i], n = binary.Uvarint(r)
		}
		if n <= 0 {
			return listToken{}, bad
		}
		r = r[n:]
	}
	if vals[0] != s.id || vals[5] > uint64(len(r)) {
		return listToken{}, bad
	}
	if age := now.UnixMilli() - int64(vals[3]); age > nextTokenTTL.Milliseconds() {
		return listToken{}, errorf(op, ErrExpiredNextToken, "NextToken expired: it is %v old; tokens live %v", time.Duration(age)*time.Millisecond, nextTokenTTL)
	}
	t := listToken{after: vals[1], gen: vals[2], filter: ShardFilter{Type: ShardFilterType(r[:vals[5]]), ShardID: string(r[vals[5]:])}}
	if t.filter.Type == FilterAtTimestamp || t.filter.Type == FilterFromTimestamp {
		t.filter.Timestamp = msTime(int64(vals[4]))
	}
	return t, nil
}

// StreamOfNextToken returns the stream a ListShards NextToken was issued
// for, as Kinesis's ListShards finds it when a request carries a NextToken
// and no stream name. A token that is not one of runnel's, or whose stream
// has been deleted, is an ErrInvalidArgument.
func (c *Cluster) StreamOfNextToken(token string) (*Stream, error) {
	const op = "ListShards"
	bad := errorf(op, ErrInvalidArgument, "NextToken %s is not valid", clip(token, 40))
	r, ok := openToken(token)
	if !ok {
		return nil, bad
	}
	id, n := binary.Uvarint(r)
	if n <= 0 {
		return nil, bad
	}
	for _, s := range c.snapshot() {
		if s.id == id {
			return s, nil
		}
	}
	return nil, errorf(op, ErrInvalidArgument, "NextToken %s belongs to a stream that no longer exists", clip(token, 40))
}

// shardLister is what listAllShards needs: the producer's Putter and the
// consumer's StreamReader both have it.
type shardLister interface {
	ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error)
}

// listAllShards lists every shard of src, following NextTokens.
func listAllShards(ctx context.Context, src shardLister) ([]Shard, error) {
	var all []Shard
	var in ListShardsInput
	for {
		out, err := src.ListShards(ctx, in)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Shards...)
		if out.NextToken == "" {
			return all, nil
		}
		in = ListShardsInput{NextToken: out.NextToken}
	}
}
