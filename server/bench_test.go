package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server/servertest"
)

// Benchmarks through the Go SDK over loopback: 4 shards, limits off,
// 100-byte records.

const benchRecordSize = 100

// benchClient starts a server with a 4-shard stream "bench" without limits
// and returns an SDK client for it.
func benchClient(b *testing.B) (*kinesis.Client, *runnel.Stream) {
	b.Helper()
	srv := servertest.New(b)
	st, err := srv.Cluster.CreateStream(b.Context(), "bench", runnel.WithShardCount(4), runnel.WithLimits(runnel.Unlimited()), runnel.WithRetention(1000*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	return kinesis.NewFromConfig(srv.Config()), st
}

func benchEntries() []types.PutRecordsRequestEntry {
	entries := make([]types.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("key-", i)), Data: make([]byte, benchRecordSize)}
	}
	return entries
}

// BenchmarkSDKPutRecords: PutRecords of 500 records from 4 goroutines,
// against runnel's server and against a server that answers every call
// with a canned success (what the SDK itself can do: the client-bound
// limit).
func BenchmarkSDKPutRecords(b *testing.B) {
	for _, target := range []string{"runnel", "canned"} {
		b.Run(target, func(b *testing.B) {
			var k *kinesis.Client
			if target == "runnel" {
				k, _ = benchClient(b)
			} else {
				k = cannedClient(b)
			}
			entries := benchEntries()
			in := &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: entries}
			b.ReportAllocs()
			b.SetParallelism(2) // 4 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					out, err := k.PutRecords(context.Background(), in)
					if err != nil || aws.ToInt32(out.FailedRecordCount) > 0 {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*len(entries))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// cannedClient returns an SDK client of a loopback server that answers
// every request with one canned PutRecords success of 500 records.
func cannedClient(b *testing.B) *kinesis.Client {
	results := make([]map[string]string, 500)
	for i := range results {
		results[i] = map[string]string{"SequenceNumber": "49000000000000000000000000000000000000000000000000000000", "ShardId": "shardId-000000000000"}
	}
	body, _ := json.Marshal(map[string]any{"FailedRecordCount": 0, "Records": results})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write(body)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go hs.Serve(l)
	b.Cleanup(func() { hs.Close() })
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + l.Addr().String()),
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", "")})
}

// BenchmarkSDKGetRecords: one goroutine per shard drains 4 shards of
// 50,000 records each with GetRecords (10,000 a call).
func BenchmarkSDKGetRecords(b *testing.B) {
	k, st := benchClient(b)
	const perShard = 50_000
	entries := make([]runnel.PutRecordsEntry, 500)
	for i := range entries {
		entries[i] = runnel.PutRecordsEntry{PartitionKey: fmt.Sprint("key-", i), Data: make([]byte, benchRecordSize)}
	}
	for range 4 * perShard / 500 {
		if _, err := st.PutRecords(b.Context(), runnel.PutRecordsInput{Records: entries}); err != nil {
			b.Fatal(err)
		}
	}
	total := 0
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for sh := range 4 {
			wg.Go(func() {
				n := drainShard(b, k, fmt.Sprintf("shardId-%012d", sh))
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}

// drainShard reads a shard from TRIM_HORIZON to its newest record.
func drainShard(b *testing.B, k *kinesis.Client, shard string) int {
	ctx := context.Background()
	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("bench"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		b.Error(err)
		return 0
	}
	n, iter := 0, it.ShardIterator
	for {
		out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			b.Error(err)
			return n
		}
		n += len(out.Records)
		if aws.ToInt64(out.MillisBehindLatest) == 0 && len(out.Records) == 0 {
			return n
		}
		iter = out.NextShardIterator
	}
}

// percentiles reports p50 and p99 of ds in milliseconds.
func percentiles(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1e3 }
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}

// BenchmarkSDKPutToPoll: the latency from the start of PutRecord to a
// poller, calling GetRecords back to back on the shard, having the record;
// one record at a time.
func BenchmarkSDKPutToPoll(b *testing.B) {
	k, _ := benchClient(b)
	ctx := context.Background()
	const shard = "shardId-000000000000"
	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("bench"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeLatest})
	if err != nil {
		b.Fatal(err)
	}
	iter := it.ShardIterator
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("bench"), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("0"), Data: make([]byte, benchRecordSize)}); err != nil {
			b.Fatal(err)
		}
		for {
			out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				b.Fatal(err)
			}
			iter = out.NextShardIterator
			if len(out.Records) > 0 {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	percentiles(b, "put-to-poll", lat)
}

// BenchmarkSDKSubscribeLatency: the latency from the start of PutRecord to
// the SDK's SubscribeToShard event stream delivering the record; one
// record at a time.
func BenchmarkSDKSubscribeLatency(b *testing.B) {
	k, st := benchClient(b)
	ctx := context.Background()
	con, err := st.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	out, err := k.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(con.ConsumerARN), ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	if err != nil {
		b.Fatal(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("bench"), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("0"), Data: make([]byte, benchRecordSize)}); err != nil {
			b.Fatal(err)
		}
		for got := false; !got; {
			ev, ok := <-stream.Events()
			if !ok {
				b.Fatal(stream.Err())
			}
			if e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok && len(e.Value.Records) > 0 {
				got = true
			}
		}
		lat = append(lat, time.Since(start))
	}
	percentiles(b, "put-to-event", lat)
}
