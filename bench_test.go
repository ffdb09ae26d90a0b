package runnel

import (
	"context"
	"crypto/md5"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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
						if out, err := s.PutRecords(ctx, PutRecordsInput{Records: batch}); err != nil || out.FailedRecordCount > 0 {
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
		if _, err := s.PutRecords(context.Background(), PutRecordsInput{Records: batch[:min(len(batch), n-i)]}); err != nil {
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
	buf := make([]Record, 0, MaxGetRecordsLimit)
	b.ReportAllocs()
	read, calls := 0, 0
	for b.Loop() {
		r, c := drainStream(b, s, &buf)
		read, calls = read+r, calls+c
	}
	if read != b.N*n {
		b.Fatalf("read %d records in %d passes; want %d a pass", read, b.N, n)
	}
	reportRecords(b, read)
	b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
}

// drainStream reads every open shard of s from the trim horizon until a
// GetRecords call returns nothing, reusing *buf, and returns the records
// read and the GetRecords calls made.
func drainStream(b *testing.B, s *Stream, buf *[]Record) (read, calls int) {
	ctx := context.Background()
	for _, sh := range s.shards.Load().open {
		it, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: sh.id, StartingPosition: StartingPosition{Type: TrimHorizon}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			out, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it, Buffer: (*buf)[:0]})
			if err != nil {
				b.Fatal(err)
			}
			calls++
			read += len(out.Records)
			if len(out.Records) == 0 {
				break
			}
			it, *buf = out.NextShardIterator, out.Records
		}
	}
	return read, calls
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

// BenchmarkWriteVsMD5 measures, in the same run, the cost per record of
// PutRecords (500 × 100-byte records, unique keys, 1 goroutine, limits
// off) and of PutRecord, against the md5.Sum of the same partition keys,
// and reports the ratios: MD5 routing is the floor of a write. Targets:
// PutRecords ≤ 2× MD5, PutRecord ≤ 3× MD5. Each op is one batch of 500
// records written, and the same 500 keys hashed.
//
// With retention=held the stream keeps every record, so its memory grows
// and the copy into fresh memory pays the page faults of that growth; with
// retention=1s records expire as new ones arrive and the store's memory is
// recycled, as in a stream at steady state.
func BenchmarkWriteVsMD5(b *testing.B) {
	for _, tc := range []struct {
		name      string
		single    bool
		retention time.Duration
	}{
		{"PutRecords/retention=held", false, 1000 * time.Hour},
		{"PutRecords/retention=1s", false, time.Second},
		{"PutRecord/retention=held", true, 1000 * time.Hour},
		{"PutRecord/retention=1s", true, time.Second},
	} {
		single := tc.single
		b.Run(tc.name, func(b *testing.B) {
			c := NewCluster(WithSweepInterval(time.Second))
			b.Cleanup(func() { c.Close() })
			s, err := c.CreateStream(context.Background(), "bench", WithShardCount(4), WithLimits(Unlimited()), WithRetention(tc.retention))
			if err != nil {
				b.Fatal(err)
			}
			keys := benchKeys(MaxPutRecordsEntries)
			data := make([]byte, benchRecordSize)
			batch := make([]PutRecordsEntry, len(keys))
			for i := range batch {
				batch[i] = PutRecordsEntry{PartitionKey: keys[i], Data: data}
			}
			ctx := context.Background()
			var hashTime, putTime time.Duration
			var sink byte
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				for _, k := range keys {
					sum := md5.Sum([]byte(k))
					sink ^= sum[0]
				}
				mid := time.Now()
				if single {
					for i := range batch {
						if _, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: batch[i].PartitionKey, Data: data}); err != nil {
							b.Fatal(err)
						}
					}
				} else if out, err := s.PutRecords(ctx, PutRecordsInput{Records: batch}); err != nil || out.FailedRecordCount > 0 {
					b.Fatal(err)
				}
				end := time.Now()
				hashTime += mid.Sub(start)
				putTime += end.Sub(mid)
			}
			records := float64(b.N * len(keys))
			b.ReportMetric(float64(hashTime.Nanoseconds())/records, "md5-ns/record")
			b.ReportMetric(float64(putTime.Nanoseconds())/records, "write-ns/record")
			b.ReportMetric(float64(putTime)/float64(hashTime), "write/md5")
			if sink == 42 {
				b.Log("") // keep the hashing
			}
		})
	}
}

// BenchmarkFollow measures Follow tailing a shard while another goroutine
// writes to it one record at a time, each written after the previous one
// was delivered: records/s, the latency from the start of PutRecord to the
// follower's yield (p50, p99, sampled), and the allocations per record
// delivered, PutRecord included (B/op is the stored record's share of its
// chunk).
func BenchmarkFollow(b *testing.B) {
	c := NewCluster()
	b.Cleanup(func() { c.Close() })
	s, err := c.CreateStream(context.Background(), "follow", WithShardCount(1), WithLimits(Unlimited()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan struct{}, 1)
	var stamp atomic.Int64 // when the record being delivered was put (UnixNano)
	var lat latencies
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, err := range s.Follow(ctx, "shardId-000000000000", StartingPosition{Type: TrimHorizon}) {
			if err != nil {
				return
			}
			if t := stamp.Load(); t != 0 {
				lat.add(time.Duration(time.Now().UnixNano() - t))
			}
			got <- struct{}{}
		}
	})
	data := make([]byte, benchRecordSize)
	// Let the follower reach the tip before measuring.
	if _, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data}); err != nil {
		b.Fatal(err)
	}
	<-got
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%16 == 0 { // sample: reading the clock costs a share of a put
			stamp.Store(time.Now().UnixNano())
		} else {
			stamp.Store(0)
		}
		if _, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: data}); err != nil {
			b.Fatal(err)
		}
		<-got
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	reportRecords(b, b.N)
	lat.report(b, "wake")
}
