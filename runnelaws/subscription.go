package runnelaws

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/runnel-go/runnel"
)

// RegisterStreamConsumer implements runnel.FanOutReader: it registers an
// enhanced fan-out consumer of the stream (CREATING at first; Kinesis takes
// a few seconds to make it ACTIVE). A name in use is an error wrapping
// runnel.ErrResourceInUse.
func (s *Stream) RegisterStreamConsumer(ctx context.Context, in runnel.RegisterStreamConsumerInput) (runnel.StreamConsumer, error) {
	const op = "RegisterStreamConsumer"
	arn, err := s.ARN(ctx)
	if err != nil {
		return runnel.StreamConsumer{}, err
	}
	resp, err := s.api.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String(in.ConsumerName), Tags: in.Tags}, kinesisCallOptions)
	if err != nil {
		return runnel.StreamConsumer{}, apiError(ctx, op, s.what()+", consumer "+in.ConsumerName, err)
	}
	c := resp.Consumer
	if c == nil {
		return runnel.StreamConsumer{}, malformed(op, "no Consumer for consumer %s of %s", in.ConsumerName, s.what())
	}
	return runnel.StreamConsumer{
		ConsumerName:              aws.ToString(c.ConsumerName),
		ConsumerARN:               aws.ToString(c.ConsumerARN),
		ConsumerStatus:            runnel.StreamConsumerStatus(c.ConsumerStatus),
		ConsumerCreationTimestamp: aws.ToTime(c.ConsumerCreationTimestamp),
		StreamARN:                 arn,
	}, nil
}

// DescribeStreamConsumer implements runnel.FanOutReader: the consumer
// named by its ARN, or by its name on this stream. A consumer that does
// not exist is an error wrapping runnel.ErrResourceNotFound.
func (s *Stream) DescribeStreamConsumer(ctx context.Context, in runnel.StreamConsumerRef) (runnel.StreamConsumer, error) {
	const op = "DescribeStreamConsumer"
	req := &kinesis.DescribeStreamConsumerInput{}
	what := "consumer " + in.ConsumerARN
	if in.ConsumerARN != "" {
		req.ConsumerARN = aws.String(in.ConsumerARN)
	} else {
		arn, err := s.ARN(ctx)
		if err != nil {
			return runnel.StreamConsumer{}, err
		}
		req.StreamARN, req.ConsumerName = aws.String(arn), aws.String(in.ConsumerName)
		what = s.what() + ", consumer " + in.ConsumerName
	}
	resp, err := s.api.DescribeStreamConsumer(ctx, req, kinesisCallOptions)
	if err != nil {
		return runnel.StreamConsumer{}, apiError(ctx, op, what, err)
	}
	c := resp.ConsumerDescription
	if c == nil {
		return runnel.StreamConsumer{}, malformed(op, "no ConsumerDescription for %s", what)
	}
	return runnel.StreamConsumer{
		ConsumerName:              aws.ToString(c.ConsumerName),
		ConsumerARN:               aws.ToString(c.ConsumerARN),
		ConsumerStatus:            runnel.StreamConsumerStatus(c.ConsumerStatus),
		ConsumerCreationTimestamp: aws.ToTime(c.ConsumerCreationTimestamp),
		StreamARN:                 aws.ToString(c.StreamARN),
	}, nil
}

// SubscribeToShard implements runnel.ShardSubscriber over Kinesis's
// SubscribeToShard event stream (HTTP/2 on Amazon Kinesis). The
// subscription lasts until ctx ends, Close, or the service ends it (after
// 5 minutes on Kinesis): Next then fails with runnel.ErrSubscriptionEnded,
// and the caller subscribes again after the last event's
// ContinuationSequenceNumber, as runnel.ShardReader does.
func (s *Stream) SubscribeToShard(ctx context.Context, in runnel.SubscribeToShardInput) (runnel.ShardSubscription, error) {
	const op = "SubscribeToShard"
	from := in.StartingPosition
	pos := &types.StartingPosition{Type: types.ShardIteratorType(from.Type), Timestamp: timeOrNil(from.Timestamp)}
	if !from.SequenceNumber.IsZero() {
		pos.SequenceNumber = aws.String(from.SequenceNumber.String())
	}
	what := "consumer " + in.ConsumerARN + ", shard " + in.ShardID
	resp, err := s.api.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(in.ConsumerARN), ShardId: aws.String(in.ShardID), StartingPosition: pos}, kinesisCallOptions, ownCodec)
	if err != nil {
		return nil, apiError(ctx, op, what, err)
	}
	return &subscription{ctx: ctx, events: resp.GetStream(), what: what}, nil
}

// subscription is a runnel.ShardSubscription over the SDK's event stream.
type subscription struct {
	ctx    context.Context // the subscribe call's: the stream's life
	events *kinesis.SubscribeToShardEventStream
	what   string

	ended  bool            // the last event of a closed shard was returned
	buf    []runnel.Record // the records of the last event, reused
	closer sync.Once
}

// Next implements runnel.ShardSubscription.
func (sub *subscription) Next(ctx context.Context) (runnel.SubscribeToShardEvent, error) {
	const op = "SubscribeToShard"
	if sub.ended {
		return runnel.SubscribeToShardEvent{}, &runnel.Error{Op: op, Kind: runnel.ErrShardEnded, Msg: sub.what}
	}
	for {
		var ev types.SubscribeToShardEventStream
		var ok bool
		select {
		case ev, ok = <-sub.events.Events():
		case <-ctx.Done():
			return runnel.SubscribeToShardEvent{}, &runnel.Error{Op: op, Kind: ctx.Err(), Msg: sub.what}
		}
		if !ok {
			if err := sub.events.Err(); err != nil {
				return runnel.SubscribeToShardEvent{}, apiError(sub.ctx, op, sub.what, err)
			}
			return runnel.SubscribeToShardEvent{}, &runnel.Error{Op: op, Kind: runnel.ErrSubscriptionEnded, Msg: sub.what}
		}
		e, isRecords := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isRecords {
			continue // an event type this SDK version does not know
		}
		return sub.convert(op, e.Value)
	}
}

// convert turns an event of the SDK into runnel's.
func (sub *subscription) convert(op string, v types.SubscribeToShardEvent) (runnel.SubscribeToShardEvent, error) {
	out := runnel.SubscribeToShardEvent{MillisBehindLatest: aws.ToInt64(v.MillisBehindLatest)}
	var err error
	if sub.buf, err = recordsOf(sub.buf[:0], v.Records); err != nil {
		return runnel.SubscribeToShardEvent{}, malformed(op, "%s: %v", sub.what, err)
	}
	out.Records = sub.buf
	if out.ContinuationSequenceNumber, err = seqOrZero(v.ContinuationSequenceNumber); err != nil {
		return runnel.SubscribeToShardEvent{}, malformed(op, "%s: ContinuationSequenceNumber: %v", sub.what, err)
	}
	if out.ChildShards, err = childShardsOf(v.ChildShards); err != nil {
		return runnel.SubscribeToShardEvent{}, malformed(op, "%s: %v", sub.what, err)
	}
	sub.ended = out.ContinuationSequenceNumber.IsZero()
	return out, nil
}

// Close implements runnel.ShardSubscription.
func (sub *subscription) Close() error {
	sub.closer.Do(func() { sub.events.Close() })
	return nil
}
