package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's log and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServe runs runnel serve on a loopback port, makes a stream and
// writes to it through the Kinesis API, and shuts it down as SIGINT would.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var logs syncBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-limits", "off", "-region", "eu-west-1"}, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve ended: %v\n%s", err, logs.String())
	}
	call := func(op, body string) map[string]any {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+addr, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", op, resp.StatusCode, out)
		}
		return out
	}
	call("CreateStream", `{"StreamName":"s","ShardCount":1}`)
	for range 1500 { // beyond Kinesis's 1,000 records/s: -limits off
		call("PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"AA=="}`)
	}
	sum := call("DescribeStreamSummary", `{"StreamName":"s"}`)["StreamDescriptionSummary"].(map[string]any)
	if arn := sum["StreamARN"]; arn != "arn:aws:kinesis:eu-west-1:000000000000:stream/s" {
		t.Errorf("StreamARN %v", arn)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not shut down")
	}
	for _, want := range []string{"serving the Kinesis API", "shutting down"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestServeUsage shows the errors for a missing command and bad flags.
func TestServeUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"serve", "-limits", "some"}, {"serve", "-log-level", "loud"}, {"serve", "-nope"}, {"serve", "-shard-quota", "0"}} {
		var logs syncBuffer
		if err := run(t.Context(), args, &logs, nil); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if d := serveFlags(nil).Lookup("addr").DefValue; !strings.HasPrefix(d, "127.0.0.1:") {
		t.Errorf("the default address %s is not loopback", d)
	}
}
