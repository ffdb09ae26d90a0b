package runnel

import (
	"time"

	"golang.org/x/time/rate"
)

// Limits are the per-shard throughput limits of a stream. A zero field means
// no limit. KinesisLimits() returns the defaults; Unlimited() switches them all off
// for raw speed.
type Limits struct {
	// WriteBytesPerSecond limits data + partition-key bytes written to a
	// shard (Kinesis: 1 MiB/s).
	WriteBytesPerSecond int
	// WriteRecordsPerSecond limits records written to a shard (Kinesis: 1,000/s).
	WriteRecordsPerSecond int
	// ReadCallsPerSecond limits GetRecords calls on a shard (Kinesis: 5/s).
	ReadCallsPerSecond int
	// ReadBytesPerSecond limits bytes read from a shard by GetRecords
	// (Kinesis: 2 MiB/s). As in Kinesis one call may read more than this
	// (up to 10 MiB); the read then throttles the following calls for as
	// long as the limit takes to cover it: 5 s after a 10 MiB read at 2 MiB/s.
	ReadBytesPerSecond int
}

// KinesisLimits returns Kinesis's per-shard limits, the default of every
// stream.
func KinesisLimits() Limits {
	return Limits{
		WriteBytesPerSecond:   1 << 20,
		WriteRecordsPerSecond: 1000,
		ReadCallsPerSecond:    5,
		ReadBytesPerSecond:    2 << 20,
	}
}

// Unlimited returns limits that switch every per-shard limit off.
func Unlimited() Limits { return Limits{} }

// shardLimiters are one shard's token buckets; nil buckets do not limit.
//
// Read bytes are a byteBudget shared by the shard's polling readers.
type shardLimiters struct {
	writeBytes, writeRecords, readCalls *rate.Limiter
	readBytes                           byteBudget
}

// byteBudget is a bucket of one second's worth of bytes, kept as the time
// empty at which it runs dry: a read may start while now ≥ empty. A read
// larger than the bucket is charged from empty, so a 10 MiB read at
// 2 MiB/s blocks the reads after it for 5 s, as Kinesis documents. A
// perSecond of 0 does not limit.
type byteBudget struct {
	perSecond int
	empty     time.Time
}

// wait returns how long until a read may start (0: now).
func (b *byteBudget) wait(now time.Time) time.Duration {
	if b.perSecond <= 0 || !now.Before(b.empty) {
		return 0
	}
	return b.empty.Sub(now)
}

// charge records a read of n bytes at now.
func (b *byteBudget) charge(now time.Time, n int) {
	if b.perSecond <= 0 || n == 0 {
		return
	}
	cost := time.Duration(float64(n) / float64(b.perSecond) * float64(time.Second))
	from := now.Add(-time.Second) // a full bucket
	if cost > time.Second {
		from = now // a read above the budget is paid from empty
	}
	if b.empty.After(from) {
		from = b.empty
	}
	b.empty = from.Add(cost)
}

// setMaxRecordSize lets a record of the new maximum size fit in the write
// bucket once.
func (l *shardLimiters) setMaxRecordSize(lim Limits, maxRecordSize int) {
	if l.writeBytes != nil {
		l.writeBytes.SetBurst(max(lim.WriteBytesPerSecond, maxRecordSize))
	}
}

func newShardLimiters(l Limits, maxRecordSize int) shardLimiters {
	bucket := func(perSecond, burst int) *rate.Limiter {
		if perSecond <= 0 {
			return nil
		}
		return rate.NewLimiter(rate.Limit(perSecond), burst) // starts full
	}
	return shardLimiters{
		// A record larger than a second's budget (possible with 10 MiB
		// records) must still fit in the bucket once.
		writeBytes:   bucket(l.WriteBytesPerSecond, max(l.WriteBytesPerSecond, maxRecordSize)),
		writeRecords: bucket(l.WriteRecordsPerSecond, l.WriteRecordsPerSecond),
		readCalls:    bucket(l.ReadCallsPerSecond, l.ReadCallsPerSecond),

		readBytes: byteBudget{perSecond: l.ReadBytesPerSecond},
	}
}

// allowWrite takes one record of n bytes from both write buckets, or nothing.
func (l *shardLimiters) allowWrite(now time.Time, n int) bool {
	if l.writeBytes == nil && l.writeRecords == nil {
		return true
	}
	if l.writeBytes != nil && l.writeBytes.TokensAt(now) < float64(n) {
		return false
	}
	if l.writeRecords != nil && !l.writeRecords.AllowN(now, 1) {
		return false
	}
	if l.writeBytes != nil {
		l.writeBytes.AllowN(now, n)
	}
	return true
}

// allowRead reports whether a GetRecords call may run now: earlier reads
// are paid for and a call token is available.
func (l *shardLimiters) allowRead(now time.Time) bool {
	if l.readBytes.wait(now) > 0 {
		return false
	}
	return l.readCalls == nil || l.readCalls.AllowN(now, 1)
}

// writeDelay returns how long until the write buckets allow one record of n
// bytes (at least a millisecond).
func (l *shardLimiters) writeDelay(now time.Time, n int) time.Duration {
	d := time.Millisecond
	wait := func(lim *rate.Limiter, need float64) {
		if lim == nil {
			return
		}
		if missing := need - lim.TokensAt(now); missing > 0 {
			d = max(d, time.Duration(missing/float64(lim.Limit())*float64(time.Second)))
		}
	}
	wait(l.writeBytes, float64(n))
	wait(l.writeRecords, 1)
	return d
}
