package runnelaws_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/runnelaws"
	"github.com/runnel-go/runnel/server/servertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The scenarios of the in-process producer and consumer tests, run through
// the adapter against runnel's own Kinesis API server: every call crosses
// the AWS SDK and HTTP. The server listens in memory, so each test runs in
// a synctest bubble, in virtual time.

// newAdapter starts an in-memory server with a stream of shards shards
// and returns the stream in process, for control, and the adapter over
// the SDK, for the code under test.
func newAdapter(t *testing.T, shards int, opts ...runnel.StreamOption) (*runnel.Stream, *runnelaws.Stream, *servertest.Server) {
	t.Helper()
	srv := servertest.Start(t, servertest.Options{InMemory: true})
	s, err := srv.Cluster.CreateStream(context.Background(), "orders", append([]runnel.StreamOption{runnel.WithShardCount(shards)}, opts...)...)
	require.NoError(t, err)
	return s, newClient(t, srv, "orders"), srv
}

// newClient is an adapter of its own SDK client, as another process has.
func newClient(t *testing.T, srv *servertest.Server, stream string) *runnelaws.Stream {
	t.Helper()
	a, err := runnelaws.NewStream(kinesis.NewFromConfig(srv.Config()), stream)
	require.NoError(t, err)
	return a
}

// app records what a consumer group's processors were handed, and
// checkpoints after every batch.
type app struct {
	mu      sync.Mutex
	batches []batch
}

type batch struct {
	worker, shard string
	data          []string
	checkpointed  bool
}

func (a *app) processors(worker string) func(string) runnel.RecordProcessor {
	return func(shard string) runnel.RecordProcessor {
		return runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
			err := in.Checkpointer.Checkpoint(ctx)
			b := batch{worker: worker, shard: shard, checkpointed: err == nil}
			for _, r := range in.Records {
				b.data = append(b.data, string(r.Data))
			}
			a.mu.Lock()
			a.batches = append(a.batches, b)
			a.mu.Unlock()
			return err
		})
	}
}

// check asserts that every key's records "key:n" arrived in order with
// none lost, and that every record delivered twice was in a batch whose
// checkpoint failed or came after a lease move: with a checkpoint after
// every batch, duplicates come only after the last checkpoint.
func (a *app) check(t *testing.T, want map[string]int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	next := map[string]int{}
	seen := map[string]int{}
	for _, b := range a.batches {
		for _, d := range b.data {
			seen[d]++
			key, n, ok := strings.Cut(d, ":")
			require.True(t, ok, d)
			i, err := strconv.Atoi(n)
			require.NoError(t, err)
			switch {
			case i == next[key]:
				next[key]++
			case i < next[key]:
				// a redelivery: allowed only of what a failed checkpoint
				// did not cover, from where the last good one left off
			default:
				t.Fatalf("key %s: record %d delivered before record %d", key, i, next[key])
			}
		}
	}
	assert.Equal(t, want, next, "every record of every key, in order")
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	failed := 0
	for _, b := range a.batches {
		if !b.checkpointed {
			failed += len(b.data)
		}
	}
	assert.LessOrEqual(t, dups, failed, "duplicates only of batches whose checkpoint failed (after a lease move)")
}

// putKeys puts n records over keys partition keys, numbered per key.
func putKeys(t *testing.T, p *runnel.Producer, rng *rand.Rand, n, keys int, want map[string]int) {
	t.Helper()
	for range n {
		k := "k" + strconv.Itoa(rng.IntN(keys))
		data := fmt.Sprintf("%s:%d", k, want[k])
		want[k]++
		require.NoError(t, p.Put(context.Background(), runnel.ProducerRecord{PartitionKey: k, Data: []byte(data)}, func(res runnel.ProducerResult) {
			if res.Err != nil {
				t.Errorf("record %s failed: %v", data, res.Err)
			}
		}))
	}
	require.NoError(t, p.Flush(context.Background()))
}

// waitFor polls cond in virtual time for up to an hour.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Hour); !cond(); {
		require.True(t, time.Now().Before(deadline), "waiting for %s", what)
		time.Sleep(100 * time.Millisecond)
	}
}

// delivered counts the records the group was handed.
func (a *app) delivered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, b := range a.batches {
		n += len(b.data)
	}
	return n
}

// TestAdapterGroupAcrossReshards: a producer through the adapter (with
// aggregation and its generic path's strict order) writes while the
// stream splits and merges; a consumer group of two workers, each with
// its own SDK client, reads through the adapter, polling or with enhanced
// fan-out. Per-key order, no loss, duplicates only after the last
// checkpoint. Then one worker leaves, by Close (handing its leases off) or
// by crashing (cut off from Kinesis and from the lease store, its leases
// expire), and the other takes its shards over.
func TestAdapterGroupAcrossReshards(t *testing.T) {
	for _, mode := range []string{"polling", "fan-out"} {
		for _, leave := range []string{"close", "crash"} {
			for _, seed := range []uint64{1, 42} {
				t.Run(fmt.Sprintf("%s/%s/seed=%d", mode, leave, seed), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) { runGroup(t, mode == "fan-out", leave == "crash", seed) })
				})
			}
		}
	}
}

func runGroup(t *testing.T, fanOut, crash bool, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed))
	s, w, srv := newAdapter(t, 2)
	p, err := runnel.NewProducer(ctx, w, runnel.WithAggregation(true), runnel.WithGenericPath(true), runnel.WithStrictOrder(true))
	require.NoError(t, err)
	defer p.Close(ctx)

	store := runnel.NewMemoryLeaseStore()
	a := &app{}
	const failover = 10 * time.Second
	opts := []runnel.ConsumerOption{runnel.WithFailoverTime(failover), runnel.WithInitialPosition(runnel.StartingPosition{Type: runnel.TrimHorizon})}
	if fanOut {
		opts = append(opts, runnel.WithFanOut("efo"))
	}
	// Each worker has its own SDK client and its own way to the lease
	// store, so that one can be cut off from both.
	type worker struct {
		*runnel.Consumer
		net   *severable
		store *severableStore
	}
	start := func(id string) worker {
		wk := worker{net: &severable{}, store: &severableStore{LeaseStore: store}}
		cfg := srv.Config()
		wk.net.next, cfg.HTTPClient = cfg.HTTPClient, wk.net
		src, err := runnelaws.NewStream(kinesis.NewFromConfig(cfg), "orders")
		require.NoError(t, err)
		wk.Consumer, err = runnel.NewConsumer(src, "app", a.processors(id), append(slices.Clip(opts), runnel.WithWorkerID(id), runnel.WithLeaseStore(wk.store))...)
		require.NoError(t, err)
		return wk
	}
	w1, w2 := start("w1"), start("w2")
	defer w2.Close()

	want := map[string]int{}
	putKeys(t, p, rng, 300, 20, want)
	_, err = s.UpdateShardCount(ctx, 4)
	require.NoError(t, err)
	putKeys(t, p, rng, 300, 20, want)
	shards, err := s.ListShards(ctx, runnel.ListShardsInput{Filter: runnel.ShardFilter{Type: runnel.FilterAtLatest}})
	require.NoError(t, err)
	require.NoError(t, s.MergeShards(ctx, shards.Shards[0].ShardID, shards.Shards[1].ShardID))
	putKeys(t, p, rng, 300, 20, want)
	waitFor(t, "the first 900 records, and both workers holding leases", func() bool {
		return a.delivered() >= 900 && w1.Stats().LeasesHeld > 0 && w2.Stats().LeasesHeld > 0
	})
	latest, err := s.ListShards(ctx, runnel.ListShardsInput{Filter: runnel.ShardFilter{Type: runnel.FilterAtLatest}})
	require.NoError(t, err)
	open := len(latest.Shards)

	left := time.Now()
	if crash {
		w1.net.cut.Store(true)
		w1.store.cut.Store(true)
		defer w1.Close()
	} else {
		require.NoError(t, w1.Close()) // hands its leases off
	}
	waitFor(t, "w2 to hold every lease", func() bool { return w2.Stats().LeasesHeld == open })
	if !crash {
		assert.Less(t, time.Since(left), failover, "leases handed off by Close are taken without waiting for them to expire")
	}
	putKeys(t, p, rng, 300, 20, want)
	waitFor(t, "every record", func() bool { return a.delivered() >= 1200 })
	time.Sleep(time.Minute) // nothing more arrives
	a.check(t, want)
	assert.Equal(t, 0, w1.Stats().LeasesHeld, "the worker that left holds nothing")
	leases, err := store.ListLeases(ctx)
	require.NoError(t, err)
	for _, l := range leases {
		if !l.Checkpoint.ShardEnd {
			assert.Equal(t, "w2", l.Owner, "%s is w2's", l.ShardID)
		}
	}
}

// TestAdapterThrottling: a shard's write limit far below the producer's
// rate makes PutRecords entries fail with
// ProvisionedThroughputExceededException through the SDK; the producer
// retries them (the SDK does not). A consumer then reads, polling (with
// GetRecords throttled a few times too) or with enhanced fan-out (with
// SubscribeToShard refused for its rate a few times, and subscriptions
// renewed after Kinesis's 5 minutes). Every record arrives once, in order.
func TestAdapterThrottling(t *testing.T) {
	for _, mode := range []string{"polling", "fan-out"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runThrottled(t, mode == "fan-out") })
		})
	}
}

func runThrottled(t *testing.T, fanOut bool) {
	ctx := context.Background()
	s, w, srv := newAdapter(t, 1, runnel.WithLimits(runnel.Limits{WriteRecordsPerSecond: 50, WriteBytesPerSecond: 1 << 20, ReadCallsPerSecond: 5, ReadBytesPerSecond: 2 << 20}))
	p, err := runnel.NewProducer(ctx, w, runnel.WithAggregation(false))
	require.NoError(t, err)
	defer p.Close(ctx)
	var mu sync.Mutex
	attempts, written := 0, 0
	want := map[string]int{}
	put := func(n int) {
		for range n {
			k := "k" + strconv.Itoa(written%5)
			data := fmt.Sprintf("%s:%d", k, want[k])
			want[k]++
			written++
			require.NoError(t, p.Put(ctx, runnel.ProducerRecord{PartitionKey: k, Data: []byte(data)}, func(res runnel.ProducerResult) {
				mu.Lock()
				defer mu.Unlock()
				assert.NoError(t, res.Err, data)
				attempts += res.Attempts
			}))
		}
		require.NoError(t, p.Flush(ctx))
	}
	put(200)
	assert.Greater(t, attempts, 200, "some records were throttled and sent again")

	readFault := runnel.Fault{Op: runnel.OpGetRecords, Err: runnel.ErrProvisionedThroughputExceeded, Times: 3}
	opts := []runnel.ConsumerOption{runnel.WithLeaseStore(runnel.NewMemoryLeaseStore()), runnel.WithInitialPosition(runnel.StartingPosition{Type: runnel.TrimHorizon})}
	if fanOut {
		readFault = runnel.Fault{Op: runnel.OpSubscribeToShard, Err: runnel.ErrLimitExceeded, Times: 3}
		opts = append(opts, runnel.WithFanOut("efo"))
	}
	fault, err := srv.Cluster.InjectFaultTracked(readFault)
	require.NoError(t, err)
	// Counts the subscribe calls that the fault above lets through.
	subscribes, err := srv.Cluster.InjectFaultTracked(runnel.Fault{Op: runnel.OpSubscribeToShard, Latency: time.Nanosecond})
	require.NoError(t, err)
	a := &app{}
	c, err := runnel.NewConsumer(newClient(t, srv, "orders"), "app", a.processors("w"), opts...)
	require.NoError(t, err)
	defer c.Close()
	waitFor(t, "the first 200 records", func() bool { return a.delivered() >= 200 })
	assert.True(t, fault.Spent(), "the consumer met every injected %s throttle", readFault.Op)

	before := subscribes.Fired()
	time.Sleep(6 * time.Minute) // past a subscription's lifetime
	put(100)
	waitFor(t, "every record", func() bool { return a.delivered() >= 300 })
	time.Sleep(time.Minute) // nothing more arrives
	a.check(t, want)
	assert.Equal(t, 300, a.delivered(), "no record twice")
	if fanOut {
		assert.Greater(t, subscribes.Fired(), before, "the subscription was renewed")
		assert.EqualValues(t, 300, s.Stats().Shards[0].RecordsPushed, "every record was pushed")
	}
}

// TestAdapterErrors: the service's error names arrive as runnel's
// sentinels, with the SDK's typed exception still wrapped.
func TestAdapterErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		_, w, srv := newAdapter(t, 1)
		_, err := w.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: "shardId-000000000009", StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
		require.ErrorIs(t, err, runnel.ErrResourceNotFound)
		var nf *types.ResourceNotFoundException
		require.ErrorAs(t, err, &nf)
		assert.False(t, runnel.IsRetryable(err))

		gone := newClient(t, srv, "missing")
		_, err = gone.PutRecords(ctx, runnel.PutRecordsInput{Records: []runnel.PutRecordsEntry{{PartitionKey: "k", Data: []byte("x")}}})
		require.ErrorIs(t, err, runnel.ErrResourceNotFound)
		assert.Contains(t, err.Error(), "stream missing")

		_, err = w.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: runnel.OpaqueShardIterator("not-an-iterator")})
		require.Error(t, err)
		assert.NotEmpty(t, runnel.ErrorName(err), "a Kinesis error: %v", err)

		ctx2, cancel := context.WithCancel(ctx)
		_, err = w.ListShards(ctx2, runnel.ListShardsInput{})
		require.NoError(t, err)
		cancel()
		_, err = w.ListShards(ctx2, runnel.ListShardsInput{})
		require.ErrorIs(t, err, context.Canceled)
	})
}

// TestAdapterPassesThrough: sequence numbers, ChildShards and
// MillisBehindLatest arrive as the server sent them.
func TestAdapterPassesThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, w, _ := newAdapter(t, 1)
		put, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("a")})
		require.NoError(t, err)
		_, err = s.UpdateShardCount(ctx, 2)
		require.NoError(t, err)

		it, err := w.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: put.ShardID, StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
		require.NoError(t, err)
		var viaSDK runnel.GetRecordsOutput
		for !it.IsZero() {
			viaSDK, err = w.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: it})
			require.NoError(t, err)
			if len(viaSDK.Records) > 0 {
				assert.Equal(t, put.SequenceNumber, viaSDK.Records[0].SequenceNumber)
				assert.Equal(t, "a", string(viaSDK.Records[0].Data))
			}
			it = viaSDK.NextShardIterator
		}
		direct, err := s.ListShards(ctx, runnel.ListShardsInput{})
		require.NoError(t, err)
		listed, err := w.ListShards(ctx, runnel.ListShardsInput{})
		require.NoError(t, err)
		assert.Equal(t, direct, listed)
		require.Len(t, viaSDK.ChildShards, 2)
		assert.Equal(t, []string{put.ShardID}, viaSDK.ChildShards[0].ParentShards)

		// An AT_SEQUENCE_NUMBER iterator from the number's text.
		it, err = w.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: put.ShardID, StartingPosition: runnel.StartingPosition{Type: runnel.AtSequenceNumber, SequenceNumber: put.SequenceNumber}})
		require.NoError(t, err)
		out, err := w.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: it, Limit: 1})
		require.NoError(t, err)
		require.Len(t, out.Records, 1)
		assert.Equal(t, put.SequenceNumber, out.Records[0].SequenceNumber)
	})
}

// TestNewStreamValidation: bad names and ARNs are refused, naming them.
func TestNewStreamValidation(t *testing.T) {
	k := kinesis.New(kinesis.Options{Region: "us-east-1"})
	for _, bad := range []string{"", "has space", strings.Repeat("x", 129), "arn:aws:kinesis:us-east-1:123456789012:table/x"} {
		_, err := runnelaws.NewStream(k, bad)
		require.ErrorIs(t, err, runnel.ErrValidation, bad)
		assert.Contains(t, err.Error(), strconv.Quote(bad), "the error names the value")
	}
	for _, api := range []runnelaws.KinesisAPI{nil, (*kinesis.Client)(nil)} {
		_, err := runnelaws.NewStream(api, "x")
		require.ErrorIs(t, err, runnel.ErrInvalidArgument)
	}
	s, err := runnelaws.NewStream(k, "arn:aws:kinesis:us-east-1:123456789012:stream/orders")
	require.NoError(t, err)
	assert.Equal(t, "orders", s.Name())
	arn, err := s.ARN(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "arn:aws:kinesis:us-east-1:123456789012:stream/orders", arn)
	_, err = s.ListShards(context.Background(), runnel.ListShardsInput{NextToken: "t", ExclusiveStartShardID: "shardId-000000000001"})
	require.ErrorIs(t, err, runnel.ErrInvalidArgument, "a token with a start shard is refused before any call")
}

// TestAdapterDescribe: the summary through the SDK is the stream's, and a
// producer through the adapter packs to a raised record size: a 1.5 MiB
// record, refused under Kinesis's default 1 MiB, is written.
func TestAdapterDescribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, w, srv := newAdapter(t, 1, runnel.WithMaxRecordSize(2<<20), runnel.WithLimits(runnel.Unlimited()))
		direct, err := s.Describe(ctx)
		require.NoError(t, err)
		viaSDK, err := w.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, runnel.KinesisLimits(), viaSDK.Limits, "the service does not report limits: Kinesis's")
		assert.True(t, direct.StreamCreationTimestamp.Equal(viaSDK.StreamCreationTimestamp), "created %v, not %v", direct.StreamCreationTimestamp, viaSDK.StreamCreationTimestamp)
		direct.Limits, direct.StreamCreationTimestamp = viaSDK.Limits, viaSDK.StreamCreationTimestamp
		assert.Equal(t, direct, viaSDK)
		assert.Equal(t, 2<<20, viaSDK.MaxRecordSize)
		arn, err := w.ARN(ctx)
		require.NoError(t, err)
		assert.Equal(t, direct.StreamARN, arn)

		p, err := runnel.NewProducer(ctx, w)
		require.NoError(t, err)
		defer p.Close(ctx)
		big := strings.Repeat("x", 3<<19)
		done := make(chan runnel.ProducerResult, 1)
		require.NoError(t, p.Put(ctx, runnel.ProducerRecord{PartitionKey: "k", Data: []byte(big)}, func(r runnel.ProducerResult) { done <- r }))
		require.NoError(t, p.Flush(ctx))
		require.NoError(t, (<-done).Err)

		_, err = newClient(t, srv, "missing").Describe(ctx)
		require.ErrorIs(t, err, runnel.ErrResourceNotFound)
		assert.Contains(t, err.Error(), "missing")
	})
}

// TestAdapterDescribeMalformed: a record size outside what Kinesis allows
// is a malformed response naming the value, not a producer option's error.
func TestAdapterDescribeMalformed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // NewProducer backs off between its attempts
		k := &keeper{answer: func(string) (int, string) {
			return http.StatusOK, `{"StreamDescriptionSummary":{"StreamName":"orders","StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/orders","StreamStatus":"ACTIVE","MaxRecordSizeInKiB":99999}}`
		}}
		kc := kinesis.New(kinesis.Options{Region: "us-east-1", HTTPClient: k, BaseEndpoint: aws.String("http://127.0.0.1:1"), Credentials: aws.AnonymousCredentials{}})
		s, err := runnelaws.NewStream(kc, "orders")
		require.NoError(t, err)
		_, err = s.Describe(context.Background())
		require.ErrorIs(t, err, runnel.ErrInternalFailure)
		assert.Contains(t, err.Error(), "MaxRecordSizeInKiB 99999")
		_, err = runnel.NewProducer(context.Background(), s)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "MaxRecordSizeInKiB 99999")
	})
}

// TestAdapterDescribeSmallRecords: a runnel server's stream with records
// below Kinesis's 1 MiB minimum is described as it is, and a producer
// through the adapter packs to it.
func TestAdapterDescribeSmallRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, w, _ := newAdapter(t, 1, runnel.WithMaxRecordSize(512<<10))
		sum, err := w.Describe(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 512<<10, sum.MaxRecordSize)
		p, err := runnel.NewProducer(context.Background(), w)
		require.NoError(t, err)
		require.NoError(t, p.Close(context.Background()))
	})
}

// protoRecorder remembers the HTTP major version of the responses.
type protoRecorder struct {
	next  smithyhttp.ClientDo
	major atomic.Int32
}

func (p *protoRecorder) Do(r *http.Request) (*http.Response, error) {
	resp, err := p.next.Do(r)
	if err == nil {
		p.major.Store(int32(resp.ProtoMajor))
	}
	return resp, err
}

// TestAdapterSubscriptionsOverHTTP2: two subscriptions at once on one SDK
// client over TLS and HTTP/2, as against Amazon Kinesis, each get every
// record of their shard, in order (each subscription decodes with its own
// codec: see ownCodec).
func TestAdapterSubscriptionsOverHTTP2(t *testing.T) {
	srv := servertest.NewTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := srv.Cluster.CreateStream(ctx, "orders", runnel.WithShardCount(2), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	cfg := srv.Config()
	rec := &protoRecorder{next: cfg.HTTPClient}
	cfg.HTTPClient = rec
	w, err := runnelaws.NewStream(kinesis.NewFromConfig(cfg), "orders")
	require.NoError(t, err)
	con, err := w.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "h2"})
	require.NoError(t, err)
	for {
		d, err := w.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerARN: con.ConsumerARN})
		require.NoError(t, err)
		if d.ConsumerStatus == runnel.StreamConsumerActive {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	shards, err := s.ListShards(ctx, runnel.ListShardsInput{})
	require.NoError(t, err)
	require.Len(t, shards.Shards, 2)

	const perShard = 300
	var wg sync.WaitGroup
	got := make([][]string, len(shards.Shards))
	for i, sh := range shards.Shards {
		sub, err := w.SubscribeToShard(ctx, runnel.SubscribeToShardInput{ConsumerARN: con.ConsumerARN, ShardID: sh.ShardID, StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
		require.NoError(t, err)
		defer sub.Close()
		wg.Go(func() {
			for len(got[i]) < perShard {
				ev, err := sub.Next(ctx)
				if err != nil {
					t.Errorf("shard %s: %v", sh.ShardID, err)
					return
				}
				for _, r := range ev.Records {
					got[i] = append(got[i], string(r.Data))
				}
			}
		})
	}
	for n := range perShard {
		for _, sh := range shards.Shards {
			_, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", ExplicitHashKey: sh.HashKeyRange.StartingHashKey.String(), Data: fmt.Appendf(nil, "%s:%d", sh.ShardID, n)})
			require.NoError(t, err)
		}
	}
	wg.Wait()
	assert.EqualValues(t, 2, rec.major.Load(), "the client spoke HTTP/2")
	for i, sh := range shards.Shards {
		want := make([]string, perShard)
		for n := range want {
			want[n] = fmt.Sprintf("%s:%d", sh.ShardID, n)
		}
		assert.Equal(t, want, got[i], "shard %s", sh.ShardID)
	}
}
