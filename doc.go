// Package runnel is an in-process emulation of Amazon Kinesis Data Streams:
// streams of shards, partition keys routed by MD5 into hash-key ranges,
// sequence numbers, shard iterators, per-shard throughput limits, retention,
// resharding and a KPL-style Producer, with Kinesis's names, limits and
// errors.
//
// A Cluster holds named streams, like one AWS account in one region:
//
//	c := runnel.NewCluster()
//	defer c.Close()
//	s, _ := c.CreateStream(ctx, "orders", runnel.WithShardCount(4))
//	out, _ := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "customer-1", Data: data})
//	for rec, err := range s.Records(ctx, out.ShardID, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
//		…
//	}
//
// Every method is safe for concurrent use. Time is read once per operation
// with time.Now, so everything runs in virtual time inside a testing/synctest
// bubble: create and close the Cluster inside the bubble.
//
// Errors follow one rule: every error a runnel operation returns is an
// *Error (naming the operation and the offending value) whose Kind is a
// sentinel of the error table (one per Kinesis error name:
// ErrResourceNotFound, ErrProvisionedThroughputExceeded, …), one of
// runnel's own sentinels (ErrClosed, ErrBufferFull, ErrRecordExpired,
// ErrNotAttempted, ErrShardMapChanged), or the context's error
// (context.Canceled, context.DeadlineExceeded); errors.Is works for all of
// them, and for an underlying error the *Error also wraps. The per-entry
// errors of PutRecords follow the same rule. ErrorName returns the Kinesis
// name, ErrorForName maps a name back, IsRetryable and HTTPStatus read the
// table, and RecordErrorCode gives a PutRecords entry's ErrorCode.
//
// Two small interfaces are the seams to Amazon Kinesis: Putter (what the
// Producer writes to) and StreamReader (what consumers read from). *Stream
// implements both; an adapter over the AWS SDK can too.
//
// Records returned by reads share memory with the stream: their Data and
// PartitionKey are read-only.
package runnel
