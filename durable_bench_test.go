package runnel

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Benchmarks of durable clusters (Open): 100-byte records, 4 shards,
// limits off, as the engine's benchmarks (bench_test.go).

// durableBenchStream opens a durable cluster in a new directory (or a
// memory cluster for policy "memory") with the bench stream.
func durableBenchStream(b *testing.B, dir, policy string) (*Cluster, *Stream) {
	b.Helper()
	var c *Cluster
	switch policy {
	case "memory":
		c = NewCluster()
	default:
		var err error
		if c, err = Open(dir, WithSync(benchPolicy(b, policy))); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { c.Close() })
	s, err := c.Stream("bench")
	if err != nil {
		if s, err = c.CreateStream(context.Background(), "bench", WithShardCount(4), WithLimits(Unlimited()), WithRetention(1000*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	return c, s
}

func benchPolicy(b *testing.B, name string) SyncPolicy {
	switch name {
	case "always":
		return SyncAlways()
	case "interval":
		return SyncInterval(100 * time.Millisecond)
	case "os":
		return SyncOS()
	}
	b.Fatalf("no policy %q", name)
	return SyncPolicy{}
}

// BenchmarkDurablePutRecords writes PutRecords of 500 records from 4
// goroutines, to the memory store and to durable clusters under each sync
// policy, in the same run: records/s is the rate of acknowledged records
// (under "always", each on disk and fsynced before its call returns).
// Targets: always ≥ 1 M records/s; os ≥ 50% of memory.
func BenchmarkDurablePutRecords(b *testing.B) {
	for _, policy := range []string{"memory", "always", "interval", "os"} {
		b.Run("store="+policy, func(b *testing.B) {
			_, s := durableBenchStream(b, b.TempDir(), policy)
			keys := benchKeys(1024)
			data := make([]byte, benchRecordSize)
			const goroutines = 4
			batches := make([][]PutRecordsEntry, goroutines)
			for g := range batches {
				batches[g] = make([]PutRecordsEntry, MaxPutRecordsEntries)
				for i := range batches[g] {
					batches[g][i] = PutRecordsEntry{PartitionKey: keys[(g*MaxPutRecordsEntries+i)&1023], Data: data}
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			var wg sync.WaitGroup
			per := max(b.N/goroutines, 1)
			b.ResetTimer()
			for g := range goroutines {
				wg.Go(func() {
					for range per {
						if out, err := s.PutRecords(ctx, PutRecordsInput{Records: batches[g]}); err != nil || out.FailedRecordCount > 0 {
							b.Error(err, out.FailedRecordCount)
							return
						}
					}
				})
			}
			wg.Wait()
			reportWrites(b, per*goroutines*MaxPutRecordsEntries)
		})
	}
}

// BenchmarkDurableGetRecordsFromDisk drains 1M records of a durable
// cluster reopened after Close, so that no record is in a shard's memory
// cache and every one is read from its segment files (which the operating
// system's page cache may hold: what is measured is the store's reading,
// checking and copying, not the disk). One op is a pass over the stream,
// as in BenchmarkGetRecords. Target: ≥ 5 M records/s.
func BenchmarkDurableGetRecordsFromDisk(b *testing.B) {
	dir := b.TempDir()
	const n = 1 << 20
	c, s := durableBenchStream(b, dir, "always")
	fillStream(b, s, n)
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	_, s = durableBenchStream(b, dir, "always")
	buf := make([]Record, 0, MaxGetRecordsLimit)
	b.ReportAllocs()
	read := 0
	for b.Loop() {
		r, _ := drainStream(b, s, &buf)
		read += r
	}
	if read != b.N*n {
		b.Fatalf("read %d records in %d passes; want %d a pass", read, b.N, n)
	}
	reportRecords(b, read)
	b.ReportMetric(float64(read)*benchRecordSize/b.Elapsed().Seconds()/1e6, "MB/s")
}

// BenchmarkDurableResidentMemory writes 2 GB of record data (20M records)
// to a durable cluster and reports the process's resident memory (VmRSS)
// and Go heap once they are stored. Target: ≤ 200 MB resident. Run it
// with -benchtime=1x: every op writes the 2 GB again, in a new directory.
func BenchmarkDurableResidentMemory(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads VmRSS from /proc/self/status")
	}
	const n = 20_000_000
	for b.Loop() {
		c, s := durableBenchStream(b, b.TempDir(), "always")
		fillParallel(b, s, n)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(residentBytes(b))/1e6, "rss-MB")
		b.ReportMetric(float64(ms.HeapInuse)/1e6, "heap-MB")
		st := s.Stats()
		b.ReportMetric(float64(st.Total.DiskBytes)/1e9, "disk-GB")
		c.Close()
	}
}

// BenchmarkDurableReopen measures Open of a data directory holding 10M
// records: after a clean Close, and after a simulated crash (cluster.json
// marked unclean, so that Open takes its crash-recovery path: every
// shard's tail is checked and its counter moved on). Target: ≤ 1 s after a
// clean shutdown.
func BenchmarkDurableReopen(b *testing.B) {
	const n = 10_000_000
	dir := b.TempDir()
	c, s := durableBenchStream(b, dir, "always")
	fillParallel(b, s, n)
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	for _, shutdown := range []string{"clean", "crash"} {
		b.Run("shutdown="+shutdown, func(b *testing.B) {
			for b.Loop() {
				if shutdown == "crash" {
					b.StopTimer()
					markUnclean(b, dir)
					b.StartTimer()
				}
				c, err := Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
		})
	}
}

// fillParallel writes n records with 4 goroutines of PutRecords ×500.
func fillParallel(b *testing.B, s *Stream, n int) {
	b.Helper()
	keys := benchKeys(1024)
	data := make([]byte, benchRecordSize)
	var wg sync.WaitGroup
	const goroutines = 4
	for g := range goroutines {
		wg.Go(func() {
			batch := make([]PutRecordsEntry, MaxPutRecordsEntries)
			for i := range batch {
				batch[i] = PutRecordsEntry{PartitionKey: keys[(g*MaxPutRecordsEntries+i)&1023], Data: data}
			}
			for range n / goroutines / MaxPutRecordsEntries {
				if out, err := s.PutRecords(context.Background(), PutRecordsInput{Records: batch}); err != nil || out.FailedRecordCount > 0 {
					b.Error(err, out.FailedRecordCount)
					return
				}
			}
		})
	}
	wg.Wait()
}

// markUnclean makes dir look as if its cluster crashed.
func markUnclean(b *testing.B, dir string) {
	b.Helper()
	path := filepath.Join(dir, "cluster.json")
	var cf clusterFile
	if err := readJSON(path, &cf); err != nil {
		b.Fatal(err)
	}
	cf.Clean = false
	if err := writeJSON("bench", path, cf); err != nil {
		b.Fatal(err)
	}
}

// residentBytes is the process's resident set size.
func residentBytes(b *testing.B) int64 {
	b.Helper()
	f, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.Fields(rest)[0]), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
