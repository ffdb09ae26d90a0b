package runnel

import (
	"encoding"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// awsExampleSeq is the sequence number of the AWS API reference's examples:
// valid for Kinesis, but not in runnel's layout.
const awsExampleSeq = "49590338271490256608559692538361571095921575989136588898"

// The interfaces SequenceNumber promises.
var (
	_ encoding.TextMarshaler   = SequenceNumber{}
	_ encoding.TextAppender    = SequenceNumber{}
	_ encoding.TextUnmarshaler = (*SequenceNumber)(nil)
)

// runnelLayout returns the 56-digit text runnel gives counter and shard.
func runnelLayout(counter, shard uint64) string {
	c, s := strconv.FormatUint(counter, 10), strconv.FormatUint(shard, 10)
	return "49" + strings.Repeat("0", seqCounterWidth-len(c)) + c + strings.Repeat("0", seqShardWidth-len(s)) + s
}

func TestParseSequenceNumberAnyKinesisNumber(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		native SequenceNumber // the value runnel built, for numbers in its layout
	}{
		{name: "AWS example", in: awsExampleSeq},
		{name: "zero", in: "0"},
		{name: "one", in: "1"},
		{name: "short", in: "49123"},
		{name: "129 digits", in: "1" + strings.Repeat("0", 128)},
		{name: "129 nines", in: strings.Repeat("9", 129)},
		{name: "55 digits", in: runnelLayout(7, 3)[1:]},
		{name: "57 digits", in: runnelLayout(7, 3) + "1"},
		{name: "56 digits, prefix 48", in: "48" + runnelLayout(7, 3)[2:]},
		{name: "56 digits, prefix 50", in: "50" + runnelLayout(7, 3)[2:]},
		{name: "runnel layout, counter 0", in: "49" + strings.Repeat("0", 54)},
		{name: "runnel layout, counter 0, shard 3", in: runnelLayout(0, 3)},
		{name: "runnel layout, counter 2^64", in: "49" + strings.Repeat("0", 22) + "18446744073709551616" + "000000000003"},
		{name: "runnel layout, counter all nines", in: "49" + strings.Repeat("9", 42) + "000000000003"},
		{name: "runnel layout", in: runnelLayout(7, 3), native: SequenceNumber{counter: 7, shard: 3}},
		{name: "runnel layout, counter 1, shard 0", in: runnelLayout(1, 0), native: SequenceNumber{counter: 1}},
		{name: "runnel layout, counter 2^64-1", in: runnelLayout(math.MaxUint64, maxShardNumber), native: SequenceNumber{counter: math.MaxUint64, shard: maxShardNumber}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseSequenceNumber(tt.in)
			require.NoError(t, err)
			require.False(t, n.IsZero())
			assert.Equal(t, tt.in, n.String())
			if tt.native.IsZero() {
				assert.True(t, n.foreign(), "%s should be foreign", tt.in)
				assert.False(t, n.native())
				assert.Empty(t, n.ShardID())
			} else {
				assert.True(t, n == tt.native, "parsed %+v, runnel built %+v", n, tt.native)
				assert.True(t, n.native())
				assert.False(t, n.foreign())
				assert.Equal(t, tt.in, tt.native.String())
				assert.Equal(t, shardID(tt.native.shard), n.ShardID())
			}
			assert.Equal(t, 0, n.Cmp(n))

			text, err := n.MarshalText()
			require.NoError(t, err)
			assert.Equal(t, tt.in, string(text))
			appended, err := n.AppendText([]byte("seq="))
			require.NoError(t, err)
			assert.Equal(t, "seq="+tt.in, string(appended))
			var u SequenceNumber
			require.NoError(t, u.UnmarshalText(text))
			assert.True(t, u == n, "UnmarshalText gave %+v, want %+v", u, n)

			again, err := ParseSequenceNumber(n.String())
			require.NoError(t, err)
			assert.True(t, again == n)
		})
	}
}

func TestParseSequenceNumberSyntax(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "empty", in: ""},
		{name: "130 digits", in: "1" + strings.Repeat("0", 129)},
		{name: "leading zero", in: "01"},
		{name: "leading zero on a runnel number", in: "0" + runnelLayout(7, 3)},
		{name: "letter", in: "12a"},
		{name: "negative", in: "-1"},
		{name: "plus sign", in: "+1"},
		{name: "space", in: " 1"},
		{name: "non-ASCII digit", in: "１"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseSequenceNumber(tt.in)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrValidation), "%v is not an ErrValidation", err)
			assert.True(t, n.IsZero())
			if tt.in != "" {
				assert.Contains(t, err.Error(), strconv.Quote(tt.in)[:min(len(strconv.Quote(tt.in)), 20)], "the message names the value")
			}
			u := SequenceNumber{counter: 7, shard: 3}
			assert.Error(t, u.UnmarshalText([]byte(tt.in+"x")))
			assert.Equal(t, SequenceNumber{counter: 7, shard: 3}, u, "a failed UnmarshalText leaves the value alone")
		})
	}
}

func TestSequenceNumberJSON(t *testing.T) {
	type checkpoint struct {
		Shard string         `json:"shard"`
		Seq   SequenceNumber `json:"seq"`
	}
	tests := []struct {
		name string
		seq  string // "" for the zero value
	}{
		{name: "AWS example", seq: awsExampleSeq},
		{name: "zero number", seq: "0"},
		{name: "129 digits", seq: strings.Repeat("7", 129)},
		{name: "runnel number", seq: runnelLayout(7, 3)},
		{name: "no number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in checkpoint
			in.Shard = "shardId-000000000003"
			if tt.seq != "" {
				var err error
				in.Seq, err = ParseSequenceNumber(tt.seq)
				require.NoError(t, err)
			}
			b, err := json.Marshal(in)
			require.NoError(t, err)
			assert.JSONEq(t, `{"shard":"shardId-000000000003","seq":"`+tt.seq+`"}`, string(b))
			var out checkpoint
			require.NoError(t, json.Unmarshal(b, &out))
			assert.True(t, out == in, "decoded %+v, want %+v", out, in)
		})
	}
	t.Run("invalid", func(t *testing.T) {
		var out checkpoint
		err := json.Unmarshal([]byte(`{"seq":"01"}`), &out)
		assert.ErrorIs(t, err, ErrValidation)
	})
}

func TestSequenceNumberCmpExamples(t *testing.T) {
	parse := func(s string) SequenceNumber {
		t.Helper()
		n, err := ParseSequenceNumber(s)
		require.NoError(t, err)
		return n
	}
	runnel := SequenceNumber{counter: 7, shard: 3}
	tests := []struct {
		name string
		a, b SequenceNumber
		want int
	}{
		{name: "zero value below 0", a: SequenceNumber{}, b: parse("0"), want: -1},
		{name: "zero value below runnel's", a: SequenceNumber{}, b: runnel, want: -1},
		{name: "zero values equal", a: SequenceNumber{}, b: SequenceNumber{}, want: 0},
		{name: "short foreign below runnel's", a: parse("99"), b: runnel, want: -1},
		{name: "AWS example above runnel's small counter", a: parse(awsExampleSeq), b: runnel, want: 1},
		{name: "AWS example above every native", a: parse(awsExampleSeq), b: SequenceNumber{counter: math.MaxUint64, shard: maxShardNumber}, want: 1},
		{name: "56 digits, prefix 48, below every native", a: parse("48" + strings.Repeat("9", 54)), b: SequenceNumber{counter: 1}, want: -1},
		{name: "56 digits, prefix 50, above every native", a: parse("50" + strings.Repeat("0", 54)), b: SequenceNumber{counter: math.MaxUint64, shard: maxShardNumber}, want: 1},
		{name: "counter overflow above every native", a: parse("49" + strings.Repeat("9", 54)), b: SequenceNumber{counter: math.MaxUint64, shard: maxShardNumber}, want: 1},
		{name: "counter 0 below every native", a: parse(runnelLayout(0, maxShardNumber)), b: SequenceNumber{counter: 1}, want: -1},
		{name: "57 digits above 56", a: parse("1" + strings.Repeat("0", 56)), b: runnel, want: 1},
		{name: "foreign by width, not as strings", a: parse("9"), b: parse("10"), want: -1},
		{name: "foreign equal", a: parse(awsExampleSeq), b: parse(awsExampleSeq), want: 0},
		{name: "native by shard", a: SequenceNumber{counter: 7, shard: 2}, b: runnel, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.a.Cmp(tt.b))
			assert.Equal(t, -tt.want, tt.b.Cmp(tt.a))
		})
	}
}

// seqBig returns n as a big.Int, or nil for the zero value.
func seqBig(t testing.TB, n SequenceNumber) *big.Int {
	t.Helper()
	if n.IsZero() {
		return nil
	}
	v, ok := new(big.Int).SetString(n.String(), 10)
	if !ok {
		t.Fatalf("String of %+v is %q, not a decimal", n, n.String())
	}
	return v
}

// seqBigCmp compares like Cmp, with nil (the zero value) below every number.
func seqBigCmp(a, b *big.Int) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Cmp(b)
}

// randomSequenceNumber returns a native or foreign number of a random width,
// biased towards the edges of runnel's layout, or now and then the zero value.
func randomSequenceNumber(t testing.TB, rng *rand.Rand) SequenceNumber {
	t.Helper()
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	counter := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return 1 + rng.Uint64N(100)
		case 1:
			return math.MaxUint64 - rng.Uint64N(100)
		default:
			return max(1, rng.Uint64()>>rng.UintN(64))
		}
	}
	var s string
	switch rng.IntN(10) {
	case 0:
		return SequenceNumber{}
	case 1, 2, 3:
		n := SequenceNumber{counter: counter(), shard: rng.Uint64N(maxShardNumber + 1)}
		if rng.IntN(4) == 0 {
			n.shard = rng.Uint64N(5)
		}
		return n
	case 4: // foreign of any width
		w := 1 + rng.IntN(129)
		s = string(byte('1'+rng.IntN(9))) + digits(w-1)
		if w == 1 && rng.IntN(5) == 0 {
			s = "0"
		}
	case 5: // 56 digits, other prefix
		s = string(byte('1'+rng.IntN(9))) + digits(55)
	case 6: // runnel's layout, counter beyond 64 bits
		s = "49" + strings.Repeat("0", 22-1) + "1" + digits(20) + digits(12)
		if rng.IntN(2) == 0 {
			s = "49" + "1" + digits(41) + digits(12)
		}
	case 7: // runnel's layout, counter 0
		s = "49" + strings.Repeat("0", 42) + digits(12)
	case 8: // near runnel's width
		w := 54 + rng.IntN(5)
		s = "49" + digits(w-2)
	default: // exactly 2^64-1 or 2^64 as the counter
		s = runnelLayout(math.MaxUint64, rng.Uint64N(maxShardNumber+1))
		if rng.IntN(2) == 0 {
			s = "49" + strings.Repeat("0", 22) + "18446744073709551616" + digits(12)
		}
	}
	n, err := ParseSequenceNumber(s)
	if err != nil {
		t.Fatalf("ParseSequenceNumber(%q): %v", s, err)
	}
	return n
}

// inRunnelLayout is the canonical rule, checked with math/big: s is native
// iff it has 56 digits, starts with "49" and its counter part is in 1…2^64-1.
func inRunnelLayout(s string) bool {
	if len(s) != seqDigits || !strings.HasPrefix(s, "49") {
		return false
	}
	c, ok := new(big.Int).SetString(s[2:2+seqCounterWidth], 10)
	return ok && c.Sign() > 0 && c.IsUint64()
}

func TestSequenceNumberCmpProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(20250101, 56))
	pool := make([]SequenceNumber, 0, 3000)
	for range cap(pool) {
		pool = append(pool, randomSequenceNumber(t, rng))
	}
	var natives, foreigns int
	for _, n := range pool {
		switch {
		case n.IsZero():
			require.False(t, n.native() || n.foreign())
			continue
		case n.native():
			natives++
			require.False(t, n.foreign())
			require.Equal(t, shardID(n.shard), n.ShardID())
		default:
			foreigns++
			require.True(t, n.foreign())
			require.Empty(t, n.ShardID())
		}
		s := n.String()
		p, err := ParseSequenceNumber(s)
		require.NoError(t, err, s)
		require.True(t, p == n, "Parse(String(%+v)) = %+v", n, p)
		require.Equal(t, inRunnelLayout(s), n.native(), "canonical form of %q", s)
	}
	require.Greater(t, natives, 500)
	require.Greater(t, foreigns, 500)

	for range 5000 {
		a, b := pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))]
		if rng.IntN(20) == 0 {
			b = a // equal pairs too
		}
		want := seqBigCmp(seqBig(t, a), seqBig(t, b))
		require.Equal(t, want, a.Cmp(b), "%q vs %q", a, b)
		require.Equal(t, -a.Cmp(b), b.Cmp(a), "antisymmetry of %q and %q", a, b)
		require.Equal(t, a == b, a.Cmp(b) == 0, "%+v vs %+v", a, b)
	}
}

func TestSequenceNumberCmpDoesNotAllocate(t *testing.T) {
	foreign, err := ParseSequenceNumber(awsExampleSeq)
	require.NoError(t, err)
	long, err := ParseSequenceNumber(strings.Repeat("9", 129))
	require.NoError(t, err)
	native := SequenceNumber{counter: 7, shard: 3}
	tests := []struct {
		name string
		a, b SequenceNumber
	}{
		{name: "native vs foreign", a: native, b: foreign},
		{name: "foreign vs native", a: foreign, b: native},
		{name: "native vs long foreign", a: native, b: long},
		{name: "foreign vs foreign", a: foreign, b: long},
		{name: "native vs native", a: native, b: SequenceNumber{counter: 8}},
		{name: "zero vs foreign", a: SequenceNumber{}, b: foreign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sink int
			allocs := testing.AllocsPerRun(1000, func() { sink += tt.a.Cmp(tt.b) })
			assert.Zero(t, allocs)
			_ = sink
		})
	}
}
