package runnel_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"

	"github.com/runnel-go/runnel"
)

// A consumer group of one worker processes every record of a stream, and
// checkpoints after each batch. More workers with the same application
// name and lease store would share the shards.
func ExampleConsumer() {
	ctx := context.Background()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "orders", runnel.WithShardCount(2))
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"order-1", "order-2", "order-3", "order-4"} {
		if _, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: id, Data: []byte(id + " created")}); err != nil {
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
		for _, r := range in.Records {
			seen = append(seen, string(r.Data))
		}
		if len(seen) == 4 {
			close(done)
		}
		mu.Unlock()
		return in.Checkpointer.Checkpoint(ctx)
	})
	store := runnel.NewMemoryLeaseStore() // share it with every worker of "billing"
	worker, err := runnel.NewConsumer(s, "billing", func(shardID string) runnel.RecordProcessor { return process },
		runnel.WithLeaseStore(store))
	if err != nil {
		log.Fatal(err)
	}
	<-done
	worker.Close() // hands the leases off, with their checkpoints

	slices.Sort(seen)
	fmt.Println(seen)
	leases, _ := store.ListLeases(ctx)
	for _, l := range leases {
		fmt.Printf("%s owner=%q checkpointed=%v\n", l.ShardID, l.Owner, !l.Checkpoint.IsZero())
	}
	// Output:
	// [order-1 created order-2 created order-3 created order-4 created]
	// shardId-000000000000 owner="" checkpointed=true
	// shardId-000000000001 owner="" checkpointed=true
}
