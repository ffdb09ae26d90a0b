package runnel

import (
	"strconv"
)

// SequenceNumber identifies a record within its stream. runnel's numbers look
// like Kinesis's: 56 decimal digits starting with "49". They are strictly
// increasing within a shard, unique within a stream, and every child shard's
// numbers are greater than its parents'. The number also names the shard that
// issued it, so a number from another shard is rejected where Kinesis rejects it.
//
// The zero value means "no sequence number". Compare numbers with Cmp; their
// String forms also compare correctly as strings, since they all have the
// same width.
type SequenceNumber struct {
	counter uint64 // position within the shard's lineage; ≥ 1 for real records
	shard   uint64 // the issuing shard's number (its id's counter)
}

const (
	seqDigits       = 56
	seqCounterWidth = 42 // zero-padded counter after the "49" prefix
	seqShardWidth   = 12 // zero-padded shard number at the end
	maxShardNumber  = 999_999_999_999
)

// ParseSequenceNumber parses a sequence number in the form that String
// returns. A string that is not a Kinesis sequence number at all (the pattern
// 0|([1-9]\d{0,128})) is an ErrValidation; one that runnel did not issue is an
// ErrInvalidArgument.
func ParseSequenceNumber(s string) (SequenceNumber, error) {
	const op = "ParseSequenceNumber"
	if err := validateSequenceNumberSyntax(op, s); err != nil {
		return SequenceNumber{}, err
	}
	if len(s) != seqDigits || s[:2] != "49" {
		return SequenceNumber{}, errorf(op, ErrInvalidArgument, "sequence number %.64q was not issued by this stream", s)
	}
	counter, err1 := strconv.ParseUint(s[2:2+seqCounterWidth], 10, 64)
	shard, err2 := strconv.ParseUint(s[2+seqCounterWidth:], 10, 64)
	if err1 != nil || err2 != nil || counter == 0 {
		return SequenceNumber{}, errorf(op, ErrInvalidArgument, "sequence number %q was not issued by this stream", s)
	}
	return SequenceNumber{counter: counter, shard: shard}, nil
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

// String returns the 56-digit decimal form, or "" for the zero value.
func (n SequenceNumber) String() string {
	if n.IsZero() {
		return ""
	}
	var buf [seqDigits]byte
	return string(n.appendTo(buf[:0]))
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (n SequenceNumber) MarshalText() ([]byte, error) {
	if n.IsZero() {
		return nil, nil
	}
	return n.appendTo(make([]byte, 0, seqDigits)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSequenceNumber;
// empty text gives the zero value.
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

func (n SequenceNumber) appendTo(b []byte) []byte {
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

// Cmp returns -1, 0 or +1 as n is less than, equal to or greater than o
// numerically.
func (n SequenceNumber) Cmp(o SequenceNumber) int {
	switch {
	case n.counter < o.counter || (n.counter == o.counter && n.shard < o.shard):
		return -1
	case n == o:
		return 0
	default:
		return 1
	}
}

// ShardID returns the id of the shard that issued n ("" for the zero value).
func (n SequenceNumber) ShardID() string {
	if n.IsZero() {
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

// parseShardID is the inverse of shardID.
func parseShardID(op, id string) (uint64, error) {
	const prefix = "shardId-"
	if len(id) != len(prefix)+seqShardWidth || id[:len(prefix)] != prefix {
		return 0, errorf(op, ErrResourceNotFound, "shard %.64q does not exist: shard ids look like shardId-000000000000", id)
	}
	num, err := strconv.ParseUint(id[len(prefix):], 10, 64)
	if err != nil {
		return 0, errorf(op, ErrResourceNotFound, "shard %.64q does not exist: shard ids look like shardId-000000000000", id)
	}
	return num, nil
}
