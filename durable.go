package runnel

import "time"

// SyncPolicy says when a durable cluster's writes reach stable storage, and
// so what a crash can lose. Choose one with SyncAlways, SyncInterval or
// SyncOS and pass it to Open with WithSync.
type SyncPolicy struct {
	mode     syncMode
	interval time.Duration
}

type syncMode uint8

const (
	syncAlways syncMode = iota
	syncInterval
	syncOS
)

// SyncAlways is the default policy: a put returns only once its records
// are on stable storage (written and fsynced), and they become readable at
// the same moment. Concurrent writers to a shard share one fsync (group
// commit). Loss window: none. No acknowledged record is lost by a crash of
// the process or of the machine. A put whose records could not be written
// fails (ErrInternalFailure, naming the file) and its records are never
// readable; the shard goes on taking puts, unless an fsync failed, after
// which its puts fail until the cluster is opened again.
func SyncAlways() SyncPolicy { return SyncPolicy{mode: syncAlways} }

// SyncInterval acknowledges and publishes a put at once and writes and
// fsyncs each shard's new records at most every d (and sooner when a put
// waits). A put waits for the shard's writer only when the shard's
// unwritten records pass 1 MiB (back-pressure: memory stays bounded), and
// so does a put that follows a waiting one. Loss
// window: a crash of the process or the machine loses at most the records
// acknowledged in the last d before it, plus those of the time the shard's
// writer takes to write and fsync one batch (milliseconds, though a loaded
// machine stretches it: the crash tests saw up to 375 ms in all with d =
// 100 ms on a busy 2-core machine). A failed write fails the shard's later puts until the cluster is
// opened again. d must be positive.
func SyncInterval(d time.Duration) SyncPolicy { return SyncPolicy{mode: syncInterval, interval: d} }

// SyncOS acknowledges and publishes a put at once, writes its records to
// the files as soon as the shard's writer gets to them, and never fsyncs
// them (except on Close, and when Open repairs a file): the operating
// system decides when they reach the disk. A put waits for the writer only
// when the shard's unwritten records pass 1 MiB, or when it follows a put
// that waits. Loss window: a crash of
// the process loses only the records not yet handed to the operating
// system (those of the write in flight, typically well under a
// millisecond's); a crash of the machine loses what the operating system
// had not written back (on Linux, up to about 30 s by default). A failed
// write fails the shard's later puts until the cluster is opened again.
func SyncOS() SyncPolicy { return SyncPolicy{mode: syncOS} }

// String names the policy: "always", "interval=1s" or "os".
func (p SyncPolicy) String() string {
	switch p.mode {
	case syncInterval:
		return "interval=" + p.interval.String()
	case syncOS:
		return "os"
	}
	return "always"
}

// check validates the policy.
func (p SyncPolicy) check(op string) *Error {
	if p.mode == syncInterval && p.interval <= 0 {
		return errorf(op, ErrInvalidArgument, "sync interval %v must be positive", p.interval)
	}
	if p.mode > syncOS {
		return errorf(op, ErrInvalidArgument, "sync policy %d is not one of SyncAlways, SyncInterval and SyncOS", p.mode)
	}
	return nil
}

// waits reports whether a put waits for its records to be durable.
func (p SyncPolicy) waits() bool { return p.mode == syncAlways }
