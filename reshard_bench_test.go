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

// Benchmarks of resharding: the cost of UpdateShardCount on a large stream,
// and what resharding costs writers.

const reshardBenchRecordSize = 100

// reshardBenchBatch returns a PutRecords batch of n 100-byte records with
// distinct partition keys.
func reshardBenchBatch(n int) []PutRecordsEntry {
	data := make([]byte, reshardBenchRecordSize)
	batch := make([]PutRecordsEntry, n)
	for i := range batch {
		batch[i] = PutRecordsEntry{PartitionKey: fmt.Sprintf("partition-%06d", i), Data: data}
	}
	return batch
}

// reshardBenchFill writes n records to s, spread over 5,000 partition keys.
func reshardBenchFill(b *testing.B, s *Stream, n int) {
	b.Helper()
	keys := make([]string, 5000)
	for i := range keys {
		keys[i] = fmt.Sprintf("partition-%06d", i)
	}
	data := make([]byte, reshardBenchRecordSize)
	batch := make([]PutRecordsEntry, MaxPutRecordsEntries)
	for i := 0; i < n; i += len(batch) {
		m := min(len(batch), n-i)
		for j := range m {
			batch[j] = PutRecordsEntry{PartitionKey: keys[(i+j)%len(keys)], Data: data}
		}
		out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: batch[:m]})
		if err != nil || out.FailedRecordCount > 0 {
			b.Fatalf("filling the stream: %v (%d failed)", err, out.FailedRecordCount)
		}
	}
}

// BenchmarkUpdateShardCount times UpdateShardCount on a large stream: every
// measured cycle starts from a new 1,000-shard stream whose open shards hold
// 200k 100-byte records (about 200 each), doubles it to 2,000 shards (up-ms/op)
// and halves it back to 1,000 (down-ms/op); ns/op is the two together. The
// doubling closes the shards that hold the records, which stay retained and
// readable in them, so the halving reshapes shards that hold none while the
// stream still holds all 200k. Creating and filling the stream (about half a
// second a cycle) and a garbage collection of the previous cycle's stream run
// outside the timer, so run it with a small -benchtime such as 3x. The target
// is at most 50 ms each way.
func BenchmarkUpdateShardCount(b *testing.B) {
	const (
		shards  = 1000
		records = 200_000
	)
	ctx := context.Background()
	c := NewCluster(WithShardQuota(20_000))
	defer c.Close()
	const name = "bench-update-shard-count"
	var s *Stream
	var up, down time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if s != nil {
			if err := c.DeleteStream(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
		var err error
		s, err = c.CreateStream(ctx, name, WithShardCount(shards),
			WithLimits(Unlimited()), WithUpdateShardCountLimit(0))
		if err != nil {
			b.Fatal(err)
		}
		reshardBenchFill(b, s, records)
		runtime.GC() // the previous cycle's stream is garbage: collect it untimed
		b.StartTimer()

		t0 := time.Now()
		if _, err := s.UpdateShardCount(ctx, 2*shards); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.UpdateShardCount(ctx, shards); err != nil {
			b.Fatal(err)
		}
		up += t1.Sub(t0)
		down += time.Since(t1)
	}
	b.ReportMetric(float64(up.Microseconds())/1e3/float64(b.N), "up-ms/op")
	b.ReportMetric(float64(down.Microseconds())/1e3/float64(b.N), "down-ms/op")
}

// BenchmarkWriteDuringReshard writes PutRecords batches of 500 100-byte
// records from one goroutine into a 4-shard stream: steady, while another
// goroutine reshards every 10 ms (UpdateShardCount 4 ↔ 8), and alternating
// the two every 100 ms in one run, which compares them under the same
// machine load and reports the resharding rate as a share of the steady one
// (the target is at least 80%). An op is one batch; records/s is over the
// whole run, and reshards/s is the rate of resharding achieved over the whole
// run (at most 100, or 50 when interleaved). B/op and allocs/op count every
// allocation of the process during the run, so while resharding they include
// the resharding goroutine's as well as the writer's (the store's arenas
// account for most of B/op: the stream keeps every record written).
func BenchmarkWriteDuringReshard(b *testing.B) {
	for _, mode := range []string{"steady", "resharding", "interleaved"} {
		b.Run(mode, func(b *testing.B) { reshardBenchWrites(b, mode) })
	}
}

// reshardBenchWrites runs the write loop of BenchmarkWriteDuringReshard.
func reshardBenchWrites(b *testing.B, mode string) {
	ctx := context.Background()
	c := NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "bench-write-during-reshard", WithShardCount(4),
		WithLimits(Unlimited()), WithUpdateShardCountLimit(0))
	if err != nil {
		b.Fatal(err)
	}
	batch := reshardBenchBatch(MaxPutRecordsEntries)

	// phase is 1 while the resharder is active, 0 while it rests.
	var phase atomic.Int32
	var reshards atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	if mode != "steady" {
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			target := 8
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				// Interleaved: 10 ticks on, 10 off; an even number of
				// changes per phase leaves 4 shards for the rest.
				if mode == "interleaved" && n/10%2 == 0 {
					phase.Store(0)
					continue
				}
				phase.Store(1)
				if _, err := s.UpdateShardCount(ctx, target); err != nil {
					b.Error(err)
					return
				}
				reshards.Add(1)
				target = 12 - target
			}
		})
	}

	var dur [2]time.Duration
	var recs [2]int
	b.ReportAllocs()
	for b.Loop() {
		p := phase.Load()
		t0 := time.Now()
		out, err := s.PutRecords(ctx, PutRecordsInput{Records: batch})
		dur[p] += time.Since(t0)
		recs[p] += len(batch)
		if err != nil || out.FailedRecordCount > 0 {
			b.Fatalf("PutRecords: %v (%d failed)", err, out.FailedRecordCount)
		}
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*len(batch))/secs, "records/s")
	b.ReportMetric(float64(reshards.Load())/secs, "reshards/s")
	if mode == "interleaved" && dur[0] > 0 && dur[1] > 0 {
		steady := float64(recs[0]) / dur[0].Seconds()
		resharding := float64(recs[1]) / dur[1].Seconds()
		b.ReportMetric(steady, "steady-records/s")
		b.ReportMetric(resharding, "resharding-records/s")
		b.ReportMetric(100*resharding/steady, "%-of-steady")
	}
}
