package server

import (
	"context"
	"fmt"

	"github.com/runnel-go/runnel"
)

// The operations on a stream's settings: encryption, enhanced monitoring,
// the capacity mode, warm throughput, the record distribution strategy,
// the maximum record size, and resource policies.

// streamSettings are the settings the descriptions of a stream report.
type streamSettings struct {
	mode               streamModeDetails
	encryption         string
	keyID              string
	monitoring         []enhancedMetrics
	warmThroughput     *warmThroughput
	maxRecordSizeInKiB int
}

type warmThroughput struct {
	TargetMiBps  int
	CurrentMiBps int
}

// describe returns what the descriptions of a stream report: its summary
// and its settings.
func describe(ctx context.Context, st *runnel.Stream) (runnel.StreamSummary, streamSettings, error) {
	sum, err := st.Describe(ctx)
	if err != nil {
		return sum, streamSettings{}, err
	}
	set, err := settingsOf(ctx, st)
	return sum, set, err
}

// settingsOf reads the settings a description of st reports.
func settingsOf(ctx context.Context, st *runnel.Stream) (streamSettings, error) {
	set, err := st.Settings(ctx)
	if err != nil {
		return streamSettings{}, err
	}
	metrics := set.ShardLevelMetrics
	if metrics == nil {
		metrics = []string{}
	}
	out := streamSettings{
		mode:               streamModeDetails{StreamMode: string(set.Mode)},
		encryption:         string(set.EncryptionType),
		keyID:              set.KeyID,
		monitoring:         []enhancedMetrics{{ShardLevelMetrics: metrics}},
		maxRecordSizeInKiB: set.MaxRecordSize >> 10,
	}
	if set.Mode == runnel.ModeOnDemand {
		// runnel's capacity is there at once: current is the target.
		out.warmThroughput = &warmThroughput{TargetMiBps: set.WarmThroughputMiBps, CurrentMiBps: set.WarmThroughputMiBps}
	}
	return out, nil
}

type encryptionInput struct {
	streamRef
	EncryptionType string
	KeyId          string
}

// changeEncryption serves StartStreamEncryption (start) and
// StopStreamEncryption.
func changeEncryption(start bool) operation {
	op := "StopStreamEncryption"
	if start {
		op = "StartStreamEncryption"
	}
	return func(ctx context.Context, s *Server, req request) (any, error) {
		var in encryptionInput
		st, err := req.decodeStream(op, &in)
		if err != nil {
			return nil, err
		}
		if in.EncryptionType != string(runnel.EncryptionKMS) {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("EncryptionType %.40q must be KMS", in.EncryptionType)}
		}
		if start {
			return struct{}{}, st.StartEncryption(ctx, in.KeyId)
		}
		return struct{}{}, st.StopEncryption(ctx, in.KeyId)
	}
}

type monitoringInput struct {
	streamRef
	ShardLevelMetrics []string
}

// changeMonitoring serves EnableEnhancedMonitoring (enable) and
// DisableEnhancedMonitoring.
func changeMonitoring(enable bool) operation {
	return func(ctx context.Context, s *Server, req request) (any, error) {
		op := "DisableEnhancedMonitoring"
		if enable {
			op = "EnableEnhancedMonitoring"
		}
		var in monitoringInput
		st, err := req.decodeStream(op, &in)
		if err != nil {
			return nil, err
		}
		change := st.DisableEnhancedMonitoring
		if enable {
			change = st.EnableEnhancedMonitoring
		}
		out, err := change(ctx, in.ShardLevelMetrics)
		if err != nil {
			return nil, err
		}
		return struct {
			StreamName, StreamARN                              string
			CurrentShardLevelMetrics, DesiredShardLevelMetrics []string
		}{st.Name(), st.ARN(), nonNil(out.Current), nonNil(out.Desired)}, nil
	}
}

// nonNil returns ss, or an empty list for nil (a list the API always has).
func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

type updateStreamModeInput struct {
	streamRef
	StreamModeDetails   *streamModeDetails
	WarmThroughputMiBps *int
}

func updateStreamMode(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UpdateStreamMode"
	var in updateStreamModeInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	if in.StreamModeDetails == nil {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: "StreamModeDetails is required"}
	}
	warm := derefOr(in.WarmThroughputMiBps, 0)
	if err := s.checkWarmThroughput(op, req, warm); err != nil {
		return nil, err
	}
	return struct{}{}, st.UpdateStreamMode(ctx, runnel.StreamMode(in.StreamModeDetails.StreamMode), warm)
}

// derefOr returns *p, or def when p is nil.
func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

type updateWarmThroughputInput struct {
	streamRef
	WarmThroughputMiBps *int
}

func updateWarmThroughput(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UpdateStreamWarmThroughput"
	var in updateWarmThroughputInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	if in.WarmThroughputMiBps == nil {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: "WarmThroughputMiBps is required"}
	}
	if err := s.checkWarmThroughput(op, req, *in.WarmThroughputMiBps); err != nil {
		return nil, err
	}
	if err := st.UpdateWarmThroughput(ctx, *in.WarmThroughputMiBps); err != nil {
		return nil, err
	}
	set, err := settingsOf(ctx, st)
	if err != nil {
		return nil, err
	}
	return struct {
		StreamName, StreamARN string
		WarmThroughput        *warmThroughput
	}{st.Name(), st.ARN(), set.warmThroughput}, nil
}

type updateDistributionInput struct {
	streamRef
	RecordDistributionStrategy string
}

func updateDistribution(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UpdateStreamRecordDistributionStrategy"
	var in updateDistributionInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	return struct{}{}, st.UpdateRecordDistribution(ctx, runnel.RecordDistribution(in.RecordDistributionStrategy))
}

type updateMaxRecordSizeInput struct {
	streamRef
	MaxRecordSizeInKiB *int
}

func updateMaxRecordSize(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UpdateMaxRecordSize"
	var in updateMaxRecordSizeInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	kib, err := recordSizeKiB(op, in.MaxRecordSizeInKiB)
	if err != nil {
		return nil, err
	}
	return struct{}{}, st.UpdateMaxRecordSize(ctx, kib<<10)
}

// recordSizeKiB checks a MaxRecordSizeInKiB against Kinesis's range before
// it is shifted into bytes.
func recordSizeKiB(op string, kib *int) (int, error) {
	switch {
	case kib == nil:
		return 0, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: "MaxRecordSizeInKiB is required"}
	case *kib < minRecordSizeKiB || *kib > maxRecordSizeKiB:
		return 0, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("MaxRecordSizeInKiB %d must be between %d and %d", *kib, minRecordSizeKiB, maxRecordSizeKiB)}
	}
	return *kib, nil
}

type resourcePolicyInput struct {
	ResourceARN string
	Policy      *string `json:",omitempty"`
	StreamId    string  `json:",omitempty"`
}

// decodePolicy decodes a resource-policy request.
func decodePolicy(op string, req request) (resourcePolicyInput, error) {
	var in resourcePolicyInput
	if err := req.decode(op, &in); err != nil {
		return in, err
	}
	if in.StreamId != "" {
		return in, errNotYet(op, "StreamId")
	}
	return in, nil
}

func putResourcePolicy(ctx context.Context, s *Server, req request) (any, error) {
	const op = "PutResourcePolicy"
	in, err := decodePolicy(op, req)
	if err != nil {
		return nil, err
	}
	return struct{}{}, req.cluster.PutResourcePolicy(ctx, in.ResourceARN, derefOr(in.Policy, ""))
}

func getResourcePolicy(ctx context.Context, s *Server, req request) (any, error) {
	in, err := decodePolicy("GetResourcePolicy", req)
	if err != nil {
		return nil, err
	}
	policy, err := req.cluster.ResourcePolicy(ctx, in.ResourceARN)
	return struct{ Policy string }{policy}, err
}

func deleteResourcePolicy(ctx context.Context, s *Server, req request) (any, error) {
	in, err := decodePolicy("DeleteResourcePolicy", req)
	if err != nil {
		return nil, err
	}
	return struct{}{}, req.cluster.DeleteResourcePolicy(ctx, in.ResourceARN)
}
