// Fanout shows enhanced fan-out: three consumers registered with one
// stream each get every record pushed to them as it is written, without
// polling and without slowing the writer or each other. One of them
// stalls for a while and then catches up from the stored records. A
// second subscription of one consumer to the shard at once is refused, as
// Kinesis allows one subscribe call a second. Then a consumer group reads the same
// stream in fan-out mode. The program checks that every subscriber got
// every record in order.
package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/runnel-go/runnel"
)

const records = 100_000

func main() {
	ctx := context.Background()
	cluster := runnel.NewCluster()
	defer cluster.Close()
	stream, err := cluster.CreateStream(ctx, "prices", runnel.WithShardCount(1), runnel.WithLimits(runnel.Unlimited()))
	if err != nil {
		log.Fatal(err)
	}
	shard := "shardId-000000000000"

	var wg sync.WaitGroup
	for _, name := range []string{"dashboard", "archive", "alerts"} {
		con, err := stream.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: name})
		if err != nil {
			log.Fatal(err)
		}
		in := runnel.SubscribeToShardInput{ConsumerARN: con.ConsumerARN, ShardID: shard, StartingPosition: runnel.StartingPosition{Type: runnel.Latest}}
		sub, err := stream.SubscribeToShard(ctx, in)
		if err != nil {
			log.Fatal(err)
		}
		if name == "alerts" {
			// A consumer may subscribe to a shard once a second, and a new
			// subscription within 5 s of the last is refused; at 5 s or
			// later it would take over.
			_, err := stream.SubscribeToShard(ctx, in)
			fmt.Println("a second subscription at once is refused:", runnel.ErrorName(err))
		}
		wg.Go(func() { subscriber(ctx, sub, name) })
	}

	data := make([]byte, 100)
	start := time.Now()
	for i := range records {
		if _, err := stream.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: fmt.Sprint(i % 10), Data: data}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("wrote %d records in %v, one PutRecord at a time\n", records, time.Since(start).Round(time.Millisecond))
	wg.Wait()
	group(ctx, stream)
	st := stream.Stats().Total
	fmt.Printf("pushed %d records to subscriptions, polled %d\n", st.RecordsPushed, st.RecordsRead)
}

// subscriber reads every record of the shard in order and checks it;
// "archive" stalls for half a second first, while the writer goes on.
func subscriber(ctx context.Context, sub runnel.ShardSubscription, name string) {
	defer sub.Close()
	if name == "archive" {
		time.Sleep(500 * time.Millisecond)
	}
	var last runnel.SequenceNumber
	behind := int64(0)
	for got := 0; got < records; {
		ev, err := sub.Next(ctx)
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		for _, r := range ev.Records {
			if !last.IsZero() && r.SequenceNumber.Cmp(last) <= 0 {
				log.Fatalf("%s: %s after %s", name, r.SequenceNumber, last)
			}
			last = r.SequenceNumber
		}
		got += len(ev.Records)
		behind = max(behind, ev.MillisBehindLatest)
	}
	fmt.Printf("%-9s got all %d records in order (at most %d ms behind)\n", name, records, behind)
}

// group reads the stream with a consumer group of one worker in fan-out
// mode: it registers the stream consumer "reports" and processes every
// record pushed to it.
func group(ctx context.Context, stream *runnel.Stream) {
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	process := runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
		mu.Lock()
		defer mu.Unlock()
		if n += len(in.Records); n == records {
			close(done)
		}
		return in.Checkpointer.Checkpoint(ctx)
	})
	w, err := runnel.NewConsumer(stream, "reports", func(string) runnel.RecordProcessor { return process }, runnel.WithFanOut(""))
	if err != nil {
		log.Fatal(err)
	}
	<-done
	w.Close()
	fmt.Printf("consumer group \"reports\" processed %d records with fan-out\n", n)
}
