package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// dataDirectory is the -data-dir of a running serve, held (locked) from
// openDataDir to close. Its layout is in the package comment.
type dataDirectory struct {
	dir  string
	lock *os.File // serve.lock, flocked where the system has flock
}

// regionDir is what a region must look like to name a directory.
var regionDir = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// openDataDir opens (creating it if need be) the data directory dir for
// the default account and region of the flags: it takes its lock, so that
// a second serve on dir fails.
func openDataDir(dir, account, region string) (*dataDirectory, error) {
	if !accountID.MatchString(account) {
		return nil, fmt.Errorf("-account %q is not 12 digits: with -data-dir it names a directory", account)
	}
	if !regionDir.MatchString(region) {
		return nil, fmt.Errorf("-region %q is not a region name (a-z, 0-9 and -): with -data-dir it names a directory", region)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("-data-dir: %w", err)
	}
	lockPath := filepath.Join(dir, "serve.lock")
	lock, err := lockFile(lockPath)
	switch {
	case errors.Is(err, errLocked):
		return nil, fmt.Errorf("-data-dir %s is in use by another runnel serve (it holds the lock %s)", dir, lockPath)
	case err != nil:
		return nil, fmt.Errorf("-data-dir: locking %s: %w", lockPath, err)
	}
	return &dataDirectory{dir: dir, lock: lock}, nil
}

// close releases the directory.
func (d *dataDirectory) close() { d.lock.Close() }

// stateFile is the server's state file (server.WithStateFile), which
// holds its token key too.
func (d *dataDirectory) stateFile() string { return filepath.Join(d.dir, "server.json") }

// clusterDir is the directory of the cluster of an account and region:
// <account>/<region>. Both are checked to name one directory: the server
// makes clusters only for 12-digit accounts and regions of AWS's shape,
// and openDataDir checks the flags' defaults.
func (d *dataDirectory) clusterDir(account, region string) (string, error) {
	if !accountID.MatchString(account) || !regionDir.MatchString(region) {
		return "", fmt.Errorf("-data-dir: account %q in region %q cannot name a directory", account, region)
	}
	return filepath.Join(d.dir, account, region), nil
}
