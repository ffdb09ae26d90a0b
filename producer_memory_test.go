package runnel

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProducerMemoryBound puts into a stream that refuses every write, for
// 10 virtual minutes (records expire at their 30 s TTL and are replaced,
// so the buffer stays full), and samples the live heap every 10 virtual
// seconds. The peak stays within the bound the Producer doc states: the
// buffer limit plus, per sender, one call's aggregates (8 MiB + 4 × 5 MiB).
// It is a test rather than a benchmark because testing/synctest bubbles
// need a *testing.T; it logs the peaks.
func TestProducerMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("10 virtual minutes of refused writes")
	}
	require.GreaterOrEqual(t, recordOverhead, 4*int(unsafe.Sizeof(pending{})), "the documented bookkeeping covers a queue entry and its queue's spare room")
	const bufferBytes = 8 << 20
	bound := uint64(bufferBytes + 4*(5<<20))
	// The full bound of the Producer doc: per sender also its aggregator
	// tables and entry arrays (≤ 256 KiB), and two partly dead 64 KiB data
	// blocks per shard.
	mixedBound := bound + 4*(256<<10) + 4*(128<<10)
	for _, size := range []int{100, 1000} {
		for _, agg := range []bool{true, false} {
			t.Run(fmt.Sprintf("record=%dB/aggregation=%v", size, agg), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					peak := prodBlockedPeak(t, size, agg, bufferBytes)
					t.Logf("peak live heap %.1f MiB (bound %.0f MiB)", float64(peak)/(1<<20), float64(bound)/(1<<20))
					assert.LessOrEqual(t, peak, bound)
				})
			})
		}
	}
	// One shard refuses while the others take records: with data blocks
	// shared by all shards, the stuck shard's records used to keep the
	// delivered records' blocks alive (44 MiB).
	t.Run("one shard refused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			peak := prodRefusedPeak(t, 1000, true, bufferBytes, "shardId-000000000000")
			t.Logf("peak live heap %.1f MiB (bound %.1f MiB)", float64(peak)/(1<<20), float64(mixedBound)/(1<<20))
			assert.LessOrEqual(t, peak, mixedBound)
		})
	})
}

// prodBlockedPeak runs a producer with the given buffer against a stream
// that throttles every PutRecords call for 10 virtual minutes, with 4
// goroutines putting records of size bytes, and returns the peak live heap
// above what was live before.
func prodBlockedPeak(t *testing.T, size int, aggregation bool, bufferBytes int) uint64 {
	return prodRefusedPeak(t, size, aggregation, bufferBytes, "")
}

// prodRefusedPeak is prodBlockedPeak with the refusal limited to one shard
// when shard is set: the other shards take their records (and keep them
// for a minute, which the peak leaves out).
func prodRefusedPeak(t *testing.T, size int, aggregation bool, bufferBytes int, shard string) uint64 {
	c, s := newTestStream(t, WithShardCount(4), WithRetention(time.Minute))
	injectFault(t, c, Fault{Op: OpPutRecords, ShardID: shard, Err: ErrProvisionedThroughputExceeded})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	p, err := NewProducer(context.Background(), s, WithBufferLimits(bufferBytes, 1<<20), WithAggregation(aggregation))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	data := make([]byte, size)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ctx.Err() == nil; i++ {
				_ = p.Put(ctx, ProducerRecord{PartitionKey: fmt.Sprint("k", g, "-", i%1000), Data: data}, nil)
			}
		}()
	}
	var peak uint64
	for ctx.Err() == nil {
		time.Sleep(10 * time.Second)
		synctest.Wait() // every other goroutine is blocked: a consistent heap
		runtime.GC()
		runtime.ReadMemStats(&ms)
		held := ms.HeapAlloc - min(base, ms.HeapAlloc)
		stored := uint64(s.Stats().Total.MemoryBytes) // the stream's, not the producer's
		peak = max(peak, held-min(stored, held))
	}
	for range 4 {
		<-done
	}
	assert.Positive(t, p.Metrics().UserRecordsFailed, "records expired and were replaced")
	closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelClose()
	_ = p.Close(closeCtx)
	return peak
}
