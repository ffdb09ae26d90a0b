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
	MemoryBytes int64
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
// (Total, with ShardID empty) and each listed shard in shard-id order.
type StreamStats struct {
	StreamName string       // the stream
	Total      ShardStats   // the sums over its shards
	Shards     []ShardStats // each listed shard
}

// Stats returns a snapshot of the stream's counters. Each shard's figures
// are consistent; the shards are read one after another.
func (s *Stream) Stats() StreamStats {
	m := s.shards.Load()
	cutoff := s.cutoffMs(s.now())
	st := StreamStats{StreamName: s.name, Shards: make([]ShardStats, 0, len(m.all))}
	for _, sh := range m.all {
		ss, listed := sh.stats(cutoff)
		if !listed {
			continue // gone: no longer listed
		}
		t := &st.Total
		t.RecordsRetained += ss.RecordsRetained
		t.BytesRetained += ss.BytesRetained
		t.MemoryBytes += ss.MemoryBytes
		t.RecordsPut += ss.RecordsPut
		t.BytesPut += ss.BytesPut
		t.GetCalls += ss.GetCalls
		t.RecordsRead += ss.RecordsRead
		t.BytesRead += ss.BytesRead
		t.RecordsPushed += ss.RecordsPushed
		t.BytesPushed += ss.BytesPushed
		t.WriteThrottles += ss.WriteThrottles
		t.ReadThrottles += ss.ReadThrottles
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

// stats returns the shard's counters, and false if it is gone (closed, and
// all its records expired before cutoffMs).
func (s *shardState) stats(cutoffMs int64) (ShardStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.goneLocked(cutoffMs) {
		return ShardStats{}, false
	}
	records, bytes := s.store.size()
	st := ShardStats{
		ShardID:         s.id,
		Open:            !s.closed,
		RecordsRetained: records,
		BytesRetained:   bytes,
		MemoryBytes:     s.store.memory(),
		RecordsPut:      s.counters.recordsPut,
		BytesPut:        s.counters.bytesPut,
		GetCalls:        s.counters.getCalls,
		RecordsRead:     s.counters.recordsRead,
		BytesRead:       s.counters.bytesRead,
		RecordsPushed:   s.counters.recordsPushed,
		BytesPushed:     s.counters.bytesPushed,
		WriteThrottles:  s.counters.writeThrottles,
		ReadThrottles:   s.counters.readThrottles,
	}
	if records > 0 {
		oldest, newest := s.store.oldestNewest()
		st.OldestArrival, st.NewestArrival = msTime(oldest), msTime(newest)
	}
	return st, true
}
