package runnel

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// assertKind checks that err wraps kind and that its message names the
// offending value (each of want).
func assertKind(t *testing.T, err error, kind error, want ...string) {
	t.Helper()
	if !assert.Error(t, err) {
		return
	}
	assert.ErrorIs(t, err, kind)
	for _, w := range want {
		assert.Contains(t, err.Error(), w)
	}
}

var (
	twoTo128        = new(big.Int).Lsh(big.NewInt(1), 128)
	twoTo128Minus1  = new(big.Int).Sub(twoTo128, big.NewInt(1))
	maxHashKeyText  = twoTo128Minus1.String() // 340282366920938463463374607431768211455
	overHashKeyText = twoTo128.String()       // 340282366920938463463374607431768211456
)

func TestCreateStreamValidation(t *testing.T) {
	tests := []struct {
		name     string
		stream   string
		opts     []StreamOption
		kind     error
		wantMsg  []string
		wantFine bool
	}{
		{name: "empty name", stream: "", kind: ErrValidation, wantMsg: []string{`stream name ""`}},
		{name: "129 characters", stream: strings.Repeat("a", 129), kind: ErrValidation, wantMsg: []string{strings.Repeat("a", 129)}},
		{name: "128 characters", stream: strings.Repeat("a", 128), wantFine: true},
		{name: "all allowed characters", stream: "aZ09_.-", wantFine: true},
		{name: "space", stream: "my stream", kind: ErrValidation, wantMsg: []string{`"my stream"`}},
		{name: "slash", stream: "a/b", kind: ErrValidation, wantMsg: []string{`"a/b"`}},
		{name: "colon", stream: "a:b", kind: ErrValidation, wantMsg: []string{`"a:b"`}},
		{name: "non-ASCII", stream: "strøm", kind: ErrValidation, wantMsg: []string{`"strøm"`}},
		{name: "shard count 0", stream: "s", opts: []StreamOption{WithShardCount(0)}, kind: ErrValidation, wantMsg: []string{"shard count 0"}},
		{name: "shard count -1", stream: "s", opts: []StreamOption{WithShardCount(-1)}, kind: ErrValidation, wantMsg: []string{"shard count -1"}},
		{name: "retention 0", stream: "s", opts: []StreamOption{WithRetention(0)}, kind: ErrInvalidArgument, wantMsg: []string{"retention 0s"}},
		{name: "retention negative", stream: "s", opts: []StreamOption{WithRetention(-time.Hour)}, kind: ErrInvalidArgument, wantMsg: []string{"retention -1h0m0s"}},
		{name: "max record size 0", stream: "s", opts: []StreamOption{WithMaxRecordSize(0)}, kind: ErrInvalidArgument, wantMsg: []string{"size 0 bytes"}},
		{name: "max record size above 10 MiB", stream: "s", opts: []StreamOption{WithMaxRecordSize(10<<20 + 1), WithMaxPutRecordsSize(20 << 20)}, kind: ErrInvalidArgument, wantMsg: []string{"10485761"}},
		{name: "max record size 1 byte", stream: "s", opts: []StreamOption{WithMaxRecordSize(1)}, wantFine: true},
		{name: "max record size 10 MiB", stream: "s", opts: []StreamOption{WithMaxRecordSize(10 << 20), WithMaxPutRecordsSize(10 << 20)}, wantFine: true},
		{name: "PutRecords size below record size", stream: "s", opts: []StreamOption{WithMaxRecordSize(1000), WithMaxPutRecordsSize(999)}, kind: ErrInvalidArgument, wantMsg: []string{"999"}},
		{name: "iterator TTL 0", stream: "s", opts: []StreamOption{WithIteratorTTL(0)}, kind: ErrInvalidArgument, wantMsg: []string{"TTL 0s"}},
		{name: "negative limit", stream: "s", opts: []StreamOption{WithLimits(Limits{ReadCallsPerSecond: -1})}, kind: ErrInvalidArgument, wantMsg: []string{"ReadCallsPerSecond:-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCluster()
			defer c.Close()
			s, err := c.CreateStream(context.Background(), tt.stream, tt.opts...)
			if tt.wantFine {
				require.NoError(t, err)
				assert.Equal(t, tt.stream, s.Name())
				return
			}
			assert.Nil(t, s)
			assertKind(t, err, tt.kind, tt.wantMsg...)
			names, err := c.ListStreams(context.Background())
			require.NoError(t, err)
			assert.Empty(t, names, "a rejected stream must not be created")
		})
	}
}

// TestCreateStreamMaxRecordSize10MiBAlone checks that WithMaxRecordSize(10 MiB),
// Kinesis's largest record size, is accepted on its own: the default
// PutRecords size is 5 MiB or the maximum record size when that is larger,
// as WithMaxPutRecordsSize documents.
func TestCreateStreamMaxRecordSize10MiBAlone(t *testing.T) {
	c := NewCluster()
	defer c.Close()
	s, err := c.CreateStream(context.Background(), "big", WithMaxRecordSize(10<<20))
	require.NoError(t, err, "WithMaxRecordSize(10 MiB) alone is accepted")
	sum, err := s.Describe(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 10<<20, sum.MaxRecordSize)
}

func TestCreateStreamExistingName(t *testing.T) {
	c, _ := newTestStream(t)
	_, err := c.CreateStream(context.Background(), "test")
	assertKind(t, err, ErrResourceInUse, "test")
}

func TestCreateStreamShardQuota(t *testing.T) {
	c := NewCluster(WithShardQuota(5))
	defer c.Close()
	ctx := context.Background()
	_, err := c.CreateStream(ctx, "a", WithShardCount(4))
	require.NoError(t, err)
	_, err = c.CreateStream(ctx, "b", WithShardCount(2))
	assertKind(t, err, ErrLimitExceeded, "stream b", "2 shards", "quota of 5", "leaves 1")
	quota, used := c.ShardQuota()
	assert.Equal(t, 5, quota)
	assert.Equal(t, 4, used)

	_, err = c.CreateStream(ctx, "c", WithShardCount(1))
	require.NoError(t, err, "the quota's last shard is usable")
	require.NoError(t, c.DeleteStream(ctx, "a"))
	_, used = c.ShardQuota()
	assert.Equal(t, 1, used, "deleting a stream gives its shards back")
	_, err = c.CreateStream(ctx, "b", WithShardCount(4))
	assert.NoError(t, err)
}

func TestPutRecordValidation(t *testing.T) {
	const maxSize = 1 << 20
	tests := []struct {
		name     string
		in       PutRecordInput
		kind     error // nil: accepted
		wantMsg  []string
		wantHash string // for accepted explicit hash keys
	}{
		{name: "empty partition key", in: PutRecordInput{Data: []byte("x")}, kind: ErrValidation, wantMsg: []string{"partition key is empty"}},
		{name: "257-character partition key", in: PutRecordInput{PartitionKey: strings.Repeat("k", 257)}, kind: ErrValidation, wantMsg: []string{"257 characters", "kkkkkkkkkk"}},
		{name: "257 multi-byte characters", in: PutRecordInput{PartitionKey: strings.Repeat("é", 257)}, kind: ErrValidation, wantMsg: []string{"257 characters", "éééééé"}},
		{name: "256 ASCII characters", in: PutRecordInput{PartitionKey: strings.Repeat("k", 256)}},
		{name: "256 multi-byte characters", in: PutRecordInput{PartitionKey: strings.Repeat("日", 256)}},
		{name: "256 four-byte characters", in: PutRecordInput{PartitionKey: strings.Repeat("🦫", 256)}},
		{name: "invalid UTF-8", in: PutRecordInput{PartitionKey: "a\xffb"}, kind: ErrValidation, wantMsg: []string{`"a\xffb"`, "UTF-8"}},
		{name: "empty data", in: PutRecordInput{PartitionKey: "k"}},
		{name: "data too large", in: PutRecordInput{PartitionKey: "k", Data: make([]byte, maxSize+1)}, kind: ErrValidation, wantMsg: []string{"data is 1048577 bytes", "1048576"}},
		{name: "data plus key too large", in: PutRecordInput{PartitionKey: "k", Data: make([]byte, maxSize)}, kind: ErrInvalidArgument, wantMsg: []string{"1048577 bytes", "1048576"}},
		{name: "data plus key exactly the limit", in: PutRecordInput{PartitionKey: "k", Data: make([]byte, maxSize-1)}},
		{name: "hash key leading zero", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: "01"}, kind: ErrValidation, wantMsg: []string{`"01"`, "ExplicitHashKey"}},
		{name: "hash key non-digit", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: "12a4"}, kind: ErrValidation, wantMsg: []string{`"12a4"`}},
		{name: "hash key negative", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: "-1"}, kind: ErrValidation, wantMsg: []string{`"-1" is negative`}},
		{name: "hash key dash", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: "-x1"}, kind: ErrValidation, wantMsg: []string{`"-x1" is not a decimal integer`}},
		{name: "hash key 40 digits", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: "1" + strings.Repeat("0", 39)}, kind: ErrValidation, wantMsg: []string{"40 digits", "1000000000"}},
		{name: "hash key 2^128", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: overHashKeyText}, kind: ErrInvalidArgument, wantMsg: []string{overHashKeyText}},
		{name: "hash key 39 nines", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: strings.Repeat("9", 39)}, kind: ErrInvalidArgument, wantMsg: []string{strings.Repeat("9", 39)}},
		{name: "hash key 2^128-1", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: maxHashKeyText}, wantHash: maxHashKeyText},
		{name: "hash key 0", in: PutRecordInput{PartitionKey: "k", ExplicitHashKey: "0"}, wantHash: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(2))
			out, err := s.PutRecord(context.Background(), tt.in)
			if tt.kind == nil {
				require.NoError(t, err)
				assert.False(t, out.SequenceNumber.IsZero())
				if tt.wantHash != "" {
					k, err := ParseHashKey(tt.wantHash)
					require.NoError(t, err)
					assert.True(t, shardRange(t, s, out.ShardID).Contains(k), "routed to %s", out.ShardID)
				}
				return
			}
			assertKind(t, err, tt.kind, tt.wantMsg...)
			assert.Zero(t, out)
			assert.Zero(t, s.Stats().Total.RecordsPut, "a rejected record must not be stored")
		})
	}
}

// shardRange returns the hash-key range of a listed shard.
func shardRange(t *testing.T, s *Stream, id string) HashKeyRange {
	t.Helper()
	out, err := s.ListShards(context.Background(), ListShardsInput{})
	require.NoError(t, err)
	for _, sh := range out.Shards {
		if sh.ShardID == id {
			return sh.HashKeyRange
		}
	}
	t.Fatalf("shard %s not listed", id)
	return HashKeyRange{}
}

func TestPutRecordsValidation(t *testing.T) {
	entries := func(n int) []PutRecordsEntry {
		es := make([]PutRecordsEntry, n)
		for i := range es {
			es[i] = PutRecordsEntry{PartitionKey: fmt.Sprint(i), Data: []byte("x")}
		}
		return es
	}
	withBad := func(i int, bad PutRecordsEntry) []PutRecordsEntry {
		es := entries(3)
		es[i] = bad
		return es
	}
	big := make([]byte, 1<<20-1) // 1 MiB with a one-byte key
	sixMiB := make([]PutRecordsEntry, 6)
	for i := range sixMiB {
		sixMiB[i] = PutRecordsEntry{PartitionKey: "k", Data: big}
	}
	tests := []struct {
		name    string
		opts    []StreamOption
		entries []PutRecordsEntry
		kind    error
		wantMsg []string
	}{
		{name: "no entries", entries: nil, kind: ErrValidation, wantMsg: []string{"0 records"}},
		{name: "501 entries", entries: entries(501), kind: ErrValidation, wantMsg: []string{"501 records", "500"}},
		{name: "500 entries", entries: entries(500)},
		{name: "request over 5 MiB", entries: sixMiB, kind: ErrInvalidArgument, wantMsg: []string{"6291456 bytes", "5242880"}},
		{
			name:    "request over a configured size",
			opts:    []StreamOption{WithMaxRecordSize(50), WithMaxPutRecordsSize(100)},
			entries: []PutRecordsEntry{{PartitionKey: "a", Data: make([]byte, 40)}, {PartitionKey: "b", Data: make([]byte, 40)}, {PartitionKey: "c", Data: make([]byte, 40)}},
			kind:    ErrInvalidArgument, wantMsg: []string{"123 bytes", "100"},
		},
		{name: "one empty partition key", entries: withBad(1, PutRecordsEntry{Data: []byte("x")}), kind: ErrValidation, wantMsg: []string{"partition key is empty", "record 1"}},
		{name: "one bad hash key", entries: withBad(2, PutRecordsEntry{PartitionKey: "k", ExplicitHashKey: "x"}), kind: ErrValidation, wantMsg: []string{`"x"`, "record 2"}},
		{name: "one hash key too large", entries: withBad(0, PutRecordsEntry{PartitionKey: "k", ExplicitHashKey: overHashKeyText}), kind: ErrInvalidArgument, wantMsg: []string{overHashKeyText, "record 0"}},
		{name: "one record too large", entries: withBad(1, PutRecordsEntry{PartitionKey: "kk", Data: big}), kind: ErrInvalidArgument, wantMsg: []string{"1048577 bytes", "record 1"}},
		{name: "one data too large", entries: withBad(1, PutRecordsEntry{PartitionKey: "k", Data: make([]byte, 1<<20+1)}), kind: ErrValidation, wantMsg: []string{"1048577 bytes", "record 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]StreamOption{WithLimits(Unlimited())}, tt.opts...)
			_, s := newTestStream(t, opts...)
			out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: tt.entries})
			if tt.kind == nil {
				require.NoError(t, err)
				assert.Zero(t, out.FailedRecordCount)
				assert.Len(t, out.Records, len(tt.entries))
				return
			}
			assertKind(t, err, tt.kind, tt.wantMsg...)
			assert.Zero(t, out)
			assert.Zero(t, s.Stats().Total.RecordsPut, "an invalid request must store nothing")
		})
	}
}

func TestGetRecordsValidation(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	putString(t, s, "k", "v")
	it := iterator(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	tests := []struct {
		name    string
		in      GetRecordsInput
		kind    error
		wantMsg []string
	}{
		{name: "limit -1", in: GetRecordsInput{ShardIterator: it, Limit: -1}, kind: ErrValidation, wantMsg: []string{"limit -1"}},
		{name: "limit 10001", in: GetRecordsInput{ShardIterator: it, Limit: 10_001}, kind: ErrInvalidArgument, wantMsg: []string{"limit 10001", "10000"}},
		{name: "no iterator", in: GetRecordsInput{}, kind: ErrInvalidArgument, wantMsg: []string{"shard iterator is empty"}},
		{name: "limit 10000", in: GetRecordsInput{ShardIterator: it, Limit: 10_000}},
		{name: "limit 1", in: GetRecordsInput{ShardIterator: it, Limit: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := s.GetRecords(context.Background(), tt.in)
			if tt.kind == nil {
				require.NoError(t, err)
				assert.Len(t, out.Records, 1)
				return
			}
			assertKind(t, err, tt.kind, tt.wantMsg...)
		})
	}
}

func TestGetRecordsIteratorOfAnotherStream(t *testing.T) {
	c, a := newTestStream(t, WithShardCount(1))
	b, err := c.CreateStream(context.Background(), "other", WithShardCount(1))
	require.NoError(t, err)
	it := iterator(t, a, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	_, err = b.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it})
	assertKind(t, err, ErrInvalidArgument, `"test"`, "other")
}

func TestGetShardIteratorValidation(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(2))
	ctx := context.Background()
	other, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: maxHashKeyText})
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000001", other.ShardID)
	tests := []struct {
		name    string
		shard   string
		from    StartingPosition
		kind    error
		wantMsg []string
	}{
		{name: "unknown type", shard: "shardId-000000000000", from: StartingPosition{Type: "AT_END"}, kind: ErrValidation, wantMsg: []string{`"AT_END"`}},
		{name: "empty type", shard: "shardId-000000000000", from: StartingPosition{}, kind: ErrValidation, wantMsg: []string{`""`}},
		{name: "lower-case type", shard: "shardId-000000000000", from: StartingPosition{Type: "latest"}, kind: ErrValidation, wantMsg: []string{`"latest"`}},
		{name: "AT_SEQUENCE_NUMBER without number", shard: "shardId-000000000000", from: StartingPosition{Type: AtSequenceNumber}, kind: ErrInvalidArgument, wantMsg: []string{"AT_SEQUENCE_NUMBER", "StartingSequenceNumber"}},
		{name: "AFTER_SEQUENCE_NUMBER without number", shard: "shardId-000000000000", from: StartingPosition{Type: AfterSequenceNumber}, kind: ErrInvalidArgument, wantMsg: []string{"AFTER_SEQUENCE_NUMBER"}},
		{
			name: "number from another shard", shard: "shardId-000000000000",
			from: StartingPosition{Type: AtSequenceNumber, SequenceNumber: other.SequenceNumber},
			kind: ErrInvalidArgument, wantMsg: []string{other.SequenceNumber.String(), "shardId-000000000000"},
		},
		{
			name: "after number from another shard", shard: "shardId-000000000000",
			from: StartingPosition{Type: AfterSequenceNumber, SequenceNumber: other.SequenceNumber},
			kind: ErrInvalidArgument, wantMsg: []string{other.SequenceNumber.String()},
		},
		{name: "AT_TIMESTAMP without timestamp", shard: "shardId-000000000000", from: StartingPosition{Type: AtTimestamp}, kind: ErrInvalidArgument, wantMsg: []string{"AT_TIMESTAMP", "Timestamp"}},
		{name: "unknown shard", shard: "shardId-000000000099", from: StartingPosition{Type: TrimHorizon}, kind: ErrResourceNotFound, wantMsg: []string{"shardId-000000000099"}},
		{name: "malformed shard id", shard: "shard-1", from: StartingPosition{Type: TrimHorizon}, kind: ErrResourceNotFound, wantMsg: []string{`"shard-1"`}},
		{name: "shard id with letters", shard: "shardId-00000000000x", from: StartingPosition{Type: TrimHorizon}, kind: ErrResourceNotFound, wantMsg: []string{`"shardId-00000000000x"`}},
		{name: "empty shard id", shard: "", from: StartingPosition{Type: TrimHorizon}, kind: ErrValidation, wantMsg: []string{`""`}},
		{name: "number of this shard", shard: "shardId-000000000001", from: StartingPosition{Type: AtSequenceNumber, SequenceNumber: other.SequenceNumber}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: tt.shard, StartingPosition: tt.from})
			if tt.kind == nil {
				require.NoError(t, err)
				assert.False(t, it.IsZero())
				return
			}
			assertKind(t, err, tt.kind, tt.wantMsg...)
			assert.True(t, it.IsZero())
		})
	}
}

func TestListShardsValidation(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(3))
	ctx := context.Background()
	page, err := s.ListShards(ctx, ListShardsInput{MaxResults: 1})
	require.NoError(t, err)
	require.NotEmpty(t, page.NextToken)
	other, err := c.CreateStream(ctx, "other", WithShardCount(3))
	require.NoError(t, err)
	otherPage, err := other.ListShards(ctx, ListShardsInput{MaxResults: 1})
	require.NoError(t, err)

	tests := []struct {
		name    string
		in      ListShardsInput
		kind    error
		wantMsg []string
	}{
		{name: "MaxResults -1", in: ListShardsInput{MaxResults: -1}, kind: ErrValidation, wantMsg: []string{"MaxResults -1"}},
		{name: "MaxResults 10001", in: ListShardsInput{MaxResults: 10_001}, kind: ErrValidation, wantMsg: []string{"MaxResults 10001"}},
		{name: "NextToken with ExclusiveStartShardID", in: ListShardsInput{NextToken: page.NextToken, ExclusiveStartShardID: "shardId-000000000000"}, kind: ErrInvalidArgument, wantMsg: []string{"NextToken", "ExclusiveStartShardId"}},
		{name: "NextToken with filter", in: ListShardsInput{NextToken: page.NextToken, Filter: ShardFilter{Type: FilterAtLatest}}, kind: ErrInvalidArgument, wantMsg: []string{"ShardFilter"}},
		{name: "garbage NextToken", in: ListShardsInput{NextToken: "garbage"}, kind: ErrInvalidArgument, wantMsg: []string{`"garbage"`}},
		{name: "damaged NextToken", in: ListShardsInput{NextToken: flipLastChar(page.NextToken)}, kind: ErrInvalidArgument, wantMsg: []string{"NextToken"}},
		{name: "NextToken of another stream", in: ListShardsInput{NextToken: otherPage.NextToken}, kind: ErrInvalidArgument, wantMsg: []string{"stream test"}},
		{name: "malformed ExclusiveStartShardID", in: ListShardsInput{ExclusiveStartShardID: "shard-0"}, kind: ErrResourceNotFound, wantMsg: []string{`"shard-0"`}},
		{name: "unknown filter", in: ListShardsInput{Filter: ShardFilter{Type: "ALL"}}, kind: ErrValidation, wantMsg: []string{`"ALL"`}},
		{name: "AT_TIMESTAMP filter without timestamp", in: ListShardsInput{Filter: ShardFilter{Type: FilterAtTimestamp}}, kind: ErrInvalidArgument, wantMsg: []string{"AT_TIMESTAMP"}},
		{name: "AFTER_SHARD_ID filter with malformed id", in: ListShardsInput{Filter: ShardFilter{Type: FilterAfterShardID, ShardID: "x"}}, kind: ErrResourceNotFound, wantMsg: []string{`"x"`}},
		{name: "MaxResults 10000", in: ListShardsInput{MaxResults: 10_000}},
		{name: "valid NextToken", in: ListShardsInput{NextToken: page.NextToken}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := s.ListShards(ctx, tt.in)
			if tt.kind == nil {
				require.NoError(t, err)
				assert.NotEmpty(t, out.Shards)
				return
			}
			assertKind(t, err, tt.kind, tt.wantMsg...)
		})
	}
}

// flipLastChar changes the last character of a token to damage it.
func flipLastChar(s string) string {
	last := s[len(s)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return s[:len(s)-1] + string(repl)
}

func TestListShardsExpiredNextToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(3))
		ctx := context.Background()
		page, err := s.ListShards(ctx, ListShardsInput{MaxResults: 1})
		require.NoError(t, err)
		require.NotEmpty(t, page.NextToken)

		time.Sleep(300 * time.Second)
		_, err = s.ListShards(ctx, ListShardsInput{NextToken: page.NextToken})
		require.NoError(t, err, "a NextToken is valid for 300 s")

		time.Sleep(time.Millisecond)
		_, err = s.ListShards(ctx, ListShardsInput{NextToken: page.NextToken})
		assertKind(t, err, ErrExpiredNextToken, "expired")
		assert.Equal(t, "ExpiredNextTokenException", ErrorName(err))
	})
}

func TestRetentionChangeValidation(t *testing.T) {
	tests := []struct {
		name    string
		change  func(s *Stream) error
		kind    error
		wantMsg []string
	}{
		{name: "increase below current", change: func(s *Stream) error { return s.IncreaseRetentionPeriod(context.Background(), 23*time.Hour) }, kind: ErrInvalidArgument, wantMsg: []string{"23h0m0s", "24h0m0s"}},
		{name: "decrease above current", change: func(s *Stream) error { return s.DecreaseRetentionPeriod(context.Background(), 25*time.Hour) }, kind: ErrInvalidArgument, wantMsg: []string{"25h0m0s", "24h0m0s"}},
		{name: "increase to zero", change: func(s *Stream) error { return s.IncreaseRetentionPeriod(context.Background(), 0) }, kind: ErrInvalidArgument, wantMsg: []string{"0s"}},
		{name: "decrease to zero", change: func(s *Stream) error { return s.DecreaseRetentionPeriod(context.Background(), 0) }, kind: ErrInvalidArgument, wantMsg: []string{"0s"}},
		{name: "decrease to negative", change: func(s *Stream) error { return s.DecreaseRetentionPeriod(context.Background(), -time.Hour) }, kind: ErrInvalidArgument, wantMsg: []string{"-1h0m0s"}},
		{name: "increase to current", change: func(s *Stream) error { return s.IncreaseRetentionPeriod(context.Background(), 24*time.Hour) }},
		{name: "decrease to current", change: func(s *Stream) error { return s.DecreaseRetentionPeriod(context.Background(), 24*time.Hour) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s := newTestStream(t)
			err := tt.change(s)
			sum, derr := s.Describe(context.Background())
			require.NoError(t, derr)
			assert.Equal(t, 24*time.Hour, sum.RetentionPeriod, "the retention period must not change")
			if tt.kind == nil {
				assert.NoError(t, err)
				return
			}
			assertKind(t, err, tt.kind, tt.wantMsg...)
		})
	}
}

// streamOps are the operations of a Stream, each called with valid
// arguments, for checking what they do on a deleted or closed stream.
func streamOps(it ShardIterator) map[string]func(s *Stream) error {
	ctx := context.Background()
	return map[string]func(s *Stream) error{
		"PutRecord": func(s *Stream) error {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		},
		"PutRecords": func(s *Stream) error {
			_, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "k", Data: []byte("v")}}})
			return err
		},
		"GetShardIterator": func(s *Stream) error {
			_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: "shardId-000000000000", StartingPosition: StartingPosition{Type: TrimHorizon}})
			return err
		},
		"GetRecords": func(s *Stream) error {
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			return err
		},
		"GetRecords without iterator": func(s *Stream) error {
			_, err := s.GetRecords(ctx, GetRecordsInput{})
			return err
		},
		"ListShards": func(s *Stream) error {
			_, err := s.ListShards(ctx, ListShardsInput{})
			return err
		},
		"Describe": func(s *Stream) error {
			_, err := s.Describe(ctx)
			return err
		},
		"IncreaseRetentionPeriod": func(s *Stream) error { return s.IncreaseRetentionPeriod(ctx, 48*time.Hour) },
		"DecreaseRetentionPeriod": func(s *Stream) error { return s.DecreaseRetentionPeriod(ctx, time.Hour) },
		"Records": func(s *Stream) error {
			for _, err := range s.Records(ctx, "shardId-000000000000", StartingPosition{Type: TrimHorizon}) {
				return err
			}
			return nil // an empty shard: nothing to yield
		},
	}
}

func TestDeletedStream(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	putString(t, s, "k", "v")
	it := iterator(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	require.NoError(t, c.DeleteStream(ctx, "test"))

	for name, op := range streamOps(it) {
		t.Run(name, func(t *testing.T) {
			assertKind(t, op(s), ErrResourceNotFound, "stream test")
		})
	}
	t.Run("DeleteStream", func(t *testing.T) {
		assertKind(t, c.DeleteStream(ctx, "test"), ErrResourceNotFound, `"test"`)
	})
	t.Run("Cluster.Stream", func(t *testing.T) {
		_, err := c.Stream("test")
		assertKind(t, err, ErrResourceNotFound, `"test"`)
	})
}

func TestClosedCluster(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	it := iterator(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close may be called twice")

	for name, op := range streamOps(it) {
		t.Run(name, func(t *testing.T) {
			assert.ErrorIs(t, op(s), ErrClosed)
		})
	}
	t.Run("CreateStream", func(t *testing.T) {
		_, err := c.CreateStream(ctx, "new")
		assert.ErrorIs(t, err, ErrClosed)
	})
	t.Run("Stream", func(t *testing.T) {
		_, err := c.Stream("test")
		assert.ErrorIs(t, err, ErrClosed)
	})
	t.Run("ListStreams", func(t *testing.T) {
		_, err := c.ListStreams(ctx)
		assert.ErrorIs(t, err, ErrClosed)
	})
	t.Run("DeleteStream", func(t *testing.T) {
		assert.ErrorIs(t, c.DeleteStream(ctx, "test"), ErrClosed)
	})
	assert.Empty(t, ErrorName(ErrClosed), "ErrClosed is not a Kinesis error")
}

func TestCanceledContext(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	it := iterator(t, s, "shardId-000000000000", StartingPosition{Type: TrimHorizon})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k"})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = c.CreateStream(ctx, "other")
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, c.DeleteStream(ctx, "test"), context.Canceled)
	assert.Zero(t, s.Stats().Total.RecordsPut)
}

func TestErrorNames(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ErrResourceNotFound, "ResourceNotFoundException"},
		{ErrResourceInUse, "ResourceInUseException"},
		{ErrInvalidArgument, "InvalidArgumentException"},
		{ErrLimitExceeded, "LimitExceededException"},
		{ErrProvisionedThroughputExceeded, "ProvisionedThroughputExceededException"},
		{ErrExpiredIterator, "ExpiredIteratorException"},
		{ErrExpiredNextToken, "ExpiredNextTokenException"},
		{ErrInternalFailure, "InternalFailureException"},
		{ErrValidation, "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, ErrorName(tt.err))
			assert.Equal(t, tt.want, tt.err.Error())
			wrapped := fmt.Errorf("context: %w", errorf("Op", tt.err, "value %d", 7))
			assert.Equal(t, tt.want, ErrorName(wrapped))
		})
	}
	assert.Empty(t, ErrorName(nil))
	assert.Empty(t, ErrorName(errors.New("other")))
	assert.Empty(t, ErrorName(context.Canceled))
}

func TestErrorAs(t *testing.T) {
	_, s := newTestStream(t)
	_, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: strings.Repeat("k", 300)})
	require.Error(t, err)
	wrapped := fmt.Errorf("send: %w", err)

	var e *Error
	require.ErrorAs(t, wrapped, &e)
	assert.Equal(t, "PutRecord", e.Op)
	assert.Equal(t, ErrValidation, e.Kind)
	assert.Contains(t, e.Msg, "300 characters; the limit is 256")
	assert.Equal(t, "runnel: PutRecord: ValidationException: "+e.Msg, e.Error())
	assert.ErrorIs(t, wrapped, ErrValidation)
	assert.NotErrorIs(t, wrapped, ErrInvalidArgument)
	assert.Equal(t, "ValidationException", ErrorName(wrapped))
}

func TestExportedValidators(t *testing.T) {
	assert.NoError(t, ValidateStreamName("orders-2026.v1_x"))
	for _, bad := range []string{"", "has space", strings.Repeat("a", 129), "ümlaut"} {
		err := ValidateStreamName(bad)
		assert.ErrorIs(t, err, ErrValidation, "%q", bad)
	}
	assert.NoError(t, ValidatePartitionKey(strings.Repeat("ü", MaxPartitionKeyLength)))
	for _, bad := range []string{"", strings.Repeat("k", MaxPartitionKeyLength+1), "\xff"} {
		err := ValidatePartitionKey(bad)
		assert.ErrorIs(t, err, ErrValidation, "%q", bad)
	}
}

func TestUserRecordHashKey(t *testing.T) {
	k, err := UserRecord{PartitionKey: "customer-1"}.HashKey()
	require.NoError(t, err)
	assert.Equal(t, HashKeyOf("customer-1"), k)
	k, err = UserRecord{PartitionKey: "customer-1", ExplicitHashKey: "42"}.HashKey()
	require.NoError(t, err)
	assert.Equal(t, HashKey{lo: 42}, k)
	_, err = UserRecord{PartitionKey: "k", ExplicitHashKey: "x"}.HashKey()
	assert.ErrorIs(t, err, ErrValidation)
}
