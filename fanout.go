package runnel

import (
	"cmp"
	"context"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Enhanced fan-out: consumers registered with a stream, each with its own
// read budget per shard, to which SubscribeToShard pushes records as they
// are written.

// StreamConsumerStatus is the state of a registered stream consumer.
type StreamConsumerStatus string

// The states of a registered consumer. It is CREATING for
// WithConsumerStatusDelay after RegisterStreamConsumer (not at all by
// default), then ACTIVE; DeregisterStreamConsumer makes it DELETING for the
// same delay, and then it is gone.
const (
	StreamConsumerCreating StreamConsumerStatus = "CREATING"
	StreamConsumerActive   StreamConsumerStatus = "ACTIVE"
	StreamConsumerDeleting StreamConsumerStatus = "DELETING"
)

// StreamConsumer describes a consumer registered with a stream for enhanced
// fan-out, as DescribeStreamConsumer reports it.
type StreamConsumer struct {
	// ConsumerName is unique among the stream's consumers.
	ConsumerName string
	// ConsumerARN is the stream's ARN followed by
	// "/consumer/<name>:<creation time in Unix seconds>". It names this
	// registration: a consumer registered again under the same name in a
	// later second has another ARN.
	ConsumerARN string
	// ConsumerStatus is CREATING, ACTIVE or DELETING.
	ConsumerStatus StreamConsumerStatus
	// ConsumerCreationTimestamp is when it was registered.
	ConsumerCreationTimestamp time.Time
	// StreamARN is the stream's ARN.
	StreamARN string
}

// Kinesis's enhanced fan-out rules.
const (
	// maxCreatingConsumers is the most consumers CREATING at once.
	maxCreatingConsumers = 5
	// takeoverAfter is how long a subscription holds its consumer's shard
	// against a new SubscribeToShard call.
	takeoverAfter = 5 * time.Second
	// heartbeatEvery is the longest a subscription goes without an event.
	heartbeatEvery = 5 * time.Second
)

// ErrSubscriptionEnded is returned by ShardSubscription.Next once the
// subscription has lasted its time (5 minutes by default; see
// WithSubscriptionDuration): subscribe again, AfterSequenceNumber the last
// event's ContinuationSequenceNumber, to go on with no gap and no
// duplicate. It is not a Kinesis error (the Kinesis event stream just
// ends); it is retryable.
var ErrSubscriptionEnded error = &runnelError{text: "the subscription has ended: subscribe again after its last continuation sequence number", isRetryable: true}

// consumerARNPattern is the shape of the consumer ARNs runnel issues:
// stream ARN, "/consumer/", name, ":", creation time in Unix seconds.
var consumerARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kinesis:[^:/]*:[^:/]*:stream/([a-zA-Z0-9_.-]{1,128})/consumer/([a-zA-Z0-9_.-]{1,128}):[0-9]{1,19}$`)

// ParseConsumerARN returns the stream name and the consumer name that a
// consumer ARN holds, for front ends that get a consumer by its ARN alone
// (DescribeStreamConsumer, SubscribeToShard). An ARN that is not in the
// shape RegisterStreamConsumer issues is an ErrValidation naming it.
func ParseConsumerARN(arn string) (streamName, consumerName string, err error) {
	streamName, consumerName, e := parseConsumerARN("ParseConsumerARN", arn)
	if e != nil {
		return "", "", e
	}
	return streamName, consumerName, nil
}

// parseConsumerARN is ParseConsumerARN for operation op.
func parseConsumerARN(op, arn string) (streamName, consumerName string, err *Error) {
	m := consumerARNPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", "", errorf(op, ErrValidation, "consumer ARN %s is not of the form arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<seconds>", clip(arn, 300))
	}
	return m[1], m[2], nil
}

// streamConsumer is a registered consumer. Its fields are guarded by the
// stream's cmu.
type streamConsumer struct {
	desc   StreamConsumer
	shards map[uint64]*consumerShard // created on a consumer's first subscription to a shard
	policy string                    // its resource policy (settings.go)
	tags   map[string]string         // its tags (tags.go)
}

// consumerShard is what a consumer has of one shard: its subscribe-call
// rate, its live subscription and its read budget, which outlive any one
// subscription.
type consumerShard struct {
	calls   *rate.Limiter // SubscribeToShard calls: 1 a second; guarded by the stream's cmu
	started time.Time     // when the last subscription started; guarded by the stream's cmu
	active  *subscription // the live subscription, if any; guarded by the stream's cmu
	mu      sync.Mutex    // a leaf lock: taken alone
	budget  byteBudget    // guarded by mu
}

// budgetWait returns how long until the consumer may read the shard again.
func (cs *consumerShard) budgetWait(now time.Time) time.Duration {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.budget.wait(now)
}

// charge takes n bytes read at now from the budget.
func (cs *consumerShard) charge(now time.Time, n int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.budget.charge(now, n)
}

// RegisterStreamConsumerInput is a RegisterStreamConsumer request.
type RegisterStreamConsumerInput struct {
	// ConsumerName is unique among the stream's consumers: 1 to 128
	// characters of a-z, A-Z, 0-9, '_', '.' and '-'. Required.
	ConsumerName string
	// Tags are the consumer's tags (at most MaxTagsPerStream), as
	// TagResource would add them.
	Tags map[string]string
}

// RegisterStreamConsumer registers a consumer for enhanced fan-out and
// returns it, ACTIVE at once unless WithConsumerStatusDelay makes it
// CREATING first. A name in use (in any status) is an ErrResourceInUse;
// more consumers than WithConsumerLimit allows (20 by default), or a sixth
// one CREATING at once, is an ErrLimitExceeded.
func (s *Stream) RegisterStreamConsumer(ctx context.Context, in RegisterStreamConsumerInput) (StreamConsumer, error) {
	const op = "RegisterStreamConsumer"
	c, err := s.registerStreamConsumer(ctx, op, in)
	if err != nil {
		return c, err
	}
	return c, s.persist(op)
}

// registerStreamConsumer is RegisterStreamConsumer's work under cmu.
func (s *Stream) registerStreamConsumer(ctx context.Context, op string, in RegisterStreamConsumerInput) (StreamConsumer, error) {
	name := in.ConsumerName
	if err := validateName(op, "consumer", name); err != nil {
		return StreamConsumer{}, err
	}
	var tags map[string]string
	if err := addTags(op, "consumer "+name, &tags, in.Tags); err != nil {
		return StreamConsumer{}, err
	}
	if err := s.begin(ctx, op, noShard); err != nil {
		return StreamConsumer{}, err
	}
	now := s.now()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if err := s.live(op); err != nil { // DeleteStream marks the stream under cmu
		return StreamConsumer{}, err
	}
	if _, ok := s.consumers[name]; ok {
		return StreamConsumer{}, errorf(op, ErrResourceInUse, "consumer %s of stream %s already exists", name, s.name)
	}
	if len(s.consumers) >= s.cfg.consumerLimit {
		return StreamConsumer{}, errorf(op, ErrLimitExceeded, "stream %s has %d consumers, its limit; consumer %s would be one more", s.name, len(s.consumers), name)
	}
	creating := 0
	for _, c := range s.consumers {
		if c.desc.ConsumerStatus == StreamConsumerCreating {
			creating++
		}
	}
	if creating >= maxCreatingConsumers {
		return StreamConsumer{}, errorf(op, ErrLimitExceeded, "stream %s has %d consumers CREATING, the most at once; register %s when one is ACTIVE", s.name, creating, name)
	}
	// The ARN names this registration: one registered again under the same
	// name within a second (routine in a synctest bubble) gets a later one.
	secs := max(now.Unix(), s.arnSeconds[name]+1)
	for n, last := range s.arnSeconds {
		if last < now.Unix() {
			delete(s.arnSeconds, n) // only this second's ARNs need remembering
		}
	}
	s.arnSeconds[name] = secs
	c := &streamConsumer{
		desc: StreamConsumer{
			ConsumerName:              name,
			ConsumerARN:               s.arn + "/consumer/" + name + ":" + strconv.FormatInt(secs, 10),
			ConsumerStatus:            StreamConsumerActive,
			ConsumerCreationTimestamp: now,
			StreamARN:                 s.arn,
		},
		shards: make(map[uint64]*consumerShard),
		tags:   tags,
	}
	if d := s.cfg.consumerDelay; d > 0 {
		c.desc.ConsumerStatus = StreamConsumerCreating
		err := s.cluster.after(op, d, func() {
			s.cmu.Lock()
			defer s.cmu.Unlock()
			if c.desc.ConsumerStatus == StreamConsumerCreating {
				c.desc.ConsumerStatus = StreamConsumerActive
			}
		})
		if err != nil {
			return StreamConsumer{}, err
		}
	}
	s.consumers[name] = c
	return c.desc, nil
}

// StreamConsumerRef names a registered consumer, as DescribeStreamConsumer
// and DeregisterStreamConsumer take it: by ConsumerName, or by ConsumerARN
// (which names one registration: an ARN of a consumer since deregistered
// is not found, even if the name has been registered again). When both
// are given they must agree.
type StreamConsumerRef struct {
	// ConsumerName is the consumer's name.
	ConsumerName string
	// ConsumerARN is the consumer's ARN.
	ConsumerARN string
}

// DescribeStreamConsumer returns a registered consumer, or
// ErrResourceNotFound.
func (s *Stream) DescribeStreamConsumer(ctx context.Context, in StreamConsumerRef) (StreamConsumer, error) {
	const op = "DescribeStreamConsumer"
	if err := s.begin(ctx, op, noShard); err != nil {
		return StreamConsumer{}, err
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	c, err := s.consumerLocked(op, in)
	if err != nil {
		return StreamConsumer{}, err
	}
	return c.desc, nil
}

// ListStreamConsumers returns the stream's registered consumers (in every
// status), oldest first. Kinesis pages this list; with at most
// WithConsumerLimit consumers, runnel returns it whole.
func (s *Stream) ListStreamConsumers(ctx context.Context) ([]StreamConsumer, error) {
	if err := s.begin(ctx, "ListStreamConsumers", noShard); err != nil {
		return nil, err
	}
	s.cmu.Lock()
	out := make([]StreamConsumer, 0, len(s.consumers))
	for _, c := range s.consumers {
		out = append(out, c.desc)
	}
	s.cmu.Unlock()
	slices.SortFunc(out, func(a, b StreamConsumer) int {
		if c := a.ConsumerCreationTimestamp.Compare(b.ConsumerCreationTimestamp); c != 0 {
			return c
		}
		return cmp.Compare(a.ConsumerName, b.ConsumerName)
	})
	return out, nil
}

// DeregisterStreamConsumer deregisters a consumer: it is DELETING for
// WithConsumerStatusDelay (gone at once by default), and its subscriptions
// end with ErrResourceNotFound. A consumer DELETING already is an
// ErrResourceInUse.
func (s *Stream) DeregisterStreamConsumer(ctx context.Context, in StreamConsumerRef) error {
	const op = "DeregisterStreamConsumer"
	if err := s.deregisterStreamConsumer(ctx, op, in); err != nil {
		return err
	}
	return s.persist(op)
}

// deregisterStreamConsumer is DeregisterStreamConsumer's work under cmu.
func (s *Stream) deregisterStreamConsumer(ctx context.Context, op string, in StreamConsumerRef) error {
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	c, err := s.consumerLocked(op, in)
	if err != nil {
		return err
	}
	name := c.desc.ConsumerName
	if c.desc.ConsumerStatus == StreamConsumerDeleting {
		return errorf(op, ErrResourceInUse, "consumer %s of stream %s is being deleted already", name, s.name)
	}
	c.desc.ConsumerStatus = StreamConsumerDeleting
	for _, cs := range c.shards {
		if sub := cs.active; sub != nil {
			sub.finishLocked(errorf("SubscribeToShard", ErrResourceNotFound, "consumer %s of stream %s was deregistered", name, s.name))
		}
	}
	d := s.cfg.consumerDelay
	if d == 0 {
		delete(s.consumers, name)
		return nil
	}
	return s.cluster.after(op, d, func() {
		s.cmu.Lock()
		defer s.cmu.Unlock()
		if s.consumers[name] == c {
			delete(s.consumers, name)
		}
	})
}

// consumerLocked returns the consumer that ref names, or
// ErrResourceNotFound. Called with cmu held.
func (s *Stream) consumerLocked(op string, ref StreamConsumerRef) (*streamConsumer, error) {
	name := ref.ConsumerName
	if ref.ConsumerARN != "" {
		stream, byARN, err := parseConsumerARN(op, ref.ConsumerARN)
		switch {
		case err != nil:
			return nil, err
		case name != "" && name != byARN:
			return nil, errorf(op, ErrInvalidArgument, "consumer name %.140q and consumer ARN %s name different consumers", name, ref.ConsumerARN)
		case stream != s.name:
			return nil, errorf(op, ErrResourceNotFound, "consumer %s is not registered with stream %s", ref.ConsumerARN, s.name)
		}
		name = byARN
	} else if err := validateName(op, "consumer", name); err != nil {
		return nil, err
	}
	c, ok := s.consumers[name]
	if !ok || (ref.ConsumerARN != "" && c.desc.ConsumerARN != ref.ConsumerARN) {
		return nil, errorf(op, ErrResourceNotFound, "consumer %s is not registered with stream %s", cmp.Or(ref.ConsumerARN, name), s.name)
	}
	return c, nil
}

// registeredConsumersLocked returns the names of the consumers not
// DELETING (CREATING or ACTIVE), sorted. Called with cmu held.
func (s *Stream) registeredConsumersLocked() []string {
	var names []string
	for name, c := range s.consumers {
		if c.desc.ConsumerStatus != StreamConsumerDeleting {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// signalSubscriptions wakes every live subscription of the stream, so that
// it notices the stream has been deleted or closed.
func (s *Stream) signalSubscriptions() {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for _, c := range s.consumers {
		for _, cs := range c.shards {
			if cs.active != nil {
				signal(cs.active.wake)
			}
		}
	}
}

// SubscribeToShardInput is a SubscribeToShard request.
type SubscribeToShardInput struct {
	// ConsumerARN is the registered consumer that subscribes (see
	// RegisterStreamConsumer). Required.
	ConsumerARN string
	// ShardID is the shard to subscribe to. Required.
	ShardID string
	// StartingPosition is where the subscription starts: any of the five
	// iterator types. To continue a subscription that ended, use
	// AfterSequenceNumber with its last ContinuationSequenceNumber.
	StartingPosition StartingPosition
}

// SubscribeToShardEvent is one event of a subscription.
type SubscribeToShardEvent struct {
	// Records are the records pushed, in order; none in an event that only
	// reports progress. They alias the stream's memory, as GetRecords's do
	// (see Record), and the slice is reused by the next call of Next.
	Records []Record
	// ContinuationSequenceNumber is where the subscription has got to:
	// subscribing AfterSequenceNumber it continues after this event with no
	// gap and no duplicate. It advances even while no records arrive (an
	// idle subscription gets an event at least every 5 s). It is zero in
	// the last event of a closed shard, which has ChildShards instead.
	// While a subscription AtTimestamp in the future has found no record,
	// its idle events' numbers lie before that time: to go on, subscribe
	// AtTimestamp again (ShardReader does).
	ContinuationSequenceNumber SequenceNumber
	// MillisBehindLatest is how far the event is behind the shard's newest
	// record; 0 when caught up.
	MillisBehindLatest int64
	// ChildShards are set in the last event of a closed shard: the shards
	// that continue it.
	ChildShards []ChildShard
}

// SubscribeToShard subscribes a registered consumer to a shard: records
// are pushed to the subscription as they are written, from the starting
// position on. Writers wake a waiting subscription directly; nothing polls.
// Read its events with Next, and Close it when done; it also ends when ctx
// ends.
//
// Each consumer reads each shard within its own budget of the stream's
// Limits.ReadBytesPerSecond (2 MiB/s by default), independent of polling
// readers and of other consumers: a subscription over budget waits, it is
// not throttled. A subscription that falls behind (its caller is slow)
// blocks nobody and loses nothing: it catches up from the stored records,
// as long as they are retained. It holds one buffer of at most 10,000
// records, which alias the stream's memory.
//
// Kinesis's rules apply. The consumer must be ACTIVE (ErrResourceInUse
// otherwise). A consumer may call SubscribeToShard on a shard once a
// second (ErrLimitExceeded). A new subscription of one consumer to one
// shard within 5 s of the last that started is an ErrResourceInUse, also
// when that one has ended since; 5 s or later it takes over, and the old
// one's Next fails with ErrResourceInUse. A subscription lasts
// WithSubscriptionDuration (5 minutes), after which Next returns
// ErrSubscriptionEnded. After the last event of a closed shard Next returns
// ErrShardEnded; when the consumer is deregistered, ErrResourceNotFound.
func (s *Stream) SubscribeToShard(ctx context.Context, in SubscribeToShardInput) (ShardSubscription, error) {
	const op = "SubscribeToShard"
	if err := s.ready(ctx, op); err != nil {
		return nil, err
	}
	if _, _, err := parseConsumerARN(op, in.ConsumerARN); err != nil {
		return nil, err
	}
	sh, err := s.shardByID(op, in.ShardID)
	if err != nil {
		return nil, err
	}
	if err := s.begin(ctx, op, sh.num); err != nil {
		return nil, err
	}
	pos, seek, atMs, err := s.startAt(op, sh, in.StartingPosition)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if seek && atMs <= now.UnixMilli() {
		// Records arriving from now on arrive after the time: resolve it once.
		if pos, err = sh.positionAt(atMs); err != nil {
			return nil, asError(op, "", err)
		}
		seek = false
	}
	sub := &subscription{
		s: s, sh: sh, consumer: in.ConsumerARN, started: now, ends: now.Add(s.cfg.subscriptionTTL),
		pos: pos, seek: seek, atMs: atMs, wake: make(chan struct{}, 1),
		maxBytes: MaxGetRecordsBytes, timer: time.NewTimer(time.Hour),
	}
	sub.timer.Stop()
	if b := s.cfg.limits.ReadBytesPerSecond; b > 0 {
		sub.maxBytes = b
	}
	stop := context.AfterFunc(ctx, func() { sub.finish(ctxError(op, ctx.Err())) })
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if err := sub.endErr.Load(); err != nil {
		return nil, err // ctx ended meanwhile: take nothing over
	}
	if err := ctx.Err(); err != nil { // ended, and the AfterFunc waits for cmu
		stop()
		return nil, ctxError(op, err)
	}
	cs, err := s.subscribeLocked(op, in.ConsumerARN, sh, now)
	if err != nil {
		stop()
		return nil, err
	}
	sub.cs, sub.stopCtx = cs, stop
	cs.active = sub
	return sub, nil
}

// subscribeLocked applies the subscription rules to a consumer's new
// subscription to sh at now, ending the one it takes over, and returns the
// consumer's state of the shard. Called with cmu held.
func (s *Stream) subscribeLocked(op, arn string, sh *shardState, now time.Time) (*consumerShard, error) {
	c, err := s.consumerLocked(op, StreamConsumerRef{ConsumerARN: arn})
	if err != nil {
		return nil, err
	}
	name := c.desc.ConsumerName
	if st := c.desc.ConsumerStatus; st != StreamConsumerActive {
		return nil, errorf(op, ErrResourceInUse, "consumer %s of stream %s is %s, not ACTIVE", name, s.name, st)
	}
	cs := c.shards[sh.num]
	if cs == nil {
		cs = &consumerShard{calls: rate.NewLimiter(1, 1), budget: byteBudget{perSecond: s.cfg.limits.ReadBytesPerSecond}}
		c.shards[sh.num] = cs
	}
	if !cs.calls.AllowN(now, 1) {
		return nil, errorf(op, ErrLimitExceeded, "consumer %s subscribed to shard %s less than a second ago; the limit is 1 call a second", name, sh.id)
	}
	if age := now.Sub(cs.started); !cs.started.IsZero() && age < takeoverAfter {
		return nil, errorf(op, ErrResourceInUse, "consumer %s subscribed to shard %s %v ago; a new subscription may start %v after the last", name, sh.id, age, takeoverAfter)
	}
	if old := cs.active; old != nil {
		old.finishLocked(errorf(op, ErrResourceInUse, "a newer subscription of consumer %s to shard %s took over", name, sh.id))
	}
	cs.started = now
	return cs, nil
}

// subscription is a *Stream's ShardSubscription. Next runs on one
// goroutine at a time; the end of the subscription (endErr) may be set
// from any: a takeover, a deregistration, Close, ctx.
type subscription struct {
	s        *Stream
	sh       *shardState
	cs       *consumerShard
	consumer string // the consumer's ARN
	started  time.Time
	ends     time.Time
	maxBytes int // the most bytes of one event
	wake     chan struct{}
	stopCtx  func() bool
	endErr   atomic.Pointer[Error] // why it ended; nil while live

	// Next's own state.
	pos       uint64 // the next counter to push
	seek      bool   // pos is not known yet: seek to atMs at each read
	atMs      int64
	lastEvent time.Time
	buf       []Record // the records of the last event
	spans     []span   // readPush's scratch
	timer     *time.Timer
}

// Next returns the subscription's next event. It waits until records
// arrive or, when none do, returns an event with no records at least every
// 5 s (the first one at once), so that ContinuationSequenceNumber keeps
// advancing. It fails with ctx's error when ctx ends (the subscription
// stays usable), and with the reason once the subscription has ended (see
// SubscribeToShard). The event's Records are valid until the next call.
func (sub *subscription) Next(ctx context.Context) (SubscribeToShardEvent, error) {
	const op = "SubscribeToShard"
	for {
		select {
		case <-sub.wake: // a signal from before this pass: the checks and the read below see its cause
		default:
		}
		if err := sub.endErr.Load(); err != nil {
			return SubscribeToShardEvent{}, err
		}
		if err := sub.s.live(op); err != nil {
			sub.finish(asError(op, "", err))
			continue
		}
		if err := ctx.Err(); err != nil {
			return SubscribeToShardEvent{}, ctxError(op, err)
		}
		jumped := sub.s.cluster.advanced() // before the clock is read, so that no jump is missed
		now := sub.s.now()
		if !now.Before(sub.ends) {
			sub.finish(errorf(op, ErrSubscriptionEnded, "the subscription of %s to shard %s lasted its %v", sub.consumer, sub.sh.id, sub.s.cfg.subscriptionTTL))
			continue
		}
		if d := sub.cs.budgetWait(now); d > 0 {
			if err := sub.wait(ctx, jumped, now, earlier(now.Add(d), sub.ends)); err != nil {
				return SubscribeToShardEvent{}, ctxError(op, err)
			}
			continue
		}
		beat := sub.lastEvent.Add(heartbeatEvery)
		res, bytes := sub.sh.readPush(sub, sub.buf[:0], now, sub.s.cutoffMs(now), !now.Before(beat))
		sub.buf = res.records
		if res.gone {
			sub.finish(errorf(op, ErrResourceNotFound, "shard %s of stream %s has expired", sub.sh.id, sub.s.name))
			continue
		}
		if res.err != nil && len(sub.buf) == 0 {
			sub.finish(asError(op, "", res.err))
			continue
		}
		if !res.cont.IsZero() {
			sub.pos, sub.lastEvent = res.cont.counter+1, now
			return SubscribeToShardEvent{ContinuationSequenceNumber: res.cont}, nil
		}
		if len(sub.buf) == 0 && res.next > sub.pos && !res.end {
			sub.pos = res.next // a read from disk passed over records that came before its time: go on at once
			continue
		}
		if got := len(sub.buf); got > 0 || res.end {
			sub.cs.charge(now, bytes)
			sub.pos, sub.seek, sub.lastEvent = res.next, false, now
			ev := SubscribeToShardEvent{Records: sub.buf, MillisBehindLatest: res.behindMs}
			if res.end {
				ev.ChildShards = childShards(res.children)
				sub.finish(errorf(op, ErrShardEnded, "shard %s of stream %s", sub.sh.id, sub.s.name))
			} else {
				ev.ContinuationSequenceNumber = sub.buf[got-1].SequenceNumber
			}
			return ev, nil
		}
		if err := sub.wait(ctx, jumped, now, earlier(beat, sub.ends)); err != nil {
			return SubscribeToShardEvent{}, ctxError(op, err)
		}
	}
}

// wait blocks until a writer (or the subscription's end) signals, until
// the time until, until the clock jumps (jumped), or until ctx ends (its
// error).
func (sub *subscription) wait(ctx context.Context, jumped <-chan struct{}, now, until time.Time) error {
	sub.timer.Reset(until.Sub(now))
	defer sub.timer.Stop()
	select {
	case <-sub.wake:
		return nil
	case <-sub.timer.C:
		return nil
	case <-jumped: // until may have come
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the subscription: Next then fails with ErrClosed. It never
// fails and may be called more than once, from any goroutine.
func (sub *subscription) Close() error {
	sub.finish(errorf("SubscribeToShard", ErrClosed, "the subscription of %s to shard %s is closed", sub.consumer, sub.sh.id))
	return nil
}

// finish ends the subscription with err, unless it has ended already.
func (sub *subscription) finish(err *Error) {
	sub.s.cmu.Lock()
	defer sub.s.cmu.Unlock()
	sub.finishLocked(err)
}

// finishLocked is finish with the stream's cmu held: it records why the
// subscription ended, frees its consumer's shard for a new subscription,
// and wakes Next.
func (sub *subscription) finishLocked(err *Error) {
	if !sub.endErr.CompareAndSwap(nil, err) {
		return
	}
	if sub.cs != nil && sub.cs.active == sub {
		sub.cs.active = nil
	}
	if sub.stopCtx != nil {
		sub.stopCtx()
	}
	sub.sh.unwatch(sub.wake)
	signal(sub.wake)
}

// earlier returns the earlier of two times.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
