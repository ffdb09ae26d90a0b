package runnel

import "time"

// ShardStats is a snapshot of one shard's counters.
type ShardStats struct {
	ShardID string // the shard (empty in StreamStats.Total)
	Open    bool   // whether it accepts writes
	// RecordsRetained and BytesRetained count the records held now (bytes
	// of data and partition keys).
	RecordsRetained, BytesRetained int64
	// MemoryBytes is the memory the shard's storage holds for them. It
	// drops as soon as a whole chunk of records (up to 1,024) has expired.
	// In a durable cluster (Open) it is the shard's cache of its newest
	// records, its index and its write buffers.
	MemoryBytes int64
	// DiskBytes is the size of the shard's files in a durable cluster (0 in
	// memory). It drops as whole segments expire.
	DiskBytes int64
	// RecordsPut and BytesPut count accepted writes since the shard opened.
	RecordsPut, BytesPut int64
	// GetCalls counts GetRecords calls; RecordsRead and BytesRead what they
	// returned.
	GetCalls, RecordsRead, BytesRead int64
	// RecordsPushed and BytesPushed count what enhanced fan-out
	// subscriptions delivered (SubscribeToShard), for all consumers.
	RecordsPushed, BytesPushed int64
	// WriteThrottles counts records refused by the write limits;
	// ReadThrottles GetRecords calls refused by the read limits.
	WriteThrottles, ReadThrottles int64
	// OldestArrival and NewestArrival are the arrival times of the oldest
	// and newest retained records; zero when the shard holds none.
	OldestArrival, NewestArrival time.Time
}

// StreamStats is a snapshot of a stream's counters: the sum over its shards
// (Total, with ShardID empty), and each listed shard in shard-id order.
// Total's counters count the shards no longer listed too, so they never go
// down.
type StreamStats struct {
	StreamName string       // the stream
	Total      ShardStats   // the sums over its shards
	Shards     []ShardStats // each listed shard
}

// Stats returns a snapshot of the stream's counters. Each shard's figures
// are consistent; the shards are read one after another.
func (s *Stream) Stats() StreamStats {
	s.mu.Lock() // the shard map and the counts of the shards dropped from it, together
	m := s.shards.Load()
	gone := s.goneCounts
	s.mu.Unlock()
	cutoff := s.cutoffMs(s.now())
	st := StreamStats{StreamName: s.name, Total: gone, Shards: make([]ShardStats, 0, len(m.all))}
	t := &st.Total
	for _, sh := range m.all {
		ss, counts, listed := sh.stats(cutoff)
		t.addCounters(counts) // a shard gone since is no longer listed, still counted
		if !listed {
			continue
		}
		t.RecordsRetained += ss.RecordsRetained
		t.BytesRetained += ss.BytesRetained
		t.MemoryBytes += ss.MemoryBytes
		t.DiskBytes += ss.DiskBytes
		if !ss.OldestArrival.IsZero() && (t.OldestArrival.IsZero() || ss.OldestArrival.Before(t.OldestArrival)) {
			t.OldestArrival = ss.OldestArrival
		}
		if ss.NewestArrival.After(t.NewestArrival) {
			t.NewestArrival = ss.NewestArrival
		}
		st.Shards = append(st.Shards, ss)
	}
	return st
}

// addCounters adds a shard's counters to st.
func (st *ShardStats) addCounters(c shardCounters) {
	st.RecordsPut += c.recordsPut
	st.BytesPut += c.bytesPut
	st.GetCalls += c.getCalls
	st.RecordsRead += c.recordsRead
	st.BytesRead += c.bytesRead
	st.RecordsPushed += c.recordsPushed
	st.BytesPushed += c.bytesPushed
	st.WriteThrottles += c.writeThrottles
	st.ReadThrottles += c.readThrottles
}

// counters returns the cumulative counters that st holds: the inverse of
// addCounters, for a restart.
func (st ShardStats) counters() shardCounters {
	return shardCounters{
		recordsPut: st.RecordsPut, bytesPut: st.BytesPut,
		getCalls: st.GetCalls, recordsRead: st.RecordsRead, bytesRead: st.BytesRead,
		recordsPushed: st.RecordsPushed, bytesPushed: st.BytesPushed,
		writeThrottles: st.WriteThrottles, readThrottles: st.ReadThrottles,
	}
}

// stats returns the shard's statistics and counters, and false if it is
// gone (closed, and all its records expired before cutoffMs).
func (s *shardState) stats(cutoffMs int64) (ShardStats, shardCounters, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.goneLocked(cutoffMs) {
		return ShardStats{}, s.counters, false
	}
	records, bytes := s.store.size()
	st := ShardStats{
		ShardID:         s.id,
		Open:            !s.closed,
		RecordsRetained: records,
		BytesRetained:   bytes,
		MemoryBytes:     s.store.memory(),
		DiskBytes:       s.store.disk(),
	}
	st.addCounters(s.counters)
	if records > 0 {
		oldest, newest := s.store.oldestNewest()
		st.OldestArrival, st.NewestArrival = msTime(oldest), msTime(newest)
	}
	return st, s.counters, true
}
