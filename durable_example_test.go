package runnel_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/runnel-go/runnel"
)

// A durable cluster keeps its streams in a directory: records written
// before Close are there after Open, with their sequence numbers.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "runnel-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cluster, err := runnel.Open(dir) // SyncAlways: each put is on disk before it returns
	if err != nil {
		log.Fatal(err)
	}
	stream, err := cluster.CreateStream(ctx, "orders", runnel.WithShardCount(1))
	if err != nil {
		log.Fatal(err)
	}
	put, err := stream.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "customer-1", Data: []byte("order 1")})
	if err != nil {
		log.Fatal(err)
	}
	if err := cluster.Close(); err != nil {
		log.Fatal(err)
	}

	cluster, err = runnel.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	stream, err = cluster.Stream("orders")
	if err != nil {
		log.Fatal(err)
	}
	for rec, err := range stream.Records(ctx, put.ShardID, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(rec.Data), rec.SequenceNumber == put.SequenceNumber)
	}
	// Output: order 1 true
}
