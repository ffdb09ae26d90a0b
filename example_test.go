package runnel_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/runnel-go/runnel"
)

func ExampleCluster_CreateStream() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()

	s, err := c.CreateStream(ctx, "orders", runnel.WithShardCount(1))
	if err != nil {
		log.Fatal(err)
	}
	put, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "order-1", Data: []byte("created")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored in", put.ShardID, "as", put.SequenceNumber)

	it, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: put.ShardID, StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
	if err != nil {
		log.Fatal(err)
	}
	out, err := s.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: it})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range out.Records {
		fmt.Printf("%s: %s\n", r.PartitionKey, r.Data)
	}
	fmt.Println(s.ARN())
	// Output:
	// stored in shardId-000000000000 as 49000000000000000000000000000000000000000001000000000000
	// order-1: created
	// arn:aws:kinesis:us-east-1:000000000000:stream/orders
}

func ExampleStream_PutRecords() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "clicks", runnel.WithShardCount(4))
	if err != nil {
		log.Fatal(err)
	}

	// Records are routed by the MD5 hash of their partition key, or by an
	// explicit hash key.
	out, err := s.PutRecords(ctx, runnel.PutRecordsInput{Records: []runnel.PutRecordsEntry{
		{PartitionKey: "user-1", Data: []byte("home")},
		{PartitionKey: "user-2", Data: []byte("cart")},
		{PartitionKey: "user-1", Data: []byte("checkout")},
		{PartitionKey: "any", ExplicitHashKey: "0", Data: []byte("first shard")},
	}})
	if err != nil {
		log.Fatal(err) // the request as a whole was invalid
	}
	fmt.Println("failed:", out.FailedRecordCount)
	for _, r := range out.Records {
		if r.Err != nil { // throttled: retry this entry
			fmt.Println(r.Err)
			continue
		}
		fmt.Println(r.ShardID)
	}
	// Output:
	// failed: 0
	// shardId-000000000003
	// shardId-000000000000
	// shardId-000000000003
	// shardId-000000000000
}

func ExampleStream_Records() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "events", runnel.WithShardCount(1))
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range []string{"start", "step", "stop"} {
		if _, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "job-7", Data: []byte(e)}); err != nil {
			log.Fatal(err)
		}
	}

	// Records reads the shard up to its newest record, then stops.
	for r, err := range s.Records(ctx, "shardId-000000000000", runnel.StartingPosition{Type: runnel.TrimHorizon}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s\n", r.PartitionKey, r.Data)
	}
	// Output:
	// job-7 start
	// job-7 step
	// job-7 stop
}

func ExampleStream_GetRecords() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "metrics", runnel.WithShardCount(1))
	if err != nil {
		log.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "host-1", Data: fmt.Appendf(nil, "cpu=%d", 10*i)}); err != nil {
			log.Fatal(err)
		}
	}

	// The polling loop of a Kinesis consumer: each call returns the records
	// at an iterator and the iterator to continue from.
	it, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: "shardId-000000000000", StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
	if err != nil {
		log.Fatal(err)
	}
	var buf []runnel.Record // reused between calls
	for {
		out, err := s.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: it, Limit: 2, Buffer: buf})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d records:", len(out.Records))
		for _, r := range out.Records {
			fmt.Printf(" %s", r.Data)
		}
		fmt.Println()
		if len(out.Records) == 0 && out.MillisBehindLatest == 0 {
			break // caught up; a real consumer would wait and poll again
		}
		it, buf = out.NextShardIterator, out.Records
	}
	// Output:
	// 2 records: cpu=0 cpu=10
	// 2 records: cpu=20 cpu=30
	// 1 records: cpu=40
	// 0 records:
}

func ExampleCluster_InjectFault() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "payments", runnel.WithShardCount(1))
	if err != nil {
		log.Fatal(err)
	}

	// Make the next PutRecord fail as if the shard were throttled, to test
	// the client's retry.
	if _, err := c.InjectFault(runnel.Fault{Op: runnel.OpPutRecord, Err: runnel.ErrProvisionedThroughputExceeded, Times: 1}); err != nil {
		log.Fatal(err)
	}

	in := runnel.PutRecordInput{PartitionKey: "p-1", Data: []byte("42.00")}
	for attempt := 1; ; attempt++ {
		_, err := s.PutRecord(ctx, in)
		if errors.Is(err, runnel.ErrProvisionedThroughputExceeded) {
			fmt.Printf("attempt %d: %s\n", attempt, runnel.ErrorName(err))
			continue // a real client backs off first
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("attempt %d: stored\n", attempt)
		break
	}

	// A fault can also fail single records of a PutRecords call.
	remove, err := c.InjectFault(runnel.Fault{
		Op:     runnel.OpPutRecords,
		Record: func(key string, _ []byte) bool { return key == "p-2" },
		Err:    runnel.ErrInternalFailure,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer remove()
	out, err := s.PutRecords(ctx, runnel.PutRecordsInput{Records: []runnel.PutRecordsEntry{
		{PartitionKey: "p-2", Data: []byte("1.00")},
		{PartitionKey: "p-3", Data: []byte("2.00")},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range out.Records {
		fmt.Printf("entry %d: %q\n", i, runnel.RecordErrorCode(r.Err))
	}
	// Output:
	// attempt 1: ProvisionedThroughputExceededException
	// attempt 2: stored
	// entry 0: "InternalFailure"
	// entry 1: ""
}
