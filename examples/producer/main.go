// Producer puts 100,000 user records through a KPL-style producer into a
// stream with Kinesis's default limits, while the stream reshards, then reads
// everything back in lineage order, deaggregates it, and checks that every
// record arrived once, in a shard that owns its hash key, and each
// partition key's records in order.
package main

import (
	"context"
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/runnel-go/runnel"
)

func main() {
	ctx := context.Background()
	cluster := runnel.NewCluster()
	defer cluster.Close()
	stream, err := cluster.CreateStream(ctx, "clicks", runnel.WithShardCount(4))
	if err != nil {
		log.Fatal(err)
	}

	producer, err := runnel.NewProducer(ctx, stream, runnel.WithRecordIDs(true))
	if err != nil {
		log.Fatal(err)
	}
	const users, perUser = 1000, 100
	var failed atomic.Int64
	start := time.Now()
	for i := range perUser {
		for u := range users {
			rec := runnel.ProducerRecord{PartitionKey: "user-" + strconv.Itoa(u), Data: []byte(strconv.Itoa(i))}
			err := producer.Put(ctx, rec, func(r runnel.ProducerResult) {
				if r.Err != nil {
					failed.Add(1)
				}
			})
			if err != nil {
				log.Fatal(err)
			}
		}
		if i == perUser/2 {
			// Reshard under load: the producer follows the new shard map.
			if _, err := stream.UpdateShardCount(ctx, 6); err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := producer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	m := producer.Metrics()
	fmt.Printf("put %d user records in %v: %d stored in %d Kinesis records (%.0f per record), %d failed, %d throttled, %d retried\n",
		users*perUser, time.Since(start).Round(time.Millisecond), m.UserRecordsPut, m.KinesisRecordsPut, m.AggregationRatio(), failed.Load(), m.Throttles, m.Retries)

	// Read back in lineage order: parents before children.
	list, err := stream.ListShards(ctx, runnel.ListShardsInput{})
	if err != nil {
		log.Fatal(err)
	}
	next := map[string]int{} // partition key → next expected counter
	seen := map[string]bool{}
	finished := map[string]bool{}
	read, dups := 0, 0
	for len(finished) < len(list.Shards) {
		for _, sh := range runnel.ReadableShards(list.Shards, func(id string) bool { return finished[id] }) {
			for rec, err := range stream.Records(ctx, sh.ShardID, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
				if err != nil {
					log.Fatal(err)
				}
				users, err := runnel.Deaggregate(rec)
				if err != nil {
					log.Fatal(err)
				}
				for _, u := range users {
					if hk, err := u.HashKey(); err != nil || !sh.HashKeyRange.Contains(hk) {
						log.Fatalf("%s: stored in %s, which does not own its hash key", u.PartitionKey, sh.ShardID)
					}
					if seen[u.RecordID] {
						dups++ // a retry's duplicate: drop it by its id
						continue
					}
					seen[u.RecordID] = true
					n, _ := strconv.Atoi(string(u.Data))
					if n != next[u.PartitionKey] {
						log.Fatalf("%s: got record %d, want %d", u.PartitionKey, n, next[u.PartitionKey])
					}
					next[u.PartitionKey]++
					read++
				}
			}
			finished[sh.ShardID] = true
		}
	}
	if read != users*perUser {
		log.Fatalf("read %d user records, want %d", read, users*perUser)
	}
	var open []string
	for _, sh := range list.Shards {
		if sh.Open() {
			open = append(open, sh.ShardID)
		}
	}
	fmt.Printf("read %d user records back in order (%d duplicates dropped) from %d shards; open now: %s\n",
		read, dups, len(list.Shards), strings.Join(open, ", "))
}
