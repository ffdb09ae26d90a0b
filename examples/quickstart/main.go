// Quickstart writes records to an embedded Kinesis-style stream, reads them
// back shard by shard, and prints what happened.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/runnel-go/runnel"
)

func main() {
	ctx := context.Background()
	cluster := runnel.NewCluster()
	defer cluster.Close()

	stream, err := cluster.CreateStream(ctx, "orders", runnel.WithShardCount(2))
	if err != nil {
		log.Fatal(err)
	}

	// Write: one record at a time, then a batch.
	out, err := stream.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "customer-1", Data: []byte("order 1")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("put order 1 -> %s, sequence number %s\n", out.ShardID, out.SequenceNumber)

	batch := []runnel.PutRecordsEntry{
		{PartitionKey: "customer-2", Data: []byte("order 2")},
		{PartitionKey: "customer-1", Data: []byte("order 3")},
		{PartitionKey: "customer-3", Data: []byte("order 4")},
	}
	res, err := stream.PutRecords(ctx, runnel.PutRecordsInput{Records: batch})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("put a batch of %d, %d failed\n", len(batch), res.FailedRecordCount)

	// Read every shard from its oldest record.
	shards, err := stream.ListShards(ctx, runnel.ListShardsInput{})
	if err != nil {
		log.Fatal(err)
	}
	for _, sh := range shards.Shards {
		fmt.Printf("%s holds hash keys %s..%s\n", sh.ShardID, sh.HashKeyRange.StartingHashKey, sh.HashKeyRange.EndingHashKey)
		for rec, err := range stream.Records(ctx, sh.ShardID, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("  %s  %-10s %s\n", rec.SequenceNumber, rec.PartitionKey, rec.Data)
		}
	}

	// Split a shard: its records stay readable, new writes go to its children.
	if err := stream.SplitShard(ctx, shards.Shards[0].ShardID, shards.Shards[0].HashKeyRange.Mid()); err != nil {
		log.Fatal(err)
	}
	sum, err := stream.Describe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("after a split: %d open shards, status %s\n", sum.OpenShardCount, sum.StreamStatus)

	st := stream.Stats().Total
	fmt.Printf("stats: %d records retained (%d bytes), %d puts, %d records read\n", st.RecordsRetained, st.BytesRetained, st.RecordsPut, st.RecordsRead)
}
