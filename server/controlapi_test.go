package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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

// controlToken is the token of the test servers' control API.
const controlToken = "test-token"

// Explicit hash keys that route to the first and the second of two shards.
const (
	controlShard0Key = "0"
	controlShard1Key = "340282366920938463463374607431768211455"
)

// controlServer is a server with the control API on a loopback port. Its
// clusters, the default one and those WithClusters makes, follow clock.
type controlServer struct {
	url     string
	clock   *server.Clock
	srv     *server.Server
	cluster *runnel.Cluster
}

// controlError is an error body of the control API.
type controlError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

func newControlServer(t *testing.T) *controlServer {
	t.Helper()
	clock := new(server.Clock)
	c := runnel.NewCluster(clock.ClusterOption())
	srv := server.New(c, server.WithControlAPI(controlToken, clock),
		server.WithClusters(func(account, region string) (*runnel.Cluster, error) {
			return runnel.NewCluster(runnel.WithAccountID(account), runnel.WithRegion(region), clock.ClusterOption()), nil
		}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		assert.ErrorIs(t, <-done, http.ErrServerClosed)
		c.Close()
	})
	return &controlServer{url: "http://" + l.Addr().String(), clock: clock, srv: srv, cluster: c}
}

// client returns an SDK client of the server that does not retry, so that
// injected errors show at once. An access key of 12 digits is the account.
func (cs *controlServer) client(region, accessKey string) *kinesis.Client {
	return kinesis.NewFromConfig(aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(cs.url),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, "secret", ""),
	}, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
}

// do sends a request to a control endpoint with the test token: body is
// a string sent as is, or a value sent as JSON. It decodes a success into
// out (unless nil), zeroed first, and returns the status and, for errors, the error body.
func (cs *controlServer) do(t *testing.T, method, path string, body, out any) (int, controlError) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		var err error
		b, err = json.Marshal(v)
		require.NoError(t, err)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, cs.url+path, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+controlToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s", got)
	if resp.StatusCode != http.StatusOK {
		var e controlError
		require.NoError(t, json.Unmarshal(got, &e), "%s", got)
		return resp.StatusCode, e
	}
	if out != nil {
		reflect.ValueOf(out).Elem().SetZero() // decoding keeps what the answer leaves out
		require.NoError(t, json.Unmarshal(got, out), "%s", got)
	}
	return resp.StatusCode, controlError{}
}

// post sends a POST that must succeed.
func (cs *controlServer) post(t *testing.T, path string, body, out any) {
	t.Helper()
	status, e := cs.do(t, http.MethodPost, path, body, out)
	require.Equal(t, http.StatusOK, status, "%s: %+v", path, e)
}

// inject injects a fault and returns its id.
func (cs *controlServer) inject(t *testing.T, fault map[string]any) string {
	t.Helper()
	var out struct{ FaultID string }
	cs.post(t, "/runnel/faults/inject", fault, &out)
	require.NotEmpty(t, out.FaultID)
	return out.FaultID
}

// controlListedFault is a fault as the control API lists it.
type controlListedFault struct {
	FaultID, Account, Region, Operation, StreamName, ShardID, Error string
	Times                                                           int
	LatencyMs                                                       int64
	PartitionKeys                                                   []string
	Fired                                                           int
	Spent                                                           bool
}

// controlCounters, controlShardStats and controlStreamStats are the stats as the
// control API answers them.
type controlCounters struct {
	RecordsRetained, BytesRetained, MemoryBytes, RecordsPut, BytesPut int64
	GetCalls, RecordsRead, BytesRead, RecordsPushed, BytesPushed      int64
	WriteThrottles, ReadThrottles                                     int64
	OldestArrivalMs, NewestArrivalMs                                  *int64
}

type controlShardStats struct {
	ShardID string
	Open    bool
	controlCounters
}

type controlStreamStats struct {
	StreamName string
	Total      controlCounters
	Shards     []controlShardStats
}

type controlStats struct {
	Account, Region string
	Streams         []controlStreamStats
}

type controlClock struct{ NowMs, OffsetMs int64 }

// createStream creates a stream through the SDK.
func controlCreateStream(t *testing.T, k *kinesis.Client, name string, shards int32) {
	t.Helper()
	_, err := k.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	require.NoError(t, err)
}

func controlPut(t *testing.T, k *kinesis.Client, stream, hashKey, data string) error {
	t.Helper()
	_, err := k.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"),
		ExplicitHashKey: aws.String(hashKey), Data: []byte(data)})
	return err
}

func controlIterator(t *testing.T, k *kinesis.Client, stream, shard string) (*string, error) {
	t.Helper()
	out, err := k.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		return nil, err
	}
	return out.ShardIterator, nil
}

// TestControlFaultOnShard throttles one shard through the control API:
// the SDK sees the typed error for that shard only, in single calls and
// in PutRecords entries, until the fault is removed; a fault for
// PutRecords alone leaves PutRecord alone.
func TestControlFaultOnShard(t *testing.T) {
	cs := newControlServer(t)
	k := cs.client("us-east-1", "runnel")
	ctx := t.Context()
	controlCreateStream(t, k, "s", 2)

	id := cs.inject(t, map[string]any{"streamName": "s", "shardId": "shardId-000000000001", "error": "ProvisionedThroughputExceededException"})
	var throttled *types.ProvisionedThroughputExceededException
	err := controlPut(t, k, "s", controlShard1Key, "x")
	require.ErrorAs(t, err, &throttled)
	assert.Contains(t, throttled.ErrorMessage(), "injected")
	require.NoError(t, controlPut(t, k, "s", controlShard0Key, "x"), "the other shard takes writes")
	_, err = controlIterator(t, k, "s", "shardId-000000000001")
	require.ErrorAs(t, err, &throttled)
	_, err = controlIterator(t, k, "s", "shardId-000000000000")
	require.NoError(t, err)

	out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), ExplicitHashKey: aws.String(controlShard0Key), Data: []byte("0")},
		{PartitionKey: aws.String("b"), ExplicitHashKey: aws.String(controlShard1Key), Data: []byte("1")},
	}})
	require.NoError(t, err)
	assert.EqualValues(t, 1, aws.ToInt32(out.FailedRecordCount))
	assert.NotEmpty(t, aws.ToString(out.Records[0].SequenceNumber))
	assert.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(out.Records[1].ErrorCode))

	var list struct{ Faults []controlListedFault }
	cs.post(t, "/runnel/faults/list", nil, &list)
	require.Len(t, list.Faults, 1)
	got := list.Faults[0]
	assert.Positive(t, got.Fired, "the list tells that the fault fired")
	assert.False(t, got.Spent, "a fault without times is never spent")
	got.Fired = 0
	assert.Equal(t, controlListedFault{FaultID: id, Account: "000000000000", Region: "us-east-1", StreamName: "s", ShardID: "shardId-000000000001",
		Error: "ProvisionedThroughputExceededException"}, got)

	cs.post(t, "/runnel/faults/remove", map[string]any{"faultId": id}, nil)
	require.NoError(t, controlPut(t, k, "s", controlShard1Key, "x"), "the fault is gone")
	_, err = controlIterator(t, k, "s", "shardId-000000000001")
	require.NoError(t, err)
	status, e := cs.do(t, http.MethodPost, "/runnel/faults/remove", map[string]any{"faultId": id}, nil)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "ResourceNotFoundException", e.Type)
	assert.Contains(t, e.Message, id)

	cs.inject(t, map[string]any{"operation": "PutRecords", "streamName": "s", "shardId": "shardId-000000000001", "error": "ProvisionedThroughputExceededException"})
	require.NoError(t, controlPut(t, k, "s", controlShard1Key, "x"), "PutRecord is another operation")
	out, err = k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("b"), ExplicitHashKey: aws.String(controlShard1Key), Data: []byte("1")},
	}})
	require.NoError(t, err)
	assert.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(out.Records[0].ErrorCode))

	var cleared struct{ Removed int }
	cs.post(t, "/runnel/faults/clear", nil, &cleared)
	assert.Equal(t, 1, cleared.Removed)
	cs.post(t, "/runnel/faults/list", nil, &list)
	assert.Empty(t, list.Faults)

	var st controlStats
	cs.post(t, "/runnel/stats", map[string]any{"streamName": "s"}, &st)
	require.Len(t, st.Streams, 1)
	assert.EqualValues(t, 3, st.Streams[0].Shards[1].WriteThrottles, "injected throttles count as real ones")
}

// TestControlFaultByPartitionKey fails the PutRecords entries with chosen
// partition keys: the others are written, and PutRecord is unaffected.
func TestControlFaultByPartitionKey(t *testing.T) {
	cs := newControlServer(t)
	k := cs.client("us-east-1", "runnel")
	controlCreateStream(t, k, "s", 2)
	cs.inject(t, map[string]any{"operation": "PutRecords", "streamName": "s", "partitionKeys": []string{"bad", "worse"}, "error": "InternalFailureException"})

	keys := []string{"good", "bad", "good", "worse", "bad", "fine"}
	entries := make([]types.PutRecordsRequestEntry, len(keys))
	for i, key := range keys {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte(key)}
	}
	out, err := k.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	require.NoError(t, err)
	assert.EqualValues(t, 3, aws.ToInt32(out.FailedRecordCount))
	for i, key := range keys {
		if key == "bad" || key == "worse" {
			assert.Equal(t, "InternalFailure", aws.ToString(out.Records[i].ErrorCode), "entry %d", i)
		} else {
			assert.NotEmpty(t, aws.ToString(out.Records[i].SequenceNumber), "entry %d", i)
		}
	}
	_, err = k.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("bad"), Data: []byte("x")})
	require.NoError(t, err)

	var st controlStats
	cs.post(t, "/runnel/stats", map[string]any{"streamName": "s"}, &st)
	require.Len(t, st.Streams, 1)
	assert.EqualValues(t, 4, st.Streams[0].Total.RecordsPut)
}

// TestControlFaultLatency slows an operation down through the control API.
func TestControlFaultLatency(t *testing.T) {
	cs := newControlServer(t)
	k := cs.client("us-east-1", "runnel")
	controlCreateStream(t, k, "s", 1)
	const latency = 300 * time.Millisecond
	cs.inject(t, map[string]any{"operation": "PutRecord", "streamName": "s", "latencyMs": latency.Milliseconds(), "times": 1})

	start := time.Now()
	require.NoError(t, controlPut(t, k, "s", controlShard0Key, "x"))
	assert.GreaterOrEqual(t, time.Since(start), latency)

	var list struct{ Faults []controlListedFault }
	status, e := cs.do(t, http.MethodGet, "/runnel/faults/list", nil, &list)
	require.Equal(t, http.StatusOK, status, "%+v", e)
	require.Len(t, list.Faults, 1)
	assert.EqualValues(t, 300, list.Faults[0].LatencyMs)
	assert.Equal(t, 1, list.Faults[0].Times)
	assert.Equal(t, "PutRecord", list.Faults[0].Operation)
}

// TestControlClockExpiresIterators advances the clock past the iterator
// TTL of five minutes: an iterator got before fails with
// ExpiredIteratorException, a new one reads the records.
func TestControlClockExpiresIterators(t *testing.T) {
	cs := newControlServer(t)
	k := cs.client("us-east-1", "runnel")
	controlCreateStream(t, k, "s", 1)
	require.NoError(t, controlPut(t, k, "s", controlShard0Key, "x"))
	it, err := controlIterator(t, k, "s", "shardId-000000000000")
	require.NoError(t, err)

	before := time.Now()
	var clock controlClock
	cs.post(t, "/runnel/clock/advance", map[string]any{"seconds": 301}, &clock)
	assert.EqualValues(t, 301_000, clock.OffsetMs)
	assert.GreaterOrEqual(t, clock.NowMs, before.Add(301*time.Second).UnixMilli())

	_, err = k.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: it})
	var expired *types.ExpiredIteratorException
	require.ErrorAs(t, err, &expired)

	it, err = controlIterator(t, k, "s", "shardId-000000000000")
	require.NoError(t, err)
	out, err := k.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)
	assert.Len(t, out.Records, 1)

	status, e := cs.do(t, http.MethodGet, "/runnel/clock", nil, &clock)
	require.Equal(t, http.StatusOK, status, "%+v", e)
	assert.EqualValues(t, 301_000, clock.OffsetMs)
	assert.Equal(t, 301*time.Second, cs.clock.Offset())
}

// TestControlClockRetention advances the clock past the retention period
// of 24 hours: the records are gone from reads and from the stats.
func TestControlClockRetention(t *testing.T) {
	cs := newControlServer(t)
	k := cs.client("us-east-1", "runnel")
	controlCreateStream(t, k, "s", 1)
	for i := range 3 {
		require.NoError(t, controlPut(t, k, "s", controlShard0Key, fmt.Sprint("record ", i)))
	}
	var st controlStats
	cs.post(t, "/runnel/stats", map[string]any{"streamName": "s"}, &st)
	require.Len(t, st.Streams, 1)
	assert.EqualValues(t, 3, st.Streams[0].Total.RecordsRetained)

	cs.post(t, "/runnel/clock/advance", map[string]any{"milliseconds": (24*time.Hour + time.Second).Milliseconds()}, nil)
	it, err := controlIterator(t, k, "s", "shardId-000000000000")
	require.NoError(t, err)
	out, err := k.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)
	assert.Empty(t, out.Records, "expired")

	cs.post(t, "/runnel/stats", map[string]any{"streamName": "s"}, &st)
	require.Len(t, st.Streams, 1)
	total := st.Streams[0].Total
	assert.Zero(t, total.RecordsRetained)
	assert.EqualValues(t, 3, total.RecordsPut)
	assert.Nil(t, total.OldestArrivalMs, "no records, no arrival times")
}

// TestControlStats reads the counters of one stream and of every stream:
// they reflect the puts and reads, shard by shard.
func TestControlStats(t *testing.T) {
	cs := newControlServer(t)
	k := cs.client("us-east-1", "runnel")
	controlCreateStream(t, k, "b", 1)
	controlCreateStream(t, k, "a", 2)
	before := time.Now().UnixMilli()
	for _, data := range []string{"one", "two", "six"} {
		require.NoError(t, controlPut(t, k, "a", controlShard0Key, data))
	}
	require.NoError(t, controlPut(t, k, "a", controlShard1Key, "seven"))
	after := time.Now().UnixMilli()
	it, err := controlIterator(t, k, "a", "shardId-000000000000")
	require.NoError(t, err)
	_, err = k.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)

	var st controlStats
	cs.post(t, "/runnel/stats", map[string]any{"streamName": "a"}, &st)
	assert.Equal(t, "000000000000", st.Account)
	assert.Equal(t, "us-east-1", st.Region)
	require.Len(t, st.Streams, 1)
	a := st.Streams[0]
	assert.Equal(t, "a", a.StreamName)
	assert.EqualValues(t, 4, a.Total.RecordsPut)
	assert.EqualValues(t, 3*(3+1)+5+1, a.Total.BytesPut, "data and partition keys")
	require.Len(t, a.Shards, 2)
	s0 := a.Shards[0]
	assert.Equal(t, "shardId-000000000000", s0.ShardID)
	assert.True(t, s0.Open)
	assert.EqualValues(t, 3, s0.RecordsPut)
	assert.EqualValues(t, 3, s0.RecordsRetained)
	assert.EqualValues(t, 1, s0.GetCalls)
	assert.EqualValues(t, 3, s0.RecordsRead)
	require.NotNil(t, s0.OldestArrivalMs)
	require.NotNil(t, s0.NewestArrivalMs)
	assert.GreaterOrEqual(t, *s0.OldestArrivalMs, before)
	assert.LessOrEqual(t, *s0.NewestArrivalMs, after)
	assert.EqualValues(t, 1, a.Shards[1].RecordsPut)

	direct, err := cs.cluster.Stream("a")
	require.NoError(t, err)
	assert.Equal(t, direct.Stats().Total.MemoryBytes, a.Total.MemoryBytes, "the figures of Stream.Stats")

	status, e := cs.do(t, http.MethodGet, "/runnel/stats", nil, &st)
	require.Equal(t, http.StatusOK, status, "%+v", e)
	require.Len(t, st.Streams, 2)
	assert.Equal(t, "a", st.Streams[0].StreamName)
	assert.Equal(t, "b", st.Streams[1].StreamName)
	assert.Zero(t, st.Streams[1].Total.RecordsPut)
	assert.Len(t, st.Streams[1].Shards, 1)

	status, e = cs.do(t, http.MethodPost, "/runnel/stats", map[string]any{"streamName": "nope"}, nil)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "ResourceNotFoundException", e.Type)
	assert.Contains(t, e.Message, "nope")
}

// TestControlClusters selects the cluster of an account and region: a
// fault there leaves the default cluster alone, the clock ages both, and
// a cluster the server does not hold is refused.
func TestControlClusters(t *testing.T) {
	cs := newControlServer(t)
	def := cs.client("us-east-1", "runnel")
	eu := cs.client("eu-west-1", "111111111111")
	controlCreateStream(t, def, "s", 1)
	controlCreateStream(t, eu, "s", 1)

	cs.inject(t, map[string]any{"account": "111111111111", "region": "eu-west-1", "operation": "PutRecord", "streamName": "s", "error": "AccessDeniedException"})
	var denied *types.AccessDeniedException
	require.ErrorAs(t, controlPut(t, eu, "s", controlShard0Key, "x"), &denied)
	require.NoError(t, controlPut(t, def, "s", controlShard0Key, "x"), "another cluster")

	var list struct{ Faults []controlListedFault }
	cs.post(t, "/runnel/faults/list", nil, &list)
	require.Len(t, list.Faults, 1)
	assert.Equal(t, "111111111111", list.Faults[0].Account)
	assert.Equal(t, "eu-west-1", list.Faults[0].Region)

	var st controlStats
	cs.post(t, "/runnel/stats", map[string]any{"account": "111111111111", "region": "eu-west-1"}, &st)
	assert.Equal(t, "111111111111", st.Account)
	require.Len(t, st.Streams, 1)
	assert.Zero(t, st.Streams[0].Total.RecordsPut, "the refused record is not written")

	it, err := controlIterator(t, eu, "s", "shardId-000000000000")
	require.NoError(t, err)
	cs.post(t, "/runnel/clock/advance", map[string]any{"seconds": 301.5}, nil)
	_, err = eu.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: it})
	var expired *types.ExpiredIteratorException
	require.ErrorAs(t, err, &expired, "the made cluster follows the clock too")

	for _, sel := range []map[string]any{{"region": "ap-south-1"}, {"account": "111111111111"}, {"account": "222222222222", "region": "eu-west-1"}} {
		status, e := cs.do(t, http.MethodPost, "/runnel/stats", sel, nil)
		assert.Equal(t, http.StatusBadRequest, status, "%v", sel)
		assert.Equal(t, "ResourceNotFoundException", e.Type, "%v", sel)
		assert.Contains(t, e.Message, "no cluster", "%v", sel)
	}
}

// TestControlAuth checks who may call: requests without the token or with
// a wrong one get 401, requests from other addresses than loopback 403,
// whatever their token.
func TestControlAuth(t *testing.T) {
	cs := newControlServer(t)
	for _, tc := range []struct {
		name, authorization string
		status              int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer wrong", http.StatusUnauthorized},
		{"token prefix", "Bearer test", http.StatusUnauthorized},
		{"empty token", "Bearer ", http.StatusUnauthorized},
		{"other scheme", "Basic " + controlToken, http.StatusUnauthorized},
		{"the token without scheme", controlToken, http.StatusUnauthorized},
		{"right token", "Bearer " + controlToken, http.StatusOK},
		{"scheme in lower case", "bearer " + controlToken, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, cs.url+"/runnel/clock/advance", strings.NewReader(`{"seconds":1}`))
			require.NoError(t, err)
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.status, resp.StatusCode, "%s", b)
			if tc.status == http.StatusUnauthorized {
				var e controlError
				require.NoError(t, json.Unmarshal(b, &e))
				assert.Equal(t, "AccessDeniedException", e.Type)
				assert.NotEmpty(t, e.Message)
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
	assert.Equal(t, 2*time.Second, cs.clock.Offset(), "only the authorized requests advanced the clock")

	for _, tc := range []struct {
		remote string
		status int
	}{
		{"192.0.2.1:1234", http.StatusForbidden},
		{"10.0.0.1:80", http.StatusForbidden},
		{"[2001:db8::1]:443", http.StatusForbidden},
		{"[::ffff:192.0.2.1]:1", http.StatusForbidden},
		{"localhost:80", http.StatusForbidden},
		{"127.0.0.1", http.StatusForbidden},
		{"", http.StatusForbidden},
		{"127.0.0.1:5000", http.StatusOK},
		{"127.1.2.3:5000", http.StatusOK},
		{"[::1]:5000", http.StatusOK},
		{"[::ffff:127.0.0.1]:5000", http.StatusOK},
	} {
		t.Run("from "+tc.remote, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/runnel/clock", nil)
			req.RemoteAddr = tc.remote
			req.Header.Set("Authorization", "Bearer "+controlToken)
			w := httptest.NewRecorder()
			cs.srv.ServeHTTP(w, req)
			assert.Equal(t, tc.status, w.Code, "%s", w.Body)
			if tc.status == http.StatusForbidden {
				var e controlError
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
				assert.Equal(t, "AccessDeniedException", e.Type)
				assert.Contains(t, e.Message, "loopback")
			}
		})
	}
}

// TestControlEmptyToken lets WithControlAPI make the token: it is random,
// ControlToken tells it, and an empty bearer token is still refused.
// Without a clock, the clock endpoints say there is none.
func TestControlEmptyToken(t *testing.T) {
	c := runnel.NewCluster()
	t.Cleanup(func() { c.Close() })
	srv := server.New(c, server.WithControlAPI("", nil))
	token := srv.ControlToken()
	require.GreaterOrEqual(t, len(token), 20)
	assert.NotEqual(t, token, server.New(c, server.WithControlAPI("", nil)).ControlToken())
	assert.Empty(t, server.New(c).ControlToken(), "no control API")
	assert.Equal(t, "mine", server.New(c, server.WithControlAPI("mine", nil)).ControlToken())

	serve := func(path, authorization string) (int, controlError) {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		req.RemoteAddr = "127.0.0.1:5000"
		req.Header.Set("Authorization", authorization)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		var e controlError
		if w.Code != http.StatusOK {
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), "%s", w.Body)
		}
		return w.Code, e
	}
	status, _ := serve("/runnel/faults/list", "Bearer ")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, e := serve("/runnel/faults/list", "Bearer "+token)
	assert.Equal(t, http.StatusOK, status, "%+v", e)
	for _, path := range []string{"/runnel/clock", "/runnel/clock/advance"} {
		status, e = serve(path, "Bearer "+token)
		assert.Equal(t, http.StatusBadRequest, status, path)
		assert.Equal(t, "ResourceNotFoundException", e.Type, path)
		assert.Contains(t, e.Message, "no clock", path)
	}
}

// TestControlRefusals sends requests the control API refuses: each gets
// a JSON error that names what was wrong, and changes nothing.
func TestControlRefusals(t *testing.T) {
	cs := newControlServer(t)
	controlCreateStream(t, cs.client("us-east-1", "runnel"), "s", 1)
	const (
		inject  = "/runnel/faults/inject"
		advance = "/runnel/clock/advance"
	)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		typ, mentions            string
	}{
		{"not JSON", "POST", inject, `{`, 400, "SerializationException", "InjectFault"},
		{"unknown field", "POST", inject, `{"eror":"InternalFailureException"}`, 400, "SerializationException", "eror"},
		{"trailing data", "POST", inject, `{} {}`, 400, "SerializationException", "after"},
		{"not an object", "POST", inject, `[]`, 400, "SerializationException", "array"},
		{"wrong type", "POST", inject, `{"times":"many"}`, 400, "SerializationException", "times"},
		{"unknown operation", "POST", inject, `{"operation":"Frobnicate","error":"InternalFailureException"}`, 400, "InvalidArgumentException", "Frobnicate"},
		{"operation out of range", "POST", inject, `{"operation":"Operation(200)","error":"InternalFailureException"}`, 400, "InvalidArgumentException", "Operation(200)"},
		{"unknown error", "POST", inject, `{"error":"OopsException"}`, 400, "InvalidArgumentException", "OopsException"},
		{"nothing to do", "POST", inject, `{"streamName":"s"}`, 400, "InvalidArgumentException", "nothing"},
		{"negative times", "POST", inject, `{"error":"InternalFailureException","times":-1}`, 400, "InvalidArgumentException", "-1"},
		{"negative latency", "POST", inject, `{"latencyMs":-5}`, 400, "InvalidArgumentException", "-5"},
		{"latency too long", "POST", inject, `{"latencyMs":1000000000000}`, 400, "InvalidArgumentException", "1000000000000"},
		{"bad shard id", "POST", inject, `{"shardId":"shard-1","error":"InternalFailureException"}`, 400, "InvalidArgumentException", "shard-1"},
		{"bad stream name", "POST", inject, `{"streamName":"a b","error":"InternalFailureException"}`, 400, "InvalidArgumentException", "a b"},
		{"partition keys of a read", "POST", inject, `{"operation":"GetRecords","partitionKeys":["k"],"error":"InternalFailureException"}`, 400, "InvalidArgumentException", "GetRecords"},
		{"no partition keys", "POST", inject, `{"partitionKeys":[],"error":"InternalFailureException"}`, 400, "InvalidArgumentException", "partitionKeys"},
		{"unknown region", "POST", inject, `{"region":"ap-south-1","error":"InternalFailureException"}`, 400, "ResourceNotFoundException", "ap-south-1"},
		{"no fault id", "POST", "/runnel/faults/remove", `{}`, 400, "InvalidArgumentException", "faultId"},
		{"unknown fault id", "POST", "/runnel/faults/remove", `{"faultId":"fault-999"}`, 400, "ResourceNotFoundException", "fault-999"},
		{"list with a field", "POST", "/runnel/faults/list", `{"all":true}`, 400, "SerializationException", "all"},
		{"clear with a field", "POST", "/runnel/faults/clear", `{"all":true}`, 400, "SerializationException", "all"},
		{"advance by nothing", "POST", advance, `{}`, 400, "InvalidArgumentException", "seconds or milliseconds"},
		{"advance by both", "POST", advance, `{"seconds":1,"milliseconds":1000}`, 400, "InvalidArgumentException", "not both"},
		{"advance back", "POST", advance, `{"seconds":-1}`, 400, "InvalidArgumentException", "-1"},
		{"advance back in ms", "POST", advance, `{"milliseconds":-1}`, 400, "InvalidArgumentException", "-1"},
		{"advance too far", "POST", advance, `{"seconds":1e300}`, 400, "InvalidArgumentException", "1e+300"},
		{"advance too far in ms", "POST", advance, `{"milliseconds":9223372036854775807}`, 400, "InvalidArgumentException", "9223372036854775807"},
		{"advance beyond int64", "POST", advance, `{"milliseconds":1e30}`, 400, "SerializationException", "milliseconds"},
		{"advance by a string", "POST", advance, `{"seconds":"300"}`, 400, "SerializationException", "seconds"},
		{"stats of a missing stream", "POST", "/runnel/stats", `{"streamName":"nope"}`, 400, "ResourceNotFoundException", "nope"},
		{"stats with a field", "POST", "/runnel/stats", `{"stream":"s"}`, 400, "SerializationException", "stream"},
		{"GET of a change", "GET", inject, ``, 405, "UnknownOperationException", "POST"},
		{"PUT", "PUT", "/runnel/stats", `{}`, 405, "UnknownOperationException", "PUT"},
		{"body too large", "POST", inject, `{"partitionKeys":["` + strings.Repeat("k", 70<<10) + `"]}`, 413, "InvalidArgumentException", "65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := cs.do(t, tc.method, tc.path, tc.body, nil)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.typ, e.Type)
			assert.Contains(t, e.Message, tc.mentions)
		})
	}
	var list struct{ Faults []controlListedFault }
	cs.post(t, "/runnel/faults/list", nil, &list)
	assert.Empty(t, list.Faults, "no fault was installed")
	assert.Zero(t, cs.clock.Offset(), "the clock did not move")
}

// TestControlClockType checks the Clock on its own, in virtual time: it
// runs with the system clock plus what it was advanced by, refuses to go
// back or too far, and a cluster made with its option follows it.
func TestControlClockType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var clock server.Clock
		start := time.Now()
		assert.True(t, start.Equal(clock.Now()))
		require.NoError(t, clock.Advance(5*time.Minute))
		assert.True(t, start.Add(5*time.Minute).Equal(clock.Now()))
		time.Sleep(time.Second) // virtual
		assert.True(t, start.Add(5*time.Minute+time.Second).Equal(clock.Now()))

		err := clock.Advance(-time.Nanosecond)
		require.ErrorIs(t, err, runnel.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "-1ns")
		err = clock.Advance(100 * 365 * 24 * time.Hour)
		require.ErrorIs(t, err, runnel.ErrInvalidArgument)
		assert.Equal(t, 5*time.Minute, clock.Offset(), "refusals change nothing")
		require.NoError(t, clock.Advance(0))

		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					assert.NoError(t, clock.Advance(time.Millisecond))
				}
			})
		}
		wg.Wait()
		assert.Equal(t, 5*time.Minute+800*time.Millisecond, clock.Offset())

		c := runnel.NewCluster(clock.ClusterOption())
		defer c.Close()
		s, err := c.CreateStream(t.Context(), "s")
		require.NoError(t, err)
		it, err := s.GetShardIterator(t.Context(), runnel.GetShardIteratorInput{ShardID: "shardId-000000000000", StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
		require.NoError(t, err)
		require.NoError(t, clock.Advance(6*time.Minute))
		_, err = s.GetRecords(t.Context(), runnel.GetRecordsInput{ShardIterator: it})
		assert.ErrorIs(t, err, runnel.ErrExpiredIterator)
	})
}

// FuzzControlAPI sends arbitrary bodies to every endpoint of the control
// API, by POST or GET: it never panics, and every answer is a JSON object
// or an error of the table that is not an internal failure.
func FuzzControlAPI(f *testing.F) {
	paths := []string{
		"/runnel/faults/inject", "/runnel/faults/remove", "/runnel/faults/list", "/runnel/faults/clear",
		"/runnel/clock", "/runnel/clock/advance", "/runnel/stats",
	}
	for i := range paths {
		f.Add(uint8(i), ``)
		f.Add(uint8(i), `{}`)
		f.Add(uint8(i)|0x80, `{}`)
		f.Add(uint8(i), `{"account":"000000000000","region":"us-east-1"}`)
		f.Add(uint8(i), `null`)
	}
	f.Add(uint8(0), `{"operation":"PutRecords","streamName":"s","shardId":"shardId-000000000001","error":"ProvisionedThroughputExceededException","times":3,"latencyMs":10,"partitionKeys":["a","b"]}`)
	f.Add(uint8(0), `{"operation":"GetRecords","error":"ExpiredIteratorException","times":-1}`)
	f.Add(uint8(0), `{"operation":"Operation(255)","latencyMs":9223372036854775807}`)
	f.Add(uint8(0), `{"region":"eu-west-1","error":"InternalFailure"}`)
	f.Add(uint8(1), `{"faultId":"fault-1"}`)
	f.Add(uint8(5), `{"seconds":1.5e-9}`)
	f.Add(uint8(5), `{"seconds":3.1536e9}`)
	f.Add(uint8(5), `{"milliseconds":-9223372036854775808}`)
	f.Add(uint8(6), `{"streamName":"s"}`)
	f.Add(uint8(6), `{"streamName":"\u0000"}`)

	clock := new(server.Clock)
	c := runnel.NewCluster(clock.ClusterOption())
	f.Cleanup(func() { c.Close() })
	if _, err := c.CreateStream(f.Context(), "s", runnel.WithShardCount(2)); err != nil {
		f.Fatal(err)
	}
	srv := server.New(c, server.WithControlAPI(controlToken, clock))
	serve := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:5000"
		req.Header.Set("Authorization", "Bearer "+controlToken)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		return w
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body string) {
		path := paths[int(endpoint&0x7f)%len(paths)]
		method := http.MethodPost
		if endpoint&0x80 != 0 {
			method = http.MethodGet
		}
		w := serve(method, path, body)
		if w.Code == http.StatusOK {
			var out map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out == nil {
				t.Fatalf("%s %s %q: the answer %q is not a JSON object", method, path, body, w.Body.Bytes())
			}
		} else {
			var e controlError
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || runnel.ErrorForName(e.Type) == nil || e.Message == "" {
				t.Fatalf("%s %s %q: status %d, body %q is not an error of the table", method, path, body, w.Code, w.Body.Bytes())
			}
			if e.Type == "InternalFailureException" {
				t.Fatalf("%s %s %q: an internal failure: %s", method, path, body, e.Message)
			}
		}
		// The next input starts without faults, which could slow or fail
		// the stats endpoint.
		if w := serve(http.MethodPost, "/runnel/faults/clear", ""); w.Code != http.StatusOK {
			t.Fatalf("clearing the faults: status %d, %s", w.Code, w.Body)
		}
	})
}

// TestControlUnknownPath checks that an unknown path under the control
// API's prefix is a 404 that lists the endpoints.
func TestControlUnknownPath(t *testing.T) {
	c := runnel.NewCluster()
	t.Cleanup(func() { c.Close() })
	s := server.New(c, server.WithControlAPI("t", nil))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/runnel/nope", strings.NewReader("{}")))
	assert.Equal(t, http.StatusNotFound, w.Code)
	assert.Contains(t, w.Body.String(), "/runnel/clock/advance")
}
