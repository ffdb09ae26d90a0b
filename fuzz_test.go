package runnel

import (
	"errors"
	"log/slog"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The parsers of user-supplied strings, fuzzed. Seeds are added below and
// committed under testdata/fuzz/<FuzzName>/. Run one with, for example:
//
//	go test -run XXX -fuzz '^FuzzParseHashKey$' -fuzztime 20s .

// requireKind fails unless err wraps one of kinds.
func requireKind(t *testing.T, err error, kinds ...error) {
	t.Helper()
	for _, k := range kinds {
		if errors.Is(err, k) {
			var e *Error
			if !errors.As(err, &e) || e.Msg == "" {
				t.Fatalf("error %v is not an *Error with a message", err)
			}
			return
		}
	}
	t.Fatalf("error %v wraps none of %v", err, kinds)
}

var (
	hashKeyPattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,38})$`)
	seqNumPattern  = regexp.MustCompile(`^(0|[1-9][0-9]{0,128})$`)
)

func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{
		"", "0", "1", "00", "01", "-1", "+1", " 1", "1 ", "1e3", "0x10", "１",
		"18446744073709551615", "18446744073709551616", // 2^64-1, 2^64
		maxHashKeyText, overHashKeyText, strings.Repeat("9", 39), strings.Repeat("1", 40),
		"170141183460469231731687303715884105728", // 2^127
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseHashKey(s)

		// Differential check against the pattern and math/big.
		var want error
		switch v, _ := new(big.Int).SetString(s, 10); {
		case !hashKeyPattern.MatchString(s):
			want = ErrValidation
		case v.Cmp(twoTo128Minus1) > 0:
			want = ErrInvalidArgument
		}
		if want != nil {
			if err == nil {
				t.Fatalf("ParseHashKey(%q) = %v, want %v", s, k, want)
			}
			requireKind(t, err, want)
			if k != (HashKey{}) {
				t.Fatalf("ParseHashKey(%q) failed but returned %v", s, k)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseHashKey(%q): %v", s, err)
		}
		if got := k.String(); got != s {
			t.Fatalf("ParseHashKey(%q).String() = %q", s, got)
		}
		k2, err := ParseHashKey(k.String())
		if err != nil || k2 != k {
			t.Fatalf("round trip of %q: %v, %v", s, k2, err)
		}
	})
}

func FuzzParseSequenceNumber(f *testing.F) {
	valid := SequenceNumber{counter: 12345, shard: 7}.String()
	for _, s := range []string{
		"", "0", "1", "00", "01", "-1", "+1", " 1", "1 ", "１", "49", valid, valid[:55], valid + "0", "0" + valid,
		"48" + valid[2:], "49" + strings.Repeat("0", 54), // counter 0
		"49" + strings.Repeat("9", 54), // counter beyond 64 bits
		SequenceNumber{counter: 1<<64 - 1, shard: maxShardNumber}.String(),
		"49590338271490256608559692538361571095921575989136588898", // the AWS API reference's example
		strings.Repeat("9", 129), strings.Repeat("9", 130), valid[:10] + "x" + valid[11:],
	} {
		f.Add(s)
	}
	// Numbers the parsed one is compared with: native, foreign and the zero value.
	var refs []SequenceNumber
	for _, s := range []string{
		"0", "9", "10", valid, "49590338271490256608559692538361571095921575989136588898",
		"49" + strings.Repeat("9", 54), strings.Repeat("9", 129),
	} {
		n, err := ParseSequenceNumber(s)
		if err != nil {
			f.Fatalf("ParseSequenceNumber(%q): %v", s, err)
		}
		refs = append(refs, n)
	}
	refs = append(refs, SequenceNumber{}, SequenceNumber{counter: 1}, SequenceNumber{counter: 1<<64 - 1, shard: maxShardNumber})

	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSequenceNumber(s)
		if !seqNumPattern.MatchString(s) {
			if err == nil {
				t.Fatalf("ParseSequenceNumber(%q) accepted a string that is not a Kinesis sequence number", s)
			}
			requireKind(t, err, ErrValidation)
			if !n.IsZero() {
				t.Fatalf("ParseSequenceNumber(%q) failed but returned %+v", s, n)
			}
			return
		}
		// Every Kinesis sequence number is accepted, whoever issued it.
		if err != nil {
			t.Fatalf("ParseSequenceNumber(%q): %v", s, err)
		}
		if n.IsZero() {
			t.Fatalf("ParseSequenceNumber(%q) returned the zero value", s)
		}
		if got := n.String(); got != s {
			t.Fatalf("ParseSequenceNumber(%q).String() = %q", s, got)
		}
		if n.native() == n.foreign() {
			t.Fatalf("%q: native() = foreign() = %v", s, n.native())
		}
		v, _ := new(big.Int).SetString(s, 10)
		counter, _ := new(big.Int).SetString(s[min(2, len(s)):min(2+seqCounterWidth, len(s))], 10)
		wantNative := len(s) == seqDigits && strings.HasPrefix(s, "49") && counter.Sign() > 0 && counter.IsUint64()
		if n.native() != wantNative {
			t.Fatalf("%q: native() = %v, want %v", s, n.native(), wantNative)
		}
		if id := n.ShardID(); n.native() != (id != "") || (id != "" && (!strings.HasPrefix(id, "shardId-") || len(id) != 20)) {
			t.Fatalf("ShardID of %q is %q", s, id)
		}
		text, err := n.MarshalText()
		if err != nil || string(text) != s {
			t.Fatalf("MarshalText(%q) = %q, %v", s, text, err)
		}
		var u SequenceNumber
		if err := u.UnmarshalText(text); err != nil || u != n {
			t.Fatalf("UnmarshalText(%q) = %+v, %v; want %+v", text, u, err, n)
		}
		if c := n.Cmp(n); c != 0 {
			t.Fatalf("%q.Cmp(itself) = %d", s, c)
		}
		for _, r := range refs {
			want := 1 // the zero value is below every number
			if !r.IsZero() {
				rv, _ := new(big.Int).SetString(r.String(), 10)
				want = v.Cmp(rv)
			}
			if got := n.Cmp(r); got != want {
				t.Fatalf("%q.Cmp(%q) = %d, want %d", s, r, got, want)
			}
			if got := r.Cmp(n); got != -want {
				t.Fatalf("%q.Cmp(%q) = %d, want %d", r, s, got, -want)
			}
			if (n == r) != (want == 0) {
				t.Fatalf("%q == %q is %v, but Cmp gives %d", s, r, n == r, want)
			}
		}
	})
}

func FuzzParseShardIterator(f *testing.F) {
	for _, it := range []ShardIterator{
		{stream: "test", streamID: 1, shard: 0, pos: 1, issuedMs: 946684800000},
		{stream: "s", streamID: 1 << 40, shard: maxShardNumber, pos: 1<<64 - 1, issuedMs: -1},
		{stream: strings.Repeat("x", 128), streamID: 3, shard: 2, seek: true, atMs: 1700000000123, issuedMs: 1700000000000},
	} {
		tok := it.String()
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(tok + "A")
	}
	for _, s := range []string{"", "A", "AAAA", "====", "not a token", strings.Repeat("A", 1025)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		it, err := ParseShardIterator(s)
		if err != nil {
			requireKind(t, err, ErrInvalidArgument)
			if !it.IsZero() {
				t.Fatalf("ParseShardIterator(%q) failed but returned %+v", s, it)
			}
			return
		}
		if it.IsZero() {
			t.Fatalf("ParseShardIterator(%q) returned the zero iterator", s)
		}
		tok := it.String()
		back, err := ParseShardIterator(tok)
		if err != nil || back != it {
			t.Fatalf("round trip of %q through %q: %+v, %v; want %+v", s, tok, back, err, it)
		}
		if back.String() != tok {
			t.Fatalf("String is not stable: %q then %q", tok, back.String())
		}
		if err := validateStreamName("fuzz", it.StreamName()); err != nil {
			t.Fatalf("parsed iterator has stream name %q: %v", it.StreamName(), err)
		}
	})
}

// FuzzInjectFault feeds arbitrary faults to InjectFault's validator: it
// never panics, and refuses with ErrInvalidArgument or installs (and the
// installed fault can be removed).
func FuzzInjectFault(f *testing.F) {
	f.Add(uint8(OpPutRecords), "", "", 0, int64(0), true)
	f.Add(uint8(200), "bad name", "shard-1", -1, int64(-1), false)
	f.Add(uint8(OpListShards), "s", "shardId-000000000000", 3, int64(time.Second), true)
	f.Fuzz(func(t *testing.T, op uint8, stream, shard string, times int, latency int64, withErr bool) {
		c := NewCluster()
		defer c.Close()
		fault := Fault{Op: Operation(op), StreamName: stream, ShardID: shard, Times: times, Latency: time.Duration(latency)}
		if withErr {
			fault.Err = ErrInternalFailure
		}
		remove, err := c.InjectFault(fault)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		remove()
		if c.faults.active() {
			t.Fatal("the fault is still installed after remove")
		}
	})
}

var appNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)

func FuzzValidateAppName(f *testing.F) {
	for _, s := range []string{"", "ab", "abc", "my-app_1.0", "my app", "ünï", strings.Repeat("a", 255), strings.Repeat("a", 256), "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, app string) {
		err := validateAppName("NewConsumer", app)
		if appNamePattern.MatchString(app) != (err == nil) {
			t.Fatalf("validateAppName(%q) = %v; the pattern says %v", app, err, appNamePattern.MatchString(app))
		}
		if err != nil {
			requireKind(t, err, ErrInvalidArgument)
		}
	})
}

// FuzzCheckpointAt fuzzes the checkpointer's validator: a checkpoint is
// accepted only between the lease's checkpoint and the last record handed
// out, and a refused one writes nothing.
func FuzzCheckpointAt(f *testing.F) {
	f.Add(uint64(5), int64(2), false, uint64(3), int64(0), uint64(9), int64(1))
	f.Add(uint64(0), int64(0), true, uint64(3), int64(0), uint64(9), int64(1))
	f.Add(uint64(4), int64(-1), false, uint64(3), int64(0), uint64(9), int64(1))
	f.Add(uint64(0), int64(3), false, uint64(0), int64(0), uint64(9), int64(1))
	f.Fuzz(func(t *testing.T, seq uint64, sub int64, end bool, wSeq uint64, wSub int64, hSeq uint64, hSub int64) {
		mk := func(seq uint64, sub int64) Checkpoint {
			if seq == 0 {
				return Checkpoint{}
			}
			return Checkpoint{SequenceNumber: SequenceNumber{counter: seq}, SubSequenceNumber: max(sub, 0)}
		}
		written, handed := mk(wSeq, wSub), mk(hSeq, hSub)
		if written.cmp(handed) > 0 {
			written, handed = handed, written
		}
		at := Checkpoint{SubSequenceNumber: sub, ShardEnd: end}
		if seq != 0 {
			at.SequenceNumber = SequenceNumber{counter: seq}
		}
		store := NewMemoryLeaseStore()
		lease := Lease{ShardID: "shardId-000000000000", Owner: "w", Counter: 1, Checkpoint: written}
		if err := store.PutLease(t.Context(), lease, 0); err != nil {
			t.Fatal(err)
		}
		c := &Consumer{cfg: consumerConfig{store: store, workerID: "w"}, log: discardLogger(), renewEvery: time.Second}
		h := &heldLease{shardID: lease.ShardID, lease: lease, cancelLease: func() {}, writing: make(chan struct{}, 1)}
		cp := &leaseCheckpointer{c: c, h: h, written: written, handed: handed, writing: make(chan struct{}, 1)}
		err := cp.CheckpointAt(t.Context(), at)
		valid := at.invalid() == "" && !at.IsZero() && at.cmp(handed) <= 0 && at.cmp(written) >= 0
		if valid != (err == nil) {
			t.Fatalf("CheckpointAt(%v) with written %v, handed %v: %v", at, written, handed, err)
		}
		leases, _ := store.ListLeases(t.Context())
		if err != nil {
			requireKind(t, err, ErrInvalidArgument)
			if leases[0].Checkpoint != written {
				t.Fatalf("a refused checkpoint was written: %v", leases[0].Checkpoint)
			}
		} else if want := at; leases[0].Checkpoint != want && at != written {
			t.Fatalf("stored %v, want %v", leases[0].Checkpoint, want)
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
