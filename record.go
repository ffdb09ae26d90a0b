package runnel

import "time"

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
