package runnel

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks of consumers: 100-byte records, 4 shards, limits off.

// benchConsumer starts a one-worker group on s that counts the user
// records it processes, checkpointing after every batch, and returns the
// counter and a channel closed once want records have been processed.
func benchConsumer(b *testing.B, s *Stream, want int64) (*Consumer, *atomic.Int64, chan struct{}) {
	b.Helper()
	var n atomic.Int64
	done := make(chan struct{})
	process := ProcessorFunc(func(ctx context.Context, in ProcessRecordsInput) error {
		if n.Add(int64(len(in.Records))) == want {
			close(done)
		}
		return in.Checkpointer.Checkpoint(ctx)
	})
	c, err := NewConsumer(s, "bench", func(string) RecordProcessor { return process })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, &n, done
}

// BenchmarkConsumer measures a consumer group of one worker draining a
// 4-shard stream that holds b.N plain records: records/s counts the user
// records handed to the processor from the start of the worker until the
// last one, including taking the leases and a checkpoint per batch. The
// records are written before the timer starts.
func BenchmarkConsumer(b *testing.B) {
	_, s := benchStream(b)
	fillStream(b, s, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	_, n, done := benchConsumer(b, s, int64(b.N))
	<-done
	b.StopTimer()
	if got := n.Load(); got != int64(b.N) {
		b.Fatalf("processed %d records, want %d", got, b.N)
	}
	reportRecords(b, b.N)
}

// BenchmarkConsumerEndToEnd measures user records going from a Producer
// with aggregation (4 goroutines calling Put, 4,096 keys) through a
// 4-shard stream to a consumer group's processor, which gets them
// deaggregated: records/s counts user records from the first Put until the
// processor has the last one.
func BenchmarkConsumerEndToEnd(b *testing.B) {
	_, s := benchStream(b)
	ctx := context.Background()
	const goroutines = 4
	per := b.N/goroutines + 1
	total := per * goroutines
	p, err := NewProducer(ctx, s, WithShardLimits(Unlimited()))
	if err != nil {
		b.Fatal(err)
	}
	keys := benchKeys(4096)
	data := make([]byte, benchRecordSize)
	b.ReportAllocs()
	b.ResetTimer()
	_, n, done := benchConsumer(b, s, int64(total))
	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			for i := range per {
				if err := p.Put(ctx, ProducerRecord{PartitionKey: keys[(i*goroutines+g)&4095], Data: data}, nil); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if got := n.Load(); got != int64(total) {
		b.Fatalf("processed %d user records, want %d", got, total)
	}
	reportRecords(b, total)
}

// BenchmarkConsumerLatency measures the time from PutRecord returning to
// the processor having the record, one record in flight at a time, in
// process: put-to-process p50 and p99.
func BenchmarkConsumerLatency(b *testing.B) {
	_, s := benchStream(b)
	ctx := context.Background()
	got := make(chan time.Time, 1)
	process := ProcessorFunc(func(ctx context.Context, in ProcessRecordsInput) error {
		got <- time.Now()
		return nil
	})
	c, err := NewConsumer(s, "bench", func(string) RecordProcessor { return process })
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for c.Stats().LeasesHeld < 4 {
		time.Sleep(time.Millisecond)
	}
	data := make([]byte, benchRecordSize)
	var lat latencies
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data}); err != nil {
			b.Fatal(err)
		}
		put := time.Now()
		lat.add((<-got).Sub(put))
	}
	b.StopTimer()
	lat.report(b, "put-to-process")
}
