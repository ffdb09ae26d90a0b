package runnel

import "context"

// StreamReader is what a consumer needs from a stream: listing its shards,
// getting shard iterators and reading records, as Kinesis's polling API
// offers them. *Stream implements it; an adapter over the AWS SDK's
// Kinesis client can implement it too, so that the same consumer code runs
// on Amazon Kinesis.
//
// At this seam shard iterators and sequence numbers are opaque,
// Kinesis-shaped values: an implementation other than *Stream returns the
// tokens it got as OpaqueShardIterator values and its sequence numbers
// through ParseSequenceNumber (which takes any number Kinesis issues), and
// reports its failures with the sentinels of the error table (see
// ErrorForName). Push delivery (enhanced fan-out) will be a separate, small
// interface that a reader may also implement, so that polling-only
// implementations stay as they are.
type StreamReader interface {
	// ListShards lists the stream's shards (one page; see ListShardsInput).
	ListShards(ctx context.Context, in ListShardsInput) (ListShardsOutput, error)
	// GetShardIterator returns an iterator at a position of a shard.
	GetShardIterator(ctx context.Context, in GetShardIteratorInput) (ShardIterator, error)
	// GetRecords reads records at an iterator. An implementation may use
	// in.Buffer for the returned records or ignore it.
	GetRecords(ctx context.Context, in GetRecordsInput) (GetRecordsOutput, error)
}

// Both seams are implemented by *Stream.
var (
	_ StreamReader = (*Stream)(nil)
	_ Putter       = (*Stream)(nil)
	_ RoutedPutter = (*Stream)(nil)
)
