package runnel_test

import (
	"fmt"

	"github.com/runnel-go/runnel"
)

// Aggregate packs several user records into the Data of one Kinesis record,
// in the format the KPL writes and the KCL reads.
func ExampleAggregate() {
	data, err := runnel.Aggregate([]runnel.UserRecord{
		{PartitionKey: "user-1", Data: []byte("hello")},
		{PartitionKey: "user-2", Data: []byte("world")},
		{PartitionKey: "user-1", ExplicitHashKey: "42", Data: []byte("again")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d bytes, starting with the magic % X\n", len(data), data[:4])

	_, err = runnel.Aggregate([]runnel.UserRecord{{PartitionKey: "", Data: []byte("x")}})
	fmt.Println(err)
	// Output:
	// 75 bytes, starting with the magic F3 89 9A C2
	// runnel: Aggregate: InvalidArgumentException: records[0]: partition key is empty; it must have 1 to 256 characters
}

// Deaggregate turns a record read from a stream back into user records. A
// record that is not an aggregate comes back as it is, so a consumer can call
// Deaggregate on every record it reads.
func ExampleDeaggregate() {
	data, err := runnel.Aggregate([]runnel.UserRecord{
		{PartitionKey: "user-1", Data: []byte("hello")},
		{PartitionKey: "user-2", ExplicitHashKey: "42", Data: []byte("world")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	records := []runnel.Record{
		{PartitionKey: "a", Data: data},                 // an aggregate
		{PartitionKey: "user-3", Data: []byte("plain")}, // a plain record
	}
	users, err := runnel.DeaggregateAll(records)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range users {
		fmt.Printf("%d %-6s %-4q aggregated=%t %s\n", u.SubSequenceNumber, u.PartitionKey, u.ExplicitHashKey, u.Aggregated, u.Data)
	}
	// Output:
	// 0 user-1 ""   aggregated=true hello
	// 1 user-2 "42" aggregated=true world
	// 0 user-3 ""   aggregated=false plain
}
