package server_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSDKResharding splits, merges and rescales a stream through the SDK,
// and checks the lineage DescribeStream and ListShards show.
func TestSDKResharding(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	name := aws.String("s")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(2)})
	require.NoError(t, err)
	d, err := k.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: name})
	require.NoError(t, err)
	shards := d.StreamDescription.Shards
	require.Len(t, shards, 2)
	assert.False(t, aws.ToBool(d.StreamDescription.HasMoreShards))

	_, err = k.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: name, ShardToSplit: shards[0].ShardId, NewStartingHashKey: aws.String("1000")})
	require.NoError(t, err)
	_, err = k.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: name, ShardToMerge: aws.String("shardId-000000000003"), AdjacentShardToMerge: shards[1].ShardId})
	require.NoError(t, err)
	ls, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name, ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	require.NoError(t, err)
	require.Len(t, ls.Shards, 2)
	merged := ls.Shards[1]
	assert.Equal(t, "shardId-000000000003", aws.ToString(merged.ParentShardId))
	assert.Equal(t, "shardId-000000000001", aws.ToString(merged.AdjacentParentShardId))

	up, err := k.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: name, TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling})
	require.NoError(t, err)
	assert.EqualValues(t, 2, aws.ToInt32(up.CurrentShardCount))
	assert.EqualValues(t, 4, aws.ToInt32(up.TargetShardCount))
	_, err = k.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: name, TargetShardCount: aws.Int32(100), ScalingType: types.ScalingTypeUniformScaling})
	var limit *types.LimitExceededException
	require.ErrorAs(t, err, &limit, "more than double")

	lim, err := k.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	require.NoError(t, err)
	assert.EqualValues(t, 4, aws.ToInt32(lim.OpenShardCount))
	assert.EqualValues(t, 20_000, aws.ToInt32(lim.ShardLimit))
}

// TestSDKRetention changes a stream's retention within Kinesis's bounds.
func TestSDKRetention(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	name := aws.String("s")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = k.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(48)})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	assert.EqualValues(t, 48, aws.ToInt32(d.StreamDescriptionSummary.RetentionPeriodHours))
	_, err = k.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(12)})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid)
	assert.Contains(t, invalid.ErrorMessage(), "12 hours")
	_, err = k.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(72)})
	require.ErrorAs(t, err, &invalid, "above the current period")
}

// TestSDKStreamConsumers registers, describes (by name and by ARN), lists
// with pages and deregisters consumers through the SDK, and DeleteStream
// then needs EnforceConsumerDeletion.
func TestSDKStreamConsumers(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	arn := d.StreamDescriptionSummary.StreamARN
	var regs []*types.Consumer
	for _, name := range []string{"a", "b", "c"} {
		r, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String(name)})
		require.NoError(t, err)
		assert.Equal(t, types.ConsumerStatusActive, r.Consumer.ConsumerStatus)
		assert.Contains(t, aws.ToString(r.Consumer.ConsumerARN), aws.ToString(arn)+"/consumer/"+name+":")
		regs = append(regs, r.Consumer)
	}
	byARN, err := k.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: regs[1].ConsumerARN})
	require.NoError(t, err)
	assert.Equal(t, "b", aws.ToString(byARN.ConsumerDescription.ConsumerName))
	assert.Equal(t, aws.ToString(arn), aws.ToString(byARN.ConsumerDescription.StreamARN))
	byName, err := k.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("c")})
	require.NoError(t, err)
	assert.Equal(t, aws.ToString(regs[2].ConsumerARN), aws.ToString(byName.ConsumerDescription.ConsumerARN))

	var names []string
	in := &kinesis.ListStreamConsumersInput{StreamARN: arn, MaxResults: aws.Int32(2)}
	for {
		page, err := k.ListStreamConsumers(ctx, in)
		require.NoError(t, err)
		for _, c := range page.Consumers {
			names = append(names, aws.ToString(c.ConsumerName))
		}
		if page.NextToken == nil {
			break
		}
		in = &kinesis.ListStreamConsumersInput{StreamARN: arn, NextToken: page.NextToken}
	}
	assert.ElementsMatch(t, []string{"a", "b", "c"}, names)

	_, err = k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("a")})
	var inUse *types.ResourceInUseException
	require.ErrorAs(t, err, &inUse)
	_, err = k.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: regs[0].ConsumerARN})
	require.NoError(t, err)
	_, err = k.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: regs[0].ConsumerARN})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound)

	_, err = k.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")})
	require.ErrorAs(t, err, &inUse)
	assert.Contains(t, inUse.ErrorMessage(), "b, c")
	_, err = k.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s"), EnforceConsumerDeletion: aws.Bool(true)})
	require.NoError(t, err)
}

// TestSDKUnservedFields shows that a request field the server does not
// serve yet is refused, not ignored.
func TestSDKUnservedFields(t *testing.T) {
	k, _ := client(t)
	_, err := k.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = k.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s"), StreamId: aws.String("id")})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid)
	assert.Contains(t, invalid.ErrorMessage(), "StreamId")
}

// TestSDKTags tags a stream at creation, by name and by ARN, lists the
// tags in pages, and removes them; a consumer has tags of its own.
func TestSDKTags(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	name := aws.String("s")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1), Tags: map[string]string{"team": "billing"}})
	require.NoError(t, err)
	_, err = k.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: map[string]string{"env": "test", "cost": "42"}})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	arn := d.StreamDescriptionSummary.StreamARN
	_, err = k.TagResource(ctx, &kinesis.TagResourceInput{ResourceARN: arn, Tags: map[string]string{"owner": "ops"}})
	require.NoError(t, err)

	page, err := k.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: name, Limit: aws.Int32(2)})
	require.NoError(t, err)
	require.Len(t, page.Tags, 2)
	assert.Equal(t, "cost", aws.ToString(page.Tags[0].Key))
	assert.True(t, aws.ToBool(page.HasMoreTags))
	rest, err := k.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: name, ExclusiveStartTagKey: page.Tags[1].Key})
	require.NoError(t, err)
	var keys []string
	for _, tg := range append(page.Tags, rest.Tags...) {
		keys = append(keys, aws.ToString(tg.Key))
	}
	assert.Equal(t, []string{"cost", "env", "owner", "team"}, keys)
	assert.False(t, aws.ToBool(rest.HasMoreTags))

	_, err = k.RemoveTagsFromStream(ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: name, TagKeys: []string{"cost", "env"}})
	require.NoError(t, err)
	_, err = k.UntagResource(ctx, &kinesis.UntagResourceInput{ResourceARN: arn, TagKeys: []string{"owner"}})
	require.NoError(t, err)
	all, err := k.ListTagsForResource(ctx, &kinesis.ListTagsForResourceInput{ResourceARN: arn})
	require.NoError(t, err)
	require.Len(t, all.Tags, 1)
	assert.Equal(t, "billing", aws.ToString(all.Tags[0].Value))

	reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("c"), Tags: map[string]string{"app": "x"}})
	require.NoError(t, err)
	_, err = k.TagResource(ctx, &kinesis.TagResourceInput{ResourceARN: reg.Consumer.ConsumerARN, Tags: map[string]string{"tier": "1"}})
	require.NoError(t, err)
	cons, err := k.ListTagsForResource(ctx, &kinesis.ListTagsForResourceInput{ResourceARN: reg.Consumer.ConsumerARN})
	require.NoError(t, err)
	require.Len(t, cons.Tags, 2)
	assert.Equal(t, "app", aws.ToString(cons.Tags[0].Key))
	assert.Equal(t, "tier", aws.ToString(cons.Tags[1].Key))
	var invalid *types.InvalidArgumentException
	_, err = k.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: map[string]string{"aws:x": "y"}})
	require.ErrorAs(t, err, &invalid, "the reserved prefix")
}

// TestSDKRefusals shows the refusals of requests the server does not serve
// as asked, rather than serving them otherwise: a record size out of
// Kinesis's range, DryRun, a stale
// StreamCreationTimestamp and a NextToken that is none.
func TestSDKRefusals(t *testing.T) {
	k, _ := client(t, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	ctx := t.Context()
	var invalid *types.InvalidArgumentException
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("big"), ShardCount: aws.Int32(1), MaxRecordSizeInKiB: aws.Int32(1)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ValidationException")

	_, err = k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x"), DryRun: aws.Bool(true)})
	require.ErrorAs(t, err, &invalid)
	assert.Contains(t, invalid.ErrorMessage(), "DryRun")

	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	created := d.StreamDescriptionSummary.StreamCreationTimestamp
	_, err = k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), StreamCreationTimestamp: created})
	require.NoError(t, err)
	_, err = k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), StreamCreationTimestamp: aws.Time(created.Add(-time.Hour))})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound, "another stream of that name")

	_, err = k.ListStreams(ctx, &kinesis.ListStreamsInput{NextToken: aws.String("not a name!")})
	require.ErrorAs(t, err, &invalid)
}

// TestSDKListStreamConsumersPages shows that a page of consumers goes on
// after the last consumer of the page before, also when that one has been
// deregistered in between.
func TestSDKListStreamConsumersPages(t *testing.T) {
	k, srv := client(t)
	ctx := t.Context()
	st, err := srv.Cluster.CreateStream(ctx, "s")
	require.NoError(t, err)
	arn := aws.String(st.ARN())
	for _, name := range []string{"a", "b", "c", "d"} {
		_, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String(name)})
		require.NoError(t, err)
	}
	page, err := k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arn, MaxResults: aws.Int32(2)})
	require.NoError(t, err)
	require.Len(t, page.Consumers, 2)
	last := aws.ToString(page.Consumers[1].ConsumerName)
	_, err = k.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String(last)})
	require.NoError(t, err)
	rest, err := k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arn, NextToken: page.NextToken})
	require.NoError(t, err)
	var names []string
	for _, c := range append(page.Consumers, rest.Consumers...) {
		names = append(names, aws.ToString(c.ConsumerName))
	}
	assert.ElementsMatch(t, []string{"a", "b", "c", "d"}, names, "none skipped, none twice")
	_, err = k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arn, NextToken: aws.String("7")})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid)
}
