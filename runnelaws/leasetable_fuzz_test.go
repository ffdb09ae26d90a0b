package runnelaws

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/runnel-go/runnel"
)

// itemFromJSON reads an item written in DynamoDB's JSON form
// ({"leaseKey": {"S": "shardId-0"}, …}), so that a fuzzer can make any
// item from bytes. ok is false for text that is not such an item.
func itemFromJSON(data []byte) (map[string]types.AttributeValue, bool) {
	var raw map[string]json.RawMessage
	if json.Unmarshal(data, &raw) != nil {
		return nil, false
	}
	return mapFromJSON(raw, 0)
}

func mapFromJSON(raw map[string]json.RawMessage, depth int) (map[string]types.AttributeValue, bool) {
	m := make(map[string]types.AttributeValue, len(raw))
	for k, v := range raw {
		av, ok := valueFromJSON(v, depth)
		if !ok {
			return nil, false
		}
		m[k] = av
	}
	return m, true
}

// valueFromJSON reads one attribute value: an object of one member, named
// by its type. "nil" makes a nil pointer of the S member, which a decoder
// must survive too.
func valueFromJSON(data json.RawMessage, depth int) (types.AttributeValue, bool) {
	var v map[string]json.RawMessage
	if depth > 4 || json.Unmarshal(data, &v) != nil || len(v) != 1 {
		return nil, false
	}
	for typ, body := range v {
		var s string
		var ss []string
		switch typ {
		case "S", "N", "B":
			if json.Unmarshal(body, &s) != nil {
				return nil, false
			}
			switch typ {
			case "S":
				return &types.AttributeValueMemberS{Value: s}, true
			case "N":
				return &types.AttributeValueMemberN{Value: s}, true
			}
			b, err := base64.StdEncoding.DecodeString(s)
			return &types.AttributeValueMemberB{Value: b}, err == nil
		case "SS", "NS":
			if json.Unmarshal(body, &ss) != nil {
				return nil, false
			}
			if typ == "SS" {
				return &types.AttributeValueMemberSS{Value: ss}, true
			}
			return &types.AttributeValueMemberNS{Value: ss}, true
		case "BOOL":
			var b bool
			return &types.AttributeValueMemberBOOL{Value: b}, json.Unmarshal(body, &b) == nil
		case "NULL":
			return &types.AttributeValueMemberNULL{Value: true}, true
		case "nil":
			return (*types.AttributeValueMemberS)(nil), true
		case "M":
			var raw map[string]json.RawMessage
			if json.Unmarshal(body, &raw) != nil {
				return nil, false
			}
			m, ok := mapFromJSON(raw, depth+1)
			return &types.AttributeValueMemberM{Value: m}, ok
		case "L":
			var raw []json.RawMessage
			if json.Unmarshal(body, &raw) != nil {
				return nil, false
			}
			l := make([]types.AttributeValue, 0, len(raw))
			for _, r := range raw {
				av, ok := valueFromJSON(r, depth+1)
				if !ok {
					return nil, false
				}
				l = append(l, av)
			}
			return &types.AttributeValueMemberL{Value: l}, true
		}
	}
	return nil, false
}

// FuzzDecodeLeaseItem: the decoder never panics on any item; what it
// accepts is a valid lease, and its item decodes to the same lease
// (decoding, then encoding, is stable).
func FuzzDecodeLeaseItem(f *testing.F) {
	for _, seed := range []string{
		// A lease as runnel writes it.
		`{"leaseKey":{"S":"shardId-000000000007"},"leaseOwner":{"S":"w1"},"leaseCounter":{"N":"7"},
		  "checkpoint":{"S":"49590338271490256608559692538361571095921575989136588898"},"checkpointSubSequenceNumber":{"N":"3"},
		  "ownerSwitchesSinceCheckpoint":{"N":"2"},"parentShardId":{"SS":["shardId-000000000002","shardId-000000000003"]},
		  "startingHashKey":{"S":"0"},"endingHashKey":{"S":"340282366920938463463374607431768211455"},
		  "runnelStart":{"M":{"type":{"S":"AT_TIMESTAMP"},"timestamp":{"S":"2026-12-01T07:30:00.123456789Z"}}}}`,
		// As the KCL writes them.
		`{"leaseKey":{"S":"shardId-000000000000"},"leaseCounter":{"N":"0"},"checkpoint":{"S":"TRIM_HORIZON"},
		  "checkpointSubSequenceNumber":{"N":"0"},"ownerSwitchesSinceCheckpoint":{"N":"0"}}`,
		`{"leaseKey":{"S":"shardId-000000000001"},"leaseOwner":{"S":"java"},"leaseCounter":{"N":"1234"},
		  "checkpoint":{"S":"SHARD_END"},"checkpointSubSequenceNumber":{"N":"0"},"childShardIds":{"SS":["a","b"]},
		  "pendingCheckpoint":{"S":"12"},"pendingCheckpointState":{"B":"c3RhdGU="},"throughputKBps":{"N":"1.5"}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"checkpoint":{"S":"AT_TIMESTAMP"}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"checkpoint":{"S":"LATEST"},"runnelStart":{"M":{}}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"2"},"runnelStart":{"M":{"type":{"S":"AT_SEQUENCE_NUMBER"},"sequenceNumber":{"S":"0"}}}}`,
		// Faults.
		`{"leaseKey":{"N":"1"},"leaseCounter":{"N":"1"}}`,
		`{"leaseKey":{"nil":""},"leaseCounter":{"N":"1"}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"-1"}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1e3"}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"checkpoint":{"S":"SHARD_END"},"checkpointSubSequenceNumber":{"N":"2"}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"startingHashKey":{"S":"9"},"endingHashKey":{"S":"1"}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"parentShardId":{"L":[{"S":"p"}]}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"runnelStart":{"M":{"timestamp":{"S":"10000-01-01T00:00:00Z"}}}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"runnelStart":{"L":[]}}`,
		`{"leaseKey":{"S":"s"},"leaseCounter":{"N":"1"},"parentShardId":{"SS":["p","p"]}}`,
		`{"leaseKey":{"S":"123456789012:orders:1700000000:shardId-000000000000"},"leaseCounter":{"N":"1"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		item, ok := itemFromJSON(data)
		if !ok {
			return
		}
		l, err := decodeLeaseItem("ListLeases", "fuzz", item)
		if err != nil {
			var e *runnel.Error
			if !errors.As(err, &e) || (e.Kind != runnel.ErrCorrupt && e.Kind != runnel.ErrInvalidArgument) || !strings.Contains(e.Msg, "lease table fuzz") {
				t.Fatalf("an item that does not decode gave %v, not an ErrCorrupt (or, for a multi-stream key, ErrInvalidArgument) naming the table", err)
			}
			return
		}
		if why := l.Invalid(); why != "" {
			t.Fatalf("decoded lease %+v %s", l, why)
		}
		again, err := decodeLeaseItem("ListLeases", "fuzz", encodeLeaseItem(l))
		if err != nil {
			t.Fatalf("the item of decoded lease %+v does not decode: %v", l, err)
		}
		if !sameLease(again, l) {
			t.Fatalf("decode(encode(l)) = %+v, not l = %+v", again, l)
		}
	})
}

// FuzzLeaseItemRoundTrip: every lease a PutLease accepts decodes from its
// item as the lease written, in canonical form (sets sorted, the start's
// timestamp in UTC).
func FuzzLeaseItemRoundTrip(f *testing.F) {
	f.Add("shardId-000000000001", "worker", int64(3), "49590338271490256608559692538361571095921575989136588898", int64(2), false,
		"shardId-000000000000", "", "1", "2", int64(1), "AT_TIMESTAMP", "", int64(1764577800123456789))
	f.Add("s", "", int64(1), "", int64(0), true, "", "a,b", "", "", int64(0), "TRIM_HORIZON", "", int64(0))
	f.Add("s", "", int64(1), "", int64(0), false, "b,a", "", "0", "340282366920938463463374607431768211455", int64(0), "AT_SEQUENCE_NUMBER", "12", int64(0))
	f.Add("s", "o", int64(1<<62), "0", int64(0), false, "", "", "", "", int64(9), "", "", int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, id, owner string, counter int64, seq string, sub int64, shardEnd bool,
		parents, children, lo, hi string, switches int64, startType, startSeq string, startNanos int64) {
		l := runnel.Lease{ShardID: id, Owner: owner, Counter: counter, OwnerSwitchesSinceCheckpoint: switches}
		l.Checkpoint.ShardEnd, l.Checkpoint.SubSequenceNumber = shardEnd, sub
		if seq != "" {
			n, err := runnel.ParseSequenceNumber(seq)
			if err != nil {
				return
			}
			l.Checkpoint.SequenceNumber = n
		}
		if parents != "" {
			l.ParentShardIDs = strings.Split(parents, ",")
		}
		if children != "" {
			l.ChildShardIDs = strings.Split(children, ",")
		}
		if lo != "" || hi != "" {
			a, err1 := runnel.ParseHashKey(lo)
			b, err2 := runnel.ParseHashKey(hi)
			if err1 != nil || err2 != nil {
				return
			}
			l.HashKeyRange = runnel.HashKeyRange{StartingHashKey: a, EndingHashKey: b}
		}
		l.Start.Type = runnel.IteratorType(startType)
		if startSeq != "" {
			n, err := runnel.ParseSequenceNumber(startSeq)
			if err != nil {
				return
			}
			l.Start.SequenceNumber = n
		}
		if startNanos != 0 {
			l.Start.Timestamp = time.Unix(0, startNanos).In(time.FixedZone("X", 5400))
		}
		if checkLeaseTableWrite("PutLease", l, counter-1) != nil || counter < 1 {
			return
		}
		got, err := decodeLeaseItem("ListLeases", "fuzz", encodeLeaseItem(l))
		if err != nil {
			t.Fatalf("lease %+v, which PutLease accepts, does not decode from its item: %v", l, err)
		}
		want := canonicalLease(l)
		if !sameLease(got, want) {
			t.Fatalf("decoded %+v, want %+v", got, want)
		}
		if len(l.ParentShardIDs) > 0 && !slices.IsSorted(got.ParentShardIDs) {
			t.Fatalf("parents %v are not sorted", got.ParentShardIDs)
		}
	})
}
