package server

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-go/runnel"
)

// The control-plane operations: resharding, retention, limits, the legacy
// DescribeStream, and the registration of enhanced fan-out consumers.

type splitShardInput struct {
	streamRef
	ShardToSplit       string
	NewStartingHashKey string
}

func splitShard(ctx context.Context, s *Server, req request) (any, error) {
	const op = "SplitShard"
	var in splitShardInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	at, err := runnel.ParseHashKey(in.NewStartingHashKey)
	if err != nil {
		return nil, err
	}
	return struct{}{}, st.SplitShard(ctx, in.ShardToSplit, at)
}

type mergeShardsInput struct {
	streamRef
	ShardToMerge         string
	AdjacentShardToMerge string
}

func mergeShards(ctx context.Context, s *Server, req request) (any, error) {
	const op = "MergeShards"
	var in mergeShardsInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	return struct{}{}, st.MergeShards(ctx, in.ShardToMerge, in.AdjacentShardToMerge)
}

type updateShardCountInput struct {
	streamRef
	TargetShardCount int
	ScalingType      string
}

func updateShardCount(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UpdateShardCount"
	var in updateShardCountInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	if in.ScalingType != "UNIFORM_SCALING" {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("ScalingType %.40q must be UNIFORM_SCALING", in.ScalingType)}
	}
	out, err := st.UpdateShardCount(ctx, in.TargetShardCount)
	if err != nil {
		return nil, err
	}
	return struct {
		StreamName        string
		StreamARN         string
		CurrentShardCount int
		TargetShardCount  int
	}{st.Name(), st.ARN(), out.CurrentShardCount, out.TargetShardCount}, nil
}

// Kinesis's bounds of a stream's retention period, in hours.
const (
	minRetentionHours = 24
	maxRetentionHours = 8760
)

type retentionInput struct {
	streamRef
	RetentionPeriodHours int
}

// changeRetention serves IncreaseStreamRetentionPeriod (sign +1) and
// DecreaseStreamRetentionPeriod (-1), within Kinesis's bounds.
func changeRetention(sign int) operation {
	return func(ctx context.Context, s *Server, req request) (any, error) {
		op := "IncreaseStreamRetentionPeriod"
		if sign < 0 {
			op = "DecreaseStreamRetentionPeriod"
		}
		var in retentionInput
		st, err := req.decodeStream(op, &in)
		if err != nil {
			return nil, err
		}
		h := in.RetentionPeriodHours
		if h < minRetentionHours || h > maxRetentionHours {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("retention period %d hours is not between %d and %d", h, minRetentionHours, maxRetentionHours)}
		}
		d := time.Duration(h) * time.Hour
		if sign > 0 {
			return struct{}{}, st.IncreaseRetentionPeriod(ctx, d)
		}
		return struct{}{}, st.DecreaseRetentionPeriod(ctx, d)
	}
}

type describeStreamInput struct {
	streamRef
	Limit                 *int
	ExclusiveStartShardId string
}

type streamDescription struct {
	StreamName              string
	StreamARN               string
	StreamStatus            string
	StreamModeDetails       streamModeDetails
	Shards                  []shard
	HasMoreShards           bool
	RetentionPeriodHours    int
	StreamCreationTimestamp epochSeconds
	EnhancedMonitoring      []enhancedMetrics
	EncryptionType          string
	KeyId                   string `json:",omitempty"`
}

// describeStream serves the legacy DescribeStream: the summary with one
// page of shards (at most Limit, default 100).
func describeStream(ctx context.Context, s *Server, req request) (any, error) {
	const op = "DescribeStream"
	var in describeStreamInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	limit, err := pageSize(op, "Limit", in.Limit, 100, 10_000)
	if err != nil {
		return nil, err
	}
	sum, set, err := describe(ctx, st)
	if err != nil {
		return nil, err
	}
	page, err := st.ListShards(ctx, runnel.ListShardsInput{MaxResults: limit, ExclusiveStartShardID: in.ExclusiveStartShardId})
	if err != nil {
		return nil, err
	}
	return struct{ StreamDescription streamDescription }{streamDescription{
		StreamName:              sum.StreamName,
		StreamARN:               sum.StreamARN,
		StreamStatus:            string(sum.StreamStatus),
		StreamModeDetails:       set.mode,
		Shards:                  wireShards(page.Shards),
		HasMoreShards:           page.NextToken != "",
		RetentionPeriodHours:    int(sum.RetentionPeriod / time.Hour),
		StreamCreationTimestamp: epochSeconds(sum.StreamCreationTimestamp),
		EnhancedMonitoring:      set.monitoring,
		EncryptionType:          set.encryption,
		KeyId:                   set.keyID,
	}}, nil
}

// onDemandStreamLimit is Kinesis's default quota of on-demand streams.
const onDemandStreamLimit = 50

func describeLimits(ctx context.Context, s *Server, req request) (any, error) {
	if err := req.decode("DescribeLimits", &struct{}{}); err != nil {
		return nil, err
	}
	quota, used := req.cluster.ShardQuota()
	onDemand := 0
	for _, st := range req.cluster.Streams() {
		if set, err := st.Settings(ctx); err == nil && set.Mode == runnel.ModeOnDemand {
			onDemand++
		}
	}
	return struct {
		ShardLimit               int
		OpenShardCount           int
		OnDemandStreamCount      int
		OnDemandStreamCountLimit int
	}{quota, used, onDemand, onDemandStreamLimit}, nil
}

// consumerRef names a consumer by stream ARN and name, or by its ARN.
type consumerRef struct {
	StreamARN    string `json:",omitempty"`
	ConsumerName string `json:",omitempty"`
	ConsumerARN  string `json:",omitempty"`
}

// consumerStream finds the stream of the consumer a request names.
func (req request) consumerStream(op string, in consumerRef) (*runnel.Stream, error) {
	if in.StreamARN == "" && in.ConsumerARN != "" {
		stream, _, err := runnel.ParseConsumerARN(in.ConsumerARN)
		if err != nil {
			return nil, err
		}
		return req.stream(op, streamRef{StreamName: stream})
	}
	return req.stream(op, streamRef{StreamARN: in.StreamARN})
}

type consumer struct {
	ConsumerName              string
	ConsumerARN               string
	ConsumerStatus            string
	ConsumerCreationTimestamp epochSeconds
	StreamARN                 string `json:",omitempty"`
}

func wireConsumer(c runnel.StreamConsumer, withStream bool) consumer {
	w := consumer{ConsumerName: c.ConsumerName, ConsumerARN: c.ConsumerARN, ConsumerStatus: string(c.ConsumerStatus),
		ConsumerCreationTimestamp: epochSeconds(c.ConsumerCreationTimestamp)}
	if withStream {
		w.StreamARN = c.StreamARN
	}
	return w
}

type registerStreamConsumerInput struct {
	StreamARN    string
	ConsumerName string
	Tags         map[string]string `json:",omitempty"`
}

func registerStreamConsumer(ctx context.Context, s *Server, req request) (any, error) {
	const op = "RegisterStreamConsumer"
	var in registerStreamConsumerInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	st, err := req.stream(op, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	c, err := st.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: in.ConsumerName, Tags: in.Tags})
	if err != nil {
		return nil, err
	}
	return struct{ Consumer consumer }{wireConsumer(c, false)}, nil
}

func describeStreamConsumer(ctx context.Context, s *Server, req request) (any, error) {
	const op = "DescribeStreamConsumer"
	var in consumerRef
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	st, err := req.consumerStream(op, in)
	if err != nil {
		return nil, err
	}
	c, err := st.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: in.ConsumerName, ConsumerARN: in.ConsumerARN})
	if err != nil {
		return nil, err
	}
	return struct{ ConsumerDescription consumer }{wireConsumer(c, true)}, nil
}

type listStreamConsumersInput struct {
	StreamARN               string
	MaxResults              *int
	NextToken               string
	StreamCreationTimestamp *epochSeconds
}

// listStreamConsumers lists the consumers, oldest first, MaxResults
// (default 100) a page.
func listStreamConsumers(ctx context.Context, s *Server, req request) (any, error) {
	const op = "ListStreamConsumers"
	var in listStreamConsumersInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	st, err := req.stream(op, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	limit, err := pageSize(op, "MaxResults", in.MaxResults, 100, 10_000)
	if err != nil {
		return nil, err
	}
	if err := checkCreated(op, st, in.StreamCreationTimestamp); err != nil {
		return nil, err
	}
	all, err := st.ListStreamConsumers(ctx)
	if err != nil {
		return nil, err
	}
	page := all
	if in.NextToken != "" {
		// A NextToken names the last consumer of the page before, by its
		// place in the order (creation time, then name), which holds
		// also when that consumer has been deregistered since.
		last, err := s.openPage(op, listConsumersToken, req.cluster, consumersScope(st), in.NextToken)
		if err != nil {
			return nil, err
		}
		at, name, _ := strings.Cut(last, "/")
		ns, _ := strconv.ParseInt(at, 10, 64)
		i, _ := slices.BinarySearchFunc(all, last, func(c runnel.StreamConsumer, _ string) int {
			if d := cmp.Compare(c.ConsumerCreationTimestamp.UnixNano(), ns); d != 0 {
				return d
			}
			return cmp.Compare(c.ConsumerName, name)
		})
		if i < len(all) && all[i].ConsumerCreationTimestamp.UnixNano() == ns && all[i].ConsumerName == name {
			i++
		}
		page = all[i:]
	}
	out := struct {
		Consumers []consumer
		NextToken string `json:",omitempty"`
	}{Consumers: []consumer{}}
	if len(page) > limit {
		last := page[limit-1]
		page, out.NextToken = page[:limit], s.sealPage(listConsumersToken, req.cluster, consumersScope(st), fmt.Sprintf("%d/%s", last.ConsumerCreationTimestamp.UnixNano(), last.ConsumerName))
	}
	for _, c := range page {
		out.Consumers = append(out.Consumers, wireConsumer(c, false))
	}
	return out, nil
}

// consumersScope is what a ListStreamConsumers NextToken is for: its
// stream, told apart from others of its name by its creation.
func consumersScope(st *runnel.Stream) string {
	return st.ARN() + "@" + strconv.FormatInt(st.CreationTime().UnixNano(), 10)
}

func deregisterStreamConsumer(ctx context.Context, s *Server, req request) (any, error) {
	const op = "DeregisterStreamConsumer"
	var in consumerRef
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	st, err := req.consumerStream(op, in)
	if err != nil {
		return nil, err
	}
	return struct{}{}, st.DeregisterStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: in.ConsumerName, ConsumerARN: in.ConsumerARN})
}
