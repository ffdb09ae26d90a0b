package runnel

import (
	"crypto/md5"
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
	"unsafe"
)

// HashKey is a position in Kinesis's 128-bit hash-key space (0 … 2^128−1).
// A record's hash key decides its shard: the MD5 digest of its partition key
// read as a big-endian integer, or its ExplicitHashKey. The zero value is the
// key 0. HashKey values compare with Cmp.
type HashKey struct{ hi, lo uint64 }

// MaxHashKey returns 2^128−1, the largest hash key.
func MaxHashKey() HashKey { return HashKey{hi: ^uint64(0), lo: ^uint64(0)} }

// HashKeyOf returns the hash key Kinesis derives from a partition key: the MD5
// digest of its UTF-8 bytes as a 128-bit big-endian integer.
func HashKeyOf(partitionKey string) HashKey {
	sum := md5.Sum(unsafe.Slice(unsafe.StringData(partitionKey), len(partitionKey)))
	return HashKey{hi: binary.BigEndian.Uint64(sum[:8]), lo: binary.BigEndian.Uint64(sum[8:])}
}

// ParseHashKey parses a decimal hash key as Kinesis accepts it in
// ExplicitHashKey and NewStartingHashKey: the pattern 0|([1-9]\d{0,38}) with a
// value of at most 2^128−1. A string that breaks the pattern is an
// ErrValidation (Kinesis's error for field-constraint failures); a value above
// 2^128−1 is an ErrInvalidArgument.
func ParseHashKey(s string) (HashKey, error) {
	k, err := parseHashKey("ParseHashKey", "hash key", s)
	if err != nil {
		return HashKey{}, err
	}
	return k, nil
}

// parseHashKey is ParseHashKey for operation op, naming the field what.
func parseHashKey(op, what, s string) (HashKey, *Error) {
	if s == "" {
		return HashKey{}, errorf(op, ErrValidation, "%s is empty", what)
	}
	if len(s) > 39 {
		return HashKey{}, errorf(op, ErrValidation, "%s %.48q has %d digits; the limit is 39", what, s, len(s))
	}
	if len(s) > 1 && s[0] == '0' {
		return HashKey{}, errorf(op, ErrValidation, "%s %q has a leading zero", what, s)
	}
	var k HashKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			if rest := s[1:]; s[0] == '-' && rest != "" && strings.Trim(rest, "0123456789") == "" {
				return HashKey{}, errorf(op, ErrValidation, "%s %q is negative; hash keys are 0 to 2^128-1", what, s)
			}
			return HashKey{}, errorf(op, ErrValidation, "%s %q is not a decimal integer", what, s)
		}
		// k = k*10 + digit, failing on overflow of 128 bits.
		hiCarry, hi := bits.Mul64(k.hi, 10)
		loCarry, lo := bits.Mul64(k.lo, 10)
		hi, c1 := bits.Add64(hi, loCarry, 0)
		lo, c2 := bits.Add64(lo, uint64(c-'0'), 0)
		hi, c3 := bits.Add64(hi, 0, c2)
		if hiCarry != 0 || c1 != 0 || c3 != 0 {
			return HashKey{}, errorf(op, ErrInvalidArgument, "%s %s is above the maximum 2^128-1 (%s)", what, s, MaxHashKey())
		}
		k = HashKey{hi: hi, lo: lo}
	}
	return k, nil
}

// String returns the key in decimal, as Kinesis shows hash keys.
func (k HashKey) String() string {
	if k.hi == 0 {
		return strconv.FormatUint(k.lo, 10)
	}
	var buf [39]byte
	i := len(buf)
	for k.hi != 0 || k.lo != 0 {
		var r uint64
		k.hi, r = bits.Div64(0, k.hi, 10)
		k.lo, r = bits.Div64(r, k.lo, 10)
		i--
		buf[i] = byte('0' + r)
	}
	return string(buf[i:])
}

// Cmp returns -1, 0 or +1 as k is less than, equal to or greater than o.
func (k HashKey) Cmp(o HashKey) int {
	switch {
	case k.hi < o.hi || (k.hi == o.hi && k.lo < o.lo):
		return -1
	case k == o:
		return 0
	default:
		return 1
	}
}

// add returns k+n, wrapping at 2^128.
func (k HashKey) add(n uint64) HashKey {
	lo, c := bits.Add64(k.lo, n, 0)
	return HashKey{hi: k.hi + c, lo: lo}
}

// sub returns k-n, wrapping below 0.
func (k HashKey) sub(n uint64) HashKey {
	lo, b := bits.Sub64(k.lo, n, 0)
	return HashKey{hi: k.hi - b, lo: lo}
}

// HashKeyRange is an inclusive range of hash keys, as a shard reports it.
type HashKeyRange struct {
	StartingHashKey HashKey // the lowest key in the range
	EndingHashKey   HashKey // the highest key in the range
}

// Contains reports whether k lies in the range.
func (r HashKeyRange) Contains(k HashKey) bool {
	return r.StartingHashKey.Cmp(k) <= 0 && k.Cmp(r.EndingHashKey) <= 0
}

// splitEvenly divides the hash space into n ranges as Kinesis does at stream
// creation: range i starts at i·⌊2^128/n⌋ and the last one ends at 2^128−1.
func splitEvenly(n int) []HashKeyRange {
	step := evenStep(uint64(n))
	ranges := make([]HashKeyRange, n)
	for i := range ranges {
		ranges[i].StartingHashKey = step.mul(uint64(i))
		if i > 0 {
			ranges[i-1].EndingHashKey = ranges[i].StartingHashKey.sub(1)
		}
	}
	ranges[n-1].EndingHashKey = MaxHashKey()
	return ranges
}

// evenStep returns ⌊2^128/n⌋ for n ≥ 2 (and 2^128−1 for n = 1, which only
// ever multiplies 0).
func evenStep(n uint64) HashKey {
	if n <= 1 {
		return MaxHashKey()
	}
	// ⌊(2^128−1)/n⌋, plus one when n divides 2^128 exactly.
	qhi, r := bits.Div64(0, MaxHashKey().hi, n)
	qlo, r := bits.Div64(r, MaxHashKey().lo, n)
	q := HashKey{hi: qhi, lo: qlo}
	if r == n-1 {
		q = q.add(1)
	}
	return q
}

// mul returns k·n, wrapping at 2^128.
func (k HashKey) mul(n uint64) HashKey {
	hi, lo := bits.Mul64(k.lo, n)
	return HashKey{hi: hi + k.hi*n, lo: lo}
}

// Mid returns the key halfway through the range (rounded up): the natural
// NewStartingHashKey to split a shard with into two equal halves.
func (r HashKeyRange) Mid() HashKey {
	d := r.EndingHashKey.subKey(r.StartingHashKey)
	half := HashKey{hi: d.hi >> 1, lo: d.lo>>1 | d.hi<<63}
	return r.StartingHashKey.addKey(half).add(1)
}

// addKey returns k+o, wrapping at 2^128.
func (k HashKey) addKey(o HashKey) HashKey {
	lo, c := bits.Add64(k.lo, o.lo, 0)
	return HashKey{hi: k.hi + o.hi + c, lo: lo}
}

// subKey returns k−o, wrapping below 0.
func (k HashKey) subKey(o HashKey) HashKey {
	lo, b := bits.Sub64(k.lo, o.lo, 0)
	return HashKey{hi: k.hi - o.hi - b, lo: lo}
}

// MarshalText implements encoding.TextMarshaler with the decimal form.
func (k HashKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseHashKey.
func (k *HashKey) UnmarshalText(text []byte) error {
	v, err := ParseHashKey(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// tilesHashSpace reports whether ranges, ordered by starting key, cover the
// hash space 0…2^128−1 exactly: the first starts at 0, each starts right
// after the one before it ends, and the last ends at 2^128−1.
func tilesHashSpace(ranges []HashKeyRange) bool {
	if len(ranges) == 0 || ranges[0].StartingHashKey != (HashKey{}) || ranges[len(ranges)-1].EndingHashKey != MaxHashKey() {
		return false
	}
	for i, r := range ranges {
		if r.StartingHashKey.Cmp(r.EndingHashKey) > 0 {
			return false
		}
		if i > 0 && (ranges[i-1].EndingHashKey == MaxHashKey() || ranges[i-1].EndingHashKey.add(1) != r.StartingHashKey) {
			return false
		}
	}
	return true
}
