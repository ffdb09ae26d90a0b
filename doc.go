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
// Errors wrap one sentinel per Kinesis error name (ErrResourceNotFound,
// ErrProvisionedThroughputExceeded, …) in an *Error that names the operation
// and the offending value; ErrorName returns the Kinesis name.
//
// Records returned by reads share memory with the stream: their Data and
// PartitionKey are read-only.
package runnel
