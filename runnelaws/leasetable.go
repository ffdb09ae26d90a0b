package runnelaws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/runnel-go/runnel"
)

// DynamoDBAPI is the part of the DynamoDB client of the AWS SDK for Go v2
// that a LeaseTable uses; *dynamodb.Client implements it. A test may wrap
// a client to count or fail calls.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

// LeaseTable is a runnel.LeaseStore in a DynamoDB table, laid out as the
// Java Kinesis Client Library (KCL 2.x and 3.x, single-stream mode) lays
// out its lease table: one item per shard, with the KCL's attribute names
// and types. Give every worker of a consumer group a LeaseTable of the same
// table (runnel.WithLeaseStore). It is safe for concurrent use; it starts
// no goroutine and holds no resource, so it has no Close.
//
// # Layout
//
// The table's only key is the hash key leaseKey (S). An item has:
//
//   - leaseKey (S): Lease.ShardID.
//   - leaseOwner (S): Lease.Owner; absent while the lease is free, as the
//     KCL removes it when it evicts a lease.
//   - leaseCounter (N): Lease.Counter.
//   - checkpoint (S) and checkpointSubSequenceNumber (N): the checkpoint's
//     sequence number and sub-sequence number; "SHARD_END" for a
//     checkpoint at the shard's end; and, before anything is checkpointed,
//     the KCL's sentinel of the lease's start: "TRIM_HORIZON", "LATEST" or
//     "AT_TIMESTAMP" (and "TRIM_HORIZON" for a start the KCL has no
//     sentinel for: AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or none).
//   - ownerSwitchesSinceCheckpoint (N): Lease.OwnerSwitchesSinceCheckpoint.
//   - parentShardId (SS) and childShardIds (SS): Lease.ParentShardIDs and
//     ChildShardIDs, absent when empty (a DynamoDB set cannot be empty).
//     They are sets: they are read back sorted, and an empty id or the
//     same id twice is not accepted.
//   - startingHashKey and endingHashKey (S, decimal): Lease.HashKeyRange,
//     absent when it is the zero value (not recorded).
//   - runnelStart (M), which the KCL does not have: Lease.Start, which a
//     KCL application keeps in its worker configuration instead. Its
//     entries are type (S, the iterator type), sequenceNumber (S) and
//     timestamp (S, RFC 3339 in UTC with nanoseconds), each absent when
//     empty; the map is on every item runnel writes, even when it is empty.
//
// Every write SETs the attributes above that have values and REMOVEs those
// that are empty, with UpdateItem, so that attributes runnel does not manage
// (KCL 3.x's throughputKBps and checkpointOwner, say) survive it. runnel
// has no two-phase (prepared) checkpoints: it ignores pendingCheckpoint,
// pendingCheckpointSubSequenceNumber and pendingCheckpointState when it
// reads an item, and removes them on every write, as a KCL checkpoint
// does.
//
// An item runnel did not write (it has no runnelStart) reads with the
// start its checkpoint's sentinel names, or TRIM_HORIZON once it is
// checkpointed (the checkpoint then decides where reading resumes). Its
// "AT_TIMESTAMP" reads as Start{Type: runnel.AtTimestamp} with a zero
// Timestamp: the KCL keeps that timestamp in each worker's configuration,
// not in the table. A Consumer takes the time from its own
// runnel.WithInitialPosition, as a KCL worker does; a Consumer started at
// another position cannot read such a shard before it has a checkpoint, and
// counts and logs an error naming the lease each time it tries.
//
// # Writes
//
// PutLease is an UpdateItem on the condition leaseCounter = expect, or,
// when expect is 0, that the item does not exist or has leaseCounter 0
// (the counter of a lease the KCL created and no worker has taken yet).
// DeleteLease is a DeleteItem on the condition that the item does not
// exist or has leaseCounter = expect. A failed condition is an error
// wrapping runnel.ErrLeaseConflict that names the lease, the expected
// counter and the counter found.
//
// The AWS SDK sends a request again after a timeout or a throttle, so a
// conditional write whose first attempt succeeded can fail its own
// condition on the second. Before it reports a conflict, PutLease reads
// the item back (a consistent read): if it holds exactly the lease the
// call wrote, the call succeeds. That is also what happens when another
// writer wrote the very same lease, which leaves the table as this call
// would have. (If another writer changed the lease between the two
// attempts, the call reports the conflict that its next write would meet.)
// A delete sent again finds no item, which its condition allows; a
// DeleteLease whose condition failed but whose lease is gone when it
// reads it back succeeds too.
//
// Other failures are errors wrapping runnel's sentinels, and the SDK's
// error, so that both errors.Is(err, runnel.ErrProvisionedThroughputExceeded)
// and errors.As(err, &throttle) work: ProvisionedThroughputExceededException
// wraps runnel.ErrProvisionedThroughputExceeded, ThrottlingException,
// RequestLimitExceeded and LimitExceededException runnel.ErrLimitExceeded
// (all retryable), InternalServerError and failures to reach the service
// runnel.ErrInternalFailure (retryable), ResourceNotFoundException (the
// table is gone) runnel.ErrResourceNotFound, and a call whose context
// ended the context's error. An item that does not decode (an attribute of
// the wrong type, a malformed number or sequence number, a negative
// counter, …) is an error wrapping runnel.ErrCorrupt that names the table,
// the item's key and the attribute; it is not retryable.
//
// ListLeases is a Scan with ConsistentRead, following every page; it
// returns the leases in the order of their keys. Leases returned share no memory
// with the LeaseTable.
//
// # Sharing a table with the Java KCL
//
// Operators' tooling and dashboards built for KCL lease tables read a
// LeaseTable's items. A runnel consumer group can take over the table a
// KCL application has left, and resume every shard at its checkpoint (the
// free leases the KCL created, with leaseCounter 0, are taken as any free
// lease is); a KCL application can take over a runnel group's table the
// same way. Stop every worker of one before starting the other: runnel
// workers and Java workers must not run in one group at the same time.
// They balance leases differently, time failover with different settings
// and clocks, and only the KCL keeps what KCL 3.x's lease assignment
// needs: its worker-metrics and coordinator-state tables, and the
// LeaseOwnerToLeaseKeyIndex global secondary index of the lease table,
// which runnel neither creates nor uses (on a table that has it, DynamoDB
// keeps it up to date with runnel's writes too). Besides:
//
//   - Only single-stream lease tables are supported. A KCL multi-stream
//     application's lease keys ("account:stream:creationEpoch:shardId")
//     are not shard ids: writing a lease key with a ':' is an
//     ErrInvalidArgument, and so is ListLeases of a table that holds one,
//     so that a Consumer never takes such a lease for a shard that has
//     gone and deletes it. (A Consumer does delete the free and ended
//     leases of shards its stream does not list: give every application
//     its own table.)
//   - Prepared (two-phase) checkpoints are not honoured: runnel's writes
//     remove them.
//   - KCL 3.x's graceful-handoff attribute checkpointOwner is neither read
//     nor cleared.
//   - A runnel Consumer started at LATEST fixes that start, when it creates
//     a lease, as AT_TIMESTAMP of that moment (see
//     runnel.WithInitialPosition), so its new leases hold the sentinel
//     "AT_TIMESTAMP" with the time in runnelStart. A Java worker that takes
//     such a lease over before it is checkpointed does not read
//     runnelStart: it resolves AT_TIMESTAMP from its own configuration.
//     The KCL's own "LATEST" leases read as runnel.Latest, resolved when a
//     worker starts reading.
type LeaseTable struct {
	api  DynamoDBAPI
	name string
}

// leaseTableConfig is a LeaseTable's configuration.
type leaseTableConfig struct {
	create bool
}

// LeaseTableOption configures NewLeaseTable.
type LeaseTableOption func(*leaseTableConfig)

// WithCreateTable makes NewLeaseTable create the table when it does not
// exist, as the KCL creates its lease table: on-demand capacity
// (PAY_PER_REQUEST billing) and the hash key leaseKey (S). NewLeaseTable
// then waits, as long as its context allows, until the table is ACTIVE.
// Without it (the default), a missing table is an error.
func WithCreateTable() LeaseTableOption { return func(c *leaseTableConfig) { c.create = true } }

// NewLeaseTable returns the LeaseTable of the DynamoDB table named table,
// which api reaches. It checks that the table exists (creating it with
// WithCreateTable), waits while it is being created, and checks that its
// key is the KCL's: the hash key leaseKey (S) and no range key.
//
// A nil api or a name DynamoDB does not allow (3 to 255 letters, digits,
// '_', '-' or '.') is an error wrapping runnel.ErrInvalidArgument; a
// missing table without WithCreateTable one wrapping
// runnel.ErrResourceNotFound; a table with another key one wrapping
// runnel.ErrInvalidArgument; a table being deleted one wrapping
// runnel.ErrResourceInUse. Other failures of DynamoDB are mapped as
// LeaseTable says.
func NewLeaseTable(ctx context.Context, api DynamoDBAPI, table string, opts ...LeaseTableOption) (*LeaseTable, error) {
	const op = "NewLeaseTable"
	if isNilClient(api) {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "the DynamoDB client is nil"}
	}
	if why := tableNameProblem(table); why != "" {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: why}
	}
	var cfg leaseTableConfig
	for i, o := range opts {
		if o == nil {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("option %d is nil", i)}
		}
		o(&cfg)
	}
	t := &LeaseTable{api: api, name: table}
	desc, err := t.describe(ctx, op)
	if errors.Is(err, runnel.ErrResourceNotFound) && cfg.create {
		desc, err = t.create(ctx, op)
	}
	if err != nil {
		return nil, err
	}
	if desc, err = t.waitActive(ctx, op, desc); err != nil {
		return nil, err
	}
	if why := keySchemaProblem(desc); why != "" {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("table %s is not a lease table: %s", table, why)}
	}
	return t, nil
}

// Name returns the table's name.
func (t *LeaseTable) Name() string { return t.name }

// tableNameProblem says what is wrong with a DynamoDB table name, or
// returns "".
func tableNameProblem(name string) string {
	if n := len(name); n < 3 || n > 255 {
		return fmt.Sprintf("table name %s has %d characters; DynamoDB allows 3 to 255", clipQuote(name), n)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return fmt.Sprintf("table name %s has the character %q; DynamoDB allows only letters, digits, '_', '-' and '.'", clipQuote(name), rune(c))
		}
	}
	return ""
}

// clipQuote quotes s for an error message, cut to 64 bytes with "…".
func clipQuote(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:64]) + "…"
}

// describe returns the table's description; a missing table is an error
// wrapping runnel.ErrResourceNotFound.
func (t *LeaseTable) describe(ctx context.Context, op string) (*types.TableDescription, error) {
	out, err := t.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)}, dynamoDBCallOptions)
	if err != nil {
		e := t.sdkError(ctx, op, "describing the table", err)
		if errors.Is(e, runnel.ErrResourceNotFound) {
			e.Msg = fmt.Sprintf("lease table %s does not exist; create it, or pass WithCreateTable", t.name)
		}
		return nil, e
	}
	if out == nil || out.Table == nil {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: fmt.Sprintf("lease table %s: DescribeTable returned no table", t.name)}
	}
	return out.Table, nil
}

// create creates the table as the KCL does; a table created meanwhile by
// someone else is described instead.
func (t *LeaseTable) create(ctx context.Context, op string) (*types.TableDescription, error) {
	out, err := t.api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(t.name),
		BillingMode:          types.BillingModePayPerRequest,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrLeaseKey), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
	}, dynamoDBCallOptions)
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse): // created since describe looked
		return t.describe(ctx, op)
	case err != nil:
		return nil, t.sdkError(ctx, op, "creating the table", err)
	case out == nil || out.TableDescription == nil:
		return t.describe(ctx, op)
	}
	return out.TableDescription, nil
}

// waitActive waits, describing the table with growing pauses, while it is
// being created.
func (t *LeaseTable) waitActive(ctx context.Context, op string, desc *types.TableDescription) (*types.TableDescription, error) {
	pause := 20 * time.Millisecond
	for {
		switch desc.TableStatus {
		case types.TableStatusActive, types.TableStatusUpdating, "":
			return desc, nil
		case types.TableStatusCreating:
		case types.TableStatusDeleting:
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrResourceInUse, Msg: fmt.Sprintf("lease table %s is being deleted", t.name)}
		default:
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrResourceInUse, Msg: fmt.Sprintf("lease table %s is %s, not ACTIVE", t.name, desc.TableStatus)}
		}
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, &runnel.Error{Op: op, Kind: ctx.Err(), Msg: fmt.Sprintf("waiting for lease table %s to become ACTIVE", t.name)}
		case <-timer.C:
		}
		pause = min(2*pause, time.Second)
		var err error
		if desc, err = t.describe(ctx, op); err != nil {
			return nil, err
		}
	}
}

// keySchemaProblem says how a table's key differs from a lease table's,
// or returns "".
func keySchemaProblem(desc *types.TableDescription) string {
	ks := desc.KeySchema
	if len(ks) != 1 || aws.ToString(ks[0].AttributeName) != attrLeaseKey || ks[0].KeyType != types.KeyTypeHash {
		var parts []string
		for _, k := range ks {
			parts = append(parts, fmt.Sprintf("%s (%s)", aws.ToString(k.AttributeName), k.KeyType))
		}
		return fmt.Sprintf("its key is [%s]; a lease table's is the hash key %s alone", strings.Join(parts, ", "), attrLeaseKey)
	}
	for _, d := range desc.AttributeDefinitions {
		if aws.ToString(d.AttributeName) == attrLeaseKey && d.AttributeType != types.ScalarAttributeTypeS {
			return fmt.Sprintf("its hash key %s is of type %s; a lease table's is a string (S)", attrLeaseKey, d.AttributeType)
		}
	}
	return ""
}

// ListLeases implements runnel.LeaseStore: a consistent Scan of the whole
// table, page after page. The leases come in the order of their keys.
func (t *LeaseTable) ListLeases(ctx context.Context) ([]runnel.Lease, error) {
	const op = "ListLeases"
	in := &dynamodb.ScanInput{TableName: aws.String(t.name), ConsistentRead: aws.Bool(true)}
	leases := []runnel.Lease{}
	for {
		out, err := t.api.Scan(ctx, in, dynamoDBCallOptions)
		if err != nil {
			return nil, t.sdkError(ctx, op, "scanning the leases", err)
		}
		if out == nil {
			break
		}
		for _, item := range out.Items {
			l, err := decodeLeaseItem(op, t.name, item)
			if err != nil {
				return nil, err
			}
			leases = append(leases, l)
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	slices.SortFunc(leases, func(a, b runnel.Lease) int { return strings.Compare(a.ShardID, b.ShardID) })
	return leases, nil
}

// PutLease implements runnel.LeaseStore with a conditional UpdateItem (see
// LeaseTable). Besides the checks of every runnel.LeaseStore, the lease's
// strings must be valid UTF-8, its parent and child shard ids non-empty
// and distinct, and the Timestamp of its Start in the years 0 to 9999; the
// error otherwise wraps runnel.ErrInvalidArgument. The Timestamp is kept to
// the nanosecond and read back in UTC.
func (t *LeaseTable) PutLease(ctx context.Context, l runnel.Lease, expect int64) error {
	const op = "PutLease"
	if err := checkLeaseTableWrite(op, l, expect); err != nil {
		return err
	}
	item := encodeLeaseItem(l)
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       map[string]types.AttributeValue{attrLeaseKey: item[attrLeaseKey]},
		ExpressionAttributeNames:  map[string]string{},
		ExpressionAttributeValues: map[string]types.AttributeValue{":expect": attrNumber(expect)},
	}
	var set, remove []string
	for _, name := range managedAttrs {
		in.ExpressionAttributeNames["#"+name] = name
		if v, ok := item[name]; ok {
			set = append(set, fmt.Sprintf("#%s = :%s", name, name))
			in.ExpressionAttributeValues[":"+name] = v
		} else {
			remove = append(remove, "#"+name)
		}
	}
	update := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		update += " REMOVE " + strings.Join(remove, ", ")
	}
	in.UpdateExpression = aws.String(update)
	if expect == 0 {
		// A lease the KCL created has leaseCounter 0 until a worker takes it.
		in.ConditionExpression = aws.String("attribute_not_exists(#leaseKey) OR #leaseCounter = :expect")
		in.ExpressionAttributeNames["#"+attrLeaseKey] = attrLeaseKey
	} else {
		in.ConditionExpression = aws.String("#leaseCounter = :expect")
	}
	_, err := t.api.UpdateItem(ctx, in, dynamoDBCallOptions)
	var failed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &failed):
		return t.sdkError(ctx, op, "writing lease "+clipQuote(l.ShardID), err)
	}
	// The condition failed, perhaps on the SDK's second attempt of a write
	// whose first one succeeded: look at what the table holds.
	stored, found, rerr := t.get(ctx, op, l.ShardID)
	switch {
	case rerr != nil && !errors.Is(rerr, runnel.ErrCorrupt):
		return &runnel.Error{Op: op, Kind: sentinelOfError(rerr), Msg: fmt.Sprintf("lease table %s: the conditional write of lease %s on counter %d failed, and reading the lease back to tell a conflict from a retried success failed", t.name, clipQuote(l.ShardID), expect), Err: rerr}
	case rerr != nil:
		return &runnel.Error{Op: op, Kind: runnel.ErrLeaseConflict, Msg: fmt.Sprintf("lease table %s: lease %s: expected counter %d, found an item that does not decode", t.name, clipQuote(l.ShardID), expect), Err: rerr}
	case found && sameLease(stored, canonicalLease(l)):
		return nil // the write that failed was a retry of this one
	}
	return t.conflict(op, l.ShardID, expect, stored.Counter, found, err)
}

// DeleteLease implements runnel.LeaseStore with a conditional DeleteItem:
// it removes the lease if its counter is expect, and succeeds when there is
// no lease. An empty or invalid UTF-8 shardID, or a negative expect, is an
// error wrapping runnel.ErrInvalidArgument.
func (t *LeaseTable) DeleteLease(ctx context.Context, shardID string, expect int64) error {
	const op = "DeleteLease"
	switch {
	case shardID == "":
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "the shard id is empty"}
	case !utf8.ValidString(shardID):
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("shard id %s is not valid UTF-8", clipQuote(shardID))}
	case expect < 0:
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("expected counter %d of lease %s is negative", expect, clipQuote(shardID))}
	case strings.Contains(shardID, ":"):
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("lease key %s has a ':', as the KCL's multi-stream lease keys do; a LeaseTable holds single-stream leases, keyed by shard id", clipQuote(shardID))}
	}
	_, err := t.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(t.name),
		Key:                       map[string]types.AttributeValue{attrLeaseKey: &types.AttributeValueMemberS{Value: shardID}},
		ConditionExpression:       aws.String("attribute_not_exists(#leaseKey) OR #leaseCounter = :expect"),
		ExpressionAttributeNames:  map[string]string{"#" + attrLeaseKey: attrLeaseKey, "#" + attrCounter: attrCounter},
		ExpressionAttributeValues: map[string]types.AttributeValue{":expect": attrNumber(expect)},
	}, dynamoDBCallOptions)
	var failed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &failed):
		return t.sdkError(ctx, op, "deleting lease "+clipQuote(shardID), err)
	}
	stored, found, rerr := t.get(ctx, op, shardID)
	switch {
	case rerr != nil && !errors.Is(rerr, runnel.ErrCorrupt):
		return &runnel.Error{Op: op, Kind: sentinelOfError(rerr), Msg: fmt.Sprintf("lease table %s: the conditional delete of lease %s on counter %d failed, and reading the lease back failed", t.name, clipQuote(shardID), expect), Err: rerr}
	case rerr != nil:
		return &runnel.Error{Op: op, Kind: runnel.ErrLeaseConflict, Msg: fmt.Sprintf("lease table %s: lease %s: expected counter %d, found an item that does not decode", t.name, clipQuote(shardID), expect), Err: rerr}
	case !found:
		return nil // deleted meanwhile: there is no lease, as asked
	}
	return t.conflict(op, shardID, expect, stored.Counter, true, err)
}

// get reads one lease consistently.
func (t *LeaseTable) get(ctx context.Context, op, shardID string) (l runnel.Lease, found bool, err error) {
	out, err := t.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(t.name),
		Key:            map[string]types.AttributeValue{attrLeaseKey: &types.AttributeValueMemberS{Value: shardID}},
		ConsistentRead: aws.Bool(true),
	}, dynamoDBCallOptions)
	if err != nil {
		return runnel.Lease{}, false, t.sdkError(ctx, op, "reading lease "+clipQuote(shardID), err)
	}
	if out == nil || len(out.Item) == 0 {
		return runnel.Lease{}, false, nil
	}
	l, err = decodeLeaseItem(op, t.name, out.Item)
	return l, err == nil, err
}

// conflict is the error of a failed condition; cause is DynamoDB's error.
func (t *LeaseTable) conflict(op, shardID string, expect, found int64, exists bool, cause error) error {
	msg := fmt.Sprintf("lease table %s: lease %s: expected counter %d, found %d", t.name, clipQuote(shardID), expect, found)
	switch {
	case exists && expect == 0:
		msg = fmt.Sprintf("lease table %s: lease %s: expected counter 0 (no lease, or a free one the KCL created), found %d", t.name, clipQuote(shardID), found)
	case !exists:
		msg = fmt.Sprintf("lease table %s: lease %s: expected counter %d, found no lease", t.name, clipQuote(shardID), expect)
	}
	return &runnel.Error{Op: op, Kind: runnel.ErrLeaseConflict, Msg: msg, Err: cause}
}

// sdkError turns an error of the SDK into a *runnel.Error of op whose
// Kind the error table of DynamoDB's error names decides (see LeaseTable);
// what says what op was doing.
func (t *LeaseTable) sdkError(ctx context.Context, op, what string, err error) *runnel.Error {
	return classify(ctx, op, fmt.Sprintf("lease table %s: %s", t.name, what), err, dynamoDBErrors)
}

// dynamoDBErrors maps DynamoDB's own error names to runnel's sentinels,
// where the name is neither a Kinesis error name that runnel.ErrorForName
// knows (ResourceNotFoundException, ProvisionedThroughputExceededException,
// ValidationException, … have the same names in both services) nor an
// AWS-wide one (awsWideErrors: throttles, expired credentials).
var dynamoDBErrors = map[string]error{
	"InternalServerError":              runnel.ErrInternalFailure,
	"ServiceUnavailable":               runnel.ErrInternalFailure,
	"TransactionConflictException":     runnel.ErrInternalFailure, // a transaction holds the item: retry
	"ReplicatedWriteConflictException": runnel.ErrInternalFailure,
}

// sentinelOfError returns the Kind of a *runnel.Error, or
// runnel.ErrInternalFailure.
func sentinelOfError(err error) error {
	var e *runnel.Error
	if errors.As(err, &e) && e.Kind != nil {
		return e.Kind
	}
	return runnel.ErrInternalFailure
}

// The attributes of a lease item (see LeaseTable).
const (
	attrLeaseKey        = "leaseKey"
	attrOwner           = "leaseOwner"
	attrCounter         = "leaseCounter"
	attrCheckpoint      = "checkpoint"
	attrCheckpointSub   = "checkpointSubSequenceNumber"
	attrOwnerSwitches   = "ownerSwitchesSinceCheckpoint"
	attrParents         = "parentShardId"
	attrChildren        = "childShardIds"
	attrStartingHashKey = "startingHashKey"
	attrEndingHashKey   = "endingHashKey"
	attrPending         = "pendingCheckpoint"
	attrPendingSub      = "pendingCheckpointSubSequenceNumber"
	attrPendingState    = "pendingCheckpointState"
	attrStart           = "runnelStart"

	// The entries of runnelStart.
	startEntryType           = "type"
	startEntrySequenceNumber = "sequenceNumber"
	startEntryTimestamp      = "timestamp"
)

// managedAttrs are the attributes a PutLease SETs when it has a value for
// them and REMOVEs otherwise: every attribute of a lease item but its key.
// The pending checkpoint's are never set.
var managedAttrs = []string{
	attrOwner, attrCounter, attrCheckpoint, attrCheckpointSub, attrOwnerSwitches,
	attrParents, attrChildren, attrStartingHashKey, attrEndingHashKey, attrStart,
	attrPending, attrPendingSub, attrPendingState,
}

// The KCL's sentinel checkpoints.
const (
	sentinelShardEnd    = "SHARD_END"
	sentinelTrimHorizon = "TRIM_HORIZON"
	sentinelLatest      = "LATEST"
	sentinelAtTimestamp = "AT_TIMESTAMP"
)

// checkLeaseTableWrite checks a conditional write as every runnel
// LeaseStore does, and what a lease item needs besides.
func checkLeaseTableWrite(op string, l runnel.Lease, expect int64) error {
	bad := func(format string, args ...any) error {
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf(format, args...)}
	}
	id := clipQuote(l.ShardID)
	switch {
	case l.ShardID == "":
		return bad("lease has no ShardID")
	case expect < 0:
		return bad("expected counter %d of lease %s is negative", expect, id)
	case l.Counter <= expect:
		return bad("counter %d of lease %s must be greater than the expected %d", l.Counter, id, expect)
	}
	if why := l.Invalid(); why != "" {
		return bad("lease %s %s", id, why)
	}
	if strings.Contains(l.ShardID, ":") {
		return bad("lease key %s has a ':', as the KCL's multi-stream lease keys do; a LeaseTable holds single-stream leases, keyed by shard id", id)
	}
	for _, s := range []struct{ what, v string }{{"shard id", l.ShardID}, {"owner", l.Owner}, {"start type", string(l.Start.Type)}} {
		if !utf8.ValidString(s.v) {
			return bad("lease %s: %s %s is not valid UTF-8, which DynamoDB cannot hold", id, s.what, clipQuote(s.v))
		}
	}
	for _, set := range []struct {
		what string
		ids  []string
	}{{"parent shard ids", l.ParentShardIDs}, {"child shard ids", l.ChildShardIDs}} {
		for i, s := range set.ids {
			switch {
			case s == "":
				return bad("lease %s: its %s include an empty id, which a DynamoDB string set cannot hold", id, set.what)
			case !utf8.ValidString(s):
				return bad("lease %s: its %s include %s, which is not valid UTF-8", id, set.what, clipQuote(s))
			case slices.Contains(set.ids[:i], s):
				return bad("lease %s: its %s include %s twice, which a DynamoDB string set cannot hold", id, set.what, clipQuote(s))
			}
		}
	}
	if ts := l.Start.Timestamp; !ts.IsZero() && !timestampOK(ts) {
		return bad("lease %s: start timestamp %s is outside the years 0 to 9999 (UTC), which the item's RFC 3339 text can hold", id, ts.UTC())
	}
	return nil
}

// timestampOK reports whether RFC 3339 text in UTC can hold t.
func timestampOK(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// attrNumber is the N value of n.
func attrNumber(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// encodeLeaseItem returns the item of a lease that passed
// checkLeaseTableWrite: the attributes that have values.
func encodeLeaseItem(l runnel.Lease) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrLeaseKey:      &types.AttributeValueMemberS{Value: l.ShardID},
		attrCounter:       attrNumber(l.Counter),
		attrCheckpointSub: attrNumber(l.Checkpoint.SubSequenceNumber),
		attrOwnerSwitches: attrNumber(l.OwnerSwitchesSinceCheckpoint),
	}
	if l.Owner != "" {
		item[attrOwner] = &types.AttributeValueMemberS{Value: l.Owner}
	}
	cp := l.Checkpoint.SequenceNumber.String()
	switch {
	case l.Checkpoint.ShardEnd:
		cp = sentinelShardEnd
	case !l.Checkpoint.IsZero():
	case l.Start.Type == runnel.Latest:
		cp = sentinelLatest
	case l.Start.Type == runnel.AtTimestamp:
		cp = sentinelAtTimestamp
	default: // TRIM_HORIZON, and the starts the KCL has no sentinel for
		cp = sentinelTrimHorizon
	}
	item[attrCheckpoint] = &types.AttributeValueMemberS{Value: cp}
	if len(l.ParentShardIDs) > 0 {
		item[attrParents] = &types.AttributeValueMemberSS{Value: slices.Sorted(slices.Values(l.ParentShardIDs))}
	}
	if len(l.ChildShardIDs) > 0 {
		item[attrChildren] = &types.AttributeValueMemberSS{Value: slices.Sorted(slices.Values(l.ChildShardIDs))}
	}
	if r := l.HashKeyRange; r != (runnel.HashKeyRange{}) {
		item[attrStartingHashKey] = &types.AttributeValueMemberS{Value: r.StartingHashKey.String()}
		item[attrEndingHashKey] = &types.AttributeValueMemberS{Value: r.EndingHashKey.String()}
	}
	start := map[string]types.AttributeValue{}
	if l.Start.Type != "" {
		start[startEntryType] = &types.AttributeValueMemberS{Value: string(l.Start.Type)}
	}
	if !l.Start.SequenceNumber.IsZero() {
		start[startEntrySequenceNumber] = &types.AttributeValueMemberS{Value: l.Start.SequenceNumber.String()}
	}
	if !l.Start.Timestamp.IsZero() {
		start[startEntryTimestamp] = &types.AttributeValueMemberS{Value: l.Start.Timestamp.UTC().Format(time.RFC3339Nano)}
	}
	item[attrStart] = &types.AttributeValueMemberM{Value: start}
	return item
}

// decodeLeaseItem reads a lease item strictly (see LeaseTable): a fault is
// an error wrapping runnel.ErrCorrupt that names the table, the item's key
// and the attribute, and a multi-stream lease key (one with a ':') an
// error wrapping runnel.ErrInvalidArgument. It never panics, whatever the
// item holds.
func decodeLeaseItem(op, table string, item map[string]types.AttributeValue) (runnel.Lease, error) {
	d := itemDecoder{op: op, table: table, item: item}
	var l runnel.Lease
	key, ok := d.str(attrLeaseKey)
	if !ok && d.err == nil {
		d.fail(attrLeaseKey, "is missing")
	}
	if key == "" && d.err == nil {
		d.fail(attrLeaseKey, "is empty")
	}
	if d.err != nil {
		return runnel.Lease{}, d.err
	}
	if strings.Contains(key, ":") {
		// Refused rather than read: a Consumer would take the lease for a
		// shard that has gone, and delete it.
		return runnel.Lease{}, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("lease table %s holds the lease %s, whose key is a KCL multi-stream lease key; a LeaseTable reads single-stream lease tables only", table, clipQuote(key))}
	}
	l.ShardID, d.key = key, key
	l.Owner, _ = d.str(attrOwner)
	counter, ok := d.int(attrCounter)
	if !ok && d.err == nil {
		d.fail(attrCounter, "is missing")
	}
	l.Counter = counter
	l.OwnerSwitchesSinceCheckpoint, _ = d.int(attrOwnerSwitches)
	sub, _ := d.int(attrCheckpointSub)
	cp, hasCP := d.str(attrCheckpoint)
	sentinel := ""
	switch cp {
	case sentinelShardEnd:
		l.Checkpoint = runnel.Checkpoint{ShardEnd: true, SubSequenceNumber: sub}
	case sentinelTrimHorizon, sentinelLatest, sentinelAtTimestamp:
		sentinel = cp
		l.Checkpoint.SubSequenceNumber = sub
	case "":
		if hasCP && d.err == nil {
			d.fail(attrCheckpoint, "is empty")
		}
		l.Checkpoint.SubSequenceNumber = sub
	default:
		n, err := runnel.ParseSequenceNumber(cp)
		if err != nil && d.err == nil {
			d.fail(attrCheckpoint, fmt.Sprintf("%s is neither a sequence number nor one of SHARD_END, TRIM_HORIZON, LATEST, AT_TIMESTAMP", clipQuote(cp)))
		}
		l.Checkpoint = runnel.Checkpoint{SequenceNumber: n, SubSequenceNumber: sub}
	}
	l.ParentShardIDs = d.set(attrParents)
	l.ChildShardIDs = d.set(attrChildren)
	lo, hasLo := d.hashKey(attrStartingHashKey)
	hi, hasHi := d.hashKey(attrEndingHashKey)
	switch {
	case hasLo != hasHi && d.err == nil:
		d.fail(attrStartingHashKey, "and "+attrEndingHashKey+" must be both present or both absent")
	case hasLo:
		l.HashKeyRange = runnel.HashKeyRange{StartingHashKey: lo, EndingHashKey: hi}
	}
	l.Start = d.start(sentinel)
	if d.err != nil {
		return runnel.Lease{}, d.err
	}
	if why := l.Invalid(); why != "" {
		return runnel.Lease{}, d.corrupt("", "the lease "+why)
	}
	return l, nil
}

// itemDecoder reads the attributes of one item, keeping the first fault.
type itemDecoder struct {
	op, table, key string
	item           map[string]types.AttributeValue
	err            error
}

// corrupt is the error of a fault in attribute attr ("" for the item as a
// whole).
func (d *itemDecoder) corrupt(attr, why string) error {
	where := fmt.Sprintf("lease table %s: item %s", d.table, clipQuote(d.key))
	if d.key == "" {
		where = fmt.Sprintf("lease table %s: an item", d.table)
	}
	if attr != "" {
		where += ": attribute " + attr
	}
	return &runnel.Error{Op: d.op, Kind: runnel.ErrCorrupt, Msg: where + " " + why}
}

// fail records a fault in attribute attr, unless one was recorded already.
func (d *itemDecoder) fail(attr, why string) {
	if d.err == nil {
		d.err = d.corrupt(attr, why)
	}
}

// attrTypeOf describes the DynamoDB type of a value, for error messages:
// "of type N", or "a nil S" for a nil pointer of a member type.
func attrTypeOf(v types.AttributeValue) string {
	var name string
	var isNil bool
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		name, isNil = "S", x == nil
	case *types.AttributeValueMemberN:
		name, isNil = "N", x == nil
	case *types.AttributeValueMemberB:
		name, isNil = "B", x == nil
	case *types.AttributeValueMemberSS:
		name, isNil = "SS", x == nil
	case *types.AttributeValueMemberNS:
		name, isNil = "NS", x == nil
	case *types.AttributeValueMemberBS:
		name, isNil = "BS", x == nil
	case *types.AttributeValueMemberM:
		name, isNil = "M", x == nil
	case *types.AttributeValueMemberL:
		name, isNil = "L", x == nil
	case *types.AttributeValueMemberBOOL:
		name, isNil = "BOOL", x == nil
	case *types.AttributeValueMemberNULL:
		name, isNil = "NULL", x == nil
	case nil:
		return "nil"
	default:
		name = fmt.Sprintf("%T", v)
	}
	if isNil {
		return "a nil " + name
	}
	return "of type " + name
}

// str returns a string attribute; ok is false when it is absent or faulty.
func (d *itemDecoder) str(attr string) (string, bool) {
	return d.strIn(d.item, attr, attr)
}

// strIn reads entry name of m as a string; what names it in errors.
func (d *itemDecoder) strIn(m map[string]types.AttributeValue, name, what string) (string, bool) {
	v, ok := m[name]
	if !ok {
		return "", false
	}
	s, isS := v.(*types.AttributeValueMemberS)
	if !isS || s == nil {
		d.fail(what, "is "+attrTypeOf(v)+", not S")
		return "", false
	}
	return s.Value, true
}

// int returns a non-negative integer attribute; ok is false when it is
// absent or faulty.
func (d *itemDecoder) int(attr string) (int64, bool) {
	v, ok := d.item[attr]
	if !ok {
		return 0, false
	}
	n, isN := v.(*types.AttributeValueMemberN)
	if !isN || n == nil {
		d.fail(attr, "is "+attrTypeOf(v)+", not N")
		return 0, false
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	switch {
	case err != nil:
		d.fail(attr, fmt.Sprintf("%s is not an integer of 64 bits", clipQuote(n.Value)))
		return 0, false
	case i < 0:
		d.fail(attr, fmt.Sprintf("%d is negative", i))
		return 0, false
	}
	return i, true
}

// set returns a string set attribute, sorted, or nil when it is absent.
func (d *itemDecoder) set(attr string) []string {
	v, ok := d.item[attr]
	if !ok {
		return nil
	}
	ss, isSS := v.(*types.AttributeValueMemberSS)
	if !isSS || ss == nil {
		d.fail(attr, "is "+attrTypeOf(v)+", not SS")
		return nil
	}
	if len(ss.Value) == 0 {
		return nil
	}
	out := slices.Sorted(slices.Values(ss.Value))
	for i, s := range out {
		switch {
		case s == "":
			d.fail(attr, "holds an empty shard id")
			return nil
		case i > 0 && out[i-1] == s:
			d.fail(attr, "holds "+clipQuote(s)+" twice")
			return nil
		}
	}
	return out
}

// hashKey returns a decimal hash key attribute.
func (d *itemDecoder) hashKey(attr string) (runnel.HashKey, bool) {
	s, ok := d.str(attr)
	if !ok {
		return runnel.HashKey{}, false
	}
	k, err := runnel.ParseHashKey(s)
	if err != nil {
		d.fail(attr, fmt.Sprintf("%s is not a hash key (a decimal integer of 0 to 2^128-1)", clipQuote(s)))
		return runnel.HashKey{}, false
	}
	return k, true
}

// start returns the lease's start: runnel's runnelStart map when the item
// has one, or else what the checkpoint's sentinel says ("" when the
// checkpoint holds no start sentinel: TRIM_HORIZON).
func (d *itemDecoder) start(sentinel string) runnel.StartingPosition {
	v, ok := d.item[attrStart]
	if !ok {
		switch sentinel {
		case sentinelLatest:
			return runnel.StartingPosition{Type: runnel.Latest}
		case sentinelAtTimestamp:
			return runnel.StartingPosition{Type: runnel.AtTimestamp}
		}
		return runnel.StartingPosition{Type: runnel.TrimHorizon}
	}
	m, isM := v.(*types.AttributeValueMemberM)
	if !isM || m == nil {
		d.fail(attrStart, "is "+attrTypeOf(v)+", not M")
		return runnel.StartingPosition{}
	}
	var p runnel.StartingPosition
	if s, ok := d.strIn(m.Value, startEntryType, attrStart+"."+startEntryType); ok {
		if s == "" {
			d.fail(attrStart+"."+startEntryType, "is empty")
		}
		p.Type = runnel.IteratorType(s)
	}
	if s, ok := d.strIn(m.Value, startEntrySequenceNumber, attrStart+"."+startEntrySequenceNumber); ok {
		n, err := runnel.ParseSequenceNumber(s)
		if err != nil {
			d.fail(attrStart+"."+startEntrySequenceNumber, fmt.Sprintf("%s is not a sequence number", clipQuote(s)))
		}
		p.SequenceNumber = n
	}
	if s, ok := d.strIn(m.Value, startEntryTimestamp, attrStart+"."+startEntryTimestamp); ok {
		ts, err := time.Parse(time.RFC3339Nano, s)
		switch {
		case err != nil:
			d.fail(attrStart+"."+startEntryTimestamp, fmt.Sprintf("%s is not an RFC 3339 time", clipQuote(s)))
		case !timestampOK(ts):
			d.fail(attrStart+"."+startEntryTimestamp, fmt.Sprintf("%s is outside the years 0 to 9999", clipQuote(s)))
		}
		p.Timestamp = ts.UTC()
	}
	return p
}

// canonicalLease returns l as a LeaseTable reads it back: parent and child
// ids sorted, and the start's timestamp in UTC without a monotonic clock
// reading.
func canonicalLease(l runnel.Lease) runnel.Lease {
	if len(l.ParentShardIDs) > 0 {
		l.ParentShardIDs = slices.Sorted(slices.Values(l.ParentShardIDs))
	} else {
		l.ParentShardIDs = nil
	}
	if len(l.ChildShardIDs) > 0 {
		l.ChildShardIDs = slices.Sorted(slices.Values(l.ChildShardIDs))
	} else {
		l.ChildShardIDs = nil
	}
	if !l.Start.Timestamp.IsZero() {
		l.Start.Timestamp = l.Start.Timestamp.UTC().Round(0)
	}
	return l
}

// sameLease reports whether two canonical leases are equal.
func sameLease(a, b runnel.Lease) bool {
	return a.ShardID == b.ShardID && a.Owner == b.Owner && a.Counter == b.Counter &&
		a.Checkpoint == b.Checkpoint && a.OwnerSwitchesSinceCheckpoint == b.OwnerSwitchesSinceCheckpoint &&
		slices.Equal(a.ParentShardIDs, b.ParentShardIDs) && slices.Equal(a.ChildShardIDs, b.ChildShardIDs) &&
		a.HashKeyRange == b.HashKeyRange &&
		a.Start.Type == b.Start.Type && a.Start.SequenceNumber == b.Start.SequenceNumber && a.Start.Timestamp.Equal(b.Start.Timestamp)
}
