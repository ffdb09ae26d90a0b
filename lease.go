package runnel

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
)

// Checkpoint is how far a consumer has processed a shard, as the KCL
// records it in a lease: the user record processed last, named by the
// sequence number of the Kinesis record that carried it and its
// sub-sequence number in that record (0 for a plain record), or the end of
// a closed shard. The zero value is "nothing processed yet".
type Checkpoint struct {
	// SequenceNumber is the Kinesis record of the last user record processed.
	SequenceNumber SequenceNumber
	// SubSequenceNumber is that user record's index in its aggregate.
	SubSequenceNumber int64
	// ShardEnd is set once the shard is closed and every record of it has
	// been processed (the KCL's SHARD_END); the other fields are then zero.
	// Children of a shard start only when every parent's checkpoint is at
	// its end.
	ShardEnd bool
}

// IsZero reports whether nothing has been checkpointed.
func (c Checkpoint) IsZero() bool { return c == Checkpoint{} }

// String returns "SHARD_END", "" for the zero value, or the sequence
// number followed by "/" and the sub-sequence number.
func (c Checkpoint) String() string {
	switch {
	case c.ShardEnd:
		return "SHARD_END"
	case c.IsZero():
		return ""
	}
	return c.SequenceNumber.String() + "/" + strconv.FormatInt(c.SubSequenceNumber, 10)
}

// invalid says what is wrong with c, or returns "" when c is valid: a
// SHARD_END checkpoint has no sequence number and no sub-sequence number,
// and a sub-sequence number is never negative. Every store's writes and the
// lease file's decoder check it.
func (c Checkpoint) invalid() string {
	switch {
	case c.ShardEnd && (!c.SequenceNumber.IsZero() || c.SubSequenceNumber != 0):
		return fmt.Sprintf("is SHARD_END and also at %s/%d; a SHARD_END checkpoint has no sequence number", c.SequenceNumber, c.SubSequenceNumber)
	case c.SubSequenceNumber < 0:
		return fmt.Sprintf("has the negative sub-sequence number %d", c.SubSequenceNumber)
	case !c.ShardEnd && c.SequenceNumber.IsZero() && c.SubSequenceNumber != 0:
		return fmt.Sprintf("has the sub-sequence number %d but no sequence number", c.SubSequenceNumber)
	}
	return ""
}

// cmp orders checkpoints: the zero value first, SHARD_END last, the rest by
// sequence number and then sub-sequence number.
func (c Checkpoint) cmp(o Checkpoint) int {
	rank := func(c Checkpoint) int {
		switch {
		case c.IsZero():
			return 0
		case c.ShardEnd:
			return 2
		}
		return 1
	}
	if r := cmp.Compare(rank(c), rank(o)); r != 0 || rank(c) != 1 {
		return r
	}
	if r := c.SequenceNumber.Cmp(o.SequenceNumber); r != 0 {
		return r
	}
	return cmp.Compare(c.SubSequenceNumber, o.SubSequenceNumber)
}

// Checkpoint returns the checkpoint at the user record, for
// Checkpointer.CheckpointAt (the KCL's checkpoint(record)): processing
// resumes right after it.
func (u UserRecord) Checkpoint() Checkpoint {
	return Checkpoint{SequenceNumber: u.SequenceNumber, SubSequenceNumber: int64(u.SubSequenceNumber)}
}

// Lease is a consumer group's claim on one shard, as a row of the KCL's
// lease table holds it.
type Lease struct {
	// ShardID is the shard the lease is for: the lease's key.
	ShardID string
	// Owner is the worker that holds the lease, or "" when it is free.
	Owner string
	// Counter goes up with every write of the lease (renewal, take,
	// checkpoint, release). Writes are conditional on it, and a worker that
	// sees it stand still for the failover time takes the lease as expired.
	Counter int64
	// Checkpoint is how far the shard has been processed.
	Checkpoint Checkpoint
	// ParentShardIDs are the shards this one was split or merged from
	// (none, one, or two for a merge). The shard is not processed until
	// every parent's lease is checkpointed at its end or has gone.
	ParentShardIDs []string
	// ChildShardIDs are the shards that continue this one once it has
	// ended, recorded with its SHARD_END checkpoint (the KCL's
	// childShardIds); empty before.
	ChildShardIDs []string
	// HashKeyRange is the shard's range of hash keys, recorded when the
	// lease is created (the KCL's startingHashKey and endingHashKey). The
	// zero value means not recorded.
	HashKeyRange HashKeyRange
	// OwnerSwitchesSinceCheckpoint counts the times the lease changed
	// hands since its last checkpoint (the KCL's attribute of that name): a
	// shard whose count keeps growing is one that no worker gets through.
	OwnerSwitchesSinceCheckpoint int64
	// Start is where a shard with no checkpoint starts: TrimHorizon, Latest
	// or AtTimestamp (with Timestamp).
	Start StartingPosition
}

// clone returns a copy of l that shares no memory with it.
func (l Lease) clone() Lease {
	l.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	l.ChildShardIDs = slices.Clone(l.ChildShardIDs)
	return l
}

// LeaseStore holds the leases of one application (the KCL's lease table):
// every worker of a consumer group uses the same store. Writes are
// conditional on a lease's Counter, as DynamoDB's conditional writes make
// them, so that two workers can never both believe they hold a lease.
//
// A write that succeeded must never be reported as a conflict: a client
// that retries a conditional write on its own (the AWS SDK does, after a
// timeout) must tell its own earlier success from another writer, or not
// retry conditional writes. Otherwise a worker gives up a lease it holds
// (safe, but its records are delivered again).
//
// Implementations must be safe for concurrent use, return leases that
// share no memory with the store, and read consistently: ListLeases sees
// every write that succeeded before it (a DynamoDB Scan with
// ConsistentRead). They report a failed condition with an
// error wrapping ErrLeaseConflict, and other failures with errors that
// IsRetryable tells apart (a DynamoDB throttle is retryable).
type LeaseStore interface {
	// ListLeases returns every lease, in any order.
	ListLeases(ctx context.Context) ([]Lease, error)
	// PutLease writes l if the stored lease of l.ShardID has Counter
	// expect, or, when expect is 0, if there is no lease for the shard.
	// l.Counter must be greater than expect. When the condition fails
	// nothing is written and the error wraps ErrLeaseConflict.
	PutLease(ctx context.Context, l Lease, expect int64) error
	// DeleteLease removes the lease of a shard if its Counter is expect;
	// otherwise the error wraps ErrLeaseConflict. Deleting a lease that
	// does not exist succeeds.
	DeleteLease(ctx context.Context, shardID string, expect int64) error
}

// ErrLeaseConflict is wrapped by a LeaseStore's error when a conditional
// write found another Counter than expected: another worker wrote the lease
// first. It is not a Kinesis error and not retryable as such: read the
// lease again.
var ErrLeaseConflict error = &runnelError{text: "lease conflict: another worker wrote or deleted the lease"}

// ErrLeaseLost is wrapped by the error of a checkpoint by a worker that no
// longer holds the shard's lease (another worker took it, or it could not
// be renewed in time). The checkpoint is not written, so a stale owner can
// never overwrite the new owner's progress. Not retryable.
var ErrLeaseLost error = &runnelError{text: "lease lost: the worker no longer holds the shard's lease"}

// checkLeaseWrite is the one validator of a conditional lease write, shared
// by every LeaseStore of this package.
func checkLeaseWrite(op string, l Lease, expect int64) error {
	switch {
	case l.ShardID == "":
		return errorf(op, ErrInvalidArgument, "lease has no ShardID")
	case expect < 0:
		return errorf(op, ErrInvalidArgument, "expected counter %d of lease %s is negative", expect, l.ShardID)
	case l.Counter <= expect:
		return errorf(op, ErrInvalidArgument, "counter %d of lease %s must be greater than the expected %d", l.Counter, l.ShardID, expect)
	}
	if why := l.Invalid(); why != "" {
		return errorf(op, ErrInvalidArgument, "lease %s %s", l.ShardID, why)
	}
	return nil
}

// Invalid says what is wrong with the values of l (its checkpoint, owner
// switch count and hash key range), as words that follow "lease <id> ", or
// returns "" when they are valid. Every LeaseStore, this package's and
// others' (runnelaws.LeaseTable), checks it when it writes a lease and when
// it decodes a stored one.
func (l Lease) Invalid() string {
	if why := l.Checkpoint.invalid(); why != "" {
		return "has a checkpoint that " + why
	}
	switch r := l.HashKeyRange; {
	case l.OwnerSwitchesSinceCheckpoint < 0:
		return fmt.Sprintf("has the negative owner switch count %d", l.OwnerSwitchesSinceCheckpoint)
	case r.StartingHashKey.Cmp(r.EndingHashKey) > 0:
		return fmt.Sprintf("has a hash key range that starts at %s, after its end %s", r.StartingHashKey, r.EndingHashKey)
	}
	return ""
}

// conflict is the error of a failed lease condition.
func conflict(op, shardID string, expect, found int64, exists bool) error {
	if !exists {
		return errorf(op, ErrLeaseConflict, "lease %s: expected counter %d, found no lease", shardID, expect)
	}
	return errorf(op, ErrLeaseConflict, "lease %s: expected counter %d, found %d", shardID, expect, found)
}

// applyLeaseWrite applies a conditional write to a table of leases: the
// one implementation of PutLease's condition for the stores of this
// package.
func applyLeaseWrite(op string, table map[string]Lease, l Lease, expect int64) error {
	if err := checkLeaseWrite(op, l, expect); err != nil {
		return err
	}
	cur, ok := table[l.ShardID]
	if ok != (expect != 0) || cur.Counter != expect {
		return conflict(op, l.ShardID, expect, cur.Counter, ok)
	}
	table[l.ShardID] = l.clone()
	return nil
}

// applyLeaseDelete applies a conditional delete to a table of leases.
func applyLeaseDelete(op string, table map[string]Lease, shardID string, expect int64) error {
	cur, ok := table[shardID]
	if !ok {
		return nil
	}
	if cur.Counter != expect {
		return conflict(op, shardID, expect, cur.Counter, true)
	}
	delete(table, shardID)
	return nil
}

// sortedLeases returns copies of a table's leases in shard-id order.
func sortedLeases(table map[string]Lease) []Lease {
	out := make([]Lease, 0, len(table))
	for _, id := range slices.Sorted(maps.Keys(table)) {
		out = append(out, table[id].clone())
	}
	return out
}

// MemoryLeaseStore is a LeaseStore in memory: the default of a Consumer.
// Give the same MemoryLeaseStore to every worker of an application in the
// process. The zero value is not usable; call NewMemoryLeaseStore. It is
// safe for concurrent use.
type MemoryLeaseStore struct {
	mu     sync.Mutex
	leases map[string]Lease
}

// NewMemoryLeaseStore returns an empty in-memory lease store.
func NewMemoryLeaseStore() *MemoryLeaseStore {
	return &MemoryLeaseStore{leases: make(map[string]Lease)}
}

// ListLeases implements LeaseStore.
func (m *MemoryLeaseStore) ListLeases(ctx context.Context) ([]Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError("ListLeases", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return sortedLeases(m.leases), nil
}

// PutLease implements LeaseStore.
func (m *MemoryLeaseStore) PutLease(ctx context.Context, l Lease, expect int64) error {
	if err := ctx.Err(); err != nil {
		return ctxError("PutLease", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return applyLeaseWrite("PutLease", m.leases, l, expect)
}

// DeleteLease implements LeaseStore.
func (m *MemoryLeaseStore) DeleteLease(ctx context.Context, shardID string, expect int64) error {
	if err := ctx.Err(); err != nil {
		return ctxError("DeleteLease", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return applyLeaseDelete("DeleteLease", m.leases, shardID, expect)
}
