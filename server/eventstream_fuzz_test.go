package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go/eventstream"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
)

// FuzzSubscribeEvents writes fuzzed records (data and partition keys)
// into a stream, subscribes to it through the server over raw HTTP/1.1,
// in JSON or in CBOR, and decodes every message the server writes with
// smithy-go's event-stream decoder (what the AWS SDKs for Go use): first
// the initial-response, then SubscribeToShardEvents whose headers name
// them and whose payloads hold exactly the records written, in order, with
// their sequence numbers, keys, data and arrival times; once the consumer
// is deregistered, a ResourceNotFoundException is the last message and the
// response ends cleanly. The connection is kept alive from one input to
// the next, so each input also shows that an event stream leaves its
// connection reusable.
func FuzzSubscribeEvents(f *testing.F) {
	f.Add(false, uint8(0), "k", []byte("hello"))
	f.Add(true, uint8(0), "k", []byte("hello"))
	f.Add(false, uint8(9), "a\nb\nc", []byte("0123456789abcdefghij"))
	f.Add(true, uint8(63), "ключ\n鍵\n🔑\n<&>\u2028\"\\", bytes.Repeat([]byte{0, 1, 2, 255}, 100))
	f.Add(false, uint8(3), "", []byte{})                                // records without data, the default key
	f.Add(true, uint8(1), strings.Repeat("é", 300), []byte("\x00\xff")) // a key cut at 256 characters
	f.Add(false, uint8(5), "\xff\xfe\n\x00", []byte(`{"Records":[]}`))  // keys made valid UTF-8
	f.Add(true, uint8(2), "k", make([]byte, 64<<10))

	c := runnel.NewCluster()
	f.Cleanup(func() { c.Close() })
	srv := New(c)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	f.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			f.Errorf("Serve: %v", err)
		}
	})

	// One client connection, kept alive across inputs (and dialled again
	// after a failure).
	var (
		mu   sync.Mutex
		conn net.Conn
		br   *bufio.Reader
	)
	f.Cleanup(func() {
		if conn != nil {
			conn.Close()
		}
	})
	var streams atomic.Int64
	f.Fuzz(func(t *testing.T, asCBOR bool, count uint8, keys string, data []byte) {
		ctx := context.Background()
		cd := jsonCodec
		if asCBOR {
			cd = cborCodec
		}
		entries := esRecords(count, keys, data)
		name := fmt.Sprint("fuzz-", streams.Add(1))
		st, err := c.CreateStream(ctx, name, runnel.WithShardCount(1), runnel.WithLimits(runnel.Unlimited()))
		require.NoError(t, err)
		defer c.DeleteStream(ctx, name, runnel.WithEnforceConsumerDeletion())
		con, err := st.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "c"})
		require.NoError(t, err)
		before := time.Now().UnixMilli()
		put, err := st.PutRecords(ctx, runnel.PutRecordsInput{Records: entries})
		require.NoError(t, err)
		after := time.Now().UnixMilli()
		require.Zero(t, put.FailedRecordCount)

		mu.Lock()
		defer mu.Unlock()
		if conn == nil {
			conn, err = net.Dial("tcp", l.Addr().String())
			require.NoError(t, err)
			br = bufio.NewReader(conn)
		}
		defer func() {
			if t.Failed() { // in the middle of a stream, or of anything
				conn.Close()
				conn = nil
			}
		}()
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		in, err := cd.marshal(map[string]any{"ConsumerARN": con.ConsumerARN, "ShardId": "shardId-000000000000", "StartingPosition": map[string]any{"Type": "TRIM_HORIZON"}})
		require.NoError(t, err)
		_, err = conn.Write(rbRequest{target: targetPrefix + "SubscribeToShard", contentType: cd.contentType, body: in}.wire())
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil) // its body is read to its end below, or the connection closed
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, eventStreamContentType, resp.Header.Get("Content-Type"))
		require.False(t, resp.Close, "the server means to close the connection")

		dec := eventstream.NewDecoder()
		next := func() eventstream.Message {
			t.Helper()
			msg, err := dec.Decode(resp.Body, nil)
			require.NoError(t, err)
			return msg
		}
		initial := next()
		esCheckHeaders(t, initial, eventstream.EventMessageType, eventstream.EventTypeHeader, "initial-response", cd)
		var empty map[string]any
		require.NoError(t, esUnmarshal(cd, initial.Payload, &empty), "%q", initial.Payload)
		assert.Empty(t, empty)

		last := runnel.SequenceNumber{}
		for got := 0; got < len(entries); {
			msg := next()
			esCheckHeaders(t, msg, eventstream.EventMessageType, eventstream.EventTypeHeader, "SubscribeToShardEvent", cd)
			var ev esEvent
			require.NoError(t, esUnmarshal(cd, msg.Payload, &ev), "%q", msg.Payload)
			require.LessOrEqual(t, len(ev.Records), len(entries)-got, "more records than written")
			assert.Empty(t, ev.ChildShards)
			assert.GreaterOrEqual(t, ev.MillisBehindLatest, int64(0))
			for _, r := range ev.Records {
				want := entries[got]
				require.Equal(t, put.Records[got].SequenceNumber.String(), r.SequenceNumber, "record %d", got)
				assert.Equal(t, want.PartitionKey, r.PartitionKey, "record %d", got)
				assert.True(t, bytes.Equal(want.Data, r.Data), "record %d: data %q, not %q", got, r.Data, want.Data)
				assert.Equal(t, "NONE", r.EncryptionType)
				assert.True(t, r.ApproximateArrivalTimestamp.ms >= before && r.ApproximateArrivalTimestamp.ms <= after,
					"record %d arrived at %d ms, not in [%d, %d]", got, r.ApproximateArrivalTimestamp.ms, before, after)
				n, err := runnel.ParseSequenceNumber(r.SequenceNumber)
				require.NoError(t, err)
				assert.True(t, last.Cmp(n) < 0, "sequence number %s after %s", n, last)
				last = n
				got++
			}
			if len(ev.Records) > 0 {
				require.Equal(t, last.String(), ev.ContinuationSequenceNumber, "the continuation is the last record")
			} else {
				assert.NotEmpty(t, ev.ContinuationSequenceNumber)
			}
		}

		// The end: deregistering the consumer ends the stream with an
		// exception, after which the response ends.
		require.NoError(t, st.DeregisterStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerARN: con.ConsumerARN}))
		for {
			msg := next()
			if v := msg.Headers.Get(eventstream.MessageTypeHeader); v != nil && v.String() == eventstream.EventMessageType {
				// an idle event, if the inputs took 5 s
				esCheckHeaders(t, msg, eventstream.EventMessageType, eventstream.EventTypeHeader, "SubscribeToShardEvent", cd)
				continue
			}
			esCheckHeaders(t, msg, eventstream.ExceptionMessageType, eventstream.ExceptionTypeHeader, "ResourceNotFoundException", cd)
			var e struct {
				Message string `json:"message" cbor:"message"`
			}
			require.NoError(t, esUnmarshal(cd, msg.Payload, &e), "%q", msg.Payload)
			assert.Contains(t, e.Message, "deregistered")
			break
		}
		_, err = dec.Decode(resp.Body, nil)
		require.ErrorIs(t, err, io.EOF, "a message after the exception")
		require.NoError(t, resp.Body.Close())
	})
}

// esRecords makes 1 to 64 records of the fuzzed inputs: the partition
// keys are the lines of keys, in turn (made valid: UTF-8, 1 to 256
// characters), and data is split among the records.
func esRecords(count uint8, keys string, data []byte) []runnel.PutRecordsEntry {
	n := 1 + int(count)%64
	data = data[:min(len(data), 256<<10)]
	lines := strings.Split(keys, "\n")
	entries := make([]runnel.PutRecordsEntry, n)
	for i := range entries {
		key := strings.ToValidUTF8(lines[i%len(lines)], "\uFFFD")
		if r := []rune(key); len(r) > runnel.MaxPartitionKeyLength {
			key = string(r[:runnel.MaxPartitionKeyLength])
		}
		if key == "" {
			key = "k"
		}
		entries[i] = runnel.PutRecordsEntry{PartitionKey: key, Data: data[i*len(data)/n : (i+1)*len(data)/n]}
	}
	return entries
}

// esCheckHeaders checks that a message has exactly the three headers of
// Kinesis's event-stream messages: its type, its name, and the content
// type of its payload.
func esCheckHeaders(t *testing.T, msg eventstream.Message, kind, nameHeader, name string, cd *codec) {
	t.Helper()
	get := func(h string) string {
		if v := msg.Headers.Get(h); v != nil {
			_, ok := v.(eventstream.StringValue)
			assert.True(t, ok, "header %s is a %T, not a string", h, v)
			return v.String()
		}
		return ""
	}
	require.Equal(t, kind, get(eventstream.MessageTypeHeader), "%q", msg.Payload)
	require.Equal(t, name, get(nameHeader), "%q", msg.Payload)
	require.Equal(t, cd.contentType, get(eventstream.ContentTypeHeader))
	require.Len(t, msg.Headers, 3)
}

// esEvent is a SubscribeToShardEvent as the API carries it.
type esEvent struct {
	Records []struct {
		SequenceNumber              string
		ApproximateArrivalTimestamp esTime
		Data                        []byte
		PartitionKey                string
		EncryptionType              string
	}
	ContinuationSequenceNumber string
	MillisBehindLatest         int64
	ChildShards                []struct {
		ShardId      string
		ParentShards []string
		HashKeyRange struct{ StartingHashKey, EndingHashKey string }
	}
}

// esTime is a timestamp of a payload, in milliseconds since the epoch:
// in JSON a number of seconds, in CBOR tag 1 with milliseconds (an
// integer) or seconds (a float).
type esTime struct{ ms int64 }

func (t *esTime) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	t.ms = int64(math.Round(s * 1e3))
	return nil
}

func (t *esTime) UnmarshalCBOR(b []byte) error {
	var tag cbor.Tag
	if err := cbor.Unmarshal(b, &tag); err != nil {
		return err
	}
	if tag.Number != 1 {
		return fmt.Errorf("timestamp of CBOR tag %d", tag.Number)
	}
	switch v := tag.Content.(type) {
	case uint64:
		t.ms = int64(v)
	case int64:
		t.ms = v
	case float64:
		t.ms = int64(math.Round(v * 1e3))
	default:
		return fmt.Errorf("timestamp of %T", v)
	}
	return nil
}

// esCBOR decodes CBOR payloads strictly, as esUnmarshal does JSON.
var esCBOR, _ = cbor.DecOptions{ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()

// esUnmarshal decodes a payload of the codec's content type strictly:
// fields the API does not have are errors.
func esUnmarshal(cd *codec, b []byte, v any) error {
	if cd == cborCodec {
		return esCBOR.Unmarshal(b, v)
	}
	return unmarshalJSON(b, v)
}
