package runnel

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Fault makes chosen operations or chosen records fail, or slows them down,
// so that tests can exercise a client's error handling: throttling, internal
// failures, expired iterators, latency. Install one with Cluster.InjectFault.
// Empty filter fields match everything.
type Fault struct {
	// Op is the Kinesis operation to affect, named as in the Kinesis API:
	// "CreateStream", "DeleteStream", "ListStreams", "DescribeStreamSummary",
	// "PutRecord", "PutRecords", "GetShardIterator", "GetRecords",
	// "ListShards", "SplitShard", "MergeShards", "UpdateShardCount",
	// "IncreaseStreamRetentionPeriod", "DecreaseStreamRetentionPeriod";
	// "" matches all.
	Op string
	// StreamName limits the fault to one stream; "" matches all.
	StreamName string
	// ShardID limits the fault to one shard: to the operations that name it
	// (GetShardIterator, GetRecords) and to each record written to it (a
	// PutRecords entry routed there fails alone); "" matches all.
	ShardID string
	// Record, if set, makes the fault affect single records instead of whole
	// operations: a PutRecord or PutRecords entry for which it returns true
	// fails with Err (in PutRecords, as that entry's result), while other
	// entries are written. It must not retain data.
	Record func(partitionKey string, data []byte) bool
	// Err is the error the operation or record fails with, normally a
	// sentinel such as ErrProvisionedThroughputExceeded, ErrInternalFailure
	// or ErrExpiredIterator; the returned *Error wraps it. Nil adds only
	// Latency.
	Err error
	// Times is how often the fault fires before it removes itself; 0 means
	// every time.
	Times int
	// Latency delays each affected operation (in virtual time inside a
	// synctest bubble); the operation fails with ctx's error if ctx ends first.
	Latency time.Duration
}

// faultRule is an installed Fault with its remaining count.
type faultRule struct {
	Fault
	remaining atomic.Int64 // < 0: unlimited
}

// take consumes one firing; false once the fault is spent.
func (r *faultRule) take() bool {
	for {
		n := r.remaining.Load()
		if n < 0 {
			return true
		}
		if n == 0 {
			return false
		}
		if r.remaining.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (r *faultRule) matches(op, stream, shard string) bool {
	return (r.Op == "" || r.Op == op) && (r.StreamName == "" || r.StreamName == stream) &&
		(r.ShardID == "" || r.ShardID == shard)
}

// faultSet is a cluster's installed faults. The read path is one atomic load
// when none are installed.
type faultSet struct {
	mu    sync.Mutex
	rules atomic.Pointer[[]*faultRule]
}

// InjectFault installs a fault and returns a function that removes it.
// Faults are checked in the order they were installed; the first that
// matches fires.
func (c *Cluster) InjectFault(f Fault) (remove func()) {
	r := &faultRule{Fault: f}
	r.remaining.Store(int64(f.Times))
	if f.Times <= 0 {
		r.remaining.Store(-1)
	}
	c.faults.update(func(rules []*faultRule) []*faultRule { return append(rules, r) })
	return func() {
		c.faults.update(func(rules []*faultRule) []*faultRule {
			out := rules[:0:0]
			for _, x := range rules {
				if x != r {
					out = append(out, x)
				}
			}
			return out
		})
	}
}

func (fs *faultSet) update(fn func([]*faultRule) []*faultRule) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var cur []*faultRule
	if p := fs.rules.Load(); p != nil {
		cur = *p
	}
	next := fn(append([]*faultRule(nil), cur...))
	if len(next) == 0 {
		fs.rules.Store(nil)
		return
	}
	fs.rules.Store(&next)
}

// find returns the first matching rule that still fires.
func (fs *faultSet) find(op, stream, shard string, record bool, key string, data []byte) *faultRule {
	p := fs.rules.Load()
	if p == nil {
		return nil
	}
	for _, r := range *p {
		// A write learns its shard only when it routes each record, so
		// shard-scoped faults on writes fire per record, like Record faults.
		applies := r.Record == nil
		if record {
			applies = r.Record != nil || r.ShardID != ""
		}
		if !applies || !r.matches(op, stream, shard) {
			continue
		}
		if r.Record != nil && !r.Record(key, data) {
			continue
		}
		if r.take() {
			return r
		}
	}
	return nil
}

// fire applies a rule: waits its latency, then returns its error.
func (r *faultRule) fire(ctx context.Context, op string) error {
	if r.Latency > 0 {
		if err := sleepCtx(ctx, r.Latency); err != nil {
			return err
		}
	}
	if r.Err == nil {
		return nil
	}
	return errorf(op, r.Err, "injected fault")
}

// apply fires the first operation-level fault matching op.
func (fs *faultSet) apply(ctx context.Context, op, stream, shard string) error {
	if r := fs.find(op, stream, shard, false, "", nil); r != nil {
		return r.fire(ctx, op)
	}
	return nil
}

// applyRecord fires the first record-level fault matching one record.
func (fs *faultSet) applyRecord(ctx context.Context, op, stream, shard, key string, data []byte) error {
	if fs.rules.Load() == nil {
		return nil
	}
	if r := fs.find(op, stream, shard, true, key, data); r != nil {
		return r.fire(ctx, op)
	}
	return nil
}

// recordFaults fires the record-level faults of a write request before
// anything is written. It returns each record's injected error (nil when no
// fault is installed), and delays the call once by the longest latency among
// the faults that fired; if ctx ends meanwhile, the call fails with ctx's
// error.
func (fs *faultSet) recordFaults(ctx context.Context, op, stream string, m *shardMap, entries []PutRecordsEntry, keys []HashKey) ([]error, error) {
	if fs.rules.Load() == nil {
		return nil, nil
	}
	injected := make([]error, len(entries))
	var latency time.Duration
	for i, e := range entries {
		shard := m.open[m.route(keys[i])].id
		r := fs.find(op, stream, shard, true, e.PartitionKey, e.Data)
		if r == nil {
			continue
		}
		latency = max(latency, r.Latency)
		if r.Err != nil {
			injected[i] = errorf(op, r.Err, "injected fault on record %d (shard %s)", i, shard)
		}
	}
	if latency > 0 {
		if err := sleepCtx(ctx, latency); err != nil {
			return nil, err
		}
	}
	return injected, nil
}
