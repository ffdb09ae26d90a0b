package runnelaws_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/runnelaws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The AWS SDK's client and the LeaseTable implement the seams they are
// made for.
var (
	_ runnelaws.DynamoDBAPI = (*dynamodb.Client)(nil)
	_ runnel.LeaseStore     = (*runnelaws.LeaseTable)(nil)
)

// A foreign sequence number (as Kinesis issues them) and runnel-made ones.
const bigSeq = "49590338271490256608559692538361571095921575989136588898"

func mustSeq(t testing.TB, s string) runnel.SequenceNumber {
	t.Helper()
	n, err := runnel.ParseSequenceNumber(s)
	require.NoError(t, err)
	return n
}

func mustHashKey(t testing.TB, s string) runnel.HashKey {
	t.Helper()
	k, err := runnel.ParseHashKey(s)
	require.NoError(t, err)
	return k
}

// newTestLeaseTable returns the LeaseTable of table on client, creating
// the table.
func newTestLeaseTable(t testing.TB, client runnelaws.DynamoDBAPI, table string) *runnelaws.LeaseTable {
	t.Helper()
	lt, err := runnelaws.NewLeaseTable(context.Background(), client, table, runnelaws.WithCreateTable())
	require.NoError(t, err)
	return lt
}

// leaseOf returns the lease of shard id in a list, or fails.
func leaseOf(t testing.TB, lt *runnelaws.LeaseTable, id string) runnel.Lease {
	t.Helper()
	leases, err := lt.ListLeases(context.Background())
	require.NoError(t, err)
	for _, l := range leases {
		if l.ShardID == id {
			return l
		}
	}
	t.Fatalf("no lease for %s in %v", id, leases)
	return runnel.Lease{}
}

// rawItem reads an item as DynamoDB holds it.
func rawItem(t testing.TB, client *dynamodb.Client, table, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{"leaseKey": &types.AttributeValueMemberS{Value: key}},
		ConsistentRead: aws.Bool(true),
	})
	require.NoError(t, err)
	return out.Item
}

// putRawItem writes an item as another program (a KCL worker) would.
func putRawItem(t testing.TB, client *dynamodb.Client, table string, item map[string]types.AttributeValue) {
	t.Helper()
	_, err := client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
	require.NoError(t, err)
}

func attrS(s string) types.AttributeValue     { return &types.AttributeValueMemberS{Value: s} }
func attrN(s string) types.AttributeValue     { return &types.AttributeValueMemberN{Value: s} }
func attrSS(s ...string) types.AttributeValue { return &types.AttributeValueMemberSS{Value: s} }

// ExampleNewLeaseTable runs a worker of a consumer group whose leases are
// in the DynamoDB table "orders-app" (created if missing, as the KCL
// creates its lease table), reading the Kinesis stream "orders". Start the
// same program elsewhere and the workers share the shards.
func ExampleNewLeaseTable() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	table, err := runnelaws.NewLeaseTable(ctx, dynamodb.NewFromConfig(cfg), "orders-app", runnelaws.WithCreateTable())
	if err != nil {
		log.Fatal(err)
	}
	stream, err := runnelaws.NewStream(kinesis.NewFromConfig(cfg), "orders")
	if err != nil {
		log.Fatal(err)
	}
	worker, err := runnel.NewConsumer(stream, "orders-app", func(shardID string) runnel.RecordProcessor {
		return runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
			for _, r := range in.Records {
				fmt.Printf("%s %s: %s\n", in.ShardID, r.PartitionKey, r.Data)
			}
			return in.Checkpointer.Checkpoint(ctx)
		})
	}, runnel.WithLeaseStore(table))
	if err != nil {
		log.Fatal(err)
	}
	defer worker.Close()
	stop, cancel := signal.NotifyContext(ctx, os.Interrupt)
	defer cancel()
	<-stop.Done() // Close then hands the worker's leases to the others
}

// TestLeaseTableCreate: WithCreateTable creates the table as the KCL
// does (on demand, hash key leaseKey S) and waits for it; a second
// LeaseTable of the table, with or without the option, finds it.
func TestLeaseTableCreate(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	lt, err := runnelaws.NewLeaseTable(ctx, client, "orders-app", runnelaws.WithCreateTable())
	require.NoError(t, err)
	assert.Equal(t, "orders-app", lt.Name())

	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders-app")})
	require.NoError(t, err)
	desc := out.Table
	assert.Equal(t, types.TableStatusActive, desc.TableStatus)
	require.NotNil(t, desc.BillingModeSummary)
	assert.Equal(t, types.BillingModePayPerRequest, desc.BillingModeSummary.BillingMode)
	require.Len(t, desc.KeySchema, 1)
	assert.Equal(t, "leaseKey", aws.ToString(desc.KeySchema[0].AttributeName))
	assert.Equal(t, types.KeyTypeHash, desc.KeySchema[0].KeyType)
	require.Len(t, desc.AttributeDefinitions, 1)
	assert.Equal(t, "leaseKey", aws.ToString(desc.AttributeDefinitions[0].AttributeName))
	assert.Equal(t, types.ScalarAttributeTypeS, desc.AttributeDefinitions[0].AttributeType)

	_, err = runnelaws.NewLeaseTable(ctx, client, "orders-app", runnelaws.WithCreateTable())
	require.NoError(t, err, "an existing table is used as it is")
	again, err := runnelaws.NewLeaseTable(ctx, client, "orders-app")
	require.NoError(t, err)
	require.NoError(t, lt.PutLease(ctx, runnel.Lease{ShardID: "shardId-000000000000", Counter: 1}, 0))
	assert.Equal(t, int64(1), leaseOf(t, again, "shardId-000000000000").Counter, "both see one table")
}

// TestLeaseTableMissing: without WithCreateTable a missing table is an
// ErrResourceNotFound that says what to do; a table with another key is
// not taken for a lease table.
func TestLeaseTableMissing(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	_, err := runnelaws.NewLeaseTable(ctx, client, "no-such-table")
	require.ErrorIs(t, err, runnel.ErrResourceNotFound)
	assert.Contains(t, err.Error(), "no-such-table")
	assert.Contains(t, err.Error(), "WithCreateTable")
	assert.False(t, runnel.IsRetryable(err))
	var notFound *types.ResourceNotFoundException
	assert.ErrorAs(t, err, &notFound, "the SDK's error stays wrapped")

	_, err = client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("other"),
		BillingMode:          types.BillingModePayPerRequest,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
	})
	require.NoError(t, err)
	_, err = runnelaws.NewLeaseTable(ctx, client, "other", runnelaws.WithCreateTable())
	require.ErrorIs(t, err, runnel.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "id (HASH)")
	assert.Contains(t, err.Error(), "not a lease table")
}

// roundTripLeases are leases that use every field, in the forms a lease
// table must keep.
func roundTripLeases(t testing.TB) []runnel.Lease {
	cet := time.FixedZone("CET", 3600)
	return []runnel.Lease{
		{
			ShardID: "shardId-000000000007", Owner: "worker-1", Counter: 7,
			Checkpoint:                   runnel.Checkpoint{SequenceNumber: mustSeq(t, bigSeq), SubSequenceNumber: 3},
			ParentShardIDs:               []string{"shardId-000000000003", "shardId-000000000002"},
			HashKeyRange:                 runnel.HashKeyRange{StartingHashKey: mustHashKey(t, "170141183460469231731687303715884105728"), EndingHashKey: runnel.MaxHashKey()},
			OwnerSwitchesSinceCheckpoint: 2,
			Start:                        runnel.StartingPosition{Type: runnel.AtTimestamp, Timestamp: time.Date(2026, 12, 1, 8, 30, 0, 123456789, cet)},
		},
		{ShardID: "shardId-000000000000", Counter: 1, Start: runnel.StartingPosition{Type: runnel.TrimHorizon}},
		{ShardID: "shardId-000000000001", Counter: 3, Start: runnel.StartingPosition{Type: runnel.Latest}},
		{
			ShardID: "shardId-000000000002", Owner: "worker-2", Counter: 12,
			Checkpoint:    runnel.Checkpoint{ShardEnd: true},
			ChildShardIDs: []string{"shardId-000000000007"},
			HashKeyRange:  runnel.HashKeyRange{EndingHashKey: mustHashKey(t, "170141183460469231731687303715884105727")},
			Start:         runnel.StartingPosition{Type: runnel.TrimHorizon},
		},
		{
			ShardID: "shardId-000000000004", Counter: 2,
			Start: runnel.StartingPosition{Type: runnel.AtSequenceNumber, SequenceNumber: mustSeq(t, bigSeq)},
		},
		{
			ShardID: "shardId-000000000005", Owner: "w", Counter: 9,
			Checkpoint: runnel.Checkpoint{SequenceNumber: mustSeq(t, "1"+strings.Repeat("0", 128))},
			Start:      runnel.StartingPosition{Type: runnel.AfterSequenceNumber, SequenceNumber: mustSeq(t, "0")},
		},
		{ShardID: "shardId-000000000006", Counter: 1}, // no start at all, as the core's tests write
		{ShardID: "shardId-000000000008", Counter: 4, Start: runnel.StartingPosition{Type: runnel.AtTimestamp}},
	}
}

// canonical is a lease as a LeaseTable reads it back: sets sorted, the
// timestamp in UTC.
func canonical(l runnel.Lease) runnel.Lease {
	l.ParentShardIDs = slices.Sorted(slices.Values(l.ParentShardIDs))
	l.ChildShardIDs = slices.Sorted(slices.Values(l.ChildShardIDs))
	if !l.Start.Timestamp.IsZero() {
		l.Start.Timestamp = l.Start.Timestamp.UTC()
	}
	return l
}

// TestLeaseTableRoundTrip: every field of a lease reads back as written,
// across a create and an update; what ListLeases returns shares no memory
// with anything.
func TestLeaseTableRoundTrip(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	lt := newTestLeaseTable(t, client, "round-trip")
	var want []runnel.Lease
	for _, l := range roundTripLeases(t) {
		require.NoError(t, lt.PutLease(ctx, l, 0), l.ShardID)
		want = append(want, canonical(l))
	}
	slices.SortFunc(want, func(a, b runnel.Lease) int { return strings.Compare(a.ShardID, b.ShardID) })
	got, err := lt.ListLeases(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// Every lease becomes another one: what is set is removed, what was
	// empty is set.
	leases := roundTripLeases(t)
	for i, l := range leases {
		next := leases[(i+1)%len(leases)]
		next.ShardID, next.Counter = l.ShardID, l.Counter+1
		require.NoError(t, lt.PutLease(ctx, next, l.Counter), l.ShardID)
		assert.Equal(t, canonical(next), leaseOf(t, lt, l.ShardID), "%s after the update", l.ShardID)
	}

	got[0].ParentShardIDs = append(got[0].ParentShardIDs[:0], "changed")
	got[0].ChildShardIDs = append(got[0].ChildShardIDs, "changed")
	again, err := lt.ListLeases(ctx)
	require.NoError(t, err)
	assert.NotContains(t, again[0].ParentShardIDs, "changed")
	assert.NotContains(t, again[0].ChildShardIDs, "changed")
}

// TestLeaseTableItemLayout pins the items: the KCL's attribute names and
// types, and runnel's own runnelStart.
func TestLeaseTableItemLayout(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	lt := newTestLeaseTable(t, client, "layout")
	for _, l := range roundTripLeases(t) {
		require.NoError(t, lt.PutLease(ctx, l, 0))
	}
	m := func(kv ...any) types.AttributeValue {
		v := map[string]types.AttributeValue{}
		for i := 0; i < len(kv); i += 2 {
			v[kv[i].(string)] = kv[i+1].(types.AttributeValue)
		}
		return &types.AttributeValueMemberM{Value: v}
	}
	for _, tc := range []struct {
		key  string
		want map[string]types.AttributeValue
	}{
		{"shardId-000000000007", map[string]types.AttributeValue{
			"leaseKey":                     attrS("shardId-000000000007"),
			"leaseOwner":                   attrS("worker-1"),
			"leaseCounter":                 attrN("7"),
			"checkpoint":                   attrS(bigSeq),
			"checkpointSubSequenceNumber":  attrN("3"),
			"ownerSwitchesSinceCheckpoint": attrN("2"),
			"parentShardId":                attrSS("shardId-000000000002", "shardId-000000000003"),
			"startingHashKey":              attrS("170141183460469231731687303715884105728"),
			"endingHashKey":                attrS("340282366920938463463374607431768211455"),
			"runnelStart":                  m("type", attrS("AT_TIMESTAMP"), "timestamp", attrS("2026-12-01T07:30:00.123456789Z")),
		}},
		{"shardId-000000000000", map[string]types.AttributeValue{ // free, nothing checkpointed
			"leaseKey":                     attrS("shardId-000000000000"),
			"leaseCounter":                 attrN("1"),
			"checkpoint":                   attrS("TRIM_HORIZON"),
			"checkpointSubSequenceNumber":  attrN("0"),
			"ownerSwitchesSinceCheckpoint": attrN("0"),
			"runnelStart":                  m("type", attrS("TRIM_HORIZON")),
		}},
		{"shardId-000000000001", map[string]types.AttributeValue{
			"leaseKey":                     attrS("shardId-000000000001"),
			"leaseCounter":                 attrN("3"),
			"checkpoint":                   attrS("LATEST"),
			"checkpointSubSequenceNumber":  attrN("0"),
			"ownerSwitchesSinceCheckpoint": attrN("0"),
			"runnelStart":                  m("type", attrS("LATEST")),
		}},
		{"shardId-000000000002", map[string]types.AttributeValue{
			"leaseKey":                     attrS("shardId-000000000002"),
			"leaseOwner":                   attrS("worker-2"),
			"leaseCounter":                 attrN("12"),
			"checkpoint":                   attrS("SHARD_END"),
			"checkpointSubSequenceNumber":  attrN("0"),
			"ownerSwitchesSinceCheckpoint": attrN("0"),
			"childShardIds":                attrSS("shardId-000000000007"),
			"startingHashKey":              attrS("0"),
			"endingHashKey":                attrS("170141183460469231731687303715884105727"),
			"runnelStart":                  m("type", attrS("TRIM_HORIZON")),
		}},
		{"shardId-000000000004", map[string]types.AttributeValue{ // a start the KCL has no sentinel for
			"leaseKey":                     attrS("shardId-000000000004"),
			"leaseCounter":                 attrN("2"),
			"checkpoint":                   attrS("TRIM_HORIZON"),
			"checkpointSubSequenceNumber":  attrN("0"),
			"ownerSwitchesSinceCheckpoint": attrN("0"),
			"runnelStart":                  m("type", attrS("AT_SEQUENCE_NUMBER"), "sequenceNumber", attrS(bigSeq)),
		}},
		{"shardId-000000000006", map[string]types.AttributeValue{
			"leaseKey":                     attrS("shardId-000000000006"),
			"leaseCounter":                 attrN("1"),
			"checkpoint":                   attrS("TRIM_HORIZON"),
			"checkpointSubSequenceNumber":  attrN("0"),
			"ownerSwitchesSinceCheckpoint": attrN("0"),
			"runnelStart":                  m(),
		}},
	} {
		got := rawItem(t, client, "layout", tc.key)
		if ss, ok := got["parentShardId"].(*types.AttributeValueMemberSS); ok {
			slices.Sort(ss.Value) // a set: its order is DynamoDB's
		}
		assert.Equal(t, tc.want, got, tc.key)
	}
}

// TestLeaseTableKCLItems: items as a Java KCL worker leaves them read as
// the leases they are; runnel takes a free KCL lease (leaseCounter 0),
// keeps the attributes it does not manage and removes the pending
// checkpoint.
func TestLeaseTableKCLItems(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	lt := newTestLeaseTable(t, client, "kcl-app")
	putRawItem(t, client, "kcl-app", map[string]types.AttributeValue{ // created, never taken
		"leaseKey": attrS("shardId-000000000000"), "leaseCounter": attrN("0"),
		"checkpoint": attrS("TRIM_HORIZON"), "checkpointSubSequenceNumber": attrN("0"),
		"ownerSwitchesSinceCheckpoint": attrN("0"),
		"startingHashKey":              attrS("0"), "endingHashKey": attrS("340282366920938463463374607431768211455"),
	})
	putRawItem(t, client, "kcl-app", map[string]types.AttributeValue{ // KCL 3.x, mid-flight
		"leaseKey": attrS("shardId-000000000001"), "leaseOwner": attrS("java-worker"), "leaseCounter": attrN("1234"),
		"checkpoint": attrS(bigSeq), "checkpointSubSequenceNumber": attrN("5"),
		"ownerSwitchesSinceCheckpoint": attrN("1"),
		"parentShardId":                attrSS("shardId-000000000000"),
		"pendingCheckpoint":            attrS(bigSeq + "1"), "pendingCheckpointSubSequenceNumber": attrN("0"),
		"pendingCheckpointState": &types.AttributeValueMemberB{Value: []byte("state")},
		"throughputKBps":         attrN("12.5"), "checkpointOwner": attrS("java-worker"),
	})
	putRawItem(t, client, "kcl-app", map[string]types.AttributeValue{
		"leaseKey": attrS("shardId-000000000002"), "leaseCounter": attrN("0"),
		"checkpoint": attrS("AT_TIMESTAMP"), "checkpointSubSequenceNumber": attrN("0"), "ownerSwitchesSinceCheckpoint": attrN("0"),
	})
	putRawItem(t, client, "kcl-app", map[string]types.AttributeValue{
		"leaseKey": attrS("shardId-000000000003"), "leaseCounter": attrN("0"),
		"checkpoint": attrS("LATEST"), "checkpointSubSequenceNumber": attrN("0"), "ownerSwitchesSinceCheckpoint": attrN("0"),
	})
	putRawItem(t, client, "kcl-app", map[string]types.AttributeValue{
		"leaseKey": attrS("shardId-000000000004"), "leaseOwner": attrS("java-worker"), "leaseCounter": attrN("77"),
		"checkpoint": attrS("SHARD_END"), "checkpointSubSequenceNumber": attrN("0"), "ownerSwitchesSinceCheckpoint": attrN("0"),
		"childShardIds": attrSS("shardId-000000000006", "shardId-000000000005"),
	})
	got, err := lt.ListLeases(ctx)
	require.NoError(t, err)
	trim := runnel.StartingPosition{Type: runnel.TrimHorizon}
	assert.Equal(t, []runnel.Lease{
		{ShardID: "shardId-000000000000", Start: trim, HashKeyRange: runnel.HashKeyRange{EndingHashKey: runnel.MaxHashKey()}},
		{
			ShardID: "shardId-000000000001", Owner: "java-worker", Counter: 1234,
			Checkpoint:                   runnel.Checkpoint{SequenceNumber: mustSeq(t, bigSeq), SubSequenceNumber: 5},
			OwnerSwitchesSinceCheckpoint: 1, ParentShardIDs: []string{"shardId-000000000000"}, Start: trim,
		},
		{ShardID: "shardId-000000000002", Start: runnel.StartingPosition{Type: runnel.AtTimestamp}},
		{ShardID: "shardId-000000000003", Start: runnel.StartingPosition{Type: runnel.Latest}},
		{
			ShardID: "shardId-000000000004", Owner: "java-worker", Counter: 77,
			Checkpoint: runnel.Checkpoint{ShardEnd: true}, ChildShardIDs: []string{"shardId-000000000005", "shardId-000000000006"}, Start: trim,
		},
	}, got)

	// A free KCL lease is taken as a runnel worker takes any: expecting 0.
	take := got[0]
	take.Owner, take.Counter = "runnel-worker", 1
	require.NoError(t, lt.PutLease(ctx, take, 0))
	assert.Equal(t, take, leaseOf(t, lt, take.ShardID))
	err = lt.PutLease(ctx, runnel.Lease{ShardID: take.ShardID, Owner: "late", Counter: 1}, 0)
	require.ErrorIs(t, err, runnel.ErrLeaseConflict, "a taken lease is no longer free")

	steal := got[1]
	steal.Owner, steal.Counter, steal.OwnerSwitchesSinceCheckpoint = "runnel-worker", 1235, 2
	require.NoError(t, lt.PutLease(ctx, steal, 1234))
	item := rawItem(t, client, "kcl-app", steal.ShardID)
	assert.Equal(t, attrN("12.5"), item["throughputKBps"], "an attribute runnel does not manage survives")
	assert.Equal(t, attrS("java-worker"), item["checkpointOwner"])
	for _, gone := range []string{"pendingCheckpoint", "pendingCheckpointSubSequenceNumber", "pendingCheckpointState"} {
		assert.NotContains(t, item, gone, "runnel has no prepared checkpoints")
	}
	assert.Equal(t, attrS("runnel-worker"), item["leaseOwner"])
	assert.Equal(t, attrN("1235"), item["leaseCounter"])
}

// TestLeaseTableRaces: two workers, each with its own client and
// LeaseTable, write the same lease on the same expected counter at once,
// round after round: exactly one wins, the other gets a conflict, and the
// table holds the winner's lease.
func TestLeaseTableRaces(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	tables := [2]*runnelaws.LeaseTable{
		newTestLeaseTable(t, client, "races"),
		newTestLeaseTable(t, dynamodb.New(client.Options()), "races"),
	}
	rng := rand.New(rand.NewPCG(2026, 12))
	counters := map[string]int64{}
	for round := range 80 {
		id := fmt.Sprintf("shardId-%012d", rng.IntN(5))
		expect := counters[id]
		var leases [2]runnel.Lease
		for w := range leases {
			leases[w] = runnel.Lease{
				ShardID: id, Owner: fmt.Sprintf("worker-%d", w), Counter: expect + 1 + rng.Int64N(3),
				OwnerSwitchesSinceCheckpoint: rng.Int64N(4), Start: runnel.StartingPosition{Type: runnel.TrimHorizon},
			}
			if rng.IntN(2) == 0 {
				leases[w].Checkpoint = runnel.Checkpoint{SequenceNumber: mustSeq(t, fmt.Sprint(rng.Uint64())), SubSequenceNumber: rng.Int64N(3)}
			}
		}
		var errs [2]error
		var wg sync.WaitGroup
		for w := range tables {
			wg.Go(func() { errs[w] = tables[w].PutLease(ctx, leases[w], expect) })
		}
		wg.Wait()
		winner := -1
		for w, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: both writes on counter %d of %s succeeded", round, expect, id)
				winner = w
				continue
			}
			require.ErrorIs(t, err, runnel.ErrLeaseConflict, "round %d", round)
			assert.Contains(t, err.Error(), fmt.Sprintf("expected counter %d", expect))
		}
		require.NotEqual(t, -1, winner, "round %d: neither write succeeded: %v", round, errs)
		assert.Equal(t, canonical(leases[winner]), leaseOf(t, tables[1-winner], id), "round %d", round)
		counters[id] = leases[winner].Counter
	}
}

// TestLeaseTableSteal: worker B takes A's lease at A's counter; A's next
// renewal, on its old counter, is a conflict, and A's late checkpoint
// cannot overwrite B's.
func TestLeaseTableSteal(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	a := newTestLeaseTable(t, client, "steal")
	b := newTestLeaseTable(t, dynamodb.New(client.Options()), "steal")
	const id = "shardId-000000000003"
	start := runnel.StartingPosition{Type: runnel.TrimHorizon}
	held := runnel.Lease{ShardID: id, Owner: "a", Counter: 1, Start: start}
	require.NoError(t, a.PutLease(ctx, held, 0))
	renewed := held
	renewed.Counter = 2
	require.NoError(t, a.PutLease(ctx, renewed, 1))
	cpA := renewed
	cpA.Counter, cpA.Checkpoint = 3, runnel.Checkpoint{SequenceNumber: mustSeq(t, "100")}
	require.NoError(t, a.PutLease(ctx, cpA, 2))

	seen := leaseOf(t, b, id)
	stolen := seen
	stolen.Owner, stolen.Counter, stolen.OwnerSwitchesSinceCheckpoint = "b", seen.Counter+1, seen.OwnerSwitchesSinceCheckpoint+1
	require.NoError(t, b.PutLease(ctx, stolen, seen.Counter))

	late := cpA
	late.Counter = 4
	err := a.PutLease(ctx, late, 3)
	require.ErrorIs(t, err, runnel.ErrLeaseConflict, "A's renewal after B took the lease")
	assert.Contains(t, err.Error(), id)
	assert.Contains(t, err.Error(), "expected counter 3, found 4")
	var failed *types.ConditionalCheckFailedException
	assert.ErrorAs(t, err, &failed, "DynamoDB's error stays wrapped")
	assert.False(t, runnel.IsRetryable(err))

	cpB := stolen
	cpB.Counter, cpB.Checkpoint, cpB.OwnerSwitchesSinceCheckpoint = 5, runnel.Checkpoint{SequenceNumber: mustSeq(t, "200"), SubSequenceNumber: 1}, 0
	require.NoError(t, b.PutLease(ctx, cpB, 4))
	staleCP := cpA
	staleCP.Counter, staleCP.Checkpoint = 4, runnel.Checkpoint{SequenceNumber: mustSeq(t, "150")}
	err = a.PutLease(ctx, staleCP, 3)
	require.ErrorIs(t, err, runnel.ErrLeaseConflict, "a stale owner's checkpoint")
	assert.Contains(t, err.Error(), "found 5")
	got := leaseOf(t, a, id)
	assert.Equal(t, "b", got.Owner)
	assert.Equal(t, cpB.Checkpoint, got.Checkpoint, "B's checkpoint stands")
}

// TestLeaseTableDelete: a delete on the wrong counter is a conflict naming
// the counter found; on the right one it removes the lease; a missing
// lease deletes fine.
func TestLeaseTableDelete(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	lt := newTestLeaseTable(t, client, "delete")
	const id = "shardId-000000000001"
	require.NoError(t, lt.PutLease(ctx, runnel.Lease{ShardID: id, Counter: 4}, 0))
	err := lt.DeleteLease(ctx, id, 3)
	require.ErrorIs(t, err, runnel.ErrLeaseConflict)
	assert.Contains(t, err.Error(), "expected counter 3, found 4")
	assert.Equal(t, int64(4), leaseOf(t, lt, id).Counter, "nothing was deleted")

	require.NoError(t, lt.DeleteLease(ctx, id, 4))
	leases, err := lt.ListLeases(ctx)
	require.NoError(t, err)
	assert.Empty(t, leases)
	require.NoError(t, lt.DeleteLease(ctx, id, 4), "deleting a lease that is gone")
	require.NoError(t, lt.DeleteLease(ctx, "shardId-000000000009", 0), "deleting a lease that never was")
}

// scanLimiter makes every Scan ask for at most limit items, so that a few
// leases span many pages.
type scanLimiter struct {
	runnelaws.DynamoDBAPI
	limit int32
	scans atomic.Int32
}

func (s *scanLimiter) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	s.scans.Add(1)
	in.Limit = aws.Int32(s.limit)
	return s.DynamoDBAPI.Scan(ctx, in, optFns...)
}

// TestLeaseTableScanPages: ListLeases follows every page of the Scan.
func TestLeaseTableScanPages(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	paged := &scanLimiter{DynamoDBAPI: client, limit: 4}
	lt := newTestLeaseTable(t, paged, "pages")
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("shardId-%012d", i)
		want = append(want, id)
		require.NoError(t, lt.PutLease(ctx, runnel.Lease{ShardID: id, Owner: "w", Counter: int64(i + 1)}, 0))
	}
	leases, err := lt.ListLeases(ctx)
	require.NoError(t, err)
	var got []string
	for _, l := range leases {
		got = append(got, l.ShardID)
	}
	assert.Equal(t, want, got, "every lease, in shard-id order")
	assert.GreaterOrEqual(t, paged.scans.Load(), int32(7), "25 leases in pages of 4")
}

// dropFirstResponse is an HTTP client that sends every request, but
// answers the first call of one operation with a timeout as if the
// response had been lost: the SDK then sends the request again.
type dropFirstResponse struct {
	next     dynamodb.HTTPClient
	op       string // "UpdateItem", …
	armed    atomic.Bool
	attempts atomic.Int32
}

func (d *dropFirstResponse) Do(r *http.Request) (*http.Response, error) {
	resp, err := d.next.Do(r)
	if err != nil || r.Header.Get("X-Amz-Target") != "DynamoDB_20120810."+d.op {
		return resp, err
	}
	d.attempts.Add(1)
	if d.armed.CompareAndSwap(true, false) {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: errLostResponse}
	}
	return resp, nil
}

// errLostResponse is the timeout of a response dropFirstResponse dropped.
var errLostResponse error = lostResponse{}

type lostResponse struct{}

func (lostResponse) Error() string   { return "i/o timeout (the test dropped the response)" }
func (lostResponse) Timeout() bool   { return true }
func (lostResponse) Temporary() bool { return true }

// doubleWrite is a DynamoDBAPI that, the first time, sends an UpdateItem
// twice and answers with the second attempt, as the SDK does after a
// timeout of the first.
type doubleWrite struct {
	runnelaws.DynamoDBAPI
	armed atomic.Bool
}

func (d *doubleWrite) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if d.armed.CompareAndSwap(true, false) {
		if _, err := d.DynamoDBAPI.UpdateItem(ctx, in, optFns...); err != nil {
			return nil, err
		}
	}
	return d.DynamoDBAPI.UpdateItem(ctx, in, optFns...)
}

// TestLeaseTableRetriedWrite: a conditional write whose first attempt
// succeeded and whose response was lost fails its condition when the SDK
// sends it again; the LeaseTable sees the lease it wrote and reports
// success, not a conflict. A retried delete succeeds too.
func TestLeaseTableRetriedWrite(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	const id = "shardId-000000000000"
	at := time.Now()
	lease := func(owner string, counter int64) runnel.Lease {
		return runnel.Lease{
			ShardID: id, Owner: owner, Counter: counter, ParentShardIDs: []string{"b", "a"},
			Checkpoint: runnel.Checkpoint{SequenceNumber: mustSeq(t, bigSeq), SubSequenceNumber: counter},
			Start:      runnel.StartingPosition{Type: runnel.AtTimestamp, Timestamp: at},
		}
	}

	t.Run("SDKRetry", func(t *testing.T) {
		for _, op := range []string{"UpdateItem", "DeleteItem"} {
			drop := &dropFirstResponse{op: op}
			c := dynamodb.New(client.Options(), func(o *dynamodb.Options) { drop.next, o.HTTPClient = o.HTTPClient, drop })
			lt := newTestLeaseTable(t, c, "sdk-retry-"+op)
			require.NoError(t, lt.PutLease(ctx, lease("w", 1), 0))
			drop.armed.Store(true)
			if op == "UpdateItem" {
				next := lease("w", 2)
				require.NoError(t, lt.PutLease(ctx, next, 1), "the retried write succeeded")
				assert.Equal(t, canonical(next), leaseOf(t, lt, id))
				assert.Equal(t, int32(3), drop.attempts.Load(), "the create, then the write sent twice")
			} else {
				require.NoError(t, lt.DeleteLease(ctx, id, 1), "the retried delete succeeded")
				assert.Equal(t, int32(2), drop.attempts.Load(), "the delete was sent twice")
			}
		}
	})

	t.Run("Simulated", func(t *testing.T) {
		twice := &doubleWrite{DynamoDBAPI: client}
		lt := newTestLeaseTable(t, twice, "simulated")
		twice.armed.Store(true)
		require.NoError(t, lt.PutLease(ctx, lease("w", 1), 0), "a create sent twice")
		twice.armed.Store(true)
		require.NoError(t, lt.PutLease(ctx, lease("w", 2), 1), "an update sent twice")
		assert.Equal(t, canonical(lease("w", 2)), leaseOf(t, lt, id))

		// Another writer's lease, even on the same counter, is a conflict.
		other := lease("other", 3)
		err := lt.PutLease(ctx, other, 1)
		require.ErrorIs(t, err, runnel.ErrLeaseConflict)
		assert.Contains(t, err.Error(), "expected counter 1, found 2")
	})
}

// TestLeaseTableDeletedTable: a table deleted under a LeaseTable makes
// every call fail with ErrResourceNotFound, naming the table.
func TestLeaseTableDeletedTable(t *testing.T) {
	t.Parallel()
	client := startDynalite(t)
	ctx := context.Background()
	lt := newTestLeaseTable(t, client, "doomed")
	require.NoError(t, lt.PutLease(ctx, runnel.Lease{ShardID: "shardId-000000000000", Counter: 1}, 0))
	_, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String("doomed")})
	require.NoError(t, err)
	waitGone(t, client, "doomed")

	_, listErr := lt.ListLeases(ctx)
	for name, err := range map[string]error{
		"ListLeases":  listErr,
		"PutLease":    lt.PutLease(ctx, runnel.Lease{ShardID: "shardId-000000000000", Counter: 2}, 1),
		"DeleteLease": lt.DeleteLease(ctx, "shardId-000000000000", 1),
	} {
		require.ErrorIs(t, err, runnel.ErrResourceNotFound, name)
		assert.Contains(t, err.Error(), "lease table doomed", name)
		assert.False(t, runnel.IsRetryable(err), name)
		var e *runnel.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, name, e.Op)
		var notFound *types.ResourceNotFoundException
		assert.ErrorAs(t, err, &notFound, name)
	}
}

// waitGone waits until a deleted table is gone (dynalite deletes at once,
// DynamoDB in a while).
func waitGone(t *testing.T, client *dynamodb.Client, table string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var notFound *types.ResourceNotFoundException
		if errors.As(err, &notFound) {
			return
		}
		require.True(t, time.Now().Before(deadline), "table %s is still there: %v", table, err)
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeDynamoDB answers every call with err, or with the items and the
// description it holds; it counts the calls.
type fakeDynamoDB struct {
	err      error
	items    []map[string]types.AttributeValue // what Scan and GetItem return
	updErr   error                             // UpdateItem's error, when set
	describe *types.TableDescription
	calls    atomic.Int32
}

func (f *fakeDynamoDB) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	out := &dynamodb.GetItemOutput{}
	if len(f.items) > 0 {
		out.Item = f.items[0]
	}
	return out, nil
}

func (f *fakeDynamoDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	f.calls.Add(1)
	if f.updErr != nil {
		return nil, f.updErr
	}
	return &dynamodb.UpdateItemOutput{}, f.err
}

func (f *fakeDynamoDB) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	f.calls.Add(1)
	return &dynamodb.DeleteItemOutput{}, f.err
}

func (f *fakeDynamoDB) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &dynamodb.ScanOutput{Items: f.items}, nil
}

func (f *fakeDynamoDB) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if f.describe != nil {
		return &dynamodb.DescribeTableOutput{Table: f.describe}, nil
	}
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName:            in.TableName,
		TableStatus:          types.TableStatusActive,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("leaseKey"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("leaseKey"), AttributeType: types.ScalarAttributeTypeS}},
	}}, nil
}

func (f *fakeDynamoDB) CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	return nil, errors.New("fakeDynamoDB creates no table")
}

// creatingTable is a table that is CREATING for the first describes.
type creatingTable struct {
	fakeDynamoDB
	creating  int // describes that still say CREATING
	created   atomic.Bool
	describes atomic.Int32
}

func (c *creatingTable) CreateTable(_ context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	c.created.Store(true)
	return &dynamodb.CreateTableOutput{TableDescription: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusCreating}}, nil
}

func (c *creatingTable) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if !c.created.Load() {
		return nil, &smithy.OperationError{Err: &types.ResourceNotFoundException{Message: aws.String("no table")}}
	}
	if int(c.describes.Add(1)) <= c.creating {
		return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusCreating}}, nil
	}
	return c.fakeDynamoDB.DescribeTable(ctx, in, optFns...)
}

// TestLeaseTableWaitsForCreation: NewLeaseTable waits while the table it
// created is CREATING, as long as its context allows.
func TestLeaseTableWaitsForCreation(t *testing.T) {
	t.Parallel()
	api := &creatingTable{creating: 3}
	_, err := runnelaws.NewLeaseTable(context.Background(), api, "slow", runnelaws.WithCreateTable())
	require.NoError(t, err)
	assert.Equal(t, int32(4), api.describes.Load(), "described until ACTIVE")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = runnelaws.NewLeaseTable(ctx, &creatingTable{creating: 1 << 30}, "never", runnelaws.WithCreateTable())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "waiting for lease table never to become ACTIVE")
}

// TestLeaseTableValidation: bad arguments fail before any call to
// DynamoDB, with an ErrInvalidArgument that names the value.
func TestLeaseTableValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("NewLeaseTable", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			api   runnelaws.DynamoDBAPI
			table string
			opts  []runnelaws.LeaseTableOption
			msg   string
		}{
			{"NilAPI", nil, "leases", nil, "client is nil"},
			{"NilClient", (*dynamodb.Client)(nil), "leases", nil, "client is nil"},
			{"Empty", &fakeDynamoDB{}, "", nil, `table name "" has 0 characters`},
			{"Short", &fakeDynamoDB{}, "ab", nil, `table name "ab" has 2 characters`},
			{"Long", &fakeDynamoDB{}, strings.Repeat("x", 256), nil, "has 256 characters"},
			{"BadChar", &fakeDynamoDB{}, "my leases", nil, `table name "my leases" has the character ' '`},
			{"NonASCII", &fakeDynamoDB{}, "lëases", nil, `table name "lëases" has the character`},
			{"NilOption", &fakeDynamoDB{}, "leases", []runnelaws.LeaseTableOption{nil}, "option 0 is nil"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := runnelaws.NewLeaseTable(ctx, tc.api, tc.table, tc.opts...)
				require.ErrorIs(t, err, runnel.ErrInvalidArgument)
				assert.Contains(t, err.Error(), tc.msg)
				var e *runnel.Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, "NewLeaseTable", e.Op)
			})
		}
		lt, err := runnelaws.NewLeaseTable(ctx, &fakeDynamoDB{}, strings.Repeat("a.b-c_D9", 31)+"xyzw123")
		require.NoError(t, err, "255 characters of every kind allowed")
		assert.Len(t, lt.Name(), 255)
	})

	seq := mustSeq(t, "12")
	for _, tc := range []struct {
		name   string
		lease  runnel.Lease
		expect int64
		msg    string
	}{
		{"NoShardID", runnel.Lease{Counter: 1}, 0, "lease has no ShardID"},
		{"NegativeExpect", runnel.Lease{ShardID: "s-1", Counter: 1}, -1, `expected counter -1 of lease "s-1" is negative`},
		{"CounterNotAbove", runnel.Lease{ShardID: "s-1", Counter: 3}, 3, `counter 3 of lease "s-1" must be greater than the expected 3`},
		{"CreateWithZero", runnel.Lease{ShardID: "s-1"}, 0, "counter 0"},
		{"ShardEndWithSeq", runnel.Lease{ShardID: "s-1", Counter: 1, Checkpoint: runnel.Checkpoint{ShardEnd: true, SequenceNumber: seq}}, 0, "SHARD_END and also at 12/0"},
		{"NegativeSub", runnel.Lease{ShardID: "s-1", Counter: 1, Checkpoint: runnel.Checkpoint{SequenceNumber: seq, SubSequenceNumber: -2}}, 0, "negative sub-sequence number -2"},
		{"SubWithoutSeq", runnel.Lease{ShardID: "s-1", Counter: 1, Checkpoint: runnel.Checkpoint{SubSequenceNumber: 2}}, 0, "sub-sequence number 2 but no sequence number"},
		{"NegativeSwitches", runnel.Lease{ShardID: "s-1", Counter: 1, OwnerSwitchesSinceCheckpoint: -1}, 0, "negative owner switch count -1"},
		{"RangeBackwards", runnel.Lease{ShardID: "s-1", Counter: 1, HashKeyRange: runnel.HashKeyRange{StartingHashKey: mustHashKey(t, "5"), EndingHashKey: mustHashKey(t, "4")}}, 0, "starts at 5, after its end 4"},
		{"BadUTF8Owner", runnel.Lease{ShardID: "s-1", Owner: "w\xff", Counter: 1}, 0, `owner "w\xff" is not valid UTF-8`},
		{"BadUTF8ShardID", runnel.Lease{ShardID: "s\xfe", Counter: 1}, 0, "is not valid UTF-8"},
		{"EmptyParent", runnel.Lease{ShardID: "s-1", Counter: 1, ParentShardIDs: []string{"p", ""}}, 0, "parent shard ids include an empty id"},
		{"DuplicateChild", runnel.Lease{ShardID: "s-1", Counter: 1, ChildShardIDs: []string{"c", "c"}}, 0, `child shard ids include "c" twice`},
		{"MultiStreamKey", runnel.Lease{ShardID: "123456789012:orders:1700000000:shardId-000000000000", Counter: 1}, 0, "has a ':', as the KCL's multi-stream lease keys do"},
		{"TimestampTooLate", runnel.Lease{ShardID: "s-1", Counter: 1, Start: runnel.StartingPosition{Type: runnel.AtTimestamp, Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}, 0, "start timestamp 10000-01-01"},
	} {
		t.Run("PutLease/"+tc.name, func(t *testing.T) {
			api := &fakeDynamoDB{}
			lt, err := runnelaws.NewLeaseTable(ctx, api, "leases")
			require.NoError(t, err)
			err = lt.PutLease(ctx, tc.lease, tc.expect)
			require.ErrorIs(t, err, runnel.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Zero(t, api.calls.Load(), "nothing was sent")
		})
	}
	for _, tc := range []struct {
		name, id string
		expect   int64
		msg      string
	}{
		{"Empty", "", 0, "the shard id is empty"},
		{"BadUTF8", "s\xff", 0, "is not valid UTF-8"},
		{"NegativeExpect", "s-1", -3, `expected counter -3 of lease "s-1" is negative`},
		{"MultiStreamKey", "123456789012:orders:1700000000:shardId-000000000000", 1, "multi-stream lease keys"},
	} {
		t.Run("DeleteLease/"+tc.name, func(t *testing.T) {
			api := &fakeDynamoDB{}
			lt, err := runnelaws.NewLeaseTable(ctx, api, "leases")
			require.NoError(t, err)
			err = lt.DeleteLease(ctx, tc.id, tc.expect)
			require.ErrorIs(t, err, runnel.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Zero(t, api.calls.Load())
		})
	}
}

// TestLeaseTableErrors: DynamoDB's failures map to runnel's sentinels,
// retryable where retrying helps, with the SDK's error still wrapped.
func TestLeaseTableErrors(t *testing.T) {
	t.Parallel()
	apiErr := func(code string) error {
		return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "Scan", Err: &smithy.GenericAPIError{Code: code, Message: "test"}}
	}
	for _, tc := range []struct {
		name      string
		err       error
		kind      error
		retryable bool
	}{
		{"ProvisionedThroughput", &smithy.OperationError{Err: &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}}, runnel.ErrProvisionedThroughputExceeded, true},
		{"Throttling", apiErr("ThrottlingException"), runnel.ErrLimitExceeded, true},
		{"RequestLimit", &smithy.OperationError{Err: &types.RequestLimitExceeded{Message: aws.String("account")}}, runnel.ErrLimitExceeded, true},
		{"LimitExceeded", apiErr("LimitExceededException"), runnel.ErrLimitExceeded, true},
		{"InternalServerError", &smithy.OperationError{Err: &types.InternalServerError{Message: aws.String("oops")}}, runnel.ErrInternalFailure, true},
		{"Unknown", apiErr("SomethingNewException"), runnel.ErrInternalFailure, true},
		{"Network", &smithy.OperationError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, runnel.ErrInternalFailure, true},
		{"NotFound", &smithy.OperationError{Err: &types.ResourceNotFoundException{Message: aws.String("gone")}}, runnel.ErrResourceNotFound, false},
		{"Validation", apiErr("ValidationException"), runnel.ErrValidation, false},
		{"AccessDenied", apiErr("AccessDeniedException"), runnel.ErrAccessDenied, false},
		{"ExpiredToken", apiErr("ExpiredTokenException"), runnel.ErrAccessDenied, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt, err := runnelaws.NewLeaseTable(context.Background(), &fakeDynamoDB{err: tc.err}, "leases")
			require.NoError(t, err)
			ctx := context.Background()
			_, listErr := lt.ListLeases(ctx)
			for op, err := range map[string]error{
				"ListLeases":  listErr,
				"PutLease":    lt.PutLease(ctx, runnel.Lease{ShardID: "shardId-000000000001", Counter: 2}, 1),
				"DeleteLease": lt.DeleteLease(ctx, "shardId-000000000001", 1),
			} {
				require.ErrorIs(t, err, tc.kind, op)
				assert.Equal(t, tc.retryable, runnel.IsRetryable(err), op)
				assert.ErrorIs(t, err, tc.err, "%s: the SDK's error stays wrapped", op)
				assert.Contains(t, err.Error(), "lease table leases", op)
				if op != "ListLeases" {
					assert.Contains(t, err.Error(), "shardId-000000000001", op)
				}
			}
		})
	}

	t.Run("ContextEnded", func(t *testing.T) {
		lt, err := runnelaws.NewLeaseTable(context.Background(), &fakeDynamoDB{err: &smithy.OperationError{Err: context.Canceled}}, "leases")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = lt.ListLeases(ctx)
		require.ErrorIs(t, err, context.Canceled)
		var e *runnel.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, context.Canceled, e.Kind)
		assert.False(t, runnel.IsRetryable(err))
	})

	t.Run("ConflictThenReadFails", func(t *testing.T) {
		// The condition failed, and the read that tells a retried success
		// from a conflict failed too: not a conflict, since the write may
		// have succeeded.
		api := &fakeDynamoDB{
			updErr: &smithy.OperationError{Err: &types.ConditionalCheckFailedException{Message: aws.String("no")}},
			err:    &smithy.OperationError{Err: &types.InternalServerError{Message: aws.String("oops")}},
		}
		lt, err := runnelaws.NewLeaseTable(context.Background(), api, "leases")
		require.NoError(t, err)
		err = lt.PutLease(context.Background(), runnel.Lease{ShardID: "shardId-000000000001", Counter: 2}, 1)
		require.ErrorIs(t, err, runnel.ErrInternalFailure)
		assert.NotErrorIs(t, err, runnel.ErrLeaseConflict)
		assert.True(t, runnel.IsRetryable(err))
	})

	t.Run("TableBeingDeleted", func(t *testing.T) {
		api := &fakeDynamoDB{describe: &types.TableDescription{TableStatus: types.TableStatusDeleting}}
		_, err := runnelaws.NewLeaseTable(context.Background(), api, "leases")
		require.ErrorIs(t, err, runnel.ErrResourceInUse)
		assert.Contains(t, err.Error(), "lease table leases is being deleted")
	})
}

// TestLeaseTableCorruptItems: an item that does not decode is an
// ErrCorrupt naming the table, the item and the attribute, never a panic.
func TestLeaseTableCorruptItems(t *testing.T) {
	t.Parallel()
	good := func(kv ...any) map[string]types.AttributeValue {
		item := map[string]types.AttributeValue{
			"leaseKey": attrS("shardId-000000000001"), "leaseCounter": attrN("3"),
			"checkpoint": attrS("TRIM_HORIZON"), "checkpointSubSequenceNumber": attrN("0"),
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(item, kv[i].(string))
			} else {
				item[kv[i].(string)] = kv[i+1].(types.AttributeValue)
			}
		}
		return item
	}
	for _, tc := range []struct {
		name string
		item map[string]types.AttributeValue
		msg  string
	}{
		{"NoKey", good("leaseKey", nil), "an item: attribute leaseKey is missing"},
		{"KeyNotS", good("leaseKey", attrN("1")), "attribute leaseKey is of type N, not S"},
		{"NilKey", good("leaseKey", (*types.AttributeValueMemberS)(nil)), "attribute leaseKey is a nil S, not S"},
		{"NoCounter", good("leaseCounter", nil), `item "shardId-000000000001": attribute leaseCounter is missing`},
		{"CounterNotN", good("leaseCounter", attrS("3")), "attribute leaseCounter is of type S, not N"},
		{"CounterFraction", good("leaseCounter", attrN("3.5")), `attribute leaseCounter "3.5" is not an integer`},
		{"CounterHuge", good("leaseCounter", attrN("99999999999999999999")), "not an integer of 64 bits"},
		{"CounterNegative", good("leaseCounter", attrN("-1")), "attribute leaseCounter -1 is negative"},
		{"OwnerNotS", good("leaseOwner", attrSS("a")), "attribute leaseOwner is of type SS, not S"},
		{"BadCheckpoint", good("checkpoint", attrS("12x")), `attribute checkpoint "12x" is neither a sequence number`},
		{"EmptyCheckpoint", good("checkpoint", attrS("")), "attribute checkpoint is empty"},
		{"SubNegative", good("checkpointSubSequenceNumber", attrN("-4")), "checkpointSubSequenceNumber -4 is negative"},
		{"SubWithSentinel", good("checkpointSubSequenceNumber", attrN("4")), "sub-sequence number 4 but no sequence number"},
		{"ShardEndWithSub", good("checkpoint", attrS("SHARD_END"), "checkpointSubSequenceNumber", attrN("1")), "SHARD_END and also at"},
		{"SwitchesNegative", good("ownerSwitchesSinceCheckpoint", attrN("-1")), "ownerSwitchesSinceCheckpoint -1 is negative"},
		{"ParentsNotSS", good("parentShardId", attrS("shardId-000000000000")), "attribute parentShardId is of type S, not SS"},
		{"ChildrenList", good("childShardIds", &types.AttributeValueMemberL{}), "attribute childShardIds is of type L, not SS"},
		{"EmptyParentID", good("parentShardId", attrSS("")), "parentShardId holds an empty shard id"},
		{"OneHashKey", good("startingHashKey", attrS("0")), "startingHashKey and endingHashKey must be both present"},
		{"BadHashKey", good("startingHashKey", attrS("-1"), "endingHashKey", attrS("5")), `startingHashKey "-1" is not a hash key`},
		{"HashKeyTooBig", good("startingHashKey", attrS("0"), "endingHashKey", attrS("340282366920938463463374607431768211456")), "endingHashKey"},
		{"RangeBackwards", good("startingHashKey", attrS("9"), "endingHashKey", attrS("5")), "starts at 9, after its end 5"},
		{"StartNotM", good("runnelStart", attrS("TRIM_HORIZON")), "attribute runnelStart is of type S, not M"},
		{"StartTypeNotS", good("runnelStart", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"type": attrN("1")}}), "attribute runnelStart.type is of type N, not S"},
		{"StartBadSeq", good("runnelStart", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"sequenceNumber": attrS("01")}}), `runnelStart.sequenceNumber "01" is not a sequence number`},
		{"StartBadTime", good("runnelStart", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"timestamp": attrS("yesterday")}}), `runnelStart.timestamp "yesterday" is not an RFC 3339 time`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt, err := runnelaws.NewLeaseTable(context.Background(), &fakeDynamoDB{items: []map[string]types.AttributeValue{tc.item}}, "leases")
			require.NoError(t, err)
			_, err = lt.ListLeases(context.Background())
			require.ErrorIs(t, err, runnel.ErrCorrupt)
			assert.Contains(t, err.Error(), "lease table leases")
			assert.Contains(t, err.Error(), tc.msg)
			assert.False(t, runnel.IsRetryable(err))
		})
	}
}

// TestLeaseTableMultiStream: a KCL multi-stream table is refused, not
// read, so that a Consumer cannot take its leases for shards that have
// gone and delete them.
func TestLeaseTableMultiStream(t *testing.T) {
	t.Parallel()
	item := map[string]types.AttributeValue{
		"leaseKey": attrS("123456789012:orders:1700000000:shardId-000000000000"), "leaseCounter": attrN("3"),
		"checkpoint": attrS("TRIM_HORIZON"), "streamName": attrS("123456789012:orders:1700000000"), "shardId": attrS("shardId-000000000000"),
	}
	lt, err := runnelaws.NewLeaseTable(context.Background(), &fakeDynamoDB{items: []map[string]types.AttributeValue{item}}, "multi")
	require.NoError(t, err)
	_, err = lt.ListLeases(context.Background())
	require.ErrorIs(t, err, runnel.ErrInvalidArgument)
	assert.Contains(t, err.Error(), `lease table multi holds the lease "123456789012:orders:1700000000:shardId-000000000000"`)
	assert.Contains(t, err.Error(), "single-stream lease tables only")
}

// TestLeaseTableConsumerFailover: two workers of a runnel consumer group
// share 4 shards of an in-process stream through a LeaseTable over
// dynalite. One loses DynamoDB (as a crashed or partitioned worker); the
// other takes its leases over once they expire. A third joins and takes
// its share, then the second closes and hands its leases to the third.
// Every record is delivered.
func TestLeaseTableConsumerFailover(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // runs last
	client := startDynalite(t)
	ctx := context.Background()
	cluster := runnel.NewCluster()
	t.Cleanup(func() { cluster.Close() })
	s, err := cluster.CreateStream(ctx, "orders", runnel.WithShardCount(4), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)

	cutA := &severable{}
	clientA := dynamodb.New(client.Options(), func(o *dynamodb.Options) { cutA.next, o.HTTPClient = o.HTTPClient, cutA })
	tableA := newTestLeaseTable(t, clientA, "orders-app")
	tableB := newTestLeaseTable(t, client, "orders-app")

	var mu sync.Mutex
	seen := map[string]int{} // "key:n" → deliveries
	processors := func(string) runnel.RecordProcessor {
		return runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
			mu.Lock()
			for _, r := range in.Records {
				seen[string(r.Data)]++
			}
			mu.Unlock()
			return in.Checkpointer.Checkpoint(ctx)
		})
	}
	var workers []*runnel.Consumer
	start := func(id string, table *runnelaws.LeaseTable) *runnel.Consumer {
		c, err := runnel.NewConsumer(s, "orders-app", processors,
			runnel.WithLeaseStore(table), runnel.WithWorkerID(id),
			runnel.WithFailoverTime(300*time.Millisecond), runnel.WithShardSyncInterval(time.Second),
			runnel.WithShutdownTimeout(2*time.Second))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		workers = append(workers, c)
		return c
	}
	a, b := start("a", tableA), start("b", tableB)

	next := map[string]int{}
	put := func(n int) {
		for i := range n {
			k := fmt.Sprintf("k%d", i%20)
			_, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: k, Data: fmt.Appendf(nil, "%s:%d", k, next[k])})
			require.NoError(t, err)
			next[k]++
		}
	}
	all := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for k, n := range next {
			for i := range n {
				if seen[fmt.Sprintf("%s:%d", k, i)] == 0 {
					return false
				}
			}
		}
		return true
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				var held []string
				for _, w := range workers {
					held = append(held, fmt.Sprintf("%s holds %d", w.WorkerID(), w.Stats().LeasesHeld))
				}
				t.Fatalf("waiting for %s: %s", what, strings.Join(held, ", "))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	put(200)
	waitUntil("both workers to hold two leases and every record", func() bool {
		return a.Stats().LeasesHeld == 2 && b.Stats().LeasesHeld == 2 && all()
	})

	cutA.cut.Store(true)
	put(200)
	waitUntil("b to hold every lease and every record", func() bool { return b.Stats().LeasesHeld == 4 && all() })
	for _, l := range leasesNow(t, tableB) {
		assert.Equal(t, "b", l.Owner, l.ShardID)
	}
	assert.Zero(t, a.Stats().LeasesHeld, "the cut-off worker gave its leases up")
	require.NoError(t, a.Close())

	// A new worker joins and takes its share; then b leaves, handing its
	// leases off.
	c := start("c", newTestLeaseTable(t, dynamodb.New(client.Options()), "orders-app"))
	waitUntil("c to take its share", func() bool { return b.Stats().LeasesHeld == 2 && c.Stats().LeasesHeld == 2 })
	put(100)
	require.NoError(t, b.Close())
	waitUntil("c to hold every lease and every record", func() bool { return c.Stats().LeasesHeld == 4 && all() })
	require.NoError(t, c.Close())

	mu.Lock()
	defer mu.Unlock()
	total := 0
	for k, n := range next {
		total += n
		for i := range n {
			assert.Positive(t, seen[fmt.Sprintf("%s:%d", k, i)], "record %s:%d was lost", k, i)
		}
	}
	assert.Equal(t, 500, total)
	assert.Len(t, seen, 500, "nothing but the records written")
	for _, l := range leasesNow(t, tableB) {
		assert.Empty(t, l.Owner, "%s: released on Close", l.ShardID)
		assert.False(t, l.Checkpoint.IsZero(), "%s: checkpointed", l.ShardID)
	}
}

func leasesNow(t *testing.T, lt *runnelaws.LeaseTable) []runnel.Lease {
	t.Helper()
	leases, err := lt.ListLeases(context.Background())
	require.NoError(t, err)
	require.Len(t, leases, 4)
	return leases
}
