package runnel

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// A durable cluster keeps, in its data directory:
//
//	cluster.lock               held (flock) while a process has the directory open
//	cluster.json               the cluster: its next stream id, and whether it was closed cleanly
//	streams/<id>/stream.json   a stream: its configuration, settings, tags, consumers,
//	                           shards and lineage, and a resharding not yet committed
//	streams/<id>/<shard>/      a shard's records: its file store (filestore.go)
//
// The JSON files are replaced whole and atomically (replaceFile) by the
// control operation that changes them, before it returns; records reach
// their shard's files as the sync policy says.

// catalogVersion is the version of cluster.json and stream.json.
const catalogVersion = 1

// crashGap is how far each shard's counter jumps after a crash: past every
// number the shard may have issued without its record reaching the disk (a
// record acknowledged under SyncInterval or SyncOS and then lost, or an
// idle subscription's continuation number), so that no number a reader saw
// before the crash is issued again.
const crashGap = 1 << 32

// WithSync sets the sync policy of a cluster opened with Open. Default
// SyncAlways(). NewCluster ignores it.
func WithSync(p SyncPolicy) ClusterOption { return func(c *clusterConfig) { c.sync = p } }

// WithSegmentSize sets the size past which a shard of a cluster opened
// with Open starts a new segment file. Retention deletes whole segments,
// so it bounds how long expired records stay on disk. Default 32 MiB;
// values below 1 keep it. NewCluster ignores it.
func WithSegmentSize(bytes int64) ClusterOption {
	return func(c *clusterConfig) {
		if bytes > 0 {
			c.segmentBytes = bytes
		}
	}
}

// WithCacheSize sets how much memory each shard of a cluster opened with
// Open keeps for its newest records, which readers at the tip read
// without touching the disk. Default 8 MiB; values below 1 keep it.
// NewCluster ignores it.
func WithCacheSize(bytes int64) ClusterOption {
	return func(c *clusterConfig) {
		if bytes > 0 {
			c.cacheBytes = bytes
		}
	}
}

// withFileSystem makes a durable cluster's stores use fsys: the seam of
// the tests that inject file-system faults.
func withFileSystem(fsys fileSystem) ClusterOption {
	return func(c *clusterConfig) { c.fs = fsys }
}

// Open opens the durable cluster kept in the directory dir, creating it
// if it does not exist. Its streams, shards, lineage, sequence counters,
// records and their arrival times, retention, settings, tags, registered
// consumers and stream ids survive Close and a crash: iterators issued
// before a restart resume where they were, and sequence numbers are never
// issued twice. Records reach the disk as WithSync says (default: before
// the put returns).
//
// In dir it keeps cluster.json and cluster.lock, and under streams/ a
// directory per stream (by id) with its stream.json and a directory per
// shard of segment files (.seg) and their indexes (.idx); ShardStats'
// DiskBytes counts a shard's .seg and .idx files. An empty dir is an
// ErrInvalidArgument.
//
// One process at a time may have dir open: a second Open, in this process
// or another, fails with ErrResourceInUse while the first is open (on unix
// systems; elsewhere nothing stops it). A directory that cannot be read
// as a cluster fails with ErrInternalFailure naming the file and the
// fault. Call Close to make every record durable and release the
// directory.
//
// A control operation (CreateStream, a resharding, a settings or tags
// change, RegisterStreamConsumer…) returns only once the stream's catalog
// file is replaced on disk. If that write fails, it returns an error
// wrapping ErrInternalFailure; its change holds in memory, and reaches the
// disk with the stream's next successful write of the catalog.
//
// On restart after a crash, work that was in flight is finished or
// dropped: a resharding that was UPDATING is committed at once, streams
// and consumers that were CREATING are ACTIVE, those that were DELETING
// are gone, and subscriptions must be made again.
func Open(dir string, opts ...ClusterOption) (*Cluster, error) {
	const op = "Open"
	cfg := defaultClusterConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if dir == "" {
		return nil, errorf(op, ErrInvalidArgument, "the data directory is empty: name one (\".\" for the current directory)")
	}
	if err := cfg.sync.check(op); err != nil {
		return nil, err
	}
	if cfg.fs == nil {
		cfg.fs = osFS{}
	}
	cfg.dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "streams"), 0o700); err != nil {
		return nil, catalogError(op, dir, "create the data directory", err)
	}
	lock, err := lockDataDir(op, dir)
	if err != nil {
		return nil, err
	}
	c := newCluster(cfg)
	c.dirLock = lock
	if err := c.recover(op); err != nil {
		for _, s := range c.streams {
			s.mu.Lock()
			for _, sh := range s.storedShardsLocked() {
				releaseStore(sh)
			}
			s.mu.Unlock()
		}
		lock.close()
		return nil, err
	}
	c.wg.Go(c.sweep)
	return c, nil
}

// clusterFile is cluster.json.
type clusterFile struct {
	Version int    `json:"version"`
	NextID  uint64 `json:"nextStreamId"`
	Clean   bool   `json:"cleanShutdown"`
}

// recover loads the data directory into c: every stream, with its shards'
// stores opened and recovered. It leaves cluster.json marked unclean, so
// that a crash from now on is known at the next Open.
func (c *Cluster) recover(op string) error {
	var cf clusterFile
	path := filepath.Join(c.cfg.dir, "cluster.json")
	if err := readJSON(path, &cf); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return catalogError(op, path, "read", err)
	} else if err == nil && cf.Version != catalogVersion {
		return catalogError(op, path, "read", fmt.Errorf("version %d is not %d", cf.Version, catalogVersion))
	}
	c.nextID = cf.NextID
	dirs, err := os.ReadDir(filepath.Join(c.cfg.dir, "streams"))
	if err != nil {
		return catalogError(op, c.cfg.dir, "list the streams of", err)
	}
	gap := uint64(0)
	if !cf.Clean && cf.Version != 0 {
		gap = crashGap
	}
	for _, d := range dirs {
		id, err := strconv.ParseUint(d.Name(), 10, 64)
		if err != nil || !d.IsDir() {
			continue
		}
		s, err := c.restoreStream(op, id, gap)
		if err != nil {
			return err
		}
		if s == nil { // deleted, or never finished being created
			if err := os.RemoveAll(c.streamDir(id)); err != nil {
				return catalogError(op, c.streamDir(id), "remove the deleted stream", err)
			}
			continue
		}
		c.nextID = max(c.nextID, id)
		c.streams[s.name] = s
		c.openShards += s.quotaShards
	}
	return c.writeClusterFile(op, false)
}

// writeClusterFile replaces cluster.json.
func (c *Cluster) writeClusterFile(op string, clean bool) error {
	path := filepath.Join(c.cfg.dir, "cluster.json")
	return writeJSON(op, path, clusterFile{Version: catalogVersion, NextID: c.nextID, Clean: clean})
}

// durable reports whether c keeps its streams in a data directory.
func (c *Cluster) durable() bool { return c.cfg.dir != "" }

func (c *Cluster) streamDir(id uint64) string {
	return filepath.Join(c.cfg.dir, "streams", strconv.FormatUint(id, 10))
}

func (c *Cluster) shardDir(streamID, shard uint64) string {
	return filepath.Join(c.streamDir(streamID), shardID(shard))
}

// openStore gives sh its store: a file store in a durable cluster, which
// recovers the shard's records, or a memory store. It returns the counter
// after the newest record found.
func (c *Cluster) openStore(op string, streamID uint64, sh *shardState) (uint64, error) {
	if !c.durable() {
		sh.store = newMemStore()
		return sh.startCounter, nil
	}
	st, next, err := openFileStore(fileStoreConfig{
		dir: c.shardDir(streamID, sh.num), fs: c.cfg.fs, sync: c.cfg.sync,
		segmentBytes: c.cfg.segmentBytes, cacheBytes: c.cfg.cacheBytes,
		base: sh.startCounter, mu: &sh.mu, published: sh.wakeLocked,
	})
	if err != nil {
		return 0, asError(op, "", err)
	}
	sh.store = st
	return next, nil
}

// releaseStore closes sh's store, which the shard no longer needs (its
// stream was deleted or closed, or its records all expired), leaving it an
// empty memory store for any reader still holding the shard; a put that
// reaches the shard later fails with ErrClosed (see put), so nothing is
// acknowledged that the store did not keep. It returns the store's error.
func releaseStore(sh *shardState) error {
	sh.mu.Lock()
	st := sh.store
	sh.store = newMemStore()
	sh.released = true
	sh.mu.Unlock()
	return st.close()
}

// releaseLocked closes the stores of a stream that is gone (deleted) and
// removes its files: its stream.json first, so that a crash in between
// leaves a directory that Open removes. Called with s.mu held.
func (s *Stream) releaseLocked() error {
	var errs []error
	for _, sh := range s.storedShardsLocked() {
		errs = append(errs, releaseStore(sh))
	}
	if !s.cluster.durable() {
		return errors.Join(errs...)
	}
	dir := s.cluster.streamDir(s.id)
	if err := os.Remove(filepath.Join(dir, "stream.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	} else if err := syncDir(dir); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, os.RemoveAll(dir))
	return errors.Join(errs...)
}

// storedShardsLocked returns the shards that have stores: the listed ones and
// those of a pending resharding.
// Called with s.mu held.
func (s *Stream) storedShardsLocked() []*shardState {
	out := slices.Clone(s.shards.Load().all)
	if s.pending != nil {
		out = append(out, s.pending.created...)
	}
	return out
}

// closeDurable ends a durable cluster at Close: it makes every record
// durable, records each shard's exact counter, marks the shutdown clean and
// releases the directory. The streams have ended already.
func (c *Cluster) closeDurable(streams map[string]*Stream) error {
	var errs []error
	for _, s := range streams {
		s.mu.Lock()
		for _, sh := range s.storedShardsLocked() {
			errs = append(errs, releaseStore(sh))
		}
		errs = append(errs, s.persistLocked("Close"))
		s.mu.Unlock()
	}
	err := errors.Join(errs...)
	if err == nil {
		err = c.writeClusterFile("Close", true)
	}
	return errors.Join(err, c.dirLock.close())
}

// streamFile is stream.json.
type streamFile struct {
	Version     int               `json:"version"`
	ID          uint64            `json:"id"`
	Name        string            `json:"name"`
	Created     time.Time         `json:"created"`
	Config      configFile        `json:"config"`
	Retention   time.Duration     `json:"retention"`
	Status      StreamStatus      `json:"status"`
	NextShard   uint64            `json:"nextShard"`
	UpdateCalls []time.Time       `json:"updateShardCountCalls,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Settings    settingsFile      `json:"settings"`
	Gen         uint64            `json:"shardMapGeneration"`
	Open        []uint64          `json:"openShards"`
	Shards      []shardFile       `json:"shards"`
	Pending     *reshardFile      `json:"pendingResharding,omitempty"`
	Consumers   []consumerFile    `json:"consumers,omitempty"`
	GoneCounts  ShardStats        `json:"goneShardCounts"`
	Encryption  []encryptionFile  `json:"encryption,omitempty"`
}

// configFile is a stream's configuration at creation.
type configFile struct {
	ShardCount            int                `json:"shardCount"`
	Limits                Limits             `json:"limits"`
	MaxRecordSize         int64              `json:"maxRecordSize"`
	MaxRequestSize        int64              `json:"maxRequestSize"`
	DefaultRequestSize    bool               `json:"defaultRequestSize"`
	IteratorTTL           time.Duration      `json:"iteratorTtl"`
	ReshardDuration       time.Duration      `json:"reshardDuration"`
	UpdateShardCountLimit int                `json:"updateShardCountLimit"`
	ConsumerLimit         int                `json:"consumerLimit"`
	ConsumerDelay         time.Duration      `json:"consumerDelay"`
	SubscriptionTTL       time.Duration      `json:"subscriptionTtl"`
	StatusDelay           time.Duration      `json:"statusDelay"`
	Distribution          RecordDistribution `json:"distribution"`
}

// settingsFile is a stream's settings (settings.go).
type settingsFile struct {
	KeyID        string             `json:"keyId,omitempty"`
	Metrics      []string           `json:"metrics,omitempty"`
	Mode         StreamMode         `json:"mode"`
	ModeSwitches []time.Time        `json:"modeSwitches,omitempty"`
	WarmMiBps    int                `json:"warmMiBps,omitempty"`
	Distribution RecordDistribution `json:"distribution"`
	Policy       string             `json:"policy,omitempty"`
}

// encryptionFile is one change of a stream's encryption.
type encryptionFile struct {
	FromMs int64          `json:"fromMs"`
	Type   EncryptionType `json:"type"`
}

// shardFile is one listed shard.
type shardFile struct {
	Num              uint64       `json:"num"`
	HashKeyRange     HashKeyRange `json:"hashKeyRange"`
	ParentID         string       `json:"parent,omitempty"`
	AdjacentParentID string       `json:"adjacentParent,omitempty"`
	StartCounter     uint64       `json:"startCounter"`
	CreatedMs        int64        `json:"createdMs"`
	OpenedGen        uint64       `json:"openedGen"`
	Next             uint64       `json:"next"`
	Closed           bool         `json:"closed,omitempty"`
	ClosedAtMs       int64        `json:"closedAtMs,omitempty"`
	ClosedGen        uint64       `json:"closedGen,omitempty"`
	Children         []uint64     `json:"children,omitempty"`
	Counters         ShardStats   `json:"counters"`
}

// reshardFile is a resharding accepted but not yet committed.
type reshardFile struct {
	Open      []uint64            `json:"open"` // the open shards after it, in hash order
	Created   []shardFile         `json:"created"`
	Parents   []uint64            `json:"parents"`
	ParentsOf map[uint64][]uint64 `json:"parentsOf"`
	Children  map[uint64][]uint64 `json:"children"`
	Steps     int                 `json:"steps"`
	Floor     uint64              `json:"floor"`
}

// consumerFile is one registered consumer.
type consumerFile struct {
	Desc   StreamConsumer    `json:"consumer"`
	Policy string            `json:"policy,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// persistLocked writes the stream's stream.json, with its pending
// resharding if any. It is called with s.mu held, by every control
// operation that changes what the file holds, before the operation
// returns; it takes cmu and the shards' locks to read them. A memory
// cluster writes nothing.
func (s *Stream) persistLocked(op string) error {
	if !s.cluster.durable() {
		return nil
	}
	f := s.snapshotLocked()
	return writeJSON(op, filepath.Join(s.cluster.streamDir(s.id), "stream.json"), f)
}

// persist is persistLocked for an operation that holds no lock of the
// stream (the consumer operations, which hold only cmu).
func (s *Stream) persist(op string) error {
	if !s.cluster.durable() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() == streamDeleted || s.state.Load() == streamClosed {
		return nil
	}
	return s.persistLocked(op)
}

// snapshotLocked is the stream as stream.json holds it.
func (s *Stream) snapshotLocked() streamFile {
	cfg := s.cfg
	f := streamFile{
		Version: catalogVersion, ID: s.id, Name: s.name, Created: s.created,
		Config: configFile{
			ShardCount: cfg.shardCount, Limits: cfg.limits,
			MaxRecordSize: s.maxRecordSize.Load(), MaxRequestSize: s.maxRequestSize.Load(), DefaultRequestSize: cfg.defaultRequestSize,
			IteratorTTL: cfg.iteratorTTL, ReshardDuration: cfg.reshardDuration, UpdateShardCountLimit: cfg.updateShardCountLimit,
			ConsumerLimit: cfg.consumerLimit, ConsumerDelay: cfg.consumerDelay, SubscriptionTTL: cfg.subscriptionTTL,
			StatusDelay: cfg.statusDelay, Distribution: cfg.distribution,
		},
		Retention: time.Duration(s.retention.Load()), Status: s.status, NextShard: s.nextShard,
		UpdateCalls: s.updateCalls, Tags: s.tags,
		Settings: settingsFile{KeyID: s.set.keyID, Metrics: s.set.metrics, Mode: s.set.mode, ModeSwitches: s.set.modeSwitches,
			WarmMiBps: s.set.warmMiBps, Distribution: s.set.distribution, Policy: s.set.policy},
		GoneCounts: s.goneCounts,
	}
	for _, e := range *s.encryption.Load() {
		f.Encryption = append(f.Encryption, encryptionFile{FromMs: e.fromMs, Type: e.typ})
	}
	m := s.shards.Load()
	f.Gen = m.gen
	for _, sh := range m.open {
		f.Open = append(f.Open, sh.num)
	}
	for _, sh := range m.all {
		sh.mu.Lock()
		f.Shards = append(f.Shards, sh.fileLocked())
		sh.mu.Unlock()
	}
	if p := s.pending; p != nil {
		r := &reshardFile{ParentsOf: map[uint64][]uint64{}, Children: map[uint64][]uint64{}, Steps: p.steps, Floor: p.floor}
		for _, sh := range p.open {
			r.Open = append(r.Open, sh.num)
		}
		for _, sh := range p.created {
			r.Created = append(r.Created, sh.fileLocked()) // not yet shared: no lock needed
		}
		for _, sh := range p.parents {
			r.Parents = append(r.Parents, sh.num)
		}
		for sh, ps := range p.parentsOf {
			r.ParentsOf[sh.num] = shardNums(ps)
		}
		for sh, cs := range p.children {
			r.Children[sh.num] = shardNums(cs)
		}
		f.Pending = r
	}
	s.cmu.Lock()
	for _, c := range s.consumers {
		f.Consumers = append(f.Consumers, consumerFile{Desc: c.desc, Policy: c.policy, Tags: c.tags})
	}
	s.cmu.Unlock()
	slices.SortFunc(f.Consumers, func(a, b consumerFile) int { return cmp.Compare(a.Desc.ConsumerName, b.Desc.ConsumerName) })
	return f
}

func shardNums(shards []*shardState) []uint64 {
	out := make([]uint64, len(shards))
	for i, sh := range shards {
		out[i] = sh.num
	}
	return out
}

// fileLocked is the shard as stream.json holds it. Called with sh.mu held.
func (sh *shardState) fileLocked() shardFile {
	f := shardFile{
		Num: sh.num, HashKeyRange: sh.hashRange, ParentID: sh.parentID, AdjacentParentID: sh.adjacentParentID,
		StartCounter: sh.startCounter, CreatedMs: sh.createdMs, OpenedGen: sh.openedGen, Next: sh.next,
		Closed: sh.closed, ClosedAtMs: sh.closedAtMs, ClosedGen: sh.closedGen, Children: shardNums(sh.children),
	}
	f.Counters.addCounters(sh.counters)
	return f
}

// restoreStream rebuilds stream id from its stream.json and opens its
// shards' stores, moving each open shard's counter on by gap. It returns
// nil for a stream that was being deleted or whose creation never
// finished (no stream.json).
func (c *Cluster) restoreStream(op string, id uint64, gap uint64) (*Stream, error) {
	path := filepath.Join(c.streamDir(id), "stream.json")
	var f streamFile
	if err := readJSON(path, &f); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, catalogError(op, path, "read", err)
	}
	if f.Version != catalogVersion || f.ID != id {
		return nil, catalogError(op, path, "read", fmt.Errorf("version %d, id %d: want version %d, id %d", f.Version, f.ID, catalogVersion, id))
	}
	if f.Status == StatusDeleting {
		return nil, nil
	}
	cfg, err := f.streamConfig(op)
	if err == nil {
		err = f.check()
	}
	if err != nil {
		return nil, catalogError(op, path, "read", err)
	}
	s := newStreamShell(c, id, f.Name, cfg, f.Created)
	s.state.Store(streamLive) // whatever status it had: see Open
	s.retention.Store(int64(f.Retention))
	s.nextShard = f.NextShard
	s.updateCalls = f.UpdateCalls
	s.tags = f.Tags
	s.set = settings{keyID: f.Settings.KeyID, metrics: f.Settings.Metrics, mode: f.Settings.Mode, modeSwitches: f.Settings.ModeSwitches,
		warmMiBps: f.Settings.WarmMiBps, distribution: f.Settings.Distribution, policy: f.Settings.Policy}
	s.autoRoute.Store(s.set.distribution == DistributionAuto)
	s.maxRecordSize.Store(f.Config.MaxRecordSize)
	s.maxRequestSize.Store(f.Config.MaxRequestSize)
	enc := make([]encryptionChange, 0, len(f.Encryption))
	for _, e := range f.Encryption {
		enc = append(enc, encryptionChange{fromMs: e.FromMs, typ: e.Type})
	}
	s.encryption.Store(&enc)
	s.goneCounts = f.GoneCounts
	for _, cf := range f.Consumers {
		if cf.Desc.ConsumerStatus == StreamConsumerDeleting {
			continue
		}
		cf.Desc.ConsumerStatus = StreamConsumerActive
		s.consumers[cf.Desc.ConsumerName] = &streamConsumer{desc: cf.Desc, policy: cf.Policy, tags: cf.Tags, shards: make(map[uint64]*consumerShard)}
	}
	byNum := map[uint64]*shardState{}
	recovered := map[*shardState]uint64{} // the counter after each shard's last record found
	restore := func(sf shardFile) (*shardState, error) {
		sh := newShardState(sf.Num, sf.HashKeyRange, sf.StartCounter, sf.CreatedMs, sf.OpenedGen, cfg.limits, int(f.Config.MaxRecordSize))
		sh.parentID, sh.adjacentParentID = sf.ParentID, sf.AdjacentParentID
		sh.counters = sf.Counters.counters()
		next, err := c.openStore(op, id, sh)
		if err != nil {
			return nil, err
		}
		sh.next = max(sf.Next, next, sf.StartCounter)
		recovered[sh] = sh.next
		sh.closed, sh.closedAtMs, sh.closedGen = sf.Closed, sf.ClosedAtMs, sf.ClosedGen
		_, sh.lastArrive = sh.store.oldestNewest()
		sh.findOldestLocked()
		byNum[sh.num] = sh
		return sh, nil
	}
	var all []*shardState
	fail := func(err error) (*Stream, error) {
		for _, sh := range byNum {
			releaseStore(sh)
		}
		return nil, err
	}
	for _, sf := range f.Shards {
		sh, err := restore(sf)
		if err != nil {
			return fail(err)
		}
		all = append(all, sh)
	}
	for _, sf := range f.Shards {
		sh := byNum[sf.Num]
		for _, n := range sf.Children {
			if child, ok := byNum[n]; ok { // not if it expired (a parent usually expires first)
				sh.children = append(sh.children, child)
			}
		}
	}
	lookup := func(nums []uint64) ([]*shardState, error) {
		out := make([]*shardState, 0, len(nums))
		for _, n := range nums {
			sh, ok := byNum[n]
			if !ok {
				return nil, fmt.Errorf("shard %d is named but not listed", n)
			}
			out = append(out, sh)
		}
		return out, nil
	}
	open, err := lookup(f.Open)
	if err != nil {
		return fail(catalogError(op, path, "read", err))
	}
	s.shards.Store(newShardMap(f.Gen, open, all))
	s.status = StatusActive
	if p := f.Pending; p != nil {
		// A resharding accepted before the crash: commit it now.
		plan := &reshardPlan{s: s, now: c.now(), steps: p.Steps, floor: p.Floor, parentsOf: map[*shardState][]*shardState{}, children: map[*shardState][]*shardState{}}
		for _, sf := range p.Created {
			sh, err := restore(sf)
			if err != nil {
				return fail(err)
			}
			plan.created = append(plan.created, sh)
		}
		if plan.open, err = lookup(p.Open); err == nil {
			plan.parents, err = lookup(p.Parents)
		}
		for n, ps := range p.ParentsOf {
			if err == nil {
				plan.parentsOf[byNum[n]], err = lookup(ps)
			}
		}
		for n, cs := range p.Children {
			if err == nil {
				plan.children[byNum[n]], err = lookup(cs)
			}
		}
		if err != nil {
			return fail(catalogError(op, path, "read", err))
		}
		plan.recommit(recovered)
	}
	for _, sh := range s.shards.Load().open {
		sh.next += gap
	}
	s.quotaShards = len(s.shards.Load().open)
	if err := s.persistLocked(op); err != nil {
		return fail(err)
	}
	return s, nil
}

// check validates what restoreStream relies on beyond the configuration:
// a valid name, unique shard numbers below the stream's next, and open
// shards that tile the hash space, so that a damaged file is an error, not
// a stream that misroutes or panics.
func (f *streamFile) check() error {
	if err := validateStreamName("Open", f.Name); err != nil {
		return err
	}
	seen := map[uint64]bool{}
	for _, sh := range append(slices.Clip(f.Shards), f.pendingCreated()...) {
		if seen[sh.Num] || sh.Num >= f.NextShard || sh.Num > maxShardNumber {
			return fmt.Errorf("shard number %d is repeated or not below the next shard number %d", sh.Num, f.NextShard)
		}
		seen[sh.Num] = true
	}
	open := func(nums []uint64, shards []shardFile) error {
		byNum := make(map[uint64]*shardFile, len(shards))
		for i := range shards {
			byNum[shards[i].Num] = &shards[i]
		}
		ranges := make([]HashKeyRange, 0, len(nums))
		for _, n := range nums {
			sh, ok := byNum[n]
			if !ok || sh.Closed {
				return fmt.Errorf("open shard %d is not listed, or closed", n)
			}
			ranges = append(ranges, sh.HashKeyRange)
		}
		if !tilesHashSpace(ranges) {
			return fmt.Errorf("the open shards %v do not tile the hash space", nums)
		}
		return nil
	}
	if err := open(f.Open, f.Shards); err != nil {
		return err
	}
	if p := f.Pending; p != nil {
		return open(p.Open, append(slices.Clip(f.Shards), p.Created...))
	}
	return nil
}

// pendingCreated returns the shards that a pending resharding creates.
func (f *streamFile) pendingCreated() []shardFile {
	if f.Pending == nil {
		return nil
	}
	return f.Pending.Created
}

// recommit commits at Open a resharding that was pending at a crash,
// whether or not its commit had happened before. Its new shards start at
// the plan's floor, as a first commit did, above every number the parents
// could have issued (lost ones too), and the parents end just below it.
func (p *reshardPlan) recommit(recovered map[*shardState]uint64) {
	for _, par := range p.parents {
		par.next = max(par.next, p.floor)
	}
	p.s.commit(p, p.now)
	for _, sh := range p.created {
		sh.next = max(sh.next, recovered[sh])
	}
}

// streamConfig rebuilds the stream's configuration.
func (f *streamFile) streamConfig(op string) (streamConfig, error) {
	fc := f.Config
	opts := []StreamOption{
		WithShardCount(fc.ShardCount), WithRetention(f.Retention), WithLimits(fc.Limits),
		WithMaxRecordSize(int(fc.MaxRecordSize)), WithIteratorTTL(fc.IteratorTTL),
		WithReshardDuration(fc.ReshardDuration), WithUpdateShardCountLimit(fc.UpdateShardCountLimit),
		WithConsumerLimit(fc.ConsumerLimit), WithConsumerStatusDelay(fc.ConsumerDelay),
		WithSubscriptionDuration(fc.SubscriptionTTL), WithStreamStatusDelay(fc.StatusDelay),
		WithStreamMode(f.Settings.Mode), WithWarmThroughput(f.Settings.WarmMiBps), WithRecordDistribution(f.Settings.Distribution),
	}
	if !fc.DefaultRequestSize {
		opts = append(opts, WithMaxPutRecordsSize(int(fc.MaxRequestSize)))
	}
	return newStreamConfig(op, opts)
}

// lockDataDir takes the data directory's lock, or fails with
// ErrResourceInUse if another Open holds it.
func lockDataDir(op, dir string) (*fileLock, error) {
	path := filepath.Join(dir, "cluster")
	l, err := openFileLock(op, path)
	if err != nil {
		return nil, err
	}
	if err := l.tryLock(); err != nil {
		l.close()
		if errors.Is(err, errLocked) {
			return nil, errorf(op, ErrResourceInUse, "data directory %s is open in another cluster, in this process or another (its lock file %s.lock is held)", dir, path)
		}
		return nil, catalogError(op, path+".lock", "lock", err)
	}
	return l, nil
}

// catalogError is the error of a failed file operation on the data
// directory: ErrInternalFailure naming the file and wrapping the fault.
func catalogError(op, path, what string, err error) error {
	return fileStoreError(op, what, path, -1, err)
}

// readJSON decodes the JSON file at path into v.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON replaces the file at path with v as JSON, atomically.
func writeJSON(op, path string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return catalogError(op, path, "encode", err)
	}
	if what, err := replaceFile(path, filepath.Base(path)+".tmp-", b); err != nil {
		return catalogError(op, path, what, err)
	}
	return nil
}
