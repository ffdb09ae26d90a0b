package runnel

import (
	"cmp"
	"strconv"
)

// SequenceNumber identifies a record within its stream. It holds any number
// the Kinesis API allows: a decimal integer matching 0|([1-9]\d{0,128}), so
// that an adapter over real Kinesis can return the service's numbers and a
// consumer can checkpoint them.
//
// runnel's own numbers look like Kinesis's: 56 decimal digits starting with
// "49". They are strictly increasing within a shard, unique within a stream,
// and every child shard's numbers are greater than its parents'. They also
// name the shard that issued them (see ShardID), so a number from another
// shard is rejected where Kinesis rejects it. Any other number ("foreign",
// for example one issued by real Kinesis) is kept as its decimal text; a
// runnel shard treats it as not belonging to the shard.
//
// The zero value means "no sequence number"; it is not the number "0", and
// it compares below every number. SequenceNumber is a small comparable value:
// == holds exactly when two values have the same decimal form. Order numbers
// with Cmp, not by comparing their String forms: foreign numbers of different
// widths do not compare correctly as strings.
type SequenceNumber struct {
	// A number in runnel's layout ("49", 42-digit counter, 12-digit shard
	// number) with a counter ≥ 1 is native: ext is empty and counter and
	// shard hold it. Any other number is foreign: ext holds its canonical
	// decimal text and counter and shard are zero. The zero value has all
	// three fields zero. ParseSequenceNumber keeps to this rule, so == is
	// equality of numbers.
	counter uint64 // position within the shard's lineage; ≥ 1 for native numbers
	shard   uint64 // the issuing shard's number (its id's counter)
	ext     string // decimal text of a foreign number; "" for native ones and the zero value
}

const (
	seqDigits       = 56
	seqCounterWidth = 42 // zero-padded counter after the "49" prefix
	seqShardWidth   = 12 // zero-padded shard number at the end
	maxShardNumber  = 999_999_999_999
)

// ParseSequenceNumber parses a sequence number in the form that String
// returns. Any string matching Kinesis's pattern 0|([1-9]\d{0,128}) is
// accepted, whether or not runnel issued it; anything else is an
// ErrValidation naming the bad value. Whether a number belongs to a given
// shard is checked where the number is used (GetShardIterator, for example),
// not here. Parsing the String of a SequenceNumber gives a value == to it.
func ParseSequenceNumber(s string) (SequenceNumber, error) {
	const op = "ParseSequenceNumber"
	if err := validateSequenceNumberSyntax(op, s); err != nil {
		return SequenceNumber{}, err
	}
	if len(s) == seqDigits && s[:2] == "49" {
		counter, err1 := strconv.ParseUint(s[2:2+seqCounterWidth], 10, 64)
		shard, err2 := strconv.ParseUint(s[2+seqCounterWidth:], 10, 64)
		if err1 == nil && err2 == nil && counter != 0 {
			return SequenceNumber{counter: counter, shard: shard}, nil
		}
	}
	return SequenceNumber{ext: s}, nil
}

// validateSequenceNumberSyntax checks Kinesis's pattern 0|([1-9]\d{0,128}).
func validateSequenceNumberSyntax(op, s string) error {
	switch {
	case s == "":
		return errorf(op, ErrValidation, "sequence number is empty")
	case len(s) > 129:
		return errorf(op, ErrValidation, "sequence number %.32q… has %d digits; the limit is 129", s, len(s))
	case len(s) > 1 && s[0] == '0':
		return errorf(op, ErrValidation, "sequence number %q has a leading zero", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return errorf(op, ErrValidation, "sequence number %q is not a decimal integer", s)
		}
	}
	return nil
}

// String returns the decimal form, or "" for the zero value. runnel's own
// numbers have 56 digits; foreign ones are returned exactly as parsed.
func (n SequenceNumber) String() string {
	switch {
	case n.ext != "":
		return n.ext
	case n.IsZero():
		return ""
	}
	var buf [seqDigits]byte
	return string(n.appendTo(buf[:0]))
}

// MarshalText implements encoding.TextMarshaler with the String form; the
// zero value gives empty text.
func (n SequenceNumber) MarshalText() ([]byte, error) {
	return n.AppendText(nil)
}

// AppendText implements encoding.TextAppender: it appends the String form to
// b (nothing for the zero value) and returns the extended buffer. It never
// fails.
func (n SequenceNumber) AppendText(b []byte) ([]byte, error) {
	if n.IsZero() {
		return b, nil
	}
	if b == nil {
		b = make([]byte, 0, max(seqDigits, len(n.ext)))
	}
	return n.appendTo(b), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSequenceNumber;
// empty text gives the zero value. On error n is left unchanged.
func (n *SequenceNumber) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*n = SequenceNumber{}
		return nil
	}
	v, err := ParseSequenceNumber(string(text))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// appendTo appends the decimal form of a non-zero n to b.
func (n SequenceNumber) appendTo(b []byte) []byte {
	if n.ext != "" {
		return append(b, n.ext...)
	}
	b = append(b, '4', '9')
	b = appendPadded(b, n.counter, seqCounterWidth)
	return appendPadded(b, n.shard, seqShardWidth)
}

func appendPadded(b []byte, v uint64, width int) []byte {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], v, 10)
	for range width - len(d) {
		b = append(b, '0')
	}
	return append(b, d...)
}

// IsZero reports whether n is the zero value (no sequence number).
func (n SequenceNumber) IsZero() bool { return n == SequenceNumber{} }

// native reports whether n is one of runnel's own numbers: not the zero
// value and in runnel's layout, so that n.counter (≥ 1) and n.shard are
// meaningful. Exactly one of n.IsZero(), n.native() and n.foreign() holds.
// Code that needs a number issued by a runnel shard (GetShardIterator, the
// counter arithmetic of SequenceNumberForOrdering) checks IsZero first and
// then rejects a number that is not native.
func (n SequenceNumber) native() bool { return n.ext == "" && n.counter != 0 }

// foreign reports whether n is a valid Kinesis number that is not in
// runnel's layout (issued by real Kinesis, say); only its decimal text is
// kept, and it names no shard.
func (n SequenceNumber) foreign() bool { return n.ext != "" }

// Cmp returns -1, 0 or +1 as n is less than, equal to or greater than o
// numerically. The zero value is less than every number (including "0");
// Cmp returns 0 exactly when n == o. Cmp does not allocate.
func (n SequenceNumber) Cmp(o SequenceNumber) int {
	if n.ext == "" && o.ext == "" { // native or zero on both sides
		if c := cmp.Compare(n.counter, o.counter); c != 0 {
			return c
		}
		return cmp.Compare(n.shard, o.shard)
	}
	switch {
	case n.IsZero():
		return -1
	case o.IsZero():
		return 1
	case n.ext != "" && o.ext != "":
		return cmpDecimal(n.ext, o.ext)
	}
	// One native, one foreign: render the native one on the stack.
	var buf [seqDigits]byte
	if n.ext == "" {
		return cmpDecimal(n.appendTo(buf[:0]), o.ext)
	}
	return cmpDecimal(n.ext, o.appendTo(buf[:0]))
}

// cmpDecimal compares two decimal integers without leading zeros: the
// shorter is smaller, and numbers of the same width compare bytewise.
func cmpDecimal[A, B string | []byte](a A, b B) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	for i := range len(a) {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// ShardID returns the id of the shard that issued n. Only runnel's own
// numbers name their shard: ShardID returns "" for a foreign number (one
// not in runnel's layout, such as a number from real Kinesis) and for the
// zero value.
func (n SequenceNumber) ShardID() string {
	if n.ext != "" || n.IsZero() {
		return ""
	}
	return shardID(n.shard)
}

// shardID formats a shard number as Kinesis does: "shardId-" and 12 digits.
func shardID(num uint64) string {
	b := make([]byte, 0, 20)
	b = append(b, "shardId-"...)
	return string(appendPadded(b, num, seqShardWidth))
}

// maxShardIDLen is the longest shard id Kinesis's API takes.
const maxShardIDLen = 128

// parseShardID is the inverse of shardID. An id longer than Kinesis takes
// (or empty) is an ErrValidation; another that is not one of runnel's
// shard ids is an ErrResourceNotFound.
func parseShardID(op, id string) (uint64, error) {
	const prefix = "shardId-"
	if n := len(id); n < 1 || n > maxShardIDLen {
		return 0, errorf(op, ErrValidation, "shard id %.64q is %d characters; Kinesis takes 1 to %d", id, n, maxShardIDLen)
	}
	if len(id) != len(prefix)+seqShardWidth || id[:len(prefix)] != prefix {
		return 0, errorf(op, ErrResourceNotFound, "shard %.64q does not exist: shard ids look like shardId-000000000000", id)
	}
	num, err := strconv.ParseUint(id[len(prefix):], 10, 64)
	if err != nil {
		return 0, errorf(op, ErrResourceNotFound, "shard %.64q does not exist: shard ids look like shardId-000000000000", id)
	}
	return num, nil
}
