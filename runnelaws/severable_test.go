package runnelaws_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/runnel-go/runnel"
)

// errCut is how a severed worker's network calls fail, and errStoreCut how
// its lease store's do (as a LeaseTable reports a network failure).
var (
	errCut      = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("the test cut the worker off")}
	errStoreCut = fmt.Errorf("%w: %w", runnel.ErrInternalFailure, errCut)
)

// severable is an HTTP client (for the SDK's Kinesis or DynamoDB client)
// that a test can cut off, as the network of a crashed or partitioned
// worker: after the cut, new requests fail to dial, and the bodies of
// responses already open (a SubscribeToShard event stream) fail to read.
type severable struct {
	next smithyhttp.ClientDo
	cut  atomic.Bool
}

func (s *severable) Do(r *http.Request) (*http.Response, error) {
	if s.cut.Load() {
		return nil, errCut
	}
	resp, err := s.next.Do(r)
	if err == nil {
		resp.Body = &severableBody{ReadCloser: resp.Body, cut: &s.cut}
	}
	return resp, err
}

type severableBody struct {
	io.ReadCloser
	cut *atomic.Bool
}

func (b *severableBody) Read(p []byte) (int, error) {
	if b.cut.Load() {
		return 0, errCut
	}
	n, err := b.ReadCloser.Read(p)
	if b.cut.Load() {
		return 0, errCut
	}
	return n, err
}

// severableStore is a lease store that a test can cut off, as the lease
// table of a crashed or partitioned worker: after the cut, every call
// fails with a retryable error.
type severableStore struct {
	runnel.LeaseStore
	cut atomic.Bool
}

func (s *severableStore) ListLeases(ctx context.Context) ([]runnel.Lease, error) {
	if s.cut.Load() {
		return nil, errStoreCut
	}
	return s.LeaseStore.ListLeases(ctx)
}

func (s *severableStore) PutLease(ctx context.Context, l runnel.Lease, expect int64) error {
	if s.cut.Load() {
		return errStoreCut
	}
	return s.LeaseStore.PutLease(ctx, l, expect)
}

func (s *severableStore) DeleteLease(ctx context.Context, shardID string, expect int64) error {
	if s.cut.Load() {
		return errStoreCut
	}
	return s.LeaseStore.DeleteLease(ctx, shardID, expect)
}
