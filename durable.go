package runnel

import (
	"fmt"
	"time"
)

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
// the process or of the machine.
func SyncAlways() SyncPolicy { return SyncPolicy{mode: syncAlways} }

// SyncInterval acknowledges and publishes a put at once and writes and
// fsyncs each shard's new records every d (and sooner when a shard's
// unwritten records pass a few MiB). Loss window: a crash of the process
// or the machine loses at most the records acknowledged in the last d
// before it (plus the time one write and fsync take). d must be positive.
func SyncInterval(d time.Duration) SyncPolicy { return SyncPolicy{mode: syncInterval, interval: d} }

// SyncOS acknowledges and publishes a put at once, writes its records to
// the files as soon as the shard's writer gets to them, and never fsyncs
// (except on Close): the operating system decides when they reach the
// disk. Loss window: a crash of the process loses only the records not yet
// handed to the operating system (those of the last write, typically well
// under a millisecond); a crash of the machine loses what the operating
// system had not written back (on Linux, up to about 30 s by default).
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

var _ fmt.Stringer = SyncPolicy{}
