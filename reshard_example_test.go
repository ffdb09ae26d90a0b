package runnel_test

import (
	"context"
	"fmt"

	"github.com/runnel-go/runnel"
)

// Splitting a shard closes it and opens two children; its records stay
// readable, and ReadableShards says which shards a reader may start on so
// that each partition key's records come out in order.
func ExampleStream_SplitShard() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, _ := c.CreateStream(ctx, "events", runnel.WithShardCount(1))
	s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("before")})

	list, _ := s.ListShards(ctx, runnel.ListShardsInput{})
	parent := list.Shards[0]
	if err := s.SplitShard(ctx, parent.ShardID, parent.HashKeyRange.Mid()); err != nil {
		fmt.Println(err)
		return
	}
	s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("after")})

	list, _ = s.ListShards(ctx, runnel.ListShardsInput{})
	finished := map[string]bool{}
	for len(finished) < len(list.Shards) {
		for _, sh := range runnel.ReadableShards(list.Shards, func(id string) bool { return finished[id] }) {
			for rec, err := range s.Records(ctx, sh.ShardID, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
				if err != nil {
					fmt.Println(err)
					return
				}
				fmt.Printf("%s: %s\n", sh.ShardID, rec.Data)
			}
			finished[sh.ShardID] = true
		}
	}
	// Output:
	// shardId-000000000000: before
	// shardId-000000000002: after
}

// UpdateShardCount reshapes a stream into evenly spread shards.
func ExampleStream_UpdateShardCount() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, _ := c.CreateStream(ctx, "events", runnel.WithShardCount(2))
	out, err := s.UpdateShardCount(ctx, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	list, _ := s.ListShards(ctx, runnel.ListShardsInput{Filter: runnel.ShardFilter{Type: runnel.FilterAtLatest}})
	fmt.Println(out.CurrentShardCount, "->", out.TargetShardCount, "open:", len(list.Shards))
	// Output: 2 -> 3 open: 3
}

// Follow tails a shard like `tail -f`: writers wake it at once.
func ExampleStream_Follow() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := runnel.NewCluster()
	defer c.Close()
	s, _ := c.CreateStream(ctx, "events", runnel.WithShardCount(1))
	list, _ := s.ListShards(ctx, runnel.ListShardsInput{})
	shard := list.Shards[0].ShardID

	go func() {
		for i := range 3 {
			s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: fmt.Appendf(nil, "event %d", i)})
		}
	}()
	n := 0
	for rec, err := range s.Follow(ctx, shard, runnel.StartingPosition{Type: runnel.TrimHorizon}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(rec.Data))
		if n++; n == 3 {
			break
		}
	}
	// Output:
	// event 0
	// event 1
	// event 2
}
