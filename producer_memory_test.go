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
}

// prodBlockedPeak runs a producer with the given buffer against a stream
// that throttles every PutRecords call for 10 virtual minutes, with 4
// goroutines putting records of size bytes, and returns the peak live heap
// above what was live before.
func prodBlockedPeak(t *testing.T, size int, aggregation bool, bufferBytes int) uint64 {
	c, s := newTestStream(t, WithShardCount(4))
	injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded})
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
		peak = max(peak, ms.HeapAlloc-min(base, ms.HeapAlloc))
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
