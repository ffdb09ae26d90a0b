package server_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
	"github.com/runnel-go/runnel/server/servertest"
)

// tlsServer is a server of a new cluster on two loopback ports, one
// plain (Serve) and one TLS (ServeTLS) with a self-signed certificate,
// that records the protocol each TLS connection negotiated by ALPN.
type tlsServer struct {
	cluster        *runnel.Cluster
	plain, secured string // the URLs
	roots          *x509.CertPool

	mu     sync.Mutex
	protos []string // by TLS connection, as the server saw them
}

func newTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	cert, err := server.SelfSignedCertificate()
	require.NoError(t, err)
	ts := &tlsServer{cluster: runnel.NewCluster(), roots: x509.NewCertPool()}
	t.Cleanup(func() { ts.cluster.Close() })
	ts.roots.AddCert(cert.Leaf)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, VerifyConnection: func(cs tls.ConnectionState) error {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.protos = append(ts.protos, cs.NegotiatedProtocol)
		return nil
	}}
	srv := server.New(ts.cluster)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	secured, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 2)
	go func() { done <- srv.Serve(plain) }()
	go func() { done <- srv.ServeTLS(secured, cfg) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		for range 2 {
			assert.ErrorIs(t, <-done, http.ErrServerClosed)
		}
	})
	ts.plain, ts.secured = "http://"+plain.Addr().String(), "https://"+secured.Addr().String()
	return ts
}

// negotiated returns the protocols of the TLS connections so far.
func (ts *tlsServer) negotiated() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.protos...)
}

// client returns an HTTP client that trusts the server's certificate and
// offers HTTP/2 and HTTP/1.1 by ALPN, or only HTTP/1.1 (as curl --http1.1
// does).
func (ts *tlsServer) client(t *testing.T, http2 bool) *http.Client {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(http2)
	cfg := &tls.Config{RootCAs: ts.roots}
	if !http2 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	tr := &http.Transport{TLSClientConfig: cfg, Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// protoRecorder is an aws.HTTPClient that records the HTTP version of
// each response, as the client saw it.
type protoRecorder struct {
	c      *http.Client
	mu     sync.Mutex
	majors []int
}

func (r *protoRecorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.c.Do(req)
	if err == nil {
		r.mu.Lock()
		r.majors = append(r.majors, resp.ProtoMajor)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *protoRecorder) seen() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.majors...)
}

// tlsSubscribe subscribes to the first shard of a stream from
// TRIM_HORIZON with a new consumer, and returns the data of the first
// records it receives, at least n of them.
func tlsSubscribe(t *testing.T, k *kinesis.Client, streamARN *string, n int) []string {
	t.Helper()
	ctx := t.Context()
	reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String("tls")})
	require.NoError(t, err)
	sub, err := k.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	require.NoError(t, err)
	stream := sub.GetStream()
	defer stream.Close()
	var got []string
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case ev, ok := <-stream.Events():
			require.True(t, ok, "the event stream ended after %v: %v", got, stream.Err())
			e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			require.True(t, ok, "%T", ev)
			for _, r := range e.Value.Records {
				got = append(got, string(r.Data))
			}
		case <-timeout:
			t.Fatalf("events so far: %v", got)
		}
	}
	return got
}

// TestTLSSDK drives the Go SDK over TLS, offering HTTP/2 and HTTP/1.1 as
// it does: the server negotiates HTTP/2 by ALPN for every connection, for
// the stream and record operations and for a SubscribeToShard event
// stream, while the same server goes on serving plain HTTP on its other
// listener.
func TestTLSSDK(t *testing.T) {
	ts := newTLSServer(t)
	rec := &protoRecorder{c: ts.client(t, true)}
	k := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.secured), HTTPClient: rec,
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", "")})
	ctx := t.Context()
	name := aws.String("tls")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	entries := make([]types.PutRecordsRequestEntry, 50)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte(fmt.Sprint("record ", i))}
	}
	put, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: name, Records: entries})
	require.NoError(t, err)
	assert.Zero(t, aws.ToInt32(put.FailedRecordCount))
	shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name})
	require.NoError(t, err)
	require.Len(t, shards.Shards, 1)
	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	assert.Len(t, out.Records, 50)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	got := tlsSubscribe(t, k, d.StreamDescriptionSummary.StreamARN, 50)
	assert.Equal(t, "record 0", got[0])
	assert.Equal(t, "record 49", got[49])

	protos := ts.negotiated()
	require.NotEmpty(t, protos)
	for _, p := range protos {
		assert.Equal(t, "h2", p, "the server negotiated HTTP/2 by ALPN: %v", protos)
	}
	for _, major := range rec.seen() {
		assert.Equal(t, 2, major)
	}

	plain := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.plain),
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", "")})
	list, err := plain.ListStreams(ctx, &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	assert.Equal(t, []string{"tls"}, list.StreamNames, "the plain listener serves the same cluster")
}

// TestTLSHTTP1 serves clients that offer only HTTP/1.1 by ALPN, or no
// ALPN at all, over HTTP/1.1 on the same TLS listener.
func TestTLSHTTP1(t *testing.T) {
	ts := newTLSServer(t)
	rec := &protoRecorder{c: ts.client(t, false)}
	k := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.secured), HTTPClient: rec,
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", "")})
	ctx := t.Context()
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("one"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("one"), PartitionKey: aws.String("k"), Data: []byte("over HTTP/1.1")})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("one")})
	require.NoError(t, err)
	assert.Equal(t, []string{"over HTTP/1.1"}, tlsSubscribe(t, k, d.StreamDescriptionSummary.StreamARN, 1))
	for _, p := range ts.negotiated() {
		assert.Equal(t, "http/1.1", p)
	}
	for _, major := range rec.seen() {
		assert.Equal(t, 1, major)
	}

	// A client that offers no ALPN at all speaks HTTP/1.1.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(ts.secured, "https://"), &tls.Config{RootCAs: ts.roots, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer conn.Close()
	assert.Empty(t, conn.ConnectionState().NegotiatedProtocol)
	body := `{}`
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, resp.ProtoMajor)
}

// TestTLSServertest uses servertest.NewTLS: its Config and Client trust
// its certificate, and speak HTTP/2 to it.
func TestTLSServertest(t *testing.T) {
	srv := servertest.NewTLS(t)
	require.True(t, strings.HasPrefix(srv.URL, "https://127.0.0.1:"), srv.URL)
	require.NotNil(t, srv.Certificate)
	k := kinesis.NewFromConfig(srv.Config())
	_, err := k.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = srv.Cluster.Stream("s")
	require.NoError(t, err)

	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, resp.ProtoMajor)
	assert.Equal(t, "h2", resp.TLS.NegotiatedProtocol)

	_, err = http.DefaultClient.Do(req.Clone(t.Context()))
	var unknown x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &unknown, "a client that does not trust the certificate is refused")
}

// TestTLSNoCertificate refuses a TLS configuration without a certificate,
// and closes the listener as Serve would.
func TestTLSNoCertificate(t *testing.T) {
	c := runnel.NewCluster()
	defer c.Close()
	srv := server.New(c)
	for _, cfg := range []*tls.Config{nil, {}} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		err = srv.ServeTLS(l, cfg)
		require.ErrorIs(t, err, runnel.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "no certificate")
		_, err = l.Accept()
		assert.ErrorIs(t, err, net.ErrClosed)
	}
}

// TestTLSSelfSignedCertificate checks the certificates that
// SelfSignedCertificate makes: an ECDSA P-256 key, the default hosts or
// the given ones, a short validity, trusted as its own authority; and the
// hosts it refuses.
func TestTLSSelfSignedCertificate(t *testing.T) {
	cert, err := server.SelfSignedCertificate()
	require.NoError(t, err)
	leaf := cert.Leaf
	require.NotNil(t, leaf)
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	require.True(t, ok, "%T", cert.PrivateKey)
	assert.Equal(t, elliptic.P256(), key.Curve)
	assert.Equal(t, []string{"localhost"}, leaf.DNSNames)
	require.Len(t, leaf.IPAddresses, 2)
	assert.Equal(t, "127.0.0.1", leaf.IPAddresses[0].String())
	assert.Equal(t, "::1", leaf.IPAddresses[1].String())
	now := time.Now()
	assert.True(t, leaf.NotBefore.Before(now))
	assert.WithinDuration(t, now.Add(30*24*time.Hour), leaf.NotAfter, time.Minute)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
		assert.NoError(t, err, host)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: roots})
	assert.Error(t, err, "not for other hosts")

	other, err := server.SelfSignedCertificate("kinesis.local", "[::1]", "*.example.test", "10.0.0.7")
	require.NoError(t, err)
	assert.Equal(t, []string{"kinesis.local", "*.example.test"}, other.Leaf.DNSNames)
	assert.Len(t, other.Leaf.IPAddresses, 2)
	assert.NotEqual(t, leaf.SerialNumber, other.Leaf.SerialNumber)

	for _, bad := range []string{"", "local host", "localhost:4567", "a..b", "-a.b", "*", "a.*.b", strings.Repeat("a", 64) + ".b"} {
		_, err := server.SelfSignedCertificate(bad)
		require.ErrorIs(t, err, runnel.ErrInvalidArgument, "%q", bad)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", bad))
		var e *runnel.Error
		assert.True(t, errors.As(err, &e))
	}
}
