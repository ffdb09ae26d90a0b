package runnel

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkProducer measures user records/s for 100-byte records put from 4
// goroutines into an unlimited 4-shard stream, with aggregation and with
// collection only.
func BenchmarkProducer(b *testing.B) {
	for _, agg := range []bool{true, false} {
		b.Run(fmt.Sprintf("aggregation=%v", agg), func(b *testing.B) {
			_, s := benchStream(b)
			ctx := context.Background()
			p, err := NewProducer(ctx, s, WithAggregation(agg), WithShardLimits(Unlimited()))
			if err != nil {
				b.Fatal(err)
			}
			keys := benchKeys(4096)
			data := make([]byte, benchRecordSize)
			const goroutines = 4
			per := b.N/goroutines + 1
			var lat latencies
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range per {
						var done func(ProducerResult)
						if i%256 == 0 { // sample the time from Put to the result
							start := time.Now()
							done = func(ProducerResult) { lat.add(time.Since(start)) }
						}
						if err := p.Put(ctx, ProducerRecord{PartitionKey: keys[(i*goroutines+g)&4095], Data: data}, done); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			m := p.Metrics()
			if m.UserRecordsPut != int64(per*goroutines) {
				b.Fatalf("put %d user records, want %d", m.UserRecordsPut, per*goroutines)
			}
			reportRecords(b, per*goroutines)
			b.ReportMetric(m.AggregationRatio(), "records/kinesis-record")
			lat.report(b, "put-to-result")
		})
	}
}

// BenchmarkProducerLimited runs the producer against a 4-shard stream with
// Kinesis's limits for a fixed time and reports how much of the shards'
// 1 MiB/s write budget it used, and how often it was throttled.
func BenchmarkProducerLimited(b *testing.B) {
	const (
		shards   = 4
		duration = 3 * time.Second
	)
	for b.Loop() {
		c := NewCluster()
		s, err := c.CreateStream(context.Background(), "limited", WithShardCount(shards))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), duration)
		p, err := NewProducer(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		keys := benchKeys(4096)
		data := make([]byte, benchRecordSize)
		start := time.Now()
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					_ = p.Put(ctx, ProducerRecord{PartitionKey: keys[(i*4+g)&4095], Data: data}, nil)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		cancel()
		st := s.Stats().Total
		closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Millisecond)
		_ = p.Close(closeCtx)
		cancelClose()
		c.Close()
		budget := float64(shards) * float64(KinesisLimits().WriteBytesPerSecond) * elapsed.Seconds()
		// The buckets start full: one second's budget per shard is extra.
		budget += float64(shards * KinesisLimits().WriteBytesPerSecond)
		b.ReportMetric(100*float64(st.BytesPut)/budget, "%budget")
		b.ReportMetric(float64(st.WriteThrottles), "throttles")
		b.ReportMetric(float64(p.Metrics().UserRecordsPut)/elapsed.Seconds(), "records/s")
	}
}

// BenchmarkProducerBlockedMemory puts into a stream that throttles every
// call, for 500 ms of real time, and reports the live heap at the end: it
// stays within the bound the Producer doc states (the buffer plus one
// call's aggregates per sender). TestProducerMemoryBound measures the peak
// over a long virtual-time window.
func BenchmarkProducerBlockedMemory(b *testing.B) {
	const bufferBytes = 8 << 20
	for b.Loop() {
		c := NewCluster()
		s, _ := c.CreateStream(context.Background(), "blocked", WithShardCount(4))
		remove := injectFault(b, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p, _ := NewProducer(context.Background(), s, WithBufferLimits(bufferBytes, 1<<20))
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		data := make([]byte, 1000)
		put := 0
		for ctx.Err() == nil {
			if p.Put(ctx, ProducerRecord{PartitionKey: "k" + fmt.Sprint(put%1000), Data: data}, nil) == nil {
				put++
			}
		}
		cancel()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(bufferBytes)/(1<<20), "buffer-MiB")
		b.ReportMetric(float64(put), "records-accepted")
		closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Millisecond)
		_ = p.Close(closeCtx)
		cancelClose()
		remove()
		c.Close()
	}
}

// BenchmarkProducerHotKey puts 100-byte records of one partition key through
// the generic path (what real Kinesis sees), without aggregation, in the
// default batching mode and with WithStrictOrder, and reports user records
// per PutRecords call: strict order sends a key at most once per shard and
// call.
func BenchmarkProducerHotKey(b *testing.B) {
	for _, strict := range []bool{false, true} {
		b.Run(fmt.Sprintf("strict=%v", strict), func(b *testing.B) {
			_, s := benchStream(b)
			ctx := context.Background()
			p, err := NewProducer(ctx, s, WithGenericPath(true), WithAggregation(false), WithStrictOrder(strict), WithShardLimits(Unlimited()))
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, benchRecordSize)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := p.Put(ctx, ProducerRecord{PartitionKey: "hot", Data: data}, nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			m := p.Metrics()
			if m.UserRecordsPut != int64(b.N) {
				b.Fatalf("put %d user records, want %d", m.UserRecordsPut, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(m.UserRecordsPut)/float64(m.PutRecordsCalls), "records/call")
		})
	}
}
