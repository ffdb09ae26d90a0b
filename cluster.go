package runnel

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Cluster is a set of named streams: the in-process equivalent of one AWS
// account in one region. It owns the background sweep that releases expired
// records. All methods are safe for concurrent use.
type Cluster struct {
	cfg clusterConfig

	mu         sync.Mutex
	streams    map[string]*Stream
	openShards int // open shards of all streams, counted against the quota
	nextID     uint64
	closed     bool

	faults  faultSet
	dirLock *fileLock // a durable cluster's hold on its data directory

	stop chan struct{}
	wg   sync.WaitGroup
}

type clusterConfig struct {
	region, account string
	shardQuota      int
	streamQuota     int // 0: no limit
	sweepInterval   time.Duration
	logger          *slog.Logger
	streamDefaults  []StreamOption
	clock           Clock

	// A durable cluster's (Open's): catalog.go.
	dir          string
	sync         SyncPolicy
	segmentBytes int64
	cacheBytes   int64
	fs           fileSystem
}

// ClusterOption configures a Cluster.
type ClusterOption func(*clusterConfig)

// WithRegion sets the region named in ARNs. Default "us-east-1".
func WithRegion(region string) ClusterOption {
	return func(c *clusterConfig) { c.region = region }
}

// WithAccountID sets the account id named in ARNs. Default "000000000000".
func WithAccountID(id string) ClusterOption {
	return func(c *clusterConfig) { c.account = id }
}

// WithShardQuota sets the most open shards all streams may have together
// (Kinesis's account shard quota). Default 20,000, the quota of the largest
// regions; values below 1 keep the default.
func WithShardQuota(n int) ClusterOption {
	return func(c *clusterConfig) {
		if n > 0 {
			c.shardQuota = n
		}
	}
}

// WithStreamQuota sets the most streams the cluster holds at once (Kinesis
// limits on-demand streams per account, 50 by default). Default: no limit;
// values below 1 keep it.
func WithStreamQuota(n int) ClusterOption {
	return func(c *clusterConfig) {
		if n > 0 {
			c.streamQuota = n
		}
	}
}

// WithSweepInterval sets how often the cluster releases the memory of
// expired records in shards that nobody reads or writes (shards that are
// used drop expired records as they go). Default one minute.
func WithSweepInterval(d time.Duration) ClusterOption {
	return func(c *clusterConfig) {
		if d > 0 {
			c.sweepInterval = d
		}
	}
}

// WithLogger makes the cluster log reshards (Info) and throttled reads and
// writes (Debug, one line per call). Default: no logging.
func WithLogger(l *slog.Logger) ClusterOption {
	return func(c *clusterConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithStreamDefaults sets options that apply to every stream the cluster
// creates, before the options given to CreateStream (which override
// them): for a server whose clients cannot pass runnel's options, say
// WithStreamDefaults(WithLimits(Unlimited())).
func WithStreamDefaults(opts ...StreamOption) ClusterOption {
	return func(c *clusterConfig) { c.streamDefaults = append(c.streamDefaults, opts...) }
}

// Clock tells a Cluster the time. Its streams read it for arrival
// timestamps, the ages of iterators and NextTokens, retention, the
// lifetime of subscriptions and the call-rate windows of control
// operations. A Clock must never go back.
type Clock interface {
	Now() time.Time
}

// AdvancingClock is a Clock that can jump ahead of the system clock (a
// test server's "advance the clock"). The cluster's own waits then end
// when the clock reaches their end, not only when the system clock's time
// has passed: status delays, resharding durations, subscription lifetimes
// and heartbeats, and the background sweep.
type AdvancingClock interface {
	Clock
	// Advanced returns a channel that is closed when the clock next jumps
	// ahead.
	Advanced() <-chan struct{}
}

// systemClock is the system's clock (a synctest bubble's inside one).
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// WithClock sets the cluster's clock. Default: the system clock, which is
// the virtual clock inside a testing/synctest bubble (the way to move time
// in a Go test). A clock that runs ahead of the system clock makes records,
// iterators and tokens age at once; an AdvancingClock also ends the
// cluster's waits as it jumps. Injected fault latencies and the Producer's
// and Consumer's timers keep the system clock.
func WithClock(clock Clock) ClusterOption {
	return func(c *clusterConfig) {
		if clock != nil {
			c.clock = clock
		}
	}
}

// Now returns the time on the cluster's clock.
func (c *Cluster) Now() time.Time { return c.cfg.clock.Now() }

// now is the cluster's time.
func (c *Cluster) now() time.Time { return c.cfg.clock.Now() }

// advanced returns a channel closed when the cluster's clock next jumps
// ahead, or nil (never ready) for a clock that does not jump.
func (c *Cluster) advanced() <-chan struct{} {
	if a, ok := c.cfg.clock.(AdvancingClock); ok {
		return a.Advanced()
	}
	return nil
}

// waitUntil waits until the cluster's clock reaches deadline: with a timer
// for what is left, woken when the clock jumps. It returns false if stop
// is closed first.
func (c *Cluster) waitUntil(deadline time.Time, stop <-chan struct{}) bool {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		jumped := c.advanced() // before the clock is read, so that no jump is missed
		left := deadline.Sub(c.now())
		if left <= 0 {
			return true
		}
		if t == nil {
			t = time.NewTimer(left)
		} else {
			t.Reset(left)
		}
		select {
		case <-t.C:
		case <-jumped:
		case <-stop:
			return false
		}
	}
}

// now is the stream's cluster's time.
func (s *Stream) now() time.Time { return s.cluster.now() }

// Region returns the region named in the cluster's ARNs.
func (c *Cluster) Region() string { return c.cfg.region }

// AccountID returns the account id named in the cluster's ARNs.
func (c *Cluster) AccountID() string { return c.cfg.account }

// NewCluster returns an empty cluster and starts its background sweep. Call
// Close to stop it. Inside a testing/synctest bubble the cluster runs on the
// bubble's virtual clock; create and close it inside the bubble. Nil options
// are ignored.
func NewCluster(opts ...ClusterOption) *Cluster {
	cfg := defaultClusterConfig()
	for _, o := range opts {
		if o != nil { // as Open: NewCluster has no error to report it with
			o(&cfg)
		}
	}
	cfg.dir = "" // WithSync and the like are Open's
	c := newCluster(cfg)
	c.wg.Go(c.sweep)
	return c
}

func defaultClusterConfig() clusterConfig {
	return clusterConfig{region: "us-east-1", account: "000000000000", shardQuota: 20_000, sweepInterval: time.Minute,
		logger: slog.New(slog.DiscardHandler), clock: systemClock{}}
}

// newCluster returns a cluster without its sweep.
func newCluster(cfg clusterConfig) *Cluster {
	return &Cluster{cfg: cfg, streams: make(map[string]*Stream), stop: make(chan struct{})}
}

// sweep drops expired records and shards until Close.
func (c *Cluster) sweep() {
	t := time.NewTicker(c.cfg.sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.advanced():
		}
		now := c.now()
		for _, s := range c.snapshot() {
			s.expire(now)
		}
	}
}

func (c *Cluster) snapshot() []*Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Stream, 0, len(c.streams))
	for _, s := range c.streams {
		out = append(out, s)
	}
	return out
}

// Streams returns the cluster's streams, ordered by name. Unlike
// ListStreams it is not a Kinesis operation: injected faults do not apply
// to it, so monitoring (a server's /metrics, Stats) never meets them.
func (c *Cluster) Streams() []*Stream {
	out := c.snapshot()
	slices.SortFunc(out, func(a, b *Stream) int { return strings.Compare(a.name, b.name) })
	return out
}

// Close stops the background sweep and closes every stream: later calls on
// the cluster and its streams return ErrClosed. Close waits for the sweep to
// end and may be called more than once. A durable cluster (Open) then
// writes and fsyncs every record it accepted, records each shard's exact
// counter (so that numbers go on without a gap), and releases its data
// directory; Close returns the first error of that work.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	streams := c.streams
	c.streams = map[string]*Stream{}
	close(c.stop)
	c.mu.Unlock()
	for _, s := range streams {
		s.end(streamClosed)
	}
	c.wg.Wait()
	if c.durable() {
		return c.closeDurable(streams)
	}
	return nil
}

// streamNamePattern is Kinesis's constraint on stream and consumer names.
var streamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// ValidateStreamName checks a stream name against Kinesis's constraint, as
// CreateStream does: 1 to 128 characters of a-z, A-Z, 0-9, '_', '.' and
// '-'. A violation is an ErrValidation naming the name. It is the one
// validator of stream names, for front ends that check a request before
// looking the stream up.
func ValidateStreamName(name string) error {
	if err := validateStreamName("ValidateStreamName", name); err != nil {
		return err
	}
	return nil
}

// ValidateName checks the name of a resource of kind what ("channel") with
// the rule of stream and consumer names, for the resources a front end
// keeps itself. A violation is an ErrValidation naming the name.
func ValidateName(what, name string) error {
	if err := validateName("ValidateName", what, name); err != nil {
		return err
	}
	return nil
}

// validateStreamName checks Kinesis's stream-name constraint.
func validateStreamName(op, name string) *Error { return validateName(op, "stream", name) }

// validateName checks the name of a Kinesis resource (what is "stream" or
// "consumer"): both follow one constraint.
func validateName(op, what, name string) *Error {
	if !streamNamePattern.MatchString(name) {
		return errorf(op, ErrValidation, "%s name %.140q must be 1 to 128 characters of a-z, A-Z, 0-9, '_', '.' and '-'", what, name)
	}
	return nil
}

// maxCreatingStreams is how many streams may be CREATING at once.
const maxCreatingStreams = 5

// CreateStream creates a stream and returns it ACTIVE (Kinesis takes a few
// seconds in CREATING; runnel is done at once, unless
// WithStreamStatusDelay says otherwise). An existing name is an
// ErrResourceInUse; more shards than the quota leaves, or a sixth stream
// CREATING at once, is an ErrLimitExceeded.
func (c *Cluster) CreateStream(ctx context.Context, name string, opts ...StreamOption) (*Stream, error) {
	const op = "CreateStream"
	if err := validateStreamName(op, name); err != nil {
		return nil, err
	}
	cfg, err := newStreamConfig(op, append(slices.Clip(c.cfg.streamDefaults), opts...))
	if err != nil {
		return nil, err
	}
	if err := c.begin(ctx, op, name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClusterClosed(op)
	}
	if _, ok := c.streams[name]; ok {
		return nil, errorf(op, ErrResourceInUse, "stream %s already exists", name)
	}
	if q := c.cfg.streamQuota; q > 0 && len(c.streams) >= q {
		return nil, errorf(op, ErrLimitExceeded, "stream %s would be stream %d; the stream quota is %d", name, len(c.streams)+1, q)
	}
	if cfg.statusDelay > 0 {
		creating := 0
		for _, s := range c.streams {
			if s.state.Load() == streamCreating {
				creating++
			}
		}
		if creating >= maxCreatingStreams {
			return nil, errorf(op, ErrLimitExceeded, "%d streams are CREATING, the most at once; create %s when one is ACTIVE", creating, name)
		}
	}
	if err := c.checkShardQuotaLocked(op, name, cfg.shardCount, true); err != nil {
		return nil, err
	}
	c.nextID++
	s, err := newStream(c, op, c.nextID, name, cfg, c.now())
	if err != nil {
		return nil, err
	}
	if c.durable() {
		// On disk before any writer can find it, so that no record lands
		// in a stream that a crash would forget.
		err := c.writeClusterFile(op, false)
		if err == nil {
			s.mu.Lock()
			err = s.persistLocked(op)
			s.mu.Unlock()
		}
		if err == nil { // the stream's directory in streams/
			if err = syncDir(filepath.Join(c.cfg.dir, "streams")); err != nil {
				err = catalogError(op, filepath.Join(c.cfg.dir, "streams"), "fsync", err)
			}
		}
		if err != nil {
			s.releaseLocked() // not yet shared: no lock needed
			return nil, err
		}
	}
	if d := cfg.statusDelay; d > 0 {
		err := c.afterLocked(op, d, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.state.CompareAndSwap(streamCreating, streamLive) {
				s.status = StatusActive
			}
		})
		if err != nil {
			return nil, err
		}
	}
	c.streams[name] = s
	c.openShards += cfg.shardCount
	s.quotaShards = cfg.shardCount
	return s, nil
}

// Stream returns the stream with the given name, or ErrResourceNotFound.
func (c *Cluster) Stream(name string) (*Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClusterClosed("DescribeStream")
	}
	s, ok := c.streams[name]
	if !ok {
		return nil, errorf("DescribeStream", ErrResourceNotFound, "stream %.140q does not exist", name)
	}
	return s, nil
}

// DeleteStreamOption configures DeleteStream.
type DeleteStreamOption func(*deleteStreamConfig)

type deleteStreamConfig struct{ enforceConsumerDeletion bool }

// WithEnforceConsumerDeletion makes DeleteStream delete a stream that has
// registered consumers, with its consumers (Kinesis's
// EnforceConsumerDeletion).
func WithEnforceConsumerDeletion() DeleteStreamOption {
	return func(c *deleteStreamConfig) { c.enforceConsumerDeletion = true }
}

// DeleteStream deletes a stream and its records. Later calls on its *Stream
// return ErrResourceNotFound, and its subscriptions end; the name may be
// used again at once, or after the stream's WithStreamStatusDelay, while it
// is DELETING. A stream with registered consumers (not DELETING) is an
// ErrResourceInUse unless WithEnforceConsumerDeletion is given.
func (c *Cluster) DeleteStream(ctx context.Context, name string, opts ...DeleteStreamOption) error {
	const op = "DeleteStream"
	var cfg deleteStreamConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := c.begin(ctx, op, name); err != nil {
		return err
	}
	c.mu.Lock()
	s, ok := c.streams[name]
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return errClusterClosed(op)
	case !ok:
		return errorf(op, ErrResourceNotFound, "stream %.140q does not exist", name)
	}
	// The consumers are checked and the stream marked deleted under its
	// cmu, so that no consumer registers in between; under its mu too, so
	// that no reshard or settings change runs meanwhile.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmu.Lock()
	if names := s.registeredConsumersLocked(); len(names) > 0 && !cfg.enforceConsumerDeletion {
		s.cmu.Unlock()
		return errorf(op, ErrResourceInUse, "stream %s has registered consumers (%s); deregister them or enforce consumer deletion", name, strings.Join(names, ", "))
	}
	c.mu.Lock()
	if c.streams[name] != s { // deleted meanwhile, or the cluster closed
		c.mu.Unlock()
		s.cmu.Unlock()
		if err := s.live(op); err != nil {
			return err
		}
		return errClusterClosed(op)
	}
	if st := s.state.Load(); st == streamCreating || st == streamDeleting {
		c.mu.Unlock()
		s.cmu.Unlock()
		return s.live(op) // ResourceInUse: only an ACTIVE stream is deleted
	}
	c.openShards -= s.quotaShards
	s.quotaShards = 0
	if d := s.cfg.statusDelay; d > 0 {
		// DELETING: described, and its name taken, until the delay ends.
		s.state.Store(streamDeleting) // before the timer, which stores streamDeleted
		s.status = StatusDeleting
		err := c.afterLocked(op, d, func() {
			c.mu.Lock()
			if c.streams[name] == s {
				delete(c.streams, name)
			}
			c.mu.Unlock()
			if s.state.CompareAndSwap(streamDeleting, streamDeleted) { // not if the cluster closed meanwhile
				s.wakeAll()
				s.mu.Lock()
				err := s.releaseLocked()
				s.mu.Unlock()
				if err != nil {
					c.cfg.logger.Error("runnel: could not remove a deleted stream's files", "stream", name, "err", err)
				}
			}
		})
		c.mu.Unlock()
		s.cmu.Unlock()
		if err != nil {
			return err // the cluster is closed: so is the stream
		}
		s.wakeAll()
		return s.persistLocked(op) // a restart finishes the deletion
	}
	delete(c.streams, name)
	s.state.Store(streamDeleted)
	c.mu.Unlock()
	s.cmu.Unlock()
	s.end(streamDeleted)
	if err := s.releaseLocked(); err != nil {
		return asError(op, "", err)
	}
	return nil
}

// ListStreams returns the names of all streams in lexical order.
func (c *Cluster) ListStreams(ctx context.Context) ([]string, error) {
	if err := c.begin(ctx, "ListStreams", ""); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClusterClosed("ListStreams")
	}
	names := make([]string, 0, len(c.streams))
	for n := range c.streams {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// ShardQuota returns the quota and how many open shards count against it.
func (c *Cluster) ShardQuota() (quota, used int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.shardQuota, c.openShards
}

// errClusterClosed is the error of operation op on a closed cluster.
func errClusterClosed(op string) *Error { return errorf(op, ErrClosed, "the cluster is closed") }

// checkShardQuotaLocked fails with ErrLimitExceeded if stream would take
// more shards than the quota leaves: all it asks for when created, or more
// when resharded. Called with c.mu held.
func (c *Cluster) checkShardQuotaLocked(op, stream string, more int, creating bool) error {
	left := c.cfg.shardQuota - c.openShards
	if more <= left {
		return nil
	}
	asks := "needs %d more shards"
	if creating {
		asks = "asks for %d shards"
	}
	return errorf(op, ErrLimitExceeded, "stream %s "+asks+" but the shard quota of %d leaves %d", stream, more, c.cfg.shardQuota, left)
}

// begin checks ctx and applies injected faults for a cluster operation.
func (c *Cluster) begin(ctx context.Context, op, stream string) error {
	if err := ctx.Err(); err != nil {
		return ctxError(op, err)
	}
	return c.faults.apply(ctx, op, stream, noShard)
}
