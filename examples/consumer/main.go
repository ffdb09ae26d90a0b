// Consumer runs a consumer group of three workers over a stream that a
// KPL-style producer writes to while the stream reshards. The workers keep
// their leases and checkpoints in a file, as services on one machine
// would. One worker then shuts down and hands its shards to the others,
// and a fourth worker starts later from the same file and finds every
// shard checkpointed. The program checks that every user record was
// processed, each partition key's records in order, and counts the
// duplicates that at-least-once delivery allows (de-duplicated by the
// producer's record ids).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/runnel-go/runnel"
)

func main() {
	ctx := context.Background()
	cluster := runnel.NewCluster()
	defer cluster.Close()
	stream, err := cluster.CreateStream(ctx, "clicks", runnel.WithShardCount(4))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "runnel-consumer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	leaseFile := filepath.Join(dir, "clicks-app.leases.json")

	app := newApp(stream)
	workers := make([]*runnel.Consumer, 3)
	for i := range workers {
		workers[i] = app.startWorker(leaseFile, "worker-"+strconv.Itoa(i+1))
	}

	producer, err := runnel.NewProducer(ctx, stream, runnel.WithRecordIDs(true))
	if err != nil {
		log.Fatal(err)
	}
	const users, perUser = 500, 100
	for i := range perUser {
		for u := range users {
			rec := runnel.ProducerRecord{PartitionKey: "user-" + strconv.Itoa(u), Data: []byte(strconv.Itoa(i))}
			if err := producer.Put(ctx, rec, nil); err != nil {
				log.Fatal(err)
			}
		}
		if i == perUser/2 {
			if _, err := stream.UpdateShardCount(ctx, 6); err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := producer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	app.waitFor(users * perUser)

	// worker-1 shuts down: its shards are checkpointed and handed off, and
	// the others take them at their next lease round.
	workers[0].Close()
	time.Sleep(2 * time.Second)
	for _, w := range workers[1:] {
		st := w.Stats()
		fmt.Printf("%s: %d leases held, %d taken, %d stolen, %d lost\n", st.WorkerID, st.LeasesHeld, st.LeasesTaken, st.LeasesStolen, st.LeasesLost)
		w.Close()
	}

	// A restarted service resumes from the file at the checkpoints.
	before := app.count()
	restarted := app.startWorker(leaseFile, "worker-4")
	time.Sleep(time.Second)
	st := restarted.Stats()
	restarted.Close()
	fmt.Printf("%s after a restart: %d leases taken, %d user records processed again\n", st.WorkerID, st.LeasesTaken, app.count()-before)

	for _, s := range app.stores {
		s.Close()
	}
	if err := app.check(users, perUser); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("processed %d user records of %d keys in order; %d duplicates dropped by record id\n",
		users*perUser, users, app.duplicates)
}

// app is the consuming application: it keeps, per partition key, the next
// record it expects.
type app struct {
	stream     *runnel.Stream
	stores     []*runnel.FileLeaseStore // closed at the end
	mu         sync.Mutex
	next       map[string]int
	processed  int
	duplicates int
	outOfOrder []string
	dedup      *runnel.DedupWindow
	done       chan struct{}
	want       int
}

func newApp(stream *runnel.Stream) *app {
	dedup, err := runnel.NewDedupWindow(100_000)
	if err != nil {
		log.Fatal(err)
	}
	return &app{stream: stream, next: map[string]int{}, dedup: dedup, done: make(chan struct{})}
}

// count returns how many user records have been handed to the app,
// duplicates included.
func (a *app) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.processed + a.duplicates
}

func (a *app) startWorker(leaseFile, id string) *runnel.Consumer {
	store, err := runnel.OpenFileLeaseStore(leaseFile)
	if err != nil {
		log.Fatal(err)
	}
	a.stores = append(a.stores, store)
	process := runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
		a.process(in.Records)
		return in.Checkpointer.Checkpoint(ctx)
	})
	w, err := runnel.NewConsumer(a.stream, "clicks-app", func(string) runnel.RecordProcessor { return process },
		runnel.WithLeaseStore(store), runnel.WithWorkerID(id), runnel.WithFailoverTime(3*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	return w
}

func (a *app) process(records []runnel.UserRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range records {
		if a.dedup.Seen(r.RecordID) {
			a.duplicates++
			continue
		}
		i, _ := strconv.Atoi(string(r.Data))
		if i != a.next[r.PartitionKey] {
			a.outOfOrder = append(a.outOfOrder, fmt.Sprintf("%s: got %d, want %d", r.PartitionKey, i, a.next[r.PartitionKey]))
		}
		a.next[r.PartitionKey] = i + 1
		a.processed++
		if a.processed == a.want {
			close(a.done)
		}
	}
}

func (a *app) waitFor(n int) {
	a.mu.Lock()
	a.want = n
	if a.processed >= n {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	select {
	case <-a.done:
	case <-time.After(time.Minute):
		a.mu.Lock()
		defer a.mu.Unlock()
		log.Fatalf("processed %d of %d user records in a minute", a.processed, n)
	}
}

func (a *app) check(users, perUser int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.outOfOrder) > 0 {
		return fmt.Errorf("%d records out of order, first: %s", len(a.outOfOrder), a.outOfOrder[0])
	}
	if a.processed != users*perUser {
		return fmt.Errorf("processed %d user records, want %d", a.processed, users*perUser)
	}
	for u := range users {
		if got := a.next["user-"+strconv.Itoa(u)]; got != perUser {
			return fmt.Errorf("user-%d: %d records processed, want %d", u, got, perUser)
		}
	}
	return nil
}
