//go:build unix

package runnel

import (
	"syscall"
	"time"
)

// blockFor blocks the calling thread in the kernel for d, as an fsync
// does: time.Sleep overshoots short durations by a millisecond here.
func blockFor(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
