package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/aws/smithy-go/eventstream"

	"github.com/runnel-go/runnel"
)

// eventStreamContentType is the content type of an event-stream response.
const eventStreamContentType = "application/vnd.amazon.eventstream"

// eventWriteTimeout bounds the write of one event: a client that stops
// reading is cut off instead of holding its subscription forever.
const eventWriteTimeout = 30 * time.Second

// streamer is the result of an operation whose response is a stream of
// events rather than one JSON body.
type streamer interface {
	stream(ctx context.Context, s *Server, w http.ResponseWriter, c *codec)
	// close releases what stream would have used, when it will not run.
	close()
}

type startingPosition struct {
	Type           string
	SequenceNumber string
	Timestamp      *epochSeconds
}

// decode returns the position for the engine.
func (p startingPosition) decode() (runnel.StartingPosition, error) {
	from := runnel.StartingPosition{Type: runnel.IteratorType(p.Type)}
	if p.SequenceNumber != "" {
		n, err := runnel.ParseSequenceNumber(p.SequenceNumber)
		if err != nil {
			return from, err
		}
		from.SequenceNumber = n
	}
	if p.Timestamp != nil {
		from.Timestamp = time.Time(*p.Timestamp)
	}
	return from, nil
}

type subscribeToShardInput struct {
	ConsumerARN      string
	ShardId          string
	StartingPosition startingPosition
	StreamId         string `json:",omitempty"`
	DryRun           bool   `json:",omitempty"`
}

// subscribeToShard subscribes, and answers any refusal as a plain error
// response; the events follow as a stream (subscription.stream).
func subscribeToShard(ctx context.Context, s *Server, req request) (any, error) {
	const op = "SubscribeToShard"
	var in subscribeToShardInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	switch {
	case in.StreamId != "":
		return nil, errNotYet(op, "StreamId")
	case in.DryRun:
		return nil, errNotYet(op, "DryRun")
	}
	st, err := req.consumerStream(op, consumerRef{ConsumerARN: in.ConsumerARN})
	if err != nil {
		return nil, err
	}
	from, err := in.StartingPosition.decode()
	if err != nil {
		return nil, err
	}
	sub, err := st.SubscribeToShard(ctx, runnel.SubscribeToShardInput{ConsumerARN: in.ConsumerARN, ShardID: in.ShardId, StartingPosition: from})
	if err != nil {
		return nil, err
	}
	return subscription{sub: sub, st: st, shard: in.ShardId, consumer: in.ConsumerARN}, nil
}

// subscription streams a subscription's events as AWS event-stream
// messages: first the initial-response that the SDKs wait for, then a
// SubscribeToShardEvent per event (at least every 5 s), until the
// subscription ends. An end after its time or at the end of the shard
// closes the stream cleanly; any other end is sent as an exception event.
type subscription struct {
	sub runnel.ShardSubscription
	st  *runnel.Stream // the subscribed stream, which tells records' encryption
	// shard and consumer (its ARN) are what it reads, for WithMetrics.
	shard, consumer string
}

func (sc subscription) close() { sc.sub.Close() }

// streamMessage is an event-stream message of kind (event or exception)
// named name, with a payload encoded by c.
func streamMessage(c *codec, kind, name string, payload []byte) eventstream.Message {
	nameHeader := eventstream.EventTypeHeader
	if kind == eventstream.ExceptionMessageType {
		nameHeader = eventstream.ExceptionTypeHeader
	}
	var msg eventstream.Message
	msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(kind))
	msg.Headers.Set(nameHeader, eventstream.StringValue(name))
	msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue(c.contentType))
	msg.Payload = payload
	return msg
}

type subscribeToShardEvent struct {
	Records                    []record
	ContinuationSequenceNumber string `json:",omitempty"`
	MillisBehindLatest         int64
	ChildShards                []childShard `json:",omitempty"`
}

func (sc subscription) stream(ctx context.Context, s *Server, w http.ResponseWriter, c *codec) {
	defer sc.sub.Close()
	rc := http.NewResponseController(w)
	enc := eventstream.NewEncoder()
	send := func(msg eventstream.Message) bool {
		if ctx.Err() != nil {
			return false // ended: a deadline set now would undo Shutdown's
		}
		rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if err := enc.Encode(w, msg); err != nil {
			s.log.Debug("runnel server: event stream closed by the client", "err", err)
			return false
		}
		return rc.Flush() == nil
	}
	w.Header().Set("Content-Type", eventStreamContentType)
	w.WriteHeader(http.StatusOK)
	initial, _ := c.marshal(struct{}{})
	if !send(streamMessage(c, eventstream.EventMessageType, "initial-response", initial)) {
		return
	}
	for {
		ev, err := sc.sub.Next(ctx)
		switch {
		case errors.Is(err, runnel.ErrSubscriptionEnded), errors.Is(err, runnel.ErrShardEnded), ctx.Err() != nil:
			return
		case err != nil:
			name, _ := errorName(err)
			payload, _ := c.marshal(struct {
				Message string `json:"message"`
			}{message(err)})
			send(streamMessage(c, eventstream.ExceptionMessageType, name, payload))
			return
		}
		out := subscribeToShardEvent{Records: wireRecords(sc.st, ev.Records), MillisBehindLatest: ev.MillisBehindLatest}
		if !ev.ContinuationSequenceNumber.IsZero() {
			out.ContinuationSequenceNumber = ev.ContinuationSequenceNumber.String()
		}
		out.ChildShards = wireChildShards(ev.ChildShards)
		s.metrics().millisBehindLatest(sc.st, sc.shard, sc.consumer, out.MillisBehindLatest)
		payload, err := c.marshal(out)
		if err != nil || !send(streamMessage(c, eventstream.EventMessageType, "SubscribeToShardEvent", payload)) {
			return
		}
	}
}
