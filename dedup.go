package runnel

import (
	"strings"
	"sync"
)

// maxDedupWindow is the largest size NewDedupWindow accepts: 16 Mi ids, which
// take about 256 MiB of ring (a string header each) before the map and the
// ids' bytes are counted.
const maxDedupWindow = 1 << 24

// dedupRingStart is how many ids a new window makes room for at first; the
// ring doubles from there up to the window's size, so that a large window
// that only ever sees a few ids costs little.
const dedupRingStart = 1024

// DedupWindow drops the duplicates of an at-least-once stream by record id,
// over a bounded window: it remembers the last size distinct ids it has seen
// (the size given to NewDedupWindow) and answers whether an id is one of
// them.
//
// Kinesis delivers records at least once. A producer that retries after a
// lost response can store a user record twice, and a consumer that fails
// over or restarts reads again every record after its last checkpoint. A
// producer with WithRecordIDs(true) gives every user record a unique id,
// which Deaggregate returns as UserRecord.RecordID; a consumer that asks
// Seen for each record's id before processing it processes each record
// once, within the window's limits:
//
//	if w.Seen(u.RecordID) {
//		continue // a duplicate
//	}
//	process(u)
//
// # What it catches and what it cannot
//
// A duplicate is caught when it arrives within size distinct ids of the
// first sight of its id: ids are forgotten in the order they were first
// seen (FIFO), and seeing an id again does not refresh it. An older
// duplicate is taken for a new record. Size a window for the number of
// distinct records that can pass between a record and its redelivery: the
// records read after the checkpoint a redelivery restarts from, or those
// written between a lost response and the producer's retry.
//
// Records without an id (RecordID "", as for every record of a producer
// without WithRecordIDs and every plain, non-aggregated record) cannot be
// de-duplicated: Seen reports the empty id as new every time and does not
// remember it.
//
// The window lives in the memory of one process and is lost with it. When a
// shard's lease moves to another worker — the failover that causes most
// redeliveries — the new owner's window has never seen the records the old
// owner processed after its last checkpoint, so those duplicates reach the
// new owner's processing. A DedupWindow narrows duplicates within a process
// (producer retries, a reader rewound to its checkpoint); de-duplication
// that survives a failover or restart needs the user's own durable store,
// such as a conditional write keyed by the record id, updated with the
// record's effects.
//
// # One window per shard, or one for all
//
// A consumer should keep one window per shard it holds: each is sized for
// that shard's redelivery horizon, a busy shard cannot push a quiet shard's
// ids out, and the window is dropped with the lease it belongs to. One
// window shared by all of a process's shards must be sized for the records
// of all of them between a record and its redelivery; its one advantage is
// that it also catches a duplicate that lands on another shard than the
// original, which happens when a producer's retry crosses a reshard (the
// first copy in the parent shard, the retry in a child). A per-shard
// consumer that goes on to read the children itself can catch those too,
// by handing the parent's window on to them.
//
// Seen remembers an id when it reports it as new, before the caller has
// processed the record: if processing fails and this process then reads the
// record again (say after rewinding to its checkpoint), the window takes it
// for a duplicate. Start a new window when rewinding.
//
// # Memory and concurrency
//
// Memory is bounded by the size: a ring of at most size ids in first-sight
// order plus a map of the same ids. The ring starts small and doubles up
// to the size as ids arrive; once it is full, every new id takes the slot of
// the oldest. Seen stores a copy of each new id (strings.Clone), so the
// window never keeps alive the memory a caller's string shares, such as a
// large record buffer the id was sliced from. That copy is the one
// allocation of a new id once the ring is full, besides any the map makes
// for itself; a duplicate or the empty id allocates nothing.
//
// A DedupWindow is safe for concurrent use; its methods take a mutex for
// the time of one map look-up and update. The zero value is not usable:
// call NewDedupWindow.
type DedupWindow struct {
	mu   sync.Mutex
	size int                 // the most ids remembered
	ring []string            // the remembered ids: ring[head] is the oldest once len(ring) == size
	head int                 // the slot the next new id takes once the ring is full
	ids  map[string]struct{} // the ids of ring
}

// NewDedupWindow returns an empty window that remembers the last size
// distinct ids, 1 to 16,777,216 (1<<24). Any other size is an *Error
// wrapping ErrInvalidArgument.
func NewDedupWindow(size int) (*DedupWindow, error) {
	const op = "NewDedupWindow"
	if size < 1 || size > maxDedupWindow {
		return nil, errorf(op, ErrInvalidArgument, "window size is %d; it must be 1 to %d", size, maxDedupWindow)
	}
	n := min(size, dedupRingStart)
	return &DedupWindow{
		size: size,
		ring: make([]string, 0, n),
		ids:  make(map[string]struct{}, n),
	}, nil
}

// Seen reports whether id is among the ids the window remembers. If it is
// not, Seen remembers a copy of it as the newest, forgetting the oldest
// when the window is full; seeing a remembered id again does not make it
// newer. The empty id is never reported as seen and never remembered.
// Seen is safe for concurrent use: of several concurrent calls with the
// same new id, exactly one reports false, unless other new ids push it out
// of the window between the calls.
func (d *DedupWindow) Seen(id string) bool {
	if id == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ids[id]; ok {
		return true
	}
	id = strings.Clone(id)
	if len(d.ring) < d.size {
		if len(d.ring) == cap(d.ring) {
			ring := make([]string, len(d.ring), min(2*cap(d.ring), d.size))
			copy(ring, d.ring)
			d.ring = ring
		}
		d.ring = append(d.ring, id)
	} else {
		// Forget the oldest first, so that the map never holds more
		// than size ids.
		delete(d.ids, d.ring[d.head])
		d.ring[d.head] = id
		if d.head++; d.head == d.size {
			d.head = 0
		}
	}
	d.ids[id] = struct{}{}
	return false
}

// Len returns how many ids the window remembers: the number of distinct
// non-empty ids seen so far until that reaches the window's size, and the
// size from then on. Len is safe for concurrent use.
func (d *DedupWindow) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ring)
}
