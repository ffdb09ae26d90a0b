package runnel

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEncryption checks StartEncryption and StopEncryption: records are
// marked with the encryption in effect when they arrived, the key must
// match to stop, and KMS errors can be injected.
func TestEncryption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		ctx := context.Background()
		before := putString(t, s, "k", "plain")
		time.Sleep(time.Second)
		require.NoError(t, s.StartEncryption(ctx, "alias/aws/kinesis"))
		assert.Equal(t, EncryptionKMS, s.Encryption())
		set, err := s.Settings(ctx)
		require.NoError(t, err)
		assert.Equal(t, "alias/aws/kinesis", set.KeyID)
		time.Sleep(time.Second)
		putString(t, s, "k", "secret")
		recs := readAll(t, s, shard0, StartingPosition{Type: TrimHorizon})
		require.Len(t, recs, 2)
		assert.Equal(t, before.SequenceNumber, recs[0].SequenceNumber)
		assert.Equal(t, EncryptionNone, s.EncryptionAt(recs[0].ApproximateArrivalTimestamp))
		assert.Equal(t, EncryptionKMS, s.EncryptionAt(recs[1].ApproximateArrivalTimestamp))

		assert.ErrorIs(t, s.StopEncryption(ctx, "alias/other"), ErrInvalidArgument, "another key")
		assert.ErrorIs(t, s.StartEncryption(ctx, ""), ErrValidation)
		require.NoError(t, s.StopEncryption(ctx, "alias/aws/kinesis"))
		assert.Equal(t, EncryptionNone, s.Encryption())
		assert.ErrorIs(t, s.StopEncryption(ctx, "alias/aws/kinesis"), ErrInvalidArgument, "not encrypted")

		for range 100 { // the history of changes stays as long as retention needs
			require.NoError(t, s.StartEncryption(ctx, "alias/aws/kinesis"))
			require.NoError(t, s.StopEncryption(ctx, "alias/aws/kinesis"))
			time.Sleep(time.Hour)
		}
		assert.LessOrEqual(t, len(*s.encryption.Load()), 2*25+2, "a day's changes and the one before")

		remove, err := c.InjectFault(Fault{Op: OpStartStreamEncryption, Err: ErrKMSNotFound})
		require.NoError(t, err)
		assert.ErrorIs(t, s.StartEncryption(ctx, "alias/missing"), ErrKMSNotFound)
		remove()
		assert.NoError(t, s.StartEncryption(ctx, "alias/found"))
	})
}

// TestEnhancedMonitoring checks that metrics are enabled and disabled as
// sets, ALL stands for every metric, and unknown names are refused.
func TestEnhancedMonitoring(t *testing.T) {
	_, s := newTestStream(t)
	ctx := context.Background()
	out, err := s.EnableEnhancedMonitoring(ctx, []string{"IncomingRecords", "IncomingBytes"})
	require.NoError(t, err)
	assert.Empty(t, out.Current)
	assert.Equal(t, []string{"IncomingBytes", "IncomingRecords"}, out.Desired)
	out, err = s.DisableEnhancedMonitoring(ctx, []string{"IncomingBytes"})
	require.NoError(t, err)
	assert.Equal(t, []string{"IncomingBytes", "IncomingRecords"}, out.Current)
	assert.Equal(t, []string{"IncomingRecords"}, out.Desired)
	out, err = s.EnableEnhancedMonitoring(ctx, []string{"ALL"})
	require.NoError(t, err)
	assert.Equal(t, shardLevelMetrics, out.Desired)
	out, err = s.DisableEnhancedMonitoring(ctx, []string{"ALL"})
	require.NoError(t, err)
	assert.Empty(t, out.Desired)
	set, err := s.Settings(ctx)
	require.NoError(t, err)
	assert.Empty(t, set.ShardLevelMetrics)

	_, err = s.EnableEnhancedMonitoring(ctx, []string{"Nonsense"})
	assert.ErrorIs(t, err, ErrValidation)
	assert.ErrorContains(t, err, "Nonsense")
	_, err = s.EnableEnhancedMonitoring(ctx, nil)
	assert.ErrorIs(t, err, ErrValidation)
}

// TestStreamMode checks the capacity mode: ON_DEMAND streams refuse
// resharding, warm throughput is theirs only, and a stream switches at
// most twice in 24 hours.
func TestStreamMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(2))
		ctx := context.Background()
		assert.ErrorIs(t, s.UpdateWarmThroughput(ctx, 10), ErrValidation, "a PROVISIONED stream has no warm throughput")
		require.NoError(t, s.UpdateStreamMode(ctx, ModeOnDemand, 20))
		set, err := s.Settings(ctx)
		require.NoError(t, err)
		assert.Equal(t, ModeOnDemand, set.Mode)
		assert.Equal(t, 20, set.WarmThroughputMiBps)
		require.NoError(t, s.UpdateWarmThroughput(ctx, 30))
		assert.ErrorIs(t, s.UpdateWarmThroughput(ctx, -1), ErrValidation)
		_, err = s.UpdateShardCount(ctx, 4)
		assert.ErrorIs(t, err, ErrInvalidArgument, "ON_DEMAND streams are not resharded by request")
		assert.ErrorIs(t, s.UpdateStreamMode(ctx, ModeOnDemand, 0), ErrInvalidArgument, "already ON_DEMAND")
		assert.ErrorIs(t, s.UpdateStreamMode(ctx, "SOMETIMES", 0), ErrValidation)

		require.NoError(t, s.UpdateStreamMode(ctx, ModeProvisioned, 0))
		err = s.UpdateStreamMode(ctx, ModeOnDemand, 0)
		assert.ErrorIs(t, err, ErrLimitExceeded, "a third switch within 24 hours")
		time.Sleep(24 * time.Hour)
		assert.NoError(t, s.UpdateStreamMode(ctx, ModeOnDemand, 0))

		c := NewCluster()
		defer c.Close()
		_, err = c.CreateStream(ctx, "od", WithStreamMode(ModeOnDemand), WithWarmThroughput(5))
		assert.NoError(t, err)
		_, err = c.CreateStream(ctx, "bad", WithWarmThroughput(5))
		assert.ErrorIs(t, err, ErrValidation, "warm throughput on a PROVISIONED stream")
	})
}

// TestAutoDistribution checks that an AUTO stream spreads the records of
// one partition key evenly over its shards.
func TestAutoDistribution(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(4), WithLimits(Unlimited()), WithStreamMode(ModeOnDemand))
	ctx := context.Background()
	require.NoError(t, s.UpdateRecordDistribution(ctx, DistributionAuto))
	assert.ErrorIs(t, s.UpdateStreamMode(ctx, ModeProvisioned, 0), ErrInvalidArgument, "AUTO is for ON_DEMAND streams")
	_, err := c.CreateStream(ctx, "provisioned-auto", WithRecordDistribution(DistributionAuto))
	assert.ErrorIs(t, err, ErrInvalidArgument, "AUTO on a PROVISIONED stream")
	assert.ErrorIs(t, s.UpdateRecordDistribution(ctx, "RANDOM"), ErrValidation)
	counts := map[string]int{}
	for i := range 400 {
		out := putString(t, s, "same-key", fmt.Sprint(i))
		counts[out.ShardID]++
	}
	entries := make([]PutRecordsEntry, 400)
	for i := range entries {
		entries[i] = PutRecordsEntry{PartitionKey: "same-key", Data: []byte("x")}
	}
	out, err := s.PutRecords(ctx, PutRecordsInput{Records: entries})
	require.NoError(t, err)
	assert.Equal(t, EncryptionNone, out.EncryptionType)
	for _, r := range out.Records {
		counts[r.ShardID]++
	}
	require.Len(t, counts, 4, "every shard gets records")
	for shard, n := range counts {
		assert.InDelta(t, 200, n, 40, "shard %s", shard)
	}
	require.NoError(t, s.UpdateRecordDistribution(ctx, DistributionUserPartitionKey))
	first := putString(t, s, "same-key", "a").ShardID
	assert.Equal(t, first, putString(t, s, "same-key", "b").ShardID, "partition keys route again")
}

// TestUpdateMaxRecordSize checks that a stream takes records up to its new
// maximum size, within Kinesis's 1 to 10 MiB.
func TestUpdateMaxRecordSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { testUpdateMaxRecordSize(t) })
}

func testUpdateMaxRecordSize(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	big := make([]byte, 2<<20)
	_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: big})
	require.ErrorIs(t, err, ErrValidation)
	require.NoError(t, s.UpdateMaxRecordSize(ctx, 4<<20))
	time.Sleep(2 * time.Second) // the write bucket, now of 4 MiB, fills at 1 MiB/s
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: big})
	require.NoError(t, err, "a 2 MiB record fits now, the write bucket too")
	_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: make([]byte, 4<<20+1)})
	require.ErrorIs(t, err, ErrValidation, "over the new limit")
	sum, err := s.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4<<20, sum.MaxRecordSize)
	assert.Equal(t, 5<<20, sum.MaxPutRecordsSize)
	for _, bad := range []int{0, 1<<20 - 1, 10<<20 + 1} {
		assert.ErrorIs(t, s.UpdateMaxRecordSize(ctx, bad), ErrValidation, "%d bytes", bad)
	}
}

// TestResourcePolicies checks that policies are stored and returned for
// streams and consumers, and refused when they are not JSON objects.
func TestResourcePolicies(t *testing.T) {
	c, s := newTestStream(t)
	ctx := context.Background()
	policy := `{"Version":"2012-10-17","Statement":[]}`
	got, err := c.ResourcePolicy(ctx, s.ARN())
	require.NoError(t, err)
	assert.Equal(t, "{}", got, "none yet")
	require.NoError(t, c.PutResourcePolicy(ctx, s.ARN(), policy))
	got, err = c.ResourcePolicy(ctx, s.ARN())
	require.NoError(t, err)
	assert.Equal(t, policy, got)

	cons, err := s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: "app"})
	require.NoError(t, err)
	require.NoError(t, c.PutResourcePolicy(ctx, cons.ConsumerARN, `{"c":1}`))
	got, err = c.ResourcePolicy(ctx, cons.ConsumerARN)
	require.NoError(t, err)
	assert.Equal(t, `{"c":1}`, got)
	got, err = c.ResourcePolicy(ctx, s.ARN())
	require.NoError(t, err)
	assert.Equal(t, policy, got, "the stream's own policy is apart")

	require.NoError(t, c.DeleteResourcePolicy(ctx, s.ARN()))
	assert.ErrorIs(t, c.DeleteResourcePolicy(ctx, s.ARN()), ErrResourceNotFound)
	assert.ErrorIs(t, c.PutResourcePolicy(ctx, s.ARN(), "not json"), ErrInvalidArgument)
	assert.ErrorIs(t, c.PutResourcePolicy(ctx, s.ARN(), ""), ErrValidation)
	assert.ErrorIs(t, c.PutResourcePolicy(ctx, "arn:aws:s3:::bucket", policy), ErrValidation)
	assert.ErrorIs(t, c.PutResourcePolicy(ctx, "arn:aws:kinesis:us-east-1:000000000000:stream/none", policy), ErrResourceNotFound)
	assert.ErrorIs(t, c.PutResourcePolicy(ctx, "arn:aws:kinesis:eu-west-1:000000000000:stream/test", policy), ErrResourceNotFound, "another region's stream")
	assert.ErrorIs(t, c.PutResourcePolicy(ctx, cons.ConsumerARN+"9", policy), ErrResourceNotFound, "another registration")
}

// FuzzCheckPolicy fuzzes the resource-policy validator: it never panics,
// and takes exactly the JSON objects within the size bound.
func FuzzCheckPolicy(f *testing.F) {
	for _, seed := range []string{"{}", `{"a":[1,2]}`, "[]", "null", "", "{", `{"a":1}x`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, policy string) {
		err := checkPolicy("Fuzz", policy)
		if err == nil && (len(policy) == 0 || len(policy) > maxPolicyLen) {
			t.Fatalf("a policy of %d bytes was taken", len(policy))
		}
	})
}
