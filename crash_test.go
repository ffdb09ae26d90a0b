//go:build unix

package runnel_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-go/runnel"
	"github.com/stretchr/testify/require"
)

// The crash tests kill a process that writes to a durable cluster and check
// what the cluster holds when it is opened again. TestCrashRecovery (the
// parent) runs its own test binary again as a child that runs only
// TestCrashChild, with the scenario in the environment. The child opens
// the data directory, writes with PutRecords from four goroutines and,
// after each call returns, writes one line per acknowledged record to its
// stdout, a pipe, before its next call. The parent reads the pipe, notes
// when each line arrived, kills the child with SIGKILL after a random
// delay, opens the directory and checks the records against the
// acknowledgements.
//
// SIGKILL is a crash of the process, not of the machine: what the child
// handed to the operating system survives it. The checks assert no more
// than each sync policy's documented loss window promises (durable.go);
// a stronger result passes.

// The environment of a child.
const (
	crashEnvChild    = "RUNNEL_CRASH_CHILD" // "1" in a child
	crashEnvDir      = "RUNNEL_CRASH_DIR"
	crashEnvScenario = "RUNNEL_CRASH_SCENARIO" // crashScenario as JSON
	crashEnvSeed     = "RUNNEL_CRASH_SEED"     // also read by the parent, to repeat a run
	crashEnvRound    = "RUNNEL_CRASH_ROUND"
)

const (
	crashStream    = "crash"
	crashWriters   = 4
	crashKeys      = 16  // partition keys per writer
	crashDataBytes = 100 // bytes of each record's data
	crashMaxShards = 8
)

// crashScenario is one kind of trial.
type crashScenario struct {
	Name      string
	Sync      string        // "always", "interval" or "os"
	Interval  time.Duration // SyncInterval's d
	Shards    int           // at creation
	Segment   int64         // WithSegmentSize; 0: the default
	Retention time.Duration // 0: the default (24 h)
	// Reshard is "" (none), "ops" (SplitShard, MergeShards and
	// UpdateShardCount up and down while writing) or "pending" (an
	// UpdateShardCount left UPDATING by WithReshardDuration, which Open
	// must commit) or "window" (a crash between a resharding's commit and
	// its record in stream.json: see TestCrashAfterReshardCommit).
	Reshard string
	Rounds  int // children killed one after another on the same directory
	// Pace, if set, makes each writer pause about that long between its
	// calls, so that a trial writes fewer records and verifies faster.
	Pace time.Duration
	// KillMin and KillMax bound the random delay between the child's first
	// acknowledgement and its SIGKILL.
	KillMin, KillMax time.Duration
	// Margin is added to the policy's loss window (d for SyncInterval, 0
	// for SyncOS): a record acknowledged longer than window+Margin before
	// the kill must be present.
	Margin time.Duration
}

func (sc crashScenario) policy() runnel.SyncPolicy {
	switch sc.Sync {
	case "interval":
		return runnel.SyncInterval(sc.Interval)
	case "os":
		return runnel.SyncOS()
	}
	return runnel.SyncAlways()
}

func (sc crashScenario) clusterOptions() []runnel.ClusterOption {
	opts := []runnel.ClusterOption{runnel.WithSync(sc.policy())}
	if sc.Segment > 0 {
		opts = append(opts, runnel.WithSegmentSize(sc.Segment))
	}
	if sc.Retention > 0 {
		opts = append(opts, runnel.WithSweepInterval(100*time.Millisecond))
	}
	return opts
}

// crashTrials are the 50 trials of TestCrashRecovery.
func crashTrials() []crashScenario {
	const ms = time.Millisecond
	var out []crashScenario
	add := func(n int, sc crashScenario) {
		if sc.Rounds == 0 {
			sc.Rounds = 1
		}
		for range n {
			out = append(out, sc)
		}
	}
	always := crashScenario{Sync: "always", Shards: 4, KillMin: 150 * ms, KillMax: 700 * ms}
	interval := crashScenario{Sync: "interval", Interval: 100 * ms, Shards: 4, KillMin: 1200 * ms, KillMax: 1900 * ms, Margin: time.Second}
	syncOS := crashScenario{Sync: "os", Shards: 4, KillMin: 600 * ms, KillMax: 1100 * ms, Margin: 500 * ms}
	retention := crashScenario{Sync: "always", Shards: 2, Segment: 16 << 10, Retention: 700 * ms, KillMin: 1000 * ms, KillMax: 1800 * ms}
	with := func(sc crashScenario, name string, f func(*crashScenario)) crashScenario {
		sc.Name = name
		if f != nil {
			f(&sc)
		}
		return sc
	}
	add(7, with(always, "always", nil))
	add(4, with(always, "always-2rounds", func(sc *crashScenario) { sc.Rounds, sc.Shards = 2, 2 }))
	add(6, with(always, "always-reshard", func(sc *crashScenario) { sc.Reshard, sc.Shards, sc.KillMax = "ops", 3, 900*ms }))
	add(2, with(always, "always-pending", func(sc *crashScenario) { sc.Reshard, sc.Shards, sc.Rounds = "pending", 2, 2 }))
	add(3, with(interval, "interval", nil))
	add(3, with(interval, "interval-paced", func(sc *crashScenario) { sc.Pace = 30 * ms }))
	add(2, with(interval, "interval-reshard", func(sc *crashScenario) { sc.Reshard, sc.Shards, sc.Pace = "ops", 3, 30*ms }))
	add(2, with(interval, "interval-2rounds", func(sc *crashScenario) { sc.Rounds, sc.Pace, sc.KillMax = 2, 30*ms, 1500*ms }))
	add(2, with(interval, "interval-pending", func(sc *crashScenario) { sc.Reshard, sc.Shards, sc.Rounds, sc.Pace = "pending", 2, 2, 30*ms }))
	add(6, with(syncOS, "os", func(sc *crashScenario) { sc.Pace = 30 * ms }))
	add(2, with(syncOS, "os-reshard", func(sc *crashScenario) { sc.Reshard, sc.Shards, sc.Pace = "ops", 3, 30*ms }))
	add(1, with(syncOS, "os-2rounds", func(sc *crashScenario) { sc.Rounds, sc.Pace = 2, 30*ms }))
	add(5, with(retention, "retention", nil))
	add(3, with(retention, "retention-interval", func(sc *crashScenario) { sc.Sync, sc.Interval, sc.Margin = "interval", 100*ms, time.Second }))
	add(2, with(retention, "retention-reshard", func(sc *crashScenario) { sc.Reshard, sc.KillMax = "ops", 1500*ms }))
	return out
}

// crashData is the data of a record: its key, the phase (2×round for a
// child's records, 2×round+1 for those the parent writes after it) and
// its writer's counter, padded with dots to crashDataBytes. Every record's
// data is unique, and says which key it was written with.
func crashData(key string, phase, n int) string {
	d := fmt.Sprintf("%s/%d-%d", key, phase, n)
	if len(d) < crashDataBytes {
		d += strings.Repeat(".", crashDataBytes-len(d))
	}
	return d
}

// parseCrashData is the inverse of crashData.
func parseCrashData(d string) (key string, phase, n int, ok bool) {
	key, rest, ok := strings.Cut(strings.TrimRight(d, "."), "/")
	if !ok {
		return "", 0, 0, false
	}
	p, c, ok := strings.Cut(rest, "-")
	if !ok {
		return "", 0, 0, false
	}
	phase, err1 := strconv.Atoi(p)
	n, err2 := strconv.Atoi(c)
	return key, phase, n, err1 == nil && err2 == nil
}

// TestCrashChild is the child of TestCrashRecovery: it does nothing unless
// the environment says it is one.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashEnvChild) != "1" {
		return
	}
	var sc crashScenario
	require.NoError(t, json.Unmarshal([]byte(os.Getenv(crashEnvScenario)), &sc))
	seed, err := strconv.ParseUint(os.Getenv(crashEnvSeed), 10, 64)
	require.NoError(t, err)
	round, err := strconv.Atoi(os.Getenv(crashEnvRound))
	require.NoError(t, err)
	dir := os.Getenv(crashEnvDir)
	ctx := context.Background()

	c, err := runnel.Open(dir, sc.clusterOptions()...)
	require.NoError(t, err, "child: Open")
	defer c.Close()
	opts := []runnel.StreamOption{runnel.WithShardCount(sc.Shards), runnel.WithLimits(runnel.Unlimited()), runnel.WithUpdateShardCountLimit(0)}
	if sc.Retention > 0 {
		opts = append(opts, runnel.WithRetention(sc.Retention))
	}
	switch sc.Reshard {
	case "pending":
		opts = append(opts, runnel.WithReshardDuration(time.Hour))
	case "window":
		opts = append(opts, runnel.WithReshardDuration(100*time.Millisecond))
	}
	s, err := c.CreateStream(ctx, crashStream, opts...)
	if errors.Is(err, runnel.ErrResourceInUse) {
		s, err = c.Stream(crashStream)
	}
	require.NoError(t, err, "child: the stream")

	var outMu sync.Mutex
	emit := func(b []byte) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.Write(b); err != nil {
			os.Exit(2) // the parent is gone
		}
	}
	// The child writes for a minute at most, should the parent never kill
	// it.
	deadline := time.Now().Add(time.Minute)
	put := func(rng *rand.Rand, g int, n *int) {
		// One PutRecords call of 50 to 500 records from writer g, whose
		// counter is *n; its acknowledgements are on stdout when it returns.
		batch := make([]runnel.PutRecordsEntry, 50+rng.IntN(451))
		for i := range batch {
			key := fmt.Sprintf("g%d-k%02d", g, rng.IntN(crashKeys))
			batch[i] = runnel.PutRecordsEntry{PartitionKey: key, Data: []byte(crashData(key, 2*round, *n))}
			*n++
		}
		t0 := time.Now().UnixMilli()
		out, err := s.PutRecords(ctx, runnel.PutRecordsInput{Records: batch})
		if err != nil {
			emit(fmt.Appendf(nil, "PUTERR %q\n", err.Error()))
			return
		}
		var b []byte
		for i, r := range out.Records {
			if r.Err != nil {
				b = fmt.Appendf(b, "NAK %q\n", r.Err.Error())
				continue
			}
			b = fmt.Appendf(b, "A %s %s %s %s %d\n", batch[i].PartitionKey, batch[i].Data, r.ShardID, r.SequenceNumber, t0)
		}
		emit(b)
	}
	if sc.Reshard == "window" {
		crashWindowChild(t, s, dir, put, emit)
		return
	}
	if sc.Reshard == "pending" {
		var n int
		put(rand.New(rand.NewPCG(seed, uint64(round)<<8|0xff)), 0, &n)
		sum, err := s.Describe(ctx)
		require.NoError(t, err)
		target := 2 * sum.OpenShardCount
		if _, err := s.UpdateShardCount(ctx, target); err == nil {
			emit(fmt.Appendf(nil, "PENDING %d\n", target))
		} else {
			emit(fmt.Appendf(nil, "RESHARDERR %q\n", err.Error()))
		}
	}
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(round)<<8|uint64(g)))
			n := 0
			if g == 0 {
				n = 1 << 20 // after the "pending" scenario's first batch
			}
			for time.Now().Before(deadline) {
				put(rng, g, &n)
				if sc.Pace > 0 {
					time.Sleep(sc.Pace/2 + time.Duration(rng.Int64N(int64(sc.Pace)))) // the workload's pace
				}
			}
		})
	}
	if sc.Reshard == "ops" {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(round)<<8|0xfe))
			for time.Now().Before(deadline) {
				time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond) // the pace of the workload
				desc, err := crashReshardOnce(ctx, s, rng)
				if err != nil {
					emit(fmt.Appendf(nil, "RESHARDERR %q\n", err.Error()))
				} else if desc != "" {
					emit(fmt.Appendf(nil, "RESHARD %s\n", desc))
				}
			}
		})
	}
	wg.Wait()
}

// crashWindowChild puts the data directory in the state a crash leaves
// between a resharding's commit and the write of stream.json that records
// it: the stream file still holds the resharding as pending, while the
// children already hold acknowledged records. That window is short (one
// fsync'd file replacement) and a random kill seldom hits it, so the child
// makes it happen: it saves the stream file with the pending resharding,
// lets the resharding commit (WithReshardDuration), writes, puts the saved
// file back, says READY and waits to be killed. This relies on the layout
// of the data directory (catalog.go: streams/<id>/stream.json).
func crashWindowChild(t *testing.T, s *runnel.Stream, dir string, put func(*rand.Rand, int, *int), emit func([]byte)) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	put(rng, 0, &n) // to the parents
	sum, err := s.Describe(ctx)
	require.NoError(t, err)
	target := 2 * sum.OpenShardCount
	_, err = s.UpdateShardCount(ctx, target)
	require.NoError(t, err)
	emit(fmt.Appendf(nil, "PENDING %d\n", target))
	paths, err := filepath.Glob(filepath.Join(dir, "streams", "*", "stream.json"))
	require.NoError(t, err)
	require.Len(t, paths, 1, "the stream's file")
	pending, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	require.Contains(t, string(pending), "pendingResharding", "the stream file records the pending resharding")
	for sum.StreamStatus != runnel.StatusActive || sum.OpenShardCount != target {
		time.Sleep(10 * time.Millisecond) // until the resharding commits, 100 ms after it was accepted
		sum, err = s.Describe(ctx)
		require.NoError(t, err)
	}
	put(rng, 0, &n) // to the children
	put(rng, 1, &n)
	tmp := paths[0] + ".crash-test"
	require.NoError(t, os.WriteFile(tmp, pending, 0o600))
	require.NoError(t, os.Rename(tmp, paths[0]))
	emit([]byte("READY\n"))
	time.Sleep(time.Minute) // until killed
}

// crashReshardOnce makes one random resharding of s: an UpdateShardCount up
// or down, a SplitShard or a MergeShards, keeping 1 to crashMaxShards open
// shards.
func crashReshardOnce(ctx context.Context, s *runnel.Stream, rng *rand.Rand) (string, error) {
	var open []runnel.Shard
	in := runnel.ListShardsInput{Filter: runnel.ShardFilter{Type: runnel.FilterAtLatest}}
	for {
		out, err := s.ListShards(ctx, in)
		if err != nil {
			return "", err
		}
		open = append(open, out.Shards...)
		if out.NextToken == "" {
			break
		}
		in = runnel.ListShardsInput{NextToken: out.NextToken}
	}
	slices.SortFunc(open, func(a, b runnel.Shard) int { return a.HashKeyRange.StartingHashKey.Cmp(b.HashKeyRange.StartingHashKey) })
	n := len(open)
	switch op := rng.IntN(3); {
	case op == 0 || (op == 1 && n >= crashMaxShards) || (op == 2 && n < 2):
		lo, hi := (n+1)/2, min(2*n, crashMaxShards)
		target := lo + rng.IntN(hi-lo+1)
		if target == n {
			return "", nil
		}
		_, err := s.UpdateShardCount(ctx, target)
		return fmt.Sprintf("UpdateShardCount %d->%d", n, target), err
	case op == 1:
		sh := open[rng.IntN(n)]
		err := s.SplitShard(ctx, sh.ShardID, sh.HashKeyRange.Mid())
		return "SplitShard " + sh.ShardID, err
	default:
		i := rng.IntN(n - 1)
		err := s.MergeShards(ctx, open[i].ShardID, open[i+1].ShardID)
		return "MergeShards " + open[i].ShardID + " " + open[i+1].ShardID, err
	}
}

// crashAck is one acknowledged record, as the parent received it.
type crashAck struct {
	key, data, shard string
	seq              runnel.SequenceNumber
	sentMs           int64     // the child's clock just before the PutRecords call: the record arrived at or after it
	received         time.Time // when the parent read the line
	phase, n         int
	round            int  // 0 for the records the parent wrote
	verified         bool // read back by an earlier verification: it must stay
}

func (a *crashAck) String() string {
	return fmt.Sprintf("key=%s data=%s shard=%s seq=%s", a.key, strings.TrimRight(a.data, "."), a.shard, a.seq)
}

// crashRun is what the parent saw of one child.
type crashRun struct {
	acks     []*crashAck
	pending  int // the target of an UpdateShardCount left UPDATING, if the child said so
	killedAt time.Time
	other    []string // the child's other stdout lines (the first few)
	stderr   *bytes.Buffer
	exitErr  error
}

// TestCrashRecovery runs the crash trials (crashTrials); see the comment
// at the top of this file. Set RUNNEL_CRASH_SEED to repeat a run, and
// -run 'TestCrashRecovery/07-' to run one trial.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash tests kill 50 child processes, about a minute on 2 cores: skipped with -short")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashEnvSeed); s != "" {
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "%s", crashEnvSeed)
	}
	t.Logf("seed %d: set %s=%d to repeat this run", seed, crashEnvSeed, seed)
	start := time.Now()
	t.Cleanup(func() { t.Logf("%d trials in %v", len(crashTrials()), time.Since(start).Round(time.Millisecond)) })
	for i, sc := range crashTrials() {
		t.Run(fmt.Sprintf("%02d-%s", i, sc.Name), func(t *testing.T) {
			t.Parallel()
			trialSeed := seed + uint64(i)
			tr := &crashTrial{t: t, exe: exe, sc: sc, seed: trialSeed, index: i, dir: t.TempDir(),
				rng: rand.New(rand.NewPCG(trialSeed, 0x5eed)), byData: map[string]*crashAck{}}
			for round := 1; round <= sc.Rounds && !t.Failed(); round++ {
				run := tr.runChild(round)
				if t.Failed() {
					return
				}
				tr.verify(round, run)
			}
		})
	}
}

// TestCrashAfterReshardCommit: a crash after a resharding committed, and
// records were written to its children, but before stream.json recorded
// the commit (the stream file still holds it as pending). Open commits the
// resharding again: every acknowledged record, those of the children
// included, must be read back, and new records must get numbers above
// them. See crashWindowChild.
func TestCrashAfterReshardCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process: skipped with -short")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	sc := crashScenario{Name: "window", Sync: "always", Shards: 2, Reshard: "window", Rounds: 1}
	tr := &crashTrial{t: t, exe: exe, sc: sc, seed: 1, index: -1, dir: t.TempDir(),
		rng: rand.New(rand.NewPCG(1, 1)), byData: map[string]*crashAck{}}
	run := tr.runChild(1)
	if t.Failed() {
		return
	}
	tr.verify(1, run)
}

// crashTrial is one trial: its scenario, and every record acknowledged so
// far that has not been lost as the policy allows.
type crashTrial struct {
	t     *testing.T
	exe   string
	sc    crashScenario
	seed  uint64
	index int
	dir   string
	rng   *rand.Rand

	acks   []*crashAck // in acknowledgement order
	byData map[string]*crashAck
}

// context describes the trial for a failure message.
func (tr *crashTrial) context(round int) string {
	sc, _ := json.Marshal(tr.sc)
	if tr.index < 0 {
		return fmt.Sprintf("round %d, scenario %s", round, sc)
	}
	return fmt.Sprintf("trial %d, round %d, seed %d (repeat with %s=%d -run 'TestCrashRecovery/%02d-'), scenario %s",
		tr.index, round, tr.seed, crashEnvSeed, tr.seed-uint64(tr.index), tr.index, sc)
}

// runChild runs one child on the trial's directory and kills it.
func (tr *crashTrial) runChild(round int) *crashRun {
	t := tr.t
	sc, err := json.Marshal(tr.sc)
	require.NoError(t, err)
	cmd := exec.Command(tr.exe, "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=3m")
	cmd.Env = append(os.Environ(),
		crashEnvChild+"=1", crashEnvDir+"="+tr.dir, crashEnvScenario+"="+string(sc),
		crashEnvSeed+"="+strconv.FormatUint(tr.seed, 10), crashEnvRound+"="+strconv.Itoa(round))
	run := &crashRun{stderr: new(bytes.Buffer)}
	cmd.Stderr = run.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	first := make(chan struct{}) // closed at the first acknowledgement
	ready := make(chan struct{}) // closed when the child says READY
	eof := make(chan struct{})   // closed when the child's stdout ends
	var parseErr error
	go func() {
		defer close(eof)
		r := bufio.NewReaderSize(stdout, 1<<20)
		var once sync.Once
		for {
			line, err := r.ReadString('\n')
			now := time.Now()
			if strings.HasSuffix(line, "\n") {
				if a, ok, perr := parseCrashLine(line, now, round); perr != nil {
					parseErr = firstErr(parseErr, perr)
				} else if ok {
					run.acks = append(run.acks, a)
					once.Do(func() { close(first) })
				} else if target, found := strings.CutPrefix(strings.TrimSpace(line), "PENDING "); found {
					run.pending, _ = strconv.Atoi(target)
				} else if strings.TrimSpace(line) == "READY" {
					close(ready)
				} else if len(run.other) < 50 {
					run.other = append(run.other, strings.TrimSpace(line))
				}
			}
			if err != nil {
				return
			}
		}
	}()
	exited := false
	start, lo, hi := first, tr.sc.KillMin, tr.sc.KillMax
	if tr.sc.Reshard == "window" {
		start, lo, hi = ready, 0, 0 // kill it as soon as it is ready
	}
	select {
	case <-start:
		time.Sleep(lo + time.Duration(tr.rng.Int64N(int64(hi-lo)+1))) // the moment of the crash: what the trial varies
	case <-eof:
		exited = true
	case <-time.After(2 * time.Minute): // a safety net, not a timing assertion
		exited = true
	}
	run.killedAt = time.Now()
	_ = cmd.Process.Kill()
	<-eof
	run.exitErr = cmd.Wait()
	var ee *exec.ExitError
	killed := false
	if errors.As(run.exitErr, &ee) {
		ws, ok := ee.Sys().(syscall.WaitStatus)
		killed = ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}
	switch {
	case exited || !killed:
		tr.keepStderr(round, run)
		t.Errorf("%s: the child did not run until it was killed (%v); %d acknowledgements\nits stdout: %s\nits stderr: %s",
			tr.context(round), run.exitErr, len(run.acks), strings.Join(run.other, "\n"), tail(run.stderr.String(), 4000))
	case parseErr != nil:
		t.Errorf("%s: %v", tr.context(round), parseErr)
	}
	for _, bad := range []string{"DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(run.stderr.String(), bad) {
			t.Errorf("%s: the child's stderr reports %q:\n%s", tr.context(round), bad, tail(run.stderr.String(), 8000))
			tr.keepStderr(round, run)
		}
	}
	for _, line := range run.other {
		if strings.HasPrefix(line, "PUTERR") || strings.HasPrefix(line, "NAK") {
			t.Logf("child: %s", line) // a refused put is not acknowledged, so not checked; but worth seeing
		}
	}
	return run
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// parseCrashLine parses an acknowledgement line; ok is false for other
// lines.
func parseCrashLine(line string, received time.Time, round int) (*crashAck, bool, error) {
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "A" {
		return nil, false, nil
	}
	if len(f) != 6 {
		return nil, false, fmt.Errorf("bad acknowledgement line %q", line)
	}
	seq, err := runnel.ParseSequenceNumber(f[4])
	if err != nil {
		return nil, false, fmt.Errorf("bad acknowledgement line %q: %v", line, err)
	}
	sent, err := strconv.ParseInt(f[5], 10, 64)
	if err != nil {
		return nil, false, fmt.Errorf("bad acknowledgement line %q: %v", line, err)
	}
	key, phase, n, ok := parseCrashData(f[2])
	if !ok || key != f[1] {
		return nil, false, fmt.Errorf("bad acknowledgement line %q: data does not name its key", line)
	}
	return &crashAck{key: f[1], data: f[2], shard: f[3], seq: seq, sentMs: sent, received: received, phase: phase, n: n, round: round}, true, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// keepStderr saves a child's stderr outside the test's directory, which
// is removed, and logs where.
func (tr *crashTrial) keepStderr(round int, run *crashRun) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("runnel-crash-%d-%02d-round%d-stderr.txt", tr.seed, tr.index, round))
	if err := os.WriteFile(path, run.stderr.Bytes(), 0o600); err == nil {
		tr.t.Logf("the child's stderr is kept in %s", path)
	}
}

// required reports whether an acknowledged record must be present after the
// crash of round's child, killed at killedAt, given the time the
// retention was checked from (retentionFrom, in Unix ms).
func (tr *crashTrial) required(a *crashAck, run *crashRun, retentionFromMs int64) bool {
	if tr.sc.Retention > 0 && a.sentMs+tr.sc.Retention.Milliseconds() <= retentionFromMs+5 {
		return false // may have expired (the record arrived at or after sentMs)
	}
	if a.verified || a.round == 0 {
		return true
	}
	switch tr.sc.Sync {
	case "interval":
		return a.received.Before(run.killedAt.Add(-tr.sc.Interval - tr.sc.Margin))
	case "os":
		return a.received.Before(run.killedAt.Add(-tr.sc.Margin))
	}
	return true
}

// verify opens the directory after round's child was killed and checks
// what it holds against the acknowledgements.
func (tr *crashTrial) verify(round int, run *crashRun) {
	t := tr.t
	ctx := context.Background()
	for _, a := range run.acks {
		if prev, dup := tr.byData[a.data]; dup {
			t.Fatalf("%s: the child acknowledged %s twice (also as %s)", tr.context(round), a, prev)
		}
		tr.byData[a.data] = a
		tr.acks = append(tr.acks, a)
	}

	opts := tr.sc.clusterOptions()
	opts[0] = runnel.WithSync(runnel.SyncAlways())
	c, err := runnel.Open(tr.dir, opts...)
	if err != nil {
		tr.keepStderr(round, run)
		t.Fatalf("%s: Open after the crash: %v\nthe child's stderr: %s", tr.context(round), err, tail(run.stderr.String(), 4000))
	}
	defer c.Close()
	s, err := c.Stream(crashStream)
	require.NoError(t, err, "%s: the stream after the crash", tr.context(round))
	retentionFromMs := int64(0)
	if tr.sc.Retention > 0 {
		// Stop the clock of retention: what has not expired by now is kept.
		require.NoError(t, s.IncreaseRetentionPeriod(ctx, 24*time.Hour))
		retentionFromMs = time.Now().UnixMilli()
	}
	sum, err := s.Describe(ctx)
	require.NoError(t, err)

	var problems []string
	problem := func(format string, args ...any) {
		if len(problems) < 12 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	if sum.StreamStatus != runnel.StatusActive {
		problem("the stream is %s after Open, not ACTIVE", sum.StreamStatus)
	}
	if run.pending > 0 && sum.OpenShardCount != run.pending {
		problem("an UpdateShardCount to %d was UPDATING at the crash; after Open the stream has %d open shards, so it was not committed", run.pending, sum.OpenShardCount)
	}
	shards := allShards(t, s)
	if why := crashTiling(shards); why != "" {
		problem("the open shards after Open do not tile the hash space: %s", why)
	}
	byID := map[string]runnel.Shard{}
	for _, sh := range shards {
		byID[sh.ShardID] = sh
	}
	recs := readStream(t, s)

	// What was read: no duplicates, each record as acknowledged, each
	// shard in increasing order and each key in acknowledgement order.
	found := map[string]*crashAck{}
	var unacked []*crashAck
	lastOfShard := map[string]runnel.SequenceNumber{}
	lastOfKey := map[string]*crashAck{}
	for i, r := range recs {
		if prev, dup := found[r.Data]; dup {
			problem("record %d read back is a duplicate: %s, already read as %s", i, r, prev)
			continue
		}
		a := tr.byData[r.Data]
		if a == nil {
			// Written, but the child died before it printed the
			// acknowledgement: it may be there or not.
			key, phase, n, ok := parseCrashData(r.Data)
			if !ok || key != r.Key || phase != 2*round {
				problem("record %d read back was never written: %s", i, r)
				continue
			}
			a = &crashAck{key: r.Key, data: r.Data, shard: r.Shard, seq: r.Seq, phase: phase, n: n, round: round}
			unacked = append(unacked, a)
		} else if a.key != r.Key || a.shard != r.Shard || a.seq != r.Seq {
			problem("record %d read back differs from its acknowledgement: read %s, acknowledged %s", i, r, a)
		}
		found[r.Data] = a
		if last, ok := lastOfShard[r.Shard]; ok && r.Seq.Cmp(last) <= 0 {
			problem("record %d read back is out of order in its shard: %s after %s", i, r, last)
		}
		lastOfShard[r.Shard] = r.Seq
		if sh, ok := byID[r.Shard]; ok {
			rng := sh.SequenceNumberRange
			if r.Seq.Cmp(rng.StartingSequenceNumber) < 0 || (!sh.Open() && r.Seq.Cmp(rng.EndingSequenceNumber) > 0) {
				problem("record %d read back lies outside its shard's sequence number range %s…%s: %s", i, rng.StartingSequenceNumber, rng.EndingSequenceNumber, r)
			}
		}
		if prev := lastOfKey[r.Key]; prev != nil && (a.phase < prev.phase || (a.phase == prev.phase && a.n <= prev.n)) {
			problem("record %d read back is out of order for its key (following lineage): %s after %s", i, r, prev)
		}
		lastOfKey[r.Key] = a
	}

	// What is missing: only what the policy (and retention) allows.
	var missing, lost int
	var oldestLost time.Duration // how long before the kill the oldest record lost was acknowledged
	for _, a := range tr.acks {
		if found[a.data] != nil {
			continue
		}
		if a.round == round && !a.verified && (tr.sc.Retention == 0 || a.sentMs+tr.sc.Retention.Milliseconds() > retentionFromMs+5) {
			oldestLost = max(oldestLost, run.killedAt.Sub(a.received))
		}
		if tr.required(a, run, retentionFromMs) {
			missing++
			if missing <= 5 {
				where := "which is not listed"
				if sh, ok := byID[a.shard]; ok {
					where = fmt.Sprintf("listed with sequence numbers %s…%s, parents %q %q", sh.SequenceNumberRange.StartingSequenceNumber,
						sh.SequenceNumberRange.EndingSequenceNumber, sh.ParentShardID, sh.AdjacentParentShardID)
				}
				problem("acknowledged record missing after the crash: %s (acknowledged %v before the kill, sent at %d ms); its shard is %s",
					a, run.killedAt.Sub(a.received).Round(time.Millisecond), a.sentMs, where)
			}
		} else {
			lost++
		}
	}
	if missing > 5 {
		problem("… %d acknowledged records missing in all", missing)
	}

	// Each shard holds one unbroken run of its records: expiry takes the
	// oldest, a crash the newest, nothing is lost in between.
	byShard := map[string][]*crashAck{}
	for _, a := range slices.Concat(tr.acks, unacked) {
		byShard[a.shard] = append(byShard[a.shard], a)
	}
	for shard, as := range byShard {
		slices.SortFunc(as, func(a, b *crashAck) int { return a.seq.Cmp(b.seq) })
		state := 0 // 0: before the run, 1: in it, 2: after it
		for i, a := range as {
			present := found[a.data] != nil
			switch {
			case state == 0 && present:
				state = 1
			case state == 1 && !present:
				state = 2
			case state == 2 && present:
				problem("shard %s lost records in the middle: %s is missing but the later %s is present", shard, as[i-1], a)
				state = 3
			}
		}
	}

	// New records get numbers above every number acknowledged before the
	// crash on their shard and its ancestors, present or lost.
	maxAcked := map[string]runnel.SequenceNumber{}
	for _, a := range slices.Concat(tr.acks, unacked) {
		if a.seq.Cmp(maxAcked[a.shard]) > 0 {
			maxAcked[a.shard] = a.seq
		}
	}
	// A child shard's numbers start above every number acknowledged on its
	// parents; and every number acknowledged before the crash, present or
	// lost, still positions an AFTER_SEQUENCE_NUMBER iterator on its shard
	// (a consumer may have read and checkpointed a record that a crash
	// then lost: SyncInterval and SyncOS publish records before they are
	// durable).
	for _, sh := range shards {
		for _, p := range []string{sh.ParentShardID, sh.AdjacentParentShardID} {
			if m, ok := maxAcked[p]; ok && p != "" && sh.SequenceNumberRange.StartingSequenceNumber.Cmp(m) <= 0 {
				problem("child shard %s starts at %s, not above %s acknowledged on its parent %s", sh.ShardID, sh.SequenceNumberRange.StartingSequenceNumber, m, p)
			}
		}
		if m, ok := maxAcked[sh.ShardID]; ok {
			_, err := s.GetShardIterator(ctx, runnel.GetShardIteratorInput{ShardID: sh.ShardID,
				StartingPosition: runnel.StartingPosition{Type: runnel.AfterSequenceNumber, SequenceNumber: m}})
			if err != nil {
				problem("the last number acknowledged on %s before the crash, %s, no longer positions an iterator (shard listed with %s…%s): %v",
					sh.ShardID, m, sh.SequenceNumberRange.StartingSequenceNumber, sh.SequenceNumberRange.EndingSequenceNumber, err)
			}
		}
	}

	var batch []runnel.PutRecordsEntry
	for g := range crashWriters {
		for k := range crashKeys {
			key := fmt.Sprintf("g%d-k%02d", g, k)
			batch = append(batch, runnel.PutRecordsEntry{PartitionKey: key, Data: []byte(crashData(key, 2*round+1, k))})
		}
	}
	out, err := s.PutRecords(ctx, runnel.PutRecordsInput{Records: batch})
	require.NoError(t, err, "%s: PutRecords after the crash", tr.context(round))
	now := time.Now()
	for i, r := range out.Records {
		if r.Err != nil {
			problem("a write after the crash failed: %v", r.Err)
			continue
		}
		for _, sh := range crashLineage(byID, r.ShardID) {
			if m := maxAcked[sh]; r.SequenceNumber.Cmp(m) <= 0 {
				problem("a record written after the crash to %s got %s, not above %s acknowledged on %s before it", r.ShardID, r.SequenceNumber, m, sh)
			}
		}
		if last, ok := lastOfShard[r.ShardID]; ok && r.SequenceNumber.Cmp(last) <= 0 {
			problem("a record written after the crash to %s got %s, not above %s read back from it", r.ShardID, r.SequenceNumber, last)
		}
		key, phase, n, _ := parseCrashData(string(batch[i].Data))
		a := &crashAck{key: key, data: string(batch[i].Data), shard: r.ShardID, seq: r.SequenceNumber, sentMs: now.UnixMilli(), received: now, phase: phase, n: n}
		tr.byData[a.data] = a
		found[a.data] = a
		tr.acks = append(tr.acks, a)
	}
	require.NoError(t, c.Close(), "%s: Close after verifying", tr.context(round))

	// The next round expects what was found; what was lost is forgotten.
	kept := tr.acks[:0]
	for _, a := range slices.Concat(tr.acks, unacked) {
		if found[a.data] != nil {
			a.verified = true
			tr.byData[a.data] = a
			kept = append(kept, a)
		} else {
			delete(tr.byData, a.data)
		}
	}
	tr.acks = kept

	t.Logf("round %d: %d records acknowledged by the child, %d read back (%d unacknowledged), %d lost as %s allows (the oldest acknowledged %v before the kill), shards %d (%d open)",
		round, len(run.acks), len(recs), len(unacked), lost, tr.sc.policy(), oldestLost.Round(time.Millisecond), len(shards), sum.OpenShardCount)
	if len(problems) > 0 {
		tr.keepStderr(round, run)
		t.Errorf("%s:\n  %s\nthe child's stderr: %s", tr.context(round), strings.Join(problems, "\n  "), tail(run.stderr.String(), 2000))
	}
}

// crashLineage returns shard and its listed ancestors.
func crashLineage(byID map[string]runnel.Shard, shard string) []string {
	out := []string{shard}
	for i := 0; i < len(out); i++ {
		sh, ok := byID[out[i]]
		if !ok {
			continue
		}
		for _, p := range []string{sh.ParentShardID, sh.AdjacentParentShardID} {
			if p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// crashTiling checks that the open shards of a listing tile the hash space
// 0…2^128−1, and says how they do not.
func crashTiling(shards []runnel.Shard) string {
	var open []runnel.Shard
	for _, sh := range shards {
		if sh.Open() {
			open = append(open, sh)
		}
	}
	if len(open) == 0 {
		return "no open shard"
	}
	slices.SortFunc(open, func(a, b runnel.Shard) int { return a.HashKeyRange.StartingHashKey.Cmp(b.HashKeyRange.StartingHashKey) })
	num := func(k runnel.HashKey) *big.Int {
		n, _ := new(big.Int).SetString(k.String(), 10)
		return n
	}
	next := big.NewInt(0)
	for _, sh := range open {
		if num(sh.HashKeyRange.StartingHashKey).Cmp(next) != 0 {
			return fmt.Sprintf("%s starts at %s, not %s", sh.ShardID, sh.HashKeyRange.StartingHashKey, next)
		}
		next = new(big.Int).Add(num(sh.HashKeyRange.EndingHashKey), big.NewInt(1))
	}
	if end := new(big.Int).Add(num(runnel.MaxHashKey()), big.NewInt(1)); next.Cmp(end) != 0 {
		return fmt.Sprintf("the last open shard ends at %s", new(big.Int).Sub(next, big.NewInt(1)))
	}
	return ""
}
