package server

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

// SubscribeAfter subscribes consumerARN to shard 0 through the Go SDK
// after the continuation number cont (from TRIM_HORIZON when it is
// empty), waiting out Kinesis's 5 s rule as a client must, for up to 10 s.
// It is exported for the tests of package server_test too.
func SubscribeAfter(t *testing.T, k *kinesis.Client, consumerARN *string, cont string) *kinesis.SubscribeToShardEventStream {
	t.Helper()
	from := &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	if cont != "" {
		from = &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := k.SubscribeToShard(t.Context(), &kinesis.SubscribeToShardInput{ConsumerARN: consumerARN, ShardId: aws.String("shardId-000000000000"), StartingPosition: from},
			func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
		var inUse *types.ResourceInUseException
		var limit *types.LimitExceededException
		if (errors.As(err, &inUse) || errors.As(err, &limit)) && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		require.NoError(t, err)
		return out.GetStream()
	}
}
