package runnel

import (
	"context"
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of ListShards: filters, ExclusiveStartShardId, paging and tokens.

// listshardsTimeline builds, in a synctest bubble, a stream with this
// history (times from its creation; retention one hour):
//
//	 0m  created with shards 0 and 1; a record written to shard 0 at 1m
//	10m  shard 0 split into 2 and 3
//	20m  shards 2 and 3 merged into 4 (ShardToMerge 2)
//
// and returns it at 30m with its creation time.
func listshardsTimeline(t *testing.T, c *Cluster) (*Stream, time.Time) {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	s, err := c.CreateStream(ctx, "timeline", WithShardCount(2), WithRetention(time.Hour))
	require.NoError(t, err)
	time.Sleep(time.Minute)
	s0 := reshardOpen(t, s)[0]
	reshardPut(t, s, "k", "in shard 0", s0.HashKeyRange.StartingHashKey.String())
	time.Sleep(9 * time.Minute)
	require.NoError(t, s.SplitShard(ctx, s0.ShardID, reshardMid(t, s0)))
	time.Sleep(10 * time.Minute)
	require.NoError(t, s.MergeShards(ctx, reshardID(2), reshardID(3)))
	time.Sleep(10 * time.Minute)
	return s, start
}

// listshardsIDs lists with in (one page) and returns the ids.
func listshardsIDs(t *testing.T, s *Stream, in ListShardsInput) []string {
	t.Helper()
	out, err := s.ListShards(t.Context(), in)
	require.NoError(t, err)
	assert.Empty(t, out.NextToken)
	return reshardIDs(out.Shards)
}

func TestListShardsFilters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster()
		defer c.Close()
		s, start := listshardsTimeline(t, c)
		id := reshardID
		at := func(d time.Duration) time.Time { return start.Add(d) }

		tests := []struct {
			name string
			in   ListShardsInput
			want []string
		}{
			{"no filter", ListShardsInput{}, []string{id(0), id(1), id(2), id(3), id(4)}},
			{"FROM_TRIM_HORIZON", ListShardsInput{Filter: ShardFilter{Type: FilterFromTrimHorizon}}, []string{id(0), id(1), id(2), id(3), id(4)}},
			{"AT_LATEST", ListShardsInput{Filter: ShardFilter{Type: FilterAtLatest}}, []string{id(1), id(4)}},
			{"AT_TIMESTAMP before the split", ListShardsInput{Filter: ShardFilter{Type: FilterAtTimestamp, Timestamp: at(5 * time.Minute)}}, []string{id(0), id(1)}},
			// As AWS documents it, a shard whose end equals the timestamp counts.
			{"AT_TIMESTAMP at the split", ListShardsInput{Filter: ShardFilter{Type: FilterAtTimestamp, Timestamp: at(10 * time.Minute)}}, []string{id(0), id(1), id(2), id(3)}},
			{"AT_TIMESTAMP between", ListShardsInput{Filter: ShardFilter{Type: FilterAtTimestamp, Timestamp: at(15 * time.Minute)}}, []string{id(1), id(2), id(3)}},
			{"AT_TIMESTAMP after the merge", ListShardsInput{Filter: ShardFilter{Type: FilterAtTimestamp, Timestamp: at(25 * time.Minute)}}, []string{id(1), id(4)}},
			{"AT_TIMESTAMP now", ListShardsInput{Filter: ShardFilter{Type: FilterAtTimestamp, Timestamp: time.Now()}}, []string{id(1), id(4)}},
			{"FROM_TIMESTAMP at creation", ListShardsInput{Filter: ShardFilter{Type: FilterFromTimestamp, Timestamp: at(0)}}, []string{id(0), id(1), id(2), id(3), id(4)}},
			{"FROM_TIMESTAMP between", ListShardsInput{Filter: ShardFilter{Type: FilterFromTimestamp, Timestamp: at(15 * time.Minute)}}, []string{id(1), id(2), id(3), id(4)}},
			{"FROM_TIMESTAMP after the merge", ListShardsInput{Filter: ShardFilter{Type: FilterFromTimestamp, Timestamp: at(25 * time.Minute)}}, []string{id(1), id(4)}},
			{"AFTER_SHARD_ID", ListShardsInput{Filter: ShardFilter{Type: FilterAfterShardID, ShardID: id(2)}}, []string{id(3), id(4)}},
			{"AFTER_SHARD_ID last", ListShardsInput{Filter: ShardFilter{Type: FilterAfterShardID, ShardID: id(4)}}, []string{}},
			{"AFTER_SHARD_ID unknown", ListShardsInput{Filter: ShardFilter{Type: FilterAfterShardID, ShardID: id(99)}}, []string{}},
			{"ExclusiveStartShardId", ListShardsInput{ExclusiveStartShardID: id(1)}, []string{id(2), id(3), id(4)}},
			{"ExclusiveStartShardId and AT_LATEST", ListShardsInput{ExclusiveStartShardID: id(1), Filter: ShardFilter{Type: FilterAtLatest}}, []string{id(4)}},
			{"ExclusiveStartShardId below AFTER_SHARD_ID", ListShardsInput{ExclusiveStartShardID: id(0), Filter: ShardFilter{Type: FilterAfterShardID, ShardID: id(3)}}, []string{id(4)}},
			{"ExclusiveStartShardId above AFTER_SHARD_ID", ListShardsInput{ExclusiveStartShardID: id(3), Filter: ShardFilter{Type: FilterAfterShardID, ShardID: id(0)}}, []string{id(4)}},
		}
		for _, tt := range tests {
			assert.Equal(t, tt.want, listshardsIDs(t, s, tt.in), tt.name)
		}

		// The shards' descriptions.
		all := reshardList(t, s, ShardFilter{})
		merged := reshardFind(t, all, id(4))
		assert.Equal(t, id(2), merged.ParentShardID)
		assert.Equal(t, id(3), merged.AdjacentParentShardID)
		assert.Equal(t, reshardFind(t, all, id(0)).HashKeyRange, merged.HashKeyRange)
		for _, sh := range all {
			assert.Equal(t, sh.ShardID == id(1) || sh.ShardID == id(4), sh.Open(), sh.ShardID)
		}
		reshardCheckLineage(t, all)

		// As the data and the closed shards expire, the trim horizon moves on.
		// At 1h05m the oldest retained time is 5m: shards 0 and 1 were open.
		time.Sleep(35*time.Minute + 30*time.Second)
		synctest.Wait()
		assert.Equal(t, []string{id(0), id(1)}, listshardsIDs(t, s, ListShardsInput{Filter: ShardFilter{Type: FilterAtTrimHorizon}}), "at 1h05m")
		// At 1h15m shard 0 (closed at 10m) has gone; 2 and 3 were open at 15m.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		assert.Equal(t, []string{id(1), id(2), id(3), id(4)}, listshardsIDs(t, s, ListShardsInput{}), "at 1h15m")
		assert.Equal(t, []string{id(1), id(2), id(3)}, listshardsIDs(t, s, ListShardsInput{Filter: ShardFilter{Type: FilterAtTrimHorizon}}), "at 1h15m")
		// At 1h25m only the open shards are left.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		for _, f := range []ShardFilterType{"", FilterFromTrimHorizon, FilterAtTrimHorizon, FilterAtLatest} {
			assert.Equal(t, []string{id(1), id(4)}, listshardsIDs(t, s, ListShardsInput{Filter: ShardFilter{Type: f}}), "at 1h25m, filter %q", f)
		}
	})
}

// A stream younger than its retention period has its trim horizon at its
// creation: AT_TRIM_HORIZON lists the shards it was created with (those that
// hold the oldest data), as Kinesis does.
func TestListShardsAtTrimHorizonYoungStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster()
		defer c.Close()
		s, _ := listshardsTimeline(t, c) // 30 minutes old, retention one hour
		assert.Equal(t, []string{reshardID(0), reshardID(1)},
			listshardsIDs(t, s, ListShardsInput{Filter: ShardFilter{Type: FilterAtTrimHorizon}}))

		young, err := c.CreateStream(t.Context(), "young", WithShardCount(3))
		require.NoError(t, err)
		assert.Equal(t, []string{reshardID(0), reshardID(1), reshardID(2)},
			listshardsIDs(t, young, ListShardsInput{Filter: ShardFilter{Type: FilterAtTrimHorizon}}))
	})
}

func TestListShardsFilterPaging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster()
		defer c.Close()
		s, start := listshardsTimeline(t, c)
		id := reshardID
		tests := []struct {
			name  string
			in    ListShardsInput
			pages [][]string
		}{
			{"2 per page", ListShardsInput{MaxResults: 2}, [][]string{{id(0), id(1)}, {id(2), id(3)}, {id(4)}}},
			{"4 per page", ListShardsInput{MaxResults: 4}, [][]string{{id(0), id(1), id(2), id(3)}, {id(4)}}},
			{"exactly all", ListShardsInput{MaxResults: 5}, [][]string{{id(0), id(1), id(2), id(3), id(4)}}},
			{"1 per page", ListShardsInput{MaxResults: 1}, [][]string{{id(0)}, {id(1)}, {id(2)}, {id(3)}, {id(4)}}},
			{"AT_LATEST keeps its filter", ListShardsInput{MaxResults: 1, Filter: ShardFilter{Type: FilterAtLatest}}, [][]string{{id(1)}, {id(4)}}},
			{"FROM_TIMESTAMP keeps its timestamp", ListShardsInput{MaxResults: 2, Filter: ShardFilter{Type: FilterFromTimestamp, Timestamp: start.Add(15 * time.Minute)}},
				[][]string{{id(1), id(2)}, {id(3), id(4)}}},
			{"AT_TIMESTAMP keeps its timestamp", ListShardsInput{MaxResults: 2, Filter: ShardFilter{Type: FilterAtTimestamp, Timestamp: start.Add(15 * time.Minute)}},
				[][]string{{id(1), id(2)}, {id(3)}}},
			{"AFTER_SHARD_ID keeps its shard", ListShardsInput{MaxResults: 2, Filter: ShardFilter{Type: FilterAfterShardID, ShardID: id(0)}},
				[][]string{{id(1), id(2)}, {id(3), id(4)}}},
			{"ExclusiveStartShardId", ListShardsInput{MaxResults: 2, ExclusiveStartShardID: id(0)}, [][]string{{id(1), id(2)}, {id(3), id(4)}}},
		}
		for _, tt := range tests {
			out, err := s.ListShards(t.Context(), tt.in)
			require.NoError(t, err, tt.name)
			var pages [][]string
			for {
				pages = append(pages, reshardIDs(out.Shards))
				if out.NextToken == "" {
					break
				}
				time.Sleep(time.Minute) // tokens outlive a pause
				out, err = s.ListShards(t.Context(), ListShardsInput{NextToken: out.NextToken, MaxResults: tt.in.MaxResults})
				require.NoError(t, err, tt.name)
			}
			assert.Equal(t, tt.pages, pages, tt.name)
		}
	})
}

func TestListShardsDefaultPageSize(t *testing.T) {
	_, s := reshardStream(t, WithShardCount(1001))
	out, err := s.ListShards(t.Context(), ListShardsInput{})
	require.NoError(t, err)
	require.Len(t, out.Shards, 1000)
	assert.NotEmpty(t, out.NextToken)
	out, err = s.ListShards(t.Context(), ListShardsInput{NextToken: out.NextToken})
	require.NoError(t, err)
	assert.Equal(t, []string{reshardID(1000)}, reshardIDs(out.Shards))
	assert.Empty(t, out.NextToken)
	out, err = s.ListShards(t.Context(), ListShardsInput{MaxResults: 10_000})
	require.NoError(t, err)
	assert.Len(t, out.Shards, 1001)
	assert.Empty(t, out.NextToken)
}

// The pages after a NextToken continue the first page's snapshot: a shard
// created between two pages is not listed, and a shard closed between them
// is still listed open, so the full listing tiles the hash space. A new
// listing sees the reshard.
func TestListShardsPagingKeepsItsSnapshot(t *testing.T) {
	ctx := t.Context()
	_, s := reshardStream(t, WithShardCount(3))
	out, err := s.ListShards(ctx, ListShardsInput{MaxResults: 2})
	require.NoError(t, err)
	require.Equal(t, []string{reshardID(0), reshardID(1)}, reshardIDs(out.Shards))
	first := out.Shards
	last := reshardOpen(t, s)[2]
	require.NoError(t, s.SplitShard(ctx, last.ShardID, reshardMid(t, last)))
	out, err = s.ListShards(ctx, ListShardsInput{NextToken: out.NextToken, MaxResults: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{reshardID(2)}, reshardIDs(out.Shards))
	require.Len(t, out.Shards, 1)
	assert.True(t, out.Shards[0].Open(), "closed after the snapshot: still open in it")
	assertTiles(t, append(first, out.Shards...))

	fresh, err := s.ListShards(ctx, ListShardsInput{})
	require.NoError(t, err)
	assert.Equal(t, []string{reshardID(0), reshardID(1), reshardID(2), reshardID(3), reshardID(4)}, reshardIDs(fresh.Shards))
	assertTiles(t, fresh.Shards)
}

func TestListShardsNextTokenExpiry(t *testing.T) {
	tests := []struct {
		name string
		wait time.Duration
		err  error
	}{
		{"fresh", 0, nil},
		{"299 s", 299 * time.Second, nil},
		{"300 s", 300 * time.Second, nil},
		{"301 s", 301 * time.Second, ErrExpiredNextToken},
		{"an hour", time.Hour, ErrExpiredNextToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := NewCluster()
				defer c.Close()
				s, err := c.CreateStream(t.Context(), "tokens", WithShardCount(3))
				require.NoError(t, err)
				out, err := s.ListShards(t.Context(), ListShardsInput{MaxResults: 1})
				require.NoError(t, err)
				require.NotEmpty(t, out.NextToken)
				time.Sleep(tt.wait)
				next, err := s.ListShards(t.Context(), ListShardsInput{NextToken: out.NextToken})
				if tt.err == nil {
					require.NoError(t, err)
					assert.Equal(t, []string{reshardID(1), reshardID(2)}, reshardIDs(next.Shards))
					return
				}
				reshardErr(t, err, tt.err, tt.wait.String()) // the token's age
			})
		})
	}
}

func TestListShardsInputErrors(t *testing.T) {
	ctx := t.Context()
	c, s := reshardStream(t, WithShardCount(3))
	other, err := c.CreateStream(ctx, "other", WithShardCount(3))
	require.NoError(t, err)
	page, err := s.ListShards(ctx, ListShardsInput{MaxResults: 1})
	require.NoError(t, err)
	token := page.NextToken
	require.NotEmpty(t, token)
	otherPage, err := other.ListShards(ctx, ListShardsInput{MaxResults: 1})
	require.NoError(t, err)

	tests := []struct {
		name      string
		in        ListShardsInput
		kind      error
		mentioned []string
	}{
		{"NextToken with a filter", ListShardsInput{NextToken: token, Filter: ShardFilter{Type: FilterAtLatest}}, ErrInvalidArgument, []string{"ShardFilter"}},
		{"NextToken with AFTER_SHARD_ID", ListShardsInput{NextToken: token, Filter: ShardFilter{Type: FilterAfterShardID, ShardID: reshardID(0)}}, ErrInvalidArgument, []string{"ShardFilter"}},
		{"NextToken with ExclusiveStartShardId", ListShardsInput{NextToken: token, ExclusiveStartShardID: reshardID(0)}, ErrInvalidArgument, []string{"ExclusiveStartShardId"}},
		{"garbage NextToken", ListShardsInput{NextToken: "garbage"}, ErrInvalidArgument, []string{"garbage"}},
		{"damaged NextToken", ListShardsInput{NextToken: token[:len(token)-2] + "AA"}, ErrInvalidArgument, []string{token[:10]}},
		{"another stream's NextToken", ListShardsInput{NextToken: otherPage.NextToken}, ErrInvalidArgument, []string{s.Name()}},
		{"MaxResults above 10,000", ListShardsInput{MaxResults: 10_001}, ErrValidation, []string{"10001"}},
		{"negative MaxResults", ListShardsInput{MaxResults: -1}, ErrValidation, []string{"-1"}},
		{"unknown filter", ListShardsInput{Filter: ShardFilter{Type: "SOMETIMES"}}, ErrValidation, []string{"SOMETIMES"}},
		{"AT_TIMESTAMP without a timestamp", ListShardsInput{Filter: ShardFilter{Type: FilterAtTimestamp}}, ErrInvalidArgument, []string{"AT_TIMESTAMP"}},
		{"FROM_TIMESTAMP without a timestamp", ListShardsInput{Filter: ShardFilter{Type: FilterFromTimestamp}}, ErrInvalidArgument, []string{"FROM_TIMESTAMP"}},
		{"AFTER_SHARD_ID malformed", ListShardsInput{Filter: ShardFilter{Type: FilterAfterShardID, ShardID: "shard-7"}}, ErrResourceNotFound, []string{"shard-7"}},
		{"ExclusiveStartShardId malformed", ListShardsInput{ExclusiveStartShardID: "shard-8"}, ErrResourceNotFound, []string{"shard-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ListShards(ctx, tt.in)
			reshardErr(t, err, tt.kind, tt.mentioned...)
		})
	}

	t.Run("deleted stream", func(t *testing.T) {
		require.NoError(t, c.DeleteStream(ctx, other.Name()))
		_, err := other.ListShards(ctx, ListShardsInput{})
		reshardErr(t, err, ErrResourceNotFound, other.Name())
	})
	t.Run("closed cluster", func(t *testing.T) {
		require.NoError(t, c.Close())
		_, err := s.ListShards(context.Background(), ListShardsInput{})
		assert.ErrorIs(t, err, ErrClosed)
	})
}

// ListShards lists a closed shard only until its data has expired (closing
// time + retention), whether or not the background sweep has run since: here
// the sweep is a day away, and a write has touched the stream.
func TestListShardsOmitsExpiredClosedShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		c := NewCluster(WithSweepInterval(24 * time.Hour))
		defer c.Close()
		s, err := c.CreateStream(ctx, "lazy", WithShardCount(1), WithRetention(time.Hour))
		require.NoError(t, err)
		reshardPut(t, s, "k", "old", "")
		time.Sleep(10 * time.Minute)
		sh := reshardOpen(t, s)[0]
		require.NoError(t, s.SplitShard(ctx, sh.ShardID, reshardMid(t, sh)))
		time.Sleep(2 * time.Hour) // the parent closed 1h50m ago; its record is 2h10m old
		reshardPut(t, s, "k", "new", "")
		for _, f := range []ShardFilterType{"", FilterFromTrimHorizon} {
			assert.Equal(t, []string{reshardID(1), reshardID(2)}, listshardsIDs(t, s, ListShardsInput{Filter: ShardFilter{Type: f}}), "filter %q", f)
		}
	})
}

// assertTiles checks that the open shards of a listing cover the hash space
// 0…2^128−1 exactly, with no gap and no overlap (computed with math/big,
// independently of the code under test).
func assertTiles(t *testing.T, shards []Shard) {
	t.Helper()
	var open []Shard
	for _, sh := range shards {
		if sh.Open() {
			open = append(open, sh)
		}
	}
	require.NotEmpty(t, open, "the listing has no open shard")
	slices.SortFunc(open, func(a, b Shard) int { return a.HashKeyRange.StartingHashKey.Cmp(b.HashKeyRange.StartingHashKey) })
	next := new(big.Int)
	for _, sh := range open {
		start := bigKey(t, sh.HashKeyRange.StartingHashKey)
		require.Zero(t, next.Cmp(start), "open shard %s starts at %s, want %s (gap or overlap)", sh.ShardID, start, next)
		next = new(big.Int).Add(bigKey(t, sh.HashKeyRange.EndingHashKey), big.NewInt(1))
	}
	require.Zero(t, twoTo128.Cmp(next), "the open shards end at %s, want 2^128-1", new(big.Int).Sub(next, big.NewInt(1)))
}

// TestListShardsConsistentWhileResharding lists the shards, with every
// filter that includes all open shards and with random page sizes, while
// the stream scales between 4 and 8 shards: every full listing's open
// shards tile the hash space, and producers created meanwhile (which list
// the shards too) start.
func TestListShardsConsistentWhileResharding(t *testing.T) {
	ctx := t.Context()
	_, s := reshardStream(t, WithShardCount(4), WithUpdateShardCountLimit(0), WithLimits(Unlimited()))
	const reshards = 150
	done := make(chan struct{})
	var wg sync.WaitGroup
	var listings, producers atomic.Int64
	wg.Go(func() {
		defer close(done)
		// Reshard at least 150 times, and until the others have had turns.
		for i := 0; i < reshards || (i < 20*reshards && (listings.Load() < 20 || producers.Load() < 3)); i++ {
			target := 8
			if i%2 == 1 {
				target = 4
			}
			if _, err := s.UpdateShardCount(ctx, target); !assert.NoError(t, err) {
				return
			}
		}
	})
	filters := []ShardFilter{{}, {Type: FilterFromTrimHorizon}, {Type: FilterAtLatest}, {Type: FilterFromTimestamp, Timestamp: time.Now()}}
	for g := range 2 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				in := ListShardsInput{Filter: filters[r.IntN(len(filters))], MaxResults: 1 + r.IntN(10)}
				var all []Shard
				for {
					out, err := s.ListShards(ctx, in)
					if !assert.NoError(t, err) {
						return
					}
					all = append(all, out.Shards...)
					if out.NextToken == "" {
						break
					}
					in = ListShardsInput{NextToken: out.NextToken, MaxResults: 1 + r.IntN(10)}
				}
				assertTiles(t, all)
				listings.Add(1)
			}
		})
	}
	wg.Go(func() {
		for generic := false; ; generic = !generic {
			select {
			case <-done:
				return
			default:
			}
			p, err := NewProducer(ctx, s, WithGenericPath(generic))
			if !assert.NoError(t, err, "NewProducer while the stream reshards") {
				return
			}
			assert.NoError(t, p.Close(ctx))
			producers.Add(1)
		}
	})
	wg.Wait()
	assert.Positive(t, listings.Load())
	assert.Positive(t, producers.Load())
}

// TestListShardsSnapshotSurvivesExpiry: a shard open in a NextToken's
// snapshot stays in the pages that follow even when it closes and all its
// records expire between the pages (retention shorter than the token's
// life), so the listing still tiles the hash space.
func TestListShardsSnapshotSurvivesExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		c := NewCluster(WithSweepInterval(time.Second))
		defer c.Close()
		s, err := c.CreateStream(ctx, "short", WithShardCount(3), WithRetention(time.Second))
		require.NoError(t, err)
		first, err := s.ListShards(ctx, ListShardsInput{MaxResults: 2})
		require.NoError(t, err)
		last := reshardOpen(t, s)[2]
		require.NoError(t, s.SplitShard(ctx, last.ShardID, reshardMid(t, last)))
		time.Sleep(10 * time.Second) // the closed shard's data (none) has expired; sweeps ran
		synctest.Wait()
		rest, err := s.ListShards(ctx, ListShardsInput{NextToken: first.NextToken})
		require.NoError(t, err)
		assertTiles(t, append(first.Shards, rest.Shards...))
		fresh, err := s.ListShards(ctx, ListShardsInput{})
		require.NoError(t, err)
		assert.NotContains(t, reshardIDs(fresh.Shards), last.ShardID, "a new listing no longer shows the expired shard")
		assertTiles(t, fresh.Shards)
		_, err = s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: last.ShardID, StartingPosition: StartingPosition{Type: TrimHorizon}})
		assert.ErrorIs(t, err, ErrResourceNotFound)
	})
}

// TestStreamOfNextToken shows that a NextToken names its stream, for a
// ListShards request that carries no stream name, and that other tokens are
// refused.
func TestStreamOfNextToken(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(3))
	out, err := s.ListShards(t.Context(), ListShardsInput{MaxResults: 1})
	require.NoError(t, err)
	require.NotEmpty(t, out.NextToken)
	got, err := c.StreamOfNextToken(out.NextToken)
	require.NoError(t, err)
	assert.Same(t, s, got)
	for _, tok := range []string{"", "not-a-token", out.NextToken[:len(out.NextToken)-2]} {
		_, err := c.StreamOfNextToken(tok)
		assert.ErrorIs(t, err, ErrInvalidArgument, "token %q", tok)
	}
	require.NoError(t, c.DeleteStream(t.Context(), s.Name()))
	_, err = c.StreamOfNextToken(out.NextToken)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorContains(t, err, "no longer exists")
}
