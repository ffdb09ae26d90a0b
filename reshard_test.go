package runnel

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/big"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of SplitShard, MergeShards and UpdateShardCount: validation, the
// shapes they produce, reading across lineage, and the property that a
// reader following lineage sees every record once, in write order per key.

// reshardCluster returns a cluster that is closed when the test ends. Inside
// a synctest bubble, call it from the bubble's goroutine.
func reshardCluster(t testing.TB, opts ...ClusterOption) *Cluster {
	t.Helper()
	c := NewCluster(opts...)
	t.Cleanup(func() { c.Close() })
	return c
}

// reshardStream creates the stream "reshard" in a new cluster.
func reshardStream(t testing.TB, opts ...StreamOption) (*Cluster, *Stream) {
	t.Helper()
	c := reshardCluster(t)
	s, err := c.CreateStream(context.Background(), "reshard", opts...)
	require.NoError(t, err)
	return c, s
}

// reshardList lists every shard that passes f, following NextToken.
func reshardList(t testing.TB, s *Stream, f ShardFilter) []Shard {
	t.Helper()
	var all []Shard
	out, err := s.ListShards(context.Background(), ListShardsInput{Filter: f})
	require.NoError(t, err)
	all = append(all, out.Shards...)
	for out.NextToken != "" {
		out, err = s.ListShards(context.Background(), ListShardsInput{NextToken: out.NextToken})
		require.NoError(t, err)
		all = append(all, out.Shards...)
	}
	return all
}

// reshardOpen returns the open shards ordered by starting hash key.
func reshardOpen(t testing.TB, s *Stream) []Shard {
	t.Helper()
	open := reshardList(t, s, ShardFilter{Type: FilterAtLatest})
	slices.SortFunc(open, func(a, b Shard) int {
		return a.HashKeyRange.StartingHashKey.Cmp(b.HashKeyRange.StartingHashKey)
	})
	return open
}

func reshardIDs(shards []Shard) []string {
	ids := make([]string, len(shards))
	for i, sh := range shards {
		ids[i] = sh.ShardID
	}
	return ids
}

// reshardID returns the id of shard number n.
func reshardID(n int) string { return fmt.Sprintf("shardId-%012d", n) }

func reshardFind(t testing.TB, shards []Shard, id string) Shard {
	t.Helper()
	for _, sh := range shards {
		if sh.ShardID == id {
			return sh
		}
	}
	require.Failf(t, "shard not listed", "%s is not among %v", id, reshardIDs(shards))
	return Shard{}
}

var reshardSpace = new(big.Int).Lsh(big.NewInt(1), 128) // 2^128

// reshardBig converts a hash key to a big.Int through its decimal form, so
// that the checks do not trust HashKey's own arithmetic.
func reshardBig(k HashKey) *big.Int {
	b, ok := new(big.Int).SetString(k.String(), 10)
	if !ok {
		panic("bad hash key " + k.String())
	}
	return b
}

func reshardKey(t testing.TB, b *big.Int) HashKey {
	t.Helper()
	k, err := ParseHashKey(b.String())
	require.NoError(t, err)
	return k
}

// reshardMid returns the middle of a shard's range.
func reshardMid(t testing.TB, sh Shard) HashKey {
	t.Helper()
	lo, hi := reshardBig(sh.HashKeyRange.StartingHashKey), reshardBig(sh.HashKeyRange.EndingHashKey)
	return reshardKey(t, new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1))
}

// reshardAdd returns k+d as a big.Int.
func reshardAdd(k HashKey, d int64) *big.Int {
	return new(big.Int).Add(reshardBig(k), big.NewInt(d))
}

// reshardCheckTiling checks that open shards (ordered by starting key)
// cover 0 … 2^128−1 with no gap and no overlap.
func reshardCheckTiling(t testing.TB, open []Shard) {
	t.Helper()
	require.NotEmpty(t, open)
	want := new(big.Int)
	for _, sh := range open {
		start, end := reshardBig(sh.HashKeyRange.StartingHashKey), reshardBig(sh.HashKeyRange.EndingHashKey)
		require.Zerof(t, start.Cmp(want), "shard %s starts at %s, want %s", sh.ShardID, start, want)
		require.LessOrEqualf(t, start.Cmp(end), 0, "shard %s has an empty range", sh.ShardID)
		want.Add(end, big.NewInt(1))
	}
	require.Zerof(t, want.Cmp(reshardSpace), "open shards end at %s, want 2^128−1", new(big.Int).Sub(want, big.NewInt(1)))
}

// reshardCheckEven checks that open shards (ordered by starting key) split
// the space as Kinesis does at creation: shard i of n starts at i·⌊2^128/n⌋
// and the last one ends at 2^128−1.
func reshardCheckEven(t testing.TB, open []Shard, n int) {
	t.Helper()
	require.Len(t, open, n)
	step := new(big.Int).Div(reshardSpace, big.NewInt(int64(n)))
	for i, sh := range open {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(reshardSpace, big.NewInt(1))
		if i+1 < n {
			end.Sub(new(big.Int).Mul(step, big.NewInt(int64(i+1))), big.NewInt(1))
		}
		assert.Equalf(t, start.String(), sh.HashKeyRange.StartingHashKey.String(), "start of open shard %d of %d (%s)", i, n, sh.ShardID)
		assert.Equalf(t, end.String(), sh.HashKeyRange.EndingHashKey.String(), "end of open shard %d of %d (%s)", i, n, sh.ShardID)
	}
}

// reshardCheckLineage checks the lineage of a complete listing (nothing
// expired): every shard has at most two parents, every closed shard was
// closed exactly once (it is the parent of exactly one split pair or of
// exactly one merge child), children's ranges match their parents', open
// shards have no children, and children's sequence numbers start above
// their parents' ends.
func reshardCheckLineage(t testing.TB, all []Shard) {
	t.Helper()
	byID := make(map[string]Shard, len(all))
	for _, sh := range all {
		byID[sh.ShardID] = sh
	}
	children := map[string][]Shard{}
	for _, sh := range all {
		p, a := sh.ParentShardID, sh.AdjacentParentShardID
		if a != "" {
			assert.NotEmptyf(t, p, "shard %s has an adjacent parent but no parent", sh.ShardID)
			assert.NotEqualf(t, p, a, "shard %s names %s as both parents", sh.ShardID, p)
		}
		for _, par := range []string{p, a} {
			if par == "" {
				continue
			}
			ps, ok := byID[par]
			if !assert.Truef(t, ok, "parent %s of %s is not listed", par, sh.ShardID) {
				continue
			}
			children[par] = append(children[par], sh)
			assert.Lessf(t, par, sh.ShardID, "parent %s of %s has a larger id", par, sh.ShardID)
			assert.Falsef(t, ps.Open(), "parent %s of %s is still open", par, sh.ShardID)
			assert.Equalf(t, 1, sh.SequenceNumberRange.StartingSequenceNumber.Cmp(ps.SequenceNumberRange.EndingSequenceNumber),
				"child %s starts at %s, not above parent %s's end %s", sh.ShardID,
				sh.SequenceNumberRange.StartingSequenceNumber, par, ps.SequenceNumberRange.EndingSequenceNumber)
		}
	}
	for _, sh := range all {
		kids := children[sh.ShardID]
		if sh.Open() {
			assert.Emptyf(t, kids, "open shard %s has children", sh.ShardID)
			continue
		}
		switch {
		case len(kids) == 2 && kids[0].AdjacentParentShardID == "" && kids[1].AdjacentParentShardID == "":
			// A split: the children halve the parent's range.
			lo, hi := kids[0], kids[1]
			if lo.HashKeyRange.StartingHashKey.Cmp(hi.HashKeyRange.StartingHashKey) > 0 {
				lo, hi = hi, lo
			}
			assert.Equalf(t, sh.HashKeyRange.StartingHashKey, lo.HashKeyRange.StartingHashKey, "split of %s: low child %s", sh.ShardID, lo.ShardID)
			assert.Equalf(t, sh.HashKeyRange.EndingHashKey, hi.HashKeyRange.EndingHashKey, "split of %s: high child %s", sh.ShardID, hi.ShardID)
			assert.Equalf(t, reshardAdd(lo.HashKeyRange.EndingHashKey, 1).String(), hi.HashKeyRange.StartingHashKey.String(),
				"split of %s: children %s and %s are not contiguous", sh.ShardID, lo.ShardID, hi.ShardID)
		case len(kids) == 1 && kids[0].AdjacentParentShardID != "":
			// A merge: the child covers both parents.
			kid := kids[0]
			a, b := byID[kid.ParentShardID], byID[kid.AdjacentParentShardID]
			if a.HashKeyRange.StartingHashKey.Cmp(b.HashKeyRange.StartingHashKey) > 0 {
				a, b = b, a
			}
			assert.Equalf(t, reshardAdd(a.HashKeyRange.EndingHashKey, 1).String(), b.HashKeyRange.StartingHashKey.String(),
				"merge into %s: parents %s and %s are not adjacent", kid.ShardID, a.ShardID, b.ShardID)
			assert.Equalf(t, HashKeyRange{StartingHashKey: a.HashKeyRange.StartingHashKey, EndingHashKey: b.HashKeyRange.EndingHashKey},
				kid.HashKeyRange, "merge into %s", kid.ShardID)
		default:
			assert.Failf(t, "closed shard not closed exactly once", "%s has children %v", sh.ShardID, reshardIDs(kids))
		}
	}
}

// reshardPut writes one record and returns where it went.
func reshardPut(t testing.TB, s *Stream, key, data, explicit string) PutRecordOutput {
	t.Helper()
	out, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: key, Data: []byte(data), ExplicitHashKey: explicit})
	require.NoError(t, err)
	return out
}

// reshardErr checks that err wraps kind and mentions every string in names
// (the offending values).
func reshardErr(t testing.TB, err error, kind error, names ...string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, kind)
	for _, n := range names {
		assert.ErrorContains(t, err, n)
	}
}

func TestSplitShardValidation(t *testing.T) {
	ctx := t.Context()
	c, s := reshardStream(t, WithShardCount(2))
	shards := reshardList(t, s, ShardFilter{})
	s0, s1 := shards[0], shards[1]
	// Close shard 1 (children 2 and 3) so that splitting a closed shard can be tried.
	require.NoError(t, s.SplitShard(ctx, s1.ShardID, reshardMid(t, s1)))
	start, end := s0.HashKeyRange.StartingHashKey, s0.HashKeyRange.EndingHashKey

	tests := []struct {
		name  string
		shard string
		key   *big.Int
		kind  error
		names []string
	}{
		{"key at start", s0.ShardID, reshardBig(start), ErrInvalidArgument, []string{"NewStartingHashKey " + start.String() + " "}},
		{"key at start+1", s0.ShardID, reshardAdd(start, 1), ErrInvalidArgument, []string{"NewStartingHashKey 1 "}},
		{"key at end", s0.ShardID, reshardBig(end), ErrInvalidArgument, []string{end.String()}},
		{"key above end", s0.ShardID, reshardAdd(end, 1), ErrInvalidArgument, []string{reshardAdd(end, 1).String()}},
		{"key at max", s0.ShardID, reshardBig(MaxHashKey()), ErrInvalidArgument, []string{MaxHashKey().String()}},
		{"closed shard", s1.ShardID, reshardBig(reshardMid(t, s1)), ErrInvalidArgument, []string{s1.ShardID, "already"}},
		{"unknown shard", reshardID(99), reshardBig(reshardMid(t, s0)), ErrResourceNotFound, []string{reshardID(99)}},
		{"malformed id", "shard-1", reshardBig(reshardMid(t, s0)), ErrResourceNotFound, []string{`"shard-1"`}},
		{"id with letters", "shardId-00000000000x", reshardBig(reshardMid(t, s0)), ErrResourceNotFound, []string{"shardId-00000000000x"}},
		{"id too long", "shardId-0000000000000", reshardBig(reshardMid(t, s0)), ErrResourceNotFound, []string{"shardId-0000000000000"}},
		{"empty id", "", reshardBig(reshardMid(t, s0)), ErrValidation, []string{`""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SplitShard(ctx, tt.shard, reshardKey(t, tt.key))
			reshardErr(t, err, tt.kind, tt.names...)
			// Nothing changed: no shard created, no quota taken.
			assert.Len(t, reshardList(t, s, ShardFilter{}), 4)
			_, used := c.ShardQuota()
			assert.Equal(t, 3, used)
		})
	}

	// A failed split does not use up shard numbers: the next split's
	// children are 4 and 5.
	require.NoError(t, s.SplitShard(ctx, s0.ShardID, reshardMid(t, s0)))
	open := reshardOpen(t, s)
	assert.Equal(t, []string{reshardID(4), reshardID(5), reshardID(2), reshardID(3)}, reshardIDs(open))
}

func TestSplitShardBoundaryKeys(t *testing.T) {
	tests := []struct {
		name string
		key  func(Shard) *big.Int
	}{
		{"start+2", func(sh Shard) *big.Int { return reshardAdd(sh.HashKeyRange.StartingHashKey, 2) }},
		{"end-1", func(sh Shard) *big.Int { return reshardAdd(sh.HashKeyRange.EndingHashKey, -1) }},
	}
	for _, shardCount := range []int{1, 3} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/shards=%d", tt.name, shardCount), func(t *testing.T) {
				_, s := reshardStream(t, WithShardCount(shardCount))
				last := reshardOpen(t, s)[shardCount-1] // the shard ending at 2^128−1
				key := reshardKey(t, tt.key(last))
				require.NoError(t, s.SplitShard(t.Context(), last.ShardID, key))
				open := reshardOpen(t, s)
				reshardCheckTiling(t, open)
				lo, hi := open[shardCount-1], open[shardCount]
				assert.Equal(t, last.HashKeyRange.StartingHashKey, lo.HashKeyRange.StartingHashKey)
				assert.Equal(t, key, hi.HashKeyRange.StartingHashKey)
				assert.Equal(t, MaxHashKey(), hi.HashKeyRange.EndingHashKey)
				assert.Equal(t, key.String(), reshardAdd(lo.HashKeyRange.EndingHashKey, 1).String())
			})
		}
	}
}

func TestMergeShardsValidation(t *testing.T) {
	ctx := t.Context()
	c, s := reshardStream(t, WithShardCount(4))
	shards := reshardList(t, s, ShardFilter{})
	// Close shard 3 (children 4 and 5).
	require.NoError(t, s.SplitShard(ctx, shards[3].ShardID, reshardMid(t, shards[3])))
	id := reshardID

	tests := []struct {
		name      string
		a, b      string
		kind      error
		mentioned []string
	}{
		{"not adjacent", id(0), id(2), ErrInvalidArgument, []string{id(0), id(2), "not adjacent"}},
		{"first and last", id(0), id(5), ErrInvalidArgument, []string{id(0), id(5)}},
		{"same shard twice", id(1), id(1), ErrInvalidArgument, []string{id(1)}},
		{"closed shard", id(3), id(2), ErrInvalidArgument, []string{id(3), "already"}},
		{"closed adjacent shard", id(2), id(3), ErrInvalidArgument, []string{id(3), "already"}},
		{"closed shard and its child", id(3), id(4), ErrInvalidArgument, []string{id(3)}},
		{"unknown shard", id(99), id(0), ErrResourceNotFound, []string{id(99)}},
		{"unknown adjacent shard", id(0), id(99), ErrResourceNotFound, []string{id(99)}},
		{"malformed id", "nope", id(0), ErrResourceNotFound, []string{`"nope"`}},
		{"malformed adjacent id", id(0), "shardId-1", ErrResourceNotFound, []string{`"shardId-1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.MergeShards(ctx, tt.a, tt.b)
			reshardErr(t, err, tt.kind, tt.mentioned...)
			assert.Len(t, reshardList(t, s, ShardFilter{}), 6)
			_, used := c.ShardQuota()
			assert.Equal(t, 5, used)
		})
	}

	// Adjacent shards merge in either order; the failures used no numbers.
	require.NoError(t, s.MergeShards(ctx, id(4), id(2)))
	child := reshardFind(t, reshardList(t, s, ShardFilter{}), id(6))
	assert.Equal(t, id(4), child.ParentShardID)
	assert.Equal(t, id(2), child.AdjacentParentShardID)
}

func TestUpdateShardCountValidation(t *testing.T) {
	tests := []struct {
		name      string
		from, to  int
		kind      error // nil: succeeds
		mentioned []string
	}{
		{"double", 4, 8, nil, nil},
		{"half", 4, 2, nil, nil},
		{"same", 4, 4, nil, nil},
		{"above double", 4, 9, ErrLimitExceeded, []string{"count 9 ", "current 4"}},
		{"below half", 4, 1, ErrLimitExceeded, []string{"count 1 ", "current 4"}},
		{"odd: half rounded up", 5, 3, nil, nil},
		{"odd: below half", 5, 2, ErrLimitExceeded, []string{"count 2 ", "current 5"}},
		{"odd: double", 5, 10, nil, nil},
		{"odd: above double", 5, 11, ErrLimitExceeded, []string{"count 11 ", "current 5"}},
		{"from one", 1, 2, nil, nil},
		{"from one: above double", 1, 3, ErrLimitExceeded, []string{"count 3 "}},
		{"zero", 4, 0, ErrValidation, []string{"count 0 "}},
		{"negative", 4, -3, ErrValidation, []string{"count -3 "}},
		{"above 10,000", 6000, 10_001, ErrLimitExceeded, []string{"10001", "10000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := reshardStream(t, WithShardCount(tt.from))
			out, err := s.UpdateShardCount(t.Context(), tt.to)
			_, used := c.ShardQuota()
			if tt.kind == nil {
				require.NoError(t, err)
				assert.Equal(t, UpdateShardCountOutput{CurrentShardCount: tt.from, TargetShardCount: tt.to}, out)
				reshardCheckEven(t, reshardOpen(t, s), tt.to)
				assert.Equal(t, tt.to, used)
				return
			}
			reshardErr(t, err, tt.kind, tt.mentioned...)
			assert.Len(t, reshardList(t, s, ShardFilter{}), tt.from)
			assert.Equal(t, tt.from, used)
		})
	}
}

func TestReshardOnDeletedOrClosed(t *testing.T) {
	ctx := t.Context()
	key := reshardKey(t, big.NewInt(1<<40))
	ops := []struct {
		name string
		do   func(*Stream) error
	}{
		{"SplitShard", func(s *Stream) error { return s.SplitShard(ctx, reshardID(0), key) }},
		{"MergeShards", func(s *Stream) error { return s.MergeShards(ctx, reshardID(0), reshardID(1)) }},
		{"UpdateShardCount", func(s *Stream) error { _, err := s.UpdateShardCount(ctx, 3); return err }},
	}
	for _, op := range ops {
		t.Run(op.name+"/deleted", func(t *testing.T) {
			c, s := reshardStream(t, WithShardCount(2))
			require.NoError(t, c.DeleteStream(ctx, s.Name()))
			reshardErr(t, op.do(s), ErrResourceNotFound, s.Name())
		})
		t.Run(op.name+"/closed", func(t *testing.T) {
			c, s := reshardStream(t, WithShardCount(2))
			require.NoError(t, c.Close())
			assert.ErrorIs(t, op.do(s), ErrClosed)
		})
	}
}

func TestReshardShardQuota(t *testing.T) {
	ctx := t.Context()
	c := reshardCluster(t, WithShardQuota(6))
	used := func() int { _, n := c.ShardQuota(); return n }
	a, err := c.CreateStream(ctx, "a", WithShardCount(4))
	require.NoError(t, err)
	require.Equal(t, 4, used())

	open := reshardOpen(t, a)
	require.NoError(t, a.SplitShard(ctx, open[0].ShardID, reshardMid(t, open[0])))
	assert.Equal(t, 5, used(), "after a split")
	open = reshardOpen(t, a)
	require.NoError(t, a.MergeShards(ctx, open[0].ShardID, open[1].ShardID))
	assert.Equal(t, 4, used(), "after a merge")
	_, err = a.UpdateShardCount(ctx, 6)
	require.NoError(t, err)
	assert.Equal(t, 6, used(), "after UpdateShardCount 4→6")

	// The quota is full.
	open = reshardOpen(t, a)
	reshardErr(t, a.SplitShard(ctx, open[0].ShardID, reshardMid(t, open[0])), ErrLimitExceeded, "quota of 6", "needs 1 more")
	_, err = a.UpdateShardCount(ctx, 7)
	reshardErr(t, err, ErrLimitExceeded, "quota of 6")
	_, err = c.CreateStream(ctx, "b", WithShardCount(1))
	reshardErr(t, err, ErrLimitExceeded, "quota of 6")
	assert.Len(t, reshardOpen(t, a), 6)
	assert.Equal(t, 6, used())

	_, err = a.UpdateShardCount(ctx, 3)
	require.NoError(t, err)
	assert.Equal(t, 3, used(), "after UpdateShardCount 6→3")
	b, err := c.CreateStream(ctx, "b", WithShardCount(3))
	require.NoError(t, err)
	assert.Equal(t, 6, used())
	require.NoError(t, c.DeleteStream(ctx, a.Name()))
	assert.Equal(t, 3, used(), "after deleting a")
	open = reshardOpen(t, b)
	require.NoError(t, b.SplitShard(ctx, open[1].ShardID, reshardMid(t, open[1])))
	assert.Equal(t, 4, used())
	require.NoError(t, c.DeleteStream(ctx, b.Name()))
	assert.Equal(t, 0, used(), "after deleting b")
}

// An UpdateShardCount refused because of the shard quota did not scale the
// stream, so it must not count against the 24-hour call limit.
func TestUpdateShardCountQuotaFailureIsNotCounted(t *testing.T) {
	ctx := t.Context()
	c := reshardCluster(t, WithShardQuota(4))
	s, err := c.CreateStream(ctx, "q", WithShardCount(4), WithUpdateShardCountLimit(1))
	require.NoError(t, err)
	_, err = s.UpdateShardCount(ctx, 5)
	reshardErr(t, err, ErrLimitExceeded, "quota of 4")
	_, err = s.UpdateShardCount(ctx, 3)
	assert.NoError(t, err, "the refused call used up the only UpdateShardCount of the day")
}

func TestUpdateShardCountRollingLimit(t *testing.T) {
	tests := []struct {
		name    string
		opts    []StreamOption
		allowed int // calls accepted at once; -1: unlimited
	}{
		{"default 10", nil, 10},
		{"limit 2", []StreamOption{WithUpdateShardCountLimit(2)}, 2},
		{"off", []StreamOption{WithUpdateShardCountLimit(0)}, -1},
		{"negative is off", []StreamOption{WithUpdateShardCountLimit(-1)}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				c := NewCluster()
				defer c.Close()
				s, err := c.CreateStream(ctx, "limited", append([]StreamOption{WithShardCount(4)}, tt.opts...)...)
				require.NoError(t, err)
				target := 4
				update := func() error {
					target = 9 - target // 5, 4, 5, …
					_, err := s.UpdateShardCount(ctx, target)
					if err != nil {
						target = 9 - target
					}
					return err
				}
				if tt.allowed < 0 {
					for range 25 {
						require.NoError(t, update())
					}
					return
				}
				// One call an hour: the calls at 0h … (n−1)h succeed.
				start := time.Now()
				for range tt.allowed {
					require.NoError(t, update())
					time.Sleep(time.Hour)
				}
				reshardErr(t, update(), ErrLimitExceeded, "limit is "+strconv.Itoa(tt.allowed), s.Name())
				// Still refused a millisecond before the first call is 24 h old …
				time.Sleep(start.Add(24*time.Hour - time.Millisecond).Sub(time.Now()))
				reshardErr(t, update(), ErrLimitExceeded)
				// … accepted when it is.
				time.Sleep(time.Millisecond)
				require.NoError(t, update())
				if tt.allowed > 1 {
					reshardErr(t, update(), ErrLimitExceeded) // the 1h call is still in the window
				}
				time.Sleep(time.Hour)
				require.NoError(t, update())
				// Refused calls do not count either: after a day of quiet
				// the full allowance is back.
				time.Sleep(24 * time.Hour)
				for range tt.allowed {
					require.NoError(t, update())
				}
				reshardErr(t, update(), ErrLimitExceeded)
			})
		})
	}
}

// reshardStatus returns the stream's status.
func reshardStatus(t testing.TB, s *Stream) StreamStatus {
	t.Helper()
	d, err := s.Describe(context.Background())
	require.NoError(t, err)
	return d.StreamStatus
}

func TestReshardOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		const d = 30 * time.Second
		c := NewCluster()
		defer c.Close()
		s, err := c.CreateStream(ctx, "busy", WithShardCount(2), WithReshardDuration(d))
		require.NoError(t, err)
		before := reshardOpen(t, s)
		s0, s1 := before[0], before[1]

		require.NoError(t, s.SplitShard(ctx, s0.ShardID, reshardMid(t, s0)))
		assert.Equal(t, StatusUpdating, reshardStatus(t, s))
		assert.Equal(t, []string{s0.ShardID, s1.ShardID}, reshardIDs(reshardOpen(t, s)), "the split is not visible yet")

		busy := []struct {
			name string
			do   func() error
		}{
			{"SplitShard", func() error { return s.SplitShard(ctx, s1.ShardID, reshardMid(t, s1)) }},
			{"MergeShards", func() error { return s.MergeShards(ctx, s0.ShardID, s1.ShardID) }},
			{"UpdateShardCount", func() error { _, err := s.UpdateShardCount(ctx, 3); return err }},
		}
		for _, b := range busy {
			reshardErr(t, b.do(), ErrResourceInUse, s.Name(), string(StatusUpdating))
		}
		// Writes still go to the parent meanwhile.
		w := reshardPut(t, s, "k", "during", s0.HashKeyRange.StartingHashKey.String())
		assert.Equal(t, s0.ShardID, w.ShardID)

		time.Sleep(d - time.Millisecond)
		synctest.Wait()
		assert.Equal(t, StatusUpdating, reshardStatus(t, s))
		assert.Len(t, reshardOpen(t, s), 2)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		assert.Equal(t, StatusActive, reshardStatus(t, s))
		open := reshardOpen(t, s)
		assert.Equal(t, []string{reshardID(2), reshardID(3), s1.ShardID}, reshardIDs(open))
		reshardCheckTiling(t, open)
		parent := reshardFind(t, reshardList(t, s, ShardFilter{}), s0.ShardID)
		assert.False(t, parent.Open())
		assert.Zero(t, w.SequenceNumber.Cmp(parent.SequenceNumberRange.EndingSequenceNumber))
		w2 := reshardPut(t, s, "k", "after", s0.HashKeyRange.StartingHashKey.String())
		assert.Equal(t, reshardID(2), w2.ShardID)

		// The next resharding is accepted again, and takes its time too.
		require.NoError(t, s.MergeShards(ctx, reshardID(3), s1.ShardID))
		assert.Equal(t, StatusUpdating, reshardStatus(t, s))
		time.Sleep(d)
		synctest.Wait()
		assert.Equal(t, StatusActive, reshardStatus(t, s))
		assert.Equal(t, []string{reshardID(2), reshardID(4)}, reshardIDs(reshardOpen(t, s)))
	})
}

// reshardSteps counts the splits and merges a complete listing records.
func reshardSteps(all []Shard) int {
	splitKids, merges := 0, 0
	for _, sh := range all {
		switch {
		case sh.AdjacentParentShardID != "":
			merges++
		case sh.ParentShardID != "":
			splitKids++
		}
	}
	return splitKids/2 + merges
}

func TestUpdateShardCountTakesStepsTimesDuration(t *testing.T) {
	tests := []struct {
		from, to int
	}{
		{1, 2}, {2, 4}, {2, 3}, {4, 3}, {3, 5}, {4, 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d→%d", tt.from, tt.to), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				const d = 10 * time.Second
				c := NewCluster()
				defer c.Close()
				// The same change without a duration tells how many steps it takes.
				twin, err := c.CreateStream(ctx, "twin", WithShardCount(tt.from))
				require.NoError(t, err)
				_, err = twin.UpdateShardCount(ctx, tt.to)
				require.NoError(t, err)
				steps := reshardSteps(reshardList(t, twin, ShardFilter{}))
				require.Positive(t, steps)

				s, err := c.CreateStream(ctx, "slow", WithShardCount(tt.from), WithReshardDuration(d))
				require.NoError(t, err)
				out, err := s.UpdateShardCount(ctx, tt.to)
				require.NoError(t, err)
				assert.Equal(t, UpdateShardCountOutput{CurrentShardCount: tt.from, TargetShardCount: tt.to}, out)
				time.Sleep(time.Duration(steps)*d - time.Millisecond)
				synctest.Wait()
				assert.Equal(t, StatusUpdating, reshardStatus(t, s), "%d steps take %v", steps, time.Duration(steps)*d)
				assert.Len(t, reshardOpen(t, s), tt.from)
				time.Sleep(time.Millisecond)
				synctest.Wait()
				assert.Equal(t, StatusActive, reshardStatus(t, s))
				reshardCheckEven(t, reshardOpen(t, s), tt.to)
				assert.Equal(t, reshardIDs(reshardList(t, twin, ShardFilter{})), reshardIDs(reshardList(t, s, ShardFilter{})))
			})
		})
	}
}

// Deleting a stream while a resharding is pending must give back exactly
// the shards the stream holds against the quota.
func TestReshardQuotaAfterDeleteDuringUpdate(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, s *Stream) error
	}{
		{"split", func(t *testing.T, s *Stream) error {
			sh := reshardOpen(t, s)[0]
			return s.SplitShard(t.Context(), sh.ShardID, reshardMid(t, sh))
		}},
		{"merge", func(t *testing.T, s *Stream) error {
			return s.MergeShards(t.Context(), reshardID(0), reshardID(1))
		}},
		{"UpdateShardCount up", func(t *testing.T, s *Stream) error {
			_, err := s.UpdateShardCount(t.Context(), 8)
			return err
		}},
		{"UpdateShardCount down", func(t *testing.T, s *Stream) error {
			_, err := s.UpdateShardCount(t.Context(), 2)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				c := NewCluster(WithShardQuota(10))
				defer c.Close()
				s, err := c.CreateStream(ctx, "doomed", WithShardCount(4), WithReshardDuration(time.Minute))
				require.NoError(t, err)
				require.NoError(t, tt.do(t, s))
				require.Equal(t, StatusUpdating, reshardStatus(t, s))
				require.NoError(t, c.DeleteStream(ctx, s.Name()))
				_, used := c.ShardQuota()
				assert.Equal(t, 0, used, "right after DeleteStream")
				time.Sleep(time.Hour)
				synctest.Wait()
				_, used = c.ShardQuota()
				assert.Equal(t, 0, used, "after the pending resharding's time")
				// The whole quota is available again.
				_, err = c.CreateStream(ctx, "doomed", WithShardCount(10))
				assert.NoError(t, err)
			})
		})
	}
}

func TestReshardCloseClusterDuringUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		c := NewCluster()
		s, err := c.CreateStream(ctx, "closing", WithShardCount(2), WithReshardDuration(time.Minute))
		require.NoError(t, err)
		_, err = s.UpdateShardCount(ctx, 4)
		require.NoError(t, err)
		require.NoError(t, c.Close()) // does not wait for the pending resharding
		_, err = s.Describe(ctx)
		assert.ErrorIs(t, err, ErrClosed)
	})
}

func TestSplitShardShape(t *testing.T) {
	ctx := t.Context()
	c, s := reshardStream(t, WithShardCount(2), WithLimits(Unlimited()))
	shards := reshardList(t, s, ShardFilter{})
	par := shards[0]
	key := reshardMid(t, par)
	below, above := reshardAdd(key, -1).String(), key.String()
	var written []PutRecordOutput
	for i, ehk := range []string{par.HashKeyRange.StartingHashKey.String(), below, above, par.HashKeyRange.EndingHashKey.String()} {
		written = append(written, reshardPut(t, s, "k", strconv.Itoa(i), ehk))
	}
	require.NoError(t, s.SplitShard(ctx, par.ShardID, key))

	all := reshardList(t, s, ShardFilter{})
	require.Equal(t, []string{reshardID(0), reshardID(1), reshardID(2), reshardID(3)}, reshardIDs(all))
	parent, lo, hi := all[0], all[2], all[3]
	assert.False(t, parent.Open())
	assert.Equal(t, par.HashKeyRange, parent.HashKeyRange, "a closed shard keeps its range")
	assert.Equal(t, par.SequenceNumberRange.StartingSequenceNumber, parent.SequenceNumberRange.StartingSequenceNumber)
	last := written[len(written)-1].SequenceNumber
	assert.GreaterOrEqual(t, parent.SequenceNumberRange.EndingSequenceNumber.Cmp(last), 0,
		"EndingSequenceNumber %s is below the last record %s", parent.SequenceNumberRange.EndingSequenceNumber, last)
	assert.True(t, all[1].Open())

	assert.Equal(t, HashKeyRange{StartingHashKey: par.HashKeyRange.StartingHashKey, EndingHashKey: reshardKey(t, reshardAdd(key, -1))}, lo.HashKeyRange)
	assert.Equal(t, HashKeyRange{StartingHashKey: key, EndingHashKey: par.HashKeyRange.EndingHashKey}, hi.HashKeyRange)
	for _, ch := range []Shard{lo, hi} {
		assert.True(t, ch.Open())
		assert.Equal(t, par.ShardID, ch.ParentShardID)
		assert.Empty(t, ch.AdjacentParentShardID)
		for _, w := range written {
			assert.Equal(t, 1, ch.SequenceNumberRange.StartingSequenceNumber.Cmp(w.SequenceNumber),
				"child %s starts at %s, not above parent record %s", ch.ShardID, ch.SequenceNumberRange.StartingSequenceNumber, w.SequenceNumber)
		}
		assert.Equal(t, ch.ShardID, ch.SequenceNumberRange.StartingSequenceNumber.ShardID())
	}
	reshardCheckLineage(t, all)
	_, used := c.ShardQuota()
	assert.Equal(t, 3, used)

	// The same keys now go to the children, numbered above the parent's.
	for _, ehk := range []struct{ key, shard string }{{below, lo.ShardID}, {above, hi.ShardID}} {
		w := reshardPut(t, s, "k", "after", ehk.key)
		assert.Equal(t, ehk.shard, w.ShardID)
		assert.Equal(t, 1, w.SequenceNumber.Cmp(last))
	}
}

func TestMergeShardsShape(t *testing.T) {
	ctx := t.Context()
	c, s := reshardStream(t, WithShardCount(3), WithLimits(Unlimited()))
	shards := reshardList(t, s, ShardFilter{})
	a, b := shards[1], shards[2]
	wa := reshardPut(t, s, "k", "a", a.HashKeyRange.StartingHashKey.String())
	wb1 := reshardPut(t, s, "k", "b1", b.HashKeyRange.StartingHashKey.String())
	wb2 := reshardPut(t, s, "k", "b2", b.HashKeyRange.EndingHashKey.String())
	// ShardToMerge is the upper shard: the parent fields follow the call, not the ranges.
	require.NoError(t, s.MergeShards(ctx, b.ShardID, a.ShardID))

	all := reshardList(t, s, ShardFilter{})
	require.Equal(t, []string{reshardID(0), reshardID(1), reshardID(2), reshardID(3)}, reshardIDs(all))
	child := all[3]
	assert.True(t, child.Open())
	assert.Equal(t, b.ShardID, child.ParentShardID)
	assert.Equal(t, a.ShardID, child.AdjacentParentShardID)
	assert.Equal(t, HashKeyRange{StartingHashKey: a.HashKeyRange.StartingHashKey, EndingHashKey: b.HashKeyRange.EndingHashKey}, child.HashKeyRange)
	pa, pb := all[1], all[2]
	assert.False(t, pa.Open())
	assert.False(t, pb.Open())
	assert.GreaterOrEqual(t, pa.SequenceNumberRange.EndingSequenceNumber.Cmp(wa.SequenceNumber), 0)
	assert.GreaterOrEqual(t, pb.SequenceNumberRange.EndingSequenceNumber.Cmp(wb2.SequenceNumber), 0)
	for _, w := range []PutRecordOutput{wa, wb1, wb2} {
		assert.Equal(t, 1, child.SequenceNumberRange.StartingSequenceNumber.Cmp(w.SequenceNumber))
	}
	reshardCheckLineage(t, all)
	reshardCheckTiling(t, reshardOpen(t, s))
	_, used := c.ShardQuota()
	assert.Equal(t, 2, used)
	w := reshardPut(t, s, "k", "after", a.HashKeyRange.StartingHashKey.String())
	assert.Equal(t, child.ShardID, w.ShardID)
	assert.Equal(t, 1, w.SequenceNumber.Cmp(wb2.SequenceNumber))
}

func TestUpdateShardCountShape(t *testing.T) {
	type tc struct {
		name     string
		from, to int
		prep     func(t *testing.T, s *Stream) // reshapes the stream first
	}
	tests := []tc{}
	for _, p := range [][2]int{{1, 2}, {2, 4}, {4, 3}, {4, 2}, {3, 5}, {5, 3}, {10, 13}, {10, 5}, {7, 14}, {2, 1}, {3, 3}} {
		tests = append(tests, tc{name: fmt.Sprintf("%d→%d", p[0], p[1]), from: p[0], to: p[1]})
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for range 6 {
		from := 1 + rng.IntN(40)
		to := (from+1)/2 + rng.IntN(2*from-(from+1)/2+1)
		tests = append(tests, tc{name: fmt.Sprintf("random %d→%d", from, to), from: from, to: to})
	}
	// From an uneven layout (after manual splits and merges) the result is even too.
	tests = append(tests, tc{name: "uneven 4→4", from: 4, to: 4, prep: func(t *testing.T, s *Stream) {
		open := reshardOpen(t, s)
		require.NoError(t, s.SplitShard(t.Context(), open[1].ShardID, reshardKey(t, reshardAdd(open[1].HashKeyRange.StartingHashKey, 12345))))
		open = reshardOpen(t, s)
		require.NoError(t, s.MergeShards(t.Context(), open[3].ShardID, open[4].ShardID))
	}})
	tests = append(tests, tc{name: "uneven 3→6", from: 3, to: 6, prep: func(t *testing.T, s *Stream) {
		open := reshardOpen(t, s)
		require.NoError(t, s.MergeShards(t.Context(), open[0].ShardID, open[1].ShardID))
		open = reshardOpen(t, s)
		require.NoError(t, s.SplitShard(t.Context(), open[0].ShardID, reshardKey(t, reshardAdd(open[0].HashKeyRange.EndingHashKey, -7))))
		open = reshardOpen(t, s)
		require.NoError(t, s.SplitShard(t.Context(), open[2].ShardID, reshardMid(t, open[2])))
	}})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			c, s := reshardStream(t, WithShardCount(tt.from), WithLimits(Unlimited()), WithUpdateShardCountLimit(0))
			if tt.prep != nil {
				tt.prep(t, s)
			}
			// Some data in every open shard, to check the sequence numbers.
			last := map[string]SequenceNumber{}
			for _, sh := range reshardOpen(t, s) {
				for range 1 + len(last)%3 {
					last[sh.ShardID] = reshardPut(t, s, "k", "x", sh.HashKeyRange.EndingHashKey.String()).SequenceNumber
				}
			}
			before := reshardList(t, s, ShardFilter{})
			cur := len(reshardOpen(t, s))

			out, err := s.UpdateShardCount(ctx, tt.to)
			require.NoError(t, err)
			assert.Equal(t, UpdateShardCountOutput{CurrentShardCount: cur, TargetShardCount: tt.to}, out)

			open := reshardOpen(t, s)
			reshardCheckEven(t, open, tt.to)
			reshardCheckTiling(t, open)
			all := reshardList(t, s, ShardFilter{})
			reshardCheckLineage(t, all)
			// New shards take fresh, consecutive numbers.
			for i, sh := range all {
				assert.Equal(t, reshardID(i), sh.ShardID)
			}
			for id, n := range last {
				if sh := reshardFind(t, all, id); !sh.Open() {
					assert.Zero(t, sh.SequenceNumberRange.EndingSequenceNumber.Cmp(n), "EndingSequenceNumber of %s is not its last record's", id)
				}
			}
			if tt.prep == nil && tt.from == tt.to {
				assert.Equal(t, before, all, "an even stream needs no change")
			}
			_, used := c.ShardQuota()
			assert.Equal(t, tt.to, used)
		})
	}
}

// reshardReadShard reads a shard to its end (closed) or to its newest record
// (open) with GetRecords calls of at most limit records.
func reshardReadShard(t testing.TB, s *Stream, id string, limit int) (recs []Record, children []ChildShard, ended bool) {
	t.Helper()
	ctx := context.Background()
	it, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: id, StartingPosition: StartingPosition{Type: TrimHorizon}})
	require.NoError(t, err)
	for {
		out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Limit: limit})
		require.NoError(t, err)
		recs = append(recs, out.Records...)
		if out.NextShardIterator.IsZero() {
			return recs, out.ChildShards, true
		}
		assert.Empty(t, out.ChildShards, "ChildShards before the end of %s", id)
		if len(out.Records) == 0 && out.MillisBehindLatest == 0 {
			return recs, nil, false
		}
		it = out.NextShardIterator
	}
}

func TestReshardGetRecordsChildShards(t *testing.T) {
	ctx := t.Context()
	_, s := reshardStream(t, WithShardCount(2), WithLimits(Unlimited()))
	s0 := reshardOpen(t, s)[0]
	var seqs []SequenceNumber
	for i := range 3 {
		seqs = append(seqs, reshardPut(t, s, "k", strconv.Itoa(i), s0.HashKeyRange.StartingHashKey.String()).SequenceNumber)
	}
	key := reshardMid(t, s0)
	require.NoError(t, s.SplitShard(ctx, s0.ShardID, key))
	lo := HashKeyRange{StartingHashKey: s0.HashKeyRange.StartingHashKey, EndingHashKey: reshardKey(t, reshardAdd(key, -1))}
	hi := HashKeyRange{StartingHashKey: key, EndingHashKey: s0.HashKeyRange.EndingHashKey}
	wantSplit := []ChildShard{
		{ShardID: reshardID(2), ParentShards: []string{s0.ShardID}, HashKeyRange: lo},
		{ShardID: reshardID(3), ParentShards: []string{s0.ShardID}, HashKeyRange: hi},
	}

	t.Run("paged to the end", func(t *testing.T) {
		it, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: s0.ShardID, StartingPosition: StartingPosition{Type: TrimHorizon}})
		require.NoError(t, err)
		out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Limit: 2})
		require.NoError(t, err)
		require.Len(t, out.Records, 2)
		assert.False(t, out.NextShardIterator.IsZero())
		assert.Empty(t, out.ChildShards)
		out, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: out.NextShardIterator, Limit: 2})
		require.NoError(t, err)
		require.Len(t, out.Records, 1)
		assert.Equal(t, seqs[2], out.Records[0].SequenceNumber)
		assert.True(t, out.NextShardIterator.IsZero(), "no iterator after the end of a closed shard")
		assert.Equal(t, wantSplit, out.ChildShards)
		_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: out.NextShardIterator})
		assert.ErrorIs(t, err, ErrInvalidArgument)
	})

	positions := []struct {
		name string
		pos  StartingPosition
		n    int
	}{
		{"TRIM_HORIZON", StartingPosition{Type: TrimHorizon}, 3},
		{"LATEST", StartingPosition{Type: Latest}, 0},
		{"AT_SEQUENCE_NUMBER", StartingPosition{Type: AtSequenceNumber, SequenceNumber: seqs[1]}, 2},
		{"AFTER_SEQUENCE_NUMBER last", StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[2]}, 0},
		{"AT_TIMESTAMP", StartingPosition{Type: AtTimestamp, Timestamp: time.Now().Add(-time.Hour)}, 3},
		{"AT_TIMESTAMP future", StartingPosition{Type: AtTimestamp, Timestamp: time.Now().Add(time.Hour)}, 0},
	}
	for _, p := range positions {
		t.Run(p.name, func(t *testing.T) {
			it, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: s0.ShardID, StartingPosition: p.pos})
			require.NoError(t, err)
			out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			require.NoError(t, err)
			assert.Len(t, out.Records, p.n)
			assert.True(t, out.NextShardIterator.IsZero())
			assert.Equal(t, wantSplit, out.ChildShards)
		})
	}

	t.Run("open shard", func(t *testing.T) {
		recs, children, ended := reshardReadShard(t, s, reshardID(1), 0)
		assert.Empty(t, recs)
		assert.Empty(t, children)
		assert.False(t, ended)
	})

	t.Run("merge child", func(t *testing.T) {
		require.NoError(t, s.MergeShards(ctx, reshardID(3), reshardID(2)))
		want := []ChildShard{{ShardID: reshardID(4), ParentShards: []string{reshardID(3), reshardID(2)}, HashKeyRange: s0.HashKeyRange}}
		for _, id := range []string{reshardID(2), reshardID(3)} {
			recs, children, ended := reshardReadShard(t, s, id, 0)
			assert.Empty(t, recs)
			assert.True(t, ended)
			assert.Equal(t, want, children, "ChildShards at the end of %s", id)
		}
	})

	t.Run("records iterator", func(t *testing.T) {
		var got []SequenceNumber
		for r, err := range s.Records(ctx, s0.ShardID, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			got = append(got, r.SequenceNumber)
		}
		assert.Equal(t, seqs, got)
	})
}

// A closed shard stays readable while its data is retained; once its
// records have expired it disappears from ListShards.
func TestReshardClosedShardReadableUntilExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		const retention = time.Hour
		c := NewCluster(WithSweepInterval(time.Minute))
		defer c.Close()
		s, err := c.CreateStream(ctx, "expiring", WithShardCount(2), WithRetention(retention))
		require.NoError(t, err)
		start := time.Now()
		s0 := reshardOpen(t, s)[0]
		w := reshardPut(t, s, "k", "old", s0.HashKeyRange.StartingHashKey.String())
		time.Sleep(10 * time.Minute)
		require.NoError(t, s.SplitShard(ctx, s0.ShardID, reshardMid(t, s0))) // closed at 10m: shards 2, 3
		time.Sleep(10 * time.Minute)
		require.NoError(t, s.SplitShard(ctx, reshardID(2), reshardMid(t, reshardFind(t, reshardOpen(t, s), reshardID(2))))) // no records, closed at 20m
		at := func(d time.Duration) {
			time.Sleep(start.Add(d).Sub(time.Now()))
			synctest.Wait()
		}
		listed := func() []string { return reshardIDs(reshardList(t, s, ShardFilter{})) }

		at(retention - time.Millisecond) // the record is about to expire
		assert.Contains(t, listed(), s0.ShardID)
		var got []string
		for r, err := range s.Records(ctx, s0.ShardID, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			got = append(got, string(r.Data))
			assert.Equal(t, w.SequenceNumber, r.SequenceNumber)
		}
		assert.Equal(t, []string{"old"}, got)

		at(retention + time.Minute) // expired: nothing to read, but the end still names the children
		recs, children, ended := reshardReadShard(t, s, s0.ShardID, 0)
		assert.Empty(t, recs)
		assert.True(t, ended)
		assert.Equal(t, []string{reshardID(2), reshardID(3)}, []string{children[0].ShardID, children[1].ShardID})

		// By closing time + retention + one sweep, the shard is gone.
		at(10*time.Minute + retention - 30*time.Second)
		assert.Contains(t, listed(), s0.ShardID)
		it, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: s0.ShardID, StartingPosition: StartingPosition{Type: TrimHorizon}})
		require.NoError(t, err)
		at(10*time.Minute + retention + time.Minute)
		assert.Equal(t, []string{reshardID(1), reshardID(2), reshardID(3), reshardID(4), reshardID(5)}, listed())
		_, err = s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: s0.ShardID, StartingPosition: StartingPosition{Type: TrimHorizon}})
		reshardErr(t, err, ErrResourceNotFound, s0.ShardID)
		_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
		reshardErr(t, err, ErrResourceNotFound, s0.ShardID)
		reshardErr(t, s.SplitShard(ctx, s0.ShardID, reshardMid(t, s0)), ErrResourceNotFound, s0.ShardID)
		// Children whose parent expired are readable at once.
		ready := ReadableShards(reshardList(t, s, ShardFilter{}), func(string) bool { return false })
		assert.Equal(t, []string{reshardID(1), reshardID(2), reshardID(3)}, reshardIDs(ready))

		at(20*time.Minute + retention + time.Minute)
		assert.Equal(t, []string{reshardID(1), reshardID(3), reshardID(4), reshardID(5)}, listed())
		for _, f := range []ShardFilterType{FilterFromTrimHorizon, FilterAtTrimHorizon, FilterAtLatest} {
			assert.NotContains(t, reshardIDs(reshardList(t, s, ShardFilter{Type: f})), reshardID(2), "filter %s", f)
		}
	})
}

func TestReshardReadableShards(t *testing.T) {
	sh := func(id, parent, adjacent string) Shard {
		return Shard{ShardID: id, ParentShardID: parent, AdjacentParentShardID: adjacent}
	}
	listing := []Shard{
		sh("a", "", ""), sh("b", "", ""), sh("c", "a", ""), sh("d", "a", ""),
		sh("e", "d", "b"), sh("f", "gone", ""), sh("g", "e", ""),
	}
	tests := []struct {
		name     string
		finished []string
		want     []string
	}{
		{"none finished", nil, []string{"a", "b", "f"}},
		{"a finished", []string{"a"}, []string{"b", "c", "d", "f"}},
		{"one parent of a merge", []string{"a", "d"}, []string{"b", "c", "f"}},
		{"both parents of a merge", []string{"a", "b", "d"}, []string{"c", "e", "f"}},
		{"all but the last", []string{"a", "b", "c", "d", "e", "f"}, []string{"g"}},
		{"all", []string{"a", "b", "c", "d", "e", "f", "g"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReadableShards(listing, func(id string) bool { return slices.Contains(tt.finished, id) })
			assert.Equal(t, tt.want, reshardIDs(got))
		})
	}
}

// reshardWrite is one successful write: the record's per-key counter and
// where the stream stored it.
type reshardWrite struct {
	n     int
	seq   SequenceNumber
	shard string
}

// reshardLog holds each partition key's successful writes in write order.
type reshardLog map[string][]reshardWrite

// reshardData is a record's payload: its key and per-key counter.
func reshardData(key string, n int) string { return key + "#" + strconv.Itoa(n) }

// reshardShardRead is one shard as a reader read it.
type reshardShardRead struct {
	shard   Shard
	records []Record
}

// reshardReport is what reshardCheck found.
type reshardReport struct {
	written, read          int
	writtenSum, readSum    uint64
	missing, duplicates    int
	extra, inversions      int
	seqDisorder, lineage   int
	wrongSeq, wrongPayload int
	problems               []string
}

func (r *reshardReport) problem(format string, args ...any) {
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

func (r reshardReport) clean() bool {
	return r.missing+r.duplicates+r.extra+r.inversions+r.seqDisorder+r.lineage+r.wrongSeq+r.wrongPayload == 0 &&
		r.written == r.read && r.writtenSum == r.readSum
}

func reshardSum(data []byte) uint64 {
	h := fnv.New64a()
	h.Write(data)
	return h.Sum64()
}

// reshardCheck compares what was written with what a reader read, in the
// order it read the shards: every record exactly once and nothing else, each
// key's records in write order, sequence numbers increasing in each shard
// and children's numbers above their parents'.
func reshardCheck(log reshardLog, reads []reshardShardRead) reshardReport {
	var r reshardReport
	type rec struct {
		seq   SequenceNumber
		shard string
	}
	want := map[string]rec{}
	for key, ws := range log {
		for _, w := range ws {
			d := reshardData(key, w.n)
			want[d] = rec{w.seq, w.shard}
			r.written++
			r.writtenSum += reshardSum([]byte(d))
		}
	}
	seen := map[string]bool{}
	lastN := map[string]int{}
	type span struct{ lo, hi SequenceNumber }
	spans := map[string]span{}
	for _, sr := range reads {
		id := sr.shard.ShardID
		var prev SequenceNumber
		for _, rc := range sr.records {
			d := string(rc.Data)
			r.read++
			r.readSum += reshardSum(rc.Data)
			if !prev.IsZero() && rc.SequenceNumber.Cmp(prev) <= 0 {
				r.seqDisorder++
				r.problem("shard %s: %s after %s", id, rc.SequenceNumber, prev)
			}
			prev = rc.SequenceNumber
			sp, ok := spans[id]
			if !ok {
				sp.lo = rc.SequenceNumber
			}
			sp.hi = rc.SequenceNumber
			spans[id] = sp
			key, num, found := strings.Cut(d, "#")
			n, err := strconv.Atoi(num)
			if !found || err != nil || key != rc.PartitionKey {
				r.wrongPayload++
				r.problem("shard %s: record %s has key %q and data %q", id, rc.SequenceNumber, rc.PartitionKey, d)
				continue
			}
			w, ok := want[d]
			switch {
			case !ok:
				r.extra++
				r.problem("shard %s: %q was never written", id, d)
				continue
			case seen[d]:
				r.duplicates++
				r.problem("shard %s: %q read twice", id, d)
				continue
			}
			seen[d] = true
			if w.seq != rc.SequenceNumber || w.shard != id {
				r.wrongSeq++
				r.problem("%q was stored as %s in %s but read as %s in %s", d, w.seq, w.shard, rc.SequenceNumber, id)
			}
			if last, ok := lastN[key]; ok && n < last {
				r.inversions++
				r.problem("key %s: %d read after %d (shard %s)", key, n, last, id)
			}
			lastN[key] = max(lastN[key], n)
		}
	}
	for d := range want {
		if !seen[d] {
			r.missing++
			r.problem("%q was not read", d)
		}
	}
	for _, sr := range reads {
		child, ok := spans[sr.shard.ShardID]
		if !ok {
			continue
		}
		for _, par := range []string{sr.shard.ParentShardID, sr.shard.AdjacentParentShardID} {
			if p, ok := spans[par]; ok && child.lo.Cmp(p.hi) <= 0 {
				r.lineage++
				r.problem("child %s starts at %s, not above parent %s's %s", sr.shard.ShardID, child.lo, par, p.hi)
			}
		}
	}
	return r
}

// reshardReadLineage reads every shard in lineage order: it lists the
// shards, reads those ReadableShards allows to their end, and repeats until
// every listed shard is finished. It checks each closed shard's ChildShards
// against the listing.
func reshardReadLineage(t testing.TB, s *Stream, rng *rand.Rand) []reshardShardRead {
	t.Helper()
	finished := map[string]bool{}
	var reads []reshardShardRead
	for {
		all := reshardList(t, s, ShardFilter{})
		ready := ReadableShards(all, func(id string) bool { return finished[id] })
		if len(ready) == 0 {
			for _, sh := range all {
				require.Truef(t, finished[sh.ShardID], "shard %s is not finished but not readable either", sh.ShardID)
			}
			return reads
		}
		for _, sh := range ready {
			recs, children, ended := reshardReadShard(t, s, sh.ShardID, 1+rng.IntN(300))
			assert.Equal(t, !sh.Open(), ended, "shard %s", sh.ShardID)
			var want []string
			for _, o := range all {
				if o.ParentShardID == sh.ShardID || o.AdjacentParentShardID == sh.ShardID {
					want = append(want, o.ShardID)
				}
			}
			var got []string
			for _, ch := range children {
				got = append(got, ch.ShardID)
				assert.Contains(t, ch.ParentShards, sh.ShardID)
				assert.Equal(t, reshardFind(t, all, ch.ShardID).HashKeyRange, ch.HashKeyRange)
			}
			assert.Equal(t, want, got, "ChildShards of %s", sh.ShardID)
			reads = append(reads, reshardShardRead{shard: sh, records: recs})
			finished[sh.ShardID] = true
		}
	}
}

// reshardReadReverse ignores lineage: it reads the shards in reverse id
// order, children before parents.
func reshardReadReverse(t testing.TB, s *Stream) []reshardShardRead {
	t.Helper()
	all := reshardList(t, s, ShardFilter{})
	slices.Reverse(all)
	var reads []reshardShardRead
	for _, sh := range all {
		var recs []Record
		for r, err := range s.Records(context.Background(), sh.ShardID, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			recs = append(recs, r)
		}
		reads = append(reads, reshardShardRead{shard: sh, records: recs})
	}
	return reads
}

// TestReshardLineageProperty writes from several goroutines while another
// reshards over and over, then reads in lineage order: every record comes
// out once, in write order per key, with increasing sequence numbers. A
// reader that ignores lineage, on the same data, sees order inversions.
func TestReshardLineageProperty(t *testing.T) {
	for _, seed := range []uint64{20240601, 1, 42} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { reshardLineageProperty(t, seed) })
	}
}

func reshardLineageProperty(t *testing.T, seed uint64) {
	const (
		writers = 4
		keys    = 48
		ops     = 30
		perOp   = 150 // records written between two reshard operations
	)
	ctx := t.Context()
	_, s := reshardStream(t, WithShardCount(4), WithLimits(Unlimited()), WithUpdateShardCountLimit(0))
	// Each key belongs to one writer, so its counter order is its write order.
	owned := make([][]string, writers)
	for k := range keys {
		owned[k%writers] = append(owned[k%writers], fmt.Sprintf("key-%02d", k))
	}
	logs := make([]reshardLog, writers)
	// Writers stay at most two rounds ahead of the resharder, so that each
	// operation meets writes in flight and the data stays small.
	var total, budget atomic.Int64
	budget.Store(2 * perOp)
	var failed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		logs[w] = reshardLog{}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			log, mine := logs[w], owned[w]
			next := map[string]int{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if total.Load() >= budget.Load() {
					runtime.Gosched() // far enough ahead of the resharder
					continue
				}
				if rng.IntN(3) == 0 {
					key := mine[rng.IntN(len(mine))]
					n := next[key]
					next[key]++
					out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: key, Data: []byte(reshardData(key, n))})
					if err != nil {
						t.Errorf("writer %d: PutRecord: %v", w, err)
						failed.Store(true)
						return
					}
					log[key] = append(log[key], reshardWrite{n: n, seq: out.SequenceNumber, shard: out.ShardID})
					total.Add(1)
					continue
				}
				batch := make([]PutRecordsEntry, 1+rng.IntN(40))
				ns := make([]int, len(batch))
				for i := range batch {
					key := mine[rng.IntN(len(mine))]
					ns[i] = next[key]
					next[key]++
					batch[i] = PutRecordsEntry{PartitionKey: key, Data: []byte(reshardData(key, ns[i]))}
				}
				out, err := s.PutRecords(ctx, PutRecordsInput{Records: batch})
				if err != nil || out.FailedRecordCount > 0 {
					t.Errorf("writer %d: PutRecords: %v, %d failed", w, err, out.FailedRecordCount)
					failed.Store(true)
					return
				}
				for i, res := range out.Records {
					key := batch[i].PartitionKey
					log[key] = append(log[key], reshardWrite{n: ns[i], seq: res.SequenceNumber, shard: res.ShardID})
				}
				total.Add(int64(len(batch)))
			}
		})
	}
	func() {
		defer func() { close(stop); wg.Wait() }()
		rng := rand.New(rand.NewPCG(seed, 99))
		kinds := map[string]int{}
		for range ops {
			target := total.Load() + perOp
			budget.Store(target + 2*perOp)
			for total.Load() < target && !failed.Load() {
				runtime.Gosched()
			}
			if failed.Load() {
				return
			}
			kinds[reshardRandomOp(t, s, rng)]++
			reshardCheckTiling(t, reshardOpen(t, s))
		}
		t.Logf("reshard operations: %v", kinds)
	}()
	require.False(t, failed.Load())

	log := reshardLog{}
	for _, l := range logs {
		for k, ws := range l {
			log[k] = ws
		}
	}
	all := reshardList(t, s, ShardFilter{})
	reshardCheckLineage(t, all)

	rng := rand.New(rand.NewPCG(seed, 7))
	rep := reshardCheck(log, reshardReadLineage(t, s, rng))
	t.Logf("%d shards, %d records written, %d read in lineage order", len(all), rep.written, rep.read)
	assert.True(t, rep.clean(), "lineage reader: %+v", rep)
	assert.Equal(t, rep.written, rep.read)
	assert.Equal(t, rep.writtenSum, rep.readSum, "checksum")
	assert.Positive(t, rep.written)

	naive := reshardCheck(log, reshardReadReverse(t, s))
	t.Logf("reverse-order reader: %d inversions", naive.inversions)
	assert.Positive(t, naive.inversions, "the checker should see the reverse reader's inversions")
	assert.Zero(t, naive.missing+naive.duplicates+naive.extra+naive.seqDisorder+naive.lineage)
	assert.Equal(t, naive.writtenSum, naive.readSum)
}

// reshardRandomOp performs a random split, merge or UpdateShardCount that
// keeps the stream between 1 and 32 open shards, and names it.
// reshardSplitKey picks a random key at which SplitShard accepts to split
// sh, or false if the shard is too narrow to split.
func reshardSplitKey(t testing.TB, rng *rand.Rand, sh Shard) (HashKey, bool) {
	lo := reshardAdd(sh.HashKeyRange.StartingHashKey, 2)                     // the lowest key SplitShard accepts
	width := new(big.Int).Sub(reshardBig(sh.HashKeyRange.EndingHashKey), lo) // keys in [lo, end−1]
	if width.Sign() <= 0 {
		return HashKey{}, false
	}
	r := new(big.Int).Lsh(new(big.Int).SetUint64(rng.Uint64()), 64)
	r.Or(r, new(big.Int).SetUint64(rng.Uint64()))
	return reshardKey(t, r.Mod(r, width).Add(r, lo)), true
}

func reshardRandomOp(t testing.TB, s *Stream, rng *rand.Rand) string {
	t.Helper()
	ctx := context.Background()
	open := reshardOpen(t, s)
	for {
		switch rng.IntN(3) {
		case 0: // split at a random valid key
			if len(open) >= 32 {
				continue
			}
			sh := open[rng.IntN(len(open))]
			key, ok := reshardSplitKey(t, rng, sh)
			if !ok {
				continue
			}
			require.NoError(t, s.SplitShard(ctx, sh.ShardID, key))
			return "split"
		case 1: // merge a random adjacent pair, in either order
			if len(open) < 2 {
				continue
			}
			i := rng.IntN(len(open) - 1)
			a, b := open[i].ShardID, open[i+1].ShardID
			if rng.IntN(2) == 0 {
				a, b = b, a
			}
			require.NoError(t, s.MergeShards(ctx, a, b))
			return "merge"
		default:
			cur := len(open)
			lo, hi := (cur+1)/2, min(2*cur, 24)
			target := lo + rng.IntN(hi-lo+1)
			out, err := s.UpdateShardCount(ctx, target)
			require.NoError(t, err)
			require.Equal(t, cur, out.CurrentShardCount)
			reshardCheckEven(t, reshardOpen(t, s), target)
			return "update"
		}
	}
}

// TestReshardNaiveReaderSeesInversion is the control for the checker: a
// reader that reads a child before its parent returns a key's records out of
// write order, and the checker says so.
func TestReshardNaiveReaderSeesInversion(t *testing.T) {
	ctx := t.Context()
	_, s := reshardStream(t, WithShardCount(1), WithLimits(Unlimited()))
	const key = "k"
	log := reshardLog{}
	put := func(n int) {
		out := reshardPut(t, s, key, reshardData(key, n), "")
		log[key] = append(log[key], reshardWrite{n: n, seq: out.SequenceNumber, shard: out.ShardID})
	}
	put(0)
	// Split at the key's own hash key: it moves to the upper child.
	require.NoError(t, s.SplitShard(ctx, reshardID(0), HashKeyOf(key)))
	put(1)
	require.Equal(t, reshardID(2), log[key][1].shard)

	tests := []struct {
		name       string
		read       func() []reshardShardRead
		inversions int
	}{
		{"lineage order", func() []reshardShardRead { return reshardReadLineage(t, s, rand.New(rand.NewPCG(1, 1))) }, 0},
		{"reverse id order", func() []reshardShardRead { return reshardReadReverse(t, s) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := reshardCheck(log, tt.read())
			assert.Equal(t, tt.inversions, rep.inversions, "%+v", rep)
			assert.Equal(t, 2, rep.read)
			assert.Zero(t, rep.missing+rep.duplicates+rep.extra+rep.seqDisorder+rep.lineage+rep.wrongSeq)
		})
	}
}

// TestReshardCheckerDetects makes sure the checker is not blind: each kind
// of damage to a correct read is reported.
func TestReshardCheckerDetects(t *testing.T) {
	_, s := reshardStream(t, WithShardCount(1), WithLimits(Unlimited()))
	log := reshardLog{}
	for n := range 4 {
		out := reshardPut(t, s, "k", reshardData("k", n), "")
		log["k"] = append(log["k"], reshardWrite{n: n, seq: out.SequenceNumber, shard: out.ShardID})
	}
	good := reshardReadLineage(t, s, rand.New(rand.NewPCG(1, 2)))
	require.True(t, reshardCheck(log, good).clean())
	recs := good[0].records
	with := func(rs ...Record) []reshardShardRead {
		return []reshardShardRead{{shard: good[0].shard, records: rs}}
	}
	bogus := recs[0]
	bogus.Data = []byte("k#99")
	tests := []struct {
		name  string
		reads []reshardShardRead
		field func(reshardReport) int
	}{
		{"missing", with(recs[0], recs[1], recs[3]), func(r reshardReport) int { return r.missing }},
		{"duplicate", with(recs[0], recs[1], recs[1], recs[2], recs[3]), func(r reshardReport) int { return r.duplicates }},
		{"extra", with(recs[0], recs[1], recs[2], recs[3], bogus), func(r reshardReport) int { return r.extra }},
		{"sequence disorder", with(recs[0], recs[2], recs[1], recs[3]), func(r reshardReport) int { return r.seqDisorder }},
		{"inversion", with(recs[0], recs[2], recs[1], recs[3]), func(r reshardReport) int { return r.inversions }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := reshardCheck(log, tt.reads)
			assert.False(t, rep.clean())
			assert.Positive(t, tt.field(rep), "%+v", rep)
		})
	}
}
