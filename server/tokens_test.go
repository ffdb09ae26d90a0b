package server_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
)

// serve runs a server of c with opts on a loopback port until the test
// ends, and returns an SDK client of it signed for region.
func serve(t *testing.T, c *runnel.Cluster, region string, opts ...server.Option) *kinesis.Client {
	t.Helper()
	k, stop := serveUntil(t, c, region, opts...)
	t.Cleanup(stop)
	return k
}

// serveUntil is serve until stop is called (which it may be more than
// once), for a test that starts the server again.
func serveUntil(t *testing.T, c *runnel.Cluster, region string, opts ...server.Option) (k *kinesis.Client, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := server.New(c, opts...)
	require.NoError(t, srv.Err())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	stop = sync.OnceFunc(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("the server stopped with %v", err)
		}
	})
	return kinesis.NewFromConfig(aws.Config{
		Region:       region,
		BaseEndpoint: aws.String("http://" + l.Addr().String()),
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	}), stop
}

// aheadClock is a clock a test moves ahead of the system clock.
type aheadClock struct{ ahead atomic.Int64 }

func (c *aheadClock) Now() time.Time { return time.Now().Add(time.Duration(c.ahead.Load())) }

// iterator returns a TRIM_HORIZON iterator of a stream's first shard.
func iterator(t *testing.T, k *kinesis.Client, stream string) *string {
	t.Helper()
	out, err := k.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	return out.ShardIterator
}

// TestTokensAuthenticated checks that iterators and NextTokens are the
// server's own: forged, altered, or handed out by another server or for
// another field, they are refused with InvalidArgumentException; of
// another stream, ResourceNotFound or InvalidArgument as the engine
// finds; expired, ExpiredIteratorException.
func TestTokensAuthenticated(t *testing.T) {
	ctx := t.Context()
	clock := new(aheadClock)
	c := runnel.NewCluster(runnel.WithClock(clock))
	t.Cleanup(func() { c.Close() })
	key := make([]byte, server.TokenKeySize)
	k := serve(t, c, "us-east-1", server.WithTokenKey(key))
	for _, name := range []string{"a", "b", "c"} {
		_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2)})
		require.NoError(t, err)
	}
	it := iterator(t, k, "a")
	_, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err, "the server's own iterator")
	assert.Less(t, len(aws.ToString(it)), 512, "Kinesis's iterators are at most 512 characters")

	invalid := func(t *testing.T, err error, field string) {
		t.Helper()
		var e *types.InvalidArgumentException
		require.ErrorAs(t, err, &e)
		assert.Contains(t, e.ErrorMessage(), field)
	}
	t.Run("forged", func(t *testing.T) {
		for _, forged := range []string{"x", "AAAA.AAAA", strings.Repeat("A", 300), aws.ToString(it) + "A"} {
			_, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(forged)})
			invalid(t, err, "ShardIterator")
		}
		_, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(strings.Repeat("A", 513))})
		var tooLong *types.ValidationException
		require.ErrorAs(t, err, &tooLong, "longer than Kinesis's 512 characters")
	})
	t.Run("altered", func(t *testing.T) {
		b := []byte(aws.ToString(it))
		for i := range b {
			altered := []byte(string(b))
			altered[i] ^= 1
			_, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(string(altered))})
			invalid(t, err, "ShardIterator")
		}
	})
	t.Run("another server's key", func(t *testing.T) {
		other := serve(t, c, "us-east-1") // the same cluster, a random key
		_, err := other.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		invalid(t, err, "ShardIterator")
		same := serve(t, c, "us-east-1", server.WithTokenKey(key))
		_, err = same.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		assert.NoError(t, err, "a server with the same key takes the tokens, as after a restart")
	})
	t.Run("another region", func(t *testing.T) {
		west := serve(t, c, "eu-west-1", server.WithTokenKey(key), server.WithClusters(func(account, region string) (*runnel.Cluster, error) {
			return runnel.NewCluster(runnel.WithAccountID(account), runnel.WithRegion(region)), nil
		}))
		_, err := west.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("a"), ShardCount: aws.Int32(2)})
		require.NoError(t, err)
		_, err = west.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		invalid(t, err, "ShardIterator")
	})
	t.Run("another stream", func(t *testing.T) {
		b, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("b")})
		require.NoError(t, err)
		_, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, StreamARN: b.StreamDescriptionSummary.StreamARN})
		var e *types.InvalidArgumentException
		require.ErrorAs(t, err, &e, "an iterator of stream a with the ARN of stream b")
		assert.Contains(t, e.ErrorMessage(), "different streams")
	})
	t.Run("another field", func(t *testing.T) {
		page, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(1)})
		require.NoError(t, err)
		require.NotNil(t, page.NextToken)
		_, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: page.NextToken})
		invalid(t, err, "ShardIterator")
		_, err = k.ListShards(ctx, &kinesis.ListShardsInput{NextToken: page.NextToken})
		invalid(t, err, "NextToken")
		_, err = k.ListShards(ctx, &kinesis.ListShardsInput{NextToken: it})
		invalid(t, err, "NextToken")
		_, err = k.ListStreams(ctx, &kinesis.ListStreamsInput{NextToken: aws.String("b")})
		invalid(t, err, "NextToken")
		next, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{NextToken: page.NextToken})
		require.NoError(t, err)
		assert.Equal(t, []string{"b", "c"}, next.StreamNames)
	})
	t.Run("ListShards pages", func(t *testing.T) {
		page, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("a"), MaxResults: aws.Int32(1)})
		require.NoError(t, err)
		require.NotNil(t, page.NextToken)
		next, err := k.ListShards(ctx, &kinesis.ListShardsInput{NextToken: page.NextToken})
		require.NoError(t, err)
		require.Len(t, next.Shards, 1)
		assert.Equal(t, "shardId-000000000001", aws.ToString(next.Shards[0].ShardId))
		assert.Nil(t, next.NextToken)

		clock.ahead.Add(int64(301 * time.Second))
		_, err = k.ListShards(ctx, &kinesis.ListShardsInput{NextToken: page.NextToken})
		var expired *types.ExpiredNextTokenException
		assert.ErrorAs(t, err, &expired, "a NextToken lives 300 s")
	})
	t.Run("expired", func(t *testing.T) {
		fresh := iterator(t, k, "a")
		clock.ahead.Add(int64(5*time.Minute + time.Second))
		_, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: fresh})
		var expired *types.ExpiredIteratorException
		assert.ErrorAs(t, err, &expired)
	})
}

// TestTokensSurviveRestart restarts a server with the same state file
// (WithStateFile) and no WithTokenKey: the iterators and NextTokens of
// before the restart go on where they were. A server given another key
// with WithTokenKey refuses them, and does not save its key in the file.
func TestTokensSurviveRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "server.json")
	c := runnel.NewCluster() // outlives the servers, as a durable cluster outlives a restart
	t.Cleanup(func() { c.Close() })
	fileKey := func() []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		var f struct{ TokenKey []byte }
		require.NoError(t, json.Unmarshal(b, &f), "%s", b)
		return f.TokenKey
	}

	k, stop := serveUntil(t, c, "us-east-1", server.WithStateFile(path))
	for _, name := range []string{"a", "b"} {
		_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
		require.NoError(t, err)
	}
	for _, data := range []string{"r0", "r1", "r2"} {
		_, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("a"), PartitionKey: aws.String("k"), Data: []byte(data)})
		require.NoError(t, err)
	}
	got, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator(t, k, "a"), Limit: aws.Int32(1)})
	require.NoError(t, err)
	require.Len(t, got.Records, 1)
	next := got.NextShardIterator
	page, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(1)})
	require.NoError(t, err)
	require.NotNil(t, page.NextToken)
	stop()
	key := fileKey()
	require.Len(t, key, server.TokenKeySize, "the state file holds the token key")

	k, stop = serveUntil(t, c, "us-east-1", server.WithStateFile(path))
	got, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next})
	require.NoError(t, err, "the iterator of before the restart")
	var data []string
	for _, r := range got.Records {
		data = append(data, string(r.Data))
	}
	assert.Equal(t, []string{"r1", "r2"}, data)
	rest, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{NextToken: page.NextToken})
	require.NoError(t, err, "the NextToken of before the restart")
	assert.Equal(t, []string{"b"}, rest.StreamNames)
	stop()
	assert.Equal(t, key, fileKey(), "the key is kept, not made again")

	other := make([]byte, server.TokenKeySize)
	k, stop = serveUntil(t, c, "us-east-1", server.WithStateFile(path), server.WithTokenKey(other))
	defer stop()
	_, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next})
	var invalid *types.InvalidArgumentException
	assert.ErrorAs(t, err, &invalid, "WithTokenKey wins over the file's key")
	_, err = k.UpdateAccountSettings(ctx, &kinesis.UpdateAccountSettingsInput{
		MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled},
	})
	require.NoError(t, err) // a change: the server writes the file
	assert.Equal(t, key, fileKey(), "the key of WithTokenKey is not saved; the file's stays")
}

// TestPageTokens checks the NextTokens of the listings the server pages
// itself: a ListStreamConsumers token is its stream's only, and tokens
// expire after 300 s, as Kinesis's do.
func TestPageTokens(t *testing.T) {
	ctx := t.Context()
	clock := new(aheadClock)
	c := runnel.NewCluster(runnel.WithClock(clock))
	t.Cleanup(func() { c.Close() })
	k := serve(t, c, "us-east-1")
	arns := map[string]*string{}
	for _, name := range []string{"a", "b"} {
		_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
		require.NoError(t, err)
		d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(t, err)
		arns[name] = d.StreamDescriptionSummary.StreamARN
		for _, cons := range []string{"x", "y"} {
			_, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arns[name], ConsumerName: aws.String(cons)})
			require.NoError(t, err)
		}
	}
	page, err := k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arns["a"], MaxResults: aws.Int32(1)})
	require.NoError(t, err)
	require.NotNil(t, page.NextToken)
	_, err = k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arns["b"], NextToken: page.NextToken})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid, "stream a's token on stream b")
	next, err := k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arns["a"], NextToken: page.NextToken})
	require.NoError(t, err)
	require.Len(t, next.Consumers, 1)

	streams, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(1)})
	require.NoError(t, err)
	clock.ahead.Add(int64(301 * time.Second))
	_, err = k.ListStreams(ctx, &kinesis.ListStreamsInput{NextToken: streams.NextToken})
	var expired *types.ExpiredNextTokenException
	assert.ErrorAs(t, err, &expired)
	_, err = k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arns["a"], NextToken: page.NextToken})
	assert.ErrorAs(t, err, &expired)
}
