package runnel

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const shard0 = "shardId-000000000000"

// putN writes records "0" … "n-1" (after prefix) to a one-shard stream and
// returns their sequence numbers.
func putN(t *testing.T, s *Stream, prefix string, n int) []SequenceNumber {
	t.Helper()
	seqs := make([]SequenceNumber, n)
	for i := range seqs {
		seqs[i] = putString(t, s, "k", fmt.Sprint(prefix, i)).SequenceNumber
	}
	return seqs
}

// get calls GetRecords and fails the test on error.
func get(t *testing.T, s *Stream, it ShardIterator, limit int) GetRecordsOutput {
	t.Helper()
	out, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it, Limit: limit})
	require.NoError(t, err)
	return out
}

func TestIteratorEmptyShard(t *testing.T) {
	for _, from := range []StartingPosition{
		{Type: TrimHorizon},
		{Type: Latest},
		{Type: AtTimestamp, Timestamp: time.Now().Add(-time.Hour)},
		{Type: AtTimestamp, Timestamp: time.Now().Add(time.Hour)},
	} {
		t.Run(string(from.Type), func(t *testing.T) {
			_, s := newTestStream(t, WithShardCount(1))
			it := iterator(t, s, shard0, from)
			assert.Equal(t, "test", it.StreamName())
			assert.Equal(t, shard0, it.ShardID())
			for range 3 { // an empty shard keeps answering with a fresh iterator
				out := get(t, s, it, 0)
				assert.Empty(t, out.Records)
				assert.Zero(t, out.MillisBehindLatest)
				assert.Empty(t, out.ChildShards)
				require.False(t, out.NextShardIterator.IsZero(), "an open shard always gives a next iterator")
				it = out.NextShardIterator
			}
			// Records written later are read with the last iterator.
			putString(t, s, "k", "late")
			out := get(t, s, it, 0)
			if from.Type == AtTimestamp && from.Timestamp.After(time.Now()) {
				assert.Empty(t, out.Records, "the record arrived before the timestamp")
				return
			}
			assert.Equal(t, []string{"late"}, datas(out.Records))
		})
	}
}

func TestIteratorLatest(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	putN(t, s, "old", 3)
	it := iterator(t, s, shard0, StartingPosition{Type: Latest})
	out := get(t, s, it, 0)
	assert.Empty(t, out.Records)
	assert.Zero(t, out.MillisBehindLatest)

	putN(t, s, "new", 2)
	out = get(t, s, out.NextShardIterator, 0)
	assert.Equal(t, []string{"new0", "new1"}, datas(out.Records))
	// The first LATEST iterator, unused, reads the same.
	assert.Equal(t, []string{"new0", "new1"}, datas(get(t, s, it, 0).Records))
	out = get(t, s, out.NextShardIterator, 0)
	assert.Empty(t, out.Records)
}

func TestIteratorTrimHorizon(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	putN(t, s, "r", 3)
	out := get(t, s, iterator(t, s, shard0, StartingPosition{Type: TrimHorizon}), 0)
	assert.Equal(t, []string{"r0", "r1", "r2"}, datas(out.Records))
	for _, r := range out.Records {
		assert.Equal(t, "k", r.PartitionKey)
		assert.False(t, r.ApproximateArrivalTimestamp.IsZero())
	}
}

func TestIteratorSequenceNumber(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
	seqs := putN(t, s, "r", 5)
	tests := []struct {
		name string
		from StartingPosition
		want []string
	}{
		{name: "at first", from: StartingPosition{Type: AtSequenceNumber, SequenceNumber: seqs[0]}, want: []string{"r0", "r1", "r2", "r3", "r4"}},
		{name: "at middle", from: StartingPosition{Type: AtSequenceNumber, SequenceNumber: seqs[2]}, want: []string{"r2", "r3", "r4"}},
		{name: "at last", from: StartingPosition{Type: AtSequenceNumber, SequenceNumber: seqs[4]}, want: []string{"r4"}},
		{name: "after first", from: StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[0]}, want: []string{"r1", "r2", "r3", "r4"}},
		{name: "after middle", from: StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[2]}, want: []string{"r3", "r4"}},
		{name: "after last", from: StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[4]}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := get(t, s, iterator(t, s, shard0, tt.from), 0)
			assert.Equal(t, tt.want, nilIfEmpty(datas(out.Records)))
			assert.Zero(t, out.MillisBehindLatest)
		})
	}
	t.Run("parsed number", func(t *testing.T) {
		n, err := ParseSequenceNumber(seqs[3].String())
		require.NoError(t, err)
		out := get(t, s, iterator(t, s, shard0, StartingPosition{Type: AtSequenceNumber, SequenceNumber: n}), 0)
		assert.Equal(t, []string{"r3", "r4"}, datas(out.Records))
	})
	t.Run("after last then write", func(t *testing.T) {
		it := iterator(t, s, shard0, StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[4]})
		putString(t, s, "k", "r5")
		assert.Equal(t, []string{"r5"}, datas(get(t, s, it, 0).Records))
	})
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestIteratorAtTimestamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
		t0 := time.Now()
		putString(t, s, "k", "r0")
		time.Sleep(time.Second)
		t1 := time.Now()
		putString(t, s, "k", "r1")
		time.Sleep(time.Second)
		t2 := time.Now()
		putString(t, s, "k", "r2")
		time.Sleep(time.Second)

		tests := []struct {
			name string
			ts   time.Time
			want []string
		}{
			{name: "before all", ts: t0.Add(-time.Hour), want: []string{"r0", "r1", "r2"}},
			{name: "at first", ts: t0, want: []string{"r0", "r1", "r2"}},
			{name: "between records", ts: t0.Add(500 * time.Millisecond), want: []string{"r1", "r2"}},
			{name: "at second", ts: t1, want: []string{"r1", "r2"}},
			{name: "just after second", ts: t1.Add(time.Millisecond), want: []string{"r2"}},
			{name: "at last", ts: t2, want: []string{"r2"}},
			{name: "after all", ts: t2.Add(time.Millisecond), want: nil},
		}
		for _, tt := range tests { // t.Run is not allowed inside a bubble
			out := get(t, s, iterator(t, s, shard0, StartingPosition{Type: AtTimestamp, Timestamp: tt.ts}), 0)
			assert.Equal(t, tt.want, nilIfEmpty(datas(out.Records)), tt.name)
			for _, r := range out.Records {
				assert.False(t, r.ApproximateArrivalTimestamp.Before(tt.ts), tt.name)
			}
		}
		// Arrival timestamps are the virtual times of the writes.
		recs := readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})
		require.Len(t, recs, 3)
		assert.True(t, t0.Equal(recs[0].ApproximateArrivalTimestamp))
		assert.True(t, t1.Equal(recs[1].ApproximateArrivalTimestamp))
		assert.True(t, t2.Equal(recs[2].ApproximateArrivalTimestamp))
	})
}

func TestIteratorAtFutureTimestamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		putString(t, s, "k", "before-iterator")
		ts := time.Now().Add(10 * time.Second)
		it := iterator(t, s, shard0, StartingPosition{Type: AtTimestamp, Timestamp: ts})

		time.Sleep(time.Second)
		putString(t, s, "k", "before-timestamp")
		// Reading now finds nothing, and must not move the iterator past the
		// timestamp's position.
		out := get(t, s, it, 0)
		assert.Empty(t, out.Records)
		assert.Zero(t, out.MillisBehindLatest)
		require.False(t, out.NextShardIterator.IsZero())
		// The iterator survives its token form.
		next, err := ParseShardIterator(out.NextShardIterator.String())
		require.NoError(t, err)
		require.Equal(t, out.NextShardIterator, next)

		time.Sleep(4 * time.Second)
		putString(t, s, "k", "still-before")
		time.Sleep(5 * time.Second) // now == ts
		putString(t, s, "k", "at-timestamp")
		time.Sleep(time.Second)
		putString(t, s, "k", "after-timestamp")

		out = get(t, s, next, 0)
		assert.Equal(t, []string{"at-timestamp", "after-timestamp"}, datas(out.Records))
		// The first iterator, never used, agrees.
		assert.Equal(t, []string{"at-timestamp", "after-timestamp"}, datas(get(t, s, it, 0).Records))
		// After records were returned the iterator continues normally.
		putString(t, s, "k", "later")
		assert.Equal(t, []string{"later"}, datas(get(t, s, out.NextShardIterator, 0).Records))
	})
}

func TestGetRecordsLimit(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	putN(t, s, "r", 10)
	it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	var sizes []int
	var all []string
	for range 5 {
		out := get(t, s, it, 3)
		sizes = append(sizes, len(out.Records))
		all = append(all, datas(out.Records)...)
		it = out.NextShardIterator
	}
	assert.Equal(t, []int{3, 3, 3, 1, 0}, sizes)
	assert.Equal(t, []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"}, all)
}

func TestGetRecordsTenMiBCap(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()),
		WithMaxRecordSize(10<<20), WithMaxPutRecordsSize(10<<20))
	ctx := context.Background()
	put := func(key string, size int) {
		t.Helper()
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: key, Data: make([]byte, size-len(key))})
		require.NoError(t, err)
	}
	const mib = 1 << 20
	put("a", 4*mib)
	put("b", 4*mib)
	put("c", 4*mib)  // a+b+c is 12 MiB: over the cap
	put("d", 2*mib)  // c+d is exactly 6 MiB
	put("e", 1)      // small record before a full-size one
	put("f", 10*mib) // a whole call's worth on its own
	put("g", 1)

	it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	var calls [][]string
	for range 6 {
		out := get(t, s, it, 0)
		var keys []string
		bytes := 0
		for _, r := range out.Records {
			keys = append(keys, r.PartitionKey)
			bytes += len(r.PartitionKey) + len(r.Data)
		}
		assert.LessOrEqual(t, bytes, MaxGetRecordsBytes)
		calls = append(calls, keys)
		it = out.NextShardIterator
	}
	assert.Equal(t, [][]string{{"a", "b"}, {"c", "d", "e"}, {"f"}, {"g"}, nil, nil}, calls)
}

func TestShardIteratorToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(3))
		putString(t, s, "k", "v")
		its := []ShardIterator{
			iterator(t, s, "shardId-000000000002", StartingPosition{Type: TrimHorizon}),
			iterator(t, s, "shardId-000000000001", StartingPosition{Type: Latest}),
			iterator(t, s, shard0, StartingPosition{Type: AtTimestamp, Timestamp: time.Now()}),
		}
		for _, it := range its {
			tok := it.String()
			assert.NotEmpty(t, tok)
			assert.Equal(t, base64.RawURLEncoding.EncodeToString(mustDecode(t, tok)), tok, "tokens are URL-safe base64")
			back, err := ParseShardIterator(tok)
			require.NoError(t, err)
			assert.Equal(t, it, back)
			assert.Equal(t, it.ShardID(), back.ShardID())
			assert.Equal(t, "test", back.StreamName())
			assert.Equal(t, tok, back.String())
		}
		var zero ShardIterator
		assert.Empty(t, zero.String())
		assert.Empty(t, zero.ShardID())
		assert.True(t, zero.IsZero())

		// A parsed token reads like the iterator it came from.
		back, err := ParseShardIterator(its[0].String())
		require.NoError(t, err)
		assert.Equal(t, get(t, s, its[0], 0), get(t, s, back, 0))
	})
}

func mustDecode(t *testing.T, tok string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(tok)
	require.NoError(t, err)
	return b
}

func TestShardIteratorTampering(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	tok := it.String()
	raw := mustDecode(t, tok)

	t.Run("every bit of the token", func(t *testing.T) {
		for i := range raw {
			for bit := range 8 {
				b := append([]byte(nil), raw...)
				b[i] ^= 1 << bit
				_, err := ParseShardIterator(base64.RawURLEncoding.EncodeToString(b))
				require.ErrorIs(t, err, ErrInvalidArgument, "byte %d bit %d", i, bit)
			}
		}
	})
	t.Run("every character of the token", func(t *testing.T) {
		for i := range tok {
			for _, c := range []byte("AQgw_-9z") {
				if tok[i] == c {
					continue
				}
				bad := tok[:i] + string(c) + tok[i+1:]
				back, err := ParseShardIterator(bad)
				if err == nil {
					// The only other spellings accepted must mean the same
					// iterator (unused low bits of the last base64 digit).
					assert.Equal(t, it, back, "tampered token %q accepted", bad)
					assert.Equal(t, len(tok)-1, i, "tampered character %d accepted", i)
					continue
				}
				assert.ErrorIs(t, err, ErrInvalidArgument)
			}
		}
	})
	tests := []struct {
		name string
		tok  string
	}{
		{name: "empty", tok: ""},
		{name: "truncated", tok: tok[:len(tok)-2]},
		{name: "extended", tok: tok + "AA"},
		{name: "not base64", tok: "***" + tok[3:]},
		{name: "standard base64 padding", tok: tok + "="},
		{name: "too long", tok: strings.Repeat("A", 2000)},
		{name: "wrong version", tok: reencode(raw, func(b []byte) { b[0] = 2 })},
		{name: "empty stream name", tok: reencode(raw[:len(raw)-4-len("test")], nil)},
		{name: "bad stream name", tok: reencode(append(raw[:len(raw)-4-len("test"):len(raw)-4-len("test")], "a/b"...), nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			back, err := ParseShardIterator(tt.tok)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			assert.True(t, back.IsZero())
		})
	}
}

// reencode copies a token body (without its checksum), lets edit change it,
// and returns it as a token with a valid checksum: a forgery that only the
// content checks can catch.
func reencode(body []byte, edit func([]byte)) string {
	if len(body) > 4 && edit != nil { // a full token: drop its checksum
		body = body[:len(body)-4]
	}
	b := append([]byte(nil), body...)
	if edit != nil {
		edit(b)
	}
	sum := crc32.ChecksumIEEE(b)
	b = append(b, byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum))
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestIteratorExpiry(t *testing.T) {
	tests := []struct {
		name string
		opts []StreamOption
		ttl  time.Duration
	}{
		{name: "default 5 minutes", ttl: 5 * time.Minute},
		{name: "custom 30 seconds", opts: []StreamOption{WithIteratorTTL(30 * time.Second)}, ttl: 30 * time.Second},
		{name: "custom 1 hour", opts: []StreamOption{WithIteratorTTL(time.Hour), WithRetention(48 * time.Hour)}, ttl: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, s := newTestStream(t, append(tt.opts, WithShardCount(1))...)
				putString(t, s, "k", "v")
				it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})

				time.Sleep(tt.ttl)
				out := get(t, s, it, 1) // valid up to and including its TTL
				assert.Equal(t, []string{"v"}, datas(out.Records))

				time.Sleep(time.Millisecond)
				_, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it})
				assertKind(t, err, ErrExpiredIterator, shard0, "expired")
				assert.Equal(t, "ExpiredIteratorException", ErrorName(err))

				// The iterator GetRecords returned is fresh: it lives a TTL
				// from the call that returned it.
				time.Sleep(tt.ttl - time.Millisecond)
				putString(t, s, "k", "w")
				out = get(t, s, out.NextShardIterator, 0)
				assert.Equal(t, []string{"w"}, datas(out.Records))
				time.Sleep(tt.ttl + time.Millisecond)
				_, err = s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: out.NextShardIterator})
				assert.ErrorIs(t, err, ErrExpiredIterator)
			})
		})
	}
}

func TestMillisBehindLatest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		putString(t, s, "k", "r0")
		time.Sleep(3 * time.Second)
		putString(t, s, "k", "r1")
		time.Sleep(7 * time.Second)
		putString(t, s, "k", "r2")
		time.Sleep(500 * time.Millisecond)

		it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
		// Behind = age of the oldest record not yet read.
		out := get(t, s, it, 1)
		assert.Equal(t, []string{"r0"}, datas(out.Records))
		assert.EqualValues(t, 7500, out.MillisBehindLatest, "r1 arrived 7.5 s ago")

		time.Sleep(time.Second)
		out = get(t, s, out.NextShardIterator, 1)
		assert.Equal(t, []string{"r1"}, datas(out.Records))
		assert.EqualValues(t, 1500, out.MillisBehindLatest, "r2 arrived 1.5 s ago")

		out = get(t, s, out.NextShardIterator, 1)
		assert.Equal(t, []string{"r2"}, datas(out.Records))
		assert.Zero(t, out.MillisBehindLatest, "caught up")

		time.Sleep(time.Minute)
		out = get(t, s, out.NextShardIterator, 0)
		assert.Empty(t, out.Records)
		assert.Zero(t, out.MillisBehindLatest, "still caught up: nothing new")
	})
}

func TestRecordsIterator(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1), WithLimits(Unlimited()))
	ctx := context.Background()
	seqs := putN(t, s, "r", 25)

	t.Run("everything, then stops when caught up", func(t *testing.T) {
		var got []string
		for r, err := range s.Records(ctx, shard0, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			got = append(got, string(r.Data))
		}
		require.Len(t, got, 25)
		assert.Equal(t, "r0", got[0])
		assert.Equal(t, "r24", got[24])
	})
	t.Run("from a sequence number", func(t *testing.T) {
		var got []SequenceNumber
		for r, err := range s.Records(ctx, shard0, StartingPosition{Type: AfterSequenceNumber, SequenceNumber: seqs[20]}) {
			require.NoError(t, err)
			got = append(got, r.SequenceNumber)
		}
		assert.Equal(t, seqs[21:], got)
	})
	t.Run("break early", func(t *testing.T) {
		var got []string
		for r, err := range s.Records(ctx, shard0, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			got = append(got, string(r.Data))
			if len(got) == 3 {
				break
			}
		}
		assert.Equal(t, []string{"r0", "r1", "r2"}, got)
	})
	t.Run("latest yields nothing", func(t *testing.T) {
		for r, err := range s.Records(ctx, shard0, StartingPosition{Type: Latest}) {
			t.Errorf("unexpected record %q, %v", r.Data, err)
		}
	})
	t.Run("bad start yields the error once", func(t *testing.T) {
		n := 0
		for r, err := range s.Records(ctx, "shardId-000000000042", StartingPosition{Type: TrimHorizon}) {
			n++
			assert.ErrorIs(t, err, ErrResourceNotFound)
			assert.Zero(t, r)
		}
		assert.Equal(t, 1, n)
	})
}

func TestRecordsIteratorWaitsWhenThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		ctx := context.Background()
		putN(t, s, "r", 3)
		it := iterator(t, s, shard0, StartingPosition{Type: Latest})
		for range 5 { // use up the shard's 5 calls per second
			get(t, s, it, 0)
		}
		start := time.Now()
		var got []string
		for r, err := range s.Records(ctx, shard0, StartingPosition{Type: TrimHorizon}) {
			require.NoError(t, err)
			got = append(got, string(r.Data))
		}
		assert.Equal(t, []string{"r0", "r1", "r2"}, got)
		assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "Records waits out the throttling")
		assert.Less(t, time.Since(start), 2*time.Second)

		// A context that ends while Records waits ends the iteration.
		for range 5 {
			_, _ = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		var errs []error
		for _, err := range s.Records(short, shard0, StartingPosition{Type: TrimHorizon}) {
			errs = append(errs, err)
		}
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], context.DeadlineExceeded)
	})
}

func TestGetRecordsBufferReuse(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	putN(t, s, "r", 10)
	buf := make([]Record, 0, 16)
	it := iterator(t, s, shard0, StartingPosition{Type: TrimHorizon})
	out, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it, Limit: 4, Buffer: buf})
	require.NoError(t, err)
	require.Len(t, out.Records, 4)
	assert.Same(t, &buf[:1][0], &out.Records[0], "the records are appended to Buffer[:0]")
	first := string(out.Records[0].Data)

	// Passing the previous result as Buffer reuses it again.
	out2, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: out.NextShardIterator, Limit: 4, Buffer: out.Records})
	require.NoError(t, err)
	require.Len(t, out2.Records, 4)
	assert.Same(t, &buf[:1][0], &out2.Records[0])
	assert.Equal(t, []string{"r4", "r5", "r6", "r7"}, datas(out2.Records))
	assert.Equal(t, "r0", first)

	// A buffer too small grows like append.
	small := make([]Record, 0, 1)
	out3, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it, Buffer: small})
	require.NoError(t, err)
	assert.Len(t, out3.Records, 10)
	// A non-empty buffer is overwritten, not appended to.
	full := []Record{{PartitionKey: "stale"}}
	out4, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: out2.NextShardIterator, Buffer: full})
	require.NoError(t, err)
	assert.Equal(t, []string{"r8", "r9"}, datas(out4.Records))
}
