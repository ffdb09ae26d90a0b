package runnel

import (
	"cmp"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"time"
	"unicode/utf8"
)

// A stream's settings beyond its shards and retention, as Kinesis keeps
// and reports them: server-side encryption, enhanced (shard-level)
// monitoring, the capacity mode, warm throughput, the record distribution
// strategy, the maximum record size, and resource policies. Each change
// takes effect at once; the stream stays ACTIVE.

// EncryptionType is a stream's server-side encryption, as Kinesis names it.
type EncryptionType string

// The encryption types.
const (
	EncryptionNone EncryptionType = "NONE"
	EncryptionKMS  EncryptionType = "KMS"
)

// StreamMode is a stream's capacity mode.
type StreamMode string

// The capacity modes. runnel's ON_DEMAND streams do not scale by
// themselves: they keep their shards (4 unless WithShardCount says
// otherwise) and refuse SplitShard, MergeShards and UpdateShardCount, as
// Kinesis does.
const (
	ModeProvisioned StreamMode = "PROVISIONED"
	ModeOnDemand    StreamMode = "ON_DEMAND"
)

// RecordDistribution is how a stream routes records to shards.
type RecordDistribution string

// The record distribution strategies. With AUTO the stream ignores
// partition keys and explicit hash keys and spreads records evenly over
// its shards, so per-key order is not kept.
const (
	DistributionUserPartitionKey RecordDistribution = "USER_PARTITION_KEY"
	DistributionAuto             RecordDistribution = "AUTO"
)

// The shard-level metrics of enhanced monitoring, in Kinesis's order;
// "ALL" stands for all of them.
var shardLevelMetrics = []string{
	"IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
	"WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded", "IteratorAgeMilliseconds",
}

// Kinesis's bounds of the settings.
const (
	maxKeyIDLen              = 2048
	maxPolicyLen             = 20 << 10
	maxModeSwitches          = 2 // in any 24 hours
	maxWarmThroughput        = 10_240
	minMaxRecordSize         = DefaultMaxRecordSize
	defaultMaxPutRecordsSize = 5 << 20
)

// MaxPutRecordsSize is the largest PutRecords request, in bytes, that
// Kinesis takes on a stream whose records may be maxRecordSize bytes: 5 MiB,
// or the record size when that is larger.
func MaxPutRecordsSize(maxRecordSize int) int { return max(defaultMaxPutRecordsSize, maxRecordSize) }

// encryptionChange is when a stream's encryption became what it is: the
// records that arrived from then on are of that type.
type encryptionChange struct {
	fromMs int64
	typ    EncryptionType
}

// settings are a stream's settings; guarded by the stream's mu, except
// encryption, which readers load without locking.
type settings struct {
	keyID        string
	metrics      []string // enabled shard-level metrics, in Kinesis's order
	mode         StreamMode
	modeSwitches []time.Time
	warmMiBps    int
	distribution RecordDistribution
	policy       string
}

// WithStreamMode sets the stream's capacity mode. Default PROVISIONED.
func WithStreamMode(m StreamMode) StreamOption { return func(c *streamConfig) { c.mode = m } }

// WithWarmThroughput sets the write throughput in MiB/s that an ON_DEMAND
// stream is said to be ready for (reported, not enforced). Default 0.
func WithWarmThroughput(mibps int) StreamOption { return func(c *streamConfig) { c.warmMiBps = mibps } }

// WithRecordDistribution sets how the stream routes records. Default
// USER_PARTITION_KEY.
func WithRecordDistribution(d RecordDistribution) StreamOption {
	return func(c *streamConfig) { c.distribution = d }
}

// checkMode is the one validator of a capacity mode.
func checkMode(op string, m StreamMode) *Error {
	if m != ModeProvisioned && m != ModeOnDemand {
		return errorf(op, ErrValidation, "stream mode %.40q must be PROVISIONED or ON_DEMAND", m)
	}
	return nil
}

// checkWarmThroughput is the one validator of a warm throughput.
func checkWarmThroughput(op string, mibps int, mode StreamMode) *Error {
	switch {
	case mibps < 0 || mibps > maxWarmThroughput:
		return errorf(op, ErrValidation, "warm throughput %d MiB/s must be between 0 and %d", mibps, maxWarmThroughput)
	case mibps > 0 && mode != ModeOnDemand:
		return errorf(op, ErrValidation, "warm throughput %d MiB/s applies only to ON_DEMAND streams", mibps)
	}
	return nil
}

// checkDistribution is the one validator of a record distribution for a
// stream of a mode: AUTO is for ON_DEMAND streams only, as in Kinesis.
func checkDistribution(op string, d RecordDistribution, mode StreamMode) *Error {
	switch {
	case d != DistributionUserPartitionKey && d != DistributionAuto:
		return errorf(op, ErrValidation, "record distribution strategy %.40q must be USER_PARTITION_KEY or AUTO", d)
	case d == DistributionAuto && mode != ModeOnDemand:
		return errorf(op, ErrInvalidArgument, "record distribution strategy AUTO is for ON_DEMAND streams, not %s ones", mode)
	}
	return nil
}

// StreamSettings is a snapshot of a stream's settings.
type StreamSettings struct {
	EncryptionType EncryptionType // NONE or KMS
	KeyID          string         // the KMS key, when encrypted
	// ShardLevelMetrics are the enabled metrics of enhanced monitoring.
	ShardLevelMetrics []string
	Mode              StreamMode // PROVISIONED or ON_DEMAND
	// WarmThroughputMiBps is the warm throughput of an ON_DEMAND stream.
	WarmThroughputMiBps int
	Distribution        RecordDistribution
	MaxRecordSize       int // bytes of data and partition key
}

// Settings returns the stream's settings. Faults injected for
// DescribeStreamSummary do not apply to it (Describe has them).
func (s *Stream) Settings(ctx context.Context) (StreamSettings, error) {
	if err := s.ready(ctx, "DescribeStreamSummary"); err != nil {
		return StreamSettings{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return StreamSettings{
		EncryptionType:      s.Encryption(),
		KeyID:               s.set.keyID,
		ShardLevelMetrics:   slices.Clone(s.set.metrics),
		Mode:                s.set.mode,
		WarmThroughputMiBps: s.set.warmMiBps,
		Distribution:        s.set.distribution,
		MaxRecordSize:       int(s.maxRecordSize.Load()),
	}, nil
}

// update runs a settings change of op under the stream's lock, after the
// stream, ctx and any injected fault allow it. The stream must be ACTIVE.
func (s *Stream) update(ctx context.Context, op string, change func() error) error {
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.live(op); err != nil { // deleted or closed meanwhile
		return err
	}
	if s.status != StatusActive {
		return errorf(op, ErrResourceInUse, "stream %s is %s, not ACTIVE", s.name, s.status)
	}
	if err := change(); err != nil {
		return err
	}
	return s.persistLocked(op)
}

// checkKeyID is the one validator of a KMS key id.
func checkKeyID(op, keyID string) *Error {
	if n := utf8.RuneCountInString(keyID); n < 1 || n > maxKeyIDLen {
		return errorf(op, ErrValidation, "KMS key id %.80q must be 1 to %d characters", keyID, maxKeyIDLen)
	}
	return nil
}

// StartEncryption encrypts the records written from now on with a KMS key
// (StartStreamEncryption), or changes the key. runnel encrypts nothing:
// the records are marked KMS, as Kinesis reports them. KMS's errors
// (ErrKMSNotFound, ErrKMSAccessDenied, …) can be injected as faults of
// OpStartStreamEncryption, and of the writes of an encrypted stream.
func (s *Stream) StartEncryption(ctx context.Context, keyID string) error {
	const op = "StartStreamEncryption"
	if err := checkKeyID(op, keyID); err != nil {
		return err
	}
	return s.update(ctx, op, func() error {
		s.set.keyID = keyID
		s.setEncryption(EncryptionKMS)
		return nil
	})
}

// StopEncryption stops encrypting the records written from now on
// (StopStreamEncryption). keyID must be the stream's key.
func (s *Stream) StopEncryption(ctx context.Context, keyID string) error {
	const op = "StopStreamEncryption"
	if err := checkKeyID(op, keyID); err != nil {
		return err
	}
	return s.update(ctx, op, func() error {
		switch {
		case s.Encryption() != EncryptionKMS:
			return errorf(op, ErrInvalidArgument, "stream %s is not encrypted", s.name)
		case keyID != s.set.keyID:
			return errorf(op, ErrInvalidArgument, "KMS key %.80q is not the key of stream %s", keyID, s.name)
		}
		s.set.keyID = ""
		s.setEncryption(EncryptionNone)
		return nil
	})
}

// setEncryption records that the records arriving from now on are of type
// t, and forgets the changes that no retained record arrived under. The
// caller holds mu.
func (s *Stream) setEncryption(t EncryptionType) {
	old := *s.encryption.Load()
	now := s.now()
	cutoff := s.cutoffMs(now)
	first := 0
	for first+1 < len(old) && old[first+1].fromMs <= cutoff {
		first++
	}
	changes := append(slices.Clip(old[first:]), encryptionChange{fromMs: now.UnixMilli(), typ: t})
	s.encryption.Store(&changes)
}

// Encryption returns the encryption type of the records written now.
func (s *Stream) Encryption() EncryptionType { return s.EncryptionAt(s.now()) }

// EncryptionAt returns the encryption type of the records that arrived at
// t: what the stream's encryption was then. Safe to call without locks.
func (s *Stream) EncryptionAt(t time.Time) EncryptionType {
	changes := *s.encryption.Load()
	ms := t.UnixMilli()
	i := sort.Search(len(changes), func(i int) bool { return changes[i].fromMs > ms })
	if i == 0 {
		return EncryptionNone
	}
	return changes[i-1].typ
}

// MonitoringChange is the outcome of EnableEnhancedMonitoring or
// DisableEnhancedMonitoring: the enabled shard-level metrics before and
// after.
type MonitoringChange struct {
	Current, Desired []string
}

// EnableEnhancedMonitoring enables shard-level metrics (Kinesis's names,
// or "ALL"). runnel reports them in its summaries; its server's /metrics
// shows every metric whatever is enabled.
func (s *Stream) EnableEnhancedMonitoring(ctx context.Context, metrics []string) (MonitoringChange, error) {
	return s.changeMonitoring(ctx, "EnableEnhancedMonitoring", metrics, true)
}

// DisableEnhancedMonitoring disables shard-level metrics.
func (s *Stream) DisableEnhancedMonitoring(ctx context.Context, metrics []string) (MonitoringChange, error) {
	return s.changeMonitoring(ctx, "DisableEnhancedMonitoring", metrics, false)
}

func (s *Stream) changeMonitoring(ctx context.Context, op string, metrics []string, enable bool) (MonitoringChange, error) {
	if len(metrics) < 1 || len(metrics) > len(shardLevelMetrics) {
		return MonitoringChange{}, errorf(op, ErrValidation, "%d shard-level metrics given; give 1 to %d", len(metrics), len(shardLevelMetrics))
	}
	named := make(map[string]bool)
	for _, m := range metrics {
		switch {
		case m == "ALL":
			for _, all := range shardLevelMetrics {
				named[all] = true
			}
		case slices.Contains(shardLevelMetrics, m):
			named[m] = true
		default:
			return MonitoringChange{}, errorf(op, ErrValidation, "shard-level metric %.60q is not one of %v or ALL", m, shardLevelMetrics)
		}
	}
	var out MonitoringChange
	err := s.update(ctx, op, func() error {
		out.Current = slices.Clone(s.set.metrics)
		var desired []string
		for _, m := range shardLevelMetrics {
			on := slices.Contains(s.set.metrics, m)
			if named[m] {
				on = enable
			}
			if on {
				desired = append(desired, m)
			}
		}
		s.set.metrics = desired
		out.Desired = slices.Clone(desired)
		return nil
	})
	return out, err
}

// UpdateStreamMode switches the stream's capacity mode (UpdateStreamMode),
// at most twice in 24 hours, as Kinesis allows. warmMiBps, for a switch to
// ON_DEMAND, sets its warm throughput.
func (s *Stream) UpdateStreamMode(ctx context.Context, mode StreamMode, warmMiBps int) error {
	const op = "UpdateStreamMode"
	if err := checkMode(op, mode); err != nil {
		return err
	}
	if err := checkWarmThroughput(op, warmMiBps, mode); err != nil {
		return err
	}
	return s.update(ctx, op, func() error {
		now := s.now()
		recent := slices.DeleteFunc(s.set.modeSwitches, func(t time.Time) bool { return now.Sub(t) >= 24*time.Hour })
		switch {
		case mode == s.set.mode:
			return errorf(op, ErrInvalidArgument, "stream %s is %s already", s.name, mode)
		case len(recent) >= maxModeSwitches:
			return errorf(op, ErrLimitExceeded, "stream %s switched mode %d times in the last 24 hours; the limit is %d", s.name, len(recent), maxModeSwitches)
		}
		if err := checkDistribution(op, s.set.distribution, mode); err != nil {
			return err
		}
		s.set.modeSwitches = append(recent, now)
		s.set.mode, s.set.warmMiBps = mode, warmMiBps
		return nil
	})
}

// UpdateWarmThroughput sets the warm throughput of an ON_DEMAND stream
// (UpdateStreamWarmThroughput), in MiB/s.
func (s *Stream) UpdateWarmThroughput(ctx context.Context, mibps int) error {
	const op = "UpdateStreamWarmThroughput"
	return s.update(ctx, op, func() error {
		if err := checkWarmThroughput(op, mibps, s.set.mode); err != nil {
			return err
		}
		s.set.warmMiBps = mibps
		return nil
	})
}

// UpdateRecordDistribution sets how the stream routes records
// (UpdateStreamRecordDistributionStrategy).
func (s *Stream) UpdateRecordDistribution(ctx context.Context, d RecordDistribution) error {
	const op = "UpdateStreamRecordDistributionStrategy"
	return s.update(ctx, op, func() error {
		if err := checkDistribution(op, d, s.set.mode); err != nil {
			return err
		}
		s.set.distribution = d
		s.autoRoute.Store(d == DistributionAuto)
		return nil
	})
}

// autoHashKey returns the hash key of the next record of an AUTO stream:
// successive records land evenly over the hash space.
func (s *Stream) autoHashKey() HashKey {
	return HashKey{hi: s.autoSeq.Add(1) * 0x9E3779B97F4A7C15} // the golden ratio spreads a counter evenly
}

// UpdateMaxRecordSize sets the largest record the stream takes
// (UpdateMaxRecordSize), from 1 MiB to 10 MiB as Kinesis allows. The
// largest PutRecords request grows with it when it was the default.
func (s *Stream) UpdateMaxRecordSize(ctx context.Context, bytes int) error {
	const op = "UpdateMaxRecordSize"
	if bytes < minMaxRecordSize || bytes > maxRecordSizeLimit {
		return errorf(op, ErrValidation, "maximum record size %d bytes must be between %d and %d", bytes, minMaxRecordSize, maxRecordSizeLimit)
	}
	return s.update(ctx, op, func() error {
		s.maxRecordSize.Store(int64(bytes))
		if s.cfg.defaultRequestSize {
			s.maxRequestSize.Store(int64(MaxPutRecordsSize(bytes)))
		}
		for _, sh := range s.shards.Load().all {
			sh.limits.setMaxRecordSize(s.cfg.limits, bytes)
		}
		return nil
	})
}

// checkPolicy is the one validator of a resource policy: a JSON object of
// at most 20 KiB.
func checkPolicy(op, policy string) *Error {
	var doc map[string]any
	switch {
	case len(policy) < 1 || len(policy) > maxPolicyLen:
		return errorf(op, ErrValidation, "the policy is %d bytes; it must be 1 to %d", len(policy), maxPolicyLen)
	case json.Unmarshal([]byte(policy), &doc) != nil:
		return errorf(op, ErrInvalidArgument, "the policy %s is not a JSON object", clip(policy, 60))
	}
	return nil
}

// PutResourcePolicy attaches a resource policy (a JSON document) to a
// stream or a registered consumer, named by its ARN, replacing any it had.
// runnel stores and returns it; it grants or denies nothing.
func (c *Cluster) PutResourcePolicy(ctx context.Context, arn, policy string) error {
	const op = "PutResourcePolicy"
	if err := checkPolicy(op, policy); err != nil {
		return err
	}
	return c.withResource(ctx, op, arn, true, func(r resource) error {
		*r.policy = policy
		return nil
	})
}

// ResourcePolicy returns the resource policy of a stream or consumer, "{}"
// when it has none (as GetResourcePolicy answers).
func (c *Cluster) ResourcePolicy(ctx context.Context, arn string) (string, error) {
	var out string
	err := c.withResource(ctx, "GetResourcePolicy", arn, false, func(r resource) error {
		out = cmp.Or(*r.policy, "{}")
		return nil
	})
	return out, err
}

// DeleteResourcePolicy removes the resource policy of a stream or
// consumer. One that has none is an ErrResourceNotFound.
func (c *Cluster) DeleteResourcePolicy(ctx context.Context, arn string) error {
	const op = "DeleteResourcePolicy"
	return c.withResource(ctx, op, arn, true, func(r resource) error {
		if *r.policy == "" {
			return errorf(op, ErrResourceNotFound, "%s has no resource policy", r.name)
		}
		*r.policy = ""
		return nil
	})
}

// resource is what a stream and a consumer have alike: a resource policy
// and tags.
type resource struct {
	name   string // "stream orders", "consumer app of stream orders"
	policy *string
	tags   *map[string]string
}

// withResource runs fn on the stream or consumer arn names, under the lock
// that guards its policy and tags.
func (c *Cluster) withResource(ctx context.Context, op, arn string, change bool, fn func(resource) error) error {
	streamName, consumer, err := parseResourceARN(op, arn)
	if err != nil {
		return err
	}
	s, serr := c.Stream(streamName)
	if serr != nil {
		return errorf(op, ErrResourceNotFound, "stream %s of %s does not exist", streamName, clip(arn, 300))
	}
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	if consumer == "" {
		if arn != s.arn { // another region's or account's
			return errorf(op, ErrResourceNotFound, "%s does not exist", clip(arn, 300))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := fn(resource{name: "stream " + s.name, policy: &s.set.policy, tags: &s.tags}); err != nil || !change {
			return err
		}
		return s.persistLocked(op)
	}
	s.cmu.Lock()
	sc, ok := s.consumers[consumer]
	if !ok || sc.desc.ConsumerARN != arn {
		s.cmu.Unlock()
		return errorf(op, ErrResourceNotFound, "consumer %s does not exist", clip(arn, 300))
	}
	ferr := fn(resource{name: "consumer " + consumer + " of stream " + s.name, policy: &sc.policy, tags: &sc.tags})
	s.cmu.Unlock()
	if ferr != nil || !change {
		return ferr
	}
	return s.persist(op)
}

// streamARNPattern is the shape of a stream ARN.
var streamARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kinesis:[^:/]*:[^:/]*:stream/([a-zA-Z0-9_.-]{1,128})$`)

// parseResourceARN returns the stream, and the consumer if any, that a
// resource ARN names.
func parseResourceARN(op, arn string) (streamName, consumerName string, err *Error) {
	if m := streamARNPattern.FindStringSubmatch(arn); m != nil {
		return m[1], "", nil
	}
	if m := consumerARNPattern.FindStringSubmatch(arn); m != nil {
		return m[1], m[2], nil
	}
	return "", "", errorf(op, ErrValidation, "resource ARN %s is neither a stream's nor a consumer's ARN", clip(arn, 300))
}
