package server

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/eventstream"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
)

// The robustness tests talk to a server over raw connections to
// 127.0.0.1: malformed, truncated and oversized requests, clients that go
// away in the middle of a request or of a response, clients that never
// read their event stream, and many connections at once. Each shows that
// the server answers with AWS-style errors, keeps serving, and leaves no
// goroutine behind.

// The frames that mark, in a goroutine's stack, a request the server is
// answering and a connection it serves (HTTP/1.1 or h2c).
const (
	rbHandler = "runnel/server.(*Server).ServeHTTP"
	rbConn    = "net/http.(*conn).serve"
	// rbBlockedWrite marks a goroutine waiting for the network to take
	// its write.
	rbBlockedWrite = "internal/poll.(*pollDesc).waitWrite"
)

// rbAllStacks returns the stacks of all running goroutines.
func rbAllStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// rbStacks returns the stacks of the running goroutines that contain
// every one of frames.
func rbStacks(frames ...string) []string {
	var out []string
	for _, g := range rbAllStacks() {
		all := true
		for _, f := range frames {
			all = all && strings.Contains(g, f)
		}
		if all {
			out = append(out, g)
		}
	}
	return out
}

// rbEventually polls cond every few milliseconds until it holds, for up
// to within, and fails the test with why (said then) if it never does.
func rbEventually(t testing.TB, within time.Duration, cond func() bool, why func() string) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("after %v: %s", within, why())
			return
		}
	}
}

// rbSays is a why of rbEventually that says the same at any time.
func rbSays(s string) func() string { return func() string { return s } }

// rbNoLeak fails the test if, once the test and its cleanups are done,
// more goroutines run than when rbNoLeak was called: it waits up to 5 s
// for them to end and shows the stacks of the rest. Call it first, so that
// its cleanup runs after the others (the server's and the cluster's
// Close, the clients').
func rbNoLeak(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > base; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines run, %d ran before the test:\n\n%s", runtime.NumGoroutine(), base, strings.Join(rbAllStacks(), "\n\n"))
				return
			}
		}
	})
}

// rbServer is a server of a new cluster, serving on a loopback port.
type rbServer struct {
	*Server
	cluster *runnel.Cluster
	addr    string // 127.0.0.1:<port>
	served  chan error
}

// rbStart starts a server of a new cluster on a loopback port; the test's
// cleanup closes both and checks that Serve returned as it should.
func rbStart(t *testing.T, opts ...Option) *rbServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := runnel.NewCluster()
	s := &rbServer{Server: New(c, opts...), cluster: c, addr: l.Addr().String(), served: make(chan error, 1)}
	go func() { s.served <- s.Serve(l) }()
	t.Cleanup(func() {
		assert.NoError(t, s.Close())
		assert.ErrorIs(t, <-s.served, http.ErrServerClosed)
		c.Close()
	})
	return s
}

// rbStream creates a stream of one shard without throughput limits, so
// that tests may read and write as fast as they like.
func rbStream(t *testing.T, c *runnel.Cluster, name string) *runnel.Stream {
	t.Helper()
	st, err := c.CreateStream(t.Context(), name, runnel.WithShardCount(1), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	return st
}

// rbRequest is a raw HTTP/1.1 request, written to the wire as it is.
type rbRequest struct {
	method      string // POST when empty
	target      string // X-Amz-Target; none when empty
	contentType string // none when empty
	body        []byte
	chunked     bool     // the body is sent chunked, without Content-Length
	length      int      // the Content-Length sent, if not len(body)
	header      []string // more header lines, "Name: value"
}

// wire returns the request as it goes on the wire.
func (r rbRequest) wire() []byte {
	var b bytes.Buffer
	b.Grow(len(r.body) + len(r.body)/(64<<10)*8 + 512)
	fmt.Fprintf(&b, "%s / HTTP/1.1\r\nHost: 127.0.0.1\r\n", cmp.Or(r.method, http.MethodPost))
	if r.target != "" {
		fmt.Fprintf(&b, "X-Amz-Target: %s\r\n", r.target)
	}
	if r.contentType != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", r.contentType)
	}
	for _, h := range r.header {
		b.WriteString(h + "\r\n")
	}
	switch {
	case r.chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for body := r.body; len(body) > 0; {
			n := min(len(body), 64<<10)
			fmt.Fprintf(&b, "%x\r\n", n)
			b.Write(body[:n])
			b.WriteString("\r\n")
			body = body[n:]
		}
		b.WriteString("0\r\n\r\n")
	default:
		n := len(r.body)
		if r.length != 0 {
			n = r.length
		}
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", n)
		b.Write(r.body)
	}
	return b.Bytes()
}

// rbResponse is a response read from a raw connection.
type rbResponse struct {
	status int
	header http.Header
	body   []byte
	close  bool // the server closes the connection after it
}

// rbClient is a raw HTTP/1.1 client on one TCP connection to 127.0.0.1.
type rbClient struct {
	conn *net.TCPConn
	br   *bufio.Reader
}

// rbDial connects to addr; the connection is closed at the test's cleanup
// and fails every read or write after 10 s, so that no test hangs.
func rbDial(t *testing.T, addr string) *rbClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	return &rbClient{conn: conn.(*net.TCPConn), br: bufio.NewReader(conn)}
}

// do sends the request and reads its response. The request is written
// while the response is read, so that a server that answers before it
// has read the whole body is seen to do so.
func (c *rbClient) do(req rbRequest) (rbResponse, error) {
	written := make(chan error, 1)
	go func() {
		_, err := c.conn.Write(req.wire())
		written <- err
	}()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: cmp.Or(req.method, http.MethodPost)})
	if err != nil {
		c.conn.Close()
		return rbResponse{}, fmt.Errorf("reading the response (the write: %v): %w", <-written, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.conn.Close()
		<-written
		return rbResponse{}, fmt.Errorf("reading the response body: %w", err)
	}
	out := rbResponse{status: resp.StatusCode, header: resp.Header, body: body, close: resp.Close}
	if out.close {
		c.conn.Close() // a server that answered early need not read the rest
	}
	if err := <-written; err != nil && !out.close {
		return out, fmt.Errorf("writing the request: %w", err)
	}
	return out, nil
}

// rbDo sends one request on a new connection and closes it.
func rbDo(t *testing.T, addr string, req rbRequest) rbResponse {
	t.Helper()
	c := rbDial(t, addr)
	defer c.conn.Close()
	resp, err := c.do(req)
	require.NoError(t, err)
	return resp
}

// rbEncode encodes a request body with the codec.
func rbEncode(t *testing.T, c *codec, v any) []byte {
	t.Helper()
	b, err := c.marshal(v)
	require.NoError(t, err)
	return b
}

// rbMaxMessage bounds the message of an error: a huge value in a request
// must not come back whole.
const rbMaxMessage = 1 << 10

// rbCheckError checks that an answer is an AWS-style error: a 4xx status
// (want, unless 0), the error's name in X-Amzn-ErrorType and in the
// __type of a body encoded as the request was, a name of runnel's error
// table (wantType, unless empty), and a message of at most rbMaxMessage
// bytes.
func rbCheckError(t *testing.T, c *codec, resp rbResponse, method string, wantStatus int, wantType string) {
	t.Helper()
	rbCheckErrorUpTo(t, c, resp, method, wantStatus, wantType, rbMaxMessage)
}

// rbCheckErrorUpTo is rbCheckError with messages of up to maxMessage
// bytes.
func rbCheckErrorUpTo(t *testing.T, c *codec, resp rbResponse, method string, wantStatus int, wantType string, maxMessage int) {
	t.Helper()
	if wantStatus != 0 {
		assert.Equal(t, wantStatus, resp.status, "status; body %.300q", resp.body)
	}
	assert.True(t, resp.status >= 400 && resp.status < 500, "status %d is not a 4xx; body %.300q", resp.status, resp.body)
	name := resp.header.Get("X-Amzn-ErrorType")
	assert.NotNil(t, runnel.ErrorForName(name), "X-Amzn-ErrorType %q is not an error of the table", name)
	if wantType != "" {
		assert.Equal(t, wantType, name, "X-Amzn-ErrorType; body %.300q", resp.body)
	}
	if method == http.MethodHead {
		assert.Empty(t, resp.body, "a HEAD answer has no body")
		return
	}
	assert.Equal(t, c.contentType, resp.header.Get("Content-Type"))
	var e struct {
		Type    string `json:"__type" cbor:"__type"`
		Message string `json:"message" cbor:"message"`
	}
	var err error
	if c == cborCodec {
		err = cbor.Unmarshal(resp.body, &e)
	} else {
		err = json.Unmarshal(resp.body, &e)
	}
	if !assert.NoError(t, err, "the error body %.300q is not %s", resp.body, c.contentType) {
		return
	}
	assert.Equal(t, name, e.Type, "__type and X-Amzn-ErrorType")
	assert.NotEmpty(t, e.Message)
	assert.LessOrEqual(t, len(e.Message), maxMessage, "the message is not bounded: %.200q…", e.Message)
}

// rbCheckHealthy shows that the server answers ordinary requests
// correctly: it creates a stream, writes a record, and reads it back.
func rbCheckHealthy(t *testing.T, addr string) {
	t.Helper()
	name := fmt.Sprintf("healthy-%d", time.Now().UnixNano())
	call := func(op string, in any, out any) {
		t.Helper()
		resp := rbDo(t, addr, rbRequest{target: targetPrefix + op, contentType: jsonContentType, body: rbEncode(t, jsonCodec, in)})
		require.Equal(t, http.StatusOK, resp.status, "%s: %s", op, resp.body)
		require.NoError(t, json.Unmarshal(resp.body, out), "%s: %s", op, resp.body)
	}
	var none struct{}
	call("CreateStream", map[string]any{"StreamName": name, "ShardCount": 1}, &none)
	var put struct{ ShardId, SequenceNumber string }
	call("PutRecord", map[string]any{"StreamName": name, "PartitionKey": "k", "Data": []byte("still serving")}, &put)
	require.Equal(t, "shardId-000000000000", put.ShardId)
	var it struct{ ShardIterator string }
	call("GetShardIterator", map[string]any{"StreamName": name, "ShardId": put.ShardId, "ShardIteratorType": "TRIM_HORIZON"}, &it)
	var got struct {
		Records []struct {
			Data           []byte
			SequenceNumber string
		}
	}
	call("GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, &got)
	require.Len(t, got.Records, 1)
	assert.Equal(t, "still serving", string(got.Records[0].Data))
	assert.Equal(t, put.SequenceNumber, got.Records[0].SequenceNumber)
}

// rbCBOR encodes v as CBOR.
func rbCBOR(v any) []byte {
	b, err := cbor.Marshal(v)
	if err != nil {
		panic(err) // the tests' own values
	}
	return b
}

// TestRobustMalformedRequests sends requests no SDK sends: bodies that
// are not JSON or CBOR, truncated, of the wrong types, nested too deep,
// with huge strings, over the size limit; no or unknown X-Amz-Target;
// other methods. Over raw HTTP/1.1 and over h2c, every one is answered
// with an AWS-style 4xx error whose message stays short, and afterwards
// the server still answers ordinary requests correctly.
func TestRobustMalformedRequests(t *testing.T) {
	rbNoLeak(t)
	srv := rbStart(t)
	rbStream(t, srv.cluster, "s")

	huge := strings.Repeat("a", 256<<10)
	validPut := rbEncode(t, jsonCodec, map[string]any{"StreamName": "s", "Records": []map[string]any{{"PartitionKey": "k", "Data": []byte("0123456789")}}})
	validCBOR := rbCBOR(map[string]any{"StreamName": "s", "PartitionKey": "k", "Data": []byte("0123456789")})
	deepJSON := `{"Limit":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`
	deepCBOR := []byte{0xa1, 0x65, 'L', 'i', 'm', 'i', 't'} // {"Limit": [[[[…]]]]}
	deepCBOR = append(append(deepCBOR, bytes.Repeat([]byte{0x81}, 1000)...), 0x01)
	target := func(op string) string { return targetPrefix + op }
	big := bytes.Repeat([]byte{' '}, maxBody+4<<20) // what is over the limit is never decoded
	type tc struct {
		name   string
		req    rbRequest
		status int    // 0: any 4xx
		want   string // the error's name; "" for any of the table
	}
	jsonCase := func(name, op, body string, want string) tc {
		return tc{name, rbRequest{target: target(op), contentType: jsonContentType, body: []byte(body)}, http.StatusBadRequest, want}
	}
	cborCase := func(name, op string, body []byte, want string) tc {
		return tc{name, rbRequest{target: target(op), contentType: cborContentType, body: body}, http.StatusBadRequest, want}
	}
	const ser, val, inv, unk = "SerializationException", "ValidationException", "InvalidArgumentException", "UnknownOperationException"
	cases := []tc{
		// Bodies that are not JSON, or not the JSON of the operation.
		jsonCase("not JSON", "ListStreams", "hello", ser),
		jsonCase("binary", "PutRecord", "\xff\x00\xfe\x01", ser),
		jsonCase("truncated JSON", "PutRecords", string(validPut[:len(validPut)/2]), ser),
		jsonCase("truncated in an escape", "DescribeStreamSummary", `{"StreamName":"s\u00`, ser),
		jsonCase("JSON array", "ListStreams", `[]`, ser),
		jsonCase("number for a string", "DescribeStreamSummary", `{"StreamName":5}`, ser),
		jsonCase("string for a number", "CreateStream", `{"StreamName":"x","ShardCount":"1"}`, ser),
		jsonCase("object for an array", "PutRecords", `{"StreamName":"s","Records":{}}`, ser),
		jsonCase("array for an object", "SubscribeToShard", `{"ConsumerARN":"x","ShardId":"x","StartingPosition":[]}`, ser),
		jsonCase("not base64", "PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"!!!!"}`, ser),
		jsonCase("number too large", "ListStreams", `{"Limit":99999999999999999999}`, ser),
		jsonCase("float for an integer", "ListStreams", `{"Limit":1.5}`, ser),
		jsonCase("exponent overflow", "ListStreams", `{"Limit":1e400}`, ser),
		jsonCase("nested too deep", "ListStreams", deepJSON, ser),
		jsonCase("unknown field", "PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"AA==","Extra":1}`, ser),
		jsonCase("two objects", "ListStreams", `{}{}`, ser),
		// Bodies that are not CBOR, or not the CBOR of the operation.
		cborCase("not CBOR", "ListStreams", []byte("hello"), ser),
		cborCase("JSON sent as CBOR", "ListStreams", []byte(`{"Limit":1}`), ser),
		cborCase("truncated CBOR", "PutRecord", validCBOR[:len(validCBOR)/2], ser),
		cborCase("CBOR array", "ListStreams", rbCBOR([]int{1}), ser),
		cborCase("CBOR text for a number", "ListStreams", rbCBOR(map[string]any{"Limit": "one"}), ser),
		cborCase("CBOR bytes for a string", "DescribeStreamSummary", rbCBOR(map[string]any{"StreamName": []byte("s")}), ser),
		cborCase("CBOR count over int", "CreateStream", rbCBOR(map[string]any{"StreamName": "x", "ShardCount": uint64(1 << 63)}), ser),
		cborCase("CBOR length of 2^64-1", "PutRecord", []byte{0xa1, 0x64, 'D', 'a', 't', 'a', 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ser),
		cborCase("CBOR map of 2^32-1 pairs", "ListStreams", []byte{0xba, 0xff, 0xff, 0xff, 0xff}, ser),
		cborCase("CBOR nested too deep", "ListStreams", deepCBOR, ser),
		cborCase("CBOR duplicate key", "ListStreams", []byte{0xa2, 0x65, 'L', 'i', 'm', 'i', 't', 0x01, 0x65, 'L', 'i', 'm', 'i', 't', 0x02}, ser),
		cborCase("CBOR invalid UTF-8", "DescribeStreamSummary", []byte{0xa1, 0x6a, 'S', 't', 'r', 'e', 'a', 'm', 'N', 'a', 'm', 'e', 0x62, 0xff, 0xfe}, ser),
		cborCase("CBOR trailing data", "ListStreams", append(rbCBOR(map[string]any{}), 0x00), ser),
		cborCase("CBOR timestamp of another tag", "ListShards", rbCBOR(map[string]any{"StreamName": "s", "ShardFilter": map[string]any{"Type": "FROM_TIMESTAMP", "Timestamp": cbor.Tag{Number: 0, Content: "2020-01-01T00:00:00Z"}}}), ser),
		// Huge strings: refused, and not echoed whole.
		jsonCase("huge stream name", "DescribeStreamSummary", `{"StreamName":"`+huge+`"}`, val),
		jsonCase("huge stream ARN", "DescribeStreamSummary", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/`+huge+`"}`, val),
		jsonCase("huge unicode stream name", "CreateStream", `{"StreamName":"`+strings.Repeat("é", 128<<10)+`","ShardCount":1}`, val),
		jsonCase("huge partition key", "PutRecord", `{"StreamName":"s","PartitionKey":"`+huge+`","Data":"AA=="}`, val),
		jsonCase("huge explicit hash key", "PutRecord", `{"StreamName":"s","PartitionKey":"k","ExplicitHashKey":"`+strings.Repeat("1", 256<<10)+`","Data":"AA=="}`, val),
		jsonCase("huge sequence number for ordering", "PutRecord", `{"StreamName":"s","PartitionKey":"k","SequenceNumberForOrdering":"`+strings.Repeat("1", 256<<10)+`","Data":"AA=="}`, val),
		jsonCase("huge data", "PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"`+base64.StdEncoding.EncodeToString(make([]byte, 3<<19))+`"}`, val),
		jsonCase("huge shard id", "GetShardIterator", `{"StreamName":"s","ShardId":"`+huge+`","ShardIteratorType":"LATEST"}`, ""),
		jsonCase("huge iterator type", "GetShardIterator", `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"`+huge+`"}`, val),
		jsonCase("huge shard iterator", "GetRecords", `{"ShardIterator":"`+huge+`"}`, ""),
		jsonCase("huge next token", "ListShards", `{"NextToken":"`+huge+`"}`, ""),
		jsonCase("huge consumer ARN", "SubscribeToShard", `{"ConsumerARN":"`+huge+`","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}}`, val),
		jsonCase("huge consumer name", "RegisterStreamConsumer", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","ConsumerName":"`+huge+`"}`, val),
		jsonCase("huge tag key", "AddTagsToStream", `{"StreamName":"s","Tags":{"`+huge+`":"v"}}`, val),
		cborCase("huge CBOR stream name", "DescribeStreamSummary", rbCBOR(map[string]any{"StreamName": huge}), val),
		// The target and the method.
		{"no target", rbRequest{contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"no target, CBOR", rbRequest{contentType: cborContentType, body: rbCBOR(map[string]any{})}, http.StatusBadRequest, unk},
		{"unknown operation", rbRequest{target: target("Frobnicate"), contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"prefix only", rbRequest{target: targetPrefix, contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"another API version", rbRequest{target: "Kinesis_20991231.ListStreams", contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"another service", rbRequest{target: "DynamoDB_20120810.ListTables", contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"lower case", rbRequest{target: strings.ToLower(target("ListStreams")), contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"huge target", rbRequest{target: target(strings.Repeat("X", 32<<10)), contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"GET", rbRequest{method: http.MethodGet, target: target("ListStreams")}, http.StatusBadRequest, unk},
		{"PUT", rbRequest{method: http.MethodPut, target: target("ListStreams"), contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest, unk},
		{"DELETE", rbRequest{method: http.MethodDelete, target: target("DeleteStream"), contentType: jsonContentType, body: []byte(`{"StreamName":"s"}`)}, http.StatusBadRequest, unk},
		{"OPTIONS", rbRequest{method: http.MethodOptions, target: target("ListStreams")}, http.StatusBadRequest, unk},
		{"HEAD", rbRequest{method: http.MethodHead, target: target("ListStreams")}, http.StatusBadRequest, unk},
		// The size limit.
		{"over the limit, CBOR, chunked", rbRequest{target: target("PutRecord"), contentType: cborContentType, body: big[:maxBody+1], chunked: true}, http.StatusRequestEntityTooLarge, inv},
		{"far over the limit", rbRequest{target: target("PutRecord"), contentType: jsonContentType, body: big}, http.StatusRequestEntityTooLarge, inv},
		{"unknown target over the limit", rbRequest{target: target("Frobnicate"), contentType: jsonContentType, body: big[:maxBody+1]}, 0, ""}, // either refusal
	}
	// Large bodies are sent over HTTP/1.1 only, but for one: once is enough.
	// (A body one byte over the limit is sent below, on a connection kept
	// alive.)
	http1Only := map[string]bool{"far over the limit": true, "unknown target over the limit": true}

	codecOfCase := func(r rbRequest) *codec {
		if r.contentType == cborContentType {
			return cborCodec
		}
		return jsonCodec
	}
	t.Run("http1", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp := rbDo(t, srv.addr, tc.req)
				rbCheckError(t, codecOfCase(tc.req), resp, tc.req.method, tc.status, tc.want)
			})
		}
	})
	t.Run("h2c", func(t *testing.T) {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: p}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for _, tc := range cases {
			if http1Only[tc.name] {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				var body io.Reader
				if tc.req.body != nil {
					body = bytes.NewReader(tc.req.body)
				}
				req, err := http.NewRequest(cmp.Or(tc.req.method, http.MethodPost), "http://"+srv.addr+"/", body)
				require.NoError(t, err)
				if tc.req.chunked {
					req.ContentLength = -1 // streamed, without content-length
				}
				if tc.req.target != "" {
					req.Header.Set("X-Amz-Target", tc.req.target)
				}
				if tc.req.contentType != "" {
					req.Header.Set("Content-Type", tc.req.contentType)
				}
				resp, err := client.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				assert.Equal(t, 2, resp.ProtoMajor)
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				rbCheckError(t, codecOfCase(tc.req), rbResponse{status: resp.StatusCode, header: resp.Header, body: b}, tc.req.method, tc.status, tc.want)
			})
		}
	})

	t.Run("at the limit", func(t *testing.T) {
		// A body of maxBody bytes is read and decoded: its record is
		// refused for its size, not the body for its.
		put := func(n int) []byte {
			return rbCBOR(map[string]any{"StreamName": "s", "PartitionKey": "k", "Data": make([]byte, n)})
		}
		const n = 1 << 16 // a byte string of 2^16 to 2^32-1 bytes has a header of 5
		body := put(maxBody - (len(put(n)) - n))
		require.Len(t, body, maxBody)
		resp := rbDo(t, srv.addr, rbRequest{target: target("PutRecord"), contentType: cborContentType, body: body})
		rbCheckError(t, cborCodec, resp, http.MethodPost, http.StatusBadRequest, val)
	})

	t.Run("keep-alive after refusals", func(t *testing.T) {
		// A refused request does not spoil its connection: the next one on
		// it is answered. A body over the limit is refused by its
		// Content-Length, unread, and its connection closed.
		c := rbDial(t, srv.addr)
		for _, tc := range []struct {
			req    rbRequest
			status int
		}{
			{rbRequest{target: target("ListStreams"), contentType: jsonContentType, body: []byte("{")}, http.StatusBadRequest},
			{rbRequest{target: target("Frobnicate"), contentType: jsonContentType, body: []byte("{}")}, http.StatusBadRequest},
		} {
			resp, err := c.do(tc.req)
			require.NoError(t, err)
			rbCheckError(t, jsonCodec, resp, http.MethodPost, tc.status, "")
			require.False(t, resp.close, "the server closes the connection after %.40q", tc.req.body)
		}
		resp, err := c.do(rbRequest{target: target("ListStreams"), contentType: jsonContentType, body: []byte("{}")})
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		assert.Contains(t, string(resp.body), `"StreamNames":["s"]`)

		over := rbDial(t, srv.addr)
		resp, err = over.do(rbRequest{target: target("PutRecord"), contentType: jsonContentType, body: big[:maxBody+1]})
		require.NoError(t, err)
		rbCheckError(t, jsonCodec, resp, http.MethodPost, http.StatusRequestEntityTooLarge, "")
		assert.True(t, resp.close, "the connection of an unread body is closed")
	})

	rbCheckHealthy(t, srv.addr)
	assert.Empty(t, rbStacks(rbHandler), "no request is still being answered")
}

// TestRobustMalformedSignatures sends, to a server that verifies
// signatures (WithCredentials), Authorization headers that are not
// SigV4, truncated, huge, or doubled, and dates that are not dates: each
// is answered with one of the service's AWS-style 4xx errors, and a
// request signed by the AWS SDK's signer is still served. The message of
// a signature that does not match shows the server's canonical request,
// as AWS's does: it is bounded by the size of the request's header (64
// KiB at most), not by rbMaxMessage.
func TestRobustMalformedSignatures(t *testing.T) {
	rbNoLeak(t)
	srv := rbStart(t, WithCredentials(Credential{AccessKeyID: "AKID", SecretAccessKey: "secret"}))
	now := time.Now().UTC()
	date, day := now.Format(sigV4TimeFormat), now.Format(sigV4DateFormat)
	scope := "AKID/" + day + "/us-east-1/kinesis/aws4_request"
	sig := func(credential, signedHeaders, signature string) string {
		return "Authorization: AWS4-HMAC-SHA256 Credential=" + credential + ", SignedHeaders=" + signedHeaders + ", Signature=" + signature
	}
	zeros := strings.Repeat("0", 64)
	const signed = "host;x-amz-date;x-amz-target"
	huge := strings.Repeat("a", 16<<10)
	for _, tc := range []struct {
		name   string
		header []string
		want   string // "" for any of the table
	}{
		{"unsigned", nil, "MissingAuthenticationTokenException"},
		{"not SigV4", []string{"Authorization: Basic dXNlcjpwYXNz"}, ""},
		{"algorithm only", []string{"Authorization: AWS4-HMAC-SHA256"}, "IncompleteSignatureException"},
		{"empty parts", []string{sig("", "", "")}, "IncompleteSignatureException"},
		{"short scope", []string{sig("AKID/"+day, signed, zeros)}, "IncompleteSignatureException"},
		{"scope of 10,000 parts", []string{sig(strings.Repeat("a/", 10_000), signed, zeros)}, ""},
		{"huge access key", []string{sig(huge+"/"+day+"/us-east-1/kinesis/aws4_request", signed, zeros)}, ""},
		{"huge region", []string{sig("AKID/"+day+"/"+huge+"/kinesis/aws4_request", signed, zeros)}, ""},
		{"4,000 signed headers", []string{sig(scope, strings.Repeat("x-a;", 4_000)+signed, zeros)}, ""},
		{"signature not hex", []string{sig(scope, signed, strings.Repeat("z", 64))}, ""},
		{"huge signature", []string{sig(scope, signed, strings.Repeat("0", 16<<10))}, ""},
		{"unknown key", []string{sig("NOPE/"+day+"/us-east-1/kinesis/aws4_request", signed, zeros)}, "UnrecognizedClientException"},
		{"wrong signature", []string{sig(scope, signed, zeros)}, "InvalidSignatureException"},
		{"two Authorization headers", []string{sig(scope, signed, zeros), sig(scope, signed, zeros)}, "IncompleteSignatureException"},
		{"unicode", []string{sig("ключ/"+day+"/us-east-1/kinesis/aws4_request", signed, zeros)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := append(slices.Clip(tc.header), "X-Amz-Date: "+date)
			resp := rbDo(t, srv.addr, rbRequest{target: targetPrefix + "ListStreams", contentType: jsonContentType, body: []byte("{}"), header: header})
			rbCheckErrorUpTo(t, jsonCodec, resp, http.MethodPost, http.StatusBadRequest, tc.want, rbMaxMessage+2*len(strings.Join(header, "")))
		})
	}
	for _, tc := range []struct{ name, date string }{
		{"no date", ""},
		{"date not a date", "X-Amz-Date: yesterday"},
		{"huge date", "X-Amz-Date: " + strings.Repeat("2", 16<<10)},
		{"stale date", "X-Amz-Date: 20000101T000000Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := []string{sig(scope, signed, zeros)}
			if tc.date != "" {
				header = append(header, tc.date)
			}
			resp := rbDo(t, srv.addr, rbRequest{target: targetPrefix + "ListStreams", contentType: jsonContentType, body: []byte("{}"), header: header})
			rbCheckError(t, jsonCodec, resp, http.MethodPost, http.StatusBadRequest, "")
		})
	}

	// A request the AWS SDK signs is served.
	body := []byte("{}")
	req, err := http.NewRequest(http.MethodPost, "http://"+srv.addr+"/", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", targetPrefix+"ListStreams")
	req.Header.Set("Content-Type", jsonContentType)
	sum := sha256.Sum256(body)
	require.NoError(t, v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now()))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.Contains(t, string(b), `"StreamNames":[]`)
}

// TestRobustClientDisconnects has clients go away in the middle of a
// request, of a large response and of an event stream. The server frees
// each connection and its handler at once, within 3 s, which is before
// any of its timeouts (10 s for a request's header, 5 s to the next idle
// event of a stream) could have done it; it keeps serving, and leaves no
// goroutine behind once closed.
func TestRobustClientDisconnects(t *testing.T) {
	rbNoLeak(t)
	srv := rbStart(t)
	st := rbStream(t, srv.cluster, "s")
	// connsGone waits until the server serves no connection and answers
	// no request any more.
	connsGone := func(t *testing.T, within time.Duration) {
		t.Helper()
		rbEventually(t, within, func() bool { return len(rbStacks(rbConn)) == 0 && len(rbStacks(rbHandler)) == 0 }, func() string {
			return fmt.Sprintf("the server still serves %d connections and answers %d requests:\n\n%s",
				len(rbStacks(rbConn)), len(rbStacks(rbHandler)), strings.Join(rbStacks(rbConn), "\n\n"))
		})
	}

	t.Run("half a body", func(t *testing.T) {
		// Headers announce 1000 bytes; half of them come, then the client
		// closes the connection.
		for i := range 20 {
			c := rbDial(t, srv.addr)
			cd := []*codec{jsonCodec, cborCodec}[i%2]
			body := bytes.Repeat([]byte("x"), 500)
			wire := rbRequest{target: targetPrefix + "PutRecord", contentType: cd.contentType, body: body, length: 1000}.wire()
			_, err := c.conn.Write(wire)
			require.NoError(t, err)
			require.NoError(t, c.conn.Close())
		}
		connsGone(t, 3*time.Second)
		rbCheckHealthy(t, srv.addr)
	})

	t.Run("half a body, then half-close", func(t *testing.T) {
		// The client stops writing (FIN) but reads on: it is told that the
		// body was cut short.
		for _, cd := range []*codec{jsonCodec, cborCodec} {
			c := rbDial(t, srv.addr)
			wire := rbRequest{target: targetPrefix + "ListStreams", contentType: cd.contentType, body: []byte("{"), length: 1000}.wire()
			_, err := c.conn.Write(wire)
			require.NoError(t, err)
			require.NoError(t, c.conn.CloseWrite())
			resp, err := http.ReadResponse(c.br, nil)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			rbCheckError(t, cd, rbResponse{status: resp.StatusCode, header: resp.Header, body: b}, http.MethodPost, http.StatusBadRequest, "SerializationException")
			c.conn.Close()
		}
		connsGone(t, 3*time.Second)
	})

	t.Run("headers only", func(t *testing.T) {
		for range 20 {
			c := rbDial(t, srv.addr)
			_, err := c.conn.Write([]byte("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: " + targetPrefix + "ListStreams\r\nContent-Le"))
			require.NoError(t, err)
			require.NoError(t, c.conn.Close())
		}
		connsGone(t, 3*time.Second)
	})

	t.Run("in the middle of a large GetRecords response", func(t *testing.T) {
		// 6 records of 1 MiB: a response of 6 to 8 MiB, more than the
		// sockets buffer when the client's is small, so the server is in
		// the middle of writing it when the client goes.
		const n = 6
		want := make([][]byte, n)
		for i := range want {
			want[i] = bytes.Repeat([]byte{byte('a' + i)}, 1<<20-16)
			_, err := st.PutRecord(t.Context(), runnel.PutRecordInput{PartitionKey: "k", Data: want[i]})
			require.NoError(t, err)
		}
		getRecords := func(cd *codec) rbRequest {
			resp := rbDo(t, srv.addr, rbRequest{target: targetPrefix + "GetShardIterator", contentType: jsonContentType,
				body: []byte(`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`)})
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
			var it struct{ ShardIterator string }
			require.NoError(t, json.Unmarshal(resp.body, &it))
			return rbRequest{target: targetPrefix + "GetRecords", contentType: cd.contentType, body: rbEncode(t, cd, map[string]any{"ShardIterator": it.ShardIterator})}
		}
		for _, cd := range []*codec{jsonCodec, cborCodec} {
			c := rbDial(t, srv.addr)
			require.NoError(t, c.conn.SetReadBuffer(4<<10))
			_, err := c.conn.Write(getRecords(cd).wire())
			require.NoError(t, err)
			resp, err := http.ReadResponse(c.br, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			_, err = io.ReadFull(resp.Body, make([]byte, 64<<10))
			require.NoError(t, err)
			rbEventually(t, 8*time.Second, func() bool { return len(rbStacks(rbHandler, rbBlockedWrite)) == 1 },
				rbSays("the server is not blocked writing the response"))
			require.NoError(t, c.conn.Close())
			connsGone(t, 3*time.Second)
		}
		// The same response, read whole.
		c := rbDial(t, srv.addr)
		resp, err := c.do(getRecords(jsonCodec))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.status)
		var got struct{ Records []struct{ Data []byte } }
		require.NoError(t, json.Unmarshal(resp.body, &got))
		require.Len(t, got.Records, n)
		for i, r := range got.Records {
			assert.True(t, bytes.Equal(want[i], r.Data), "record %d", i)
		}
	})

	t.Run("in the middle of an event stream", func(t *testing.T) {
		// The client reads the first events of its subscription and
		// closes the connection: the server's handler ends at once, long
		// before it would next write (the next idle event is 5 s away).
		for i, cd := range []*codec{jsonCodec, cborCodec} {
			// A consumer each: Kinesis allows one subscription of a
			// consumer to a shard per 5 s.
			first, err := st.RegisterStreamConsumer(t.Context(), runnel.RegisterStreamConsumerInput{ConsumerName: fmt.Sprint("first-", i)})
			require.NoError(t, err)
			c := rbDial(t, srv.addr)
			body := rbSubscribe(t, c, cd, first.ConsumerARN, "shardId-000000000000", "LATEST")
			rbNextEvent(t, body, cd, "initial-response")
			rbNextEvent(t, body, cd, "SubscribeToShardEvent")
			require.Len(t, rbStacks(rbHandler), 1, "the subscription is served")
			require.NoError(t, c.conn.Close())
			connsGone(t, 3*time.Second)
		}
		// Another client's subscription is served, records and all.
		second, err := st.RegisterStreamConsumer(t.Context(), runnel.RegisterStreamConsumerInput{ConsumerName: "second"})
		require.NoError(t, err)
		c := rbDial(t, srv.addr)
		body := rbSubscribe(t, c, jsonCodec, second.ConsumerARN, "shardId-000000000000", "LATEST")
		rbNextEvent(t, body, jsonCodec, "initial-response")
		rbNextEvent(t, body, jsonCodec, "SubscribeToShardEvent")
		_, err = st.PutRecord(t.Context(), runnel.PutRecordInput{PartitionKey: "k", Data: []byte("after the disconnects")})
		require.NoError(t, err)
		ev := rbNextEvent(t, body, jsonCodec, "SubscribeToShardEvent")
		var got struct{ Records []struct{ Data []byte } }
		require.NoError(t, json.Unmarshal(ev.Payload, &got))
		require.Len(t, got.Records, 1)
		assert.Equal(t, "after the disconnects", string(got.Records[0].Data))
		require.NoError(t, c.conn.Close())
		connsGone(t, 3*time.Second)
	})

	t.Run("an h2c event stream cancelled", func(t *testing.T) {
		// Over h2c the client resets its stream (and keeps the connection):
		// the server's handler ends at once.
		con, err := st.RegisterStreamConsumer(t.Context(), runnel.RegisterStreamConsumerInput{ConsumerName: "h2c"})
		require.NoError(t, err)
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: p}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		in := rbEncode(t, jsonCodec, map[string]any{"ConsumerARN": con.ConsumerARN, "ShardId": "shardId-000000000000", "StartingPosition": map[string]any{"Type": "LATEST"}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.addr+"/", bytes.NewReader(in))
		require.NoError(t, err)
		req.Header.Set("X-Amz-Target", targetPrefix+"SubscribeToShard")
		req.Header.Set("Content-Type", jsonContentType)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, 2, resp.ProtoMajor)
		rbNextEvent(t, resp.Body, jsonCodec, "initial-response")
		rbNextEvent(t, resp.Body, jsonCodec, "SubscribeToShardEvent")
		require.Len(t, rbStacks(rbHandler), 1, "the subscription is served")
		cancel()
		rbEventually(t, 2*time.Second, func() bool { return len(rbStacks(rbHandler)) == 0 }, rbSays("the handler goes on after the client reset its stream"))
		tr.CloseIdleConnections()
		connsGone(t, 3*time.Second)
	})

	rbCheckHealthy(t, srv.addr)
}

// rbSubscribe sends a SubscribeToShard request on c, encoded with cd,
// checks that the event stream starts, and returns its body.
func rbSubscribe(t *testing.T, c *rbClient, cd *codec, consumerARN, shardID, from string) io.Reader {
	t.Helper()
	in := map[string]any{"ConsumerARN": consumerARN, "ShardId": shardID, "StartingPosition": map[string]any{"Type": from}}
	_, err := c.conn.Write(rbRequest{target: targetPrefix + "SubscribeToShard", contentType: cd.contentType, body: rbEncode(t, cd, in)}.wire())
	require.NoError(t, err)
	resp, err := http.ReadResponse(c.br, nil)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("SubscribeToShard: %s: %s", resp.Status, b)
	}
	require.Equal(t, eventStreamContentType, resp.Header.Get("Content-Type"))
	return resp.Body
}

// rbNextEvent reads the next message of an event stream and checks that
// it is an event named name, of the codec's content type.
func rbNextEvent(t *testing.T, body io.Reader, cd *codec, name string) eventstream.Message {
	t.Helper()
	msg, err := eventstream.NewDecoder().Decode(body, nil)
	require.NoError(t, err)
	header := func(h string) string {
		if v := msg.Headers.Get(h); v != nil {
			return v.String()
		}
		return ""
	}
	require.Equal(t, eventstream.EventMessageType, header(eventstream.MessageTypeHeader), "%s", msg.Payload)
	require.Equal(t, name, header(eventstream.EventTypeHeader))
	require.Equal(t, cd.contentType, header(eventstream.ContentTypeHeader))
	return msg
}

// TestRobustStalledSubscriberClose subscribes over raw HTTP/1.1 and never
// reads: the server fills the connection with an event of 8 MiB and
// blocks writing it. Its goroutine is held until the write times out
// (eventWriteTimeout; TestRobustStalledSubscriberTimesOut shows that in
// virtual time), but Close ends such a stream at once, and nothing is left
// behind.
func TestRobustStalledSubscriberClose(t *testing.T) {
	rbNoLeak(t)
	srv := rbStart(t)
	st := rbStream(t, srv.cluster, "s")
	con, err := st.RegisterStreamConsumer(t.Context(), runnel.RegisterStreamConsumerInput{ConsumerName: "c"})
	require.NoError(t, err)
	for i := range 8 {
		_, err := st.PutRecord(t.Context(), runnel.PutRecordInput{PartitionKey: "k", Data: bytes.Repeat([]byte{byte(i)}, 1<<20-16)})
		require.NoError(t, err)
	}
	c := rbDial(t, srv.addr)
	require.NoError(t, c.conn.SetReadBuffer(4<<10))
	rbSubscribe(t, c, jsonCodec, con.ConsumerARN, "shardId-000000000000", "TRIM_HORIZON") // and never read the events
	rbEventually(t, 8*time.Second, func() bool { return len(rbStacks(rbHandler, rbBlockedWrite)) == 1 },
		rbSays("the server is not blocked writing the event"))

	start := time.Now()
	require.NoError(t, srv.Close())
	assert.Less(t, time.Since(start), 2*time.Second, "Close waited for the stalled stream")
	rbEventually(t, time.Second, func() bool { return len(rbStacks(rbHandler)) == 0 }, rbSays("the stream's handler goes on after Close"))
}

// rbPipeListener is a net.Listener of in-memory connections (net.Pipe),
// which work inside a synctest bubble: their deadlines run on the
// bubble's clock, and a write blocks until the other end reads.
type rbPipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func rbListenPipes() *rbPipeListener {
	return &rbPipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *rbPipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *rbPipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *rbPipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial connects a new client and returns the client's end, and the
// server's end, whose closed channel is closed once the server closes it.
func (l *rbPipeListener) dial() (net.Conn, *rbPipeConn) {
	client, server := net.Pipe()
	sc := &rbPipeConn{Conn: server, closed: make(chan struct{})}
	l.conns <- sc
	return client, sc
}

// rbPipeConn is the server's end of a pipe; it tells when it is closed.
type rbPipeConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *rbPipeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// isClosed reports whether the server has closed the connection.
func (c *rbPipeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// rbPipeServer starts, inside a synctest bubble, a server of a new cluster
// with one stream (of one shard, without limits) and one consumer, on
// pipes. stop closes the server and the cluster.
func rbPipeServer(t *testing.T) (srv *Server, l *rbPipeListener, consumerARN string, stop func()) {
	c := runnel.NewCluster()
	st, err := c.CreateStream(context.Background(), "s", runnel.WithShardCount(1), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	con, err := st.RegisterStreamConsumer(context.Background(), runnel.RegisterStreamConsumerInput{ConsumerName: "c"})
	require.NoError(t, err)
	srv = New(c)
	l = rbListenPipes()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	return srv, l, con.ConsumerARN, func() {
		assert.NoError(t, srv.Close())
		assert.ErrorIs(t, <-served, http.ErrServerClosed)
		c.Close()
	}
}

// rbPipeSubscribe dials the pipe listener and writes a SubscribeToShard
// request, and then reads nothing: the stalled subscriber. The request is
// written by a goroutine, as a pipe write waits for the server to read.
func rbPipeSubscribe(t *testing.T, l *rbPipeListener, consumerARN string) (net.Conn, *rbPipeConn) {
	client, server := l.dial()
	body := `{"ConsumerARN":"` + consumerARN + `","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}}`
	go client.Write(rbRequest{target: targetPrefix + "SubscribeToShard", contentType: jsonContentType, body: []byte(body)}.wire())
	return client, server
}

// rbPipeListStreams sends ListStreams on a new pipe and checks the answer.
func rbPipeListStreams(t *testing.T, l *rbPipeListener) {
	t.Helper()
	client, _ := l.dial()
	defer client.Close()
	go client.Write(rbRequest{target: targetPrefix + "ListStreams", contentType: jsonContentType, body: []byte("{}")}.wire())
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.Contains(t, string(b), `"StreamNames":["s"]`)
}

// TestRobustStalledSubscriberTimesOut shows, in virtual time, that the
// write timeout of an event (eventWriteTimeout) frees the server from a
// subscriber that never reads: with no Close and no Shutdown, the server
// ends the stream and closes the connection once the first write has
// waited that long, and not before. The server serves others meanwhile.
func TestRobustStalledSubscriberTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, l, arn, stop := rbPipeServer(t)
		defer stop()
		client, server := rbPipeSubscribe(t, l, arn)
		defer client.Close()
		synctest.Wait() // the server waits to write the initial response
		require.Len(t, rbStacks(rbHandler), 1, "the subscription is served")

		time.Sleep(eventWriteTimeout - time.Second)
		synctest.Wait()
		assert.False(t, server.isClosed(), "the connection was closed before the write timed out")
		assert.Len(t, rbStacks(rbHandler), 1, "the stream ended before the write timed out")
		rbPipeListStreams(t, l)

		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.True(t, server.isClosed(), "the connection is still open %v after the write began", eventWriteTimeout+time.Second)
		assert.Empty(t, rbStacks(rbHandler), "the stream is still served %v after the write began", eventWriteTimeout+time.Second)
		rbPipeListStreams(t, l)
	})
}

// TestRobustSlowHeadersTimeOut shows, in virtual time, that connections
// that send no request, or stop in the middle of its header, are closed
// by the server after its ReadHeaderTimeout of 10 s, and not before.
func TestRobustSlowHeadersTimeOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, l, _, stop := rbPipeServer(t)
		defer stop()
		silent, silentServer := l.dial()
		defer silent.Close()
		half, halfServer := l.dial()
		defer half.Close()
		go half.Write([]byte("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Tar"))
		// Both read what the server writes (a 400 when it gives up on
		// half a header): a pipe has no buffer to write into.
		go io.Copy(io.Discard, silent)
		go io.Copy(io.Discard, half)
		time.Sleep(9 * time.Second)
		synctest.Wait()
		assert.False(t, silentServer.isClosed(), "a silent connection was closed within 9 s")
		assert.False(t, halfServer.isClosed(), "a connection with half a header was closed within 9 s")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.True(t, silentServer.isClosed(), "a silent connection is open after 11 s")
		assert.True(t, halfServer.isClosed(), "a connection with half a header is open after 11 s")
	})
}

// TestRobustManyConnections opens 200 connections that send nothing or
// half a header and, while they are open, sends 50 requests at once: all
// are answered correctly, the server holds one goroutine per connection,
// and once the clients close, every connection's goroutine ends, before
// the server is closed as well as after.
func TestRobustManyConnections(t *testing.T) {
	rbNoLeak(t)
	base := runtime.NumGoroutine()
	srv := rbStart(t)
	rbStream(t, srv.cluster, "s")
	running := runtime.NumGoroutine() // with the server's own goroutines

	const idle, requests = 200, 50
	conns := make([]net.Conn, idle)
	for i := range conns {
		c, err := net.Dial("tcp", srv.addr)
		require.NoError(t, err)
		defer c.Close()
		if i%4 == 0 { // a quarter start a request and stop
			_, err := c.Write([]byte("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Tar"))
			require.NoError(t, err)
		}
		conns[i] = c
	}
	rbEventually(t, 5*time.Second, func() bool { return len(rbStacks(rbConn)) == idle }, func() string {
		return fmt.Sprintf("the server serves %d connections, not %d", len(rbStacks(rbConn)), idle)
	})
	assert.LessOrEqual(t, runtime.NumGoroutine()-running, idle+5, "more than one goroutine per idle connection")

	var wg sync.WaitGroup
	results := make(chan string, requests)
	for i := range requests {
		wg.Go(func() {
			conn, err := net.Dial("tcp", srv.addr)
			if err != nil {
				results <- err.Error()
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			c := &rbClient{conn: conn.(*net.TCPConn), br: bufio.NewReader(conn)}
			data := base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i)))
			resp, err := c.do(rbRequest{target: targetPrefix + "PutRecord", contentType: jsonContentType, body: []byte(`{"StreamName":"s","PartitionKey":"k","Data":"` + data + `"}`)})
			switch {
			case err != nil:
				results <- err.Error()
			case resp.status != http.StatusOK || !strings.Contains(string(resp.body), `"ShardId":"shardId-000000000000"`):
				results <- fmt.Sprintf("%d %s", resp.status, resp.body)
			default:
				results <- ""
			}
		})
	}
	wg.Wait()
	close(results)
	for r := range results {
		assert.Empty(t, r)
	}
	st, err := srv.cluster.Stream("s")
	require.NoError(t, err)
	var n int
	for _, err := range st.Records(t.Context(), "shardId-000000000000", runnel.StartingPosition{Type: runnel.TrimHorizon}) {
		require.NoError(t, err)
		n++
		if n == requests {
			break
		}
	}
	assert.Equal(t, requests, n, "records written")

	for _, c := range conns {
		c.Close()
	}
	rbEventually(t, 3*time.Second, func() bool { return len(rbStacks(rbConn)) == 0 }, func() string {
		return fmt.Sprintf("%d connections are still served", len(rbStacks(rbConn)))
	})
	rbEventually(t, 3*time.Second, func() bool { return runtime.NumGoroutine() <= running }, func() string {
		return fmt.Sprintf("%d goroutines run; %d did with the server idle", runtime.NumGoroutine(), running)
	})
	rbCheckHealthy(t, srv.addr)
	require.NoError(t, srv.Close())
	srv.cluster.Close()
	rbEventually(t, 3*time.Second, func() bool { return runtime.NumGoroutine() <= base }, func() string {
		return fmt.Sprintf("%d goroutines run; %d did before the server", runtime.NumGoroutine(), base)
	})
}

// TestRobustShutdownEndsStalledSubscriber checks that Shutdown ends an
// event stream blocked writing to a client that stopped reading, at once,
// as it ends one waiting for records (TestShutdownEndsSubscriptions),
// rather than waiting for the write to time out. In virtual time.
func TestRobustShutdownEndsStalledSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, l, arn, stop := rbPipeServer(t)
		defer stop()
		client, _ := rbPipeSubscribe(t, l, arn)
		defer client.Close()
		synctest.Wait() // the server waits to write the initial response
		assert.Len(t, rbStacks(rbHandler), 1, "the subscription is served")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		err := srv.Shutdown(ctx)
		assert.NoError(t, err, "Shutdown with a stalled subscriber")
		assert.Less(t, time.Since(start), time.Second, "Shutdown waited for the stalled stream's write to time out")
	})
}

// TestRobustIdleConnectionsTimeOut checks that a keep-alive connection
// that has had its request and then stays idle is closed (IdleTimeout), so
// that clients leaving connections idle cannot make the server's
// goroutines grow without bound. (A new connection that sends nothing is
// closed after the ReadHeaderTimeout: TestRobustSlowHeadersTimeOut.) In
// virtual time.
func TestRobustIdleConnectionsTimeOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, l, _, stop := rbPipeServer(t)
		defer stop()
		client, server := l.dial()
		defer client.Close()
		go client.Write(rbRequest{target: targetPrefix + "ListStreams", contentType: jsonContentType, body: []byte("{}")}.wire())
		resp, err := http.ReadResponse(bufio.NewReader(client), nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, resp.Close)

		time.Sleep(time.Hour)
		synctest.Wait()
		assert.True(t, server.isClosed(), "an idle keep-alive connection is still open after an hour")
	})
}
