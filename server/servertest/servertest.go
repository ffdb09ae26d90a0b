// Package servertest starts a Kinesis API server for a Go test, in the
// spirit of net/http/httptest: one line gives an aws.Config for the AWS
// SDK for Go v2 that talks to a runnel Cluster on a loopback port, over
// plain HTTP (New) or TLS (NewTLS).
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
)

// Server is a running test server.
type Server struct {
	// Cluster is the cluster the server serves; the test may use it
	// directly too (to inject faults, read Stats, …).
	Cluster *runnel.Cluster
	// URL is the server's endpoint, "http://127.0.0.1:<port>", or
	// "https://127.0.0.1:<port>" for NewTLS. With Options.InMemory it is
	// "http://runnel.invalid", which only Client and Config can reach.
	URL string
	// Region is the region of the cluster's ARNs and of Config.
	Region string
	// Certificate is the self-signed certificate that a server of NewTLS
	// serves, and that Client and Config trust; nil for New.
	Certificate *x509.Certificate
	// API is the Kinesis API server itself (for its ControlToken, …).
	API *server.Server

	client *http.Client // trusts Certificate; nil for New
	done   chan error
}

// New starts a server of a new Cluster (made with opts) on a loopback port
// and stops both at t.Cleanup. It speaks HTTP/1.1 and plain-text HTTP/2.
func New(t testing.TB, opts ...runnel.ClusterOption) *Server {
	t.Helper()
	return Start(t, Options{Cluster: opts})
}

// NewTLS is New over TLS, with a new self-signed certificate for
// 127.0.0.1: it serves HTTP/2 or HTTP/1.1, as the client picks by ALPN.
// Its Config and Client trust the certificate.
func NewTLS(t testing.TB, opts ...runnel.ClusterOption) *Server {
	t.Helper()
	return Start(t, Options{Cluster: opts, TLS: true})
}

// Options configure Start.
type Options struct {
	// Cluster are the options of the server's cluster.
	Cluster []runnel.ClusterOption
	// Server are the server's options: server.WithMetrics,
	// server.WithControlAPI, server.WithCredentials, …
	Server []server.Option
	// TLS serves TLS, as NewTLS does.
	TLS bool
	// InMemory listens on no port: Client and Config dial the server over
	// in-memory connections (net.Pipe), so that a test of AWS SDK code can
	// run in a testing/synctest bubble, in virtual time. URL is then
	// "http://runnel.invalid". It cannot be combined with TLS.
	InMemory bool
}

// pipeListener is a net.Listener of in-memory connections, which dial
// makes.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial connects to the listener, as a Transport's DialContext.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, srv := net.Pipe()
	select {
	case l.conns <- srv:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pipeAddr is the address of a pipeListener.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "runnel.invalid" }

// Start starts a server as New and NewTLS do, with options for the
// server too.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	useTLS, opts := o.TLS, o.Cluster
	if useTLS && o.InMemory {
		t.Fatalf("servertest: TLS and InMemory cannot be combined")
	}
	var cert tls.Certificate
	if useTLS {
		var err error
		if cert, err = server.SelfSignedCertificate("127.0.0.1"); err != nil {
			t.Fatalf("servertest: making a certificate: %v", err)
		}
	}
	var l net.Listener
	if o.InMemory {
		l = newPipeListener()
	} else {
		var err error
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatalf("servertest: listening on a loopback port: %v", err)
		}
	}
	const region = "us-east-1"
	c := runnel.NewCluster(append([]runnel.ClusterOption{runnel.WithRegion(region)}, opts...)...)
	srv := server.New(c, o.Server...)
	s := &Server{Cluster: c, URL: "http://" + l.Addr().String(), Region: c.Region(), API: srv, done: make(chan error, 1)}
	if pl, ok := l.(*pipeListener); ok {
		s.client = &http.Client{Transport: &http.Transport{DialContext: pl.dial}}
	}
	if useTLS {
		s.URL = "https://" + l.Addr().String()
		s.Certificate = cert.Leaf
		roots := x509.NewCertPool()
		roots.AddCert(cert.Leaf)
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: p}}
		go func() { s.done <- s.API.ServeTLS(l, &tls.Config{Certificates: []tls.Certificate{cert}}) }()
	} else {
		go func() { s.done <- s.API.Serve(l) }()
	}
	t.Cleanup(func() {
		s.API.Close()
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("servertest: the server stopped with %v", err)
		}
		if s.client != nil {
			s.client.CloseIdleConnections()
		}
		c.Close()
	})
	return s
}

// Client returns an HTTP client for the server: for NewTLS, one that
// trusts its certificate and offers HTTP/2 and HTTP/1.1 by ALPN; for
// InMemory, one that dials it in memory; for New, http.DefaultClient.
func (s *Server) Client() *http.Client {
	if s.client != nil {
		return s.client
	}
	return http.DefaultClient
}

// Config returns an aws.Config for the server: its endpoint, its region
// and static credentials, and for NewTLS an HTTP client that trusts the
// server's certificate. Pass it to kinesis.NewFromConfig.
func (s *Server) Config() aws.Config {
	cfg := aws.Config{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	}
	if s.client != nil {
		cfg.HTTPClient = s.client
	}
	return cfg
}
