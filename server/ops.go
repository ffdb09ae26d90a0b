package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/runnel-go/runnel"
)

// operation serves one Kinesis operation: it decodes its request body and
// returns the response, which ServeHTTP encodes with the request's codec
// (or, for a streamer, lets stream itself).
type operation func(ctx context.Context, s *Server, req request) (any, error)

// operations are the operations served, by name.
var operations = map[string]operation{
	// streams, records and iterators (ops.go)
	"CreateStream":          createStream,
	"DeleteStream":          deleteStream,
	"ListStreams":           listStreams,
	"DescribeStreamSummary": describeStreamSummary,
	"ListShards":            listShards,
	"PutRecord":             putRecord,
	"PutRecords":            putRecords,
	"GetShardIterator":      getShardIterator,
	"GetRecords":            getRecords,

	// resharding, retention, limits, DescribeStream and stream consumers (controlplane.go)
	"SplitShard":                    splitShard,
	"MergeShards":                   mergeShards,
	"UpdateShardCount":              updateShardCount,
	"IncreaseStreamRetentionPeriod": changeRetention(+1),
	"DecreaseStreamRetentionPeriod": changeRetention(-1),
	"DescribeStream":                describeStream,
	"DescribeLimits":                describeLimits,
	"RegisterStreamConsumer":        registerStreamConsumer,
	"DescribeStreamConsumer":        describeStreamConsumer,
	"ListStreamConsumers":           listStreamConsumers,
	"DeregisterStreamConsumer":      deregisterStreamConsumer,

	// enhanced fan-out (subscribe.go)
	"SubscribeToShard": subscribeToShard,

	// tags (tags.go)
	"AddTagsToStream":      addTagsToStream,
	"RemoveTagsFromStream": removeTagsFromStream,
	"ListTagsForStream":    listTagsForStream,
	"TagResource":          tagResource,
	"UntagResource":        untagResource,
	"ListTagsForResource":  listTagsForResource,

	// stream settings and resource policies (settings.go)
	"StartStreamEncryption":                  changeEncryption(true),
	"StopStreamEncryption":                   changeEncryption(false),
	"EnableEnhancedMonitoring":               changeMonitoring(true),
	"DisableEnhancedMonitoring":              changeMonitoring(false),
	"UpdateStreamMode":                       updateStreamMode,
	"UpdateStreamWarmThroughput":             updateWarmThroughput,
	"UpdateStreamRecordDistributionStrategy": updateDistribution,
	"UpdateMaxRecordSize":                    updateMaxRecordSize,
	"PutResourcePolicy":                      putResourcePolicy,
	"GetResourcePolicy":                      getResourcePolicy,
	"DeleteResourcePolicy":                   deleteResourcePolicy,

	// account settings (accounts.go)
	"DescribeAccountSettings": describeAccountSettings,
	"UpdateAccountSettings":   updateAccountSettings,

	// channels (channels.go)
	"CreateChannel":   createChannel,
	"DescribeChannel": describeChannel,
	"ListChannels":    listChannels,
	"UpdateChannel":   updateChannel,
	"DeleteChannel":   deleteChannel,
}

// errNotYet refuses a request field the server does not serve yet, rather
// than ignoring it.
func errNotYet(op, field string) error {
	return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("%.60s is not served by this server yet", field)}
}

// pageSize is the size of a listing's page that field (a Limit or
// MaxResults of 1 to most) asks for; def when it is not given.
func pageSize(op, field string, v *int, def, most int) (int, error) {
	switch {
	case v == nil:
		return def, nil
	case *v < 1 || *v > most:
		return 0, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("%s %d must be between 1 and %d", field, *v, most)}
	}
	return *v, nil
}

// streamRef names a stream by name or ARN, as most requests do.
type streamRef struct {
	StreamName string `json:",omitempty"`
	StreamARN  string `json:",omitempty"`
	// StreamId and DryRun, which recent SDKs may send, are not served yet:
	// they are refused.
	StreamId string `json:",omitempty"`
	DryRun   bool   `json:",omitempty"`
}

// ref returns the reference itself, so that every request that embeds a
// streamRef can be given to decodeStream.
func (r streamRef) ref() streamRef { return r }

// decodeStream decodes a request that names a stream into in, and finds
// the stream.
func (req request) decodeStream(op string, in interface{ ref() streamRef }) (*runnel.Stream, error) {
	if err := req.decode(op, in); err != nil {
		return nil, err
	}
	return req.stream(op, in.ref())
}

// stream finds the stream a request names.
func (req request) stream(op string, ref streamRef) (*runnel.Stream, error) {
	switch {
	case ref.StreamId != "":
		return nil, errNotYet(op, "StreamId")
	case ref.DryRun:
		return nil, errNotYet(op, "DryRun")
	}
	name := ref.StreamName
	if ref.StreamARN != "" {
		_, byARN, ok := strings.Cut(ref.StreamARN, ":stream/")
		switch {
		case !ok || !strings.HasPrefix(ref.StreamARN, "arn:aws"):
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("StreamARN %.300q is not a stream ARN", ref.StreamARN)}
		case name != "" && name != byARN:
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("StreamName %.140q and StreamARN %.300q name different streams", name, ref.StreamARN)}
		}
		name = byARN
	}
	if name == "" {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "the request names no stream: give StreamName or StreamARN"}
	}
	if err := runnel.ValidateStreamName(name); err != nil {
		return nil, err
	}
	st, err := req.cluster.Stream(name)
	if err != nil {
		return nil, err
	}
	if ref.StreamARN != "" && ref.StreamARN != st.ARN() {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrResourceNotFound, Msg: fmt.Sprintf("stream %.300q does not exist", ref.StreamARN)}
	}
	return st, nil
}

type streamModeDetails struct {
	StreamMode string
}

type createStreamInput struct {
	StreamName                 string
	ShardCount                 *int
	StreamModeDetails          *streamModeDetails `json:",omitempty"`
	Tags                       map[string]string  `json:",omitempty"`
	WarmThroughputMiBps        *int               `json:",omitempty"`
	MaxRecordSizeInKiB         *int               `json:",omitempty"`
	RecordDistributionStrategy *string            `json:",omitempty"`
}

// Kinesis's bounds of a stream's maximum record size, in KiB.
const (
	minRecordSizeKiB = 1024
	maxRecordSizeKiB = 10240
)

func createStream(ctx context.Context, s *Server, req request) (any, error) {
	const op = "CreateStream"
	var in createStreamInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	// Without StreamModeDetails, a stream with a ShardCount is
	// PROVISIONED and one without is ON_DEMAND, as Kinesis has it.
	mode := runnel.ModeOnDemand
	switch {
	case in.StreamModeDetails != nil:
		mode = runnel.StreamMode(in.StreamModeDetails.StreamMode)
	case in.ShardCount != nil:
		mode = runnel.ModeProvisioned
	}
	switch {
	case mode == runnel.ModeProvisioned && in.ShardCount == nil:
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "a PROVISIONED stream needs a ShardCount"}
	case mode == runnel.ModeOnDemand && in.ShardCount != nil:
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("ShardCount %d cannot be given for an ON_DEMAND stream", *in.ShardCount)}
	}
	warm := derefOr(in.WarmThroughputMiBps, 0)
	if err := s.checkWarmThroughput(op, req, warm); err != nil {
		return nil, err
	}
	opts := []runnel.StreamOption{runnel.WithStreamMode(mode), runnel.WithWarmThroughput(warm)}
	if in.ShardCount != nil {
		opts = append(opts, runnel.WithShardCount(*in.ShardCount))
	}
	if in.MaxRecordSizeInKiB != nil {
		kib, err := recordSizeKiB(op, in.MaxRecordSizeInKiB)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runnel.WithMaxRecordSize(kib<<10))
	}
	if in.RecordDistributionStrategy != nil {
		opts = append(opts, runnel.WithRecordDistribution(runnel.RecordDistribution(*in.RecordDistributionStrategy)))
	}
	if len(in.Tags) > 0 {
		opts = append(opts, runnel.WithTags(in.Tags))
	}
	_, err := req.cluster.CreateStream(ctx, in.StreamName, opts...)
	return struct{}{}, err
}

type deleteStreamInput struct {
	streamRef
	EnforceConsumerDeletion bool
}

func deleteStream(ctx context.Context, s *Server, req request) (any, error) {
	var in deleteStreamInput
	st, err := req.decodeStream("DeleteStream", &in)
	if err != nil {
		return nil, err
	}
	var opts []runnel.DeleteStreamOption
	if in.EnforceConsumerDeletion {
		opts = append(opts, runnel.WithEnforceConsumerDeletion())
	}
	return struct{}{}, req.cluster.DeleteStream(ctx, st.Name(), opts...)
}

type listStreamsInput struct {
	Limit                    *int
	ExclusiveStartStreamName string
	NextToken                string
}

type streamSummary struct {
	StreamName              string
	StreamARN               string
	StreamStatus            string
	StreamModeDetails       streamModeDetails
	StreamCreationTimestamp epochSeconds
}

type listStreamsOutput struct {
	StreamNames     []string
	HasMoreStreams  bool
	NextToken       string `json:",omitempty"`
	StreamSummaries []streamSummary
}

// listStreams lists the streams in name order. A page ends after Limit
// streams (default 100); NextToken is the last name of the page, which
// ExclusiveStartStreamName takes as well.
func listStreams(ctx context.Context, s *Server, req request) (any, error) {
	const op = "ListStreams"
	var in listStreamsInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	limit, err := pageSize(op, "Limit", in.Limit, 100, 10_000)
	if err != nil {
		return nil, err
	}
	names, err := req.cluster.ListStreams(ctx)
	if err != nil {
		return nil, err
	}
	after := in.ExclusiveStartStreamName
	if in.NextToken != "" {
		// A NextToken is the last name of the page before.
		if in.ExclusiveStartStreamName != "" {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "NextToken cannot be combined with ExclusiveStartStreamName"}
		}
		if after, err = s.openPage(op, listStreamsToken, req.cluster, "", in.NextToken); err != nil {
			return nil, err
		}
	}
	if after != "" {
		i, _ := slices.BinarySearch(names, after)
		if i < len(names) && names[i] == after {
			i++
		}
		names = names[i:]
	}
	out := listStreamsOutput{StreamNames: []string{}, StreamSummaries: []streamSummary{}}
	if len(names) > limit {
		names, out.HasMoreStreams = names[:limit], true
		out.NextToken = s.sealPage(listStreamsToken, req.cluster, "", names[limit-1])
	}
	for _, name := range names {
		st, err := req.cluster.Stream(name)
		if err != nil {
			continue // deleted meanwhile
		}
		sum, set, err := describe(ctx, st)
		switch {
		case errors.Is(err, runnel.ErrResourceNotFound):
			continue // deleted meanwhile
		case err != nil:
			return nil, err
		}
		out.StreamNames = append(out.StreamNames, name)
		out.StreamSummaries = append(out.StreamSummaries, streamSummary{
			StreamName: name, StreamARN: sum.StreamARN, StreamStatus: string(sum.StreamStatus),
			StreamModeDetails:       set.mode,
			StreamCreationTimestamp: epochSeconds(sum.StreamCreationTimestamp),
		})
	}
	return out, nil
}

type enhancedMetrics struct {
	ShardLevelMetrics []string
}

type streamDescriptionSummary struct {
	StreamName              string
	StreamARN               string
	StreamStatus            string
	StreamModeDetails       streamModeDetails
	RetentionPeriodHours    int
	StreamCreationTimestamp epochSeconds
	EnhancedMonitoring      []enhancedMetrics
	EncryptionType          string
	KeyId                   string `json:",omitempty"`
	OpenShardCount          int
	ConsumerCount           int
	WarmThroughput          *warmThroughput `json:",omitempty"`
	MaxRecordSizeInKiB      int
}

func describeStreamSummary(ctx context.Context, s *Server, req request) (any, error) {
	var in streamRef
	st, err := req.decodeStream("DescribeStreamSummary", &in)
	if err != nil {
		return nil, err
	}
	sum, set, err := describe(ctx, st)
	if err != nil {
		return nil, err
	}
	return struct{ StreamDescriptionSummary streamDescriptionSummary }{streamDescriptionSummary{
		StreamName:              sum.StreamName,
		StreamARN:               sum.StreamARN,
		StreamStatus:            string(sum.StreamStatus),
		StreamModeDetails:       set.mode,
		RetentionPeriodHours:    int(sum.RetentionPeriod / time.Hour),
		StreamCreationTimestamp: epochSeconds(sum.StreamCreationTimestamp),
		EnhancedMonitoring:      set.monitoring,
		EncryptionType:          set.encryption,
		KeyId:                   set.keyID,
		OpenShardCount:          sum.OpenShardCount,
		ConsumerCount:           sum.ConsumerCount,
		WarmThroughput:          set.warmThroughput,
		MaxRecordSizeInKiB:      set.maxRecordSizeInKiB,
	}}, nil
}

type shardFilter struct {
	Type      string
	ShardId   string        `json:",omitempty"`
	Timestamp *epochSeconds `json:",omitempty"`
}

type listShardsInput struct {
	streamRef
	NextToken               string
	ExclusiveStartShardId   string
	MaxResults              *int
	ShardFilter             *shardFilter
	StreamCreationTimestamp *epochSeconds
}

type hashKeyRange struct {
	StartingHashKey string
	EndingHashKey   string
}

type sequenceNumberRange struct {
	StartingSequenceNumber string
	EndingSequenceNumber   string `json:",omitempty"`
}

type shard struct {
	ShardId               string
	ParentShardId         string `json:",omitempty"`
	AdjacentParentShardId string `json:",omitempty"`
	HashKeyRange          hashKeyRange
	SequenceNumberRange   sequenceNumberRange
}

func wireRange(r runnel.HashKeyRange) hashKeyRange {
	return hashKeyRange{StartingHashKey: r.StartingHashKey.String(), EndingHashKey: r.EndingHashKey.String()}
}

func listShards(ctx context.Context, s *Server, req request) (any, error) {
	const op = "ListShards"
	var in listShardsInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	var st *runnel.Stream
	var err error
	if in.NextToken != "" {
		if in.NextToken, err = s.open(op, "NextToken", listShardsToken, req.cluster, in.NextToken); err != nil {
			return nil, err
		}
	}
	if in.NextToken != "" && in.streamRef == (streamRef{}) {
		st, err = req.cluster.StreamOfNextToken(in.NextToken) // as Kinesis does: the token names the stream
	} else {
		st, err = req.stream(op, in.streamRef)
	}
	if err != nil {
		return nil, err
	}
	if err := checkCreated(op, st, in.StreamCreationTimestamp); err != nil {
		return nil, err
	}
	call := runnel.ListShardsInput{NextToken: in.NextToken, ExclusiveStartShardID: in.ExclusiveStartShardId}
	if in.MaxResults != nil {
		if *in.MaxResults < 1 {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("MaxResults %d must be at least 1", *in.MaxResults)}
		}
		call.MaxResults = *in.MaxResults
	}
	if f := in.ShardFilter; f != nil {
		call.Filter = runnel.ShardFilter{Type: runnel.ShardFilterType(f.Type), ShardID: f.ShardId}
		if f.Timestamp != nil {
			call.Filter.Timestamp = time.Time(*f.Timestamp)
		}
	}
	out, err := st.ListShards(ctx, call)
	if err != nil {
		return nil, err
	}
	return struct {
		Shards    []shard
		NextToken string `json:",omitempty"`
	}{wireShards(out.Shards), s.seal(listShardsToken, req.cluster, out.NextToken)}, nil
}

// checkCreated checks a request's StreamCreationTimestamp, which tells
// streams of one name apart, against the stream's.
func checkCreated(op string, st *runnel.Stream, at *epochSeconds) error {
	if at == nil {
		return nil
	}
	if created := st.CreationTime(); created.UnixMilli() != time.Time(*at).UnixMilli() {
		return &runnel.Error{Op: op, Kind: runnel.ErrResourceNotFound, Msg: fmt.Sprintf("stream %s was created at %s, not at %s",
			st.Name(), created.UTC().Format(time.RFC3339Nano), time.Time(*at).UTC().Format(time.RFC3339Nano))}
	}
	return nil
}

// wireShards returns shards as the API describes them.
func wireShards(shards []runnel.Shard) []shard {
	out := make([]shard, 0, len(shards))
	for _, sh := range shards {
		w := shard{
			ShardId: sh.ShardID, ParentShardId: sh.ParentShardID, AdjacentParentShardId: sh.AdjacentParentShardID,
			HashKeyRange:        wireRange(sh.HashKeyRange),
			SequenceNumberRange: sequenceNumberRange{StartingSequenceNumber: sh.SequenceNumberRange.StartingSequenceNumber.String()},
		}
		if end := sh.SequenceNumberRange.EndingSequenceNumber; !end.IsZero() {
			w.SequenceNumberRange.EndingSequenceNumber = end.String()
		}
		out = append(out, w)
	}
	return out
}

type putRecordInput struct {
	streamRef
	PartitionKey              string
	Data                      []byte
	ExplicitHashKey           string
	SequenceNumberForOrdering string
}

type putRecordOutput struct {
	ShardId        string
	SequenceNumber string
	EncryptionType string
}

func putRecord(ctx context.Context, s *Server, req request) (any, error) {
	const op = "PutRecord"
	var in putRecordInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	call := runnel.PutRecordInput{PartitionKey: in.PartitionKey, Data: in.Data, ExplicitHashKey: in.ExplicitHashKey}
	if in.SequenceNumberForOrdering != "" {
		if call.SequenceNumberForOrdering, err = runnel.ParseSequenceNumber(in.SequenceNumberForOrdering); err != nil {
			return nil, err
		}
	}
	out, err := st.PutRecord(ctx, call)
	if err != nil {
		return nil, err
	}
	return putRecordOutput{ShardId: out.ShardID, SequenceNumber: out.SequenceNumber.String(), EncryptionType: string(out.EncryptionType)}, nil
}

type putRecordsEntry struct {
	PartitionKey    string
	Data            []byte
	ExplicitHashKey string
}

type putRecordsInput struct {
	streamRef
	Records []putRecordsEntry
}

type putRecordsResult struct {
	SequenceNumber string `json:",omitempty"`
	ShardId        string `json:",omitempty"`
	ErrorCode      string `json:",omitempty"`
	ErrorMessage   string `json:",omitempty"`
}

func putRecords(ctx context.Context, s *Server, req request) (any, error) {
	const op = "PutRecords"
	var in putRecordsInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	entries := make([]runnel.PutRecordsEntry, len(in.Records))
	for i, r := range in.Records {
		entries[i] = runnel.PutRecordsEntry{PartitionKey: r.PartitionKey, Data: r.Data, ExplicitHashKey: r.ExplicitHashKey}
	}
	out, err := st.PutRecords(ctx, runnel.PutRecordsInput{Records: entries})
	if err != nil {
		return nil, err
	}
	results := make([]putRecordsResult, len(out.Records))
	for i, r := range out.Records {
		if r.Err != nil {
			results[i] = putRecordsResult{ErrorCode: runnel.RecordErrorCode(r.Err), ErrorMessage: message(r.Err)}
			continue
		}
		results[i] = putRecordsResult{SequenceNumber: r.SequenceNumber.String(), ShardId: r.ShardID}
	}
	return struct {
		FailedRecordCount int
		Records           []putRecordsResult
		EncryptionType    string
	}{out.FailedRecordCount, results, string(out.EncryptionType)}, nil
}

type getShardIteratorInput struct {
	streamRef
	ShardId                string
	ShardIteratorType      string
	StartingSequenceNumber string
	Timestamp              *epochSeconds
}

func getShardIterator(ctx context.Context, s *Server, req request) (any, error) {
	const op = "GetShardIterator"
	var in getShardIteratorInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	from, err := startingPosition{Type: in.ShardIteratorType, SequenceNumber: in.StartingSequenceNumber, Timestamp: in.Timestamp}.decode()
	if err != nil {
		return nil, err
	}
	it, err := st.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: in.ShardId, StartingPosition: from})
	if err != nil {
		return nil, err
	}
	return struct{ ShardIterator string }{s.seal(iteratorToken, req.cluster, it.String())}, nil
}

type getRecordsInput struct {
	ShardIterator string
	Limit         *int
	StreamARN     string
	StreamId      string `json:",omitempty"`
	DryRun        bool   `json:",omitempty"`
}

type record struct {
	SequenceNumber              string
	ApproximateArrivalTimestamp epochSeconds
	Data                        []byte
	PartitionKey                string
	EncryptionType              string
}

type childShard struct {
	ShardId      string
	ParentShards []string
	HashKeyRange hashKeyRange
}

type getRecordsOutput struct {
	Records            []record
	NextShardIterator  string `json:",omitempty"`
	MillisBehindLatest int64
	ChildShards        []childShard `json:",omitempty"`
}

// maxIteratorLen is the longest ShardIterator Kinesis's API takes.
const maxIteratorLen = 512

func getRecords(ctx context.Context, s *Server, req request) (any, error) {
	const op = "GetRecords"
	var in getRecordsInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	if n := len(in.ShardIterator); n < 1 || n > maxIteratorLen {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("ShardIterator is %d characters; Kinesis takes 1 to %d", n, maxIteratorLen)}
	}
	text, err := s.open(op, "ShardIterator", iteratorToken, req.cluster, in.ShardIterator)
	if err != nil {
		return nil, err
	}
	it, err := runnel.ParseShardIterator(text)
	if err != nil {
		return nil, err
	}
	st, err := req.stream(op, streamRef{StreamName: it.StreamName(), StreamARN: in.StreamARN, StreamId: in.StreamId, DryRun: in.DryRun})
	if err != nil {
		return nil, err
	}
	call := runnel.GetRecordsInput{ShardIterator: it}
	if in.Limit != nil {
		if *in.Limit < 1 {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("Limit %d must be at least 1", *in.Limit)}
		}
		call.Limit = *in.Limit
	}
	out, err := st.GetRecords(ctx, call)
	if err != nil {
		return nil, err
	}
	s.metrics().iteratorAge(st, it.ShardID(), out.MillisBehindLatest)
	w := getRecordsOutput{Records: wireRecords(st, out.Records), MillisBehindLatest: out.MillisBehindLatest, ChildShards: wireChildShards(out.ChildShards)}
	if !out.NextShardIterator.IsZero() {
		w.NextShardIterator = s.seal(iteratorToken, req.cluster, out.NextShardIterator.String())
	}
	return w, nil
}

// wireRecords returns records as the API carries them.
func wireRecords(st *runnel.Stream, recs []runnel.Record) []record {
	out := make([]record, len(recs))
	for i, r := range recs {
		out[i] = record{
			SequenceNumber: r.SequenceNumber.String(), ApproximateArrivalTimestamp: epochSeconds(r.ApproximateArrivalTimestamp),
			Data: r.Data, PartitionKey: r.PartitionKey, EncryptionType: string(st.EncryptionAt(r.ApproximateArrivalTimestamp)),
		}
	}
	return out
}

// wireChildShards returns child shards as the API carries them.
func wireChildShards(children []runnel.ChildShard) []childShard {
	var out []childShard
	for _, c := range children {
		out = append(out, childShard{ShardId: c.ShardID, ParentShards: c.ParentShards, HashKeyRange: wireRange(c.HashKeyRange)})
	}
	return out
}
