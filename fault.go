package runnel

import (
	"cmp"
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Operation names a Kinesis operation, for fault injection. Its String form
// is the operation's name in the Kinesis API. The zero value, AnyOperation,
// matches every operation.
type Operation uint8

// The operations a Fault can affect.
const (
	AnyOperation Operation = iota
	OpCreateStream
	OpDeleteStream
	OpListStreams
	OpDescribeStreamSummary
	OpPutRecord
	OpPutRecords
	OpGetShardIterator
	OpGetRecords
	OpListShards
	OpSplitShard
	OpMergeShards
	OpUpdateShardCount
	OpIncreaseStreamRetentionPeriod
	OpDecreaseStreamRetentionPeriod
	OpRegisterStreamConsumer
	OpDescribeStreamConsumer
	OpListStreamConsumers
	OpDeregisterStreamConsumer
	OpSubscribeToShard
	OpAddTagsToStream
	OpRemoveTagsFromStream
	OpListTagsForStream
	OpStartStreamEncryption
	OpStopStreamEncryption
	OpEnableEnhancedMonitoring
	OpDisableEnhancedMonitoring
	OpUpdateStreamMode
	OpUpdateStreamWarmThroughput
	OpUpdateStreamRecordDistributionStrategy
	OpUpdateMaxRecordSize
	OpPutResourcePolicy
	OpGetResourcePolicy
	OpDeleteResourcePolicy
	numOperations
)

var operationNames = [numOperations]string{
	AnyOperation:                             "",
	OpCreateStream:                           "CreateStream",
	OpDeleteStream:                           "DeleteStream",
	OpListStreams:                            "ListStreams",
	OpDescribeStreamSummary:                  "DescribeStreamSummary",
	OpPutRecord:                              "PutRecord",
	OpPutRecords:                             "PutRecords",
	OpGetShardIterator:                       "GetShardIterator",
	OpGetRecords:                             "GetRecords",
	OpListShards:                             "ListShards",
	OpSplitShard:                             "SplitShard",
	OpMergeShards:                            "MergeShards",
	OpUpdateShardCount:                       "UpdateShardCount",
	OpIncreaseStreamRetentionPeriod:          "IncreaseStreamRetentionPeriod",
	OpDecreaseStreamRetentionPeriod:          "DecreaseStreamRetentionPeriod",
	OpRegisterStreamConsumer:                 "RegisterStreamConsumer",
	OpDescribeStreamConsumer:                 "DescribeStreamConsumer",
	OpListStreamConsumers:                    "ListStreamConsumers",
	OpDeregisterStreamConsumer:               "DeregisterStreamConsumer",
	OpSubscribeToShard:                       "SubscribeToShard",
	OpAddTagsToStream:                        "AddTagsToStream",
	OpRemoveTagsFromStream:                   "RemoveTagsFromStream",
	OpListTagsForStream:                      "ListTagsForStream",
	OpStartStreamEncryption:                  "StartStreamEncryption",
	OpStopStreamEncryption:                   "StopStreamEncryption",
	OpEnableEnhancedMonitoring:               "EnableEnhancedMonitoring",
	OpDisableEnhancedMonitoring:              "DisableEnhancedMonitoring",
	OpUpdateStreamMode:                       "UpdateStreamMode",
	OpUpdateStreamWarmThroughput:             "UpdateStreamWarmThroughput",
	OpUpdateStreamRecordDistributionStrategy: "UpdateStreamRecordDistributionStrategy",
	OpUpdateMaxRecordSize:                    "UpdateMaxRecordSize",
	OpPutResourcePolicy:                      "PutResourcePolicy",
	OpGetResourcePolicy:                      "GetResourcePolicy",
	OpDeleteResourcePolicy:                   "DeleteResourcePolicy",
}

// ParseOperation returns the Operation of a Kinesis operation's name
// ("PutRecords"); "" is AnyOperation. A name that is not one of runnel's
// operations is an ErrInvalidArgument.
func ParseOperation(name string) (Operation, error) {
	for o, n := range operationNames {
		if n == name {
			return Operation(o), nil
		}
	}
	return AnyOperation, errorf("ParseOperation", ErrInvalidArgument, "operation %.60q is not one of runnel's operations", name)
}

// String returns the operation's Kinesis name ("PutRecords"), "" for
// AnyOperation, or "Operation(n)" for a value that names none.
func (o Operation) String() string {
	if o < numOperations {
		return operationNames[o]
	}
	return "Operation(" + strconv.Itoa(int(o)) + ")"
}

// Fault makes chosen operations or chosen records fail, or slows them down,
// so that tests can exercise a client's error handling: throttling, internal
// failures, expired iterators, latency. Install one with Cluster.InjectFault.
// Empty filter fields match everything.
//
// An injected throttle (ErrProvisionedThroughputExceeded) counts in Stats as
// a real one does: in WriteThrottles of each record's shard for writes, in
// ReadThrottles of the iterator's shard for GetRecords.
type Fault struct {
	// Op is the operation to affect; AnyOperation (the zero value) matches
	// all.
	Op Operation
	// StreamName limits the fault to one stream; "" matches all.
	StreamName string
	// ShardID limits the fault to one shard: to the operations that name it
	// (GetShardIterator, GetRecords, SubscribeToShard) and to each record written to it (a
	// PutRecords entry routed there fails alone); "" matches all.
	ShardID string
	// Record, if set, makes the fault affect single records instead of whole
	// operations: a PutRecord or PutRecords entry for which it returns true
	// fails with Err (in PutRecords, as that entry's result), while other
	// entries are written. Writers call it concurrently, from the goroutines
	// that write: it must be safe for concurrent use, must not block, and
	// must not retain data.
	Record func(partitionKey string, data []byte) bool
	// Err is the error the operation or record fails with, normally a
	// sentinel such as ErrProvisionedThroughputExceeded, ErrInternalFailure
	// or ErrExpiredIterator; the returned *Error wraps it. An error that
	// wraps none of runnel's sentinels is reported as ErrInternalFailure
	// and wrapped too, so errors.Is finds both. Nil adds only Latency.
	Err error
	// Times is how often the fault fires before it removes itself; 0 means
	// every time. A fault with a Record filter (or a ShardID, on writes)
	// fires per record: Times counts records, not calls.
	Times int
	// Latency delays each affected operation (in virtual time inside a
	// synctest bubble), once per call also when several of its records are
	// affected; the operation fails with ctx's error if ctx ends first.
	Latency time.Duration
}

// validate checks a fault before it is installed, and returns the number
// of its ShardID (noShard when it has none).
func (f *Fault) validate() (uint64, error) {
	const op = "InjectFault"
	switch {
	case f.Op >= numOperations:
		return noShard, errorf(op, ErrInvalidArgument, "operation %v is not one of runnel's operations", f.Op)
	case f.Times < 0:
		return noShard, errorf(op, ErrInvalidArgument, "Times %d is negative; 0 means every time", f.Times)
	case f.Latency < 0:
		return noShard, errorf(op, ErrInvalidArgument, "Latency %v is negative", f.Latency)
	case f.Err == nil && f.Latency == 0:
		return noShard, errorf(op, ErrInvalidArgument, "the fault has neither Err nor Latency: it would do nothing")
	case f.Record != nil && f.Op != AnyOperation && f.Op != OpPutRecord && f.Op != OpPutRecords:
		return noShard, errorf(op, ErrInvalidArgument, "a Record filter applies only to PutRecord and PutRecords, not to %v", f.Op)
	}
	if f.StreamName != "" {
		if err := validateStreamName(op, f.StreamName); err != nil {
			return noShard, errorf(op, ErrInvalidArgument, "StreamName: %s", err.Msg)
		}
	}
	if f.ShardID == "" {
		return noShard, nil
	}
	switch f.Op {
	case AnyOperation, OpGetShardIterator, OpGetRecords, OpPutRecord, OpPutRecords:
	default:
		return noShard, errorf(op, ErrInvalidArgument, "a ShardID applies only to GetShardIterator, GetRecords, PutRecord and PutRecords, not to %v", f.Op)
	}
	shard, err := parseShardID(op, f.ShardID)
	if err != nil {
		return noShard, errorf(op, ErrInvalidArgument, "ShardID %.64q is not a shard id (shardId-000000000000)", f.ShardID)
	}
	return shard, nil
}

// faultRule is an installed Fault with its remaining count.
type faultRule struct {
	Fault
	op        string       // Op's name, "" for all
	shard     uint64       // ShardID's number, or noShard
	remaining atomic.Int64 // < 0: unlimited
	fired     atomic.Int64 // how many times it fired
}

// noShard matches every shard in a fault rule, and names no shard in a
// fault check.
const noShard = ^uint64(0)

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

func (r *faultRule) matches(op, stream string, shard uint64) bool {
	return (r.op == "" || r.op == op) && (r.StreamName == "" || r.StreamName == stream) &&
		(r.shard == noShard || r.shard == shard)
}

// faultSet is a cluster's installed faults. The read path is one atomic load
// when none are installed.
type faultSet struct {
	mu    sync.Mutex
	rules atomic.Pointer[[]*faultRule]
}

// InjectFault installs a fault and returns a function that removes it
// (calling it again does nothing). Faults are checked in the order they
// were installed; the first that matches fires. A fault that is not valid
// (an unknown Operation, a malformed ShardID or StreamName, a negative
// Times or Latency, nothing to do) is not installed: InjectFault returns an
// ErrInvalidArgument that says why.
func (c *Cluster) InjectFault(f Fault) (remove func(), err error) {
	inj, err := c.InjectFaultTracked(f)
	if err != nil {
		return func() {}, err
	}
	return inj.Remove, nil
}

// InjectedFault is a fault installed by InjectFaultTracked: it tells how
// often the fault has fired, and removes it. Its methods are safe for
// concurrent use.
type InjectedFault struct {
	rule *faultRule
	set  *faultSet
}

// Fired returns how many times the fault has fired (operations failed or
// delayed, or records failed).
func (f *InjectedFault) Fired() int { return int(f.rule.fired.Load()) }

// Spent reports whether the fault has fired its Times and is uninstalled.
func (f *InjectedFault) Spent() bool { return f.rule.remaining.Load() == 0 }

// Remove uninstalls the fault; a second call does nothing.
func (f *InjectedFault) Remove() { f.set.remove(f.rule) }

// InjectFaultTracked is InjectFault for a caller that wants to know how
// often the fault fired: a test server that lists its faults, say.
func (c *Cluster) InjectFaultTracked(f Fault) (*InjectedFault, error) {
	shard, err := f.validate()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errClusterClosed("InjectFault")
	}
	r := &faultRule{Fault: f, op: f.Op.String(), shard: shard}
	r.remaining.Store(int64(f.Times))
	if f.Times <= 0 {
		r.remaining.Store(-1)
	}
	c.faults.update(func(rules []*faultRule) []*faultRule { return append(rules, r) })
	return &InjectedFault{rule: r, set: &c.faults}, nil
}

// remove uninstalls a rule (once it is spent, or when its remover is
// called; a second time does nothing).
func (fs *faultSet) remove(r *faultRule) {
	fs.update(func(rules []*faultRule) []*faultRule {
		out := rules[:0:0]
		for _, x := range rules {
			if x != r {
				out = append(out, x)
			}
		}
		return out
	})
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

// active reports whether any fault is installed: the write and read paths
// check faults only then.
func (fs *faultSet) active() bool { return fs.rules.Load() != nil }

// find returns the first matching rule that still fires. record says
// whether a single record is checked (key and data) or a whole operation.
func (fs *faultSet) find(op, stream string, shard uint64, record bool, key string, data []byte) *faultRule {
	p := fs.rules.Load()
	if p == nil {
		return nil
	}
	for _, r := range *p {
		// A write learns its shard only when it routes each record, so
		// shard-scoped faults on writes fire per record, like Record faults.
		applies := r.Record == nil
		if record {
			applies = r.Record != nil || r.shard != noShard
		}
		if !applies || !r.matches(op, stream, shard) {
			continue
		}
		if r.Record != nil && !r.Record(key, data) {
			continue
		}
		if r.take() {
			r.fired.Add(1)
			if r.remaining.Load() == 0 {
				fs.remove(r) // spent: the paths without faults get fast again
			}
			return r
		}
	}
	return nil
}

// failure is the error of an operation or record that the rule fails: it
// wraps the rule's Err, classified by a sentinel (ErrInternalFailure for an
// error that has none).
func (r *faultRule) failure(op, msg string) error {
	kind := sentinelOf(r.Err)
	if kind == ErrProvisionedThroughputExceeded {
		msg = "Rate exceeded: " + msg // as Kinesis words its throttles
	}
	e := &Error{Op: op, Kind: kind, Msg: msg}
	if kind != r.Err {
		e.Err = r.Err
	}
	return e
}

// apply fires the first operation-level fault matching op on a stream (""
// for cluster operations) and a shard (noShard when the operation names
// none): it waits the fault's latency, then returns its error, or ctx's if
// ctx ends first.
func (fs *faultSet) apply(ctx context.Context, op, stream string, shard uint64) error {
	r := fs.find(op, stream, shard, false, "", nil)
	if r == nil {
		return nil
	}
	if r.Latency > 0 {
		if err := sleepCtx(ctx, r.Latency); err != nil {
			return ctxError(op, err)
		}
	}
	if r.Err == nil {
		return nil
	}
	return r.failure(op, "injected fault on "+cmp.Or(stream, "the cluster"))
}

// recordFaults fires the record-level faults of a write before anything is
// written: shards[i] is the shard entry i routes to. It returns each
// record's injected error (nil if none fired), and delays the call once by
// the longest latency among the faults that fired; if ctx ends meanwhile,
// the call fails with ctx's error.
func (fs *faultSet) recordFaults(ctx context.Context, op, stream string, shards []*shardState, entries []PutRecordsEntry) ([]error, error) {
	var injected []error
	var latency time.Duration
	for i, e := range entries {
		sh := shards[i]
		r := fs.find(op, stream, sh.num, true, e.PartitionKey, e.Data)
		if r == nil {
			continue
		}
		latency = max(latency, r.Latency)
		if r.Err != nil {
			if injected == nil {
				injected = make([]error, len(entries))
			}
			injected[i] = r.failure(op, "injected fault on record "+strconv.Itoa(i)+" (shard "+sh.id+" of stream "+stream+")")
		}
	}
	if latency > 0 {
		if err := sleepCtx(ctx, latency); err != nil {
			return nil, ctxError(op, err)
		}
	}
	return injected, nil
}
