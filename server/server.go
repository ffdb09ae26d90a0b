// Package server serves the Amazon Kinesis Data Streams API over HTTP from
// a runnel Cluster, so that code written against the AWS SDKs can run
// against an in-process engine. It speaks the API as the SDKs send it:
// POST / with X-Amz-Target: Kinesis_20131202.<Operation> and a JSON 1.1 or
// CBOR 1.1 body, over HTTP/1.1 and plain-text HTTP/2 (h2c with prior
// knowledge) with Serve, or HTTPS with HTTP/2 by ALPN with ServeTLS, and
// SubscribeToShard as an AWS event stream.
//
// It serves every operation of the Kinesis API model. Channels, account
// settings and resource policies are kept and returned, not acted on; the
// few request fields that are not served (StreamId, DryRun) are refused,
// not ignored. It serves one cluster per account and region
// (WithClusters), can verify AWS Signature Version 4 (WithCredentials),
// hands out iterators and NextTokens that are authenticated with a key of
// its own (WithTokenKey), can keep its account settings, channels and
// token key in a file that survives a restart (WithStateFile), and can
// serve Prometheus metrics (WithMetrics) and a control API for tests in
// any language (WithControlAPI).
//
// The package is a nested module, so that users of the core runnel
// package never pull its dependencies. Package servertest starts a server
// for a Go test in one line and returns an aws.Config for it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-go/runnel"
)

// Server serves the Kinesis API for one Cluster. It is an http.Handler;
// Serve runs it on a listener. All methods are safe for concurrent use.
type Server struct {
	cluster    *runnel.Cluster // the default account's and region's
	newCluster func(account, region string) (*runnel.Cluster, error)
	accounts   map[string]string // access key → account id
	log        *slog.Logger
	paths      map[string]http.Handler // the server's own endpoints, by exact path; never "/"
	tokenKey   []byte                  // authenticates iterators and NextTokens (tokens.go)
	http       *http.Server
	requests   atomic.Uint64 // numbers the request ids

	// credentials are the access keys requests must be signed with, by
	// access key (WithCredentials); nil: signatures are not verified.
	credentials map[string]Credential
	// credentialsErr is what was wrong with the credentials given to
	// WithCredentials; every request fails with it.
	credentialsErr error

	// statePath is the state file (WithStateFile; "": none), and stateErr
	// what was wrong reading it (or saving a new token key in it) at New:
	// every request fails with it, and the file is never written. stateKey
	// is the token key the file holds (nil: none yet), which is tokenKey
	// unless WithTokenKey gave another; set at New only. stateMu serializes
	// the file's writes (state.go, which writes down the lock order).
	statePath string
	stateErr  error
	stateKey  []byte
	stateMu   sync.Mutex

	// streams are the running event streams (SubscribeToShard); their
	// context ends when the server shuts down or closes.
	mu          sync.Mutex
	clusters    map[tenant]*runnel.Cluster // guarded by mu: the clusters made for other accounts and regions
	kept        map[tenant]*kept           // guarded by mu: what the server keeps of each account and region
	closed      bool                       // guarded by mu: no event stream starts, no cluster is made
	streams     sync.WaitGroup             // added to under mu, while not closed
	streamsCtx  context.Context
	stopStreams context.CancelFunc
}

// startStream counts an event stream that starts, unless the server is
// closed.
func (s *Server) startStream() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.streams.Add(1)
	return true
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets where the server logs failed requests (at debug level)
// and internal failures (at error level). Default: nowhere.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns a server of the cluster's streams. The caller keeps
// ownership of the cluster and closes it after the server. With
// WithStateFile it reads the server's state, and may write the file to
// save a new token key: see WithStateFile, and Err for what a file that
// cannot be read or written does.
func New(c *runnel.Cluster, opts ...Option) *Server {
	s := &Server{cluster: c, log: slog.New(slog.DiscardHandler), paths: make(map[string]http.Handler)}
	s.streamsCtx, s.stopStreams = context.WithCancel(context.Background())
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	s.openState() // with WithStateFile: may take the token key from the file
	if s.tokenKey == nil {
		s.tokenKey = newTokenKey()
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true) // the JavaScript SDK v3 speaks HTTP/2 to every operation
	p.SetHTTP2(true)            // over TLS, negotiated by ALPN (ServeTLS)
	s.http = &http.Server{
		Handler:           s,
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // an idle keep-alive connection is not held forever
		MaxHeaderBytes:    64 << 10,
	}
	s.http.RegisterOnShutdown(s.stopStreams) // event streams would never finish on their own
	return s
}

// Serve accepts connections on l until Close; it returns
// http.ErrServerClosed after Close. A server whose state file could not be
// read (Err) closes l and returns that error at once.
func (s *Server) Serve(l net.Listener) error {
	if s.stateErr != nil {
		l.Close()
		return s.stateErr
	}
	return s.http.Serve(l)
}

// Close stops the server: it closes its listeners and connections, ends
// the event streams and waits for them, and closes the clusters it made
// (see WithClusters), returning their errors (a durable cluster's Close
// writes its last records). It does not close the cluster given to New.
// It may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	made := s.clusters
	s.mu.Unlock()
	s.stopStreams()
	err := s.http.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	s.streams.Wait()
	errs := []error{err}
	for t, c := range made {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the cluster of account %s in %s: %w", t.account, t.region, err))
		}
	}
	return errors.Join(errs...)
}

// Shutdown stops the server gracefully: no new connections, event streams
// end (their clients see the stream close, and subscribe again elsewhere),
// and other in-flight requests finish, until ctx ends. Call Close after it
// to close the clusters the server made (WithClusters).
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
