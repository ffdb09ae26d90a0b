package runnel_test

import (
	"context"
	"fmt"

	"github.com/runnel-go/runnel"
)

// A ShardReader reads the user records of one shard as a KCL record
// processor receives them: aggregates come out deaggregated, each user
// record with its sub-sequence number.
func ExampleShardReader() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "orders", runnel.WithShardCount(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, data := range []string{"apple", "pear"} {
		if _, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "fruit", Data: []byte(data)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	agg, err := runnel.Aggregate([]runnel.UserRecord{
		{PartitionKey: "veg", Data: []byte("leek")},
		{PartitionKey: "veg", Data: []byte("kale")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "veg", Data: agg}); err != nil {
		fmt.Println(err)
		return
	}

	shards, err := s.ListShards(ctx, runnel.ListShardsInput{})
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := runnel.NewShardReader(s, shards.Shards[0], runnel.WithReaderStart(runnel.StartingPosition{Type: runnel.TrimHorizon}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	b, err := r.Next(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range b.Records {
		fmt.Printf("%-5s %-5s sub %d aggregated=%t\n", u.PartitionKey, u.Data, u.SubSequenceNumber, u.Aggregated)
	}
	// Output:
	// fruit apple sub 0 aggregated=false
	// fruit pear  sub 0 aggregated=false
	// veg   leek  sub 0 aggregated=true
	// veg   kale  sub 1 aggregated=true
}
