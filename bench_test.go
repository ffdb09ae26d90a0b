package runnel

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// Benchmarks of the engine: 100-byte records, 4 shards, limits off.

const benchRecordSize = 100

func benchStream(b *testing.B) (*Cluster, *Stream) {
	b.Helper()
	c := NewCluster()
	b.Cleanup(func() { c.Close() })
	s, err := c.CreateStream(context.Background(), "bench", WithShardCount(4), WithLimits(Unlimited()), WithRetention(1000*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	return c, s
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("partition-%06d", i)
	}
	return keys
}

// latencies samples operation latencies for percentile metrics. It is safe
// for concurrent use.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report adds p50 and p99 metrics in microseconds.
func (l *latencies) report(b *testing.B, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(q float64) float64 { return float64(l.d[int(q*float64(len(l.d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(at(0.50), name+"-p50-µs")
	b.ReportMetric(at(0.99), name+"-p99-µs")
}

// reportRecords reports how many records per second the benchmark handled.
func reportRecords(b *testing.B, records int) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// reportWrites reports records/s and, in MB/s, the record data that the
// writes copied into the store (benchRecordSize bytes a record; partition
// keys not counted). Only for benchmarks that write.
func reportWrites(b *testing.B, records int) {
	reportRecords(b, records)
	b.ReportMetric(float64(records)*benchRecordSize/b.Elapsed().Seconds()/1e6, "MB/s")
}

func BenchmarkPutRecord(b *testing.B) {
	for _, g := range []int{1, 2} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			_, s := benchStream(b)
			keys := benchKeys(1024)
			data := make([]byte, benchRecordSize)
			ctx := context.Background()
			b.ReportAllocs()
			var wg sync.WaitGroup
			var lat latencies
			per := b.N / g
			b.ResetTimer()
			for w := range g {
				wg.Go(func() {
					for i := range per {
						var start time.Time
						if i%64 == 0 { // sample: reading the clock costs as much as a tenth of a put
							start = time.Now()
						}
						if _, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: keys[(i+w*7)&1023], Data: data}); err != nil {
							b.Error(err)
							return
						}
						if i%64 == 0 {
							lat.add(time.Since(start))
						}
					}
				})
			}
			wg.Wait()
			reportWrites(b, per*g)
			lat.report(b, "put")
		})
	}
}

func BenchmarkPutRecords(b *testing.B) {
	for _, g := range []int{1, 2} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			_, s := benchStream(b)
			keys := benchKeys(1024)
			data := make([]byte, benchRecordSize)
			batch := make([]PutRecordsEntry, MaxPutRecordsEntries)
			for i := range batch {
				batch[i] = PutRecordsEntry{PartitionKey: keys[i], Data: data}
			}
			ctx := context.Background()
			b.ReportAllocs()
			var wg sync.WaitGroup
			per := b.N / g
			b.ResetTimer()
			for range g {
				wg.Go(func() {
					for range per {
						if out, err := s.PutRecords(ctx, batch); err != nil || out.FailedRecordCount > 0 {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			reportWrites(b, per*g*len(batch))
		})
	}
}

func fillStream(b *testing.B, s *Stream, n int) {
	b.Helper()
	keys := benchKeys(1024)
	data := make([]byte, benchRecordSize)
	batch := make([]PutRecordsEntry, MaxPutRecordsEntries)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = PutRecordsEntry{PartitionKey: keys[(i+j)&1023], Data: data}
		}
		if _, err := s.PutRecords(context.Background(), batch[:min(len(batch), n-i)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetRecords reads a 4-shard stream of 1M records from the trim
// horizon to the end, as a reading loop that reuses GetRecordsInput.Buffer
// does: one op is a pass over the whole stream (GetShardIterator per shard,
// then GetRecords of up to 10,000 records until one returns none; calls/op
// counts them, so allocs/op ÷ calls/op is the allocations per call).
// records/s counts the records returned. The returned records alias the
// store's memory and the benchmark does not look at their bytes, so it
// reports no MB/s: no record data is copied or read.
func BenchmarkGetRecords(b *testing.B) {
	_, s := benchStream(b)
	const n = 1 << 20
	fillStream(b, s, n)
	ctx := context.Background()
	buf := make([]Record, 0, MaxGetRecordsLimit)
	b.ReportAllocs()
	read, calls := 0, 0
	for b.Loop() {
		for _, sh := range s.shards.Load().open {
			it, err := s.GetShardIterator(ctx, sh.id, StartingPosition{Type: TrimHorizon})
			if err != nil {
				b.Fatal(err)
			}
			for {
				out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Buffer: buf})
				if err != nil {
					b.Fatal(err)
				}
				calls++
				read += len(out.Records)
				if len(out.Records) == 0 {
					break
				}
				it, buf = out.NextShardIterator, out.Records
			}
		}
	}
	if read != b.N*n {
		b.Fatalf("read %d records in %d passes; want %d a pass", read, b.N, n)
	}
	reportRecords(b, read)
	b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
}

// BenchmarkRetainedMemory measures heap bytes per retained record beyond its
// data and partition key, at 1M records.
func BenchmarkRetainedMemory(b *testing.B) {
	const n = 1 << 20
	keyBytes := len(benchKeys(1)[0])
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, s := benchStream(b)
		fillStream(b, s, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		overhead := float64(after.HeapAlloc-before.HeapAlloc)/n - benchRecordSize - float64(keyBytes)
		b.ReportMetric(overhead, "overhead-bytes/record")
		runtime.KeepAlive(s)
	}
}
