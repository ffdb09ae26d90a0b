package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
)

// These tests are in package server, to test the escapers and to look at
// the gauge maps; package servertest cannot be used from here (it imports
// this package), so metricsTestServer starts a server the way it does.

// metricsClock is a cluster clock that moves only when told to.
type metricsClock struct{ ns atomic.Int64 }

func newMetricsClock() *metricsClock {
	c := new(metricsClock)
	c.ns.Store(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *metricsClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *metricsClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// metricsTestServer is a server with WithMetrics on a loopback port.
type metricsTestServer struct {
	srv     *Server
	cluster *runnel.Cluster // the default one: account 000000000000 in us-east-1
	clock   *metricsClock   // every cluster's
	url     string
}

// startMetricsServer starts a server with WithMetrics and WithClusters, of
// clusters without throughput limits on one manual clock, and stops it at
// t.Cleanup.
func startMetricsServer(t *testing.T) *metricsTestServer {
	t.Helper()
	clock := newMetricsClock()
	newCluster := func(account, region string) *runnel.Cluster {
		return runnel.NewCluster(runnel.WithAccountID(account), runnel.WithRegion(region), runnel.WithClock(clock),
			runnel.WithStreamDefaults(runnel.WithLimits(runnel.Unlimited())))
	}
	c := newCluster("000000000000", "us-east-1")
	srv := New(c, WithMetrics(), WithClusters(func(account, region string) (*runnel.Cluster, error) {
		return newCluster(account, region), nil
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
	return &metricsTestServer{srv: srv, cluster: c, clock: clock, url: "http://" + l.Addr().String()}
}

// client returns an SDK client that signs with accessKey for region (a
// 12-digit access key names the account). It speaks plain-text HTTP/2:
// over HTTP/1.1 the Go SDK may close an event stream's connection itself
// (see TestSDKSubscribeToShard), and TestMetricsOverTheSDK waits for its
// stream's last message.
func (ms *metricsTestServer) client(accessKey, region string) *kinesis.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return kinesis.NewFromConfig(aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(ms.url),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, "secret", ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{Protocols: p}},
	})
}

// scrape GETs /metrics and parses the answer.
func (ms *metricsTestServer) scrape(t *testing.T) exposition {
	t.Helper()
	resp, err := http.Get(ms.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	return parseExposition(t, string(body))
}

// exposition is a parsed scrape.
type exposition struct {
	text     string
	families []string          // in the order written
	help     map[string]string // by family, unescaped
	types    map[string]string // by family
	samples  []expoSample      // in the order written
}

// expoSample is one parsed sample line.
type expoSample struct {
	name   string
	labels [][2]string // names and unescaped values, in the order written
	value  int64
}

// key is the sample's series as the text format writes it when no label
// value needs escaping: name{a="x",b="y"}.
func (s expoSample) key() string {
	parts := make([]string, len(s.labels))
	for i, l := range s.labels {
		parts[i] = l[0] + "=" + strconv.Quote(l[1])
	}
	return s.name + "{" + strings.Join(parts, ",") + "}"
}

func (s expoSample) label(name string) string {
	for _, l := range s.labels {
		if l[0] == name {
			return l[1]
		}
	}
	return ""
}

// values returns the samples by series.
func (e exposition) values() map[string]int64 {
	out := make(map[string]int64, len(e.samples))
	for _, s := range e.samples {
		out[s.key()] = s.value
	}
	return out
}

// parseExposition parses the text format as WithMetrics writes it and
// checks its rules: HELP and TYPE once per family and before its samples,
// a family's samples together, no series twice, integer values.
func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	e := exposition{text: text, help: map[string]string{}, types: map[string]string{}}
	require.True(t, strings.HasSuffix(text, "\n"), "the text ends with a line feed")
	seen := map[string]bool{}
	current := ""
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		where := fmt.Sprintf("line %d %q", i+1, line)
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kind, rest, _ := strings.Cut(rest, " ")
			name, arg, ok := strings.Cut(rest, " ")
			require.True(t, ok, where)
			require.False(t, seen[name] && name != current, "%s: family %s is not together", where, name)
			if name != current {
				e.families = append(e.families, name)
				current, seen[name] = name, true
			}
			switch kind {
			case "HELP":
				_, dup := e.help[name]
				require.False(t, dup, "%s: a second HELP", where)
				e.help[name] = unescapeHelp(t, arg)
			case "TYPE":
				_, dup := e.types[name]
				require.False(t, dup, "%s: a second TYPE", where)
				require.Contains(t, []string{"counter", "gauge"}, arg, where)
				e.types[name] = arg
			default:
				t.Fatalf("%s: a comment that is neither HELP nor TYPE", where)
			}
			continue
		}
		s := parseExpoSample(t, where, line)
		require.Equal(t, current, s.name, "%s: a sample outside its family", where)
		require.NotEmpty(t, e.types[s.name], "%s: a sample before its TYPE", where)
		e.samples = append(e.samples, s)
	}
	keys := map[string]bool{}
	for _, s := range e.samples {
		require.False(t, keys[s.key()], "series %s twice", s.key())
		keys[s.key()] = true
	}
	return e
}

// parseExpoSample parses name{label="value",...} value.
func parseExpoSample(t *testing.T, where, line string) expoSample {
	t.Helper()
	var s expoSample
	i := strings.IndexAny(line, "{ ")
	require.Positive(t, i, where)
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			eq := strings.Index(line, `="`)
			require.Positive(t, eq, where)
			name := line[:eq]
			line = line[eq+2:]
			var v strings.Builder
			for {
				require.NotEmpty(t, line, "%s: an unterminated label value", where)
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\\' {
					require.NotEmpty(t, line, where)
					switch line[0] {
					case '\\', '"':
						v.WriteByte(line[0])
					case 'n':
						v.WriteByte('\n')
					default:
						t.Fatalf("%s: escape \\%c", where, line[0])
					}
					line = line[1:]
					continue
				}
				require.NotEqual(t, byte('\n'), c, where)
				v.WriteByte(c)
			}
			s.labels = append(s.labels, [2]string{name, v.String()})
			require.NotEmpty(t, line, where)
			if line[0] == '}' {
				line = line[1:]
				break
			}
			require.Equal(t, byte(','), line[0], where)
			line = line[1:]
		}
	}
	value, ok := strings.CutPrefix(line, " ")
	require.True(t, ok, where)
	n, err := strconv.ParseInt(value, 10, 64)
	require.NoError(t, err, where)
	s.value = n
	return s
}

// unescapeHelp undoes escapeHelp.
func unescapeHelp(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		require.Less(t, i, len(s), "a HELP text ends in a backslash")
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			t.Fatalf("HELP escape \\%c", s[i])
		}
	}
	return b.String()
}

// The metric families in the order WithMetrics writes them, with their
// types and the CloudWatch metric each HELP text names.
var wantFamilies = []struct{ name, typ, cloudWatch string }{
	{"kinesis_incoming_records_total", "counter", "IncomingRecords"},
	{"kinesis_incoming_bytes_total", "counter", "IncomingBytes"},
	{"kinesis_write_provisioned_throughput_exceeded_total", "counter", "WriteProvisionedThroughputExceeded"},
	{"kinesis_read_provisioned_throughput_exceeded_total", "counter", "ReadProvisionedThroughputExceeded"},
	{"kinesis_get_records_records_total", "counter", "GetRecords.Records"},
	{"kinesis_get_records_bytes_total", "counter", "GetRecords.Bytes"},
	{"kinesis_get_records_iterator_age_milliseconds", "gauge", "GetRecords.IteratorAgeMilliseconds"},
	{"kinesis_subscribe_to_shard_event_millis_behind_latest", "gauge", "SubscribeToShardEvent.MillisBehindLatest"},
	{"kinesis_shard_incoming_records_total", "counter", "IncomingRecords"},
	{"kinesis_shard_incoming_bytes_total", "counter", "IncomingBytes"},
	{"kinesis_shard_write_provisioned_throughput_exceeded_total", "counter", "WriteProvisionedThroughputExceeded"},
	{"kinesis_shard_read_provisioned_throughput_exceeded_total", "counter", "ReadProvisionedThroughputExceeded"},
	{"kinesis_shard_outgoing_records_total", "counter", "OutgoingRecords"},
	{"kinesis_shard_outgoing_bytes_total", "counter", "OutgoingBytes"},
	{"kinesis_shard_iterator_age_milliseconds", "gauge", "IteratorAgeMilliseconds"},
	{"kinesis_shard_subscribe_to_shard_event_millis_behind_latest", "gauge", "SubscribeToShardEvent.MillisBehindLatest"},
}

// checkFamilies checks that a scrape has every family, in order, with its
// TYPE and a HELP text that names its CloudWatch metric, and that each
// family's series are in label order.
func checkFamilies(t *testing.T, e exposition) {
	t.Helper()
	var names []string
	for _, f := range wantFamilies {
		names = append(names, f.name)
		assert.Equal(t, f.typ, e.types[f.name], f.name)
		assert.Contains(t, e.help[f.name], "Kinesis "+f.cloudWatch, f.name)
	}
	assert.Equal(t, names, e.families)
	order := func(s expoSample) []string {
		return []string{s.label("account"), s.label("region"), s.label("stream"), s.label("shard"), s.label("consumer")}
	}
	for i := 1; i < len(e.samples); i++ {
		a, b := e.samples[i-1], e.samples[i]
		if a.name == b.name {
			assert.Negative(t, slices.Compare(order(a), order(b)), "%s comes before %s", a.key(), b.key())
		}
	}
}

// wantCounters are the six counters of a stream or a shard, in the order of
// wantFamilies.
type wantCounters struct{ put, putBytes, writeThrottles, readThrottles, read, readBytes int64 }

// addCounters adds a stream's (shard == "") or a shard's counters to want.
func addCounters(want map[string]int64, account, region, stream, shard string, c wantCounters) {
	labels := fmt.Sprintf(`account=%q,region=%q,stream=%q`, account, region, stream)
	names := []string{"kinesis_incoming_records_total", "kinesis_incoming_bytes_total", "kinesis_write_provisioned_throughput_exceeded_total",
		"kinesis_read_provisioned_throughput_exceeded_total", "kinesis_get_records_records_total", "kinesis_get_records_bytes_total"}
	if shard != "" {
		labels += fmt.Sprintf(`,shard=%q`, shard)
		names = []string{"kinesis_shard_incoming_records_total", "kinesis_shard_incoming_bytes_total", "kinesis_shard_write_provisioned_throughput_exceeded_total",
			"kinesis_shard_read_provisioned_throughput_exceeded_total", "kinesis_shard_outgoing_records_total", "kinesis_shard_outgoing_bytes_total"}
	}
	for i, v := range []int64{c.put, c.putBytes, c.writeThrottles, c.readThrottles, c.read, c.readBytes} {
		want[names[i]+"{"+labels+"}"] = v
	}
}

const (
	metricsShard0 = "shardId-000000000000"
	metricsShard1 = "shardId-000000000001"
	metricsShard2 = "shardId-000000000002"
	// hashKeyHalf is 2^127, where the second of two shards' hash key
	// ranges starts.
	hashKeyHalf = "170141183460469231731687303715884105728"
)

// trimHorizonIterator returns a TRIM_HORIZON iterator of a shard.
func trimHorizonIterator(t *testing.T, k *kinesis.Client, stream, shard string) *string {
	t.Helper()
	out, err := k.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	return out.ShardIterator
}

// TestMetricsOverTheSDK drives two accounts' streams with the Go SDK —
// writes, a write throttle, reads, a read throttle, one SubscribeToShard
// event — and checks every series /metrics answers, per stream and per
// shard; then that a deleted stream's series and gauges are gone.
func TestMetricsOverTheSDK(t *testing.T) {
	ms := startMetricsServer(t)
	ctx := t.Context()
	k := ms.client("runnel", "us-east-1")
	other := ms.client("111122223333", "eu-west-1")
	for _, c := range []struct {
		k      *kinesis.Client
		name   string
		shards int32
	}{{k, "orders", 2}, {k, "clicks", 1}, {other, "orders", 1}} {
		_, err := c.k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(c.name), ShardCount: aws.Int32(c.shards)})
		require.NoError(t, err)
	}

	// Three records of 5 bytes (key and data) for each shard of orders;
	// the first for shard 1 is throttled.
	_, err := ms.cluster.InjectFault(runnel.Fault{Op: runnel.OpPutRecords, StreamName: "orders", ShardID: metricsShard1, Err: runnel.ErrProvisionedThroughputExceeded, Times: 1})
	require.NoError(t, err)
	var entries []types.PutRecordsRequestEntry
	for _, hashKey := range []string{"0", "0", "0", hashKeyHalf, hashKeyHalf, hashKeyHalf} {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), ExplicitHashKey: aws.String(hashKey), Data: []byte("abcd")})
	}
	put, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: entries})
	require.NoError(t, err)
	require.EqualValues(t, 1, aws.ToInt32(put.FailedRecordCount))
	assert.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(put.Records[3].ErrorCode))
	_, err = other.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("pk"), Data: []byte("xyz")})
	require.NoError(t, err)

	// Seven seconds later, two of shard 0's records: the third is 7 s old.
	ms.clock.advance(7 * time.Second)
	got0, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: trimHorizonIterator(t, k, "orders", metricsShard0), Limit: aws.Int32(2)})
	require.NoError(t, err)
	require.Len(t, got0.Records, 2)
	assert.EqualValues(t, 7000, aws.ToInt64(got0.MillisBehindLatest))
	// All of shard 1's, then a throttled read of it.
	got1, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: trimHorizonIterator(t, k, "orders", metricsShard1)})
	require.NoError(t, err)
	require.Len(t, got1.Records, 2)
	assert.Zero(t, aws.ToInt64(got1.MillisBehindLatest))
	_, err = ms.cluster.InjectFault(runnel.Fault{Op: runnel.OpGetRecords, StreamName: "orders", ShardID: metricsShard1, Err: runnel.ErrProvisionedThroughputExceeded, Times: 1})
	require.NoError(t, err)
	_, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: got1.NextShardIterator}, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	var throttled *types.ProvisionedThroughputExceededException
	require.ErrorAs(t, err, &throttled)

	// One event for consumer app from shard 0: all three records.
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	require.NoError(t, err)
	reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: d.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("app")})
	require.NoError(t, err)
	sub, err := k.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String(metricsShard0),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	require.NoError(t, err)
	events := sub.GetStream()
	defer events.Close()
	var ev *types.SubscribeToShardEventStreamMemberSubscribeToShardEvent
	select {
	case e, ok := <-events.Events():
		require.True(t, ok, "the event stream ended: %v", events.Err())
		ev, ok = e.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		require.True(t, ok, "event %T", e)
	case <-time.After(20 * time.Second):
		t.Fatal("no SubscribeToShard event in 20 s")
	}
	require.Len(t, ev.Value.Records, 3)
	assert.Zero(t, aws.ToInt64(ev.Value.MillisBehindLatest))

	want := map[string]int64{}
	const def, eu = "000000000000", "111122223333"
	addCounters(want, def, "us-east-1", "clicks", "", wantCounters{})
	addCounters(want, def, "us-east-1", "clicks", metricsShard0, wantCounters{})
	addCounters(want, def, "us-east-1", "orders", "", wantCounters{put: 5, putBytes: 25, writeThrottles: 1, readThrottles: 1, read: 4, readBytes: 20})
	addCounters(want, def, "us-east-1", "orders", metricsShard0, wantCounters{put: 3, putBytes: 15, read: 2, readBytes: 10})
	addCounters(want, def, "us-east-1", "orders", metricsShard1, wantCounters{put: 2, putBytes: 10, writeThrottles: 1, readThrottles: 1, read: 2, readBytes: 10})
	addCounters(want, eu, "eu-west-1", "orders", "", wantCounters{put: 1, putBytes: 5})
	addCounters(want, eu, "eu-west-1", "orders", metricsShard0, wantCounters{put: 1, putBytes: 5})
	orders := `account="000000000000",region="us-east-1",stream="orders"`
	want["kinesis_get_records_iterator_age_milliseconds{"+orders+"}"] = 7000
	want["kinesis_shard_iterator_age_milliseconds{"+orders+`,shard="shardId-000000000000"}`] = 7000
	want["kinesis_shard_iterator_age_milliseconds{"+orders+`,shard="shardId-000000000001"}`] = 0
	want["kinesis_subscribe_to_shard_event_millis_behind_latest{"+orders+`,consumer="app"}`] = 0
	want["kinesis_shard_subscribe_to_shard_event_millis_behind_latest{"+orders+`,shard="shardId-000000000000",consumer="app"}`] = 0

	first := ms.scrape(t)
	checkFamilies(t, first)
	assert.Equal(t, want, first.values())
	assert.Equal(t, first.text, ms.scrape(t).text, "a second scrape of the same state is the same text")

	// Deregistering the consumer ends the subscription; once its exception
	// has arrived, the server sends no more events.
	_, err = k.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
	require.NoError(t, err)
	for open := true; open; {
		select {
		case _, open = <-events.Events():
		case <-time.After(20 * time.Second):
			t.Fatal("the event stream did not end in 20 s")
		}
	}
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, events.Err(), &notFound)
	_, err = k.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")})
	require.NoError(t, err)

	for key := range want {
		if strings.Contains(key, orders) {
			delete(want, key)
		}
	}
	after := ms.scrape(t)
	checkFamilies(t, after)
	assert.Equal(t, want, after.values(), "the deleted stream's series are gone; the other account's orders stays")
	m := ms.srv.metrics()
	m.mu.Lock()
	assert.Empty(t, m.ages, "no iterator-age gauge of the deleted stream is kept")
	assert.Empty(t, m.behind, "no consumer gauge of the deleted stream is kept")
	m.mu.Unlock()
}

// TestMetricsCountersAcrossReshard checks that a stream's counters do not
// go down when a shard closed by a reshard is gone (all its records
// expired), and that the gone shard's series and gauge go.
func TestMetricsCountersAcrossReshard(t *testing.T) {
	ms := startMetricsServer(t)
	ctx := t.Context()
	k := ms.client("runnel", "us-east-1")
	name := aws.String("s")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	putN := func(n int) {
		t.Helper()
		for range n {
			_, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: []byte("abcd")})
			require.NoError(t, err)
		}
	}
	putN(3)
	_, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: trimHorizonIterator(t, k, "s", metricsShard0)})
	require.NoError(t, err)
	_, err = k.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: name, TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling})
	require.NoError(t, err)
	putN(2)

	labels := `{account="000000000000",region="us-east-1",stream="s"}`
	shardSeries := func(e exposition) []string {
		var out []string
		for _, s := range e.samples {
			if s.name == "kinesis_shard_incoming_records_total" {
				out = append(out, s.label("shard"))
			}
		}
		return out
	}
	before := ms.scrape(t)
	assert.EqualValues(t, 5, before.values()["kinesis_incoming_records_total"+labels])
	assert.EqualValues(t, 25, before.values()["kinesis_incoming_bytes_total"+labels])
	assert.Equal(t, []string{metricsShard0, metricsShard1, metricsShard2}, shardSeries(before))
	assert.Contains(t, before.text, `kinesis_shard_iterator_age_milliseconds{account="000000000000",region="us-east-1",stream="s",shard="shardId-000000000000"} 0`)

	// A day and an hour later every record has expired, and lowering the
	// retention to what it is expires them at once: the parent is gone.
	ms.clock.advance(25 * time.Hour)
	st, err := ms.cluster.Stream("s")
	require.NoError(t, err)
	require.NoError(t, st.DecreaseRetentionPeriod(ctx, 24*time.Hour))

	after := ms.scrape(t)
	checkFamilies(t, after)
	assert.Equal(t, []string{metricsShard1, metricsShard2}, shardSeries(after))
	assert.EqualValues(t, 5, after.values()["kinesis_incoming_records_total"+labels], "the gone shard's 3 records still count")
	assert.EqualValues(t, 25, after.values()["kinesis_incoming_bytes_total"+labels])
	assert.EqualValues(t, 3, after.values()["kinesis_get_records_records_total"+labels])
	assert.NotContains(t, after.text, "kinesis_shard_iterator_age_milliseconds{", "the gone shard's gauge")
	assert.NotContains(t, after.text, "kinesis_get_records_iterator_age_milliseconds{")
	m := ms.srv.metrics()
	m.mu.Lock()
	assert.Empty(t, m.ages)
	m.mu.Unlock()
}

// TestMetricsEndpointMethods checks the methods /metrics takes, and that
// a server without WithMetrics has no such endpoint.
func TestMetricsEndpointMethods(t *testing.T) {
	ms := startMetricsServer(t)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), method, ms.url+"/metrics", strings.NewReader("{}"))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
			assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		resp, err := http.Head(ms.url + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, metricsContentType, resp.Header.Get("Content-Type"))
		assert.Empty(t, body)
	})
	t.Run("without WithMetrics", func(t *testing.T) {
		c := runnel.NewCluster()
		defer c.Close()
		srv := New(c)
		defer srv.Close()
		assert.Nil(t, srv.metrics())
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		assert.Equal(t, "UnknownOperationException", rec.Header().Get("X-Amzn-ErrorType"), "answered as a Kinesis request")
		var m *metrics
		assert.NotPanics(t, func() {
			m.iteratorAge(nil, metricsShard0, 1)
			m.millisBehindLatest(nil, metricsShard0, "arn", 1)
		})
	})
}

// TestMetricsGauges checks the gauges' aggregation over shards, a consumer
// registered again under its name, and that a consumer's gauges go a
// minute after its last event, in a synctest bubble.
func TestMetricsGauges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := runnel.NewCluster()
		defer c.Close()
		srv := New(c, WithMetrics())
		defer srv.Close()
		st, err := c.CreateStream(ctx, "s", runnel.WithShardCount(2))
		require.NoError(t, err)
		register := func() string {
			t.Helper()
			sc, err := st.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "app"})
			require.NoError(t, err)
			return sc.ConsumerARN
		}
		scrape := func() map[string]int64 {
			t.Helper()
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			e := parseExposition(t, rec.Body.String())
			checkFamilies(t, e)
			out := map[string]int64{}
			for key, v := range e.values() {
				if !strings.Contains(key, "_total{") {
					out[key] = v
				}
			}
			return out
		}
		const (
			s      = `account="000000000000",region="us-east-1",stream="s"`
			shard0 = `,shard="shardId-000000000000"`
			shard1 = `,shard="shardId-000000000001"`
			app    = `,consumer="app"`
		)

		m := srv.metrics()
		first := register()
		m.iteratorAge(st, metricsShard0, 40)
		m.iteratorAge(st, metricsShard1, 90)
		m.iteratorAge(st, metricsShard1, 60) // the latest counts
		m.millisBehindLatest(st, metricsShard0, first, 1500)
		m.millisBehindLatest(st, metricsShard1, first, 300)
		assert.Equal(t, map[string]int64{
			"kinesis_get_records_iterator_age_milliseconds{" + s + "}":                              60,
			"kinesis_shard_iterator_age_milliseconds{" + s + shard0 + "}":                           40,
			"kinesis_shard_iterator_age_milliseconds{" + s + shard1 + "}":                           60,
			"kinesis_subscribe_to_shard_event_millis_behind_latest{" + s + app + "}":                1500,
			"kinesis_shard_subscribe_to_shard_event_millis_behind_latest{" + s + shard0 + app + "}": 1500,
			"kinesis_shard_subscribe_to_shard_event_millis_behind_latest{" + s + shard1 + app + "}": 300,
		}, scrape())

		// Registered again a second later, app has another ARN; its
		// latest event on each shard tells, whichever ARN it was for.
		time.Sleep(30 * time.Second)
		require.NoError(t, st.DeregisterStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerARN: first}))
		second := register()
		require.NotEqual(t, first, second)
		m.millisBehindLatest(st, metricsShard0, second, 5)
		got := scrape()
		assert.EqualValues(t, 5, got["kinesis_shard_subscribe_to_shard_event_millis_behind_latest{"+s+shard0+app+"}"])
		assert.EqualValues(t, 300, got["kinesis_shard_subscribe_to_shard_event_millis_behind_latest{"+s+shard1+app+"}"])
		assert.EqualValues(t, 300, got["kinesis_subscribe_to_shard_event_millis_behind_latest{"+s+app+"}"])

		// A minute after the first ARN's last event its gauge is gone; a
		// minute after the second's, all of them. The GetRecords gauges
		// stay.
		time.Sleep(31 * time.Second)
		got = scrape()
		assert.EqualValues(t, 5, got["kinesis_subscribe_to_shard_event_millis_behind_latest{"+s+app+"}"])
		assert.NotContains(t, got, "kinesis_shard_subscribe_to_shard_event_millis_behind_latest{"+s+shard1+app+"}")
		time.Sleep(time.Minute)
		assert.Equal(t, map[string]int64{
			"kinesis_get_records_iterator_age_milliseconds{" + s + "}":    60,
			"kinesis_shard_iterator_age_milliseconds{" + s + shard0 + "}": 40,
			"kinesis_shard_iterator_age_milliseconds{" + s + shard1 + "}": 60,
		}, scrape())
		m.mu.Lock()
		assert.Empty(t, m.behind)
		m.mu.Unlock()
	})
}

// TestMetricsTextEscaping checks the escapes of label values and HELP
// texts, and that a written sample parses back to its label values.
func TestMetricsTextEscaping(t *testing.T) {
	for _, c := range []struct{ name, in, label, help string }{
		{"plain", "orders-1.a_b", "orders-1.a_b", "orders-1.a_b"},
		{"empty", "", "", ""},
		{"backslash", `a\b`, `a\\b`, `a\\b`},
		{"double quote", `say "hi"`, `say \"hi\"`, `say "hi"`},
		{"line feed", "one\ntwo", `one\ntwo`, `one\ntwo`},
		{"escapes in a row", "\\\"\n\\n", `\\\"\n\\n`, `\\"\n\\n`},
		{"tab and unicode unchanged", "a\tb é ☃", "a\tb é ☃", "a\tb é ☃"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.label, escapeLabelValue(c.in))
			assert.Equal(t, c.help, escapeHelp(c.in))

			var w metricsWriter
			w.family("m", "gauge", c.in)
			w.sample("m", -3, "a", c.in, "b", "x")
			e := parseExposition(t, w.buf.String())
			assert.Equal(t, c.in, e.help["m"])
			require.Len(t, e.samples, 1)
			assert.Equal(t, [][2]string{{"a", c.in}, {"b", "x"}}, e.samples[0].labels)
			assert.EqualValues(t, -3, e.samples[0].value)
		})
	}
	var w metricsWriter
	w.sample("bare", 7)
	assert.Equal(t, "bare 7\n", w.buf.String(), "a sample without labels has no braces")
}

// TestMetricsGaugesBounded checks that the gauge maps stay bounded when
// nobody scrapes: past maxGauges entries, stale consumer gauges go.
func TestMetricsGaugesBounded(t *testing.T) {
	c := runnel.NewCluster()
	t.Cleanup(func() { c.Close() })
	st, err := c.CreateStream(t.Context(), "s", runnel.WithShardCount(1))
	require.NoError(t, err)
	s := New(c, WithMetrics())
	m := s.metrics()
	old := time.Now().Add(-2 * consumerGaugeTTL)
	for i := range maxGauges + 1 {
		m.behind[gaugeConsumer{gaugeShard{weak.Make(st), "shardId-000000000000"}, fmt.Sprint("arn-", i)}] = gaugeValue{at: old}
	}
	m.millisBehindLatest(st, "shardId-000000000000", "arn-new", 7)
	assert.Len(t, m.behind, 1, "the stale gauges are dropped without a scrape")
}
