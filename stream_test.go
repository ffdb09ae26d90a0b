package runnel

import (
	"context"
	"crypto/md5"
	"fmt"
	"hash/crc32"
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bigKey converts a hash key to a big.Int through its decimal form.
func bigKey(t *testing.T, k HashKey) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(k.String(), 10)
	require.True(t, ok, "HashKey.String gave %q", k.String())
	return n
}

// randomBig returns a uniformly random integer in [0, 2^128).
func randomBig(rng *rand.Rand) *big.Int {
	hi := new(big.Int).SetUint64(rng.Uint64())
	lo := new(big.Int).SetUint64(rng.Uint64())
	return hi.Lsh(hi, 64).Or(hi, lo)
}

// interestingBigs are edge values of the hash-key space.
func interestingBigs() []*big.Int {
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	ten38 := new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil)
	return []*big.Int{
		big.NewInt(0), big.NewInt(1), big.NewInt(9), big.NewInt(10),
		new(big.Int).Sub(two64, big.NewInt(1)), two64, new(big.Int).Add(two64, big.NewInt(1)),
		new(big.Int).Sub(ten38, big.NewInt(1)), ten38,
		new(big.Int).Rsh(twoTo128, 1), twoTo128Minus1,
	}
}

func TestHashKeyRoundTripAgainstBig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := interestingBigs()
	for range 2000 {
		values = append(values, randomBig(rng))
		// Also keys with few digits, which exercise the one-word path.
		values = append(values, new(big.Int).SetUint64(rng.Uint64N(1<<uint(1+rng.IntN(63)))))
	}
	var prev HashKey
	var prevBig *big.Int
	for _, v := range values {
		text := v.String()
		k, err := ParseHashKey(text)
		require.NoError(t, err, text)
		require.Equal(t, text, k.String())
		if prevBig != nil {
			require.Equal(t, v.Cmp(prevBig), k.Cmp(prev), "Cmp(%s, %s)", text, prevBig)
			require.Equal(t, prevBig.Cmp(v), prev.Cmp(k))
		}
		assert.Zero(t, k.Cmp(k))
		prev, prevBig = k, v
	}
	assert.Equal(t, maxHashKeyText, MaxHashKey().String())
	assert.Equal(t, "0", HashKey{}.String())
}

func TestHashKeyOfMatchesMD5(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, key := range append(randomKeys(rng, 500), "", "a", "日本", strings.Repeat("z", 256)) {
		sum := md5.Sum([]byte(key))
		want := new(big.Int).SetBytes(sum[:])
		assert.Equal(t, want.String(), HashKeyOf(key).String(), "key %q", key)
	}
}

// randomKeys returns n random partition keys of 1 to 256 valid UTF-8
// characters (ASCII, two-, three- and four-byte).
func randomKeys(rng *rand.Rand, n int) []string {
	alphabet := []rune("abcXYZ019_-.:/ éøß日本語🦫😀")
	keys := make([]string, n)
	for i := range keys {
		var b strings.Builder
		for range 1 + rng.IntN(MaxPartitionKeyLength) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		keys[i] = b.String()
	}
	return keys
}

func TestInitialHashRangesTile(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(n))
			out, err := s.ListShards(context.Background(), ListShardsInput{MaxResults: 10_000})
			require.NoError(t, err)
			require.Len(t, out.Shards, n)
			assert.Empty(t, out.NextToken)

			step := new(big.Int).Div(twoTo128, big.NewInt(int64(n)))
			for i, sh := range out.Shards {
				assert.Equal(t, fmt.Sprintf("shardId-%012d", i), sh.ShardID)
				assert.True(t, sh.Open())
				assert.Empty(t, sh.ParentShardID)
				assert.Empty(t, sh.AdjacentParentShardID)
				start := bigKey(t, sh.HashKeyRange.StartingHashKey)
				end := bigKey(t, sh.HashKeyRange.EndingHashKey)
				wantStart := new(big.Int).Mul(step, big.NewInt(int64(i)))
				require.Zero(t, wantStart.Cmp(start), "shard %d starts at %s, want %s", i, start, wantStart)
				if i == n-1 {
					require.Zero(t, twoTo128Minus1.Cmp(end), "the last shard ends at %s", end)
				} else {
					next := bigKey(t, out.Shards[i+1].HashKeyRange.StartingHashKey)
					require.Zero(t, new(big.Int).Add(end, big.NewInt(1)).Cmp(next), "gap or overlap after shard %d", i)
				}
				require.LessOrEqual(t, start.Cmp(end), 0)
			}
		})
	}
}

func TestSplitEvenlyAgainstBig(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	counts := []int{1, 2, 3, 4, 5, 7, 8, 16, 1 << 10, 1000, 9999, 10_000, 20_000}
	for range 200 {
		counts = append(counts, 1+rng.IntN(20_000))
	}
	for _, n := range counts {
		step := new(big.Int).Div(twoTo128, big.NewInt(int64(n)))
		ranges := splitEvenly(n)
		require.Len(t, ranges, n)
		for _, i := range []int{0, 1, n / 2, n - 2, n - 1} {
			if i < 0 || i >= n {
				continue
			}
			want := new(big.Int).Mul(step, big.NewInt(int64(i)))
			require.Equal(t, want.String(), ranges[i].StartingHashKey.String(), "n=%d shard %d", n, i)
			if i < n-1 {
				require.Equal(t, ranges[i+1].StartingHashKey, ranges[i].EndingHashKey.add(1), "n=%d shard %d", n, i)
			}
		}
		require.Equal(t, MaxHashKey(), ranges[n-1].EndingHashKey)
	}
}

func TestRandomHashKeysHitExactlyOneOpenShard(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 3, 7, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(n), WithLimits(Unlimited()))
			out, err := s.ListShards(context.Background(), ListShardsInput{Filter: ShardFilter{Type: FilterAtLatest}})
			require.NoError(t, err)
			keys := interestingBigs()
			for range 1000 {
				keys = append(keys, randomBig(rng))
			}
			for i, b := range keys {
				k, err := ParseHashKey(b.String())
				require.NoError(t, err)
				var hits []string
				for _, sh := range out.Shards {
					if sh.HashKeyRange.Contains(k) {
						hits = append(hits, sh.ShardID)
					}
				}
				require.Len(t, hits, 1, "key %s", b)
				if i%10 == 0 { // the stream routes it to that shard
					put, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", ExplicitHashKey: b.String()})
					require.NoError(t, err)
					require.Equal(t, hits[0], put.ShardID, "key %s", b)
				}
			}
		})
	}
}

// bigRange returns a shard's range as big.Ints.
func bigRange(t *testing.T, r HashKeyRange) (start, end *big.Int) {
	return bigKey(t, r.StartingHashKey), bigKey(t, r.EndingHashKey)
}

func TestRoutingMatchesMD5(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	_, s := newTestStream(t, WithShardCount(7), WithLimits(Unlimited()))
	ranges := make(map[string]HashKeyRange)
	for _, id := range shardIDs(t, s) {
		ranges[id] = shardRange(t, s, id)
	}
	contains := func(id string, k *big.Int) bool {
		start, end := bigRange(t, ranges[id])
		return start.Cmp(k) <= 0 && k.Cmp(end) <= 0
	}
	ctx := context.Background()
	for _, key := range randomKeys(rng, 300) {
		sum := md5.Sum([]byte(key))
		want := new(big.Int).SetBytes(sum[:])

		put, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: key, Data: []byte("x")})
		require.NoError(t, err)
		assert.True(t, contains(put.ShardID, want), "key %q (hash %s) went to %s", key, want, put.ShardID)

		// An explicit hash key routes instead of the partition key.
		explicit := randomBig(rng)
		put, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: key, ExplicitHashKey: explicit.String()})
		require.NoError(t, err)
		assert.True(t, contains(put.ShardID, explicit), "explicit %s went to %s", explicit, put.ShardID)

		// PutRecords routes the same way.
		res, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: key}, {PartitionKey: key, ExplicitHashKey: explicit.String()}}})
		require.NoError(t, err)
		require.Zero(t, res.FailedRecordCount)
		assert.True(t, contains(res.Records[0].ShardID, want))
		assert.True(t, contains(res.Records[1].ShardID, explicit))
	}
}

func TestSequenceNumbers(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(5), WithLimits(Unlimited()))
	rng := rand.New(rand.NewPCG(9, 10))
	ctx := context.Background()
	var all []SequenceNumber
	last := map[string]SequenceNumber{}
	seen := map[SequenceNumber]bool{}
	for i, key := range randomKeys(rng, 2000) {
		var outs []PutRecordsResult
		if i%2 == 0 {
			out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: key})
			require.NoError(t, err)
			outs = []PutRecordsResult{{ShardID: out.ShardID, SequenceNumber: out.SequenceNumber}}
		} else {
			out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: key}, {PartitionKey: fmt.Sprint("x", i)}}})
			require.NoError(t, err)
			outs = out.Records
		}
		for _, o := range outs {
			n := o.SequenceNumber
			require.False(t, seen[n], "duplicate sequence number %s", n)
			seen[n] = true
			require.Equal(t, o.ShardID, n.ShardID())
			if prev, ok := last[o.ShardID]; ok {
				require.Equal(t, 1, n.Cmp(prev), "%s after %s in %s", n, prev, o.ShardID)
			}
			last[o.ShardID] = n
			all = append(all, n)
		}
	}
	for _, n := range all {
		str := n.String()
		require.Len(t, str, 56)
		require.True(t, strings.HasPrefix(str, "49"), str)
		p, err := ParseSequenceNumber(str)
		require.NoError(t, err)
		require.Equal(t, n, p)
		text, err := n.MarshalText()
		require.NoError(t, err)
		var u SequenceNumber
		require.NoError(t, u.UnmarshalText(text))
		require.Equal(t, n, u)
	}
	// Cmp agrees with comparing the strings, for random pairs.
	for range 5000 {
		a, b := all[rng.IntN(len(all))], all[rng.IntN(len(all))]
		require.Equal(t, strings.Compare(a.String(), b.String()), a.Cmp(b), "%s vs %s", a, b)
		require.Equal(t, -a.Cmp(b), b.Cmp(a))
	}
	// The numbers ListShards reports as shard starts are below every record's.
	out, err := s.ListShards(ctx, ListShardsInput{})
	require.NoError(t, err)
	for _, sh := range out.Shards {
		start := sh.SequenceNumberRange.StartingSequenceNumber
		assert.Equal(t, sh.ShardID, start.ShardID())
		assert.True(t, sh.SequenceNumberRange.EndingSequenceNumber.IsZero())
		if n, ok := last[sh.ShardID]; ok {
			assert.LessOrEqual(t, start.Cmp(n), 0)
		}
	}
}

func TestSequenceNumberZero(t *testing.T) {
	var z SequenceNumber
	assert.True(t, z.IsZero())
	assert.Empty(t, z.String())
	assert.Empty(t, z.ShardID())
	text, err := z.MarshalText()
	require.NoError(t, err)
	assert.Empty(t, text)
	n, _ := ParseSequenceNumber("49" + strings.Repeat("0", 41) + "1" + "000000000003")
	require.NoError(t, n.UnmarshalText(nil))
	assert.True(t, n.IsZero())
}

func TestSequenceNumberParse(t *testing.T) {
	valid := "49" + strings.Repeat("0", 41) + "7" + "000000000003"
	tests := []struct {
		name    string
		in      string
		kind    error // nil: valid
		foreign bool  // valid, but not in runnel's layout: names no shard
	}{
		{name: "valid", in: valid},
		{name: "empty", in: "", kind: ErrValidation},
		{name: "leading zero", in: "0" + valid, kind: ErrValidation},
		{name: "letter", in: valid[:10] + "a" + valid[11:], kind: ErrValidation},
		{name: "130 digits", in: "1" + strings.Repeat("0", 129), kind: ErrValidation},
		{name: "zero", in: "0", foreign: true},
		{name: "short", in: "49123", foreign: true},
		{name: "55 digits", in: valid[1:], foreign: true},
		{name: "57 digits", in: valid + "1", foreign: true},
		{name: "wrong prefix", in: "48" + valid[2:], foreign: true},
		{name: "counter zero", in: "49" + strings.Repeat("0", 42) + "000000000003", foreign: true},
		{name: "counter beyond 64 bits", in: "49" + strings.Repeat("9", 42) + "000000000003", foreign: true},
		{name: "129 digits", in: "1" + strings.Repeat("0", 128), foreign: true},
		{name: "a Kinesis number", in: "49590338271490256608559692538361571095921575989136588898", foreign: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseSequenceNumber(tt.in)
			if tt.kind == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.in, n.String())
				assert.False(t, n.IsZero())
				if tt.foreign {
					assert.Empty(t, n.ShardID(), "only runnel's numbers name their shard")
				} else {
					assert.Equal(t, "shardId-000000000003", n.ShardID())
				}
				return
			}
			assert.ErrorIs(t, err, tt.kind)
			assert.True(t, n.IsZero())
			if tt.in != "" {
				assert.Contains(t, err.Error(), tt.in[:min(len(tt.in), 20)])
			}
		})
	}
}

func TestSequenceNumberForOrdering(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
	ctx := context.Background()
	low, high := "0", maxHashKeyText // shardId-000000000000 and shardId-000000000001

	first, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: low})
	require.NoError(t, err)
	// Give the other shard a larger counter.
	var other PutRecordOutput
	for range 50 {
		other, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: high})
		require.NoError(t, err)
	}
	require.Equal(t, 1, other.SequenceNumber.Cmp(first.SequenceNumber))

	t.Run("number of the same shard", func(t *testing.T) {
		out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: low, SequenceNumberForOrdering: first.SequenceNumber})
		require.NoError(t, err)
		assert.Equal(t, 1, out.SequenceNumber.Cmp(first.SequenceNumber))
		first = out
	})
	t.Run("number of another shard with a larger counter", func(t *testing.T) {
		out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: low, SequenceNumberForOrdering: other.SequenceNumber})
		require.NoError(t, err)
		assert.Equal(t, "shardId-000000000000", out.ShardID)
		assert.Equal(t, 1, out.SequenceNumber.Cmp(other.SequenceNumber), "%s must be above %s", out.SequenceNumber, other.SequenceNumber)
		assert.Equal(t, 1, strings.Compare(out.SequenceNumber.String(), other.SequenceNumber.String()))

		// Later records of the shard stay above it, and all read back in order.
		next := putString(t, s, "k2", "after")
		if next.ShardID == out.ShardID {
			assert.Equal(t, 1, next.SequenceNumber.Cmp(out.SequenceNumber))
		}
		next, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: low, Data: []byte("last")})
		require.NoError(t, err)
		assert.Equal(t, 1, next.SequenceNumber.Cmp(out.SequenceNumber))
		recs := readAll(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
		require.NotEmpty(t, recs)
		assert.Equal(t, "last", string(recs[len(recs)-1].Data))
		assert.True(t, slices.IsSortedFunc(recs, func(a, b Record) int { return a.SequenceNumber.Cmp(b.SequenceNumber) }))
		// Reading from the jumped number works.
		at := readAll(t, s, "shardId-000000000000", StartingPosition{Type: AtSequenceNumber, SequenceNumber: out.SequenceNumber})
		require.NotEmpty(t, at)
		assert.Equal(t, out.SequenceNumber, at[0].SequenceNumber)
	})
	t.Run("smaller number changes nothing", func(t *testing.T) {
		before := putString(t, s, "k", "x")
		out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", SequenceNumberForOrdering: first.SequenceNumber})
		require.NoError(t, err)
		if out.ShardID == before.ShardID {
			assert.Equal(t, 1, out.SequenceNumber.Cmp(before.SequenceNumber))
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	const (
		writers  = 8
		perGroup = 300 // records per writer
		batch    = 20
	)
	_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()))
	ctx := context.Background()

	type put struct {
		shard string
		seq   SequenceNumber
	}
	results := make([]map[string]put, writers) // data → where it was stored
	var wg sync.WaitGroup
	for w := range writers {
		results[w] = make(map[string]put)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for i := 0; i < perGroup; {
				if rng.IntN(2) == 0 {
					data := fmt.Sprintf("w%d-r%d-%x", w, i, rng.Uint32())
					out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: fmt.Sprint(rng.Uint64()), Data: []byte(data)})
					if !assert.NoError(t, err) {
						return
					}
					results[w][data] = put{out.ShardID, out.SequenceNumber}
					i++
					continue
				}
				n := min(batch, perGroup-i)
				entries := make([]PutRecordsEntry, n)
				for j := range entries {
					entries[j] = PutRecordsEntry{PartitionKey: fmt.Sprint(rng.Uint64()), Data: fmt.Appendf(nil, "w%d-r%d-%x", w, i+j, rng.Uint32())}
				}
				out, err := s.PutRecords(ctx, PutRecordsInput{Records: entries})
				if !assert.NoError(t, err) || !assert.Zero(t, out.FailedRecordCount) {
					return
				}
				for j, r := range out.Records {
					results[w][string(entries[j].Data)] = put{r.ShardID, r.SequenceNumber}
				}
				i += n
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())

	written := make(map[string]put)
	var wantSum uint32
	for _, m := range results {
		for data, p := range m {
			written[data] = p
			wantSum ^= crc32.ChecksumIEEE([]byte(data))
		}
	}
	require.Len(t, written, writers*perGroup)

	seen := make(map[string]int)
	var gotSum uint32
	total := 0
	for _, id := range shardIDs(t, s) {
		recs := readAll(t, s, id, StartingPosition{Type: TrimHorizon})
		for i, r := range recs {
			if i > 0 {
				require.Equal(t, 1, r.SequenceNumber.Cmp(recs[i-1].SequenceNumber), "shard %s not in order at %d", id, i)
			}
			data := string(r.Data)
			seen[data]++
			gotSum ^= crc32.ChecksumIEEE(r.Data)
			p, ok := written[data]
			require.True(t, ok, "read %q, which nobody wrote", data)
			assert.Equal(t, p.shard, id)
			assert.Equal(t, p.seq, r.SequenceNumber)
		}
		total += len(recs)
	}
	assert.Equal(t, writers*perGroup, total)
	assert.Equal(t, wantSum, gotSum)
	for data := range written {
		assert.Equal(t, 1, seen[data], "record %q read %d times", data, seen[data])
	}
	assert.Equal(t, int64(writers*perGroup), s.Stats().Total.RecordsPut)
}

func TestTailWhileWriting(t *testing.T) {
	// A reader polling at the tip while writers append sees every record
	// once, in order, and the data it holds never changes afterwards.
	const writers, perWriter = 4, 500
	_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
	ctx := context.Background()
	it := iterator(t, s, shard0, StartingPosition{Type: Latest})

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				data := fmt.Appendf(nil, "w%d-%04d-%s", w, i, strings.Repeat("x", i%50))
				if i%3 == 0 {
					_, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "k", Data: data}}})
					assert.NoError(t, err)
				} else {
					_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data})
					assert.NoError(t, err)
				}
			}
		})
	}
	var got []Record
	for len(got) < writers*perWriter {
		out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Limit: 1 + len(got)%100})
		require.NoError(t, err)
		got = append(got, out.Records...)
		it = out.NextShardIterator
	}
	wg.Wait()
	assert.Empty(t, get(t, s, it, 0).Records, "nothing beyond what was written")

	next := make([]int, writers) // per writer, records arrive in its order
	for i, r := range got {
		if i > 0 {
			require.Equal(t, 1, r.SequenceNumber.Cmp(got[i-1].SequenceNumber))
		}
		var w, n int
		_, err := fmt.Sscanf(string(r.Data), "w%d-%d-", &w, &n)
		require.NoError(t, err)
		require.Equal(t, next[w], n, "writer %d", w)
		require.Equal(t, fmt.Sprintf("w%d-%04d-%s", w, n, strings.Repeat("x", n%50)), string(r.Data))
		next[w]++
	}
	// Reading everything again gives the same records: returned data aliases
	// storage that later writes never touch.
	again := readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})
	require.Len(t, again, len(got))
	for i := range got {
		require.Equal(t, got[i].SequenceNumber, again[i].SequenceNumber)
		require.Equal(t, got[i].Data, again[i].Data)
	}
}

func TestPutRecordsOrderAndShards(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()))
	rng := rand.New(rand.NewPCG(12, 13))
	entries := make([]PutRecordsEntry, MaxPutRecordsEntries)
	for i := range entries {
		entries[i] = PutRecordsEntry{PartitionKey: fmt.Sprint(rng.IntN(20)), Data: fmt.Appendf(nil, "%03d", i)}
	}
	out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: entries})
	require.NoError(t, err)
	require.Zero(t, out.FailedRecordCount)
	require.Len(t, out.Records, len(entries))

	ranges := map[string]HashKeyRange{}
	for _, id := range shardIDs(t, s) {
		ranges[id] = shardRange(t, s, id)
	}
	byShard := map[string][]string{}
	for i, r := range out.Records {
		require.NoError(t, r.Err)
		assert.True(t, ranges[r.ShardID].Contains(HashKeyOf(entries[i].PartitionKey)), "entry %d in the wrong shard", i)
		assert.Equal(t, r.ShardID, r.SequenceNumber.ShardID())
		byShard[r.ShardID] = append(byShard[r.ShardID], string(entries[i].Data))
	}
	require.Greater(t, len(byShard), 1, "the keys should spread over shards")
	for id, want := range byShard {
		recs := readAll(t, s, id, StartingPosition{Type: TrimHorizon})
		assert.Equal(t, want, datas(recs), "shard %s must hold its records in request order", id)
		for i, r := range recs {
			assert.Equal(t, out.Records[mustAtoi(t, string(r.Data))].SequenceNumber, r.SequenceNumber, "record %d", i)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func TestPutCopiesData(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	buf := []byte("original")
	_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: buf})
	require.NoError(t, err)
	batch := []byte("batched1")
	_, err = s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "k", Data: batch}}})
	require.NoError(t, err)
	copy(buf, "mutated!")
	copy(batch, "mutated!")

	recs := readAll(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	assert.Equal(t, []string{"original", "batched1"}, datas(recs))
	assert.Equal(t, "k", recs[0].PartitionKey)
	// Record data is capped: appending to it cannot overwrite the next record.
	_ = append(recs[0].Data, "XXXXXXXX"...)
	again := readAll(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	assert.Equal(t, []string{"original", "batched1"}, datas(again))
	assert.Equal(t, []string{"k", "k"}, []string{again[0].PartitionKey, again[1].PartitionKey})
}

func TestPutEmptyData(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	putString(t, s, "k", "")
	putString(t, s, "k", "x")
	recs := readAll(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	require.Len(t, recs, 2)
	assert.Empty(t, recs[0].Data)
	assert.Equal(t, "x", string(recs[1].Data))
}

func TestStreamLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(WithRegion("eu-west-1"), WithAccountID("123456789012"))
		defer c.Close()
		ctx := context.Background()
		created := time.Now()

		names, err := c.ListStreams(ctx)
		require.NoError(t, err)
		assert.Empty(t, names)

		b, err := c.CreateStream(ctx, "b", WithShardCount(3), WithRetention(48*time.Hour),
			WithLimits(Limits{WriteRecordsPerSecond: 7}), WithMaxRecordSize(1000))
		require.NoError(t, err)
		a, err := c.CreateStream(ctx, "a")
		require.NoError(t, err)

		names, err = c.ListStreams(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "b"}, names)

		got, err := c.Stream("b")
		require.NoError(t, err)
		assert.Same(t, b, got)
		_, err = c.Stream("c")
		assertKind(t, err, ErrResourceNotFound, `"c"`)

		sum, err := b.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, StreamSummary{
			StreamName:              "b",
			StreamARN:               "arn:aws:kinesis:eu-west-1:123456789012:stream/b",
			StreamStatus:            StatusActive,
			RetentionPeriod:         48 * time.Hour,
			StreamCreationTimestamp: created,
			OpenShardCount:          3,
			Limits:                  Limits{WriteRecordsPerSecond: 7},
			MaxRecordSize:           1000,
			MaxPutRecordsSize:       5 << 20,
		}, sum)
		assert.Equal(t, "arn:aws:kinesis:eu-west-1:123456789012:stream/b", b.ARN())
		assert.Equal(t, "b", b.Name())

		sum, err = a.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, 4, sum.OpenShardCount, "default shard count")
		assert.Equal(t, 24*time.Hour, sum.RetentionPeriod, "default retention")
		assert.Equal(t, KinesisLimits(), sum.Limits, "default limits")
		assert.Equal(t, 1<<20, sum.MaxRecordSize, "default record size")

		require.NoError(t, c.DeleteStream(ctx, "b"))
		names, err = c.ListStreams(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"a"}, names)
		_, err = c.Stream("b")
		assert.ErrorIs(t, err, ErrResourceNotFound)
		_, err = a.Describe(ctx)
		assert.NoError(t, err, "deleting one stream leaves the others")
	})
}

func TestStreamNameReusableAfterDelete(t *testing.T) {
	c, old := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	putString(t, old, "k", "old")
	oldIt := iterator(t, old, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	require.NoError(t, c.DeleteStream(ctx, "test"))

	s, err := c.CreateStream(ctx, "test", WithShardCount(1))
	require.NoError(t, err)
	assert.NotSame(t, old, s)
	got, err := c.Stream("test")
	require.NoError(t, err)
	assert.Same(t, s, got)

	// The new stream starts empty.
	assert.Empty(t, readAll(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon}))
	putString(t, s, "k", "new")

	// An iterator of the deleted stream is rejected by the new one, although
	// the name and shard id are the same.
	_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: oldIt})
	assertKind(t, err, ErrInvalidArgument, "test")
	tok, err := ParseShardIterator(oldIt.String())
	require.NoError(t, err)
	_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: tok})
	assert.ErrorIs(t, err, ErrInvalidArgument)
	// The old handle stays deleted.
	_, err = old.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
	assert.ErrorIs(t, err, ErrResourceNotFound)
	_, err = old.GetRecords(ctx, GetRecordsInput{ShardIterator: oldIt})
	assert.ErrorIs(t, err, ErrResourceNotFound)

	assert.Equal(t, []string{"new"}, datas(readAll(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})))
}

func TestListShardsPaging(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(7))
	ctx := context.Background()
	var ids []string
	out, err := s.ListShards(ctx, ListShardsInput{MaxResults: 3})
	require.NoError(t, err)
	for {
		require.LessOrEqual(t, len(out.Shards), 3)
		for _, sh := range out.Shards {
			ids = append(ids, sh.ShardID)
		}
		if out.NextToken == "" {
			break
		}
		out, err = s.ListShards(ctx, ListShardsInput{NextToken: out.NextToken, MaxResults: 3})
		require.NoError(t, err)
	}
	want := make([]string, 7)
	for i := range want {
		want[i] = fmt.Sprintf("shardId-%012d", i)
	}
	assert.Equal(t, want, ids)

	out, err = s.ListShards(ctx, ListShardsInput{ExclusiveStartShardID: "shardId-000000000004"})
	require.NoError(t, err)
	assert.Len(t, out.Shards, 2)
	assert.Equal(t, "shardId-000000000005", out.Shards[0].ShardID)

	out, err = s.ListShards(ctx, ListShardsInput{MaxResults: 7})
	require.NoError(t, err)
	assert.Len(t, out.Shards, 7)
	assert.Empty(t, out.NextToken, "no NextToken when the page holds the last shard")
}

func TestPartitionKeyCharacters(t *testing.T) {
	// Keys are counted in characters, not bytes, and returned as written.
	_, s := newTestStream(t, WithShardCount(1))
	key := strings.Repeat("😀", MaxPartitionKeyLength)
	require.Equal(t, MaxPartitionKeyLength, utf8.RuneCountInString(key))
	putString(t, s, key, "v")
	recs := readAll(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	require.Len(t, recs, 1)
	assert.Equal(t, key, recs[0].PartitionKey)
}

// TestStreamStatusDelay checks WithStreamStatusDelay: a new stream is
// CREATING and refuses writes until the delay passes; a deleted one is
// DELETING, refuses use and keeps its name taken until it has passed.
func TestStreamStatusDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster()
		defer c.Close()
		ctx := context.Background()
		s, err := c.CreateStream(ctx, "slow", WithShardCount(1), WithStreamStatusDelay(10*time.Second))
		require.NoError(t, err)
		sum, err := s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, StatusCreating, sum.StreamStatus)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("x")})
		assert.ErrorIs(t, err, ErrResourceNotFound, "a data operation")
		assert.ErrorContains(t, err, "CREATING")
		assert.ErrorIs(t, s.AddTags(ctx, map[string]string{"k": "v"}), ErrResourceInUse, "a control operation")
		assert.ErrorIs(t, c.DeleteStream(ctx, "slow"), ErrResourceInUse, "only an ACTIVE stream is deleted")
		for i := range 4 {
			_, err := c.CreateStream(ctx, fmt.Sprint("more-", i), WithShardCount(1), WithStreamStatusDelay(10*time.Second))
			require.NoError(t, err)
		}
		_, err = c.CreateStream(ctx, "sixth", WithShardCount(1), WithStreamStatusDelay(10*time.Second))
		assert.ErrorIs(t, err, ErrLimitExceeded, "at most 5 streams CREATING at once")

		time.Sleep(10 * time.Second)
		synctest.Wait()
		sum, err = s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, StatusActive, sum.StreamStatus)
		putString(t, s, "k", "x")

		require.NoError(t, c.DeleteStream(ctx, "slow"))
		sum, err = s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, StatusDeleting, sum.StreamStatus)
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("x")})
		assert.ErrorIs(t, err, ErrResourceNotFound)
		_, err = c.CreateStream(ctx, "slow", WithShardCount(1))
		assert.ErrorIs(t, err, ErrResourceInUse, "the name is taken while DELETING")
		assert.ErrorIs(t, c.DeleteStream(ctx, "slow"), ErrResourceInUse)
		quota, used := c.ShardQuota()
		assert.Equal(t, 4, used, "a DELETING stream's shards no longer count, the other streams' do (quota %d)", quota)

		time.Sleep(10 * time.Second)
		synctest.Wait()
		_, err = c.Stream("slow")
		assert.ErrorIs(t, err, ErrResourceNotFound)
		_, err = c.CreateStream(ctx, "slow", WithShardCount(1))
		assert.NoError(t, err)

		_, err = c.CreateStream(ctx, "bad", WithStreamStatusDelay(-time.Second))
		assert.ErrorIs(t, err, ErrInvalidArgument)
	})
}

// TestDeleteWhileResharding checks that a stream deleted while a delayed
// reshard is pending stays DELETING when the reshard's time comes.
func TestDeleteWhileResharding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster()
		defer c.Close()
		ctx := context.Background()
		s, err := c.CreateStream(ctx, "s", WithShardCount(2), WithReshardDuration(time.Minute), WithStreamStatusDelay(time.Hour))
		require.NoError(t, err)
		time.Sleep(time.Hour)
		synctest.Wait()
		_, err = s.UpdateShardCount(ctx, 4)
		require.NoError(t, err)
		sum, err := s.Describe(ctx)
		require.NoError(t, err)
		require.Equal(t, StatusUpdating, sum.StreamStatus)
		require.NoError(t, c.DeleteStream(ctx, "s"))
		time.Sleep(10 * time.Minute) // past the reshard's time, within the delete's
		synctest.Wait()
		sum, err = s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, StatusDeleting, sum.StreamStatus, "the reshard's end does not make a DELETING stream ACTIVE")
	})
}
