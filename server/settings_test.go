package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
)

// TestEveryOperationServed sends every operation the SDK's Kinesis client
// has to the server: none is an unknown operation.
func TestEveryOperationServed(t *testing.T) {
	_, srv := client(t)
	ctxType := reflect.TypeFor[context.Context]()
	var ops []string
	for m := range reflect.TypeFor[*kinesis.Client]().Methods() {
		if m.Type.NumIn() == 4 && m.Type.In(1) == ctxType && strings.HasSuffix(m.Type.In(2).Elem().Name(), "Input") {
			ops = append(ops, m.Name)
		}
	}
	require.Greater(t, len(ops), 40, "the SDK's operations")
	for _, op := range ops {
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		require.NoError(t, err)
		req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Type string `json:"__type"`
		}
		require.NoError(t, json.Unmarshal(b, &e), "%s: %s", op, b)
		assert.NotEqual(t, "UnknownOperationException", e.Type, "%s is not served", op)
	}
}

// TestSDKEncryption starts and stops encryption: records and PutRecord
// say KMS while it is on, DescribeStreamSummary names the key, and a KMS
// error injected as a fault reaches the SDK as its typed error.
func TestSDKEncryption(t *testing.T) {
	k, srv := client(t)
	ctx := t.Context()
	name := aws.String("enc")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	plain, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: []byte("a")})
	require.NoError(t, err)
	assert.Equal(t, types.EncryptionTypeNone, plain.EncryptionType)

	remove, err := srv.Cluster.InjectFault(runnel.Fault{Op: runnel.OpStartStreamEncryption, Err: runnel.ErrKMSNotFound, Times: 1})
	require.NoError(t, err)
	defer remove()
	_, err = k.StartStreamEncryption(ctx, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/missing")})
	var kms *types.KMSNotFoundException
	require.ErrorAs(t, err, &kms)

	_, err = k.StartStreamEncryption(ctx, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis")})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	assert.Equal(t, types.EncryptionTypeKms, d.StreamDescriptionSummary.EncryptionType)
	assert.Equal(t, "alias/aws/kinesis", aws.ToString(d.StreamDescriptionSummary.KeyId))
	enc, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: []byte("b")})
	require.NoError(t, err)
	assert.Equal(t, types.EncryptionTypeKms, enc.EncryptionType)

	recs := readShard(t, k, name, "shardId-000000000000")
	require.Len(t, recs, 2)
	if recs[0].ApproximateArrivalTimestamp.UnixMilli() < recs[1].ApproximateArrivalTimestamp.UnixMilli() {
		assert.Equal(t, types.EncryptionTypeNone, recs[0].EncryptionType, "written before")
	}
	assert.Equal(t, types.EncryptionTypeKms, recs[1].EncryptionType)

	_, err = k.StartStreamEncryption(ctx, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: "AES", KeyId: aws.String("k")})
	var invalid *types.ValidationException
	require.ErrorAs(t, err, &invalid)
	_, err = k.StopStreamEncryption(ctx, &kinesis.StopStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis")})
	require.NoError(t, err)
	dd, err := k.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: name})
	require.NoError(t, err)
	assert.Equal(t, types.EncryptionTypeNone, dd.StreamDescription.EncryptionType)
}

// readShard reads a shard from TRIM_HORIZON to its tip.
func readShard(t *testing.T, k *kinesis.Client, stream *string, shard string) []types.Record {
	t.Helper()
	it, err := k.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{StreamName: stream, ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	var out []types.Record
	for iter := it.ShardIterator; ; {
		page, err := k.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: iter})
		require.NoError(t, err)
		out = append(out, page.Records...)
		if len(page.Records) == 0 || page.NextShardIterator == nil {
			return out
		}
		iter = page.NextShardIterator
	}
}

// TestSDKEnhancedMonitoring enables and disables shard-level metrics.
func TestSDKEnhancedMonitoring(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	name := aws.String("mon")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	on, err := k.EnableEnhancedMonitoring(ctx, &kinesis.EnableEnhancedMonitoringInput{StreamName: name, ShardLevelMetrics: []types.MetricsName{types.MetricsNameIncomingBytes, types.MetricsNameIteratorAgeMilliseconds}})
	require.NoError(t, err)
	assert.Empty(t, on.CurrentShardLevelMetrics)
	assert.Equal(t, []types.MetricsName{types.MetricsNameIncomingBytes, types.MetricsNameIteratorAgeMilliseconds}, on.DesiredShardLevelMetrics)
	assert.Equal(t, "mon", aws.ToString(on.StreamName))
	off, err := k.DisableEnhancedMonitoring(ctx, &kinesis.DisableEnhancedMonitoringInput{StreamName: name, ShardLevelMetrics: []types.MetricsName{types.MetricsNameIncomingBytes}})
	require.NoError(t, err)
	assert.Equal(t, []types.MetricsName{types.MetricsNameIteratorAgeMilliseconds}, off.DesiredShardLevelMetrics)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	require.Len(t, d.StreamDescriptionSummary.EnhancedMonitoring, 1)
	assert.Equal(t, []types.MetricsName{types.MetricsNameIteratorAgeMilliseconds}, d.StreamDescriptionSummary.EnhancedMonitoring[0].ShardLevelMetrics)
	_, err = k.EnableEnhancedMonitoring(ctx, &kinesis.EnableEnhancedMonitoringInput{StreamName: name, ShardLevelMetrics: []types.MetricsName{"Bogus"}})
	var invalid *types.ValidationException
	require.ErrorAs(t, err, &invalid)
	assert.Contains(t, invalid.ErrorMessage(), "Bogus")
}

// TestSDKStreamModes creates an ON_DEMAND stream, switches modes, sets the
// warm throughput, and sees resharding refused on demand.
func TestSDKStreamModes(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	od := aws.String("od")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: od, WarmThroughputMiBps: aws.Int32(10)})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid, "warm throughput without the billing commitment")
	assert.Contains(t, invalid.ErrorMessage(), "billing commitment")
	_, err = k.UpdateAccountSettings(ctx, &kinesis.UpdateAccountSettingsInput{MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled}})
	require.NoError(t, err)
	_, err = k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: od, WarmThroughputMiBps: aws.Int32(10)})
	require.NoError(t, err, "no ShardCount: ON_DEMAND")
	limits, err := k.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	require.NoError(t, err)
	assert.EqualValues(t, 1, aws.ToInt32(limits.OnDemandStreamCount))
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: od})
	require.NoError(t, err)
	sum := d.StreamDescriptionSummary
	assert.Equal(t, types.StreamModeOnDemand, sum.StreamModeDetails.StreamMode)
	assert.EqualValues(t, 4, aws.ToInt32(sum.OpenShardCount), "an ON_DEMAND stream starts with 4 shards")
	require.NotNil(t, sum.WarmThroughput)
	assert.EqualValues(t, 10, aws.ToInt32(sum.WarmThroughput.TargetMiBps))
	warm, err := k.UpdateStreamWarmThroughput(ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: od, WarmThroughputMiBps: aws.Int32(20)})
	require.NoError(t, err)
	assert.EqualValues(t, 20, aws.ToInt32(warm.WarmThroughput.TargetMiBps))

	_, err = k.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: od, TargetShardCount: aws.Int32(8), ScalingType: types.ScalingTypeUniformScaling})
	require.ErrorAs(t, err, &invalid)
	assert.Contains(t, invalid.ErrorMessage(), "ON_DEMAND")

	_, err = k.UpdateStreamMode(ctx, &kinesis.UpdateStreamModeInput{StreamARN: sum.StreamARN, StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned}})
	require.NoError(t, err)
	_, err = k.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: od, TargetShardCount: aws.Int32(8), ScalingType: types.ScalingTypeUniformScaling})
	require.NoError(t, err, "PROVISIONED again")
	l, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	require.Len(t, l.StreamSummaries, 1)
	assert.Equal(t, types.StreamModeProvisioned, l.StreamSummaries[0].StreamModeDetails.StreamMode)

	_, err = k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("x"), ShardCount: aws.Int32(1), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	require.ErrorAs(t, err, &invalid, "ShardCount with ON_DEMAND")
	_, err = k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("x"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned}})
	require.ErrorAs(t, err, &invalid, "PROVISIONED without ShardCount")
}

// TestSDKRecordDistributionAndSize spreads one key's records over every
// shard with the AUTO strategy, and takes a 2 MiB record once the maximum
// record size allows it.
func TestSDKRecordDistributionAndSize(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	name := aws.String("auto")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("p"), ShardCount: aws.Int32(1), RecordDistributionStrategy: types.RecordDistributionStrategyAuto})
	var refused *types.InvalidArgumentException
	require.ErrorAs(t, err, &refused, "AUTO is for ON_DEMAND streams")
	_, err = k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, RecordDistributionStrategy: types.RecordDistributionStrategyAuto})
	require.NoError(t, err, "ON_DEMAND, 4 shards")
	entries := make([]types.PutRecordsRequestEntry, 100)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("one-key"), Data: []byte("x")}
	}
	out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: name, Records: entries})
	require.NoError(t, err)
	shards := map[string]bool{}
	for _, r := range out.Records {
		shards[aws.ToString(r.ShardId)] = true
	}
	assert.Len(t, shards, 4, "AUTO ignores the partition key")
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	arn := d.StreamDescriptionSummary.StreamARN
	_, err = k.UpdateStreamRecordDistributionStrategy(ctx, &kinesis.UpdateStreamRecordDistributionStrategyInput{StreamARN: arn, RecordDistributionStrategy: types.RecordDistributionStrategyUserPartitionKey})
	require.NoError(t, err)

	big := make([]byte, 2<<20)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: big})
	var invalid *types.ValidationException
	require.ErrorAs(t, err, &invalid, "over 1 MiB")
	_, err = k.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: arn, MaxRecordSizeInKiB: aws.Int32(512)})
	require.ErrorAs(t, err, &invalid, "below Kinesis's 1 MiB")
	_, err = k.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: arn, MaxRecordSizeInKiB: aws.Int32(10240)})
	require.NoError(t, err)
	d, err = k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	assert.EqualValues(t, 10240, aws.ToInt32(d.StreamDescriptionSummary.MaxRecordSizeInKiB))
}

// TestSDKResourcePolicies puts, gets and deletes the policies of a stream
// and of a consumer.
func TestSDKResourcePolicies(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("p"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("p")})
	require.NoError(t, err)
	arn := d.StreamDescriptionSummary.StreamARN
	reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("c")})
	require.NoError(t, err)
	for _, res := range []*string{arn, reg.Consumer.ConsumerARN} {
		policy := `{"Version":"2012-10-17","Statement":[{"Resource":"` + aws.ToString(res) + `"}]}`
		_, err = k.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: res, Policy: aws.String(policy)})
		require.NoError(t, err)
		got, err := k.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: res})
		require.NoError(t, err)
		assert.Equal(t, policy, aws.ToString(got.Policy))
		_, err = k.DeleteResourcePolicy(ctx, &kinesis.DeleteResourcePolicyInput{ResourceARN: res})
		require.NoError(t, err)
		got, err = k.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: res})
		require.NoError(t, err)
		assert.Equal(t, "{}", aws.ToString(got.Policy))
	}
	_, err = k.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: arn, Policy: aws.String("nope")})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid)
	_, err = k.DeleteResourcePolicy(ctx, &kinesis.DeleteResourcePolicyInput{ResourceARN: arn})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound, "no policy to delete")
}

// TestSDKAccountSettings enables the billing commitment and disables it
// before its minimum: it stays on until its earliest end.
func TestSDKAccountSettings(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	d, err := k.DescribeAccountSettings(ctx, &kinesis.DescribeAccountSettingsInput{})
	require.NoError(t, err)
	assert.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusDisabled, d.MinimumThroughputBillingCommitment.Status)
	on, err := k.UpdateAccountSettings(ctx, &kinesis.UpdateAccountSettingsInput{MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled}})
	require.NoError(t, err)
	c := on.MinimumThroughputBillingCommitment
	assert.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusEnabled, c.Status)
	require.NotNil(t, c.StartedAt)
	require.NotNil(t, c.EarliestAllowedEndAt)
	assert.Equal(t, 24*3600.0, c.EarliestAllowedEndAt.Sub(*c.StartedAt).Seconds())
	off, err := k.UpdateAccountSettings(ctx, &kinesis.UpdateAccountSettingsInput{MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusDisabled}})
	require.NoError(t, err)
	assert.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusEnabledUntilEarliestAllowedEnd, off.MinimumThroughputBillingCommitment.Status)
	assert.Equal(t, *c.EarliestAllowedEndAt, *off.MinimumThroughputBillingCommitment.EndedAt)
}

// TestSDKChannels creates, describes, lists, updates, tags and deletes a
// channel.
func TestSDKChannels(t *testing.T) {
	k, _ := client(t)
	ctx := t.Context()
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("src"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("src")})
	require.NoError(t, err)
	arn := d.StreamDescriptionSummary.StreamARN
	in := &kinesis.CreateChannelInput{
		ChannelName:             aws.String("to-s3"),
		ServiceExecutionRoleARN: aws.String("arn:aws:iam::000000000000:role/delivery"),
		StreamConfigurationList: []types.ChannelStreamConfiguration{{StreamARN: arn, RecordConfiguration: &types.RecordConfiguration{RecordFormatType: types.RecordFormatTypeJson}}},
		S3DestinationConfiguration: &types.S3DestinationConfiguration{
			DataFreshnessInSeconds: aws.Int32(60),
			StorageConfiguration:   &types.S3StorageConfiguration{BucketARN: aws.String("arn:aws:s3:::bucket"), ExpectedBucketOwner: aws.String("000000000000"), CompressionType: "GZIP"},
		},
		Tags: map[string]string{"team": "data"},
	}
	created, err := k.CreateChannel(ctx, in)
	require.NoError(t, err)
	ch := created.ChannelDescription
	assert.Equal(t, "to-s3", aws.ToString(ch.ChannelName))
	assert.Equal(t, types.ChannelStatusActive, ch.ChannelStatus)
	assert.True(t, strings.HasPrefix(aws.ToString(ch.ChannelARN), "arn:aws:kinesis:us-east-1:000000000000:channel/"))
	require.Len(t, ch.StreamConfigurationList, 1)
	assert.Equal(t, aws.ToString(arn), aws.ToString(ch.StreamConfigurationList[0].StreamARN))
	assert.EqualValues(t, 60, aws.ToInt32(ch.S3DestinationConfiguration.DataFreshnessInSeconds))
	assert.Equal(t, "arn:aws:s3:::bucket", aws.ToString(ch.S3DestinationConfiguration.StorageConfiguration.BucketARN))
	assert.Equal(t, types.RecordFormatTypeJson, ch.StreamConfigurationList[0].RecordConfiguration.RecordFormatType)
	_, err = k.CreateChannel(ctx, in)
	var inUse *types.ResourceInUseException
	require.ErrorAs(t, err, &inUse)

	up, err := k.UpdateChannel(ctx, &kinesis.UpdateChannelInput{ChannelARN: ch.ChannelARN, S3DestinationConfiguration: &types.S3DestinationUpdateInput{DataFreshnessInSeconds: aws.Int32(300)}})
	require.NoError(t, err)
	assert.EqualValues(t, 300, aws.ToInt32(up.ChannelDescription.S3DestinationConfiguration.DataFreshnessInSeconds))
	got, err := k.DescribeChannel(ctx, &kinesis.DescribeChannelInput{ChannelARN: ch.ChannelARN})
	require.NoError(t, err)
	assert.EqualValues(t, 300, aws.ToInt32(got.ChannelDescription.S3DestinationConfiguration.DataFreshnessInSeconds))

	second := *in
	second.ChannelName = aws.String("to-s3-b")
	_, err = k.CreateChannel(ctx, &second)
	require.NoError(t, err)
	page, err := k.ListChannels(ctx, &kinesis.ListChannelsInput{MaxResults: aws.Int32(1)})
	require.NoError(t, err)
	require.Len(t, page.ChannelSummaries, 1)
	assert.Equal(t, types.ChannelDestinationTypeS3, page.ChannelSummaries[0].ChannelDestinationType)
	rest, err := k.ListChannels(ctx, &kinesis.ListChannelsInput{NextToken: page.NextToken})
	require.NoError(t, err)
	require.Len(t, rest.ChannelSummaries, 1)
	assert.Equal(t, "to-s3-b", aws.ToString(rest.ChannelSummaries[0].ChannelName))
	none, err := k.ListChannels(ctx, &kinesis.ListChannelsInput{StreamFilter: []types.StreamFilter{{StreamARN: aws.String(aws.ToString(arn) + "x")}}})
	require.NoError(t, err)
	assert.Empty(t, none.ChannelSummaries)

	_, err = k.TagResource(ctx, &kinesis.TagResourceInput{ResourceARN: ch.ChannelARN, Tags: map[string]string{"env": "test"}})
	require.NoError(t, err)
	tags, err := k.ListTagsForResource(ctx, &kinesis.ListTagsForResourceInput{ResourceARN: ch.ChannelARN})
	require.NoError(t, err)
	assert.Len(t, tags.Tags, 2)

	_, err = k.DeleteChannel(ctx, &kinesis.DeleteChannelInput{ChannelARN: ch.ChannelARN})
	require.NoError(t, err)
	_, err = k.DescribeChannel(ctx, &kinesis.DescribeChannelInput{ChannelARN: ch.ChannelARN})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound)
	_, err = k.CreateChannel(ctx, &kinesis.CreateChannelInput{ChannelName: aws.String("bad"), ServiceExecutionRoleARN: in.ServiceExecutionRoleARN, StreamConfigurationList: in.StreamConfigurationList})
	var invalid *types.ValidationException
	require.ErrorAs(t, err, &invalid, "no destination")
}
