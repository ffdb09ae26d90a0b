package runnel

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks of enhanced fan-out: 100-byte records, one shard, limits off.

// benchSubscriptions makes a one-shard stream without limits and n
// consumers subscribed to its shard from TRIM_HORIZON.
func benchSubscriptions(b *testing.B, n int) (*Stream, []ShardSubscription) {
	b.Helper()
	c := NewCluster()
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	s, err := c.CreateStream(ctx, "fanout", WithShardCount(1), WithLimits(Unlimited()), WithRetention(1000*time.Hour),
		WithSubscriptionDuration(1000*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	subs := make([]ShardSubscription, n)
	for i := range subs {
		con, err := s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: fmt.Sprintf("consumer-%02d", i)})
		if err != nil {
			b.Fatal(err)
		}
		sub, err := s.SubscribeToShard(ctx, SubscribeToShardInput{ConsumerARN: con.ConsumerARN, ShardID: shardID(0), StartingPosition: StartingPosition{Type: TrimHorizon}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sub.Close() })
		subs[i] = sub
	}
	return s, subs
}

// BenchmarkSubscribeLatency measures the latency of push delivery: one
// record at a time, each written after the previous one was delivered, or
// paced at 10,000 records/s. "return" is from PutRecord returning to the
// subscriber having the record (0 when it had the record before PutRecord
// returned), "put" from the start of PutRecord; every record is measured.
// allocs/op are per record, PutRecord included.
func BenchmarkSubscribeLatency(b *testing.B) {
	for _, paced := range []bool{false, true} {
		name := "back-to-back"
		if paced {
			name = "paced-10k/s"
		}
		b.Run(name, func(b *testing.B) {
			s, subs := benchSubscriptions(b, 1)
			sub := subs[0]
			ctx := context.Background()
			var had atomic.Int64 // when the subscriber had the last record (UnixNano)
			got := make(chan struct{}, 1)
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					ev, err := sub.Next(ctx)
					if err != nil {
						return
					}
					if len(ev.Records) > 0 {
						had.Store(time.Now().UnixNano())
						got <- struct{}{}
					}
				}
			})
			data := make([]byte, benchRecordSize)
			put := func() (start, returned int64) {
				start = time.Now().UnixNano()
				if _, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data}); err != nil {
					b.Fatal(err)
				}
				return start, time.Now().UnixNano()
			}
			put() // let the subscriber reach the tip
			<-got
			var fromReturn, fromPut latencies
			fromReturn.d = make([]time.Duration, 0, 1<<20)
			fromPut.d = make([]time.Duration, 0, 1<<20)
			const gap = 100 * time.Microsecond
			next := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if paced {
					next = next.Add(gap)
					for time.Until(next) > 0 {
						time.Sleep(time.Until(next))
					}
				}
				start, returned := put()
				<-got
				h := had.Load()
				fromReturn.add(time.Duration(max(h-returned, 0)))
				fromPut.add(time.Duration(h - start))
			}
			b.StopTimer()
			sub.Close()
			wg.Wait()
			reportRecords(b, b.N)
			fromReturn.report(b, "return")
			fromPut.report(b, "put")
		})
	}
}

// BenchmarkSubscribeThroughput measures records delivered per second, in
// total, to 1 and to 20 subscriptions draining one shard that holds 1 M
// records (each subscription gets every record), and the allocations per
// record delivered (registering the consumers included). An op is one
// drain of the shard by every subscriber.
func BenchmarkSubscribeThroughput(b *testing.B) {
	const stored = 1 << 20
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			c := NewCluster()
			b.Cleanup(func() { c.Close() })
			ctx := context.Background()
			s, err := c.CreateStream(ctx, "fanout", WithShardCount(1), WithLimits(Unlimited()), WithRetention(1000*time.Hour),
				WithSubscriptionDuration(1000*time.Hour), WithConsumerLimit(1<<20))
			if err != nil {
				b.Fatal(err)
			}
			fillShard(b, s, stored)
			// New consumers for every drain, so that Kinesis's subscribe
			// rules (1 call a second, 5 s between subscriptions) do not
			// make the benchmark wait.
			registered := 0
			consumers := func() []string {
				arns := make([]string, n)
				for i := range arns {
					con, err := s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: fmt.Sprintf("consumer-%d", registered)})
					if err != nil {
						b.Fatal(err)
					}
					registered++
					arns[i] = con.ConsumerARN
				}
				return arns
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				arns := consumers()
				b.StartTimer()
				var wg sync.WaitGroup
				for _, arn := range arns {
					wg.Go(func() { drain(b, s, arn, stored) })
				}
				wg.Wait()
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			delivered := float64(b.N) * float64(n) * stored
			b.ReportMetric(delivered/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/delivered, "allocs/record")
		})
	}
}

// fillShard writes n 100-byte records to shard 0 of s, 500 a call.
func fillShard(b *testing.B, s *Stream, n int) {
	b.Helper()
	batch := make([]PutRecordsEntry, MaxPutRecordsEntries)
	data := make([]byte, benchRecordSize)
	for i := range batch {
		batch[i] = PutRecordsEntry{PartitionKey: "k", Data: data}
	}
	for left := n; left > 0; left -= len(batch) {
		out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: batch[:min(left, len(batch))]})
		if err != nil || out.FailedRecordCount > 0 {
			b.Fatal(err, out.FailedRecordCount)
		}
	}
}

// drain subscribes to shard 0 from TRIM_HORIZON and reads n records.
func drain(b *testing.B, s *Stream, arn string, n int) {
	sub, err := s.SubscribeToShard(context.Background(), SubscribeToShardInput{ConsumerARN: arn, ShardID: shardID(0), StartingPosition: StartingPosition{Type: TrimHorizon}})
	if err != nil {
		b.Error(err)
		return
	}
	defer sub.Close()
	for got := 0; got < n; {
		ev, err := sub.Next(context.Background())
		if err != nil {
			b.Error(err)
			return
		}
		got += len(ev.Records)
	}
}

// BenchmarkPutRecordsWithSubscriber measures PutRecords ×500 into one
// shard with no subscriber, with a subscriber that has stopped reading
// (stalled), and with one that reads everything as it comes (live):
// records written per second.
func BenchmarkPutRecordsWithSubscriber(b *testing.B) {
	for _, mode := range []string{"none", "stalled", "live"} {
		b.Run(mode, func(b *testing.B) {
			n := 1
			if mode == "none" {
				n = 0
			}
			s, subs := benchSubscriptions(b, n)
			ctx := context.Background()
			var wg sync.WaitGroup
			for _, sub := range subs {
				if _, err := sub.Next(ctx); err != nil { // an idle event at once
					b.Fatal(err)
				}
				if mode == "live" {
					wg.Go(func() {
						for {
							if _, err := sub.Next(ctx); err != nil {
								return
							}
						}
					})
				}
			}
			entries := make([]PutRecordsEntry, MaxPutRecordsEntries)
			for i := range entries {
				entries[i] = PutRecordsEntry{PartitionKey: "k", Data: make([]byte, benchRecordSize)}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.PutRecords(ctx, PutRecordsInput{Records: entries}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			for _, sub := range subs {
				sub.Close()
			}
			wg.Wait()
			reportWrites(b, b.N*MaxPutRecordsEntries)
		})
	}
}
