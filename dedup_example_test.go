package runnel_test

import (
	"fmt"

	"github.com/runnel-go/runnel"
)

// A consumer drops the user records it has processed already. The records
// here are built by hand; a real consumer gets them from Deaggregate, with
// ids given by a producer with WithRecordIDs(true). "r1" comes again just
// after its first delivery, as a producer's retry might store it, and is
// dropped; "r2" comes again after three other ids have pushed it out of the
// window of three, and is processed twice. The record without an id cannot
// be de-duplicated.
func ExampleDedupWindow() {
	w, err := runnel.NewDedupWindow(3)
	if err != nil {
		fmt.Println(err)
		return
	}
	records := []runnel.UserRecord{
		{RecordID: "r1", Data: []byte("one")},
		{RecordID: "r2", Data: []byte("two")},
		{RecordID: "r1", Data: []byte("one")},
		{RecordID: "r3", Data: []byte("three")},
		{RecordID: "r4", Data: []byte("four")},
		{RecordID: "r5", Data: []byte("five")},
		{RecordID: "r2", Data: []byte("two")},
		{Data: []byte("no id")},
		{Data: []byte("no id")},
	}
	for _, r := range records {
		if w.Seen(r.RecordID) {
			fmt.Printf("skip %s (%s)\n", r.Data, r.RecordID)
			continue
		}
		fmt.Printf("process %s\n", r.Data)
	}
	fmt.Println("remembered:", w.Len())

	_, err = runnel.NewDedupWindow(0)
	fmt.Println(err)
	// Output:
	// process one
	// process two
	// skip one (r1)
	// process three
	// process four
	// process five
	// process two
	// process no id
	// process no id
	// remembered: 3
	// runnel: NewDedupWindow: InvalidArgumentException: window size is 0; it must be 1 to 16777216
}
