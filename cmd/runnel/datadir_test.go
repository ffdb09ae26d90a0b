package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-go/runnel"
)

// serving is a runnel serve started by startStoppable.
type serving struct {
	addr string
	logs *syncBuffer
	stop func() error // ends serve as SIGINT does, and returns run's error
}

// startStoppable runs runnel serve with args on a loopback port until
// stop is called (or the test ends).
func startStoppable(t *testing.T, args ...string) serving {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := new(syncBuffer)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...), logs, ready)
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				err = errors.New("serve did not shut down")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve ended with %v", err)
		}
	})
	select {
	case addr := <-ready:
		return serving{addr: addr, logs: logs, stop: stop}
	case err := <-done:
		done <- err // for stop
		t.Fatalf("serve ended: %v\n%s", err, logs.String())
		return serving{}
	}
}

// sdkClient returns a Go SDK v2 client of the server at addr, signing as
// the default account in us-east-1.
func sdkClient(addr string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
		BaseEndpoint:     aws.String("http://" + addr),
		RetryMaxAttempts: 1,
	})
}

// recordData returns the data of records as strings.
func recordData(records []types.Record) []string {
	var out []string
	for _, r := range records {
		out = append(out, string(r.Data))
	}
	return out
}

// TestServeDataDirRestart runs runnel serve -data-dir, writes records and
// reads some through the Go SDK, enables the account's billing
// commitment, and stops it; started again on the same directory, it has
// the stream, the records and the account setting, and GetRecords with
// the iterator of before the restart goes on where it was.
func TestServeDataDirRestart(t *testing.T) {
	dir := t.TempDir()
	for _, policy := range []string{"always", "os", "interval=10ms"} {
		t.Run(policy, func(t *testing.T) {
			dir := filepath.Join(dir, strings.ReplaceAll(policy, "=", "-"))
			ctx := t.Context()
			first := startStoppable(t, "-data-dir", dir, "-sync", policy)
			if log := first.logs.String(); !strings.Contains(log, "sync="+policy) && !strings.Contains(log, `sync="`+policy+`"`) {
				t.Errorf("the log lacks sync=%s:\n%s", policy, log)
			}
			k := sdkClient(first.addr)
			if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
				t.Fatal(err)
			}
			var entries []types.PutRecordsRequestEntry
			for i := range 5 {
				entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: fmt.Appendf(nil, "r%d", i)})
			}
			put, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
			if err != nil || aws.ToInt32(put.FailedRecordCount) != 0 {
				t.Fatalf("PutRecords: %v %+v", err, put)
			}
			it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"),
				ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(2)})
			if err != nil {
				t.Fatal(err)
			}
			if data := recordData(got.Records); !slices.Equal(data, []string{"r0", "r1"}) {
				t.Fatalf("the first GetRecords read %q", data)
			}
			next := got.NextShardIterator
			if _, err := k.UpdateAccountSettings(ctx, &kinesis.UpdateAccountSettingsInput{
				MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled},
			}); err != nil {
				t.Fatal(err)
			}
			if err := first.stop(); err != nil {
				t.Fatalf("the first serve ended with %v\n%s", err, first.logs.String())
			}
			if fi, err := os.Stat(filepath.Join(dir, "server.json")); err != nil || runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
				t.Errorf("server.json, which holds the token key: %v, %v", fi, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "token.key")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("token.key: %v; the token key is in server.json", err)
			}

			second := startStoppable(t, "-data-dir", dir, "-sync", policy)
			k = sdkClient(second.addr)
			streams, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{})
			if err != nil || !slices.Equal(streams.StreamNames, []string{"s"}) {
				t.Fatalf("ListStreams after the restart: %v %v", streams, err)
			}
			got, err = k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next})
			if err != nil {
				t.Fatalf("GetRecords with the iterator of before the restart: %v", err)
			}
			if data := recordData(got.Records); !slices.Equal(data, []string{"r2", "r3", "r4"}) {
				t.Errorf("GetRecords after the restart read %q, want r2 to r4", data)
			}
			for i, r := range got.Records {
				if want := aws.ToString(put.Records[i+2].SequenceNumber); aws.ToString(r.SequenceNumber) != want {
					t.Errorf("record %d has sequence number %s, want %s", i+2, aws.ToString(r.SequenceNumber), want)
				}
			}
			acct, err := k.DescribeAccountSettings(ctx, &kinesis.DescribeAccountSettingsInput{})
			if err != nil {
				t.Fatal(err)
			}
			if c := acct.MinimumThroughputBillingCommitment; c == nil || c.Status != types.MinimumThroughputBillingCommitmentOutputStatusEnabled {
				t.Errorf("the billing commitment after the restart: %+v", c)
			}
		})
	}
}

// TestServeDataDirAccounts shows that the clusters of other accounts and
// regions are kept too, each in its directory.
func TestServeDataDirAccounts(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	client := func(addr string) *kinesis.Client {
		return kinesis.New(kinesis.Options{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("222233334444", "any", ""),
			BaseEndpoint: aws.String("http://" + addr), RetryMaxAttempts: 1})
	}
	first := startStoppable(t, "-data-dir", dir)
	if _, err := client(first.addr).CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("other"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "222233334444", "eu-west-1")); err != nil {
		t.Errorf("the account's cluster directory: %v", err)
	}
	second := startStoppable(t, "-data-dir", dir)
	out, err := client(second.addr).DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("other")})
	if err != nil {
		t.Fatal(err)
	}
	if arn := aws.ToString(out.StreamDescriptionSummary.StreamARN); arn != "arn:aws:kinesis:eu-west-1:222233334444:stream/other" {
		t.Errorf("StreamARN %s", arn)
	}
	streams, err := sdkClient(second.addr).ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil || len(streams.StreamNames) != 0 {
		t.Errorf("the default account lists %v (%v)", streams, err)
	}
}

// TestServeDataDirInUse refuses a second runnel serve on a data
// directory in use, and serves it once the first has ended.
func TestServeDataDirInUse(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock: nothing stops a second serve here")
	}
	dir := t.TempDir()
	first := startStoppable(t, "-data-dir", dir)
	for _, args := range [][]string{{"-data-dir", dir}, {"-data-dir", dir, "-account", "111122223333", "-region", "eu-west-1"}} {
		err := run(t.Context(), append([]string{"serve", "-addr", "127.0.0.1:0"}, args...), new(syncBuffer), nil)
		if err == nil || !strings.Contains(err.Error(), "in use by another runnel serve") || !strings.Contains(err.Error(), dir) {
			t.Errorf("a second serve %q: %v", args, err)
		}
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	startStoppable(t, "-data-dir", dir)
}

// TestServeDataDirErrors refuses data directories it cannot use, with an
// error naming what is wrong, and opens nothing.
func TestServeDataDirErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		args  []string
		want  string
	}{
		{"ShortTokenKey", map[string]string{"server.json": `{"version":1,"tokenKey":"c2hvcnQ=","accounts":[]}`}, nil, "token key is 5 bytes, not 32"},
		{"BadStateFile", map[string]string{"server.json": "{"}, nil, "server.json"},
		{"StateFileVersion", map[string]string{"server.json": `{"version":7,"accounts":[]}`}, nil, "version is 7"},
		{"Account", nil, []string{"-account", "../x"}, `-account "../x" is not 12 digits`},
		{"Region", nil, []string{"-region", "../x"}, `-region "../x"`},
		{"NotADirectory", map[string]string{"streams": ""}, []string{"-data-dir", "streams"}, "streams"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}
			for i := 0; i < len(tc.args); i += 2 {
				if tc.args[i] == "-data-dir" {
					args[len(args)-1] = filepath.Join(dir, tc.args[i+1])
				} else {
					args = append(args, tc.args[i], tc.args[i+1])
				}
			}
			err := run(t.Context(), args, new(syncBuffer), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v; want an error about %q", err, tc.want)
			}
		})
	}
}

// TestServeSyncFlag parses -sync, and refuses a bad value naming the flag,
// and -sync without -data-dir.
func TestServeSyncFlag(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  runnel.SyncPolicy
		err   string
	}{
		{"always", runnel.SyncAlways(), ""},
		{"os", runnel.SyncOS(), ""},
		{"interval=250ms", runnel.SyncInterval(250 * time.Millisecond), ""},
		{"interval=1m", runnel.SyncInterval(time.Minute), ""},
		{"interval=0s", runnel.SyncPolicy{}, "must be positive"},
		{"interval=-1s", runnel.SyncPolicy{}, "must be positive"},
		{"interval=soon", runnel.SyncPolicy{}, `"soon" is not a duration`},
		{"interval", runnel.SyncPolicy{}, "must be always, os or interval=DURATION"},
		{"Always", runnel.SyncPolicy{}, "must be always, os or interval=DURATION"},
		{"", runnel.SyncPolicy{}, "must be always, os or interval=DURATION"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			fs := serveFlags(new(syncBuffer))
			err := fs.Parse([]string{"-sync", tc.value})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "-sync") {
					t.Errorf("%v; want an error of -sync about %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fs.cfg.sync.policy != tc.want {
				t.Errorf("-sync %s is %v", tc.value, fs.cfg.sync)
			}
			if back, err := parseSync(fs.cfg.sync.String()); err != nil || back != tc.want {
				t.Errorf("-sync %s is named %s, which parses as %v, %v", tc.value, fs.cfg.sync, back, err)
			}
		})
	}
	if d := serveFlags(nil).cfg.sync.policy; d != runnel.SyncAlways() {
		t.Errorf("the default is %v", d)
	}
	err := run(t.Context(), []string{"serve", "-sync", "sometimes"}, new(syncBuffer), nil)
	if err == nil || !strings.Contains(err.Error(), `invalid value "sometimes" for flag -sync`) {
		t.Errorf("a bad -sync: %v", err)
	}
	err = run(t.Context(), []string{"serve", "-sync", "os"}, new(syncBuffer), nil)
	if err == nil || !strings.Contains(err.Error(), "-sync os needs -data-dir") {
		t.Errorf("-sync without -data-dir: %v", err)
	}
	var usage syncBuffer
	if err := run(t.Context(), []string{"-h"}, &usage, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{"-data-dir", "-sync", "interval=DURATION"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("the usage lacks %s:\n%s", want, usage.String())
		}
	}
}
