//go:build !unix

package runnel

import "time"

// blockFor blocks for d, as an fsync does.
func blockFor(d time.Duration) { time.Sleep(d) }
