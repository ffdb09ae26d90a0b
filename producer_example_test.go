package runnel_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/runnel-go/runnel"
)

// A Producer collects and aggregates records and reports each record's
// outcome to its callback. Close delivers everything it still holds.
func ExampleProducer() {
	ctx := context.Background()
	cluster := runnel.NewCluster()
	defer cluster.Close()
	stream, err := cluster.CreateStream(ctx, "orders", runnel.WithShardCount(2))
	if err != nil {
		log.Fatal(err)
	}

	producer, err := runnel.NewProducer(ctx, stream)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex // callbacks run one at a time, but not on this goroutine
	stored, failed := 0, 0
	for i := range 100 {
		rec := runnel.ProducerRecord{
			PartitionKey: fmt.Sprintf("customer-%d", i%10),
			Data:         fmt.Appendf(nil, "order %d", i),
		}
		err := producer.Put(ctx, rec, func(res runnel.ProducerResult) {
			mu.Lock()
			defer mu.Unlock()
			if res.Err != nil {
				failed++
				return
			}
			stored++
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := producer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	mu.Lock()
	fmt.Printf("stored %d, failed %d\n", stored, failed)
	mu.Unlock()

	// Read the stream back: aggregates hold many user records each.
	userRecords := 0
	shards, err := stream.ListShards(ctx, runnel.ListShardsInput{})
	if err != nil {
		log.Fatal(err)
	}
	for _, sh := range shards.Shards {
		for rec, err := range stream.Records(ctx, sh.ShardID, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
			if err != nil {
				log.Fatal(err)
			}
			urs, err := runnel.Deaggregate(rec)
			if err != nil {
				log.Fatal(err)
			}
			userRecords += len(urs)
		}
	}
	m := producer.Metrics()
	fmt.Println("user records in the stream:", userRecords)
	fmt.Println("metrics:", m.UserRecordsPut, "put,", m.UserRecordsFailed, "failed,", m.BufferedRecords, "buffered")
	fmt.Println("aggregated:", m.KinesisRecordsPut < m.UserRecordsPut)
	// Output:
	// stored 100, failed 0
	// user records in the stream: 100
	// metrics: 100 put, 0 failed, 0 buffered
	// aggregated: true
}

// PutSync sends a record at once, without waiting for a batch to fill, and
// returns where it was stored.
func ExampleProducer_PutSync() {
	ctx := context.Background()
	cluster := runnel.NewCluster()
	defer cluster.Close()
	stream, err := cluster.CreateStream(ctx, "payments", runnel.WithShardCount(1))
	if err != nil {
		log.Fatal(err)
	}
	producer, err := runnel.NewProducer(ctx, stream)
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close(ctx)

	res, err := producer.PutSync(ctx, runnel.ProducerRecord{PartitionKey: "account-7", Data: []byte("paid 10 EUR")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("shard:", res.ShardID)
	fmt.Println("attempts:", res.Attempts, "aggregated:", res.Aggregated)

	for rec, err := range stream.Records(ctx, res.ShardID, runnel.StartingPosition{Type: runnel.AtSequenceNumber, SequenceNumber: res.SequenceNumber}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s\n", rec.PartitionKey, rec.Data)
	}
	// Output:
	// shard: shardId-000000000000
	// attempts: 1 aggregated: false
	// account-7: paid 10 EUR
}
