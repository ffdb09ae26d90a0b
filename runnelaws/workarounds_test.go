package runnelaws_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/runnelaws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keeper is an HTTP client that answers each request and keeps it, so
// that a test can drain its body after the SDK is done with it, as
// net/http's HTTP/1.1 transport may: an io.EOF there is what makes the
// transport drop the connection, and a SubscribeToShard stream with it.
type keeper struct {
	mu     sync.Mutex
	kept   []*http.Request
	answer func(target string) (status int, body string)
}

func (k *keeper) Do(r *http.Request) (*http.Response, error) {
	k.mu.Lock()
	k.kept = append(k.kept, r)
	k.mu.Unlock()
	status, body := k.answer(r.Header.Get("X-Amz-Target"))
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// drained drains every kept body and returns, per X-Amz-Target, the error
// it ended with.
func (k *keeper) drained() map[string]error {
	k.mu.Lock()
	defer k.mu.Unlock()
	errs := map[string]error{}
	for _, r := range k.kept {
		if r.Body != nil {
			_, err := io.Copy(io.Discard, r.Body)
			errs[r.Header.Get("X-Amz-Target")] = errors.Join(errs[r.Header.Get("X-Amz-Target")], err)
		}
	}
	k.kept = nil
	return errs
}

func emptyAnswer(string) (int, string) { return http.StatusOK, "{}" }

// TestRequestBodiesEnd: every call of the adapter and of the lease table
// leaves a request body that, drained after the SDK closed it, ends
// cleanly; a bare SDK client's fails with io.EOF (the control).
func TestRequestBodiesEnd(t *testing.T) {
	ctx := context.Background()
	k := &keeper{answer: emptyAnswer}
	kc := kinesis.New(kinesis.Options{Region: "us-east-1", HTTPClient: k, BaseEndpoint: aws.String("http://127.0.0.1:1"), Credentials: aws.AnonymousCredentials{}})

	_, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("orders")})
	require.NoError(t, err)
	require.ErrorIs(t, k.drained()["Kinesis_20131202.ListShards"], io.EOF, "the control: a bare client's closed body fails to drain")

	s, err := runnelaws.NewStream(kc, "arn:aws:kinesis:us-east-1:123456789012:stream/orders")
	require.NoError(t, err)
	const arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/c:1"
	calls := map[string]func(){
		"PutRecords": func() {
			s.PutRecords(ctx, runnel.PutRecordsInput{Records: []runnel.PutRecordsEntry{{PartitionKey: "k", Data: []byte("x")}}})
		},
		"ListShards": func() { s.ListShards(ctx, runnel.ListShardsInput{}) },
		"GetShardIterator": func() {
			s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: "shardId-000000000000", StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
		},
		"GetRecords":            func() { s.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: runnel.OpaqueShardIterator("it")}) },
		"DescribeStreamSummary": func() { s.Describe(ctx) },
		"RegisterStreamConsumer": func() {
			s.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "c"})
		},
		"DescribeStreamConsumer": func() { s.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerARN: arn}) },
		"SubscribeToShard": func() {
			if sub, err := s.SubscribeToShard(ctx, runnel.SubscribeToShardInput{ConsumerARN: arn, ShardID: "shardId-000000000000", StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}}); err == nil {
				sub.Close()
			}
		},
	}
	for name, call := range calls {
		call() // the answers are empty: only the request bodies matter
		errs := k.drained()
		require.Contains(t, errs, "Kinesis_20131202."+name, "%s was called", name)
		assert.NoError(t, errs["Kinesis_20131202."+name], name)
	}

	// The lease table's calls: its table is described (missing, so it is
	// created, then ACTIVE), scanned, written (a failed condition, read
	// back) and deleted from.
	described := 0
	k.answer = func(target string) (int, string) {
		switch target {
		case "DynamoDB_20120810.DescribeTable":
			if described++; described == 1 {
				return http.StatusBadRequest, `{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}`
			}
			return http.StatusOK, `{"Table":{"TableName":"leases","TableStatus":"ACTIVE","KeySchema":[{"AttributeName":"leaseKey","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"leaseKey","AttributeType":"S"}]}}`
		case "DynamoDB_20120810.UpdateItem":
			return http.StatusBadRequest, `{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"condition"}`
		}
		return emptyAnswer(target)
	}
	dc := dynamodb.New(dynamodb.Options{Region: "us-east-1", HTTPClient: k, BaseEndpoint: aws.String("http://127.0.0.1:1"), Credentials: aws.AnonymousCredentials{}})
	lt, err := runnelaws.NewLeaseTable(ctx, dc, "leases", runnelaws.WithCreateTable())
	require.NoError(t, err)
	_, err = lt.ListLeases(ctx)
	require.NoError(t, err)
	err = lt.PutLease(ctx, runnel.Lease{ShardID: "shardId-000000000000", Counter: 2}, 1)
	require.ErrorIs(t, err, runnel.ErrLeaseConflict)
	require.NoError(t, lt.DeleteLease(ctx, "shardId-000000000000", 1))
	errs := k.drained()
	for _, op := range []string{"DescribeTable", "CreateTable", "Scan", "UpdateItem", "GetItem", "DeleteItem"} {
		require.Contains(t, errs, "DynamoDB_20120810."+op, "%s was called", op)
		assert.NoError(t, errs["DynamoDB_20120810."+op], op)
	}
}
