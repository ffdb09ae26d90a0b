package runnelaws_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/runnelaws"
	"github.com/runnel-go/runnel/server"
)

// A producer and a consumer group written against runnel's seams, run
// through the AWS SDK. Here the SDK talks to runnel's own Kinesis endpoint
// on a loopback port, on a new stream; pointed at Amazon Kinesis instead
// (config.LoadDefaultConfig), the producer and the group are the same
// lines (see examples/outgrow, which also tells its records from older
// ones on the stream).
func ExampleNewStream() {
	cluster := runnel.NewCluster()
	defer cluster.Close()
	if _, err := cluster.CreateStream(context.Background(), "orders", runnel.WithShardCount(2)); err != nil {
		panic(err)
	}
	srv := server.New(cluster)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	ctx := context.Background()
	client := kinesis.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + l.Addr().String()),
		Credentials:  credentials.NewStaticCredentialsProvider("any", "any", ""),
	})
	orders, err := runnelaws.NewStream(client, "orders")
	if err != nil {
		panic(err)
	}

	p, err := runnel.NewProducer(ctx, orders)
	if err != nil {
		panic(err)
	}
	for i := range 10 {
		if err := p.Put(ctx, runnel.ProducerRecord{PartitionKey: fmt.Sprint("customer-", i%3), Data: fmt.Appendf(nil, "order %d", i)}, nil); err != nil {
			panic(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		panic(err)
	}

	var mu sync.Mutex
	seen := map[string]bool{} // each once: delivery is at least once
	all := make(chan struct{})
	var allOnce sync.Once
	group, err := runnel.NewConsumer(orders, "billing", func(string) runnel.RecordProcessor {
		return runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
			mu.Lock()
			for _, r := range in.Records {
				seen[string(r.Data)] = true
			}
			if len(seen) == 10 {
				allOnce.Do(func() { close(all) })
			}
			mu.Unlock()
			return in.Checkpointer.Checkpoint(ctx)
		})
	})
	if err != nil {
		panic(err)
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
	}
	if err := group.Close(); err != nil {
		panic(err)
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Println("read", len(seen), "orders through the AWS SDK")
	// Output:
	// read 10 orders through the AWS SDK
}
