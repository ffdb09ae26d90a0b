package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
)

// A server of a cluster on a loopback port, and the AWS SDK for Go talking
// to it as it would to Amazon Kinesis. In a Go test, servertest.New does
// the first half in one line.
func Example() {
	c := runnel.NewCluster()
	defer c.Close()
	srv := server.New(c, server.WithMetrics())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	ctx := context.Background()
	k := kinesis.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + l.Addr().String()),
		Credentials:  credentials.NewStaticCredentialsProvider("any", "any", ""),
	})
	if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(1)}); err != nil {
		panic(err)
	}
	put, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("customer-1"), Data: []byte("order 1")})
	if err != nil {
		panic(err)
	}
	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("orders"), ShardId: put.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		panic(err)
	}
	out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		panic(err)
	}
	for _, r := range out.Records {
		fmt.Printf("%s %s\n", aws.ToString(r.PartitionKey), r.Data)
	}
	_, err = k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("nope")})
	var notFound *types.ResourceNotFoundException
	fmt.Println(errors.As(err, &notFound))
	// Output:
	// customer-1 order 1
	// true
}
