// Package servertest starts a Kinesis API server for a Go test, in the
// spirit of net/http/httptest: one line gives an aws.Config for the AWS
// SDK for Go v2 that talks to a runnel Cluster on a loopback port.
package servertest

import (
	"errors"
	"net"
	"net/http"
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
	// URL is the server's endpoint, "http://127.0.0.1:<port>".
	URL string
	// Region is the region of the cluster's ARNs and of Config.
	Region string

	srv  *server.Server
	done chan error
}

// New starts a server of a new Cluster (made with opts) on a loopback port
// and stops both at t.Cleanup.
func New(t testing.TB, opts ...runnel.ClusterOption) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("servertest: listening on a loopback port: %v", err)
	}
	const region = "us-east-1"
	c := runnel.NewCluster(append([]runnel.ClusterOption{runnel.WithRegion(region)}, opts...)...)
	s := &Server{Cluster: c, URL: "http://" + l.Addr().String(), Region: region, srv: server.New(c), done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(l) }()
	t.Cleanup(func() {
		s.srv.Close()
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("servertest: the server stopped with %v", err)
		}
		c.Close()
	})
	return s
}

// Config returns an aws.Config for the server: its endpoint, its region
// and static credentials. Pass it to kinesis.NewFromConfig.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	}
}
