package runnel_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runnel-go/runnel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The tests of this file check, through the public API only, what a durable
// cluster (runnel.Open) promises to keep across Close and Open. Each works
// in its own t.TempDir(). The crash tests are in crash_test.go.

// openDurable opens the durable cluster in dir and closes it when the test
// ends (Close may be called earlier: a second Close does nothing).
func openDurable(t testing.TB, dir string, opts ...runnel.ClusterOption) *runnel.Cluster {
	t.Helper()
	c, err := runnel.Open(dir, opts...)
	require.NoError(t, err, "Open(%s)", dir)
	t.Cleanup(func() { c.Close() })
	return c
}

// closeDurable closes c and fails the test if Close fails.
func closeDurable(t testing.TB, c *runnel.Cluster) {
	t.Helper()
	require.NoError(t, c.Close(), "Close")
}

// storedRecord is a record as read back, copied out of the stream's memory
// (which a closed cluster releases).
type storedRecord struct {
	Shard     string
	Seq       runnel.SequenceNumber
	Key       string
	Data      string
	ArrivalMs int64
}

func (r storedRecord) String() string {
	return fmt.Sprintf("%s %s key=%s data=%.40q arrival=%d", r.Shard, r.Seq, r.Key, r.Data, r.ArrivalMs)
}

// allShards lists every shard of s, following NextTokens.
func allShards(t testing.TB, s *runnel.Stream) []runnel.Shard {
	t.Helper()
	var shards []runnel.Shard
	in := runnel.ListShardsInput{}
	for {
		out, err := s.ListShards(context.Background(), in)
		require.NoError(t, err, "ListShards")
		shards = append(shards, out.Shards...)
		if out.NextToken == "" {
			return shards
		}
		in = runnel.ListShardsInput{NextToken: out.NextToken}
	}
}

// readShardFrom reads shard shardID with GetRecords from an iterator to
// its tip (or the end of a closed shard) and returns its records, copied.
func readShardFrom(t testing.TB, s *runnel.Stream, shardID string, it runnel.ShardIterator) []storedRecord {
	t.Helper()
	var recs []storedRecord
	for range 100_000 {
		out, err := s.GetRecords(context.Background(), runnel.GetRecordsInput{ShardIterator: it})
		require.NoError(t, err, "GetRecords on %s", shardID)
		for _, r := range out.Records {
			recs = append(recs, storedRecord{Shard: shardID, Seq: r.SequenceNumber, Key: r.PartitionKey,
				Data: string(r.Data), ArrivalMs: r.ApproximateArrivalTimestamp.UnixMilli()})
		}
		if out.NextShardIterator.IsZero() || (len(out.Records) == 0 && out.MillisBehindLatest == 0) {
			return recs
		}
		it = out.NextShardIterator
	}
	t.Fatal("the shard was not read to its tip")
	return nil
}

// readShard reads a shard from TRIM_HORIZON.
func readShard(t testing.TB, s *runnel.Stream, shardID string) []storedRecord {
	t.Helper()
	it, err := s.GetShardIterator(context.Background(), runnel.GetShardIteratorInput{ShardID: shardID,
		StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
	require.NoError(t, err, "GetShardIterator(%s, TRIM_HORIZON)", shardID)
	return readShardFrom(t, s, shardID, it)
}

// readStream reads every shard of s from TRIM_HORIZON, parents before
// their children (ReadableShards), and returns the records in that order.
func readStream(t testing.TB, s *runnel.Stream) []storedRecord {
	t.Helper()
	shards := allShards(t, s)
	finished := map[string]bool{}
	var recs []storedRecord
	for {
		ready := runnel.ReadableShards(shards, func(id string) bool { return finished[id] })
		if len(ready) == 0 {
			break
		}
		for _, sh := range ready {
			recs = append(recs, readShard(t, s, sh.ShardID)...)
			finished[sh.ShardID] = true
		}
	}
	require.Len(t, finished, len(shards), "every listed shard is readable after its parents")
	return recs
}

// putAll writes records with PutRecords (at most 500 a call) and fails the
// test if any record fails. It returns the results in request order.
func putAll(t testing.TB, s *runnel.Stream, entries []runnel.PutRecordsEntry) []runnel.PutRecordsResult {
	t.Helper()
	var results []runnel.PutRecordsResult
	for len(entries) > 0 {
		n := min(len(entries), runnel.MaxPutRecordsEntries)
		out, err := s.PutRecords(context.Background(), runnel.PutRecordsInput{Records: entries[:n]})
		require.NoError(t, err, "PutRecords")
		require.Zero(t, out.FailedRecordCount, "PutRecords failed records: %v", out.Records)
		results = append(results, out.Records...)
		entries = entries[n:]
	}
	return results
}

// entries makes n records over keys key-0 … key-(keys-1), with data
// "<prefix>-<i>" padded with dots to size bytes.
func entries(prefix string, n, keys, size int) []runnel.PutRecordsEntry {
	out := make([]runnel.PutRecordsEntry, n)
	for i := range out {
		data := fmt.Sprintf("%s-%d", prefix, i)
		if len(data) < size {
			data += strings.Repeat(".", size-len(data))
		}
		out[i] = runnel.PutRecordsEntry{PartitionKey: fmt.Sprintf("key-%d", i%keys), Data: []byte(data)}
	}
	return out
}

// maxSeqByShard returns the largest sequence number of each shard's records.
func maxSeqByShard(recs []storedRecord) map[string]runnel.SequenceNumber {
	out := map[string]runnel.SequenceNumber{}
	for _, r := range recs {
		if r.Seq.Cmp(out[r.Shard]) > 0 {
			out[r.Shard] = r.Seq
		}
	}
	return out
}

// normalizeSummary makes a summary comparable with one read back after a
// restart: its time without a monotonic clock reading, in UTC.
func normalizeSummary(s runnel.StreamSummary) runnel.StreamSummary {
	s.StreamCreationTimestamp = s.StreamCreationTimestamp.UTC()
	return s
}

// normalizeConsumer is normalizeSummary for a consumer.
func normalizeConsumer(c runnel.StreamConsumer) runnel.StreamConsumer {
	c.ConsumerCreationTimestamp = c.ConsumerCreationTimestamp.UTC()
	return c
}

// TestDurableReopenKeepsRecords: every record written before Close is read
// back after Open, with the same sequence number, data, partition key,
// arrival time and order; the stream's summary and statistics are the
// same; and new records get larger sequence numbers than the old ones of
// their shard. A second Close and Open changes nothing.
func TestDurableReopenKeepsRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []runnel.ClusterOption
	}{
		{"always", nil},
		{"interval", []runnel.ClusterOption{runnel.WithSync(runnel.SyncInterval(50 * time.Millisecond))}},
		{"os", []runnel.ClusterOption{runnel.WithSync(runnel.SyncOS())}},
		{"small segments and cache", []runnel.ClusterOption{runnel.WithSegmentSize(4 << 10), runnel.WithCacheSize(8 << 10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			c := openDurable(t, dir, tc.opts...)
			s, err := c.CreateStream(ctx, "orders", runnel.WithShardCount(3), runnel.WithLimits(runnel.Unlimited()))
			require.NoError(t, err)
			putAll(t, s, entries("batch", 1200, 17, 100))
			for i := range 30 { // PutRecord too, with a key of its own
				_, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "single", Data: fmt.Appendf(nil, "single-%d", i)})
				require.NoError(t, err)
			}
			putAll(t, s, entries("large", 40, 3, 20<<10)) // records larger than a small segment
			before := readStream(t, s)
			require.Len(t, before, 1270)
			summary, err := s.Describe(ctx)
			require.NoError(t, err)
			shards := allShards(t, s)
			stats := s.Stats()
			closeDurable(t, c)

			for round := range 2 {
				c = openDurable(t, dir, tc.opts...)
				s, err = c.Stream("orders")
				require.NoError(t, err, "round %d", round)
				names, err := c.ListStreams(ctx)
				require.NoError(t, err)
				assert.Equal(t, []string{"orders"}, names)
				after := readStream(t, s)
				require.Equal(t, len(before), len(after), "round %d: records read back", round)
				for i := range before {
					if before[i] != after[i] {
						require.Equal(t, before[i], after[i], "round %d: record %d differs", round, i)
					}
				}
				got, err := s.Describe(ctx)
				require.NoError(t, err)
				assert.Equal(t, normalizeSummary(summary), normalizeSummary(got), "round %d: DescribeStreamSummary", round)
				assert.Equal(t, shards, allShards(t, s), "round %d: ListShards", round)
				st := s.Stats()
				assert.Equal(t, stats.Total.RecordsRetained, st.Total.RecordsRetained, "round %d: RecordsRetained", round)
				assert.Equal(t, stats.Total.BytesRetained, st.Total.BytesRetained, "round %d: BytesRetained", round)
				assert.Positive(t, st.Total.DiskBytes, "round %d: DiskBytes of a durable stream", round)
				assert.Equal(t, stats.Total.RecordsPut, st.Total.RecordsPut, "round %d: RecordsPut", round)
				assert.Equal(t, stats.Total.BytesPut, st.Total.BytesPut, "round %d: BytesPut", round)
				closeDurable(t, c)
			}

			// New records go after the old ones.
			c = openDurable(t, dir, tc.opts...)
			s, err = c.Stream("orders")
			require.NoError(t, err)
			old := maxSeqByShard(before)
			results := putAll(t, s, entries("new", 300, 17, 100))
			for _, r := range results {
				assert.Positive(t, r.SequenceNumber.Cmp(old[r.ShardID]), "new record %s on %s is not above the old %s", r.SequenceNumber, r.ShardID, old[r.ShardID])
			}
			after := readStream(t, s)
			assert.Len(t, after, len(before)+300)
			closeDurable(t, c)
		})
	}
}

// TestDurableReopenKeepsLineage: after SplitShard, MergeShards and
// UpdateShardCount, with records in every generation, ListShards (lineage,
// hash key ranges, starting and ending sequence numbers) and a read that
// follows lineage are the same after Close and Open, and writes go to the
// same open shards.
func TestDurableReopenKeepsLineage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openDurable(t, dir)
	s, err := c.CreateStream(ctx, "lineage", runnel.WithShardCount(2), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	putAll(t, s, entries("gen1", 200, 11, 50))
	shards := allShards(t, s)
	require.NoError(t, s.SplitShard(ctx, shards[0].ShardID, shards[0].HashKeyRange.Mid()))
	putAll(t, s, entries("gen2", 200, 11, 50))
	open := func() []runnel.Shard {
		var out []runnel.Shard
		for _, sh := range allShards(t, s) {
			if sh.Open() {
				out = append(out, sh)
			}
		}
		slices.SortFunc(out, func(a, b runnel.Shard) int { return a.HashKeyRange.StartingHashKey.Cmp(b.HashKeyRange.StartingHashKey) })
		return out
	}
	o := open()
	require.Len(t, o, 3)
	require.NoError(t, s.MergeShards(ctx, o[1].ShardID, o[2].ShardID))
	putAll(t, s, entries("gen3", 200, 11, 50))
	_, err = s.UpdateShardCount(ctx, 4)
	require.NoError(t, err)
	putAll(t, s, entries("gen4", 200, 11, 50))

	before := readStream(t, s)
	require.Len(t, before, 800)
	listing := allShards(t, s)
	var closed int
	for _, sh := range listing {
		if !sh.Open() {
			closed++
			assert.NotZero(t, sh.SequenceNumberRange.EndingSequenceNumber)
		}
	}
	require.Positive(t, closed)
	openBefore := open()
	closeDurable(t, c)

	c = openDurable(t, dir)
	s, err = c.Stream("lineage")
	require.NoError(t, err)
	assert.Equal(t, listing, allShards(t, s), "ListShards after Open")
	assert.Equal(t, openBefore, open(), "open shards after Open")
	assert.Equal(t, before, readStream(t, s), "records read along lineage after Open")
	sum, err := s.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, runnel.StatusActive, sum.StreamStatus)
	assert.Equal(t, 4, sum.OpenShardCount)

	// A key's new records go to the shard its old records of the last
	// generation went to.
	lastShard := map[string]string{}
	for _, r := range before {
		lastShard[r.Key] = r.Shard
	}
	for i, r := range putAll(t, s, entries("gen5", 44, 11, 50)) {
		key := fmt.Sprintf("key-%d", i%11)
		assert.Equal(t, lastShard[key], r.ShardID, "key %s", key)
	}
	// Lineage still works for resharding after a restart.
	_, err = s.UpdateShardCount(ctx, 2)
	require.NoError(t, err)
	putAll(t, s, entries("gen6", 44, 11, 50))
	assert.Len(t, readStream(t, s), 800+88)
	closeDurable(t, c)
}

// TestDurableReopenKeepsSettings: retention, tags, encryption and its
// history, enhanced monitoring, the record size, the resource policy, the
// capacity mode and its switches, registered consumers (same ARN, ACTIVE)
// and the UpdateShardCount calls of the last 24 hours are the same after
// Close and Open: the call limits count the calls made before the restart
// until they are 24 hours old (virtual time).
func TestDurableReopenKeepsSettings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		c := openDurable(t, dir)
		s, err := c.CreateStream(ctx, "settings", runnel.WithShardCount(2), runnel.WithUpdateShardCountLimit(2),
			runnel.WithTags(map[string]string{"team": "payments", "tmp": "x"}), runnel.WithLimits(runnel.Unlimited()))
		require.NoError(t, err)

		_, err = s.UpdateShardCount(ctx, 4)
		require.NoError(t, err)
		_, err = s.UpdateShardCount(ctx, 2)
		require.NoError(t, err)
		_, err = s.UpdateShardCount(ctx, 4)
		require.ErrorIs(t, err, runnel.ErrLimitExceeded, "precondition: the limit of 2 calls is reached")

		require.NoError(t, s.IncreaseRetentionPeriod(ctx, 72*time.Hour))
		require.NoError(t, s.AddTags(ctx, map[string]string{"env": "prod"}))
		require.NoError(t, s.RemoveTags(ctx, []string{"tmp"}))
		_, err = s.EnableEnhancedMonitoring(ctx, []string{"IncomingBytes", "OutgoingRecords"})
		require.NoError(t, err)
		require.NoError(t, s.UpdateMaxRecordSize(ctx, 2<<20))
		policy := `{"Version":"2012-10-17","Statement":[]}`
		require.NoError(t, c.PutResourcePolicy(ctx, s.ARN(), policy))

		// Encryption history: records written while encrypted stay KMS.
		plain, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("plain")})
		require.NoError(t, err)
		require.Equal(t, runnel.EncryptionNone, plain.EncryptionType)
		time.Sleep(time.Millisecond) // the records arrive in different milliseconds (virtual time)
		require.NoError(t, s.StartEncryption(ctx, "alias/my-key"))
		encrypted, err := s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("encrypted")})
		require.NoError(t, err)
		require.Equal(t, runnel.EncryptionKMS, encrypted.EncryptionType)
		recs := readShard(t, s, encrypted.ShardID)
		require.Len(t, recs, 2)
		plainAt, encryptedAt := time.UnixMilli(recs[0].ArrivalMs), time.UnixMilli(recs[1].ArrivalMs)

		con, err := s.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "fan-out-app", Tags: map[string]string{"owner": "me"}})
		require.NoError(t, err)
		require.Equal(t, runnel.StreamConsumerActive, con.ConsumerStatus)
		con2, err := s.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "second"})
		require.NoError(t, err)
		consumers, err := s.ListStreamConsumers(ctx)
		require.NoError(t, err)
		require.Len(t, consumers, 2)
		require.NoError(t, c.TagResource(ctx, con.ConsumerARN, map[string]string{"stage": "beta"}))
		consumerPolicy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}`
		require.NoError(t, c.PutResourcePolicy(ctx, con.ConsumerARN, consumerPolicy))
		consumerTags, err := c.ResourceTags(ctx, con.ConsumerARN)
		require.NoError(t, err)
		require.Len(t, consumerTags, 2)

		require.NoError(t, s.UpdateStreamMode(ctx, runnel.ModeOnDemand, 0))
		require.NoError(t, s.UpdateStreamMode(ctx, runnel.ModeProvisioned, 0))
		require.ErrorIs(t, s.UpdateStreamMode(ctx, runnel.ModeOnDemand, 0), runnel.ErrLimitExceeded,
			"precondition: two mode switches a day")

		settings, err := s.Settings(ctx)
		require.NoError(t, err)
		summary, err := s.Describe(ctx)
		require.NoError(t, err)
		tags, err := s.Tags(ctx)
		require.NoError(t, err)
		closeDurable(t, c)

		c = openDurable(t, dir)
		s, err = c.Stream("settings")
		require.NoError(t, err)
		got, err := s.Settings(ctx)
		require.NoError(t, err)
		assert.Equal(t, settings, got, "Settings")
		assert.Equal(t, runnel.EncryptionKMS, got.EncryptionType)
		assert.Equal(t, "alias/my-key", got.KeyID)
		assert.Equal(t, []string{"IncomingBytes", "OutgoingRecords"}, got.ShardLevelMetrics)
		assert.Equal(t, 2<<20, got.MaxRecordSize)
		gotSummary, err := s.Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, normalizeSummary(summary), normalizeSummary(gotSummary), "DescribeStreamSummary")
		assert.Equal(t, 72*time.Hour, gotSummary.RetentionPeriod)
		gotTags, err := s.Tags(ctx)
		require.NoError(t, err)
		assert.Equal(t, tags, gotTags, "tags")
		assert.Equal(t, []runnel.Tag{{Key: "env", Value: "prod"}, {Key: "team", Value: "payments"}}, gotTags)
		gotPolicy, err := c.ResourcePolicy(ctx, s.ARN())
		require.NoError(t, err)
		assert.JSONEq(t, policy, gotPolicy, "resource policy")
		assert.Equal(t, runnel.EncryptionNone, s.EncryptionAt(plainAt), "encryption of the record written before StartEncryption")
		assert.Equal(t, runnel.EncryptionKMS, s.EncryptionAt(encryptedAt), "encryption of the record written after StartEncryption")

		gotCon, err := s.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: "fan-out-app"})
		require.NoError(t, err, "the consumer is still registered")
		assert.Equal(t, normalizeConsumer(con), normalizeConsumer(gotCon))
		gotCon, err = s.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerARN: con2.ConsumerARN})
		require.NoError(t, err, "found by its ARN")
		assert.Equal(t, "second", gotCon.ConsumerName)
		gotConsumers, err := s.ListStreamConsumers(ctx)
		require.NoError(t, err)
		require.Len(t, gotConsumers, 2)
		for i := range consumers {
			assert.Equal(t, normalizeConsumer(consumers[i]), normalizeConsumer(gotConsumers[i]))
		}
		gotConsumerTags, err := c.ResourceTags(ctx, con.ConsumerARN)
		require.NoError(t, err)
		assert.Equal(t, consumerTags, gotConsumerTags, "consumer tags")
		gotPolicy, err = c.ResourcePolicy(ctx, con.ConsumerARN)
		require.NoError(t, err)
		assert.JSONEq(t, consumerPolicy, gotPolicy, "the consumer's resource policy")

		_, err = s.UpdateShardCount(ctx, 4)
		assert.ErrorIs(t, err, runnel.ErrLimitExceeded, "the UpdateShardCount calls before the restart still count")
		assert.ErrorIs(t, s.UpdateStreamMode(ctx, runnel.ModeOnDemand, 0), runnel.ErrLimitExceeded,
			"the mode switches before the restart still count")

		// A deregistered consumer stays deregistered.
		require.NoError(t, s.DeregisterStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: "second"}))
		closeDurable(t, c)

		// A day later (the cluster closed meanwhile), the calls of the day
		// before no longer count: they kept their times.
		time.Sleep(24 * time.Hour)
		c = openDurable(t, dir)
		s, err = c.Stream("settings")
		require.NoError(t, err)
		gotConsumers, err = s.ListStreamConsumers(ctx)
		require.NoError(t, err)
		require.Len(t, gotConsumers, 1, "a deregistered consumer stays deregistered")
		assert.Equal(t, con.ConsumerARN, gotConsumers[0].ConsumerARN)
		_, err = s.UpdateShardCount(ctx, 4)
		assert.NoError(t, err, "UpdateShardCount 24 hours after the limit was reached")
		assert.NoError(t, s.UpdateStreamMode(ctx, runnel.ModeOnDemand, 0), "UpdateStreamMode 24 hours after the limit was reached")
		closeDurable(t, c)
	})
}

// TestDurableIteratorSurvivesReopen: iterators issued before Close work
// after Open, given as the same strings: a GetRecords continues where the
// previous call left off, an unused TRIM_HORIZON iterator starts at the
// first record, a LATEST iterator reads what is written after the
// restart, and sequence numbers from before the restart position an
// AFTER_SEQUENCE_NUMBER iterator.
func TestDurableIteratorSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openDurable(t, dir)
	s, err := c.CreateStream(ctx, "iter", runnel.WithShardCount(1), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	results := putAll(t, s, entries("old", 10, 3, 30))
	shard := results[0].ShardID

	fromStart, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: shard, StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
	require.NoError(t, err)
	out, err := s.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: fromStart, Limit: 4})
	require.NoError(t, err)
	require.Len(t, out.Records, 4)
	midway := out.NextShardIterator.String()
	unused := fromStart.String()
	latest, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: shard, StartingPosition: runnel.StartingPosition{Type: runnel.Latest}})
	require.NoError(t, err)
	latestToken := latest.String()
	afterSeq := results[6].SequenceNumber.String()
	closeDurable(t, c)

	c = openDurable(t, dir)
	s, err = c.Stream("iter")
	require.NoError(t, err)
	fresh := putAll(t, s, entries("fresh", 3, 3, 30))

	datasOf := func(recs []storedRecord) []string {
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = strings.TrimRight(r.Data, ".")
		}
		return out
	}
	old := []string{"old-0", "old-1", "old-2", "old-3", "old-4", "old-5", "old-6", "old-7", "old-8", "old-9"}
	newer := []string{"fresh-0", "fresh-1", "fresh-2"}

	it, err := runnel.ParseShardIterator(midway)
	require.NoError(t, err, "a token from before the restart parses")
	assert.Equal(t, slices.Concat(old[4:], newer), datasOf(readShardFrom(t, s, shard, it)), "GetRecords continues where it was")
	assert.Equal(t, slices.Concat(old[4:], newer), datasOf(readShardFrom(t, s, shard, runnel.OpaqueShardIterator(midway))), "as an opaque token too")
	it, err = runnel.ParseShardIterator(unused)
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(old, newer), datasOf(readShardFrom(t, s, shard, it)), "TRIM_HORIZON iterator from before the restart")
	it, err = runnel.ParseShardIterator(latestToken)
	require.NoError(t, err)
	assert.Equal(t, newer, datasOf(readShardFrom(t, s, shard, it)), "LATEST iterator from before the restart reads the records written since")

	seq, err := runnel.ParseSequenceNumber(afterSeq)
	require.NoError(t, err)
	it, err = s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: shard,
		StartingPosition: runnel.StartingPosition{Type: runnel.AfterSequenceNumber, SequenceNumber: seq}})
	require.NoError(t, err, "a sequence number from before the restart belongs to the shard")
	assert.Equal(t, slices.Concat(old[7:], newer), datasOf(readShardFrom(t, s, shard, it)))
	assert.Positive(t, fresh[0].SequenceNumber.Cmp(results[len(results)-1].SequenceNumber))
	closeDurable(t, c)
}

// TestDurableIteratorExpiresAcrossReopen: an iterator's age counts the
// time the cluster was closed: one issued before the restart expires at
// the same moment as without a restart (virtual time).
func TestDurableIteratorExpiresAcrossReopen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		c := openDurable(t, dir)
		s, err := c.CreateStream(ctx, "ttl", runnel.WithShardCount(1), runnel.WithIteratorTTL(time.Minute), runnel.WithLimits(runnel.Unlimited()))
		require.NoError(t, err)
		putAll(t, s, entries("r", 5, 1, 10))
		it, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: "shardId-000000000000", StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
		require.NoError(t, err)
		token := it.String()
		closeDurable(t, c)
		time.Sleep(59 * time.Second)

		c = openDurable(t, dir)
		s, err = c.Stream("ttl")
		require.NoError(t, err)
		out, err := s.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: runnel.OpaqueShardIterator(token), Limit: 1})
		require.NoError(t, err, "59 s old: still valid")
		assert.Len(t, out.Records, 1)
		time.Sleep(2 * time.Second)
		_, err = s.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: runnel.OpaqueShardIterator(token)})
		assert.ErrorIs(t, err, runnel.ErrExpiredIterator, "61 s old")
		closeDurable(t, c)
	})
}

// TestDurableOpenLocksDirectory: while a cluster has a directory open, a
// second Open of it fails with ErrResourceInUse naming the directory; after
// Close it opens. Close may be called twice, and a closed cluster's
// operations fail with ErrClosed.
func TestDurableOpenLocksDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openDurable(t, dir)
	s, err := c.CreateStream(ctx, "locked", runnel.WithShardCount(1))
	require.NoError(t, err)

	for range 2 {
		second, err := runnel.Open(dir)
		require.ErrorIs(t, err, runnel.ErrResourceInUse, "second Open of an open directory")
		assert.Nil(t, second)
		assert.Contains(t, err.Error(), dir, "the error names the directory")
	}
	// The same directory by another path (a symbolic link) is the same
	// directory.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err == nil {
		_, err = runnel.Open(link)
		require.ErrorIs(t, err, runnel.ErrResourceInUse, "second Open through a symbolic link")
	}
	// A failed Open leaves the first cluster working.
	_, err = s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("still open")})
	require.NoError(t, err)

	closeDurable(t, c)
	require.NoError(t, c.Close(), "a second Close")
	_, err = s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("closed")})
	assert.ErrorIs(t, err, runnel.ErrClosed, "a write to a closed cluster")
	_, err = c.CreateStream(ctx, "more")
	assert.ErrorIs(t, err, runnel.ErrClosed, "CreateStream on a closed cluster")

	c = openDurable(t, dir)
	s, err = c.Stream("locked")
	require.NoError(t, err)
	assert.Equal(t, []string{"still open"}, datasOfRecords(readShard(t, s, "shardId-000000000000")))
	closeDurable(t, c)

	// Other directories are independent.
	c1 := openDurable(t, filepath.Join(dir, "a"))
	c2 := openDurable(t, filepath.Join(dir, "b"))
	closeDurable(t, c1)
	closeDurable(t, c2)
}

func datasOfRecords(recs []storedRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Data
	}
	return out
}

// TestDurableOpenOptions: Open refuses a sync interval that is not
// positive, with ErrInvalidArgument, and then holds no lock on the
// directory.
func TestDurableOpenOptions(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []time.Duration{0, -time.Second} {
		c, err := runnel.Open(dir, runnel.WithSync(runnel.SyncInterval(d)))
		require.ErrorIs(t, err, runnel.ErrInvalidArgument, "SyncInterval(%v)", d)
		assert.Nil(t, c)
	}
	assert.Equal(t, "always", runnel.SyncAlways().String())
	assert.Equal(t, "interval=1s", runnel.SyncInterval(time.Second).String())
	assert.Equal(t, "os", runnel.SyncOS().String())
	c := openDurable(t, dir, runnel.WithSync(runnel.SyncInterval(time.Second)))
	closeDurable(t, c)
}

// TestDurableDeleteStream: a deleted stream is gone after a restart, its
// name can be used again, and the new stream of that name refuses the old
// stream's iterators, also when the old stream had the highest id. A
// stream CREATING at Close is ACTIVE after Open, and one DELETING at Close
// is gone.
func TestDurableDeleteStream(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openDurable(t, dir)
	keep, err := c.CreateStream(ctx, "keep", runnel.WithShardCount(1))
	require.NoError(t, err)
	_, err = keep.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("kept")})
	require.NoError(t, err)
	doomed, err := c.CreateStream(ctx, "doomed", runnel.WithShardCount(2)) // the highest stream id
	require.NoError(t, err)
	putAll(t, doomed, entries("doomed", 20, 5, 10))
	it, err := doomed.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: "shardId-000000000000", StartingPosition: runnel.StartingPosition{Type: runnel.TrimHorizon}})
	require.NoError(t, err)
	oldToken := it.String()
	_, err = doomed.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "c1"})
	require.NoError(t, err)
	require.NoError(t, c.DeleteStream(ctx, "doomed", runnel.WithEnforceConsumerDeletion()))
	closeDurable(t, c)

	c = openDurable(t, dir)
	names, err := c.ListStreams(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"keep"}, names, "the deleted stream is gone")
	_, err = c.Stream("doomed")
	assert.ErrorIs(t, err, runnel.ErrResourceNotFound)
	again, err := c.CreateStream(ctx, "doomed", runnel.WithShardCount(2))
	require.NoError(t, err, "the name of a deleted stream is free")
	assert.Empty(t, readStream(t, again), "the new stream has none of the old records")
	_, err = again.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: runnel.OpaqueShardIterator(oldToken)})
	assert.ErrorIs(t, err, runnel.ErrInvalidArgument, "the new stream refuses the old stream's iterator")
	consumers, err := again.ListStreamConsumers(ctx)
	require.NoError(t, err)
	assert.Empty(t, consumers, "the old stream's consumers are gone")
	putAll(t, again, entries("again", 4, 2, 10))
	// A stream CREATING at Close (WithStreamStatusDelay) is ACTIVE after
	// Open; one DELETING at Close is gone after Open.
	_, err = c.CreateStream(ctx, "slow", runnel.WithShardCount(1), runnel.WithStreamStatusDelay(time.Hour))
	require.NoError(t, err)
	closeDurable(t, c)

	c = openDurable(t, dir)
	again, err = c.Stream("doomed")
	require.NoError(t, err)
	assert.Len(t, readStream(t, again), 4, "the new stream's records")
	_, err = again.GetRecords(ctx, runnel.GetRecordsInput{ShardIterator: runnel.OpaqueShardIterator(oldToken)})
	assert.ErrorIs(t, err, runnel.ErrInvalidArgument, "the old iterator after another restart")
	keep, err = c.Stream("keep")
	require.NoError(t, err)
	assert.Equal(t, []string{"kept"}, datasOfRecords(readShard(t, keep, "shardId-000000000000")))
	slow, err := c.Stream("slow")
	require.NoError(t, err)
	sum, err := slow.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, runnel.StatusActive, sum.StreamStatus, "a stream CREATING at Close is ACTIVE after Open")
	require.NoError(t, c.DeleteStream(ctx, "slow"))
	sum, err = slow.Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, runnel.StatusDeleting, sum.StreamStatus, "precondition: DELETING for its delay")
	closeDurable(t, c)

	c = openDurable(t, dir)
	names, err = c.ListStreams(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"doomed", "keep"}, names, "a stream DELETING at Close is gone after Open")
	_, err = c.CreateStream(ctx, "slow", runnel.WithShardCount(1))
	require.NoError(t, err, "and its name is free")
	closeDurable(t, c)
}

// TestDurableCloseWhileResharding: a resharding accepted but not yet
// committed when the cluster closes (WithReshardDuration) is not lost: at
// the next Open it is committed, as after a crash, and the shards it
// created have their records' stores closed with the cluster (no goroutine
// outlives Close).
func TestDurableCloseWhileResharding(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	dir := t.TempDir()
	c, err := runnel.Open(dir)
	require.NoError(t, err)
	s, err := c.CreateStream(ctx, "slow-reshard", runnel.WithShardCount(2), runnel.WithReshardDuration(time.Hour),
		runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	putAll(t, s, entries("before", 20, 4, 10))
	out, err := s.UpdateShardCount(ctx, 4)
	require.NoError(t, err)
	require.Equal(t, 4, out.TargetShardCount)
	sum, err := s.Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, runnel.StatusUpdating, sum.StreamStatus)
	putAll(t, s, entries("during", 20, 4, 10))
	require.NoError(t, c.Close())

	c, err = runnel.Open(dir)
	require.NoError(t, err)
	defer c.Close()
	s, err = c.Stream("slow-reshard")
	require.NoError(t, err)
	sum, err = s.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, runnel.StatusActive, sum.StreamStatus, "status after Open")
	assert.Equal(t, 4, sum.OpenShardCount, "the resharding accepted before Close is committed at Open")
	assert.Len(t, readStream(t, s), 40)
	written := map[string]bool{}
	for _, r := range putAll(t, s, entries("after", 20, 4, 10)) {
		written[r.ShardID] = true
	}
	assert.False(t, written["shardId-000000000000"] || written["shardId-000000000001"],
		"writes after the restart go to the resharding's children, not to its parents: went to %v", written)
	assert.Len(t, readStream(t, s), 60)
	require.NoError(t, c.Close())
}

// TestDurableDeleteWhileResharding: deleting a stream whose resharding is
// still pending closes the stores of the shards the resharding created
// (no goroutine outlives Close) and removes the stream for good.
func TestDurableDeleteWhileResharding(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	dir := t.TempDir()
	c, err := runnel.Open(dir)
	require.NoError(t, err)
	s, err := c.CreateStream(ctx, "doomed", runnel.WithShardCount(2), runnel.WithReshardDuration(time.Hour))
	require.NoError(t, err)
	putAll(t, s, entries("r", 10, 2, 10))
	_, err = s.UpdateShardCount(ctx, 4)
	require.NoError(t, err)
	require.NoError(t, c.DeleteStream(ctx, "doomed"))
	require.NoError(t, c.Close())

	c, err = runnel.Open(dir)
	require.NoError(t, err)
	names, err := c.ListStreams(ctx)
	require.NoError(t, err)
	assert.Empty(t, names)
	entriesOf, err := os.ReadDir(filepath.Join(dir, "streams"))
	require.NoError(t, err)
	assert.Empty(t, entriesOf, "the deleted stream's files are removed")
	require.NoError(t, c.Close())
}

// TestDurableRetentionFreesDisk: with a short retention and small
// segments, records expire in virtual time: reads no longer return them,
// whole segments are deleted so DiskBytes goes down, and after a restart
// the expired records stay gone while the others are kept.
func TestDurableRetentionFreesDisk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		opts := []runnel.ClusterOption{runnel.WithSegmentSize(8 << 10), runnel.WithSweepInterval(time.Second)}
		c := openDurable(t, dir, opts...)
		s, err := c.CreateStream(ctx, "short", runnel.WithShardCount(1), runnel.WithRetention(time.Minute),
			runnel.WithLimits(runnel.Unlimited()))
		require.NoError(t, err)
		// 12 batches of 40 KiB, one every 10 s: at the end the first
		// batches are more than a minute old.
		for b := range 12 {
			putAll(t, s, entries(fmt.Sprintf("b%02d", b), 40, 4, 1000))
			time.Sleep(10 * time.Second)
		}
		synctest.Wait()
		// Every batch arrived within the last 120 s; those older than a
		// minute have expired.
		recs := readShard(t, s, "shardId-000000000000")
		require.NotEmpty(t, recs)
		cutoff := c.Now().Add(-time.Minute).UnixMilli()
		for _, r := range recs {
			require.GreaterOrEqual(t, r.ArrivalMs, cutoff, "expired record %s was read", r)
		}
		assert.Equal(t, "b06-0", strings.TrimRight(recs[0].Data, "."), "the oldest retained record")
		synctest.Wait() // the store deletes expired segments in the background
		diskMid := s.Stats().Total.DiskBytes
		assert.Positive(t, diskMid)
		assert.Less(t, diskMid, int64(9*40*1000), "DiskBytes once half the records expired: segments were deleted")

		time.Sleep(2 * time.Minute) // everything expires; the sweep trims
		synctest.Wait()
		assert.Empty(t, readShard(t, s, "shardId-000000000000"))
		st := s.Stats().Total
		assert.Zero(t, st.RecordsRetained)
		assert.Less(t, st.DiskBytes, diskMid, "DiskBytes after every record expired")
		assert.LessOrEqual(t, st.DiskBytes, int64(3*8<<10), "about the open segment remains")

		// New records, then a restart: they are kept, the expired ones
		// stay gone, and the records expire on schedule after Open too.
		putAll(t, s, entries("late", 10, 2, 1000))
		closeDurable(t, c)
		time.Sleep(30 * time.Second)
		c = openDurable(t, dir, opts...)
		s, err = c.Stream("short")
		require.NoError(t, err)
		recs = readShard(t, s, "shardId-000000000000")
		require.Len(t, recs, 10)
		assert.Equal(t, "late-0", strings.TrimRight(recs[0].Data, "."))
		time.Sleep(31 * time.Second)
		synctest.Wait()
		assert.Empty(t, readShard(t, s, "shardId-000000000000"), "records expire after a restart")
		assert.LessOrEqual(t, s.Stats().Total.DiskBytes, int64(3*8<<10), "DiskBytes once the records written before the restart expired")
		closeDurable(t, c)
	})
}

// TestDurableExpiredShardsStayGone: a closed shard whose records have all
// expired disappears from listings, and stays gone after a restart; its
// children keep their records.
func TestDurableExpiredShardsStayGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		c := openDurable(t, dir, runnel.WithSweepInterval(time.Second))
		s, err := c.CreateStream(ctx, "gone", runnel.WithShardCount(1), runnel.WithRetention(time.Minute), runnel.WithLimits(runnel.Unlimited()))
		require.NoError(t, err)
		putAll(t, s, entries("parent", 10, 2, 10))
		shards := allShards(t, s)
		require.NoError(t, s.SplitShard(ctx, shards[0].ShardID, shards[0].HashKeyRange.Mid()))
		time.Sleep(50 * time.Second)
		putAll(t, s, entries("child", 10, 2, 10))
		time.Sleep(20 * time.Second)
		synctest.Wait()
		// Kinesis lists a closed shard until its records have expired;
		// runnel may keep it a little longer (for NextTokens issued while it
		// was listed). Wait past that.
		time.Sleep(6 * time.Minute)
		putAll(t, s, entries("fresh", 10, 2, 10))
		synctest.Wait()
		listed := allShards(t, s)
		closeDurable(t, c)

		c = openDurable(t, dir)
		s, err = c.Stream("gone")
		require.NoError(t, err)
		assert.Equal(t, listed, allShards(t, s), "the listing after Open")
		for _, sh := range allShards(t, s) {
			assert.NotEqual(t, shards[0].ShardID, sh.ShardID, "the expired parent is not listed")
		}
		recs := readStream(t, s)
		assert.Len(t, recs, 10, "only the fresh records are retained")
		closeDurable(t, c)
	})
}

// leaseRecorder is a consumer group's application for
// TestDurableConsumerResumes: it records every record delivered, and
// checkpoints after the last record of the batch whose data starts with
// checkpointPrefix (never at shutdown), so that the lease's checkpoint
// stops before the other records.
type leaseRecorder struct {
	mu               sync.Mutex
	got              map[string][]string // by shard
	checkpointPrefix string
	cpErrs           []error
}

func (r *leaseRecorder) delivered() (map[string][]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	out := map[string][]string{}
	for sh, ds := range r.got {
		out[sh] = slices.Clone(ds)
		n += len(ds)
	}
	return out, n
}

type leaseProcessor struct {
	r     *leaseRecorder
	shard string
}

func (p *leaseProcessor) Initialize(context.Context, runnel.InitializeInput) error { return nil }

func (p *leaseProcessor) ProcessRecords(ctx context.Context, in runnel.ProcessRecordsInput) error {
	var at runnel.Checkpoint
	p.r.mu.Lock()
	for _, u := range in.Records {
		d := strings.TrimRight(string(u.Data), ".")
		p.r.got[in.ShardID] = append(p.r.got[in.ShardID], d)
		if strings.HasPrefix(d, p.r.checkpointPrefix) {
			at = u.Checkpoint()
		}
	}
	p.r.mu.Unlock()
	if at.IsZero() {
		return nil
	}
	err := in.Checkpointer.CheckpointAt(ctx, at)
	if err != nil {
		p.r.mu.Lock()
		p.r.cpErrs = append(p.r.cpErrs, err)
		p.r.mu.Unlock()
	}
	return err
}

func (p *leaseProcessor) LeaseLost(context.Context, runnel.LeaseLostInput) {}

func (p *leaseProcessor) ShardEnded(ctx context.Context, in runnel.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *leaseProcessor) ShutdownRequested(context.Context, runnel.ShutdownRequestedInput) error {
	return nil // leave the checkpoint where ProcessRecords put it
}

// TestDurableConsumerResumes: a consumer group whose FileLeaseStore lives in
// the cluster's data directory checkpoints, everything is closed, and after
// the cluster and the lease store are opened again the worker resumes
// after its checkpoints: no record before a checkpoint is delivered again,
// every record after one is (at least once), in order per shard, and
// records written after the restart follow.
func TestDurableConsumerResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		leases := filepath.Join(dir, "leases.json")

		c := openDurable(t, dir)
		s, err := c.CreateStream(ctx, "orders", runnel.WithShardCount(3), runnel.WithLimits(runnel.Unlimited()))
		require.NoError(t, err)
		putAll(t, s, entries("a", 90, 9, 20)) // checkpointed by the first run
		putAll(t, s, entries("b", 60, 9, 20)) // delivered, not checkpointed

		run := func(r *leaseRecorder, s *runnel.Stream) (*runnel.Consumer, *runnel.FileLeaseStore) {
			store, err := runnel.OpenFileLeaseStore(leases)
			require.NoError(t, err)
			w, err := runnel.NewConsumer(s, "billing", func(shard string) runnel.RecordProcessor { return &leaseProcessor{r: r, shard: shard} },
				runnel.WithLeaseStore(store), runnel.WithWorkerID("billing-1"))
			require.NoError(t, err)
			return w, store
		}
		waitFor := func(r *leaseRecorder, n int) map[string][]string {
			for range 600 {
				time.Sleep(time.Second)
				synctest.Wait()
				if got, have := r.delivered(); have >= n {
					return got
				}
			}
			_, have := r.delivered()
			t.Fatalf("the consumer delivered %d records; want %d", have, n)
			return nil
		}

		first := &leaseRecorder{got: map[string][]string{}, checkpointPrefix: "a-"}
		w, store := run(first, s)
		firstGot := waitFor(first, 150)
		w.Close()
		require.NoError(t, store.Close())
		require.Empty(t, first.cpErrs)
		closeDurable(t, c)

		// Everything restarts.
		c = openDurable(t, dir)
		s, err = c.Stream("orders")
		require.NoError(t, err)
		putAll(t, s, entries("c", 30, 9, 20)) // written after the restart
		second := &leaseRecorder{got: map[string][]string{}, checkpointPrefix: "none"}
		w, store = run(second, s)
		secondGot := waitFor(second, 60+30)
		time.Sleep(5 * time.Second) // anything delivered again would come now
		synctest.Wait()
		secondGot, _ = second.delivered()
		w.Close()
		require.NoError(t, store.Close())
		closeDurable(t, c)

		for shard, ds := range firstGot {
			// The first run saw a-… then b-… on every shard; the second run
			// starts right after the shard's last a-… record.
			var wantSecond []string
			for _, d := range ds {
				if !strings.HasPrefix(d, "a-") {
					wantSecond = append(wantSecond, d)
				}
			}
			gotSecond := secondGot[shard]
			require.GreaterOrEqual(t, len(gotSecond), len(wantSecond), "shard %s: records after the checkpoint", shard)
			assert.Equal(t, wantSecond, gotSecond[:len(wantSecond)], "shard %s: the second run resumes right after the checkpoint", shard)
			for _, d := range gotSecond {
				assert.False(t, strings.HasPrefix(d, "a-"), "shard %s: %s was checkpointed before the restart and delivered again", shard, d)
			}
			for _, d := range gotSecond[len(wantSecond):] {
				assert.True(t, strings.HasPrefix(d, "c-"), "shard %s: after the old records only the new ones: got %s", shard, d)
			}
		}
		var n int
		for _, ds := range secondGot {
			n += len(ds)
		}
		assert.Equal(t, 60+30, n, "the second run delivers b-… and c-… once each")
	})
}

// TestDurableNewRecordsFollowOld: after a clean Close the new records
// follow the old ones: an AT_SEQUENCE_NUMBER iterator at the last old
// record reads it and then the new ones, whose numbers increase, and a
// Follow from the newest record is woken by the next write.
func TestDurableNewRecordsFollowOld(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openDurable(t, dir)
	s, err := c.CreateStream(ctx, "follow", runnel.WithShardCount(1), runnel.WithLimits(runnel.Unlimited()))
	require.NoError(t, err)
	old := putAll(t, s, entries("old", 5, 1, 10))
	closeDurable(t, c)

	c = openDurable(t, dir)
	s, err = c.Stream("follow")
	require.NoError(t, err)
	fresh := putAll(t, s, entries("fresh", 5, 1, 10))
	last := old[len(old)-1]
	it, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: last.ShardID,
		StartingPosition: runnel.StartingPosition{Type: runnel.AtSequenceNumber, SequenceNumber: last.SequenceNumber}})
	require.NoError(t, err)
	recs := readShardFrom(t, s, last.ShardID, it)
	require.Len(t, recs, 6)
	assert.Equal(t, last.SequenceNumber, recs[0].Seq)
	assert.Equal(t, fresh[0].SequenceNumber, recs[1].Seq)
	for i := 1; i < len(fresh); i++ {
		assert.Positive(t, fresh[i].SequenceNumber.Cmp(fresh[i-1].SequenceNumber))
	}
	// A follower that waits at the tip (Follow) is woken by a write after
	// the restart.
	followCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := make(chan string, 1)
	go func() {
		defer close(got)
		from := runnel.StartingPosition{Type: runnel.AfterSequenceNumber, SequenceNumber: fresh[len(fresh)-1].SequenceNumber}
		for r, err := range s.Follow(followCtx, last.ShardID, from) {
			if err == nil {
				got <- string(r.Data)
			}
			return
		}
	}()
	_, err = s.PutRecord(ctx, runnel.PutRecordInput{PartitionKey: "k", Data: []byte("wake")})
	require.NoError(t, err)
	assert.Equal(t, "wake", <-got, "Follow reads the record written after the restart")
	closeDurable(t, c)
}

// TestDurableTimestampsAfterReopen: arrival times survive a restart to the
// millisecond, and position readers as before: AT_TIMESTAMP iterators
// (issued before the restart, and new ones) find the first record that
// arrived at or after their time, also when the records are read from disk
// (a tiny cache); Stats reports the same oldest and newest arrivals. A
// stream without records reopens too (virtual time).
func TestDurableTimestampsAfterReopen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		opts := []runnel.ClusterOption{runnel.WithCacheSize(1), runnel.WithSegmentSize(1 << 10)}
		c := openDurable(t, dir, opts...)
		s, err := c.CreateStream(ctx, "times", runnel.WithShardCount(1), runnel.WithLimits(runnel.Unlimited()))
		require.NoError(t, err)
		_, err = c.CreateStream(ctx, "empty", runnel.WithShardCount(2))
		require.NoError(t, err)
		start := c.Now()
		for i := range 10 {
			putAll(t, s, entries(fmt.Sprintf("t%d", i), 3, 1, 300))
			time.Sleep(time.Second)
		}
		shard := "shardId-000000000000"
		seekPos := runnel.StartingPosition{Type: runnel.AtTimestamp, Timestamp: start.Add(4500 * time.Millisecond)}
		seek, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: shard, StartingPosition: seekPos})
		require.NoError(t, err)
		seekToken := seek.String()
		stats := s.Stats().Total
		closeDurable(t, c)

		c = openDurable(t, dir, opts...)
		s, err = c.Stream("times")
		require.NoError(t, err)
		recs := readShard(t, s, shard)
		require.Len(t, recs, 30)
		for i, r := range recs {
			assert.Equal(t, start.Add(time.Duration(i/3)*time.Second).UnixMilli(), r.ArrivalMs, "arrival of %s", r)
		}
		got := s.Stats().Total
		assert.True(t, stats.OldestArrival.Equal(got.OldestArrival), "OldestArrival %v, was %v", got.OldestArrival, stats.OldestArrival)
		assert.True(t, stats.NewestArrival.Equal(got.NewestArrival), "NewestArrival %v, was %v", got.NewestArrival, stats.NewestArrival)
		for i := range 10 {
			at := runnel.StartingPosition{Type: runnel.AtTimestamp, Timestamp: start.Add(time.Duration(i)*time.Second - 500*time.Millisecond)}
			it, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: shard, StartingPosition: at})
			require.NoError(t, err)
			from := readShardFrom(t, s, shard, it)
			require.Len(t, from, 30-3*i, "AT_TIMESTAMP %v", at.Timestamp)
			assert.Equal(t, fmt.Sprintf("t%d-0", i), strings.TrimRight(from[0].Data, "."))
		}
		from := readShardFrom(t, s, shard, runnel.OpaqueShardIterator(seekToken))
		require.Len(t, from, 15, "an AT_TIMESTAMP iterator issued before the restart")
		assert.Equal(t, "t5-0", strings.TrimRight(from[0].Data, "."))

		empty, err := c.Stream("empty")
		require.NoError(t, err)
		assert.Empty(t, readStream(t, empty))
		results := putAll(t, empty, entries("first", 10, 5, 10))
		assert.Len(t, readStream(t, empty), 10)
		closeDurable(t, c)

		c = openDurable(t, dir, opts...)
		empty, err = c.Stream("empty")
		require.NoError(t, err)
		for _, r := range putAll(t, empty, entries("second", 10, 5, 10)) {
			for _, old := range results {
				if old.ShardID == r.ShardID {
					assert.Positive(t, r.SequenceNumber.Cmp(old.SequenceNumber))
				}
			}
		}
		assert.Len(t, readStream(t, empty), 20)
		closeDurable(t, c)
	})
}

// TestDurableInFlightStatuses: a consumer CREATING at Close (its status
// delay not over) is ACTIVE after Open; one DELETING at Close is gone.
func TestDurableInFlightStatuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openDurable(t, dir)
	s, err := c.CreateStream(ctx, "statuses", runnel.WithShardCount(1), runnel.WithConsumerStatusDelay(time.Hour))
	require.NoError(t, err)
	creating, err := s.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "creating"})
	require.NoError(t, err)
	require.Equal(t, runnel.StreamConsumerCreating, creating.ConsumerStatus)
	closeDurable(t, c)

	c = openDurable(t, dir)
	s, err = c.Stream("statuses")
	require.NoError(t, err)
	got, err := s.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: "creating"})
	require.NoError(t, err)
	assert.Equal(t, runnel.StreamConsumerActive, got.ConsumerStatus, "CREATING at Close, ACTIVE after Open")
	assert.Equal(t, creating.ConsumerARN, got.ConsumerARN)
	require.NoError(t, s.DeregisterStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: "creating"}))
	got, err = s.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: "creating"})
	require.NoError(t, err)
	require.Equal(t, runnel.StreamConsumerDeleting, got.ConsumerStatus, "precondition: DELETING for its delay")
	closeDurable(t, c)

	c = openDurable(t, dir)
	s, err = c.Stream("statuses")
	require.NoError(t, err)
	_, err = s.DescribeStreamConsumer(ctx, runnel.StreamConsumerRef{ConsumerName: "creating"})
	assert.ErrorIs(t, err, runnel.ErrResourceNotFound, "DELETING at Close, gone after Open")
	_, err = s.RegisterStreamConsumer(ctx, runnel.RegisterStreamConsumerInput{ConsumerName: "creating"})
	assert.NoError(t, err, "and its name is free")
	closeDurable(t, c)
}
