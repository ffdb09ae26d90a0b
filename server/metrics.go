package server

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/runnel-go/runnel"
)

// metricsPath is the path of the endpoint WithMetrics adds.
const metricsPath = "/metrics"

// metricsContentType is the content type of the Prometheus text exposition
// format, version 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// consumerGaugeTTL is how long a consumer's MillisBehindLatest gauge
// outlives the last event sent to it. A subscription gets an event at least
// every 5 s, so only a consumer that is no longer subscribed (or has been
// deregistered) goes this long without one.
const consumerGaugeTTL = time.Minute

// WithMetrics makes the server answer GET /metrics with the metrics of
// every stream of every cluster it serves (see Clusters), in the Prometheus
// text exposition format, version 0.0.4. HEAD answers the headers alone;
// other methods are refused with 405 Method Not Allowed. Default: no
// /metrics endpoint, and the request paths do no work for metrics.
//
// The metrics are Kinesis's CloudWatch metrics (namespace AWS/Kinesis),
// named the Prometheus way, because a Prometheus name cannot contain '.':
// "kinesis_", then the CloudWatch name in snake case with '.' as '_', then
// "_total" for a counter. Stream-level families are labelled account,
// region and stream (CloudWatch's StreamName dimension); shard-level
// families, whose names start "kinesis_shard_" and carry CloudWatch's
// shard-level (enhanced monitoring) names, add shard (ShardId); the
// SubscribeToShardEvent families add consumer (ConsumerName). Each HELP text
// names the CloudWatch metric. The families, stream level / shard level:
//
//   - IncomingRecords: kinesis_incoming_records_total /
//     kinesis_shard_incoming_records_total, counters of the records written
//     (Stats' RecordsPut).
//   - IncomingBytes: kinesis_incoming_bytes_total /
//     kinesis_shard_incoming_bytes_total, counters of the bytes written,
//     data and partition keys (BytesPut).
//   - WriteProvisionedThroughputExceeded:
//     kinesis_write_provisioned_throughput_exceeded_total /
//     kinesis_shard_write_provisioned_throughput_exceeded_total, counters
//     of the records refused by the write limits or an injected throttle
//     (WriteThrottles).
//   - ReadProvisionedThroughputExceeded:
//     kinesis_read_provisioned_throughput_exceeded_total /
//     kinesis_shard_read_provisioned_throughput_exceeded_total, counters of
//     the GetRecords calls refused so (ReadThrottles).
//   - GetRecords.Records / OutgoingRecords:
//     kinesis_get_records_records_total / kinesis_shard_outgoing_records_total,
//     counters of the records GetRecords returned (RecordsRead).
//   - GetRecords.Bytes / OutgoingBytes: kinesis_get_records_bytes_total /
//     kinesis_shard_outgoing_bytes_total, counters of the bytes GetRecords
//     returned (BytesRead).
//   - GetRecords.IteratorAgeMilliseconds / IteratorAgeMilliseconds:
//     kinesis_get_records_iterator_age_milliseconds /
//     kinesis_shard_iterator_age_milliseconds, gauges: a shard's is the
//     MillisBehindLatest of the latest GetRecords response for it, a
//     stream's the greatest of its shards'.
//   - SubscribeToShardEvent.MillisBehindLatest:
//     kinesis_subscribe_to_shard_event_millis_behind_latest /
//     kinesis_shard_subscribe_to_shard_event_millis_behind_latest, gauges
//     per consumer: a shard's is the MillisBehindLatest of the latest event
//     the server sent the consumer from it, a stream's the greatest of its
//     shards'. CloudWatch has this metric at the stream level only.
//
// The counters count from the stream's creation (a shard's from its
// opening), where CloudWatch reports sums per minute: take rate() or
// increase() of them. A shard's series end when it is gone (closed, and
// all its records expired); a stream's counters keep its gone shards'
// counts (runnel.StreamStats.Total does), so they never go down. The
// gauges exist only for what GetRecords and SubscribeToShard
// through this server have read, not for reads through the Go API. A
// deleted stream's series, and the gauges it had, disappear at the next
// scrape; a consumer's gauges disappear a minute after its last event.
//
// The output is in a fixed order: the stream-level families, then the
// shard-level ones, each in the order listed, and in each family the
// series by account, region, stream, shard and consumer. Scrapes may come
// concurrently with each other and with requests; they run one at a time.
// Scrapes meet no injected fault.
func WithMetrics() Option {
	return func(s *Server) {
		s.paths[metricsPath] = &metrics{
			srv:    s,
			ages:   make(map[gaugeShard]gaugeValue),
			behind: make(map[gaugeConsumer]gaugeValue),
		}
	}
}

// metrics serves WithMetrics's endpoint and keeps the gauges that the
// request paths observe.
//
// Lock order: scrapeMu, then mu. mu is held only to read or write the
// gauge maps, never across a call into a cluster, so an observation waits
// for a map update at most.
type metrics struct {
	srv *Server

	scrapeMu sync.Mutex // serializes scrapes

	mu sync.Mutex
	// tick counts observations: a scrape prunes only what was observed
	// before it began, and so before its snapshot of the clusters.
	tick uint64 // guarded by mu
	// pruneAt is the size of the gauge maps at which boundLocked scans
	// them next; guarded by mu.
	pruneAt int
	ages    map[gaugeShard]gaugeValue    // guarded by mu: GetRecords's MillisBehindLatest
	behind  map[gaugeConsumer]gaugeValue // guarded by mu: SubscribeToShardEvent's MillisBehindLatest
}

// metrics returns the server's metrics, or nil without WithMetrics. Its
// observers take nil.
func (s *Server) metrics() *metrics {
	m, _ := s.paths[metricsPath].(*metrics)
	return m
}

// gaugeShard names a shard of a stream. The stream is held weakly, so that a
// gauge does not keep a deleted stream's records in memory; a stream of the
// same name created again is another stream.
type gaugeShard struct {
	stream weak.Pointer[runnel.Stream]
	shard  string
}

// gaugeConsumer names a consumer's reading of a shard.
type gaugeConsumer struct {
	gaugeShard
	consumer string // its ARN
}

// gaugeValue is an observed value.
type gaugeValue struct {
	value int64
	tick  uint64    // the observation's number
	at    time.Time // when it was observed (consumer gauges only)
}

// iteratorAge observes the MillisBehindLatest of a GetRecords response for
// shard of st. It does nothing on a nil *metrics.
func (m *metrics) iteratorAge(st *runnel.Stream, shard string, ms int64) {
	if m == nil {
		return
	}
	k := gaugeShard{weak.Make(st), shard}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick++
	m.ages[k] = gaugeValue{value: ms, tick: m.tick}
	m.boundLocked()
}

// millisBehindLatest observes the MillisBehindLatest of a SubscribeToShard
// event about to be sent to consumer (its ARN) from shard of st; it is
// called before the write, so that a client that has read an event finds
// it in the metrics. It does nothing on a nil *metrics.
func (m *metrics) millisBehindLatest(st *runnel.Stream, shard, consumer string, ms int64) {
	if m == nil {
		return
	}
	k := gaugeConsumer{gaugeShard{weak.Make(st), shard}, consumer}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick++
	m.behind[k] = gaugeValue{value: ms, tick: m.tick, at: now}
	m.boundLocked()
}

// maxGauges is how many gauge entries the metrics keep before they drop,
// without waiting for a scrape, those of streams that are gone and of
// consumers without an event for consumerGaugeTTL.
const maxGauges = 10_000

// boundLocked keeps the gauge maps bounded when nobody scrapes: past
// maxGauges entries, and again each time they have doubled since, it drops
// the stale ones (so a scan costs at most one per as many observations).
// The caller holds mu.
func (m *metrics) boundLocked() {
	if n := len(m.ages) + len(m.behind); n <= max(maxGauges, m.pruneAt) {
		return
	}
	now := time.Now()
	defer func() { m.pruneAt = 2 * (len(m.ages) + len(m.behind)) }()
	for k := range m.ages {
		if k.stream.Value() == nil {
			delete(m.ages, k)
		}
	}
	for k, g := range m.behind {
		if k.stream.Value() == nil || now.Sub(g.at) > consumerGaugeTTL {
			delete(m.behind, k)
		}
	}
}

// counterMetric is a counter family at the stream and at the shard level.
type counterMetric struct {
	stream, shard string // the family names, without "kinesis_", "shard_" and "_total"
	// cloudWatch and shardCloudWatch are CloudWatch's names for it at the
	// stream and at the shard level.
	cloudWatch, shardCloudWatch string
	what                        string // what it counts, for the HELP texts
	of                          func(runnel.ShardStats) int64
}

// counterMetrics are the counters, in the order they are written.
var counterMetrics = [...]counterMetric{
	{"incoming_records", "incoming_records", "IncomingRecords", "IncomingRecords",
		"records written by PutRecord and PutRecords", func(s runnel.ShardStats) int64 { return s.RecordsPut }},
	{"incoming_bytes", "incoming_bytes", "IncomingBytes", "IncomingBytes",
		"bytes (data and partition keys) written by PutRecord and PutRecords", func(s runnel.ShardStats) int64 { return s.BytesPut }},
	{"write_provisioned_throughput_exceeded", "write_provisioned_throughput_exceeded", "WriteProvisionedThroughputExceeded", "WriteProvisionedThroughputExceeded",
		"records refused for exceeding a shard's write limits (or by an injected throttle)", func(s runnel.ShardStats) int64 { return s.WriteThrottles }},
	{"read_provisioned_throughput_exceeded", "read_provisioned_throughput_exceeded", "ReadProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
		"GetRecords calls refused for exceeding a shard's read limits (or by an injected throttle)", func(s runnel.ShardStats) int64 { return s.ReadThrottles }},
	{"get_records_records", "outgoing_records", "GetRecords.Records", "OutgoingRecords",
		"records returned by GetRecords", func(s runnel.ShardStats) int64 { return s.RecordsRead }},
	{"get_records_bytes", "outgoing_bytes", "GetRecords.Bytes", "OutgoingBytes",
		"bytes (data and partition keys) returned by GetRecords", func(s runnel.ShardStats) int64 { return s.BytesRead }},
}

// The gauge families: their names and HELP texts.
const (
	iteratorAgeName      = "kinesis_get_records_iterator_age_milliseconds"
	iteratorAgeHelp      = "Kinesis GetRecords.IteratorAgeMilliseconds: the MillisBehindLatest of the latest GetRecords response, the greatest over the stream's shards."
	shardIteratorAgeName = "kinesis_shard_iterator_age_milliseconds"
	shardIteratorAgeHelp = "Kinesis IteratorAgeMilliseconds (shard level): the MillisBehindLatest of the latest GetRecords response for the shard."
	behindName           = "kinesis_subscribe_to_shard_event_millis_behind_latest"
	behindHelp           = "Kinesis SubscribeToShardEvent.MillisBehindLatest: the MillisBehindLatest of the latest SubscribeToShard event sent to the consumer, the greatest over the stream's shards."
	shardBehindName      = "kinesis_shard_subscribe_to_shard_event_millis_behind_latest"
	shardBehindHelp      = "Kinesis SubscribeToShardEvent.MillisBehindLatest per shard (CloudWatch has it per stream only): the MillisBehindLatest of the latest SubscribeToShard event sent to the consumer from the shard."
)

// streamMetrics is what one scrape found of a stream.
type streamMetrics struct {
	account, region string
	key             weak.Pointer[runnel.Stream]
	stats           runnel.StreamStats
	listed          map[string]bool                  // its listed shards
	ages            map[string]int64                 // the GetRecords gauges, by shard
	behind          map[string]map[string]gaugeValue // by consumer name, then shard
}

// ServeHTTP answers a scrape.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("%s takes GET or HEAD, not %.20q", metricsPath, r.Method), http.StatusMethodNotAllowed)
		return
	}
	body := m.scrape()
	w.Header().Set("Content-Type", metricsContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// scrape collects the metrics and returns them in the text format.
func (m *metrics) scrape() []byte {
	m.scrapeMu.Lock()
	defer m.scrapeMu.Unlock()
	m.mu.Lock()
	start := m.tick
	m.mu.Unlock()
	streams := m.snapshot()
	m.readGauges(streams, start, time.Now())
	return writeMetrics(streams)
}

// snapshot returns the streams of every cluster the server serves, by
// account, region and name, with their statistics.
func (m *metrics) snapshot() []*streamMetrics {
	var out []*streamMetrics
	for _, c := range m.srv.Clusters() {
		for _, st := range c.Streams() {
			sn := &streamMetrics{account: c.AccountID(), region: c.Region(), key: weak.Make(st), stats: st.Stats()}
			sn.listed = make(map[string]bool, len(sn.stats.Shards))
			for _, sh := range sn.stats.Shards {
				sn.listed[sh.ShardID] = true
			}
			out = append(out, sn)
		}
	}
	slices.SortFunc(out, func(a, b *streamMetrics) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.region, b.region), cmp.Compare(a.stats.StreamName, b.stats.StreamName))
	})
	return out
}

// readGauges copies the gauges of the streams' listed shards into the
// snapshots, and drops the gauges observed before the scrape began (tick
// start) whose stream or shard is gone, and those of consumers that have
// had no event for consumerGaugeTTL.
func (m *metrics) readGauges(streams []*streamMetrics, start uint64, now time.Time) {
	byKey := make(map[weak.Pointer[runnel.Stream]]*streamMetrics, len(streams))
	for _, s := range streams {
		byKey[s.key] = s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, g := range m.ages {
		s := byKey[k.stream]
		if s == nil || !s.listed[k.shard] {
			if g.tick <= start {
				delete(m.ages, k)
			}
			continue
		}
		if s.ages == nil {
			s.ages = make(map[string]int64)
		}
		s.ages[k.shard] = g.value
	}
	for k, g := range m.behind {
		s := byKey[k.stream]
		present := s != nil && s.listed[k.shard]
		_, name, err := runnel.ParseConsumerARN(k.consumer)
		switch {
		case err != nil, now.Sub(g.at) > consumerGaugeTTL, !present && g.tick <= start:
			delete(m.behind, k)
			continue
		case !present:
			continue
		}
		if s.behind == nil {
			s.behind = make(map[string]map[string]gaugeValue)
		}
		byShard := s.behind[name]
		if byShard == nil {
			byShard = make(map[string]gaugeValue)
			s.behind[name] = byShard
		}
		// A consumer registered again under its name has another ARN: the
		// latest event of either tells.
		if old, ok := byShard[k.shard]; !ok || old.tick < g.tick {
			byShard[k.shard] = g
		}
	}
}

// writeMetrics writes the streams' metrics in the text format.
func writeMetrics(streams []*streamMetrics) []byte {
	var w metricsWriter
	for _, c := range counterMetrics {
		name := "kinesis_" + c.stream + "_total"
		w.family(name, "counter", "Kinesis "+c.cloudWatch+": "+c.what+", since the stream was created.")
		for _, s := range streams {
			w.sample(name, c.of(s.stats.Total), "account", s.account, "region", s.region, "stream", s.stats.StreamName)
		}
	}
	w.family(iteratorAgeName, "gauge", iteratorAgeHelp)
	for _, s := range streams {
		if len(s.ages) > 0 {
			w.sample(iteratorAgeName, slices.Max(slices.Collect(maps.Values(s.ages))), "account", s.account, "region", s.region, "stream", s.stats.StreamName)
		}
	}
	w.family(behindName, "gauge", behindHelp)
	for _, s := range streams {
		for _, consumer := range slices.Sorted(maps.Keys(s.behind)) {
			most := int64(0)
			for _, g := range s.behind[consumer] {
				most = max(most, g.value)
			}
			w.sample(behindName, most, "account", s.account, "region", s.region, "stream", s.stats.StreamName, "consumer", consumer)
		}
	}
	for _, c := range counterMetrics {
		name := "kinesis_shard_" + c.shard + "_total"
		w.family(name, "counter", "Kinesis "+c.shardCloudWatch+" (shard level): "+c.what+", since the shard opened.")
		for _, s := range streams {
			for _, sh := range s.stats.Shards {
				w.sample(name, c.of(sh), "account", s.account, "region", s.region, "stream", s.stats.StreamName, "shard", sh.ShardID)
			}
		}
	}
	w.family(shardIteratorAgeName, "gauge", shardIteratorAgeHelp)
	for _, s := range streams {
		for _, sh := range s.stats.Shards {
			if v, ok := s.ages[sh.ShardID]; ok {
				w.sample(shardIteratorAgeName, v, "account", s.account, "region", s.region, "stream", s.stats.StreamName, "shard", sh.ShardID)
			}
		}
	}
	w.family(shardBehindName, "gauge", shardBehindHelp)
	for _, s := range streams {
		consumers := slices.Sorted(maps.Keys(s.behind))
		for _, sh := range s.stats.Shards {
			for _, consumer := range consumers {
				if g, ok := s.behind[consumer][sh.ShardID]; ok {
					w.sample(shardBehindName, g.value, "account", s.account, "region", s.region, "stream", s.stats.StreamName, "shard", sh.ShardID, "consumer", consumer)
				}
			}
		}
	}
	return w.buf.Bytes()
}

// metricsWriter writes the Prometheus text exposition format.
type metricsWriter struct{ buf bytes.Buffer }

// family starts a metric family: its HELP and TYPE lines.
func (w *metricsWriter) family(name, typ, help string) {
	w.buf.WriteString("# HELP ")
	w.buf.WriteString(name)
	w.buf.WriteByte(' ')
	w.buf.WriteString(escapeHelp(help))
	w.buf.WriteString("\n# TYPE ")
	w.buf.WriteString(name)
	w.buf.WriteByte(' ')
	w.buf.WriteString(typ)
	w.buf.WriteByte('\n')
}

// sample writes a sample of family name; labels are names and values in
// turn.
func (w *metricsWriter) sample(name string, value int64, labels ...string) {
	w.buf.WriteString(name)
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			w.buf.WriteByte('{')
		} else {
			w.buf.WriteByte(',')
		}
		w.buf.WriteString(labels[i])
		w.buf.WriteString(`="`)
		w.buf.WriteString(escapeLabelValue(labels[i+1]))
		w.buf.WriteByte('"')
	}
	if len(labels) > 1 {
		w.buf.WriteByte('}')
	}
	w.buf.WriteByte(' ')
	w.buf.Write(strconv.AppendInt(w.buf.AvailableBuffer(), value, 10))
	w.buf.WriteByte('\n')
}

// The text format's escapes: a label value escapes backslash, double quote
// and line feed; a HELP text backslash and line feed.
var (
	labelValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper       = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// escapeLabelValue escapes a label value for the text format.
func escapeLabelValue(v string) string { return labelValueEscaper.Replace(v) }

// escapeHelp escapes a HELP text for the text format.
func escapeHelp(v string) string { return helpEscaper.Replace(v) }
