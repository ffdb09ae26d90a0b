package runnelaws_test

import (
	"context"
	"net/http/httptrace"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/runnel-go/runnel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdapterKeepsConnections: smithy-go closes a request's body when the
// response arrives, and net/http, still draining the body, may take that
// for a write error and drop the connection, ending a SubscribeToShard
// stream with it. Over in-memory pipes that happens to most requests of a
// bare SDK client (though not in every run); through the adapter, to none.
func TestAdapterKeepsConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, w, _ := newAdapter(t, 2)
		var failed atomic.Int64
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err != nil {
				failed.Add(1)
			}
		}})
		for range 200 {
			_, err := w.ListShards(ctx, runnel.ListShardsInput{})
			require.NoError(t, err)
		}
		assert.Zero(t, failed.Load(), "requests whose connection net/http dropped after writing them")
	})
}
