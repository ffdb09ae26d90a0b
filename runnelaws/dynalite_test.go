package runnelaws_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// dynaliteDir holds the npm package that pins dynalite and its start script.
var dynaliteDir = filepath.Join("testdata", "dynalite")

// startDynalite starts a DynamoDB-compatible server (dynalite, in memory,
// on a loopback port of its own) for the test, and returns a client of
// it: static credentials, region us-east-1, and a standard retryer that
// backs off for 5 ms only, without a retry quota, so that the tests'
// retries cost no time. The server stops when the test ends; it also
// exits if the test process dies, as its standard input then closes.
//
// Without node on PATH the test is skipped; with node but without the
// npm packages it fails, saying how to install them.
func startDynalite(t testing.TB) *dynamodb.Client {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: install Node.js 20 or later (dynalite 4 needs it), then run `cd runnelaws/testdata/dynalite && npm ci`, to run the tests against dynalite")
	}
	if _, err := os.Stat(filepath.Join(dynaliteDir, "node_modules", "dynalite", "package.json")); err != nil {
		t.Fatalf("dynalite is not installed in %s: run `cd runnelaws/testdata/dynalite && npm ci`", dynaliteDir)
	}
	cmd := exec.Command(node, "start.js")
	cmd.Dir = dynaliteDir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dynalite: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close() // start.js exits when its input ends
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})

	type line struct {
		s   string
		err error
	}
	first := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(stdout).ReadString('\n')
		first <- line{s, err}
		io.Copy(io.Discard, stdout) // until the server exits
	}()
	var port int
	select {
	case l := <-first:
		if l.err != nil {
			t.Fatalf("dynalite exited before printing its port: %v", l.err)
		}
		if port, err = strconv.Atoi(strings.TrimSpace(l.s)); err != nil {
			t.Fatalf("dynalite printed %q, not a port", l.s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dynalite did not print its port within 20s")
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://127.0.0.1:" + strconv.Itoa(port)),
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
		HTTPClient:   &http.Client{Transport: transport},
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 5 * time.Millisecond, nil })
			o.RateLimiter = ratelimit.None
		}),
	})
	waitDynalite(t, client)
	return client
}

// waitDynalite waits until the server answers (it prints its port once it
// listens, so this normally takes one call).
func waitDynalite(t testing.TB, client *dynamodb.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err == nil {
			return
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("dynalite does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
