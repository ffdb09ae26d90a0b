package runnel_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"

	"github.com/runnel-go/runnel"
)

// A registered consumer subscribes to a shard: Next returns the records
// stored from the starting position on, then waits for the records that
// writers push. To go on after the subscription ends (every 5 minutes),
// subscribe again after the last ContinuationSequenceNumber.
func ExampleStream_SubscribeToShard() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "orders", runnel.WithShardCount(1))
	if err != nil {
		log.Fatal(err)
	}
	con, err := s.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "audit"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(con.ConsumerStatus)
	if _, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "order-1", Data: []byte("created")}); err != nil {
		log.Fatal(err)
	}

	sub, err := s.SubscribeToShard(ctx, runnel.SubscribeToShardInput{
		ConsumerARN:      con.ConsumerARN,
		ShardID:          "shardId-000000000000",
		StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	go func() { // a writer, while the subscriber waits
		s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "order-1", Data: []byte("paid")})
	}()
	for got := 0; got < 2; {
		ev, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range ev.Records {
			fmt.Println(r.PartitionKey, string(r.Data))
		}
		got += len(ev.Records)
	}
	// Output:
	// ACTIVE
	// order-1 created
	// order-1 paid
}

// A consumer group reads with enhanced fan-out: the worker registers the
// stream consumer "billing" (its application's name) and takes the records
// pushed to it, with the same leases and checkpoints as when polling.
func ExampleWithFanOut() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "orders", runnel.WithShardCount(2))
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"order-1", "order-2", "order-3"} {
		if _, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: id, Data: []byte(id)}); err != nil {
			log.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen []string
		done = make(chan struct{})
	)
	process := runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range in.Records {
			seen = append(seen, string(r.Data))
		}
		if len(seen) == 3 {
			close(done)
		}
		return in.Checkpointer.Checkpoint(ctx)
	})
	worker, err := runnel.NewConsumer(s, "billing", func(string) runnel.RecordProcessor { return process }, runnel.WithFanOut(""))
	if err != nil {
		log.Fatal(err)
	}
	<-done
	worker.Close()

	slices.Sort(seen)
	fmt.Println(seen)
	consumers, _ := s.ListStreamConsumers(ctx)
	fmt.Println(consumers[0].ConsumerName, consumers[0].ConsumerStatus)
	fmt.Println("polled:", s.Stats().Total.RecordsRead, "pushed:", s.Stats().Total.RecordsPushed)
	// Output:
	// [order-1 order-2 order-3]
	// billing ACTIVE
	// polled: 0 pushed: 3
}
