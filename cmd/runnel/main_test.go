package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-go/runnel/server"
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
	for _, help := range []string{"-h", "--help", "help"} {
		var logs syncBuffer
		if err := run(t.Context(), []string{help}, &logs, nil); !errors.Is(err, flag.ErrHelp) || !strings.Contains(logs.String(), "-addr") {
			t.Errorf("runnel %s: %v, and the usage %q", help, err, logs.String())
		}
	}
	if d := serveFlags(nil).Lookup("addr").DefValue; !strings.HasPrefix(d, "127.0.0.1:") {
		t.Errorf("the default address %s is not loopback", d)
	}
}

// startServe runs runnel serve with args (on a loopback port of its
// choosing) until the test ends, and returns its address and its log.
func startServe(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	s := startStoppable(t, args...)
	return s.addr, s.logs
}

// apiCall sends a Kinesis API request to url with client; sign, if not
// nil, signs it. It returns the status and the decoded body.
func apiCall(t *testing.T, client *http.Client, url, op, body string, sign func(*http.Request, string)) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if sign != nil {
		sign(req, body)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return resp.StatusCode, out
}

// signer returns a function that signs a request with an AWS Signature
// Version 4 for kinesis in region, with the access key and secret, over
// the headers host, x-amz-date and x-amz-target: the least an AWS SDK
// signs, written out here so that the test needs no SDK.
func signer(key, secret, region string) func(*http.Request, string) {
	return func(req *http.Request, body string) {
		at := time.Now().UTC().Format("20060102T150405Z")
		req.Header.Set("X-Amz-Date", at)
		hash := func(s string) string {
			sum := sha256.Sum256([]byte(s))
			return hex.EncodeToString(sum[:])
		}
		mac := func(k []byte, s string) []byte {
			h := hmac.New(sha256.New, k)
			h.Write([]byte(s))
			return h.Sum(nil)
		}
		const signed = "host;x-amz-date;x-amz-target"
		canonical := strings.Join([]string{req.Method, "/", "", "host:" + req.Host, "x-amz-date:" + at,
			"x-amz-target:" + req.Header.Get("X-Amz-Target"), "", signed, hash(body)}, "\n")
		scope := at[:8] + "/" + region + "/kinesis/aws4_request"
		k := mac([]byte("AWS4"+secret), at[:8])
		for _, part := range []string{region, "kinesis", "aws4_request"} {
			k = mac(k, part)
		}
		sig := mac(k, strings.Join([]string{"AWS4-HMAC-SHA256", at, scope, hash(canonical)}, "\n"))
		req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%x", key, scope, signed, sig))
	}
}

// tlsClient returns a client that trusts the PEM certificates and offers
// HTTP/2 and HTTP/1.1.
func tlsClient(t *testing.T, certPEM []byte) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatalf("no certificate in %q", certPEM)
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestServeTLS runs runnel serve -tls: it serves HTTPS, over HTTP/2 to a
// client that offers it, with a self-signed certificate whose PEM file it
// logs (and removes when it ends).
func TestServeTLS(t *testing.T) {
	var caBundle string
	t.Cleanup(func() { // after serve has ended
		if _, err := os.Stat(caBundle); caBundle != "" && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the certificate file %s is left: %v", caBundle, err)
		}
	})
	addr, logs := startServe(t, "-tls")
	if !strings.Contains(logs.String(), "addr=https://"+addr) {
		t.Errorf("the log does not show the https address:\n%s", logs.String())
	}
	m := regexp.MustCompile(`ca-bundle=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("the log names no ca-bundle:\n%s", logs.String())
	}
	caBundle = m[1]
	certPEM, err := os.ReadFile(caBundle)
	if err != nil {
		t.Fatal(err)
	}
	client := tlsClient(t, certPEM)
	status, out := apiCall(t, client, "https://"+addr, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	if status != http.StatusOK {
		t.Fatalf("CreateStream: %d %v", status, out)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr, strings.NewReader(`{}`))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("served over %s, not HTTP/2", resp.Proto)
	}
	if resp, err := http.Post("http://"+addr, "application/x-amz-json-1.1", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP is answered %s", resp.Status)
		}
	}
}

// TestServeTLSFiles runs runnel serve -tls-cert -tls-key with a
// certificate and key of PEM files.
func TestServeTLSFiles(t *testing.T) {
	cert, err := server.SelfSignedCertificate("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, logs := startServe(t, "-tls-cert", certFile, "-tls-key", keyFile)
	if strings.Contains(logs.String(), "ca-bundle") {
		t.Errorf("a certificate was made:\n%s", logs.String())
	}
	status, out := apiCall(t, tlsClient(t, certPEM), "https://"+addr, "ListStreams", `{}`, nil)
	if status != http.StatusOK {
		t.Fatalf("ListStreams: %d %v", status, out)
	}
}

// TestServeTLSFlagErrors shows the errors for TLS flags that do not go
// together or files that are not there.
func TestServeTLSFlagErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-cert", missing}, "go together"},
		{[]string{"-tls-key", missing}, "go together"},
		{[]string{"-tls", "-tls-cert", missing, "-tls-key", missing}, "one or the other"},
		{[]string{"-tls-cert", missing, "-tls-key", missing}, "missing.pem"},
		{[]string{"-tls", "-addr", "no_such_host:0"}, "no_such_host"},
	} {
		err := run(t.Context(), append([]string{"serve", "-addr", "127.0.0.1:0"}, tc.args...), new(syncBuffer), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error about %q", tc.args, err, tc.want)
		}
	}
}

// TestServeCredentialsFileErrors refuses credentials files that cannot
// be right, naming the file and the line, and never a secret.
func TestServeCredentialsFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"OneField", "# keys\nAKIDONE secret-one\nAKIDTWO\n", "line 3: 1 fields"},
		{"FourFields", "AKIDONE secret-one 111122223333 extra\n", "line 1: 4 fields"},
		{"BadAccount", "\nAKIDONE secret-one 1234\n", `line 2: the account id "1234" is not 12 digits`},
		{"Twice", "AKIDONE secret-one\r\nAKIDONE secret-two\r\n", `line 2: the access key id "AKIDONE" is on line 1 already`},
		{"Slash", "AKID/ONE secret-one\n", `line 1: the access key id "AKID/ONE"`},
		{"Empty", "# nothing\n\n", "has no access keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, tc.name)
			if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			err := run(t.Context(), []string{"serve", "-addr", "127.0.0.1:0", "-credentials", file}, new(syncBuffer), nil)
			switch {
			case err == nil:
				t.Fatal("no error")
			case !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file):
				t.Errorf("%v; want %q and the file", err, tc.want)
			case strings.Contains(err.Error(), "secret-"):
				t.Errorf("%v shows a secret", err)
			}
		})
	}
	err := run(t.Context(), []string{"serve", "-credentials", filepath.Join(dir, "none")}, new(syncBuffer), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestServeCredentials runs runnel serve -credentials: signatures are
// verified (an unsigned request and a wrong secret are refused, the right
// one served), each key reaches its account in the region it signs for,
// and that account's cluster has the flags' shard quota.
func TestServeCredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(file, []byte("# test keys\nAKIDONE secret-one\n\tAKIDTWO   secret-two  111122223333  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, logs := startServe(t, "-credentials", file, "-shard-quota", "2")
	if !strings.Contains(logs.String(), "verified, 2 access keys") {
		t.Errorf("the log does not say signatures are verified:\n%s", logs.String())
	}
	url := "http://" + addr
	for _, tc := range []struct {
		name   string
		sign   func(*http.Request, string)
		status int
		want   string
	}{
		{"Unsigned", nil, http.StatusBadRequest, "MissingAuthenticationTokenException"},
		{"WrongSecret", signer("AKIDONE", "secret-two", "us-east-1"), http.StatusBadRequest, "InvalidSignatureException"},
		{"UnknownKey", signer("AKIDTHREE", "secret-one", "us-east-1"), http.StatusBadRequest, "UnrecognizedClientException"},
		{"Signed", signer("AKIDONE", "secret-one", "us-east-1"), http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := apiCall(t, http.DefaultClient, url, "ListStreams", `{}`, tc.sign)
			if status != tc.status || tc.want != "" && out["__type"] != tc.want {
				t.Errorf("%d %v; want %d %s", status, out, tc.status, tc.want)
			}
		})
	}

	two := signer("AKIDTWO", "secret-two", "eu-central-1")
	if status, out := apiCall(t, http.DefaultClient, url, "CreateStream", `{"StreamName":"s","ShardCount":2}`, two); status != http.StatusOK {
		t.Fatalf("CreateStream: %d %v", status, out)
	}
	_, out := apiCall(t, http.DefaultClient, url, "DescribeStreamSummary", `{"StreamName":"s"}`, two)
	sum, _ := out["StreamDescriptionSummary"].(map[string]any)
	if arn := sum["StreamARN"]; arn != "arn:aws:kinesis:eu-central-1:111122223333:stream/s" {
		t.Errorf("StreamARN %v", arn)
	}
	status, out := apiCall(t, http.DefaultClient, url, "CreateStream", `{"StreamName":"t","ShardCount":1}`, two)
	if status != http.StatusBadRequest || out["__type"] != "LimitExceededException" {
		t.Errorf("a third shard in the account's cluster: %d %v, want LimitExceededException of -shard-quota 2", status, out)
	}
	_, out = apiCall(t, http.DefaultClient, url, "ListStreams", `{}`, signer("AKIDONE", "secret-one", "us-east-1"))
	if names := out["StreamNames"]; fmt.Sprint(names) != "[]" {
		t.Errorf("the default cluster lists %v", names)
	}
	if !strings.Contains(logs.String(), "serving another account and region") || !strings.Contains(logs.String(), "account=111122223333 region=eu-central-1") {
		t.Errorf("the log does not show the new cluster:\n%s", logs.String())
	}
}

// TestServeAccounts shows that without -credentials too, runnel serve
// serves each account and region a request names in its signature.
func TestServeAccounts(t *testing.T) {
	addr, _ := startServe(t, "-region", "eu-west-1")
	url := "http://" + addr
	other := signer("222233334444", "any", "ap-south-1") // not verified, but read
	if status, out := apiCall(t, http.DefaultClient, url, "CreateStream", `{"StreamName":"s","ShardCount":1}`, other); status != http.StatusOK {
		t.Fatalf("CreateStream: %d %v", status, out)
	}
	_, out := apiCall(t, http.DefaultClient, url, "DescribeStreamSummary", `{"StreamName":"s"}`, other)
	sum, _ := out["StreamDescriptionSummary"].(map[string]any)
	if arn := sum["StreamARN"]; arn != "arn:aws:kinesis:ap-south-1:222233334444:stream/s" {
		t.Errorf("StreamARN %v", arn)
	}
	_, out = apiCall(t, http.DefaultClient, url, "ListStreams", `{}`, nil)
	if names := out["StreamNames"]; fmt.Sprint(names) != "[]" {
		t.Errorf("the default cluster (eu-west-1) lists %v", names)
	}
}

// TestServeMetricsAndControl shows /metrics on by default, and the control
// API with its logged token: moving the clock forward expires an iterator.
func TestServeMetricsAndControl(t *testing.T) {
	addr, logs := startServe(t, "-control")
	url := "http://" + addr
	apiCall(t, http.DefaultClient, url, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	apiCall(t, http.DefaultClient, url, "PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"AA=="}`, nil)
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `kinesis_incoming_records_total{account="000000000000",region="us-east-1",stream="s"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s:\n%s", want, body)
	}

	m := regexp.MustCompile(`token=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no control token logged:\n%s", logs.String())
	}
	control := func(path, body, token string) int {
		req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, it := apiCall(t, http.DefaultClient, url, "GetShardIterator", `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`, nil)
	if code := control("/runnel/clock/advance", `{"seconds":301}`, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d", code)
	}
	if code := control("/runnel/clock/advance", `{"seconds":301}`, m[1]); code != http.StatusOK {
		t.Fatalf("advancing the clock: %d", code)
	}
	code, out := apiCall(t, http.DefaultClient, url, "GetRecords", fmt.Sprintf(`{"ShardIterator":%q}`, it["ShardIterator"]), nil)
	if code != http.StatusBadRequest || out["__type"] != "ExpiredIteratorException" {
		t.Errorf("GetRecords after the clock moved 301 s: %d %v", code, out)
	}
}

// TestServeDelays shows -stream-delay: a new stream is CREATING first.
func TestServeDelays(t *testing.T) {
	addr, _ := startServe(t, "-stream-delay", "1h", "-metrics=false")
	url := "http://" + addr
	apiCall(t, http.DefaultClient, url, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	_, out := apiCall(t, http.DefaultClient, url, "DescribeStreamSummary", `{"StreamName":"s"}`, nil)
	if status := out["StreamDescriptionSummary"].(map[string]any)["StreamStatus"]; status != "CREATING" {
		t.Errorf("StreamStatus %v, want CREATING", status)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("/metrics served with -metrics=false")
	}
	var logs syncBuffer
	if err := run(t.Context(), []string{"serve", "-reshard-delay", "-1s"}, &logs, nil); err == nil {
		t.Error("a negative delay is taken")
	}
}
