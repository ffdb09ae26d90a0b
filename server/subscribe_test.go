package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
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

// TestSDKSubscribeToShard subscribes with the Go SDK's SubscribeToShard,
// which waits for the initial-response event, over HTTP/1.1 (what the SDK
// uses against an http:// endpoint) and over plain-text HTTP/2: the
// records written before and after arrive as events in order, with
// continuation numbers; deregistering the consumer ends the stream with
// the SDK's typed ResourceNotFoundException.
func TestSDKSubscribeToShard(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2c=%v", h2), func(t *testing.T) {
			k, _ := client(t, func(o *kinesis.Options) {
				if h2 {
					p := new(http.Protocols)
					p.SetUnencryptedHTTP2(true)
					o.HTTPClient = &http.Client{Transport: &http.Transport{Protocols: p}}
				}
			})
			ctx := t.Context()
			name := aws.String("s")
			_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)})
			require.NoError(t, err)
			d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
			require.NoError(t, err)
			reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: d.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("c")})
			require.NoError(t, err)
			put := func(data string) {
				_, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: []byte(data)})
				require.NoError(t, err)
			}
			put("before")

			subscribe := func(cont string) *kinesis.SubscribeToShardEventStream {
				return server.SubscribeAfter(t, k, reg.Consumer.ConsumerARN, cont)
			}
			stream := subscribe("")
			defer func() { stream.Close() }()
			var got []string
			var cont string
			timeout := time.After(20 * time.Second)
			for len(got) < 3 {
				select {
				case ev, ok := <-stream.Events():
					if !ok && !h2 && strings.Contains(fmt.Sprint(stream.Err()), "use of closed network connection") {
						// The Go SDK over HTTP/1.1 may close its own connection
						// under load (see the README): go on as a client does.
						t.Logf("the client closed its connection after %v; subscribing again", got)
						stream = subscribe(cont)
						continue
					}
					require.True(t, ok, "stream ended early after %v: %v", got, stream.Err())
					e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
					require.True(t, ok, "%T", ev)
					for _, r := range e.Value.Records {
						got = append(got, string(r.Data))
					}
					require.NotEmpty(t, aws.ToString(e.Value.ContinuationSequenceNumber))
					cont = aws.ToString(e.Value.ContinuationSequenceNumber)
					if len(got) == 1 && len(e.Value.Records) > 0 {
						put("after 1")
						put("after 2")
					}
				case <-timeout:
					t.Fatalf("events so far: %v", got)
				}
			}
			assert.Equal(t, []string{"before", "after 1", "after 2"}, got)
			assert.NotEmpty(t, cont)

			_, err = k.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
			require.NoError(t, err)
			for range stream.Events() {
			}
			var notFound *types.ResourceNotFoundException
			if !h2 && strings.Contains(fmt.Sprint(stream.Err()), "use of closed network connection") {
				// The client closed its own connection first (see above):
				// subscribing again meets the deregistration.
				_, err := k.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
					StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}}, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
				require.ErrorAs(t, err, &notFound)
				return
			}
			require.ErrorAs(t, stream.Err(), &notFound)
			assert.Contains(t, notFound.ErrorMessage(), "deregistered")
		})
	}
}

// TestSDKSubscribeRefused shows a refused subscription as the SDK's typed
// error: a second one at once is over the call rate.
func TestSDKSubscribeRefused(t *testing.T) {
	k, srv := client(t)
	ctx := t.Context()
	st, err := srv.Cluster.CreateStream(ctx, "s")
	require.NoError(t, err)
	reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(st.ARN()), ConsumerName: aws.String("c")})
	require.NoError(t, err)
	in := &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}}
	out, err := k.SubscribeToShard(ctx, in)
	require.NoError(t, err)
	defer out.GetStream().Close()
	_, err = k.SubscribeToShard(ctx, in, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	var limit *types.LimitExceededException
	require.ErrorAs(t, err, &limit)
}

// TestShutdownEndsSubscriptions shows that Shutdown ends open event
// streams at once rather than waiting for their 5 minutes, and that the
// client sees its stream end.
func TestShutdownEndsSubscriptions(t *testing.T) {
	c := runnel.NewCluster()
	defer c.Close()
	st, err := c.CreateStream(t.Context(), "s", runnel.WithShardCount(1))
	require.NoError(t, err)
	con, err := st.RegisterStreamConsumer(t.Context(), runnel.RegisterStreamConsumerInput{ConsumerName: "c"})
	require.NoError(t, err)
	srv := server.New(c)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	k := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + l.Addr().String()),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	out, err := k.SubscribeToShard(t.Context(), &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(con.ConsumerARN), ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	require.NoError(t, err)
	stream := out.GetStream()
	defer stream.Close()
	<-stream.Events() // the first, idle event
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, srv.Shutdown(ctx))
	assert.Less(t, time.Since(start), 2*time.Second)
	for range stream.Events() {
	}
	require.ErrorIs(t, <-done, http.ErrServerClosed)
}
