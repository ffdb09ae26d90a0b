package runnel_test

import (
	"context"
	"testing"

	"github.com/runnel-go/runnel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireReader implements runnel.StreamReader with the exported API only, as
// an adapter over the Kinesis API would: everything crosses the seam as
// Kinesis's wire values (iterator tokens and sequence numbers as strings,
// records copied), so no runnel internals leak through it.
type wireReader struct{ s *runnel.Stream }

func (w wireReader) ListShards(ctx context.Context, in runnel.ListShardsInput) (runnel.ListShardsOutput, error) {
	return w.s.ListShards(ctx, in)
}

func (w wireReader) GetShardIterator(ctx context.Context, in runnel.GetShardIteratorInput) (runnel.ShardIterator, error) {
	from := in.StartingPosition
	if !from.SequenceNumber.IsZero() {
		n, err := runnel.ParseSequenceNumber(from.SequenceNumber.String())
		if err != nil {
			return runnel.ShardIterator{}, err
		}
		from.SequenceNumber = n
	}
	it, err := w.s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: in.ShardID, StartingPosition: from})
	return runnel.OpaqueShardIterator(it.String()), err
}

func (w wireReader) GetRecords(ctx context.Context, in runnel.GetRecordsInput) (runnel.GetRecordsOutput, error) {
	in.ShardIterator = runnel.OpaqueShardIterator(in.ShardIterator.String())
	in.Buffer = nil
	out, err := w.s.GetRecords(ctx, in)
	if err != nil {
		return out, err
	}
	recs := make([]runnel.Record, len(out.Records))
	for i, r := range out.Records {
		seq, err := runnel.ParseSequenceNumber(r.SequenceNumber.String())
		if err != nil {
			return runnel.GetRecordsOutput{}, err
		}
		recs[i] = runnel.Record{SequenceNumber: seq, PartitionKey: r.PartitionKey, Data: append([]byte(nil), r.Data...), ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp}
	}
	out.Records = recs
	out.NextShardIterator = runnel.OpaqueShardIterator(out.NextShardIterator.String())
	return out, nil
}

// readLineage reads every record of a stream through a StreamReader,
// finishing parents before their children, and returns the data in read
// order. It uses nothing but the interface.
func readLineage(t *testing.T, r runnel.StreamReader) []string {
	t.Helper()
	ctx := t.Context()
	out, err := r.ListShards(ctx, runnel.ListShardsInput{})
	require.NoError(t, err)
	require.Empty(t, out.NextToken)
	finished := map[string]bool{}
	var data []string
	for {
		ready := runnel.ReadableShards(out.Shards, func(id string) bool { return finished[id] })
		if len(ready) == 0 {
			return data
		}
		for _, sh := range ready {
			it, err := r.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: sh.ShardID, StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
			require.NoError(t, err)
			for !it.IsZero() {
				got, err := r.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: it})
				require.NoError(t, err)
				for _, rec := range got.Records {
					data = append(data, string(rec.Data))
				}
				if sh.Open() && len(got.Records) == 0 && got.MillisBehindLatest == 0 {
					break // caught up with an open shard
				}
				it = got.NextShardIterator
			}
			finished[sh.ShardID] = true
		}
	}
}

// TestStreamReaderOverTheWire reads a resharded stream through *Stream and
// through an adapter that passes only wire values: both read the same
// records in the same order, and an AFTER_SEQUENCE_NUMBER iterator built
// from a sequence number's text resumes where it should.
func TestStreamReaderOverTheWire(t *testing.T) {
	ctx := t.Context()
	c := runnel.NewCluster()
	defer c.Close()
	s, err := c.CreateStream(ctx, "wire", runnel.WithShardCount(2), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	put := func(key, data string) runnel.PutRecordOutput {
		out, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: key, Data: []byte(data)})
		require.NoError(t, err)
		return out
	}
	first := put("a", "a0")
	put("b", "b0")
	_, err = s.UpdateShardCount(ctx, 4)
	require.NoError(t, err)
	put("a", "a1")
	put("b", "b1")

	direct := readLineage(t, s)
	wire := readLineage(t, wireReader{s})
	assert.Equal(t, direct, wire)
	assert.ElementsMatch(t, []string{"a0", "a1", "b0", "b1"}, direct)

	var r runnel.StreamReader = wireReader{s}
	seq, err := runnel.ParseSequenceNumber(first.SequenceNumber.String())
	require.NoError(t, err)
	it, err := r.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: first.ShardID, StartingPosition: runnel.StartingPosition{Type: runnel.AtSequenceNumber, SequenceNumber: seq}})
	require.NoError(t, err)
	assert.Empty(t, it.ShardID(), "an opaque iterator names no shard")
	got, err := r.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)
	require.NotEmpty(t, got.Records)
	assert.Equal(t, "a0", string(got.Records[0].Data))
	assert.Zero(t, got.Records[0].SequenceNumber.Cmp(first.SequenceNumber))

	_, err = s.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: runnel.OpaqueShardIterator("AAAA-not-a-runnel-token")})
	assert.ErrorIs(t, err, runnel.ErrInvalidArgument, "a token runnel did not issue")
}
