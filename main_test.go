package runnel

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// Cluster a test creates must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestStream returns a new cluster with one stream named "test", in the
// style of httptest.NewServer: both are closed when the test ends.
//
// Inside a testing/synctest bubble pass the bubble's t: the cluster is then
// created inside the bubble (its sweep goroutine belongs to it) and the
// cleanup, which runs inside the bubble too, closes it there.
func newTestStream(t testing.TB, opts ...StreamOption) (*Cluster, *Stream) {
	t.Helper()
	c := NewCluster()
	t.Cleanup(func() { c.Close() })
	s, err := c.CreateStream(context.Background(), "test", opts...)
	require.NoError(t, err)
	return c, s
}

// putString writes one record and fails the test on error.
func putString(t testing.TB, s *Stream, key, data string) PutRecordOutput {
	t.Helper()
	out, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: key, Data: []byte(data)})
	require.NoError(t, err)
	return out
}

// shardIDs lists the ids of the stream's shards.
func shardIDs(t testing.TB, s *Stream) []string {
	t.Helper()
	out, err := s.ListShards(context.Background(), ListShardsInput{})
	require.NoError(t, err)
	ids := make([]string, len(out.Shards))
	for i, sh := range out.Shards {
		ids[i] = sh.ShardID
	}
	return ids
}

// iterator returns an iterator for a shard and fails the test on error.
func iterator(t testing.TB, s *Stream, shardID string, from StartingPosition) ShardIterator {
	t.Helper()
	it, err := s.GetShardIterator(context.Background(), GetShardIteratorInput{ShardID: shardID, StartingPosition: from})
	require.NoError(t, err)
	return it
}

// readAll reads a shard from the position to its tip with GetRecords and
// returns the records. It fails the test if a call is throttled: use
// Unlimited(), or keep to a few calls per second.
func readAll(t testing.TB, s *Stream, shardID string, from StartingPosition) []Record {
	t.Helper()
	it := iterator(t, s, shardID, from)
	var recs []Record
	for range 10_000 {
		out, err := s.GetRecords(context.Background(), GetRecordsInput{ShardIterator: it})
		require.NoError(t, err)
		recs = append(recs, out.Records...)
		if len(out.Records) == 0 && out.MillisBehindLatest == 0 {
			return recs
		}
		it = out.NextShardIterator
		require.False(t, it.IsZero(), "open shard returned no next iterator")
	}
	t.Fatal("readAll did not catch up")
	return nil
}

// datas returns the records' data as strings.
func datas(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

// injectFault installs a fault and fails the test if it is not valid.
func injectFault(t testing.TB, c *Cluster, f Fault) (remove func()) {
	t.Helper()
	remove, err := c.InjectFault(f)
	require.NoError(t, err)
	return remove
}
