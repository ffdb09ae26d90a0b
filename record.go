package runnel

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// MaxPartitionKeyLength is the longest partition key, in Unicode characters.
const MaxPartitionKeyLength = 256

// Record is a data record as GetRecords returns it.
//
// Data and PartitionKey share memory with the stream's storage: they are
// read-only, valid for as long as the caller keeps them, and must not be
// modified. Copy Data before changing it.
type Record struct {
	// SequenceNumber is the record's unique, increasing number in its shard.
	SequenceNumber SequenceNumber
	// PartitionKey is the key the producer gave.
	PartitionKey string
	// Data is the record's payload (read-only).
	Data []byte
	// ApproximateArrivalTimestamp is when the stream accepted the record,
	// with millisecond precision, as Kinesis reports it.
	ApproximateArrivalTimestamp time.Time
}

// msTime converts Unix milliseconds to a time.Time.
func msTime(ms int64) time.Time { return time.UnixMilli(ms) }

// checkRecord is the one validator of a record to write, used by PutRecord,
// PutRecords, PutRoutedRecords and the Producer: its partition key, its data
// size and its size with the key against maxRecordSize, and its explicit
// hash key. It returns the hash key that routes the record: the explicit
// one if given, else the partition key's MD5 when hash is set (zero
// otherwise, for callers that route by a key of their own).
func checkRecord(op, key, explicit string, dataLen, maxRecordSize int, hash bool) (HashKey, *Error) {
	if err := validatePartitionKey(op, key); err != nil {
		return HashKey{}, err
	}
	if dataLen > maxRecordSize {
		return HashKey{}, errorf(op, ErrValidation, "data is %d bytes; the limit is %d", dataLen, maxRecordSize)
	}
	if n := len(key) + dataLen; n > maxRecordSize {
		return HashKey{}, errorf(op, ErrInvalidArgument, "record is %d bytes of data and partition key; the limit is %d", n, maxRecordSize)
	}
	if explicit != "" {
		return parseHashKey(op, "ExplicitHashKey", explicit)
	}
	if hash {
		return HashKeyOf(key), nil
	}
	return HashKey{}, nil
}

// atEntry adds the position of the offending entry of a request to e's
// message.
func (e *Error) atEntry(i int) *Error {
	e.Msg += " (record " + strconv.Itoa(i) + ")"
	return e
}

// ValidatePartitionKey checks a partition key against Kinesis's
// constraint, as every write does: 1 to 256 Unicode characters of valid
// UTF-8. A violation is an ErrValidation naming the key. It is the one
// validator of partition keys, for front ends that check a request before
// it reaches a stream.
func ValidatePartitionKey(key string) error {
	if err := validatePartitionKey("ValidatePartitionKey", key); err != nil {
		return err
	}
	return nil
}

// validatePartitionKey checks Kinesis's partition-key constraint: 1 to 256
// Unicode characters (runnel also requires valid UTF-8, which any key sent
// through the Kinesis API is).
func validatePartitionKey(op, key string) *Error {
	switch {
	case key == "":
		return errorf(op, ErrValidation, "partition key is empty; it must have 1 to %d characters", MaxPartitionKeyLength)
	case len(key) > MaxPartitionKeyLength && utf8.RuneCountInString(key) > MaxPartitionKeyLength:
		return errorf(op, ErrValidation, "partition key %.20q… is %d characters; the limit is %d", key, utf8.RuneCountInString(key), MaxPartitionKeyLength)
	case !utf8.ValidString(key):
		return errorf(op, ErrValidation, "partition key %q is not valid UTF-8", key)
	}
	return nil
}
