package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
	"github.com/runnel-go/runnel/server/servertest"
)

// client returns an SDK client of a new test server, and the server.
func client(t *testing.T, opts ...func(*kinesis.Options)) (*kinesis.Client, *servertest.Server) {
	t.Helper()
	srv := servertest.New(t)
	return kinesis.NewFromConfig(srv.Config(), opts...), srv
}

// TestSDKStreamLifecycle drives the stream operations with the Go SDK:
// create, describe, list with pages, delete, and the typed errors.
func TestSDKStreamLifecycle(t *testing.T) {
	k, srv := client(t)
	ctx := t.Context()
	for _, name := range []string{"orders", "clicks", "audit"} {
		_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2)})
		require.NoError(t, err)
	}
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	require.NoError(t, err)
	sum := d.StreamDescriptionSummary
	assert.Equal(t, "orders", aws.ToString(sum.StreamName))
	assert.Equal(t, "arn:aws:kinesis:us-east-1:000000000000:stream/orders", aws.ToString(sum.StreamARN))
	assert.Equal(t, types.StreamStatusActive, sum.StreamStatus)
	assert.EqualValues(t, 2, aws.ToInt32(sum.OpenShardCount))
	assert.EqualValues(t, 24, aws.ToInt32(sum.RetentionPeriodHours))
	assert.False(t, aws.ToTime(sum.StreamCreationTimestamp).IsZero())

	byARN, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: sum.StreamARN})
	require.NoError(t, err)
	assert.Equal(t, "orders", aws.ToString(byARN.StreamDescriptionSummary.StreamName))

	page1, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(2)})
	require.NoError(t, err)
	assert.Equal(t, []string{"audit", "clicks"}, page1.StreamNames)
	assert.True(t, aws.ToBool(page1.HasMoreStreams))
	page2, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{NextToken: page1.NextToken})
	require.NoError(t, err)
	assert.Equal(t, []string{"orders"}, page2.StreamNames)
	assert.False(t, aws.ToBool(page2.HasMoreStreams))

	_, err = k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(1)})
	var inUse *types.ResourceInUseException
	require.ErrorAs(t, err, &inUse)
	assert.Contains(t, inUse.ErrorMessage(), "orders")

	_, err = k.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")})
	require.NoError(t, err)
	_, err = k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound)
	assert.Contains(t, notFound.ErrorMessage(), "orders")
	_, err = srv.Cluster.Stream("orders")
	assert.ErrorIs(t, err, runnel.ErrResourceNotFound, "deleted in the cluster the server serves")
}

// TestSDKRecordsRoundTrip writes with PutRecord and PutRecords and reads
// back with GetShardIterator and GetRecords: data, keys, sequence numbers
// and arrival times cross the wire unchanged, and the order holds.
func TestSDKRecordsRoundTrip(t *testing.T) {
	k, srv := client(t)
	ctx := t.Context()
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	one, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte{0, 1, 2, 255}})
	require.NoError(t, err)
	assert.Equal(t, "shardId-000000000000", aws.ToString(one.ShardId))
	entries := make([]types.PutRecordsRequestEntry, 300)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("k", i%7)), Data: []byte(fmt.Sprint("record ", i))}
	}
	many, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	require.NoError(t, err)
	assert.Zero(t, aws.ToInt32(many.FailedRecordCount))
	require.Len(t, many.Records, 300)

	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: one.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1000)})
	require.NoError(t, err)
	require.Len(t, out.Records, 301)
	assert.Equal(t, []byte{0, 1, 2, 255}, out.Records[0].Data)
	assert.Equal(t, aws.ToString(one.SequenceNumber), aws.ToString(out.Records[0].SequenceNumber))
	for i, r := range out.Records[1:] {
		assert.Equal(t, fmt.Sprint("record ", i), string(r.Data))
		assert.Equal(t, aws.ToString(many.Records[i].SequenceNumber), aws.ToString(r.SequenceNumber))
	}
	direct, err := srv.Cluster.Stream("s")
	require.NoError(t, err)
	for rec, err := range direct.Records(ctx, "shardId-000000000000", runnel.StartingPosition{Type: runnel.TrimHorizon}) {
		require.NoError(t, err)
		assert.True(t, rec.ApproximateArrivalTimestamp.Equal(aws.ToTime(out.Records[0].ApproximateArrivalTimestamp)), "arrival times to the millisecond")
		break
	}
	assert.Zero(t, aws.ToInt64(out.MillisBehindLatest))
	require.NotNil(t, out.NextShardIterator)

	after, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: one.ShardId,
		ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: many.Records[298].SequenceNumber})
	require.NoError(t, err)
	last, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: after.ShardIterator})
	require.NoError(t, err)
	require.Len(t, last.Records, 1)
	assert.Equal(t, "record 299", string(last.Records[0].Data))
}

// TestSDKShardsAndLineage lists shards with pages (a NextToken alone names
// the stream, as in Kinesis) and reads a split parent to its end, where
// GetRecords gives the ChildShards and no NextShardIterator.
func TestSDKShardsAndLineage(t *testing.T) {
	k, srv := client(t)
	ctx := t.Context()
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(3)})
	require.NoError(t, err)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("0"), Data: []byte("before")})
	require.NoError(t, err)
	st, err := srv.Cluster.Stream("s")
	require.NoError(t, err)
	at, err := runnel.ParseHashKey("1000")
	require.NoError(t, err)
	require.NoError(t, st.SplitShard(ctx, "shardId-000000000000", at))

	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(2)}
	for {
		page, err := k.ListShards(ctx, in)
		require.NoError(t, err)
		for _, sh := range page.Shards {
			ids = append(ids, aws.ToString(sh.ShardId))
		}
		if page.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
	assert.Equal(t, []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003", "shardId-000000000004"}, ids)

	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, out.Records, 1)
	assert.Nil(t, out.NextShardIterator, "the closed shard has been read to its end")
	require.Len(t, out.ChildShards, 2)
	for _, c := range out.ChildShards {
		assert.Equal(t, []string{"shardId-000000000000"}, c.ParentShards)
	}
}

// TestSDKErrors shows the SDK's typed errors for what the engine refuses,
// throttling among them.
func TestSDKErrors(t *testing.T) {
	k, srv := client(t, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	ctx := t.Context()
	_, err := srv.Cluster.CreateStream(ctx, "slow", runnel.WithShardCount(1), runnel.WithLimits(runnel.Limits{WriteRecordsPerSecond: 1}))
	require.NoError(t, err)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("slow"), PartitionKey: aws.String("k"), Data: []byte("1")})
	require.NoError(t, err)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("slow"), PartitionKey: aws.String("k"), Data: []byte("2")})
	var throttled *types.ProvisionedThroughputExceededException
	require.ErrorAs(t, err, &throttled)

	out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("slow"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("3")}}})
	require.NoError(t, err, "a throttled entry fails alone")
	assert.EqualValues(t, 1, aws.ToInt32(out.FailedRecordCount))
	assert.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(out.Records[0].ErrorCode))
	assert.NotEmpty(t, aws.ToString(out.Records[0].ErrorMessage))

	_, err = k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("slow"), ShardId: aws.String("shardId-000000000009"), ShardIteratorType: types.ShardIteratorTypeLatest})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound)
	assert.Contains(t, notFound.ErrorMessage(), "shardId-000000000009")

	_, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("forged")})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid)

	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("bad name"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ValidationException")
	assert.Contains(t, err.Error(), "bad name")
}

// TestProtocolErrors sends what no SDK sends: an unknown target, a body
// that is not JSON, an unknown field, a GET, and a body over the limit.
// Each gets an AWS-style error, and the server stays healthy.
func TestProtocolErrors(t *testing.T) {
	k, srv := client(t)
	post := func(target, body string) (int, map[string]string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]string
		require.NoError(t, json.Unmarshal(b, &m), "%s", b)
		return resp.StatusCode, m
	}
	for _, tc := range []struct {
		name, target, body, want string
		status                   int
	}{
		{"unknown operation", "Kinesis_20131202.Frobnicate", "{}", "UnknownOperationException", 400},
		{"no target", "", "{}", "UnknownOperationException", 400},
		{"not JSON", "Kinesis_20131202.ListStreams", "{", "SerializationException", 400},
		{"unknown field", "Kinesis_20131202.ListStreams", `{"Limitt": 1}`, "SerializationException", 400},
		{"wrong type", "Kinesis_20131202.ListStreams", `{"Limit": "one"}`, "SerializationException", 400},
		{"trailing data", "Kinesis_20131202.ListStreams", `{} {}`, "SerializationException", 400},
		{"bad timestamp", "Kinesis_20131202.GetShardIterator", `{"StreamName":"x","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":"soon"}`, "SerializationException", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(tc.target, tc.body)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.want, body["__type"])
			assert.NotEmpty(t, body["message"])
		})
	}
	big := `{"StreamName":"s","PartitionKey":"k","Data":"` + strings.Repeat("A", 16<<20) + `"}`
	status, body := post("Kinesis_20131202.PutRecord", big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
	assert.Equal(t, "InvalidArgumentException", body["__type"])

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	_, err = k.ListStreams(t.Context(), &kinesis.ListStreamsInput{})
	assert.NoError(t, err, "the server is still healthy")
}

// TestHTTP2 sends a request over plain-text HTTP/2 with prior knowledge,
// as the JavaScript SDK v3 does for every operation.
func TestHTTP2(t *testing.T) {
	_, srv := client(t)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(`{"StreamName":"h2","ShardCount":1}`)))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.CreateStream")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, resp.ProtoMajor, "served over HTTP/2")
	_, err = srv.Cluster.Stream("h2")
	assert.NoError(t, err)
}

// TestServertestStart starts a test server with server options: the
// control API, on a clock the cluster follows, and metrics.
func TestServertestStart(t *testing.T) {
	clock := new(server.Clock)
	srv := servertest.Start(t, servertest.Options{
		Cluster: []runnel.ClusterOption{clock.ClusterOption()},
		Server:  []server.Option{server.WithMetrics(), server.WithControlAPI("secret", clock)},
	})
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "secret", srv.API.ControlToken())
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/runnel/clock/advance", strings.NewReader(`{"seconds":60}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer secret")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.InDelta(t, time.Minute.Seconds(), srv.Cluster.Now().Sub(time.Now()).Seconds(), 5, "the cluster follows the clock")
}
