//go:build !unix

package main

import (
	"errors"
	"os"
)

// errLocked is lockFile's error when another holder has the lock; it is
// never returned here.
var errLocked = errors.New("locked by another holder")

// lockFile opens (or creates) the file at path. Without flock(2), it
// locks nothing: on these systems nothing stops a second runnel serve on
// the same -data-dir but the clusters' own locks, which are missing too.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
