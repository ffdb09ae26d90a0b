package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
)

// stateCall is acctCall that requires the status.
func stateCall(t *testing.T, s *Server, key, region, op, body string, status int) map[string]any {
	t.Helper()
	code, out := acctCall(t, s, key, region, op, body)
	require.Equal(t, status, code, "%s: %v", op, out)
	return out
}

// keptFile is the state file at path as the test reads it.
type keptFile struct {
	Version  int
	TokenKey []byte
	Accounts []json.RawMessage
}

// readKeptFile reads the state file at path.
func readKeptFile(t *testing.T, path string) keptFile {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var f keptFile
	require.NoError(t, json.Unmarshal(b, &f), "%s", b)
	return f
}

// TestStateFileRoundTrip changes the account settings of two accounts and
// regions, and creates, updates, tags and deletes channels, with a state
// file; a new server of the same state file (a restart) has them all, and
// the same token key.
func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	var m acctMaker
	s1, c := acctServer(t, &m, WithStateFile(path))
	require.NoError(t, s1.Err())
	f := readKeptFile(t, path)
	assert.Equal(t, keptFile{Version: stateVersion, TokenKey: s1.tokenKey, Accounts: []json.RawMessage{}}, f, "New saves the new token key, and nothing else")
	require.Len(t, f.TokenKey, TokenKeySize)
	const other, otherRegion = "111122223333", "eu-west-1"

	enable := `{"MinimumThroughputBillingCommitment":{"Status":"ENABLED"}}`
	stateCall(t, s1, "", "", "UpdateAccountSettings", enable, http.StatusOK)
	stateCall(t, s1, other, otherRegion, "UpdateAccountSettings", enable, http.StatusOK)
	stateCall(t, s1, other, otherRegion, "UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"DISABLED"}}`, http.StatusOK)

	stateCall(t, s1, "", "", "CreateStream", `{"StreamName":"src","ShardCount":1}`, http.StatusOK)
	arn := "arn:aws:kinesis:us-east-1:000000000000:stream/src"
	create := func(name string) string {
		out := stateCall(t, s1, "", "", "CreateChannel", `{"ChannelName":"`+name+`","ServiceExecutionRoleARN":"arn:aws:iam::000000000000:role/delivery",
			"StreamConfigurationList":[{"StreamARN":"`+arn+`","RecordConfiguration":{"RecordFormatType":"JSON"}}],
			"S3DestinationConfiguration":{"DataFreshnessInSeconds":60,"StorageConfiguration":{"BucketARN":"arn:aws:s3:::bucket","Ratio":0.5}},
			"Tags":{"team":"data"}}`, http.StatusOK)
		return out["ChannelDescription"].(map[string]any)["ChannelARN"].(string)
	}
	kept, gone := create("kept"), create("gone")
	stateCall(t, s1, "", "", "UpdateChannel", `{"ChannelARN":"`+kept+`","S3DestinationConfiguration":{"DataFreshnessInSeconds":300}}`, http.StatusOK)
	stateCall(t, s1, "", "", "TagResource", `{"ResourceARN":"`+kept+`","Tags":{"env":"test"}}`, http.StatusOK)
	stateCall(t, s1, "", "", "TagResource", `{"ResourceARN":"`+gone+`","Tags":{"env":"test"}}`, http.StatusOK)
	stateCall(t, s1, "", "", "UntagResource", `{"ResourceARN":"`+kept+`","TagKeys":["team"]}`, http.StatusOK)
	stateCall(t, s1, "", "", "DeleteChannel", `{"ChannelARN":"`+gone+`"}`, http.StatusOK)

	// What a client reads before the restart…
	reads := []struct{ key, region, op, body string }{
		{"", "", "DescribeAccountSettings", `{}`},
		{other, otherRegion, "DescribeAccountSettings", `{}`},
		{"", "", "DescribeChannel", `{"ChannelARN":"` + kept + `"}`},
		{"", "", "ListTagsForResource", `{"ResourceARN":"` + kept + `"}`},
		{"", "", "ListChannels", `{}`},
	}
	var before []map[string]any
	for _, r := range reads {
		before = append(before, stateCall(t, s1, r.key, r.region, r.op, r.body, http.StatusOK))
	}
	require.NoError(t, s1.Close())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	f = readKeptFile(t, path)
	assert.Equal(t, stateVersion, f.Version)
	assert.Equal(t, s1.tokenKey, f.TokenKey, "every save keeps the key")
	assert.Len(t, f.Accounts, 2, "%s", b)
	assert.NotContains(t, string(b), gone, "a deleted channel is gone from the file")
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	left, err := filepath.Glob(path + ".tmp-*")
	require.NoError(t, err)
	assert.Empty(t, left, "temporary files")

	// …it reads after it, from a new server (and new clusters for the
	// other accounts: the engine's own durability is not tested here).
	var m2 acctMaker
	t.Cleanup(m2.closeAll)
	s2 := New(c, WithClusters(m2.newCluster), WithStateFile(path))
	t.Cleanup(func() { s2.Close() })
	require.NoError(t, s2.Err())
	assert.Equal(t, s1.tokenKey, s2.tokenKey, "the token key of before the restart")
	for i, r := range reads {
		assert.Equal(t, before[i], stateCall(t, s2, r.key, r.region, r.op, r.body, http.StatusOK), "%s after the restart", r.op)
	}
	stateCall(t, s2, "", "", "DescribeChannel", `{"ChannelARN":"`+gone+`"}`, http.StatusBadRequest)
	stateCall(t, s2, "", "", "CreateChannel", `{"ChannelName":"kept","ServiceExecutionRoleARN":"arn:aws:iam::000000000000:role/delivery",
		"StreamConfigurationList":[{"StreamARN":"`+arn+`","RecordConfiguration":{}}],"S3DestinationConfiguration":{}}`, http.StatusBadRequest)

	// The configurations kept as given decode as a request had them, not
	// as json.Number: integers stay integers for the CBOR protocol.
	dest := s2.channelsOf(c).byARN[kept].desc.S3DestinationConfiguration
	assert.Equal(t, int64(300), dest["DataFreshnessInSeconds"])
	assert.Equal(t, 0.5, dest["StorageConfiguration"].(map[string]any)["Ratio"])

	// The warm throughput check reads the restored commitment.
	stateCall(t, s2, "", "", "UpdateStreamWarmThroughput", `{"StreamName":"src","WarmThroughputMiBps":0}`, http.StatusOK)
}

// TestStateFileSavedBeforeAnswer shows that a change is in the file by
// the time its request is answered, and that a change the server cannot
// save fails the request with an InternalFailure naming the file.
func TestStateFileSavedBeforeAnswer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	var m acctMaker
	s, _ := acctServer(t, &m, WithStateFile(path))
	t.Cleanup(func() { s.Close() })
	stateCall(t, s, "", "", "UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"ENABLED"}}`, http.StatusOK)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"Status": "ENABLED"`)

	s.statePath = filepath.Join(dir, "missing", "state.json") // a directory that is not there
	out := stateCall(t, s, "", "", "UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"DISABLED"}}`, http.StatusInternalServerError)
	assert.Equal(t, "InternalFailureException", out["__type"])
	assert.Contains(t, out["message"], "could not save the server's state to "+s.statePath)
	stateCall(t, s, "", "", "DescribeAccountSettings", `{}`, http.StatusOK)
}

// TestStateFileUnreadable refuses to serve from a state file it cannot
// read, saying which and why: every request fails with the error, Serve
// returns it, and the file is left as it was.
func TestStateFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"NotJSON", `{"version":1,`, "unexpected end of JSON input"},
		{"Version", `{"version":2,"accounts":[]}`, "its version is 2; this server reads version 1"},
		{"NoVersion", `{"accounts":[]}`, "its version is 0"},
		{"UnknownField", `{"version":1,"accounts":[],"later":true}`, `unknown field "later"`},
		{"ShortTokenKey", `{"version":1,"tokenKey":"c2hvcnQ=","accounts":[]}`, "its token key is 5 bytes, not 32"},
		{"TokenKeyNotBase64", `{"version":1,"tokenKey":"not base64!","accounts":[]}`, "illegal base64 data"},
		{"BadAccount", `{"version":1,"accounts":[{"account":"../x","region":"us-east-1"}]}`, `"../x" in "us-east-1" is not an account id and a region`},
		{"Twice", `{"version":1,"accounts":[{"account":"000000000000","region":"us-east-1"},{"account":"000000000000","region":"us-east-1"}]}`, "is there twice"},
		{"ForeignChannel", `{"version":1,"accounts":[{"account":"000000000000","region":"us-east-1","channels":[{"description":{"ChannelARN":"arn:aws:kinesis:eu-west-1:000000000000:channel/x"}}]}]}`, "is not one of the account's"},
		{"Directory", "", "could not read the server's state file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if tc.name == "Directory" {
				require.NoError(t, os.Mkdir(path, 0o700))
			} else {
				require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			}
			s, _ := acctServer(t, new(acctMaker), WithStateFile(path))
			t.Cleanup(func() { s.Close() })
			err := s.Err()
			require.Error(t, err)
			assert.True(t, errors.Is(err, runnel.ErrInternalFailure), "%v", err)
			assert.Contains(t, err.Error(), "could not read the server's state file "+path)
			assert.Contains(t, err.Error(), tc.want)

			out := stateCall(t, s, "", "", "UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"ENABLED"}}`, http.StatusInternalServerError)
			assert.Contains(t, out["message"], path)
			stateCall(t, s, "", "", "ListStreams", `{}`, http.StatusInternalServerError)
			if tc.name != "Directory" {
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Equal(t, tc.content, string(b), "the file is left as it was")
			}

			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			assert.Equal(t, s.Err(), s.Serve(l))
			_, err = net.Dial("tcp", l.Addr().String())
			assert.Error(t, err, "Serve closed the listener")
			l, err = net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			assert.ErrorIs(t, s.ServeTLS(l, nil), runnel.ErrInternalFailure)
		})
	}
}

// TestStateFileMissing starts from an empty state when the file is not
// there yet, and creates it at New, to save a new token key; with
// WithTokenKey, at the first change, without the key.
func TestStateFileMissing(t *testing.T) {
	t.Run("NewKey", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		s, _ := acctServer(t, new(acctMaker), WithStateFile(path))
		t.Cleanup(func() { s.Close() })
		require.NoError(t, s.Err())
		created, err := os.ReadFile(path)
		require.NoError(t, err, "New saves the new key")
		assert.True(t, strings.HasPrefix(string(created), fmt.Sprintf("{\n\t\"version\": %d,\n\t\"tokenKey\": ", stateVersion)), "%s", created)
		out := stateCall(t, s, "", "", "DescribeAccountSettings", `{}`, http.StatusOK)
		assert.Equal(t, "DISABLED", out["MinimumThroughputBillingCommitment"].(map[string]any)["Status"])
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, string(created), string(b), "a read writes nothing")
	})
	t.Run("WithTokenKey", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		s, _ := acctServer(t, new(acctMaker), WithStateFile(path), WithTokenKey(make([]byte, TokenKeySize)))
		t.Cleanup(func() { s.Close() })
		require.NoError(t, s.Err())
		_, err := os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "nothing is written before a change")
		stateCall(t, s, "", "", "UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"ENABLED"}}`, http.StatusOK)
		f := readKeptFile(t, path)
		assert.Equal(t, stateVersion, f.Version)
		assert.Nil(t, f.TokenKey, "the key of WithTokenKey is not saved")
		assert.Len(t, f.Accounts, 1)
	})
}

// TestStateFileNewKeyUnsaved refuses to serve when New cannot save the
// new token key: the iterators it handed out would not survive a
// restart.
func TestStateFileNewKeyUnsaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "state.json") // a directory that is not there
	s, _ := acctServer(t, new(acctMaker), WithStateFile(path))
	t.Cleanup(func() { s.Close() })
	err := s.Err()
	require.Error(t, err)
	assert.True(t, errors.Is(err, runnel.ErrInternalFailure), "%v", err)
	assert.Contains(t, err.Error(), "could not save the server's state to "+path)
	out := stateCall(t, s, "", "", "ListStreams", `{}`, http.StatusInternalServerError)
	assert.Contains(t, out["message"], path)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	assert.Equal(t, s.Err(), s.Serve(l))
}

// TestStateFileWithoutKey reads a state file that holds no token key: New
// makes a key and saves it with the state; with WithTokenKey it leaves the
// file as it was.
func TestStateFileWithoutKey(t *testing.T) {
	const v1 = `{"version":1,"accounts":[{"account":"111122223333","region":"eu-west-1","minimumThroughputBillingCommitment":{"Status":"ENABLED","StartedAt":1748736000,"EarliestAllowedEndAt":1748822400}}]}`
	enabled := func(t *testing.T, s *Server) {
		t.Helper()
		out := stateCall(t, s, "111122223333", "eu-west-1", "DescribeAccountSettings", `{}`, http.StatusOK)
		assert.Equal(t, "ENABLED", out["MinimumThroughputBillingCommitment"].(map[string]any)["Status"])
	}
	t.Run("GainsAKey", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		require.NoError(t, os.WriteFile(path, []byte(v1), 0o600))
		s1, c := acctServer(t, new(acctMaker), WithStateFile(path))
		require.NoError(t, s1.Err())
		f := readKeptFile(t, path)
		assert.Equal(t, s1.tokenKey, f.TokenKey, "the new key is saved")
		assert.Len(t, f.Accounts, 1, "with the state of before")
		enabled(t, s1)
		require.NoError(t, s1.Close())
		saved, err := os.ReadFile(path)
		require.NoError(t, err)

		s2 := New(c, WithClusters(new(acctMaker).newCluster), WithStateFile(path))
		t.Cleanup(func() { s2.Close() })
		require.NoError(t, s2.Err())
		assert.Equal(t, s1.tokenKey, s2.tokenKey, "a restart takes the saved key")
		enabled(t, s2)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, string(saved), string(b), "a file with a key is not written at New")
	})
	t.Run("WithTokenKey", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		require.NoError(t, os.WriteFile(path, []byte(v1), 0o600))
		s, _ := acctServer(t, new(acctMaker), WithStateFile(path), WithTokenKey(make([]byte, TokenKeySize)))
		t.Cleanup(func() { s.Close() })
		require.NoError(t, s.Err())
		enabled(t, s)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, v1, string(b), "the file is left as it was")
	})
}

// TestStateFileConcurrentChanges makes changes in several accounts and
// regions at once: the file a restart reads has every one.
func TestStateFileConcurrentChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	var m acctMaker
	s, c := acctServer(t, &m, WithStateFile(path))
	stateCall(t, s, "", "", "CreateStream", `{"StreamName":"src","ShardCount":1}`, http.StatusOK)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"ChannelName":"c%d","ServiceExecutionRoleARN":"arn:aws:iam::000000000000:role/delivery",
				"StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/src","RecordConfiguration":{}}],
				"S3DestinationConfiguration":{}}`, i)
			for _, call := range []struct{ key, region, op, body string }{
				{"", "", "CreateChannel", body},
				{fmt.Sprintf("1111222233%02d", i), "eu-west-1", "UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"ENABLED"}}`},
			} {
				req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(call.body))
				req.Header.Set("X-Amz-Target", targetPrefix+call.op)
				if call.key != "" {
					req.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/20250601/%s/kinesis/aws4_request, SignedHeaders=host, Signature=%s",
						sigV4Algorithm, call.key, call.region, strings.Repeat("0", 64)))
				}
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				assert.Equal(t, http.StatusOK, w.Code, "%s %d: %s", call.op, i, w.Body.Bytes())
			}
		})
	}
	wg.Wait()
	require.NoError(t, s.Close())

	s2 := New(c, WithClusters(new(acctMaker).newCluster), WithStateFile(path))
	t.Cleanup(func() { s2.Close() })
	require.NoError(t, s2.Err())
	out := stateCall(t, s2, "", "", "ListChannels", `{}`, http.StatusOK)
	assert.Len(t, out["ChannelSummaries"], n)
	s2.mu.Lock()
	assert.Len(t, s2.kept, n+1)
	s2.mu.Unlock()
}
