package runnel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Shard ids and hash keys of a two-shard stream, for the tests of this file.
const (
	etShard0 = "shardId-000000000000"
	etShard1 = "shardId-000000000001"
	etLow    = "0" // an ExplicitHashKey routed to etShard0
)

// etHigh is an ExplicitHashKey routed to the last shard.
var etHigh = MaxHashKey().String()

// etKinesisNames are the Kinesis error names of the error table, in the
// order of kinesisErrors.
var etKinesisNames = map[error]string{
	ErrResourceNotFound:              "ResourceNotFoundException",
	ErrResourceInUse:                 "ResourceInUseException",
	ErrInvalidArgument:               "InvalidArgumentException",
	ErrLimitExceeded:                 "LimitExceededException",
	ErrProvisionedThroughputExceeded: "ProvisionedThroughputExceededException",
	ErrExpiredIterator:               "ExpiredIteratorException",
	ErrExpiredNextToken:              "ExpiredNextTokenException",
	ErrInternalFailure:               "InternalFailureException",
	ErrValidation:                    "ValidationException",
	ErrAccessDenied:                  "AccessDeniedException",
	ErrKMSAccessDenied:               "KMSAccessDeniedException",
	ErrKMSDisabled:                   "KMSDisabledException",
	ErrKMSInvalidState:               "KMSInvalidStateException",
	ErrKMSNotFound:                   "KMSNotFoundException",
	ErrKMSOptInRequired:              "KMSOptInRequired",
	ErrKMSThrottling:                 "KMSThrottlingException",
	ErrSerialization:                 "SerializationException",
	ErrUnknownOperation:              "UnknownOperationException",
	ErrMissingAuthenticationToken:    "MissingAuthenticationTokenException",
	ErrIncompleteSignature:           "IncompleteSignatureException",
	ErrUnrecognizedClient:            "UnrecognizedClientException",
	ErrInvalidSignature:              "InvalidSignatureException",
}

// etRunnelSentinels are runnel's own sentinels.
var etRunnelSentinels = []error{ErrClosed, ErrNotAttempted, ErrShardMapChanged, ErrBufferFull, ErrRecordExpired}

// etAssertClassified checks that err is an *Error whose Kind is a sentinel
// of the error table, one of runnel's own, or the context's error, and that
// its text carries the "runnel:" prefix exactly once.
func etAssertClassified(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var e *Error
	require.ErrorAs(t, err, &e, "%T %v", err, err)
	known := e.Kind == context.Canceled || e.Kind == context.DeadlineExceeded
	if _, ok := etKinesisNames[e.Kind]; ok {
		known = true
	}
	for _, s := range etRunnelSentinels {
		known = known || e.Kind == s
	}
	assert.True(t, known, "Kind %v of %q is no sentinel", e.Kind, err)
	assert.True(t, errors.Is(err, e.Kind))
	assert.Equal(t, 1, strings.Count(err.Error(), "runnel:"), "%q", err)
	assert.True(t, strings.HasPrefix(err.Error(), "runnel: "), "%q", err)
}

func TestErrorTable(t *testing.T) {
	require.Len(t, kinesisErrors, len(etKinesisNames), "every sentinel of the table is named in this test")
	retryable := map[error]bool{
		ErrProvisionedThroughputExceeded: true,
		ErrLimitExceeded:                 true,
		ErrInternalFailure:               true,
		ErrKMSThrottling:                 true,
	}
	seen := map[string]bool{}
	for _, sentinel := range kinesisErrors {
		name, ok := etKinesisNames[sentinel]
		require.True(t, ok, "sentinel %v is not expected", sentinel)
		t.Run(name, func(t *testing.T) {
			assert.False(t, seen[name], "name %s twice in the table", name)
			seen[name] = true
			assert.Equal(t, name, ErrorName(sentinel))
			assert.Equal(t, name, sentinel.Error())
			assert.Same(t, sentinel, ErrorForName(name))
			wantStatus := http.StatusBadRequest
			if sentinel == ErrInternalFailure {
				wantStatus = http.StatusInternalServerError
			}
			assert.Equal(t, wantStatus, HTTPStatus(sentinel))
			assert.Equal(t, retryable[sentinel], IsRetryable(sentinel))

			// Wrapped in an *Error, and with %w, the classification holds.
			wrapped := errorf("PutRecord", sentinel, "value %d", 7)
			assert.Equal(t, name, ErrorName(wrapped))
			assert.Equal(t, wantStatus, HTTPStatus(wrapped))
			assert.Equal(t, retryable[sentinel], IsRetryable(wrapped))
			twice := fmt.Errorf("outer: %w", wrapped)
			assert.Equal(t, name, ErrorName(twice))
			assert.Equal(t, retryable[sentinel], IsRetryable(twice))
		})
	}
	t.Run("PerRecordInternalFailure", func(t *testing.T) {
		assert.Same(t, ErrInternalFailure, ErrorForName("InternalFailure"))
	})
	t.Run("UnknownName", func(t *testing.T) {
		assert.Nil(t, ErrorForName("Nope"))
		assert.Nil(t, ErrorForName(""))
		assert.Nil(t, ErrorForName("closed"), "runnel's own sentinels are not Kinesis names")
	})
	t.Run("HTTPStatusOfUnclassified", func(t *testing.T) {
		assert.Equal(t, http.StatusInternalServerError, HTTPStatus(errors.New("x")))
		assert.Equal(t, "", ErrorName(errors.New("x")))
	})
}

func TestErrorRetryable(t *testing.T) {
	throttle := errorf("PutRecords", ErrProvisionedThroughputExceeded, "x")
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"Nil", nil, false},
		{"Closed", ErrClosed, false},
		{"ClosedWrapped", errorf("PutRecord", ErrClosed, "the cluster is closed"), false},
		{"NotAttempted", ErrNotAttempted, true},
		{"ShardMapChanged", ErrShardMapChanged, true},
		{"BufferFull", ErrBufferFull, true},
		{"BufferFullWrapped", errorf("Put", ErrBufferFull, "full"), true},
		{"RecordExpired", ErrRecordExpired, false},
		{"RecordExpiredWrappingThrottle", &Error{Op: "Put", Kind: ErrRecordExpired, Err: throttle}, false},
		{"Throttle", throttle, true},
		{"Canceled", context.Canceled, false},
		{"DeadlineExceeded", context.DeadlineExceeded, false},
		{"CanceledWrapped", ctxError("PutRecord", context.Canceled), false},
		{"DeadlineExceededWrapped", ctxError("GetRecords", context.DeadlineExceeded), false},
		{"Unclassified", errors.New("x"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, IsRetryable(tc.err), "%v", tc.err)
		})
	}
	t.Run("RecordExpiredStillFindsThrottle", func(t *testing.T) {
		err := &Error{Op: "Put", Kind: ErrRecordExpired, Err: throttle}
		assert.ErrorIs(t, err, ErrRecordExpired)
		assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded)
	})
}

func TestErrorRecordErrorCode(t *testing.T) {
	c, s := newTestStream(t, WithShardCount(1))
	ctx := context.Background()
	injectFault(t, c, Fault{Op: OpPutRecords, Err: ErrExpiredIterator, Record: func(key string, _ []byte) bool { return key == "bad" }})
	out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "ok", Data: []byte("a")}, {PartitionKey: "bad", Data: []byte("b")}}})
	require.NoError(t, err)
	require.Len(t, out.Records, 2)
	require.NoError(t, out.Records[0].Err)
	injected := out.Records[1].Err
	require.ErrorIs(t, injected, ErrExpiredIterator)

	cases := []struct {
		name string
		err  error
		want string
	}{
		{"Nil", nil, ""},
		{"Throttle", ErrProvisionedThroughputExceeded, "ProvisionedThroughputExceededException"},
		{"ThrottleWrapped", errorf("PutRecords", ErrProvisionedThroughputExceeded, "rate exceeded"), "ProvisionedThroughputExceededException"},
		{"InternalFailure", ErrInternalFailure, "InternalFailure"},
		{"InjectedExpiredIterator", injected, "InternalFailure"},
		{"Unclassified", errors.New("x"), "InternalFailure"},
		{"NotAttempted", ErrNotAttempted, "InternalFailure"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, RecordErrorCode(tc.err))
		})
	}
}

// TestContextErrors checks that an operation under an ended context fails
// with an *Error of that operation wrapping the context's error.
func TestContextErrors(t *testing.T) {
	ops := []struct {
		name, op string
		call     func(ctx context.Context, c *Cluster, s *Stream, it ShardIterator) error
	}{
		{"PutRecord", "PutRecord", func(ctx context.Context, _ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		}},
		{"PutRecords", "PutRecords", func(ctx context.Context, _ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "k", Data: []byte("v")}}})
			return err
		}},
		{"GetShardIterator", "GetShardIterator", func(ctx context.Context, _ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: etShard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
			return err
		}},
		{"GetRecords", "GetRecords", func(ctx context.Context, _ *Cluster, s *Stream, it ShardIterator) error {
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			return err
		}},
		{"ListShards", "ListShards", func(ctx context.Context, _ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.ListShards(ctx, ListShardsInput{})
			return err
		}},
		{"Describe", "DescribeStreamSummary", func(ctx context.Context, _ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.Describe(ctx)
			return err
		}},
		{"IncreaseRetentionPeriod", "IncreaseStreamRetentionPeriod", func(ctx context.Context, _ *Cluster, s *Stream, _ ShardIterator) error {
			return s.IncreaseRetentionPeriod(ctx, 48*time.Hour)
		}},
		{"CreateStream", "CreateStream", func(ctx context.Context, c *Cluster, _ *Stream, _ ShardIterator) error {
			_, err := c.CreateStream(ctx, "other")
			return err
		}},
		{"DeleteStream", "DeleteStream", func(ctx context.Context, c *Cluster, _ *Stream, _ ShardIterator) error {
			return c.DeleteStream(ctx, "test")
		}},
		{"ListStreams", "ListStreams", func(ctx context.Context, c *Cluster, _ *Stream, _ ShardIterator) error {
			_, err := c.ListStreams(ctx)
			return err
		}},
	}
	ended := []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		want  error
		other error
	}{
		{"Canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled, context.DeadlineExceeded},
		{"DeadlineExceeded", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, context.DeadlineExceeded, context.Canceled},
	}
	for _, e := range ended {
		for _, o := range ops {
			t.Run(e.name+"/"+o.name, func(t *testing.T) {
				c, s := newTestStream(t, WithShardCount(1))
				it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
				ctx, cancel := e.ctx()
				defer cancel()
				err := o.call(ctx, c, s, it)
				require.Error(t, err)
				var re *Error
				require.ErrorAs(t, err, &re)
				assert.Equal(t, o.op, re.Op)
				assert.ErrorIs(t, err, e.want)
				assert.NotErrorIs(t, err, e.other)
				assert.False(t, IsRetryable(err))
				assert.Equal(t, "", ErrorName(err), "the context's error is not a Kinesis error")
				etAssertClassified(t, err)

				// Nothing happened: no record, the stream is still there.
				assert.Zero(t, s.Stats().Total.RecordsPut)
				names, err := c.ListStreams(context.Background())
				require.NoError(t, err)
				assert.Equal(t, []string{"test"}, names)
			})
		}
	}
}

// TestClosedErrors checks that the operations on a closed cluster and its
// streams wrap ErrClosed, with one "runnel:" prefix.
func TestClosedErrors(t *testing.T) {
	ops := []struct {
		name, op string
		call     func(c *Cluster, s *Stream, it ShardIterator) error
	}{
		{"PutRecord", "PutRecord", func(_ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		}},
		{"PutRecords", "PutRecords", func(_ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.PutRecords(context.Background(), PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "k", Data: []byte("v")}}})
			return err
		}},
		{"GetShardIterator", "GetShardIterator", func(_ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.GetShardIterator(context.Background(), GetShardIteratorInput{ShardID: etShard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
			return err
		}},
		{"GetRecords", "GetRecords", func(_ *Cluster, s *Stream, it ShardIterator) error {
			_, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it})
			return err
		}},
		{"ListShards", "ListShards", func(_ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.ListShards(context.Background(), ListShardsInput{})
			return err
		}},
		{"Describe", "DescribeStreamSummary", func(_ *Cluster, s *Stream, _ ShardIterator) error {
			_, err := s.Describe(context.Background())
			return err
		}},
		{"CreateStream", "CreateStream", func(c *Cluster, _ *Stream, _ ShardIterator) error {
			_, err := c.CreateStream(context.Background(), "other")
			return err
		}},
		{"DeleteStream", "DeleteStream", func(c *Cluster, _ *Stream, _ ShardIterator) error {
			return c.DeleteStream(context.Background(), "test")
		}},
		{"ListStreams", "ListStreams", func(c *Cluster, _ *Stream, _ ShardIterator) error {
			_, err := c.ListStreams(context.Background())
			return err
		}},
		{"Stream", "DescribeStream", func(c *Cluster, _ *Stream, _ ShardIterator) error {
			_, err := c.Stream("test")
			return err
		}},
		{"NewProducer", "NewProducer", func(_ *Cluster, s *Stream, _ ShardIterator) error {
			p, err := NewProducer(context.Background(), s)
			if err == nil {
				p.Close(context.Background())
			}
			return err
		}},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			c, s := newTestStream(t, WithShardCount(1))
			it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
			require.NoError(t, c.Close())
			err := o.call(c, s, it)
			require.ErrorIs(t, err, ErrClosed)
			var re *Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, o.op, re.Op)
			assert.False(t, IsRetryable(err))
			assert.Equal(t, "", ErrorName(err))
			etAssertClassified(t, err)
		})
	}
}

// TestErrorPrefixOnce provokes errors of many kinds and checks that each is
// classified by a sentinel and reads "runnel: " exactly once (the old bug
// was "runnel: PutRecord: runnel: closed").
func TestErrorPrefixOnce(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		kinds   []error // what the error must wrap
		provoke func(t *testing.T) error
	}{
		{"ClosedCluster", []error{ErrClosed}, func(t *testing.T) error {
			c, s := newTestStream(t)
			require.NoError(t, c.Close())
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		}},
		{"DeletedStream", []error{ErrResourceNotFound}, func(t *testing.T) error {
			c, s := newTestStream(t)
			require.NoError(t, c.DeleteStream(ctx, "test"))
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		}},
		{"DeletedStreamGetRecords", []error{ErrResourceNotFound}, func(t *testing.T) error {
			c, s := newTestStream(t)
			it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
			require.NoError(t, c.DeleteStream(ctx, "test"))
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			return err
		}},
		{"EmptyPartitionKey", []error{ErrValidation}, func(t *testing.T) error {
			_, s := newTestStream(t)
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "", Data: []byte("v")})
			return err
		}},
		{"EmptyPartitionKeyPutRecords", []error{ErrValidation}, func(t *testing.T) error {
			_, s := newTestStream(t)
			_, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "k"}, {PartitionKey: ""}}})
			return err
		}},
		{"BadExplicitHashKey", []error{ErrValidation}, func(t *testing.T) error {
			_, s := newTestStream(t)
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: "12ab"})
			return err
		}},
		{"ExplicitHashKeyTooLarge", []error{ErrInvalidArgument}, func(t *testing.T) error {
			_, s := newTestStream(t)
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456"})
			return err
		}},
		{"BadOpaqueIterator", []error{ErrInvalidArgument}, func(t *testing.T) error {
			_, s := newTestStream(t)
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: OpaqueShardIterator("not-a-token")})
			return err
		}},
		{"UnknownShard", []error{ErrResourceNotFound}, func(t *testing.T) error {
			_, s := newTestStream(t)
			_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: "shardId-000000000099", StartingPosition: StartingPosition{Type: TrimHorizon}})
			return err
		}},
		{"InjectedThrottle", []error{ErrProvisionedThroughputExceeded}, func(t *testing.T) error {
			c, s := newTestStream(t)
			injectFault(t, c, Fault{Op: OpPutRecord, Err: ErrProvisionedThroughputExceeded})
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		}},
		{"InjectedRunnelSentinel", []error{ErrClosed}, func(t *testing.T) error {
			c, s := newTestStream(t)
			injectFault(t, c, Fault{Op: OpListShards, Err: ErrClosed})
			_, err := s.ListShards(ctx, ListShardsInput{})
			return err
		}},
		{"ProducerRecordExpired", []error{ErrRecordExpired, ErrProvisionedThroughputExceeded}, func(t *testing.T) error {
			return etExpiredRecord(t, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded})
		}},
		{"ProducerRecordExpiredRecordFault", []error{ErrRecordExpired, ErrProvisionedThroughputExceeded}, func(t *testing.T) error {
			return etExpiredRecord(t, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded,
				Record: func(string, []byte) bool { return true }})
		}},
		{"ProducerRecordExpiredGenericPath", []error{ErrRecordExpired, ErrProvisionedThroughputExceeded}, func(t *testing.T) error {
			return etExpiredRecord(t, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded}, WithGenericPath(true))
		}},
		{"ProducerBufferFull", []error{ErrBufferFull}, func(t *testing.T) error {
			_, s := newTestStream(t)
			p, err := NewProducer(ctx, s, WithBufferLimits(1<<20, 1))
			require.NoError(t, err)
			defer func() { assert.NoError(t, p.Close(ctx)) }()
			require.NoError(t, p.TryPut(ProducerRecord{PartitionKey: "k", Data: []byte("first")}, nil))
			return p.TryPut(ProducerRecord{PartitionKey: "k", Data: []byte("second")}, nil)
		}},
		{"ProducerClosed", []error{ErrClosed}, func(t *testing.T) error {
			_, s := newTestStream(t)
			p, err := NewProducer(ctx, s)
			require.NoError(t, err)
			require.NoError(t, p.Close(ctx))
			return p.TryPut(ProducerRecord{PartitionKey: "k", Data: []byte("late")}, nil)
		}},
		{"ProducerOfClosedCluster", []error{ErrClosed}, func(t *testing.T) error {
			c, s := newTestStream(t)
			require.NoError(t, c.Close())
			_, err := NewProducer(ctx, s)
			return err
		}},
		{"ProducerInvalidRecord", []error{ErrValidation}, func(t *testing.T) error {
			_, s := newTestStream(t)
			p, err := NewProducer(ctx, s)
			require.NoError(t, err)
			defer func() { assert.NoError(t, p.Close(ctx)) }()
			return p.TryPut(ProducerRecord{PartitionKey: ""}, nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				err := tc.provoke(t)
				require.Error(t, err)
				for _, k := range tc.kinds {
					assert.ErrorIs(t, err, k)
				}
				etAssertClassified(t, err)
				t.Log(err)
			})
		})
	}
}

// etExpiredRecord puts one record through a producer into a stream with
// fault f installed, which must make every attempt fail, and returns the
// record's error once its TTL has passed. Call it in a synctest bubble.
func etExpiredRecord(t *testing.T, f Fault, opts ...ProducerOption) error {
	t.Helper()
	ctx := context.Background()
	c, s := newTestStream(t, WithShardCount(2))
	injectFault(t, c, f)
	opts = append([]ProducerOption{WithRecordTTL(time.Second), WithRetryBackoff(50*time.Millisecond, 200*time.Millisecond)}, opts...)
	p, err := NewProducer(ctx, s, opts...)
	require.NoError(t, err)
	defer func() { assert.NoError(t, p.Close(ctx)) }()
	var res ProducerResult
	calls := 0
	start := time.Now()
	require.NoError(t, p.Put(ctx, ProducerRecord{PartitionKey: "k", Data: []byte("v")}, func(r ProducerResult) {
		calls++
		res = r
	}))
	require.NoError(t, p.Flush(ctx))
	require.Equal(t, 1, calls, "the callback runs once")
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "the record failed at its TTL, not before")
	assert.Greater(t, res.Attempts, 1, "the record was retried")
	assert.Zero(t, s.Stats().Total.RecordsPut)
	require.ErrorIs(t, res.Err, ErrRecordExpired)
	require.ErrorIs(t, res.Err, ErrProvisionedThroughputExceeded)
	assert.False(t, IsRetryable(res.Err))
	var e *Error
	require.ErrorAs(t, res.Err, &e)
	assert.Equal(t, "Put", e.Op)
	assert.Same(t, ErrRecordExpired, e.Kind)
	return res.Err
}

// TestFaultErrWithoutSentinel checks that a fault's error that wraps no
// sentinel is classified as ErrInternalFailure and still found by errors.Is.
func TestFaultErrWithoutSentinel(t *testing.T) {
	boom := errors.New("boom")
	ctx := context.Background()
	cases := []struct {
		name  string
		fault Fault
		call  func(t *testing.T, s *Stream) error // returns the error of the failed call or entry
	}{
		{"PutRecord", Fault{Op: OpPutRecord, Err: boom}, func(t *testing.T, s *Stream) error {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		}},
		{"PutRecordRecordFault", Fault{Op: OpPutRecord, Err: boom, Record: func(string, []byte) bool { return true }}, func(t *testing.T, s *Stream) error {
			_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
			return err
		}},
		{"PutRecords", Fault{Op: OpPutRecords, Err: boom}, func(t *testing.T, s *Stream) error {
			_, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "k", Data: []byte("v")}}})
			return err
		}},
		{"ListShards", Fault{Op: OpListShards, Err: boom}, func(t *testing.T, s *Stream) error {
			_, err := s.ListShards(ctx, ListShardsInput{})
			return err
		}},
		{"Describe", Fault{Op: OpDescribeStreamSummary, Err: boom}, func(t *testing.T, s *Stream) error {
			_, err := s.Describe(ctx)
			return err
		}},
		{"GetShardIterator", Fault{Op: OpGetShardIterator, Err: boom}, func(t *testing.T, s *Stream) error {
			_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: etShard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
			return err
		}},
		{"GetRecordsOfShard", Fault{Op: OpGetRecords, ShardID: etShard0, Err: boom}, func(t *testing.T, s *Stream) error {
			it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
			_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
			return err
		}},
		{"PutRecordsRecordFault", Fault{Op: OpPutRecords, Err: boom, Record: func(key string, _ []byte) bool { return key == "bad" }}, func(t *testing.T, s *Stream) error {
			out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{
				{PartitionKey: "good", Data: []byte("1")},
				{PartitionKey: "bad", Data: []byte("2")},
				{PartitionKey: "good", Data: []byte("3")},
			}})
			require.NoError(t, err)
			require.Len(t, out.Records, 3)
			assert.Equal(t, 1, out.FailedRecordCount)
			assert.NoError(t, out.Records[0].Err)
			assert.NoError(t, out.Records[2].Err)
			assert.Equal(t, "InternalFailure", RecordErrorCode(out.Records[1].Err))
			assert.EqualValues(t, 2, s.Stats().Total.RecordsPut)
			return out.Records[1].Err
		}},
		{"PutRecordsShardFault", Fault{Op: OpPutRecords, ShardID: etShard1, Err: boom}, func(t *testing.T, s *Stream) error {
			out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{
				{PartitionKey: "a", ExplicitHashKey: etLow},
				{PartitionKey: "b", ExplicitHashKey: etHigh},
			}})
			require.NoError(t, err)
			require.Len(t, out.Records, 2)
			assert.Equal(t, 1, out.FailedRecordCount)
			assert.NoError(t, out.Records[0].Err)
			return out.Records[1].Err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := newTestStream(t, WithShardCount(2))
			injectFault(t, c, tc.fault)
			err := tc.call(t, s)
			require.Error(t, err)
			assert.ErrorIs(t, err, boom)
			assert.ErrorIs(t, err, ErrInternalFailure)
			assert.Equal(t, "InternalFailureException", ErrorName(err))
			assert.Equal(t, http.StatusInternalServerError, HTTPStatus(err))
			assert.True(t, IsRetryable(err))
			assert.Contains(t, err.Error(), "boom")
			etAssertClassified(t, err)
		})
	}

	t.Run("WrappedSentinelKeepsItsKind", func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		custom := fmt.Errorf("slow down: %w", ErrLimitExceeded)
		injectFault(t, c, Fault{Op: OpListShards, Err: custom})
		_, err := s.ListShards(ctx, ListShardsInput{})
		assert.ErrorIs(t, err, custom)
		assert.ErrorIs(t, err, ErrLimitExceeded)
		assert.NotErrorIs(t, err, ErrInternalFailure)
		assert.Equal(t, "LimitExceededException", ErrorName(err))
		etAssertClassified(t, err)
	})
}

func TestInjectFaultValidation(t *testing.T) {
	ctx := context.Background()
	putOK := func(t *testing.T, s *Stream) {
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
		assert.NoError(t, err)
	}
	cases := []struct {
		name  string
		fault Fault
		names string                        // the bad value, as the message must name it
		check func(t *testing.T, s *Stream) // an operation the fault would affect succeeds
	}{
		{"UnknownOperation", Fault{Op: Operation(200), Err: ErrInternalFailure}, "Operation(200)", putOK},
		{"NegativeTimes", Fault{Op: OpPutRecord, Err: ErrInternalFailure, Times: -1}, "-1", putOK},
		{"NegativeLatency", Fault{Op: OpPutRecord, Err: ErrInternalFailure, Latency: -time.Second}, "-1s", putOK},
		{"NothingToDo", Fault{Op: OpPutRecord}, "neither Err nor Latency", putOK},
		{"RecordFilterOnGetRecords", Fault{Op: OpGetRecords, Err: ErrInternalFailure, Record: func(string, []byte) bool { return true }}, "GetRecords",
			func(t *testing.T, s *Stream) {
				it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
				_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
				assert.NoError(t, err)
			}},
		{"MalformedShardID", Fault{Op: OpGetShardIterator, ShardID: "shard-1", Err: ErrInternalFailure}, `"shard-1"`,
			func(t *testing.T, s *Stream) {
				_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: etShard0, StartingPosition: StartingPosition{Type: TrimHorizon}})
				assert.NoError(t, err)
			}},
		{"MalformedStreamName", Fault{Op: OpPutRecord, StreamName: "bad name!", Err: ErrInternalFailure}, `"bad name!"`, putOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := newTestStream(t, WithShardCount(1))
			remove, err := c.InjectFault(tc.fault)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidArgument, "%v", err)
			assert.Contains(t, err.Error(), tc.names)
			var e *Error
			if assert.ErrorAs(t, err, &e) {
				assert.Equal(t, "InjectFault", e.Op)
			}
			etAssertClassified(t, err)
			assert.False(t, c.faults.active(), "an invalid fault is not installed")
			tc.check(t, s)
			require.NotNil(t, remove)
			remove() // harmless
		})
	}

	t.Run("Valid", func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		remove, err := c.InjectFault(Fault{Op: OpPutRecord, Err: ErrInternalFailure})
		require.NoError(t, err)
		require.NotNil(t, remove)
		assert.True(t, c.faults.active())
		_, err = s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
		assert.ErrorIs(t, err, ErrInternalFailure)
		remove()
		assert.False(t, c.faults.active())
		putOK(t, s)
		remove()
		assert.False(t, c.faults.active())
		putOK(t, s)
	})

	t.Run("RemoveOnlyItsOwn", func(t *testing.T) {
		c, s := newTestStream(t, WithShardCount(1))
		removeA := injectFault(t, c, Fault{Op: OpListShards, Err: ErrLimitExceeded})
		removeB := injectFault(t, c, Fault{Op: OpPutRecord, Err: ErrInternalFailure})
		removeA()
		removeA()
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v")})
		assert.ErrorIs(t, err, ErrInternalFailure, "removing a twice keeps b")
		_, err = s.ListShards(ctx, ListShardsInput{})
		assert.NoError(t, err)
		removeB()
		putOK(t, s)
	})
}

func TestFaultOperationString(t *testing.T) {
	cases := []struct {
		name string
		op   Operation
		want string
	}{
		{"PutRecords", OpPutRecords, "PutRecords"},
		{"PutRecord", OpPutRecord, "PutRecord"},
		{"GetRecords", OpGetRecords, "GetRecords"},
		{"Describe", OpDescribeStreamSummary, "DescribeStreamSummary"},
		{"Any", AnyOperation, ""},
		{"Unknown", Operation(200), "Operation(200)"},
		{"JustPast", numOperations, fmt.Sprintf("Operation(%d)", int(numOperations))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.op.String())
		})
	}
	t.Run("AllDistinct", func(t *testing.T) {
		seen := map[string]Operation{}
		for o := AnyOperation + 1; o < numOperations; o++ {
			name := o.String()
			assert.NotEmpty(t, name, "operation %d", int(o))
			assert.NotContains(t, name, "Operation(", "operation %d", int(o))
			if prev, dup := seen[name]; dup {
				t.Errorf("operations %d and %d are both %q", int(prev), int(o), name)
			}
			seen[name] = o
		}
		assert.Len(t, seen, int(numOperations)-1)
	})
}

// etThrottles returns each shard's write and read throttle counts and the
// totals.
func etThrottles(s *Stream) (writes, reads []int64, totalWrites, totalReads int64) {
	st := s.Stats()
	for _, sh := range st.Shards {
		writes = append(writes, sh.WriteThrottles)
		reads = append(reads, sh.ReadThrottles)
	}
	return writes, reads, st.Total.WriteThrottles, st.Total.ReadThrottles
}

// TestStatsInjectedThrottles checks that injected throttles count in the
// shards' Stats as real ones do.
func TestStatsInjectedThrottles(t *testing.T) {
	ctx := context.Background()
	throttle := ErrProvisionedThroughputExceeded
	// Two records for shard 0, one for shard 1.
	threeEntries := PutRecordsInput{Records: []PutRecordsEntry{
		{PartitionKey: "a", ExplicitHashKey: etLow},
		{PartitionKey: "b", ExplicitHashKey: etHigh},
		{PartitionKey: "c", ExplicitHashKey: etLow},
	}}
	cases := []struct {
		name       string
		fault      Fault
		run        func(t *testing.T, s *Stream)
		wantWrites []int64
		wantReads  []int64
	}{
		{"RecordFaultOneOfThree", Fault{Op: OpPutRecords, Err: throttle, Record: func(key string, _ []byte) bool { return key == "b" }},
			func(t *testing.T, s *Stream) {
				out, err := s.PutRecords(ctx, threeEntries)
				require.NoError(t, err)
				assert.Equal(t, 1, out.FailedRecordCount)
				assert.ErrorIs(t, out.Records[1].Err, throttle)
				assert.Equal(t, "ProvisionedThroughputExceededException", RecordErrorCode(out.Records[1].Err))
			}, []int64{0, 1}, []int64{0, 0}},
		{"RecordFaultOnPutRecord", Fault{Op: OpPutRecord, Err: throttle, Record: func(string, []byte) bool { return true }},
			func(t *testing.T, s *Stream) {
				_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "a", ExplicitHashKey: etHigh})
				assert.ErrorIs(t, err, throttle)
			}, []int64{0, 1}, []int64{0, 0}},
		{"OperationThrottlePutRecord", Fault{Op: OpPutRecord, Err: throttle},
			func(t *testing.T, s *Stream) {
				_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "a", ExplicitHashKey: etHigh})
				assert.ErrorIs(t, err, throttle)
			}, []int64{0, 1}, []int64{0, 0}},
		{"OperationThrottlePutRecordByPartitionKey", Fault{Op: OpPutRecord, Err: throttle},
			func(t *testing.T, s *Stream) {
				// Without ExplicitHashKey the partition key's hash routes.
				key := "k"
				for i := 0; HashKeyOf(key).Cmp(HashKey{hi: 1 << 63}) < 0; i++ {
					key = fmt.Sprintf("k%d", i) // find a key of the upper half
				}
				_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: key})
				assert.ErrorIs(t, err, throttle)
			}, []int64{0, 1}, []int64{0, 0}},
		{"OperationThrottlePutRecords", Fault{Op: OpPutRecords, Err: throttle},
			func(t *testing.T, s *Stream) {
				_, err := s.PutRecords(ctx, threeEntries)
				assert.ErrorIs(t, err, throttle)
			}, []int64{2, 1}, []int64{0, 0}},
		{"ShardThrottlePutRecords", Fault{Op: OpPutRecords, ShardID: etShard0, Err: throttle},
			func(t *testing.T, s *Stream) {
				out, err := s.PutRecords(ctx, threeEntries)
				require.NoError(t, err)
				assert.Equal(t, 2, out.FailedRecordCount)
			}, []int64{2, 0}, []int64{0, 0}},
		{"GetRecordsOfShard", Fault{Op: OpGetRecords, ShardID: etShard1, Err: throttle},
			func(t *testing.T, s *Stream) {
				it := iterator(t, s, etShard1, StartingPosition{Type: TrimHorizon})
				_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
				assert.ErrorIs(t, err, throttle)
				it = iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
				_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
				assert.NoError(t, err, "the other shard is not affected")
			}, []int64{0, 0}, []int64{0, 1}},
		{"GetRecordsAnyShard", Fault{Op: OpGetRecords, Err: throttle},
			func(t *testing.T, s *Stream) {
				it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
				_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
				assert.ErrorIs(t, err, throttle)
			}, []int64{0, 0}, []int64{1, 0}},
		{"OtherErrorsDoNotCount", Fault{Op: OpPutRecords, Err: ErrInternalFailure},
			func(t *testing.T, s *Stream) {
				_, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{{PartitionKey: "a", ExplicitHashKey: etLow}}})
				assert.ErrorIs(t, err, ErrInternalFailure)
				it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
				_, err = s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
				assert.NoError(t, err)
			}, []int64{0, 0}, []int64{0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := newTestStream(t, WithShardCount(2), WithLimits(Unlimited()))
			injectFault(t, c, tc.fault)
			tc.run(t, s)
			writes, reads, totalWrites, totalReads := etThrottles(s)
			assert.Equal(t, tc.wantWrites, writes, "WriteThrottles by shard")
			assert.Equal(t, tc.wantReads, reads, "ReadThrottles by shard")
			var sumW, sumR int64
			for i := range tc.wantWrites {
				sumW += tc.wantWrites[i]
				sumR += tc.wantReads[i]
			}
			assert.Equal(t, sumW, totalWrites, "Total.WriteThrottles")
			assert.Equal(t, sumR, totalReads, "Total.ReadThrottles")
		})
	}
}

// TestStatsInjectedThrottleLikeReal compares the counters after a real
// throttle with those after an injected one.
func TestStatsInjectedThrottleLikeReal(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		limit int   // the first stream's WriteRecordsPerSecond
		fault Fault // injected on the second stream, which has no limits
		write func(s *Stream) error
	}{
		{"PutRecord", 1, Fault{Op: OpPutRecord, Err: ErrProvisionedThroughputExceeded, StreamName: "injected"},
			func(s *Stream) error {
				_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("second")})
				return err
			}},
		{"PutRecordsEntries", 2, Fault{Op: OpPutRecords, Err: ErrProvisionedThroughputExceeded, StreamName: "injected",
			Record: func(_ string, data []byte) bool { return string(data) != "second" }},
			func(s *Stream) error {
				out, err := s.PutRecords(ctx, PutRecordsInput{Records: []PutRecordsEntry{
					{PartitionKey: "k", Data: []byte("second")},
					{PartitionKey: "k", Data: []byte("third")},
					{PartitionKey: "k", Data: []byte("fourth")},
				}})
				if err != nil {
					return err
				}
				if out.FailedRecordCount != 2 {
					return fmt.Errorf("%d entries failed, want 2", out.FailedRecordCount)
				}
				for _, r := range out.Records[1:] {
					if !errors.Is(r.Err, ErrProvisionedThroughputExceeded) {
						return fmt.Errorf("entry error %v, want a throttle", r.Err)
					}
				}
				return ErrProvisionedThroughputExceeded
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, real := newTestStream(t, WithShardCount(1), WithLimits(Limits{WriteRecordsPerSecond: tc.limit}))
				injected, err := c.CreateStream(ctx, "injected", WithShardCount(1), WithLimits(Unlimited()))
				require.NoError(t, err)
				for _, s := range []*Stream{real, injected} {
					putString(t, s, "k", "first")
				}
				injectFault(t, c, tc.fault)
				for _, s := range []*Stream{real, injected} {
					err := tc.write(s)
					assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded, "stream %s", s.Name())
				}
				rs, is := real.Stats(), injected.Stats()
				assert.Positive(t, rs.Total.WriteThrottles)
				assert.Equal(t, rs.Total, is.Total, "the counters move the same way")
				assert.Equal(t, rs.Shards, is.Shards)
			})
		})
	}

	t.Run("GetRecords", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, real := newTestStream(t, WithShardCount(1), WithLimits(Limits{ReadCallsPerSecond: 1}))
			injected, err := c.CreateStream(ctx, "injected", WithShardCount(1), WithLimits(Unlimited()))
			require.NoError(t, err)
			for _, s := range []*Stream{real, injected} {
				it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
				_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
				require.NoError(t, err)
			}
			injectFault(t, c, Fault{Op: OpGetRecords, StreamName: "injected", ShardID: etShard0, Err: ErrProvisionedThroughputExceeded})
			for _, s := range []*Stream{real, injected} {
				it := iterator(t, s, etShard0, StartingPosition{Type: TrimHorizon})
				_, err := s.GetRecords(ctx, GetRecordsInput{ShardIterator: it})
				assert.ErrorIs(t, err, ErrProvisionedThroughputExceeded, "stream %s", s.Name())
			}
			rs, is := real.Stats().Total, injected.Stats().Total
			assert.EqualValues(t, 1, rs.ReadThrottles)
			assert.Equal(t, rs.ReadThrottles, is.ReadThrottles)
			assert.Equal(t, rs.WriteThrottles, is.WriteThrottles)
			if rs.GetCalls != is.GetCalls {
				// Not promised by Fault's documentation; reported, not failed.
				t.Logf("note: GetCalls differ: %d after a real read throttle, %d after an injected one", rs.GetCalls, is.GetCalls)
			}
		})
	})
}

// TestOrderingForeignSequenceNumber checks SequenceNumberForOrdering and
// GetShardIterator with sequence numbers that runnel did not issue.
func TestOrderingForeignSequenceNumber(t *testing.T) {
	ctx := context.Background()
	big, err := ParseSequenceNumber("49590338271490256608559692538361571095921575989136588898")
	require.NoError(t, err)
	require.True(t, big.foreign(), "the number is not in runnel's layout")
	small, err := ParseSequenceNumber("1")
	require.NoError(t, err)
	require.True(t, small.foreign())

	t.Run("LargeForeignOrderingRefused", func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		first := putString(t, s, "k", "first")
		require.Negative(t, first.SequenceNumber.Cmp(big), "larger than any runnel number")
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v"), SequenceNumberForOrdering: big})
		require.ErrorIs(t, err, ErrInvalidArgument)
		assert.Contains(t, err.Error(), big.String())
		etAssertClassified(t, err)
		assert.EqualValues(t, 1, s.Stats().Total.RecordsPut, "nothing stored")
		assert.Equal(t, []string{"first"}, datas(readAll(t, s, etShard0, StartingPosition{Type: TrimHorizon})))
		// The shard is not disturbed: the next record follows the first.
		next := putString(t, s, "k", "next")
		assert.Positive(t, next.SequenceNumber.Cmp(first.SequenceNumber))
		assert.True(t, next.SequenceNumber.native())
	})

	t.Run("LargeForeignOrderingOnEmptyShard", func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		_, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v"), SequenceNumberForOrdering: big})
		require.ErrorIs(t, err, ErrInvalidArgument)
		assert.Zero(t, s.Stats().Total.RecordsPut)
		assert.Empty(t, readAll(t, s, etShard0, StartingPosition{Type: TrimHorizon}))
	})

	t.Run("SmallForeignOrdering", func(t *testing.T) {
		_, s := newTestStream(t, WithShardCount(1))
		out, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("v"), SequenceNumberForOrdering: small})
		require.NoError(t, err)
		assert.Positive(t, out.SequenceNumber.Cmp(small))
		assert.True(t, out.SequenceNumber.native())
		assert.Equal(t, etShard0, out.SequenceNumber.ShardID())
		// And after a record exists.
		out2, err := s.PutRecord(ctx, PutRecordInput{PartitionKey: "k", Data: []byte("w"), SequenceNumberForOrdering: small})
		require.NoError(t, err)
		assert.Positive(t, out2.SequenceNumber.Cmp(out.SequenceNumber))
		assert.Equal(t, []string{"v", "w"}, datas(readAll(t, s, etShard0, StartingPosition{Type: TrimHorizon})))
	})

	for _, typ := range []IteratorType{AtSequenceNumber, AfterSequenceNumber} {
		for _, n := range []struct {
			name string
			seq  SequenceNumber
		}{{"Large", big}, {"Small", small}} {
			t.Run("GetShardIterator/"+string(typ)+"/"+n.name, func(t *testing.T) {
				_, s := newTestStream(t, WithShardCount(1))
				putString(t, s, "k", "v")
				_, err := s.GetShardIterator(ctx, GetShardIteratorInput{ShardID: etShard0, StartingPosition: StartingPosition{Type: typ, SequenceNumber: n.seq}})
				require.ErrorIs(t, err, ErrInvalidArgument)
				etAssertClassified(t, err)
			})
		}
	}
}

// TestErrorAsErrorClassifies checks how asError classifies the errors it
// wraps: every result has a sentinel as its Kind and one "runnel:" prefix.
func TestErrorAsErrorClassifies(t *testing.T) {
	boom := errors.New("boom")
	own := errorf("PutRecords", ErrProvisionedThroughputExceeded, "rate exceeded")
	wrappedThrottle := fmt.Errorf("adapter: %w", ErrProvisionedThroughputExceeded)
	wrappedDeadline := fmt.Errorf("adapter: %w", context.DeadlineExceeded)
	cases := []struct {
		name     string
		what     string
		err      error
		wantKind error
		wantErr  error // the Err field; nil when the error is its own Kind
		same     bool  // the *Error is returned as it is
	}{
		{"Unclassified", "", boom, ErrInternalFailure, boom, false},
		{"WrappedSentinel", "", wrappedThrottle, ErrProvisionedThroughputExceeded, wrappedThrottle, false},
		{"BareSentinel", "", ErrLimitExceeded, ErrLimitExceeded, nil, false},
		{"BareRunnelSentinel", "", ErrClosed, ErrClosed, nil, false},
		{"Canceled", "", context.Canceled, context.Canceled, nil, false},
		{"WrappedDeadline", "", wrappedDeadline, context.DeadlineExceeded, wrappedDeadline, false},
		{"OwnErrorSameOp", "", own, ErrProvisionedThroughputExceeded, nil, true},
		{"OwnErrorWithWhat", "sending", own, ErrProvisionedThroughputExceeded, own, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := asError("PutRecords", tc.what, tc.err)
			require.NotNil(t, got)
			if tc.same {
				assert.Same(t, own, got)
				return
			}
			assert.Equal(t, "PutRecords", got.Op)
			assert.Equal(t, tc.what, got.Msg)
			assert.Equal(t, tc.wantKind, got.Kind)
			assert.Equal(t, tc.wantErr, got.Err)
			assert.ErrorIs(t, got, tc.err)
			etAssertClassified(t, got)
		})
	}
	t.Run("OtherOp", func(t *testing.T) {
		got := asError("Flush", "", own)
		assert.Equal(t, "Flush", got.Op)
		assert.Same(t, own, got.Err)
		assert.Equal(t, ErrProvisionedThroughputExceeded, got.Kind)
		assert.Equal(t, "runnel: Flush: PutRecords: ProvisionedThroughputExceededException: rate exceeded", got.Error())
		etAssertClassified(t, got)
	})
}

func TestErrorWithoutKind(t *testing.T) {
	e := &Error{Op: "PutRecords", Kind: ErrorForName("SomethingNew"), Msg: "from an adapter"}
	assert.Equal(t, "runnel: PutRecords: InternalFailureException: from an adapter", e.Error())
	assert.ErrorIs(t, e, ErrInternalFailure)
	assert.True(t, IsRetryable(e))
}

func TestPutRoutedRecordsValidation(t *testing.T) {
	_, s := newTestStream(t, WithShardCount(2))
	whole := HashKeyRange{StartingHashKey: HashKey{}, EndingHashKey: MaxHashKey()}
	entry := []PutRecordsEntry{{PartitionKey: "k", Data: []byte("x")}}
	low := s.shards.Load().open[0].hashRange
	tests := []struct {
		name string
		in   PutRoutedRecordsInput
		kind error
		says string
	}{
		{"fewer hash keys", PutRoutedRecordsInput{Entries: entry, Ranges: []HashKeyRange{whole}}, ErrInvalidArgument, "HashKeys"},
		{"fewer ranges", PutRoutedRecordsInput{Entries: entry, HashKeys: []HashKey{{}}}, ErrInvalidArgument, "Ranges"},
		{"key outside its range", PutRoutedRecordsInput{Entries: entry, HashKeys: []HashKey{MaxHashKey()}, Ranges: []HashKeyRange{low}}, ErrInvalidArgument, "record 0"},
		{"inverted range", PutRoutedRecordsInput{Entries: entry, HashKeys: []HashKey{{}}, Ranges: []HashKeyRange{{StartingHashKey: MaxHashKey()}}}, ErrInvalidArgument, "not in its range"},
		{"bad partition key", PutRoutedRecordsInput{Entries: []PutRecordsEntry{{}}, HashKeys: []HashKey{{}}, Ranges: []HashKeyRange{whole}}, ErrValidation, "partition key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.PutRoutedRecords(t.Context(), tt.in)
			assert.ErrorIs(t, err, tt.kind)
			assert.ErrorContains(t, err, tt.says)
		})
	}
	assert.Zero(t, s.Stats().Total.RecordsPut, "nothing stored")

	// A range the shard does not hold whole fails the entry, and the
	// entries after it in that shard are not attempted.
	out, err := s.PutRoutedRecords(t.Context(), PutRoutedRecordsInput{
		Entries:  []PutRecordsEntry{{PartitionKey: "a"}, {PartitionKey: "b"}},
		HashKeys: []HashKey{{}, {}},
		Ranges:   []HashKeyRange{whole, low},
	})
	require.NoError(t, err)
	require.Equal(t, 2, out.FailedRecordCount)
	assert.ErrorIs(t, out.Records[0].Err, ErrShardMapChanged)
	assert.ErrorIs(t, out.Records[1].Err, ErrNotAttempted)
	var e *Error
	require.ErrorAs(t, out.Records[1].Err, &e, "per-entry errors are *Error too")
	assert.Contains(t, e.Error(), "shardId-000000000000")
	assert.True(t, IsRetryable(out.Records[0].Err))
}

func TestInjectFaultShardIDNeedsAShardOperation(t *testing.T) {
	c, _ := newTestStream(t)
	_, err := c.InjectFault(Fault{Op: OpListShards, ShardID: "shardId-000000000000", Err: ErrInternalFailure})
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorContains(t, err, "ListShards")
	remove, err := c.InjectFault(Fault{Op: OpGetRecords, ShardID: "shardId-000000000000", Err: ErrInternalFailure})
	require.NoError(t, err)
	remove()
}

func TestHTTPStatusOfNil(t *testing.T) {
	assert.Equal(t, 200, HTTPStatus(nil))
}

func TestInjectFaultOnClosedCluster(t *testing.T) {
	c := NewCluster()
	require.NoError(t, c.Close())
	_, err := c.InjectFault(Fault{Err: ErrInternalFailure})
	assert.ErrorIs(t, err, ErrClosed)
}
