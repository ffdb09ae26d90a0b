package runnel

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leaseStores are the LeaseStores of the package, each run through the one
// conformance suite of TestLeaseStore.
var leaseStores = []struct {
	name string
	open func(t *testing.T) LeaseStore
}{
	{"Memory", func(*testing.T) LeaseStore { return NewMemoryLeaseStore() }},
	{"File", func(t *testing.T) LeaseStore { return openTestFileLeaseStore(t, testLeasePath(t)) }},
}

// openTestFileLeaseStore opens a FileLeaseStore, closed when the test ends.
func openTestFileLeaseStore(t testing.TB, path string) *FileLeaseStore {
	t.Helper()
	s, err := OpenFileLeaseStore(path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// testSeq parses a sequence number and fails the test if it does not parse.
func testSeq(t testing.TB, s string) SequenceNumber {
	t.Helper()
	n, err := ParseSequenceNumber(s)
	require.NoError(t, err)
	return n
}

// putLease writes a lease and fails the test on error.
func putLease(t testing.TB, s LeaseStore, l Lease, expect int64) {
	t.Helper()
	require.NoError(t, s.PutLease(context.Background(), l, expect))
}

// listLeases lists the leases and fails the test on error.
func listLeases(t testing.TB, s LeaseStore) []Lease {
	t.Helper()
	ls, err := s.ListLeases(context.Background())
	require.NoError(t, err)
	return ls
}

// leaseCounter returns the counter of a shard's lease, or 0 when there is none.
func leaseCounter(t testing.TB, s LeaseStore, shardID string) int64 {
	t.Helper()
	for _, l := range listLeases(t, s) {
		if l.ShardID == shardID {
			return l.Counter
		}
	}
	return 0
}

// incrementLease bumps the counter of a shard's lease (creating it at 1)
// with one conditional write, and reports whether the write won.
func incrementLease(ctx context.Context, s LeaseStore, shardID, owner string) (bool, error) {
	ls, err := s.ListLeases(ctx)
	if err != nil {
		return false, err
	}
	var cur int64
	for _, l := range ls {
		if l.ShardID == shardID {
			cur = l.Counter
		}
	}
	err = s.PutLease(ctx, Lease{ShardID: shardID, Owner: owner, Counter: cur + 1}, cur)
	if errors.Is(err, ErrLeaseConflict) {
		return false, nil
	}
	return err == nil, err
}

// TestLeaseStore is the conformance suite that every LeaseStore of the
// package passes.
func TestLeaseStore(t *testing.T) {
	for _, st := range leaseStores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("CreateExpectingZero", func(t *testing.T) {
				s := st.open(t)
				assert.Empty(t, listLeases(t, s))
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Owner: "w1", Counter: 1}, 0)
				assert.Equal(t, []Lease{{ShardID: "shardId-000000000000", Owner: "w1", Counter: 1}}, listLeases(t, s))
			})

			t.Run("SecondCreateConflicts", func(t *testing.T) {
				s := st.open(t)
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Owner: "w1", Counter: 1}, 0)
				err := s.PutLease(context.Background(), Lease{ShardID: "shardId-000000000000", Owner: "w2", Counter: 1}, 0)
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrLeaseConflict)
				var e *Error
				assert.ErrorAs(t, err, &e)
				assert.Equal(t, "w1", listLeases(t, s)[0].Owner, "the losing create wrote nothing")
			})

			t.Run("UpdateIsConditionalOnCounter", func(t *testing.T) {
				s := st.open(t)
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Owner: "w1", Counter: 1}, 0)
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Owner: "w1", Counter: 2}, 1)
				for _, expect := range []int64{1, 3, 7} {
					err := s.PutLease(context.Background(), Lease{ShardID: "shardId-000000000000", Owner: "w2", Counter: 9}, expect)
					assert.ErrorIs(t, err, ErrLeaseConflict, "expect %d", expect)
				}
				err := s.PutLease(context.Background(), Lease{ShardID: "shardId-000000000001", Counter: 5}, 4)
				assert.ErrorIs(t, err, ErrLeaseConflict, "a lease that does not exist has no counter 4")
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Owner: "w2", Counter: 10}, 2)
				assert.Equal(t, []Lease{{ShardID: "shardId-000000000000", Owner: "w2", Counter: 10}}, listLeases(t, s))
			})

			t.Run("InvalidWrites", func(t *testing.T) {
				s := st.open(t)
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Counter: 3}, 0)
				for _, tc := range []struct {
					name   string
					lease  Lease
					expect int64
				}{
					{"CounterEqualToExpect", Lease{ShardID: "shardId-000000000000", Counter: 3}, 3},
					{"CounterBelowExpect", Lease{ShardID: "shardId-000000000000", Counter: 2}, 3},
					{"CreateWithCounterZero", Lease{ShardID: "shardId-000000000001", Counter: 0}, 0},
					{"NegativeExpect", Lease{ShardID: "shardId-000000000001", Counter: 1}, -1},
					{"NoShardID", Lease{Counter: 1}, 0},
					{"ShardEndWithSequenceNumber", Lease{ShardID: "shardId-000000000000", Counter: 4,
						Checkpoint: Checkpoint{ShardEnd: true, SequenceNumber: testSeq(t, "12345")}}, 3},
					{"NegativeSubSequenceNumber", Lease{ShardID: "shardId-000000000000", Counter: 4,
						Checkpoint: Checkpoint{SequenceNumber: testSeq(t, "12345"), SubSequenceNumber: -1}}, 3},
					{"NegativeOwnerSwitches", Lease{ShardID: "shardId-000000000000", Counter: 4, OwnerSwitchesSinceCheckpoint: -1}, 3},
					{"HashKeyRangeBackwards", Lease{ShardID: "shardId-000000000000", Counter: 4,
						HashKeyRange: HashKeyRange{StartingHashKey: MaxHashKey(), EndingHashKey: HashKeyOf("a")}}, 3},
				} {
					t.Run(tc.name, func(t *testing.T) {
						err := s.PutLease(context.Background(), tc.lease, tc.expect)
						assert.ErrorIs(t, err, ErrInvalidArgument)
						assert.NotErrorIs(t, err, ErrLeaseConflict)
					})
				}
				assert.Equal(t, []Lease{{ShardID: "shardId-000000000000", Counter: 3}}, listLeases(t, s))
			})

			t.Run("DeleteIsConditionalOnCounter", func(t *testing.T) {
				s := st.open(t)
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Counter: 4}, 0)
				for _, expect := range []int64{0, 3, 5} {
					err := s.DeleteLease(context.Background(), "shardId-000000000000", expect)
					assert.ErrorIs(t, err, ErrLeaseConflict, "expect %d", expect)
				}
				assert.Len(t, listLeases(t, s), 1)
				require.NoError(t, s.DeleteLease(context.Background(), "shardId-000000000000", 4))
				assert.Empty(t, listLeases(t, s))
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Counter: 1}, 0)
				assert.Len(t, listLeases(t, s), 1, "a deleted lease can be created again")
			})

			t.Run("DeleteMissingSucceeds", func(t *testing.T) {
				s := st.open(t)
				require.NoError(t, s.DeleteLease(context.Background(), "shardId-000000000007", 0))
				require.NoError(t, s.DeleteLease(context.Background(), "shardId-000000000007", 12))
				assert.Empty(t, listLeases(t, s))
			})

			t.Run("ListIsSortedAndCopied", func(t *testing.T) {
				s := st.open(t)
				parents := []string{"shardId-000000000000", "shardId-000000000001"}
				for _, id := range []string{"shardId-000000000003", "shardId-000000000001", "shardId-000000000002", "shardId-000000000000"} {
					putLease(t, s, Lease{ShardID: id, Counter: 1, ParentShardIDs: parents}, 0)
				}
				parents[0] = "changed by the caller after the write"
				ls := listLeases(t, s)
				require.Len(t, ls, 4)
				for i, l := range ls {
					assert.Equal(t, "shardId-00000000000"+string(rune('0'+i)), l.ShardID)
					assert.Equal(t, []string{"shardId-000000000000", "shardId-000000000001"}, l.ParentShardIDs)
				}
				ls[0].ParentShardIDs[0] = "changed in a listed lease"
				ls[1].Owner = "changed in a listed lease"
				ls = listLeases(t, s)
				assert.Equal(t, "shardId-000000000000", ls[0].ParentShardIDs[0])
				assert.Empty(t, ls[1].Owner)
			})

			t.Run("EveryFieldKept", func(t *testing.T) {
				s := st.open(t)
				want := []Lease{
					{
						ShardID:        "shardId-000000000002",
						Owner:          "worker-1",
						Counter:        17,
						Checkpoint:     Checkpoint{SequenceNumber: testSeq(t, "49590338271490256608559692538361571095921575989136588898"), SubSequenceNumber: 3},
						ParentShardIDs: []string{"shardId-000000000000", "shardId-000000000001"},
						Start:          StartingPosition{Type: AtTimestamp, Timestamp: time.Date(2026, 12, 1, 8, 30, 0, 123456789, time.UTC)},
					},
					{
						ShardID:                      "shardId-000000000003",
						Counter:                      1 << 62,
						Checkpoint:                   Checkpoint{ShardEnd: true},
						ParentShardIDs:               []string{},
						ChildShardIDs:                []string{"shardId-000000000005", "shardId-000000000006"},
						HashKeyRange:                 HashKeyRange{StartingHashKey: HashKeyOf("a"), EndingHashKey: MaxHashKey()},
						OwnerSwitchesSinceCheckpoint: 3,
						Start:                        StartingPosition{Type: AfterSequenceNumber, SequenceNumber: testSeq(t, "123456789012345678901234567890")},
					},
					{ShardID: "shardId-000000000004", Counter: 2, Start: StartingPosition{Type: TrimHorizon}},
				}
				for _, l := range want {
					putLease(t, s, l, 0)
				}
				assert.Equal(t, want, listLeases(t, s))
			})

			t.Run("CancelledContext", func(t *testing.T) {
				s := st.open(t)
				putLease(t, s, Lease{ShardID: "shardId-000000000000", Counter: 1}, 0)
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_, err := s.ListLeases(ctx)
				assert.ErrorIs(t, err, context.Canceled)
				err = s.PutLease(ctx, Lease{ShardID: "shardId-000000000000", Counter: 2}, 1)
				assert.ErrorIs(t, err, context.Canceled)
				err = s.DeleteLease(ctx, "shardId-000000000000", 1)
				assert.ErrorIs(t, err, context.Canceled)
				var e *Error
				assert.ErrorAs(t, err, &e)
				assert.Equal(t, []Lease{{ShardID: "shardId-000000000000", Counter: 1}}, listLeases(t, s), "nothing was written")
			})

			t.Run("OneWinnerPerRound", func(t *testing.T) {
				// Every round, 8 goroutines write the same lease expecting
				// the same counter: exactly one of them wins.
				s := st.open(t)
				const writers, rounds = 8, 20
				var cur int64
				for round := range rounds {
					var mu sync.Mutex
					wins, conflicts := 0, 0
					var wg sync.WaitGroup
					for w := range writers {
						wg.Go(func() {
							l := Lease{ShardID: "shardId-000000000000", Owner: "w" + string(rune('a'+w)), Counter: cur + 1}
							err := s.PutLease(context.Background(), l, cur)
							mu.Lock()
							defer mu.Unlock()
							switch {
							case err == nil:
								wins++
							case errors.Is(err, ErrLeaseConflict):
								conflicts++
							default:
								t.Errorf("round %d: %v", round, err)
							}
						})
					}
					wg.Wait()
					require.Equal(t, 1, wins, "round %d", round)
					require.Equal(t, writers-1, conflicts, "round %d", round)
					cur++
					require.Equal(t, cur, leaseCounter(t, s, "shardId-000000000000"))
				}
			})

			t.Run("ConcurrentIncrements", func(t *testing.T) {
				// Property: with writers racing read-then-write, the
				// counter ends at the number of writes that succeeded.
				s := st.open(t)
				const writers, each = 8, 10
				var mu sync.Mutex
				total := 0
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						for n := 0; n < each; {
							won, err := incrementLease(context.Background(), s, "shardId-000000000000", "w"+string(rune('a'+w)))
							if err != nil {
								t.Errorf("writer %d: %v", w, err)
								return
							}
							if won {
								n++
								mu.Lock()
								total++
								mu.Unlock()
							}
						}
					})
				}
				wg.Wait()
				assert.Equal(t, writers*each, total)
				assert.Equal(t, int64(total), leaseCounter(t, s, "shardId-000000000000"))
			})
		})
	}
}
