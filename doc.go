// Package runnel is an in-process emulation of Amazon Kinesis Data Streams:
// streams of shards, partition keys routed by MD5 into hash-key ranges,
// sequence numbers, shard iterators, per-shard throughput limits, retention,
// resharding, a KPL-style Producer and KCL-style consumers, with Kinesis's
// names, limits and errors.
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
// Open keeps a Cluster in a data directory instead, so that its streams
// and records survive a restart and a crash (kill -9); by default a put
// returns once its records are fsynced (SyncAlways; see WithSync):
//
//	c, err := runnel.Open("/var/lib/orders")
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
// ErrNotAttempted, ErrShardMapChanged, ErrShardEnded, ErrSubscriptionEnded,
// ErrLeaseConflict, ErrLeaseLost), or the context's error
// (context.Canceled, context.DeadlineExceeded); errors.Is works for all of
// them, and for an underlying error the *Error also wraps (ErrCorrupt, for
// a durable cluster's damaged record, is one). The per-entry
// errors of PutRecords follow the same rule. ErrorName returns the Kinesis
// name, ErrorForName maps a name back, IsRetryable and HTTPStatus read the
// table, and RecordErrorCode gives a PutRecords entry's ErrorCode.
//
// Consumers read through a StreamReader. A ShardReader gives one shard's
// user records, deaggregated; a Consumer is one worker of a KCL-style
// consumer group that shares a LeaseStore (MemoryLeaseStore,
// FileLeaseStore) with the group's other workers and runs a
// RecordProcessor for each shard it holds:
//
//	w, _ := runnel.NewConsumer(s, "billing", func(shardID string) runnel.RecordProcessor {
//		return runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
//			… in.Records …
//			return in.Checkpointer.Checkpoint(ctx)
//		})
//	}, runnel.WithLeaseStore(store))
//	defer w.Close()
//
// Enhanced fan-out pushes records to consumers registered with a stream
// (RegisterStreamConsumer), each with its own read budget per shard:
// SubscribeToShard returns a ShardSubscription whose Next waits for the
// records that writers push, about a microsecond after the write. A
// ShardReader reads through it with WithReaderFanOut, and a Consumer with
// WithFanOut, with the same leases and checkpoints as when polling.
//
// Small interfaces are the seams to Amazon Kinesis and DynamoDB: Putter
// (what the Producer writes to), StreamReader (what consumers poll),
// ShardSubscriber and FanOutReader (what they subscribe through) and
// LeaseStore (where consumers keep leases). *Stream implements all but the
// last; adapters over the AWS SDK can implement all of them.
//
// Records returned by reads share memory with the stream: their Data and
// PartitionKey are read-only.
package runnel
