package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
)

// TestJavaScriptSDK runs testdata/js/scenario.mjs, the AWS SDK for
// JavaScript v3 (@aws-sdk/client-kinesis) against a test server: with the
// client's default request handler, which speaks HTTP/2 to every
// operation, and again over HTTP/1.1. It covers streams, records, shards,
// iterators, a registered consumer and SubscribeToShard. .ci/run installs
// the package (npm ci in testdata/js); without node or the package the
// test is skipped, saying which is missing.
func TestJavaScriptSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the JavaScript SDK test needs Node.js 18 or later")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "js"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@aws-sdk", "client-kinesis")); err != nil {
		t.Skip("the JavaScript SDK is not installed: run npm ci in server/testdata/js (.ci/run does)")
	}
	for _, tc := range []struct {
		name  string
		http1 string
		tls   bool
	}{{"default handler, HTTP/2", "0", false}, {"HTTP/1.1", "1", false}, {"default handler, TLS with ALPN", "0", true}} {
		t.Run(tc.name, func(t *testing.T) {
			url, h2, caFile := protocolCountingServer(t, tc.tls)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "scenario.mjs")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "RUNNEL_ENDPOINT="+url, "RUNNEL_HTTP1="+tc.http1)
			if caFile != "" {
				cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+caFile) // node trusts the server's certificate
			}
			out, err := cmd.Output()
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			require.NoError(t, err, "%s", stderr)
			var seen struct {
				Status        string
				ShardID       string `json:"shardId"`
				Failed        int
				Shards        []string
				Polled        []string
				ArrivalIsDate bool
				Pushed        []string
				Continuation  bool
				Deleted       bool
			}
			require.NoError(t, json.Unmarshal(out, &seen), "%s", out)
			assert.Equal(t, "ACTIVE", seen.Status)
			assert.Equal(t, "shardId-000000000000", seen.ShardID)
			assert.Zero(t, seen.Failed)
			assert.Equal(t, []string{"shardId-000000000000"}, seen.Shards)
			assert.Equal(t, []string{"one", "two", "three"}, seen.Polled)
			assert.True(t, seen.ArrivalIsDate, "arrival timestamps decode as dates")
			assert.Equal(t, []string{"one", "two", "three", "four"}, seen.Pushed)
			assert.True(t, seen.Continuation)
			assert.True(t, seen.Deleted, "DescribeStreamSummary after DeleteStream is a ResourceNotFoundException")
			if tc.http1 == "1" {
				assert.Zero(t, h2.Load(), "requests over HTTP/2")
			} else {
				assert.Positive(t, h2.Load(), "the default handler spoke HTTP/2")
			}
		})
	}
}

// protocolCountingServer serves a new cluster as servertest does, counting
// the requests that came over HTTP/2; over TLS (with HTTP/2 by ALPN) if
// useTLS is set, with a new certificate whose PEM file it returns.
func protocolCountingServer(t *testing.T, useTLS bool) (url string, h2 *atomic.Int64, caFile string) {
	t.Helper()
	c := runnel.NewCluster()
	t.Cleanup(func() { c.Close() })
	s := server.New(c)
	h2 = new(atomic.Int64)
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	hs := &http.Server{Protocols: p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			h2.Add(1)
		}
		s.ServeHTTP(w, r)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { hs.Close() })
	if !useTLS {
		go hs.Serve(l)
		return "http://" + l.Addr().String(), h2, ""
	}
	cert, err := server.SelfSignedCertificate("127.0.0.1")
	require.NoError(t, err)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600))
	hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	go hs.ServeTLS(l, "", "")
	return "https://" + l.Addr().String(), h2, caFile
}
