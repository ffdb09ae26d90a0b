package runnel

import (
	"bytes"
	"crypto/md5"
	"errors"
	"testing"
	"time"
)

// FuzzDeaggregate feeds arbitrary bytes to Deaggregate twice: as a record's
// Data, and as the protobuf of an aggregate with the magic and a valid digest
// around it (random bytes almost never carry a matching MD5, so without the
// second form the fuzzer would hardly reach the protobuf decoder). Deaggregate
// must not panic, and its result must be a pass-through, an error wrapping
// ErrInvalidArgument, or user records that survive re-aggregation unchanged.
func FuzzDeaggregate(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("plain record"))
	for _, g := range aggGoldens {
		b := g.want(f)
		f.Add(b)                                  // a valid aggregate
		f.Add(b[len(aggMagic) : len(b)-md5.Size]) // its protobuf alone
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDeaggregate(t, data)
		checkDeaggregate(t, wrapAggregate(data))
	})
}

// checkDeaggregate checks Deaggregate's contract for one record's data.
func checkDeaggregate(t *testing.T, data []byte) {
	seq := SequenceNumber{counter: 77, shard: 3}
	arrival := time.UnixMilli(1_600_000_000_000)
	in := Record{SequenceNumber: seq, PartitionKey: "outer", Data: data, ApproximateArrivalTimestamp: arrival}
	urs, err := Deaggregate(in)
	_, isAggregate := aggBody(data)

	if err != nil {
		var e *Error
		if !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &e) || e.Op != "Deaggregate" {
			t.Fatalf("error %v is not an *Error of Deaggregate wrapping ErrInvalidArgument", err)
		}
		if !isAggregate {
			t.Fatalf("error %v for data that is not an aggregate", err)
		}
		if urs != nil {
			t.Fatalf("error %v with %d user records", err, len(urs))
		}
		return
	}
	if !isAggregate {
		if len(urs) != 1 || urs[0].Aggregated || urs[0].PartitionKey != "outer" ||
			!bytes.Equal(urs[0].Data, data) || urs[0].SequenceNumber != seq || urs[0].SubSequenceNumber != 0 {
			t.Fatalf("pass-through of %x gave %+v", data, urs)
		}
		return
	}
	if len(urs) == 0 {
		t.Fatalf("aggregate %x gave no user records and no error", data)
	}
	var a aggregator
	for i, u := range urs {
		if !u.Aggregated || u.SubSequenceNumber != i || u.SequenceNumber != seq ||
			!u.ApproximateArrivalTimestamp.Equal(arrival) || u.Data == nil {
			t.Fatalf("user record %d of %x: %+v", i, data, u)
		}
		a.add(u.PartitionKey, u.ExplicitHashKey, u.RecordID, u.Data)
	}
	again, err := Deaggregate(Record{SequenceNumber: seq, Data: a.encode(), ApproximateArrivalTimestamp: arrival})
	if err != nil {
		t.Fatalf("re-aggregated records of %x do not decode: %v", data, err)
	}
	if len(again) != len(urs) {
		t.Fatalf("re-aggregation of %x gave %d records, want %d", data, len(again), len(urs))
	}
	for i := range urs {
		u, v := urs[i], again[i]
		if u.PartitionKey != v.PartitionKey || u.ExplicitHashKey != v.ExplicitHashKey ||
			u.RecordID != v.RecordID || !bytes.Equal(u.Data, v.Data) {
			t.Fatalf("re-aggregation of %x changed record %d: %+v became %+v", data, i, u, v)
		}
	}
}
