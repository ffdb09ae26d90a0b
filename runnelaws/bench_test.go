package runnelaws_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/runnelaws"
	"github.com/runnel-go/runnel/server/servertest"
)

// BenchmarkProducer puts 100-byte records with a Producer (aggregation
// on, 4 shards, no limits) into a stream in process ("direct") and into
// the same kind of stream through the adapter, the AWS SDK and HTTP on a
// loopback port ("adapter"). The difference is the adapter's overhead:
// the SDK's encoding and signing, HTTP, and the server's decoding.
func BenchmarkProducer(b *testing.B) {
	for _, via := range []string{"direct", "adapter"} {
		b.Run(via, func(b *testing.B) {
			srv := servertest.New(b)
			s, err := srv.Cluster.CreateStream(context.Background(), "bench", runnel.WithShardCount(4), runnel.WithLimits(runnel.Unlimited()))
			if err != nil {
				b.Fatal(err)
			}
			var dst runnel.Putter = s
			if via == "adapter" {
				if dst, err = runnelaws.NewStream(kinesis.NewFromConfig(srv.Config()), "bench"); err != nil {
					b.Fatal(err)
				}
			}
			benchProducer(b, dst)
		})
	}
}

func benchProducer(b *testing.B, dst runnel.Putter) {
	ctx := context.Background()
	p, err := runnel.NewProducer(ctx, dst)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 100)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if err := p.Put(ctx, runnel.ProducerRecord{PartitionKey: keys[i%len(keys)], Data: data}, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	b.StopTimer()
	p.Close(ctx)
}
