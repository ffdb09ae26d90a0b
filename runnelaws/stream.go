package runnelaws

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/runnel-go/runnel"
)

// KinesisAPI is the part of the Kinesis client of the AWS SDK for Go v2
// that a Stream calls. *kinesis.Client implements it.
type KinesisAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// Stream is one Kinesis data stream, reached through the AWS SDK, with the
// methods of runnel's seams: it is a runnel.Putter and
// runnel.StreamDescriber for a runnel.Producer, a runnel.StreamReader for a
// runnel.Consumer or runnel.ShardReader, and a runnel.FanOutReader for
// enhanced fan-out (runnel.WithFanOut). Code written against a
// *runnel.Stream runs unchanged over it, on Amazon Kinesis or on any
// Kinesis endpoint (`runnel serve` among them).
//
// Values cross as Kinesis sends them: sequence numbers (any Kinesis
// sequence number; see runnel.ParseSequenceNumber), shard iterators (as
// opaque tokens), ChildShards and MillisBehindLatest pass through
// unchanged, and the service's error names map to runnel's sentinels
// through the error table (runnel.ErrorForName), with the SDK's error
// wrapped for errors.As.
//
// The SDK's retryer is off for every call a Stream makes: runnel's
// Producer, Consumer and ShardReader retry those calls themselves, with
// their own backoff, so a throttle is never retried twice over. A caller
// that uses a Stream directly retries as runnel.IsRetryable says. Request
// bodies are wrapped to work around an SDK issue that drops HTTP/1.1
// connections (see the README's "Known client issue").
//
// A Stream is safe for concurrent use. It holds no resources of its own:
// there is nothing to close.
type Stream struct {
	api   KinesisAPI
	name  string
	byARN bool // bound by ARN: requests name the stream by its ARN
	arnMu sync.Mutex
	arn   string // the stream's ARN: given (and then fixed), or learned by Describe; guarded by arnMu then
}

// isNilClient reports whether an SDK client given to a constructor is nil,
// or a nil pointer (a nil *kinesis.Client, say), which would panic at the
// first call.
func isNilClient(api any) bool {
	if api == nil {
		return true
	}
	v := reflect.ValueOf(api)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// streamARNPattern is the shape of a Kinesis stream ARN; its group is the
// stream's name.
var streamARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/([^/]+)$`)

// NewStream binds a Kinesis client to the stream named stream: its name,
// or its ARN ("arn:aws:kinesis:<region>:<account>:stream/<name>"), which
// is needed to reach a stream of another account. A bad name or ARN is an
// error wrapping runnel.ErrValidation that names it. NewStream makes no
// call; the first call that needs the stream finds whether it exists.
func NewStream(api KinesisAPI, stream string) (*Stream, error) {
	const op = "NewStream"
	if isNilClient(api) {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "the Kinesis client is nil"}
	}
	s := &Stream{api: api, name: stream}
	if m := streamARNPattern.FindStringSubmatch(stream); m != nil {
		s.name, s.byARN, s.arn = m[1], true, stream
	} else if len(stream) >= 4 && stream[:4] == "arn:" {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("stream ARN %.300q is not of the form arn:aws:kinesis:<region>:<account>:stream/<name>", stream)}
	}
	if err := runnel.ValidateStreamName(s.name); err != nil {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Err: err}
	}
	return s, nil
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.name }

// ARN returns the stream's ARN: the one NewStream was given, or the one
// DescribeStreamSummary reports, asked until it has answered once.
func (s *Stream) ARN(ctx context.Context) (string, error) {
	s.arnMu.Lock()
	arn := s.arn
	s.arnMu.Unlock()
	if arn != "" {
		return arn, nil
	}
	sum, err := s.Describe(ctx)
	if err != nil {
		return "", err
	}
	return sum.StreamARN, nil
}

// Describe implements runnel.StreamDescriber with DescribeStreamSummary, so
// that a runnel.Producer packs records and PutRecords requests to the
// stream's own sizes: MaxRecordSizeInKiB (runnel.DefaultMaxRecordSize when
// the service does not report it) and the PutRecords size that goes with
// it. Limits are Kinesis's per-shard limits (runnel.KinesisLimits), which
// the service does not report. A MaxRecordSizeInKiB that is not positive
// or is above Kinesis's 10240 is a malformed response; one below Kinesis's
// 1024 is taken as it is, as a runnel server reports a stream made with a
// smaller runnel.WithMaxRecordSize.
func (s *Stream) Describe(ctx context.Context) (runnel.StreamSummary, error) {
	const op = "DescribeStreamSummary"
	req := &kinesis.DescribeStreamSummaryInput{}
	s.bind(&req.StreamName, &req.StreamARN)
	out, err := s.api.DescribeStreamSummary(ctx, req, kinesisCallOptions)
	if err != nil {
		return runnel.StreamSummary{}, apiError(ctx, op, s.what(), err)
	}
	d := out.StreamDescriptionSummary
	if d == nil || aws.ToString(d.StreamARN) == "" {
		return runnel.StreamSummary{}, malformed(op, "no StreamARN for %s", s.what())
	}
	maxRecord := runnel.DefaultMaxRecordSize
	if kib := d.MaxRecordSizeInKiB; kib != nil {
		if *kib <= 0 || *kib > 10<<10 {
			return runnel.StreamSummary{}, malformed(op, "MaxRecordSizeInKiB %d for %s is not within 1…10240", *kib, s.what())
		}
		maxRecord = int(*kib) << 10
	}
	if !s.byARN { // bound by ARN, s.arn is fixed
		s.arnMu.Lock()
		s.arn = *d.StreamARN
		s.arnMu.Unlock()
	}
	return runnel.StreamSummary{
		StreamName:              aws.ToString(d.StreamName),
		StreamARN:               *d.StreamARN,
		StreamStatus:            runnel.StreamStatus(d.StreamStatus),
		RetentionPeriod:         time.Duration(aws.ToInt32(d.RetentionPeriodHours)) * time.Hour,
		StreamCreationTimestamp: aws.ToTime(d.StreamCreationTimestamp),
		OpenShardCount:          int(aws.ToInt32(d.OpenShardCount)),
		Limits:                  runnel.KinesisLimits(),
		MaxRecordSize:           maxRecord,
		MaxPutRecordsSize:       runnel.MaxPutRecordsSize(maxRecord),
		ConsumerCount:           int(aws.ToInt32(d.ConsumerCount)),
	}, nil
}

// what names the stream in error messages.
func (s *Stream) what() string {
	if s.byARN {
		return "stream " + s.arn
	}
	return "stream " + s.name
}

// bind names the stream in a request: by ARN when bound by ARN, by name
// otherwise.
func (s *Stream) bind(name, arn **string) {
	if s.byARN {
		*arn = aws.String(s.arn)
		return
	}
	*name = aws.String(s.name)
}

// PutRecords implements runnel.Putter. A failed entry's Err wraps the
// sentinel of its ErrorCode (runnel.ErrProvisionedThroughputExceeded, or
// runnel.ErrInternalFailure for "InternalFailure"), with its ErrorMessage.
func (s *Stream) PutRecords(ctx context.Context, in runnel.PutRecordsInput) (runnel.PutRecordsOutput, error) {
	const op = "PutRecords"
	req := &kinesis.PutRecordsInput{Records: make([]types.PutRecordsRequestEntry, len(in.Records))}
	s.bind(&req.StreamName, &req.StreamARN)
	for i, r := range in.Records {
		e := &req.Records[i]
		e.Data, e.PartitionKey = r.Data, aws.String(r.PartitionKey)
		if r.ExplicitHashKey != "" {
			e.ExplicitHashKey = aws.String(r.ExplicitHashKey)
		}
	}
	resp, err := s.api.PutRecords(ctx, req, kinesisCallOptions)
	if err != nil {
		return runnel.PutRecordsOutput{}, apiError(ctx, op, s.what(), err)
	}
	out := runnel.PutRecordsOutput{Records: make([]runnel.PutRecordsResult, len(resp.Records)), EncryptionType: runnel.EncryptionType(resp.EncryptionType)}
	for i, r := range resp.Records {
		res := &out.Records[i]
		if code := aws.ToString(r.ErrorCode); code != "" {
			res.Err = &runnel.Error{Op: op, Kind: runnel.ErrorForName(code), Msg: aws.ToString(r.ErrorMessage)}
			out.FailedRecordCount++
			continue
		}
		seq, err := runnel.ParseSequenceNumber(aws.ToString(r.SequenceNumber))
		if err != nil {
			return runnel.PutRecordsOutput{}, malformed(op, "entry %d of %s: %v", i, s.what(), err)
		}
		res.ShardID, res.SequenceNumber = aws.ToString(r.ShardId), seq
	}
	return out, nil
}

// ListShards implements runnel.StreamReader and runnel.Putter: one page of
// Kinesis's ListShards.
func (s *Stream) ListShards(ctx context.Context, in runnel.ListShardsInput) (runnel.ListShardsOutput, error) {
	const op = "ListShards"
	req := &kinesis.ListShardsInput{}
	if in.NextToken != "" {
		if in.ExclusiveStartShardID != "" || in.Filter.Type != "" {
			return runnel.ListShardsOutput{}, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("NextToken cannot be combined with ExclusiveStartShardID %q or a ShardFilter %q: the token carries them", in.ExclusiveStartShardID, in.Filter.Type)}
		}
		req.NextToken = aws.String(in.NextToken) // Kinesis refuses the stream's name next to a token
	} else {
		s.bind(&req.StreamName, &req.StreamARN)
	}
	if in.MaxResults != 0 {
		n, err := int32Of(op, "MaxResults", in.MaxResults)
		if err != nil {
			return runnel.ListShardsOutput{}, err
		}
		req.MaxResults = &n
	}
	if in.ExclusiveStartShardID != "" {
		req.ExclusiveStartShardId = aws.String(in.ExclusiveStartShardID)
	}
	if f := in.Filter; f.Type != "" {
		req.ShardFilter = &types.ShardFilter{Type: types.ShardFilterType(f.Type), Timestamp: timeOrNil(f.Timestamp)}
		if f.ShardID != "" {
			req.ShardFilter.ShardId = aws.String(f.ShardID)
		}
	}
	resp, err := s.api.ListShards(ctx, req, kinesisCallOptions)
	if err != nil {
		return runnel.ListShardsOutput{}, apiError(ctx, op, s.what(), err)
	}
	out := runnel.ListShardsOutput{Shards: make([]runnel.Shard, len(resp.Shards)), NextToken: aws.ToString(resp.NextToken)}
	for i, sh := range resp.Shards {
		if out.Shards[i], err = shardOf(sh); err != nil {
			return runnel.ListShardsOutput{}, malformed(op, "%s: %v", s.what(), err)
		}
	}
	return out, nil
}

// GetShardIterator implements runnel.StreamReader. The iterator is
// Kinesis's token, held opaque (runnel.OpaqueShardIterator).
func (s *Stream) GetShardIterator(ctx context.Context, in runnel.GetShardIteratorInput) (runnel.ShardIterator, error) {
	const op = "GetShardIterator"
	from := in.StartingPosition
	req := &kinesis.GetShardIteratorInput{ShardId: aws.String(in.ShardID), ShardIteratorType: types.ShardIteratorType(from.Type), Timestamp: timeOrNil(from.Timestamp)}
	s.bind(&req.StreamName, &req.StreamARN)
	if !from.SequenceNumber.IsZero() {
		req.StartingSequenceNumber = aws.String(from.SequenceNumber.String())
	}
	resp, err := s.api.GetShardIterator(ctx, req, kinesisCallOptions)
	if err != nil {
		return runnel.ShardIterator{}, apiError(ctx, op, s.what()+", shard "+in.ShardID, err)
	}
	if aws.ToString(resp.ShardIterator) == "" {
		return runnel.ShardIterator{}, malformed(op, "no ShardIterator for shard %s of %s", in.ShardID, s.what())
	}
	return runnel.OpaqueShardIterator(*resp.ShardIterator), nil
}

// GetRecords implements runnel.StreamReader. It appends the records to
// in.Buffer[:0]; their Data is the SDK's, not copied. A closed shard's
// last call has no NextShardIterator and the ChildShards.
func (s *Stream) GetRecords(ctx context.Context, in runnel.GetRecordsInput) (runnel.GetRecordsOutput, error) {
	const op = "GetRecords"
	if in.ShardIterator.IsZero() {
		return runnel.GetRecordsOutput{}, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "no shard iterator: " + s.what()}
	}
	req := &kinesis.GetRecordsInput{ShardIterator: aws.String(in.ShardIterator.String())}
	if s.byARN {
		req.StreamARN = aws.String(s.arn)
	}
	if in.Limit != 0 {
		n, err := int32Of(op, "Limit", in.Limit)
		if err != nil {
			return runnel.GetRecordsOutput{}, err
		}
		req.Limit = &n
	}
	resp, err := s.api.GetRecords(ctx, req, kinesisCallOptions)
	if err != nil {
		return runnel.GetRecordsOutput{}, apiError(ctx, op, s.what(), err)
	}
	out := runnel.GetRecordsOutput{MillisBehindLatest: aws.ToInt64(resp.MillisBehindLatest)}
	if out.Records, err = recordsOf(in.Buffer[:0], resp.Records); err != nil {
		return runnel.GetRecordsOutput{}, malformed(op, "%s: %v", s.what(), err)
	}
	if out.ChildShards, err = childShardsOf(resp.ChildShards); err != nil {
		return runnel.GetRecordsOutput{}, malformed(op, "%s: %v", s.what(), err)
	}
	if next := aws.ToString(resp.NextShardIterator); next != "" {
		out.NextShardIterator = runnel.OpaqueShardIterator(next)
	}
	return out, nil
}

// int32Of converts a count of the request to the API's int32, or fails
// naming it.
func int32Of(op, field string, n int) (int32, error) {
	if n < 0 || n > math.MaxInt32 {
		return 0, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("%s %d is out of range", field, n)}
	}
	return int32(n), nil
}

// timeOrNil is t for the SDK: nil for the zero time.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// shardOf converts a shard of the SDK.
func shardOf(sh types.Shard) (runnel.Shard, error) {
	out := runnel.Shard{ShardID: aws.ToString(sh.ShardId), ParentShardID: aws.ToString(sh.ParentShardId), AdjacentParentShardID: aws.ToString(sh.AdjacentParentShardId)}
	var err error
	if out.HashKeyRange, err = hashKeyRangeOf(out.ShardID, sh.HashKeyRange); err != nil {
		return runnel.Shard{}, err
	}
	if r := sh.SequenceNumberRange; r != nil {
		if out.SequenceNumberRange.StartingSequenceNumber, err = seqOrZero(r.StartingSequenceNumber); err != nil {
			return runnel.Shard{}, fmt.Errorf("shard %s: %w", out.ShardID, err)
		}
		if out.SequenceNumberRange.EndingSequenceNumber, err = seqOrZero(r.EndingSequenceNumber); err != nil {
			return runnel.Shard{}, fmt.Errorf("shard %s: %w", out.ShardID, err)
		}
	}
	return out, nil
}

// hashKeyRangeOf converts the hash key range of shard id.
func hashKeyRangeOf(id string, r *types.HashKeyRange) (runnel.HashKeyRange, error) {
	if r == nil {
		return runnel.HashKeyRange{}, fmt.Errorf("shard %s has no HashKeyRange", id)
	}
	lo, err := runnel.ParseHashKey(aws.ToString(r.StartingHashKey))
	if err != nil {
		return runnel.HashKeyRange{}, fmt.Errorf("shard %s: %w", id, err)
	}
	hi, err := runnel.ParseHashKey(aws.ToString(r.EndingHashKey))
	if err != nil {
		return runnel.HashKeyRange{}, fmt.Errorf("shard %s: %w", id, err)
	}
	return runnel.HashKeyRange{StartingHashKey: lo, EndingHashKey: hi}, nil
}

// seqOrZero parses a sequence number, or gives the zero value for none.
func seqOrZero(s *string) (runnel.SequenceNumber, error) {
	if aws.ToString(s) == "" {
		return runnel.SequenceNumber{}, nil
	}
	return runnel.ParseSequenceNumber(*s)
}

// recordsOf appends the SDK's records to dst.
func recordsOf(dst []runnel.Record, recs []types.Record) ([]runnel.Record, error) {
	for i, r := range recs {
		seq, err := runnel.ParseSequenceNumber(aws.ToString(r.SequenceNumber))
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		dst = append(dst, runnel.Record{SequenceNumber: seq, PartitionKey: aws.ToString(r.PartitionKey), Data: r.Data, ApproximateArrivalTimestamp: aws.ToTime(r.ApproximateArrivalTimestamp)})
	}
	return dst, nil
}

// childShardsOf converts the SDK's ChildShards.
func childShardsOf(children []types.ChildShard) ([]runnel.ChildShard, error) {
	if len(children) == 0 {
		return nil, nil
	}
	out := make([]runnel.ChildShard, len(children))
	for i, c := range children {
		r, err := hashKeyRangeOf(aws.ToString(c.ShardId), c.HashKeyRange)
		if err != nil {
			return nil, err
		}
		out[i] = runnel.ChildShard{ShardID: aws.ToString(c.ShardId), ParentShards: c.ParentShards, HashKeyRange: r}
	}
	return out, nil
}
