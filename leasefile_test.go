package runnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testLeasePath returns the path of a lease file in a new temporary directory.
func testLeasePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "leases.json")
}

// TestFileLeaseStoreFormat pins the file format: versioned JSON, sequence
// numbers as decimal strings, timestamps as RFC 3339 in UTC.
func TestFileLeaseStoreFormat(t *testing.T) {
	path := testLeasePath(t)
	s := openTestFileLeaseStore(t, path)
	putLease(t, s, Lease{ShardID: "shardId-000000000001", Counter: 1, Checkpoint: Checkpoint{ShardEnd: true}}, 0)
	putLease(t, s, Lease{
		ShardID:        "shardId-000000000000",
		Owner:          "worker-1",
		Counter:        7,
		Checkpoint:     Checkpoint{SequenceNumber: testSeq(t, "12345678901234567890123456789"), SubSequenceNumber: 2},
		ParentShardIDs: []string{"shardId-000000000009"},
		Start:          StartingPosition{Type: AtTimestamp, Timestamp: time.Date(2026, 12, 1, 9, 30, 0, 5, time.FixedZone("CET", 3600))},
	}, 0)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `{
  "version": 1,
  "leases": [
    {
      "shardId": "shardId-000000000000",
      "owner": "worker-1",
      "counter": 7,
      "checkpoint": {
        "sequenceNumber": "12345678901234567890123456789",
        "subSequenceNumber": 2
      },
      "parentShardIds": [
        "shardId-000000000009"
      ],
      "start": {
        "type": "AT_TIMESTAMP",
        "timestamp": "2026-12-01T08:30:00.000000005Z"
      }
    },
    {
      "shardId": "shardId-000000000001",
      "counter": 1,
      "checkpoint": {
        "shardEnd": true
      }
    }
  ]
}
`, string(data))
	require.NoError(t, s.DeleteLease(context.Background(), "shardId-000000000000", 7))
	require.NoError(t, s.DeleteLease(context.Background(), "shardId-000000000001", 1))
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "{\n  \"version\": 1,\n  \"leases\": []\n}\n", string(data))
}

// TestFileLeaseStoreReopen restarts the store: what was written is read
// back by a new FileLeaseStore of the path.
func TestFileLeaseStoreReopen(t *testing.T) {
	path := testLeasePath(t)
	s, err := OpenFileLeaseStore(path)
	require.NoError(t, err)
	assert.Equal(t, path, s.Path())
	want := []Lease{
		{ShardID: "shardId-000000000000", Owner: "a", Counter: 3, Checkpoint: Checkpoint{SequenceNumber: testSeq(t, "49590338271490256608559692538361571095921575989136588898")}},
		{ShardID: "shardId-000000000001", Owner: "b", Counter: 1, ParentShardIDs: []string{"shardId-000000000000"}, Start: StartingPosition{Type: Latest}},
	}
	putLease(t, s, Lease{ShardID: "shardId-000000000000", Owner: "a", Counter: 1}, 0)
	putLease(t, s, want[1], 0)
	putLease(t, s, want[0], 1)
	putLease(t, s, Lease{ShardID: "shardId-000000000002", Counter: 1}, 0)
	require.NoError(t, s.DeleteLease(context.Background(), "shardId-000000000002", 1))
	require.NoError(t, s.Close())

	s = openTestFileLeaseStore(t, path)
	assert.Equal(t, want, listLeases(t, s))
	err = s.PutLease(context.Background(), Lease{ShardID: "shardId-000000000000", Counter: 4}, 1)
	assert.ErrorIs(t, err, ErrLeaseConflict, "the counter survived the restart")
	putLease(t, s, Lease{ShardID: "shardId-000000000000", Counter: 4}, 3)
}

// TestFileLeaseStoreClose: Close may be called twice, and after it every
// call fails with ErrClosed.
func TestFileLeaseStoreClose(t *testing.T) {
	s, err := OpenFileLeaseStore(testLeasePath(t))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	assert.NoError(t, s.Close(), "Close twice")
	_, err = s.ListLeases(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, s.PutLease(context.Background(), Lease{ShardID: "shardId-000000000000", Counter: 1}, 0), ErrClosed)
	assert.ErrorIs(t, s.DeleteLease(context.Background(), "shardId-000000000000", 1), ErrClosed)
}

// TestOpenFileLeaseStoreBadPath: the directory must exist, and the path
// must name a file.
func TestOpenFileLeaseStoreBadPath(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	for _, tc := range []struct {
		name, path, msg string
	}{
		{"MissingDirectory", filepath.Join(dir, "missing", "leases.json"), "directory " + filepath.Join(dir, "missing") + " of lease file " + filepath.Join(dir, "missing", "leases.json") + " does not exist"},
		{"DirectoryIsAFile", filepath.Join(notDir, "leases.json"), notDir + ", the directory of lease file " + filepath.Join(notDir, "leases.json") + ", is not a directory"},
		{"PathIsADirectory", dir, "lease file " + dir + " is not a regular file"},
		{"EmptyPath", "", "lease file path is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenFileLeaseStore(tc.path)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := os.Stat(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist, "OpenFileLeaseStore does not create the directory")
}

// TestFileLeaseStoreUnencodable: a lease the file cannot hold exactly is
// refused before anything is written.
func TestFileLeaseStoreUnencodable(t *testing.T) {
	s := openTestFileLeaseStore(t, testLeasePath(t))
	for _, tc := range []struct {
		name  string
		lease Lease
	}{
		{"ShardIDNotUTF8", Lease{ShardID: "shard\xff", Counter: 1}},
		{"OwnerNotUTF8", Lease{ShardID: "shardId-000000000000", Owner: "\xc3", Counter: 1}},
		{"ParentNotUTF8", Lease{ShardID: "shardId-000000000000", Counter: 1, ParentShardIDs: []string{"ok", "\xfe"}}},
		{"Year10000", Lease{ShardID: "shardId-000000000000", Counter: 1, Start: StartingPosition{Type: AtTimestamp, Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{"YearMinus1", Lease{ShardID: "shardId-000000000000", Counter: 1, Start: StartingPosition{Type: AtTimestamp, Timestamp: time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600))}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.PutLease(context.Background(), tc.lease, 0)
			assert.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
	assert.Empty(t, listLeases(t, s))
}

// TestFileLeaseStoreCrashMidWrite: a temporary file left by a write that
// crashed before its rename does not change what is read, and the next
// OpenFileLeaseStore removes it.
func TestFileLeaseStoreCrashMidWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state []Lease // the table before the crashed write; nil: no file yet
	}{
		{"FirstWrite", nil},
		{"LaterWrite", []Lease{{ShardID: "shardId-000000000000", Owner: "a", Counter: 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testLeasePath(t)
			s, err := OpenFileLeaseStore(path)
			require.NoError(t, err)
			for _, l := range tc.state {
				putLease(t, s, l, 0)
			}
			require.NoError(t, s.Close())
			// The crashed write: part of the new table in a temporary
			// file, never renamed.
			leftover := path + ".tmp-1234567"
			require.NoError(t, os.WriteFile(leftover, []byte(`{"version":1,"leases":[{"shardId":"shardId-0000`), 0o600))

			s = openTestFileLeaseStore(t, path)
			assert.Equal(t, sortedLeases(leaseTable(tc.state)), listLeases(t, s))
			_, err = os.Stat(leftover)
			assert.ErrorIs(t, err, os.ErrNotExist, "the leftover temporary file is removed")
			putLease(t, s, Lease{ShardID: "shardId-000000000001", Counter: 1}, 0)
			assert.Len(t, listLeases(t, s), len(tc.state)+1)
			entries, err := os.ReadDir(filepath.Dir(path))
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			assert.Equal(t, []string{"leases.json", "leases.json.lock"}, names, "no temporary file is left by a write")
		})
	}
}

// leaseTable is a table of leases by shard id.
func leaseTable(ls []Lease) map[string]Lease {
	table := make(map[string]Lease)
	for _, l := range ls {
		table[l.ShardID] = l
	}
	return table
}

// TestFileLeaseStoreCorruptFile: a file that is not a valid table fails
// OpenFileLeaseStore and every operation with an error wrapping
// ErrInternalFailure that names the file and the fault; it is not taken
// for an empty table and not overwritten.
func TestFileLeaseStoreCorruptFile(t *testing.T) {
	const lease = `"shardId":"shardId-000000000000","counter":1`
	for _, tc := range []struct {
		name, content, fault string
	}{
		{"Empty", "", "it is empty"},
		{"Blank", " \n", "it is empty"},
		{"NotJSON", "leases!", "not valid JSON at byte 1"},
		{"Truncated", `{"version":1,"leases":[{` + lease[:20], "truncated"},
		{"Null", "null", "version 0 is not supported"},
		{"NoVersion", `{"leases":[]}`, "version 0 is not supported"},
		{"UnknownVersion", `{"version":2,"leases":[]}`, "version 2 is not supported; this runnel reads version 1"},
		{"VersionNotANumber", `{"version":"1","leases":[]}`, "field version"},
		{"TrailingData", `{"version":1,"leases":[]} {}`, "there is more after the table"},
		{"UnknownField", `{"version":1,"leases":[{` + lease + `,"colour":"red"}]}`, `unknown field "colour"`},
		{"NoShardID", `{"version":1,"leases":[{"counter":1}]}`, "lease 0 has no shardId"},
		{"DuplicateShard", `{"version":1,"leases":[{` + lease + `},{` + lease + `}]}`, `shard "shardId-000000000000" has two leases`},
		{"NegativeCounter", `{"version":1,"leases":[{"shardId":"s","counter":-1}]}`, `lease "s" has counter -1`},
		{"ZeroCounter", `{"version":1,"leases":[{"shardId":"s","counter":0}]}`, `lease "s" has counter 0`},
		{"CounterNotAnInteger", `{"version":1,"leases":[{"shardId":"s","counter":1.5}]}`, "field leases.counter"},
		{"ShardEndWithSequenceNumber", `{"version":1,"leases":[{` + lease + `,"checkpoint":{"sequenceNumber":"42","shardEnd":true}}]}`, "is SHARD_END and also at 42/0"},
		{"BadSequenceNumber", `{"version":1,"leases":[{` + lease + `,"checkpoint":{"sequenceNumber":"042"}}]}`, "leading zero"},
		{"SequenceNumberAsNumber", `{"version":1,"leases":[{` + lease + `,"checkpoint":{"sequenceNumber":42}}]}`, "sequenceNumber"},
		{"BadTimestamp", `{"version":1,"leases":[{` + lease + `,"start":{"type":"AT_TIMESTAMP","timestamp":"yesterday"}}]}`, `start timestamp "yesterday"`},
		{"TimestampOutOfRange", `{"version":1,"leases":[{` + lease + `,"start":{"timestamp":"9999-12-31T23:30:00-01:00"}}]}`, "outside the years 0 to 9999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testLeasePath(t)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			check := func(err error) {
				t.Helper()
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInternalFailure)
				assert.NotErrorIs(t, err, ErrValidation)
				var e *Error
				assert.ErrorAs(t, err, &e)
				assert.Contains(t, err.Error(), "lease file "+path+" is not a valid lease table")
				assert.Contains(t, err.Error(), tc.fault)
			}
			_, err := OpenFileLeaseStore(path)
			check(err)

			// A store opened before the file went bad.
			require.NoError(t, os.Remove(path))
			s := openTestFileLeaseStore(t, path)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, err = s.ListLeases(context.Background())
			check(err)
			check(s.PutLease(context.Background(), Lease{ShardID: "shardId-000000000005", Counter: 1}, 0))
			check(s.DeleteLease(context.Background(), "shardId-000000000000", 1))
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tc.content, string(data), "the bad file is left as it was")
		})
	}
}

// TestFileLeaseStoreSharedPath: two FileLeaseStores of one path, as two
// processes would hold them, see each other's writes at once and lose
// conditional writes to each other.
func TestFileLeaseStoreSharedPath(t *testing.T) {
	path := testLeasePath(t)
	a := openTestFileLeaseStore(t, path)
	b := openTestFileLeaseStore(t, path)
	ctx := context.Background()

	putLease(t, a, Lease{ShardID: "shardId-000000000000", Owner: "a", Counter: 1}, 0)
	assert.Equal(t, []Lease{{ShardID: "shardId-000000000000", Owner: "a", Counter: 1}}, listLeases(t, b))
	assert.ErrorIs(t, b.PutLease(ctx, Lease{ShardID: "shardId-000000000000", Owner: "b", Counter: 1}, 0), ErrLeaseConflict)

	putLease(t, b, Lease{ShardID: "shardId-000000000000", Owner: "b", Counter: 2}, 1)
	assert.ErrorIs(t, a.PutLease(ctx, Lease{ShardID: "shardId-000000000000", Owner: "a", Counter: 2}, 1), ErrLeaseConflict, "a's view is stale")
	assert.Equal(t, "b", listLeases(t, a)[0].Owner)

	assert.ErrorIs(t, a.DeleteLease(ctx, "shardId-000000000000", 1), ErrLeaseConflict)
	require.NoError(t, a.DeleteLease(ctx, "shardId-000000000000", 2))
	assert.Empty(t, listLeases(t, b))

	require.NoError(t, a.Close())
	putLease(t, b, Lease{ShardID: "shardId-000000000001", Counter: 1}, 0)
	assert.Len(t, listLeases(t, b), 1, "closing one store leaves the other working")
}

// leaseChildEnv, when set, holds the lease file path of a child process of
// TestFileLeaseStoreProcesses.
const leaseChildEnv = "RUNNEL_TEST_LEASE_CHILD"

// leaseChildIncrements is how many increments each child process makes.
const leaseChildIncrements = 30

// TestFileLeaseStoreProcesses runs three processes (this test binary, as
// TestFileLeaseStoreChildProcess) that each make 30 conditional increments
// of one lease in one file, retrying on conflict. Property: the counter
// ends at the number of successful writes.
func TestFileLeaseStoreProcesses(t *testing.T) {
	const procs = 3
	path := testLeasePath(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	stdins := make([]io.WriteCloser, procs)
	for i := range procs {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFileLeaseStoreChildProcess$", "-test.count=1", "-test.timeout=1m")
		cmd.Env = append(os.Environ(), leaseChildEnv+"="+path, "RUNNEL_TEST_LEASE_OWNER=process-"+strconv.Itoa(i))
		cmd.WaitDelay = 5 * time.Second
		outs[i] = new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		cmds[i], stdins[i] = cmd, stdin
	}
	// The children wait for their standard input to close, so that they
	// start together.
	for _, stdin := range stdins {
		require.NoError(t, stdin.Close())
	}
	done := regexp.MustCompile(`lease child: (\d+) successes, (\d+) conflicts`)
	successes := 0
	for i, cmd := range cmds {
		err := cmd.Wait()
		require.NoError(t, err, "child %d:\n%s", i, outs[i])
		m := done.FindStringSubmatch(outs[i].String())
		require.NotNil(t, m, "child %d did not report:\n%s", i, outs[i])
		n, _ := strconv.Atoi(m[1])
		successes += n
		t.Logf("child %d: %s successes, %s conflicts", i, m[1], m[2])
	}
	assert.Equal(t, procs*leaseChildIncrements, successes)
	s := openTestFileLeaseStore(t, path)
	assert.Equal(t, int64(successes), leaseCounter(t, s, "shardId-000000000000"))
}

// TestFileLeaseStoreChildProcess is one child process of
// TestFileLeaseStoreProcesses; run on its own it is skipped.
func TestFileLeaseStoreChildProcess(t *testing.T) {
	path := os.Getenv(leaseChildEnv)
	if path == "" {
		t.Skip("a child process of TestFileLeaseStoreProcesses")
	}
	_, err := io.Copy(io.Discard, os.Stdin)
	require.NoError(t, err)
	s := openTestFileLeaseStore(t, path)
	owner := os.Getenv("RUNNEL_TEST_LEASE_OWNER")
	successes, conflicts := 0, 0
	for successes < leaseChildIncrements {
		won, err := incrementLease(t.Context(), s, "shardId-000000000000", owner)
		require.NoError(t, err)
		if won {
			successes++
		} else {
			conflicts++
		}
	}
	fmt.Printf("lease child: %d successes, %d conflicts\n", successes, conflicts)
}

// FuzzLeaseFile feeds arbitrary content to the lease file's decoder: it
// must never panic, must fail only with an error wrapping
// ErrInternalFailure that names the file, and a table it reads must be one
// that PutLease accepts and must read back the same after encoding.
func FuzzLeaseFile(f *testing.F) {
	const path = "/fuzz/leases.json"
	f.Fuzz(func(t *testing.T, data []byte) {
		table, err := decodeLeaseFile("ListLeases", path, data)
		if err != nil {
			if !errors.Is(err, ErrInternalFailure) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v: want ErrInternalFailure naming %s", err, path)
			}
			return
		}
		for id, l := range table {
			require.Equal(t, id, l.ShardID)
			require.NoError(t, checkLeaseWrite("PutLease", l, l.Counter-1), "a lease read from a file can be written")
			require.NoError(t, checkFileLease("PutLease", l))
		}
		enc, err := encodeLeaseFile("PutLease", table)
		require.NoError(t, err)
		again, err := decodeLeaseFile("ListLeases", path, enc)
		require.NoError(t, err, "encoded:\n%s", enc)
		require.Equal(t, table, again)
		enc2, err := encodeLeaseFile("PutLease", again)
		require.NoError(t, err)
		require.Equal(t, string(enc), string(enc2))
	})
}
