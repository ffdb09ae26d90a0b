package runnel

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewDedupWindowSize(t *testing.T) {
	tests := []struct {
		name string
		size int
		ok   bool
	}{
		{"one", 1, true},
		{"typical", 10_000, true},
		{"ring start", dedupRingStart, true},
		{"largest", 1 << 24, true},
		{"zero", 0, false},
		{"negative", -1, false},
		{"most negative", math.MinInt, false},
		{"one too many", 1<<24 + 1, false},
		{"huge", math.MaxInt, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDedupWindow(tt.size)
			if tt.ok {
				require.NoError(t, err)
				require.NotNil(t, d)
				assert.Equal(t, 0, d.Len())
				assert.LessOrEqual(t, cap(d.ring), tt.size, "the ring is never larger than the window")
				return
			}
			require.Error(t, err)
			assert.Nil(t, d)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			var e *Error
			require.True(t, errors.As(err, &e))
			assert.Equal(t, "NewDedupWindow", e.Op)
			assert.Contains(t, err.Error(), strconv.Itoa(tt.size), "the message names the value")
			assert.False(t, IsRetryable(err))
		})
	}
}

func TestDedupWindowEvictsFIFO(t *testing.T) {
	type step struct {
		id   string
		seen bool
	}
	tests := []struct {
		name  string
		size  int
		steps []step
	}{
		{
			name:  "size one remembers the last id only",
			size:  1,
			steps: []step{{"a", false}, {"a", true}, {"b", false}, {"a", false}, {"a", true}, {"b", false}},
		},
		{
			name: "the oldest is forgotten first",
			size: 3,
			steps: []step{
				{"a", false}, {"b", false}, {"c", false}, // window a b c
				{"a", true}, {"b", true}, {"c", true},
				{"d", false}, // a goes: b c d
				{"a", false}, // b goes: c d a
				{"b", false}, // c goes: d a b
				{"d", true}, {"a", true}, {"b", true},
				{"c", false}, // d goes: a b c
				{"d", false}, // a goes: b c d
			},
		},
		{
			name: "seeing an id again does not make it newer",
			size: 3,
			steps: []step{
				{"a", false}, {"b", false}, {"c", false},
				{"a", true}, {"a", true}, // a stays the oldest
				{"d", false}, // a goes, although it was seen just now
				{"a", false}, // b goes
				{"c", true}, {"d", true}, {"b", false},
			},
		},
		{
			name: "empty ids take no slot",
			size: 2,
			steps: []step{
				{"a", false}, {"", false}, {"", false}, {"b", false},
				{"a", true}, {"", false}, {"b", true},
			},
		},
		{
			name: "ids differ by bytes, not by look",
			size: 4,
			steps: []step{
				{"x", false}, {"X", false}, {"x ", false}, {"x\x00", false},
				{"x", true}, {"X", true}, {"x ", true}, {"x\x00", true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDedupWindow(tt.size)
			require.NoError(t, err)
			for i, s := range tt.steps {
				assert.Equal(t, s.seen, d.Seen(s.id), "step %d: Seen(%q)", i, s.id)
				assert.LessOrEqual(t, d.Len(), tt.size, "step %d", i)
			}
		})
	}
}

// TestDedupWindowEvictsAcrossRingGrowth fills a window past the size at
// which its ring first grows, so that eviction starts from a grown ring.
func TestDedupWindowEvictsAcrossRingGrowth(t *testing.T) {
	const size = 3*dedupRingStart + 7 // not a power of two: the last growth is cut to size
	d, err := NewDedupWindow(size)
	require.NoError(t, err)
	id := func(i int) string { return "id-" + strconv.Itoa(i) }
	for i := range size {
		require.False(t, d.Seen(id(i)), "id %d", i)
		require.Equal(t, i+1, d.Len())
	}
	assert.Equal(t, size, cap(d.ring), "the ring grows to the size and no further")
	for i := range size {
		require.True(t, d.Seen(id(i)), "id %d", i)
	}
	// Each new id pushes out the oldest, in the order they came.
	remembers := func(id string) bool { _, ok := d.ids[id]; return ok }
	for i := range size {
		require.False(t, d.Seen(id(size+i)), "id %d", size+i)
		require.False(t, remembers(id(i)), "id %d must be forgotten", i)
		require.True(t, remembers(id(size+i)), "id %d", size+i)
		if i+1 < size {
			require.True(t, remembers(id(i+1)), "id %d is not the oldest yet", i+1)
		}
	}
	assert.Equal(t, size, d.Len())
	assert.Equal(t, size, len(d.ids))
	assert.Equal(t, size, cap(d.ring))
}

func TestDedupWindowEmptyID(t *testing.T) {
	d, err := NewDedupWindow(2)
	require.NoError(t, err)
	for range 3 {
		assert.False(t, d.Seen(""), "the empty id is never a duplicate")
	}
	assert.Equal(t, 0, d.Len(), "the empty id is not remembered")
	assert.False(t, d.Seen("a"))
	assert.False(t, d.Seen(""))
	assert.False(t, d.Seen("b"))
	assert.True(t, d.Seen("a"), "empty ids pushed nothing out")
	assert.Equal(t, 2, d.Len())
}

// TestDedupWindowCopiesID checks that the window keeps its own copy of an
// id, not the caller's bytes, so that it never pins a record buffer.
func TestDedupWindowCopiesID(t *testing.T) {
	d, err := NewDedupWindow(4)
	require.NoError(t, err)
	buf := []byte("prefix-record-id-1-suffix")
	id := string(buf)[7:18]
	require.False(t, d.Seen(id))
	require.Len(t, d.ring, 1)
	assert.Equal(t, "record-id-1", d.ring[0])
	assert.NotSame(t, unsafe.StringData(id), unsafe.StringData(d.ring[0]), "the window stores a copy")
	for k := range d.ids {
		assert.NotSame(t, unsafe.StringData(id), unsafe.StringData(k), "the map's key is the copy")
	}
	assert.True(t, d.Seen(string(buf[7:18])))
}

// TestDedupWindowAllocs checks the steady-state allocations: none for a
// duplicate or the empty id, and about one (the copy of the id) for a new
// id once the window is full.
func TestDedupWindowAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters distort allocation counts")
	}
	const size = 1 << 10
	d, err := NewDedupWindow(size)
	require.NoError(t, err)
	ids := make([]string, 4*size)
	for i := range ids {
		ids[i] = "record-" + strconv.Itoa(i)
	}
	for _, id := range ids {
		d.Seen(id)
	}
	last := ids[len(ids)-1]
	assert.Zero(t, testing.AllocsPerRun(1000, func() { d.Seen(last) }), "a duplicate")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { d.Seen("") }), "the empty id")
	i := 0
	allocs := testing.AllocsPerRun(10*len(ids), func() {
		d.Seen(ids[i%len(ids)]) // forgotten since it was last seen: new each time
		i++
	})
	assert.LessOrEqual(t, allocs, 1.0, "a new id in a full window")
}

// TestDedupWindowConcurrent has goroutines race to see the same ids: each id
// must be reported new exactly once. Run it with -race.
func TestDedupWindowConcurrent(t *testing.T) {
	const (
		ids        = 2000
		goroutines = 8
	)
	d, err := NewDedupWindow(ids)
	require.NoError(t, err)
	var firsts [ids]atomic.Int32
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			// Every goroutine sees every id, each in its own order.
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for _, i := range rng.Perm(ids) {
				if !d.Seen("id-" + strconv.Itoa(i)) {
					firsts[i].Add(1)
				}
				if i%100 == 0 {
					assert.LessOrEqual(t, d.Len(), ids)
				}
			}
		})
	}
	wg.Wait()
	for i := range firsts {
		assert.Equal(t, int32(1), firsts[i].Load(), "id %d reported new", i)
	}
	assert.Equal(t, ids, d.Len())
}

// dedupModel is the reference DedupWindow: the remembered ids in first-sight
// order, searched one by one.
type dedupModel struct {
	size int
	ids  []string
}

func (m *dedupModel) seen(id string) bool {
	if id == "" {
		return false
	}
	if slices.Contains(m.ids, id) {
		return true
	}
	m.ids = append(m.ids, id)
	if len(m.ids) > m.size {
		m.ids = slices.Delete(m.ids, 0, 1)
	}
	return false
}

// TestDedupWindowMatchesModel feeds random streams of ids, with repeats
// inside and beyond the window and empty ids, to a window and to the
// reference model, and checks that they agree at every step.
func TestDedupWindowMatchesModel(t *testing.T) {
	for _, size := range []int{1, 2, 3, 16, 100, dedupRingStart + 1} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("size=%d/seed=%d", size, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, uint64(size)))
				d, err := NewDedupWindow(size)
				require.NoError(t, err)
				m := &dedupModel{size: size}
				var sent []string // every non-empty id, in order of first sending
				var within, beyond, fresh int
				for step := range 20 * size {
					var id string
					isNew := false
					switch r := rng.IntN(100); {
					case r < 5:
						id = "" // a record without an id
					case r < 40 || len(sent) == 0:
						id = "r" + strconv.Itoa(len(sent))
						sent = append(sent, id)
						isNew = true
					case r < 80:
						// A recent id: usually still in the window.
						id = sent[len(sent)-1-rng.IntN(min(len(sent), size+size/4+1))]
					default:
						// Any id so far: usually forgotten.
						id = sent[rng.IntN(len(sent))]
					}
					wasSeen := d.Seen(id)
					require.Equal(t, m.seen(id), wasSeen, "step %d: Seen(%q)", step, id)
					require.Equal(t, len(m.ids), d.Len(), "step %d", step)
					switch {
					case wasSeen:
						within++
					case isNew:
						fresh++
					case id != "":
						beyond++ // a repeat the window had forgotten
					}
				}
				assert.Equal(t, m.ids, d.remembered(), "the remembered ids, oldest first")
				// The stream must have exercised every case.
				assert.Positive(t, within, "duplicates within the window")
				assert.Positive(t, beyond, "repeats beyond the window")
				assert.Positive(t, fresh, "new ids")
			})
		}
	}
}

// remembered returns the window's ids, oldest first.
func (d *DedupWindow) remembered() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ring) < d.size {
		return slices.Clone(d.ring)
	}
	return slices.Concat(d.ring[d.head:], d.ring[:d.head])
}

// BenchmarkDedupWindow measures Seen on a full window: "new" evicts an id
// with every call, "duplicate" finds every id, "mixed" has one duplicate in
// ten, as a consumer reading again after a failover might see.
func BenchmarkDedupWindow(b *testing.B) {
	const size = 1 << 14
	ids := make([]string, 8*size)
	for i := range ids {
		// Shaped like a producer's ids: a random prefix and a counter.
		ids[i] = "4f1c2e9a5b6d7e80-" + strconv.FormatUint(uint64(1e9+i), 36)
	}
	mixed := make([]string, len(ids))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range mixed {
		if i > 0 && rng.IntN(10) == 0 {
			mixed[i] = mixed[i-1-rng.IntN(min(i, size/2))]
		} else {
			mixed[i] = ids[i]
		}
	}
	older := ids[len(ids)-size:] // ids the streams do not repeat for a while
	streams := []struct {
		name string
		warm []string // the ids the window holds at the start
		ids  []string // the ids seen, over and over
	}{
		{"new", older, ids},
		{"duplicate", ids[:size], ids[:size]},
		{"mixed", older, mixed},
	}
	for _, s := range streams {
		b.Run(s.name, func(b *testing.B) {
			d, err := NewDedupWindow(size)
			require.NoError(b, err)
			for _, id := range s.warm {
				d.Seen(id)
			}
			require.Equal(b, size, d.Len())
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				d.Seen(s.ids[n%len(s.ids)])
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
