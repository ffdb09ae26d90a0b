package server

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-go/runnel"
)

// The control API lets a test in any language do over HTTP what a Go test
// does with Cluster.InjectFault, Stream.Stats and a synctest bubble's
// virtual time: inject and remove faults, move the clock forward, read the
// counters. WithControlAPI adds it; it is off by default.
//
// Every endpoint is an exact path under /runnel/ and takes POST with a
// JSON object (an empty body counts as {}); those that only read also take
// GET. Answers are JSON objects (application/json); errors are
// {"__type": <a Kinesis error name>, "message": <what was wrong, with the
// value>}, with the error table's HTTP status, or 401 (token missing or
// wrong), 403 (not from a loopback address), 405 (wrong method) or 413
// (body over 64 KiB). Unknown fields are refused. Times are integers of
// milliseconds since the Unix epoch (fields named …Ms). Requests that
// name an account and a region are for the cluster of that account and
// region, which the server must hold already (see Server.Clusters); either
// left out means the default cluster's.

// The control API's endpoints.
const (
	controlPrefix          = "/runnel/"
	controlInjectFaultPath = controlPrefix + "faults/inject"
	controlRemoveFaultPath = controlPrefix + "faults/remove"
	controlListFaultsPath  = controlPrefix + "faults/list"
	controlClearFaultsPath = controlPrefix + "faults/clear"
	controlClockPath       = controlPrefix + "clock"
	controlAdvancePath     = controlPrefix + "clock/advance"
	controlStatsPath       = controlPrefix + "stats"
)

// Bounds of the control API's requests.
const (
	maxControlBody   = 64 << 10  // bytes of a request body
	maxControlFaults = 1000      // faults installed through the API at once
	maxFaultLatency  = time.Hour // an injected fault's latency
)

// maxClockOffset bounds how far a Clock runs ahead of the system clock, so
// that its times stay far from the limits of time.Duration (292 years).
const maxClockOffset = 100 * 365 * 24 * time.Hour

// Clock is a runnel.Clock that tests can move forward: the system clock (a
// synctest bubble's inside one) plus an offset that starts at zero and only
// grows. A cluster follows it only if it is made with runnel.WithClock(c),
// which c.ClusterOption returns: pass that to runnel.NewCluster for the
// cluster given to New, and in the function given to WithClusters for the
// others. Moving it forward ages records, iterators, NextTokens and
// subscriptions at once, and ends the cluster's waits that it passes
// (status delays, resharding durations): it is a runnel.AdvancingClock.
//
// The zero value is ready to use. A Clock is safe for concurrent use and
// must not be copied after first use. It goes back only if the system's
// wall clock does.
type Clock struct {
	offset atomic.Int64 // nanoseconds ahead of the system clock; never decreases

	mu     sync.Mutex
	jumped chan struct{} // closed at the next Advance; guarded by mu
}

// Advanced returns a channel that is closed when the clock is next moved
// forward.
func (c *Clock) Advanced() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jumped == nil {
		c.jumped = make(chan struct{})
	}
	return c.jumped
}

// Now returns the system clock's time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(c.Offset()) }

// Offset returns how far the clock runs ahead of the system clock.
func (c *Clock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Advance moves the clock forward by d. It refuses, with an error that
// wraps runnel.ErrInvalidArgument, a negative d (the clock never goes
// back) and a d that would put the clock more than 100 years ahead of the
// system clock.
func (c *Clock) Advance(d time.Duration) error {
	if d < 0 {
		return &runnel.Error{Op: "AdvanceClock", Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("cannot advance the clock by %v: it never goes back", d)}
	}
	for {
		cur := c.offset.Load()
		if d > maxClockOffset-time.Duration(cur) {
			return &runnel.Error{Op: "AdvanceClock", Kind: runnel.ErrInvalidArgument,
				Msg: fmt.Sprintf("advancing the clock by %v would put it %v ahead of the system clock; the most is %v", d, time.Duration(cur)+d, maxClockOffset)}
		}
		if c.offset.CompareAndSwap(cur, cur+int64(d)) {
			c.mu.Lock()
			if c.jumped != nil {
				close(c.jumped)
				c.jumped = nil
			}
			c.mu.Unlock()
			return nil
		}
	}
}

// ClusterOption returns runnel.WithClock(c): the option that makes a
// cluster follow the clock.
func (c *Clock) ClusterOption() runnel.ClusterOption { return runnel.WithClock(c) }

// WithControlAPI serves the control API: a test in any language can inject
// and remove faults in the server's clusters, read their streams'
// counters, and, if clock is not nil, read and advance clock. Its
// endpoints (the README gives their fields):
//
//	POST /runnel/faults/inject   a fault → {"faultId"}
//	POST /runnel/faults/remove   {"faultId"} → {}
//	POST /runnel/faults/list     → {"faults": [...]} (GET too)
//	POST /runnel/faults/clear    → {"removed": n}
//	POST /runnel/clock           → {"nowMs", "offsetMs"} (GET too)
//	POST /runnel/clock/advance   {"seconds"} or {"milliseconds"} → {"nowMs", "offsetMs"}
//	POST /runnel/stats           {"account"?, "region"?, "streamName"?} → {"account", "region", "streams": [...]} (GET too)
//
// Without a clock the clock endpoints answer ResourceNotFoundException.
// The clusters must be made with clock.ClusterOption() to follow the
// clock, those made by WithClusters too; the server cannot check that
// they are.
//
// The API answers only requests from a loopback address (127.0.0.0/8,
// ::1), even when the server listens on every interface, and only those
// with the header "Authorization: Bearer <token>". Put no proxy in front of
// it: a proxy on the same host makes every request come from loopback.
// The token is compared in constant time; it must be visible ASCII to be
// sent in a header. An empty token is never accepted: WithControlAPI then
// makes a random one, which Server.ControlToken returns.
//
// Faults installed through the API are listed and removed through it;
// those installed with Cluster.InjectFault are not listed, and the API
// cannot remove them. A fault whose times have all fired is uninstalled
// by the engine but stays listed, as spent, until it is removed or
// cleared; the list tells how many times each fault fired. Reading stats meets no injected fault.
func WithControlAPI(token string, clock *Clock) Option {
	return func(s *Server) {
		if token == "" {
			token = rand.Text()
		}
		a := &controlAPI{s: s, token: token, tokenSum: sha256.Sum256([]byte(token)), clock: clock, faults: make(map[string]*controlFault)}
		for path, e := range map[string]*controlEndpoint{
			controlInjectFaultPath: {serve: a.injectFault},
			controlRemoveFaultPath: {serve: a.removeFault},
			controlListFaultsPath:  {serve: a.listFaults, get: true},
			controlClearFaultsPath: {serve: a.clearFaults},
			controlClockPath:       {serve: a.readClock, get: true},
			controlAdvancePath:     {serve: a.advanceClock},
			controlStatsPath:       {serve: a.readStats, get: true},
		} {
			e.api = a
			s.paths[path] = e
		}
	}
}

// ControlToken returns the token the control API asks for, "" if the
// server has none (see WithControlAPI). Tests that let WithControlAPI make
// the token pass it on to the program under test from here.
func (s *Server) ControlToken() string {
	if e, ok := s.paths[controlClockPath].(*controlEndpoint); ok {
		return e.api.token
	}
	return ""
}

// controlAPI is the state of a server's control API.
type controlAPI struct {
	s        *Server
	token    string
	tokenSum [sha256.Size]byte // the token's digest, compared in constant time
	clock    *Clock            // nil: the clock endpoints are refused

	mu     sync.Mutex
	faults map[string]*controlFault // guarded by mu: the faults installed through the API, by id
	nextID uint64                   // guarded by mu: numbers the fault ids
}

// controlFault is a fault installed through the control API.
type controlFault struct {
	seq      uint64 // the order of installation
	listed   listedFault
	injected *runnel.InjectedFault
}

// controlEndpoint is one endpoint of the control API.
type controlEndpoint struct {
	api   *controlAPI
	get   bool // GET is allowed too: the endpoint only reads
	serve func(r *http.Request, body []byte) (any, error)
}

// ServeHTTP checks where a request comes from, its token and its method,
// reads its body and answers it.
func (e *controlEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := e.api
	if !fromLoopback(r.RemoteAddr) {
		a.writeError(w, r, &runnel.Error{Op: "Authorize", Kind: runnel.ErrAccessDenied,
			Msg: fmt.Sprintf("the control API answers only requests from a loopback address, not from %.64q", r.RemoteAddr)}, http.StatusForbidden)
		return
	}
	if err := a.authorize(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="runnel"`)
		a.writeError(w, r, err, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost && (!e.get || r.Method != http.MethodGet) {
		allow := "POST"
		if e.get {
			allow = "GET, POST"
		}
		w.Header().Set("Allow", allow)
		a.writeError(w, r, &runnel.Error{Op: "Dispatch", Kind: runnel.ErrUnknownOperation,
			Msg: fmt.Sprintf("%s takes %s, not %.16q", r.URL.Path, allow, r.Method)}, http.StatusMethodNotAllowed)
		return
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			a.writeError(w, r, &runnel.Error{Op: "Read", Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("the request body is larger than %d bytes", maxControlBody)}, http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			a.writeError(w, r, &runnel.Error{Op: "Read", Kind: runnel.ErrSerialization, Msg: "reading the request body failed", Err: err}, 0)
			return
		}
		body = b
	}
	out, err := e.serve(r, body)
	if err != nil {
		a.writeError(w, r, err, 0)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		a.writeError(w, r, &runnel.Error{Op: "Encode", Kind: runnel.ErrInternalFailure, Err: err}, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// fromLoopback reports whether a request's remote address is a loopback
// IP address.
func fromLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// authorize checks a request's bearer token.
func (a *controlAPI) authorize(r *http.Request) error {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return &runnel.Error{Op: "Authorize", Kind: runnel.ErrAccessDenied, Msg: "the control API needs the header Authorization: Bearer <token>"}
	}
	// Digests of equal length, so that the comparison tells nothing of the
	// token's length either.
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
		return &runnel.Error{Op: "Authorize", Kind: runnel.ErrAccessDenied, Msg: "the control API token is wrong"}
	}
	return nil
}

// writeError answers err as a JSON error body: the error table's name and
// status (unless status is set) and the error's message.
func (a *controlAPI) writeError(w http.ResponseWriter, r *http.Request, err error, status int) {
	a.s.writeErrorIn(w, r, controlCodec, err, status)
}

// controlCodec is the control API's: plain JSON.
var controlCodec = &codec{contentType: "application/json", unmarshal: unmarshalJSON, marshal: json.Marshal}

// decodeControl decodes a request body strictly into in; an empty body is
// an empty object.
func decodeControl(op string, body []byte, in any) error {
	return request{body: body, codec: controlCodec}.decode(op, in)
}

// clusterSelector names a cluster in a request: by account and region,
// either of which defaults to the default cluster's.
type clusterSelector struct {
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
}

// cluster returns the cluster a request selects.
func (a *controlAPI) cluster(op string, sel clusterSelector) (*runnel.Cluster, error) {
	def := a.s.cluster
	if sel.Account == "" && sel.Region == "" {
		return def, nil
	}
	account, region := cmp.Or(sel.Account, def.AccountID()), cmp.Or(sel.Region, def.Region())
	for _, c := range a.s.Clusters() {
		if c.AccountID() == account && c.Region() == region {
			return c, nil
		}
	}
	return nil, &runnel.Error{Op: op, Kind: runnel.ErrResourceNotFound,
		Msg: fmt.Sprintf("the server holds no cluster of account %.64q in region %.64q (with WithClusters, it makes one at the first Kinesis request signed for them)", account, region)}
}

// faultSpec is a fault as the control API takes it. Empty fields match
// everything, as in runnel.Fault.
type faultSpec struct {
	clusterSelector
	// Operation is a Kinesis operation name (runnel.Operation's String),
	// "" for every operation.
	Operation  string `json:"operation,omitempty"`
	StreamName string `json:"streamName,omitempty"`
	ShardID    string `json:"shardId,omitempty"`
	// Error is a Kinesis error name (runnel.ErrorForName), "" for latency
	// only.
	Error     string `json:"error,omitempty"`
	Times     int    `json:"times,omitempty"`
	LatencyMs int64  `json:"latencyMs,omitempty"`
	// PartitionKeys makes the fault fail single records, those with one of
	// these keys (runnel.Fault.Record).
	PartitionKeys []string `json:"partitionKeys,omitempty"`
}

// listedFault is an installed fault as the control API lists it: its id
// and its spec, with the account and region of its cluster, and how many
// times it fired (spent: all its times).
type listedFault struct {
	FaultID string `json:"faultId"`
	faultSpec
	Fired int  `json:"fired"`
	Spent bool `json:"spent"`
}

// fault converts a spec to a runnel.Fault, checking what the JSON adds:
// the names of the operation and the error, the latency's range, and the
// partition keys. InjectFault checks the rest.
func (spec *faultSpec) fault() (runnel.Fault, error) {
	const op = "InjectFault"
	f := runnel.Fault{StreamName: spec.StreamName, ShardID: spec.ShardID, Times: spec.Times}
	if spec.Operation != "" {
		o, err := runnel.ParseOperation(spec.Operation)
		if err != nil {
			return f, err
		}
		f.Op = o
	}
	if spec.Error != "" {
		if f.Err = runnel.ErrorForName(spec.Error); f.Err == nil {
			return f, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument,
				Msg: fmt.Sprintf("error %.64q is not a Kinesis error name (such as ProvisionedThroughputExceededException)", spec.Error)}
		}
	}
	if spec.LatencyMs < 0 || spec.LatencyMs > maxFaultLatency.Milliseconds() {
		return f, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument,
			Msg: fmt.Sprintf("latencyMs %d is not between 0 and %d (an hour)", spec.LatencyMs, maxFaultLatency.Milliseconds())}
	}
	f.Latency = time.Duration(spec.LatencyMs) * time.Millisecond
	if spec.PartitionKeys != nil {
		if len(spec.PartitionKeys) == 0 {
			return f, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "partitionKeys is empty: leave it out to affect whole operations"}
		}
		keys := make(map[string]struct{}, len(spec.PartitionKeys))
		for _, k := range spec.PartitionKeys {
			keys[k] = struct{}{}
		}
		// Only read once made: safe for the writers' concurrent calls.
		f.Record = func(key string, _ []byte) bool {
			_, ok := keys[key]
			return ok
		}
	}
	return f, nil
}

// injectFault installs a fault: faultSpec → {"faultId"}.
func (a *controlAPI) injectFault(_ *http.Request, body []byte) (any, error) {
	const op = "InjectFault"
	var spec faultSpec
	if err := decodeControl(op, body, &spec); err != nil {
		return nil, err
	}
	f, err := spec.fault()
	if err != nil {
		return nil, err
	}
	c, err := a.cluster(op, spec.clusterSelector)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.faults) >= maxControlFaults {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrLimitExceeded,
			Msg: fmt.Sprintf("%d faults are installed through the control API, the most it holds; remove or clear some", len(a.faults))}
	}
	injected, err := c.InjectFaultTracked(f)
	if err != nil {
		return nil, err
	}
	a.nextID++
	spec.Account, spec.Region = c.AccountID(), c.Region()
	id := "fault-" + strconv.FormatUint(a.nextID, 10)
	a.faults[id] = &controlFault{seq: a.nextID, listed: listedFault{FaultID: id, faultSpec: spec}, injected: injected}
	return struct {
		FaultID string `json:"faultId"`
	}{id}, nil
}

// removeFault removes a fault: {"faultId"} → {}.
func (a *controlAPI) removeFault(_ *http.Request, body []byte) (any, error) {
	const op = "RemoveFault"
	var in struct {
		FaultID string `json:"faultId"`
	}
	if err := decodeControl(op, body, &in); err != nil {
		return nil, err
	}
	if in.FaultID == "" {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "faultId is missing: give the id InjectFault returned"}
	}
	a.mu.Lock()
	f := a.faults[in.FaultID]
	delete(a.faults, in.FaultID)
	a.mu.Unlock()
	if f == nil {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrResourceNotFound,
			Msg: fmt.Sprintf("fault %.64q is not installed: it was removed or cleared, or never injected", in.FaultID)}
	}
	f.injected.Remove()
	return struct{}{}, nil
}

// listFaults lists the faults installed through the API, in the order
// they were: {} → {"faults": [listedFault…]}.
func (a *controlAPI) listFaults(_ *http.Request, body []byte) (any, error) {
	if err := decodeControl("ListFaults", body, &struct{}{}); err != nil {
		return nil, err
	}
	a.mu.Lock()
	all := make([]*controlFault, 0, len(a.faults))
	for _, f := range a.faults {
		all = append(all, f)
	}
	a.mu.Unlock()
	slices.SortFunc(all, func(x, y *controlFault) int { return cmp.Compare(x.seq, y.seq) })
	out := struct {
		Faults []listedFault `json:"faults"`
	}{Faults: make([]listedFault, len(all))}
	for i, f := range all {
		out.Faults[i] = f.listed
		out.Faults[i].Fired, out.Faults[i].Spent = f.injected.Fired(), f.injected.Spent()
	}
	return out, nil
}

// clearFaults removes every fault installed through the API: {} →
// {"removed": n}.
func (a *controlAPI) clearFaults(_ *http.Request, body []byte) (any, error) {
	if err := decodeControl("ClearFaults", body, &struct{}{}); err != nil {
		return nil, err
	}
	a.mu.Lock()
	all := a.faults
	a.faults = make(map[string]*controlFault)
	a.mu.Unlock()
	for _, f := range all {
		f.injected.Remove()
	}
	return struct {
		Removed int `json:"removed"`
	}{len(all)}, nil
}

// clockState is the answer of the clock endpoints.
type clockState struct {
	NowMs    int64 `json:"nowMs"`    // the clock's time
	OffsetMs int64 `json:"offsetMs"` // how far it runs ahead of the system clock
}

// clockOf returns the API's clock, or an error that says there is none.
func (a *controlAPI) clockOf(op string) (*Clock, error) {
	if a.clock == nil {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrResourceNotFound, Msg: "the server has no clock to control: give WithControlAPI a *Clock"}
	}
	return a.clock, nil
}

func (c *Clock) state() clockState {
	return clockState{NowMs: c.Now().UnixMilli(), OffsetMs: c.Offset().Milliseconds()}
}

// readClock reads the clock: {} → clockState.
func (a *controlAPI) readClock(_ *http.Request, body []byte) (any, error) {
	const op = "ReadClock"
	if err := decodeControl(op, body, &struct{}{}); err != nil {
		return nil, err
	}
	c, err := a.clockOf(op)
	if err != nil {
		return nil, err
	}
	return c.state(), nil
}

// advanceClock moves the clock forward: {"seconds"} or {"milliseconds"}
// → clockState.
func (a *controlAPI) advanceClock(_ *http.Request, body []byte) (any, error) {
	const op = "AdvanceClock"
	var in struct {
		Seconds      *float64 `json:"seconds"`
		Milliseconds *int64   `json:"milliseconds"`
	}
	if err := decodeControl(op, body, &in); err != nil {
		return nil, err
	}
	c, err := a.clockOf(op)
	if err != nil {
		return nil, err
	}
	// Advance checks the duration; here only that it converts without
	// overflow (a NaN or a huge number of seconds).
	var d time.Duration
	switch sec, ms := in.Seconds, in.Milliseconds; {
	case (sec == nil) == (ms == nil):
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: "give either seconds or milliseconds to advance the clock by, not both or neither"}
	case sec != nil && !(math.Abs(*sec) <= maxClockOffset.Seconds()):
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("seconds %v is not a number of seconds up to %v", *sec, maxClockOffset)}
	case sec != nil:
		d = time.Duration(math.Round(*sec * float64(time.Second)))
	case *ms < -maxClockOffset.Milliseconds() || *ms > maxClockOffset.Milliseconds():
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("milliseconds %d is more than %v", *ms, maxClockOffset)}
	default:
		d = time.Duration(*ms) * time.Millisecond
	}
	if err := c.Advance(d); err != nil {
		return nil, err
	}
	return c.state(), nil
}

// counters are the figures of a shard, or their sums over a stream
// (runnel.ShardStats without ShardID and Open).
type counters struct {
	RecordsRetained int64 `json:"recordsRetained"`
	BytesRetained   int64 `json:"bytesRetained"`
	MemoryBytes     int64 `json:"memoryBytes"`
	RecordsPut      int64 `json:"recordsPut"`
	BytesPut        int64 `json:"bytesPut"`
	GetCalls        int64 `json:"getCalls"`
	RecordsRead     int64 `json:"recordsRead"`
	BytesRead       int64 `json:"bytesRead"`
	RecordsPushed   int64 `json:"recordsPushed"`
	BytesPushed     int64 `json:"bytesPushed"`
	WriteThrottles  int64 `json:"writeThrottles"`
	ReadThrottles   int64 `json:"readThrottles"`
	// The arrival times of the oldest and newest retained records, in
	// milliseconds since the epoch; left out when there are none.
	OldestArrivalMs *int64 `json:"oldestArrivalMs,omitempty"`
	NewestArrivalMs *int64 `json:"newestArrivalMs,omitempty"`
}

// shardStats is a runnel.ShardStats as the control API answers it.
type shardStats struct {
	ShardID string `json:"shardId"`
	Open    bool   `json:"open"`
	counters
}

// streamStats is a runnel.StreamStats as the control API answers it.
type streamStats struct {
	StreamName string       `json:"streamName"`
	Total      counters     `json:"total"`
	Shards     []shardStats `json:"shards"`
}

func countersOf(st runnel.ShardStats) counters {
	c := counters{
		RecordsRetained: st.RecordsRetained, BytesRetained: st.BytesRetained, MemoryBytes: st.MemoryBytes,
		RecordsPut: st.RecordsPut, BytesPut: st.BytesPut,
		GetCalls: st.GetCalls, RecordsRead: st.RecordsRead, BytesRead: st.BytesRead,
		RecordsPushed: st.RecordsPushed, BytesPushed: st.BytesPushed,
		WriteThrottles: st.WriteThrottles, ReadThrottles: st.ReadThrottles,
	}
	if !st.OldestArrival.IsZero() {
		ms := st.OldestArrival.UnixMilli()
		c.OldestArrivalMs = &ms
	}
	if !st.NewestArrival.IsZero() {
		ms := st.NewestArrival.UnixMilli()
		c.NewestArrivalMs = &ms
	}
	return c
}

func streamStatsOf(st runnel.StreamStats) streamStats {
	out := streamStats{StreamName: st.StreamName, Total: countersOf(st.Total), Shards: make([]shardStats, len(st.Shards))}
	for i, sh := range st.Shards {
		out.Shards[i] = shardStats{ShardID: sh.ShardID, Open: sh.Open, counters: countersOf(sh)}
	}
	return out
}

// readStats reads the counters of one stream, or of every stream of a
// cluster: {account?, region?, streamName?} → {"account", "region",
// "streams": [streamStats…]}.
func (a *controlAPI) readStats(r *http.Request, body []byte) (any, error) {
	const op = "ReadStats"
	var in struct {
		clusterSelector
		StreamName string `json:"streamName,omitempty"`
	}
	if err := decodeControl(op, body, &in); err != nil {
		return nil, err
	}
	c, err := a.cluster(op, in.clusterSelector)
	if err != nil {
		return nil, err
	}
	streams := c.Streams()
	if in.StreamName != "" {
		s, err := c.Stream(in.StreamName)
		if err != nil {
			return nil, err
		}
		streams = []*runnel.Stream{s}
	}
	out := struct {
		Account string        `json:"account"`
		Region  string        `json:"region"`
		Streams []streamStats `json:"streams"`
	}{Account: c.AccountID(), Region: c.Region(), Streams: make([]streamStats, 0, len(streams))}
	for _, s := range streams {
		out.Streams = append(out.Streams, streamStatsOf(s.Stats()))
	}
	return out, nil
}
