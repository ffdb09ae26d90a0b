// Durable keeps a stream in a data directory: it writes records, closes
// the cluster, opens the directory again and reads the records back, with
// the same sequence numbers. Run it twice to see the first run's records
// still there:
//
//	go run ./examples/durable -dir /tmp/runnel-orders
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/runnel-go/runnel"
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "runnel-durable-example"), "the data directory")
	flag.Parse()
	ctx := context.Background()

	// Write, in a cluster that keeps its streams in dir. The default sync
	// policy has each put on disk before it returns.
	cluster, err := runnel.Open(*dir)
	if err != nil {
		log.Fatal(err)
	}
	stream, err := cluster.CreateStream(ctx, "orders", runnel.WithShardCount(2))
	if errors.Is(err, runnel.ErrResourceInUse) {
		stream, err = cluster.Stream("orders") // made by an earlier run
	}
	if err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		out, err := stream.PutRecord(ctx, runnel.PutRecordInput{
			PartitionKey: fmt.Sprintf("customer-%d", i),
			Data:         []byte("order placed at " + time.Now().Format(time.RFC3339Nano)),
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("put    %s %s\n", out.ShardID, out.SequenceNumber)
	}
	if err := cluster.Close(); err != nil {
		log.Fatal(err)
	}

	// Open the directory again: the stream and its records are there.
	cluster, err = runnel.Open(*dir)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	stream, err = cluster.Stream("orders")
	if err != nil {
		log.Fatal(err)
	}
	shards, err := stream.ListShards(ctx, runnel.ListShardsInput{})
	if err != nil {
		log.Fatal(err)
	}
	for _, sh := range shards.Shards {
		for rec, err := range stream.Records(ctx, sh.ShardID, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("read   %s %s %-10s %s\n", sh.ShardID, rec.SequenceNumber, rec.PartitionKey, rec.Data)
		}
	}
}
