package runnel

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unhex decodes a hex literal that may contain spaces for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// wrapAggregate frames a protobuf body as an aggregate: magic, body, digest.
func wrapAggregate(body []byte) []byte {
	sum := md5.Sum(body)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, body...)
	return append(out, sum[:]...)
}

// The golden vectors below were written by hand from the protobuf encoding
// rules (keys are field<<3|wiretype: 0A = field 1 bytes, 12 = field 2 bytes,
// 1A = field 3 bytes, 08/10 = fields 1/2 varint); only the MD5 digests were
// computed with a tool (md5sum over the protobuf bytes).
var aggGoldens = []struct {
	name    string
	records []UserRecord
	want    func(t testing.TB) []byte
}{
	{
		name: "two records with keys a and b",
		records: []UserRecord{
			{PartitionKey: "a", Data: []byte("x")},
			{PartitionKey: "b", Data: []byte("yz")},
		},
		want: func(t testing.TB) []byte {
			return unhex(t, "F3899AC2"+
				"0A 01 61"+ // partition_key_table "a"
				"0A 01 62"+ // partition_key_table "b"
				"1A 05 08 00 1A 01 78"+ // records: pk 0, data "x"
				"1A 06 08 01 1A 02 79 7A"+ // records: pk 1, data "yz"
				"6fe1bc1407aabc41e3e0c88f3f668baf")
		},
	},
	{
		name: "shared key, explicit hash key and empty data",
		records: []UserRecord{
			{PartitionKey: "k", ExplicitHashKey: "42", Data: []byte("hi")},
			{PartitionKey: "k", Data: nil},
			{PartitionKey: "j", ExplicitHashKey: "42", Data: []byte("!")},
		},
		want: func(t testing.TB) []byte {
			return unhex(t, "F3899AC2"+
				"0A 01 6B"+ // partition_key_table "k"
				"0A 01 6A"+ // partition_key_table "j"
				"12 02 34 32"+ // explicit_hash_key_table "42"
				"1A 08 08 00 10 00 1A 02 68 69"+ // pk 0, ehk 0, data "hi"
				"1A 04 08 00 1A 00"+ // pk 0, data "" (required, so present)
				"1A 07 08 01 10 00 1A 01 21"+ // pk 1, ehk 0, data "!"
				"958aedb4ee02c3bf7402d893eec669cc")
		},
	},
	{
		name: "single record with two-byte varint lengths",
		records: []UserRecord{
			{PartitionKey: "pk", Data: bytes.Repeat([]byte("A"), 200)},
		},
		want: func(t testing.TB) []byte {
			b := unhex(t, "F3899AC2"+
				"0A 02 70 6B"+ // partition_key_table "pk"
				"1A CD 01"+ // records, length 205 = 0xCD 0x01
				"08 00"+ // pk 0
				"1A C8 01") // data, length 200 = 0xC8 0x01
			b = append(b, bytes.Repeat([]byte("A"), 200)...)
			return append(b, unhex(t, "e79f4385e65d3b303940209d93b1af76")...)
		},
	},
	{
		name: "record id as a tag",
		records: []UserRecord{
			{PartitionKey: "a", Data: []byte("x"), RecordID: "r1"},
			{PartitionKey: "a", Data: []byte("y")},
		},
		want: func(t testing.TB) []byte {
			return unhex(t, "F3899AC2"+
				"0A 01 61"+ // partition_key_table "a"
				"1A 1D 08 00 1A 01 78"+ // records: pk 0, data "x", then
				"22 16"+ // tags, 22 bytes:
				"0A 10 72756e6e656c2d7265636f72642d6964"+ // key "runnel-record-id"
				"12 02 72 31"+ // value "r1"
				"1A 05 08 00 1A 01 79"+ // records: pk 0, data "y", no tag
				"a59dad064b06e2ee5bd510e638cb879e")
		},
	},
}

func TestAggregateGolden(t *testing.T) {
	for _, tc := range aggGoldens {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want(t)
			got, err := Aggregate(tc.records)
			require.NoError(t, err)
			assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))

			// Check the vector itself with the test's own reader.
			require.True(t, bytes.HasPrefix(want, []byte{0xF3, 0x89, 0x9A, 0xC2}))
			body := want[4 : len(want)-16]
			sum := md5.Sum(body)
			assert.Equal(t, sum[:], want[len(want)-16:])
			agg := testDecodeAggregate(t, body)
			require.Len(t, agg.records, len(tc.records))
			for i, r := range agg.records {
				in := tc.records[i]
				require.Less(t, r.pkIndex, uint64(len(agg.pkTable)))
				assert.Equal(t, in.PartitionKey, agg.pkTable[r.pkIndex], "record %d", i)
				if in.ExplicitHashKey == "" {
					assert.False(t, r.hasEHK, "record %d", i)
				} else {
					require.True(t, r.hasEHK, "record %d", i)
					require.Less(t, r.ehkIndex, uint64(len(agg.ehkTable)))
					assert.Equal(t, in.ExplicitHashKey, agg.ehkTable[r.ehkIndex], "record %d", i)
				}
				assert.True(t, bytes.Equal(in.Data, r.data), "record %d", i)
				if in.RecordID == "" {
					assert.Empty(t, r.tags, "record %d", i)
				} else {
					assert.Equal(t, [][2]string{{RecordIDTag, in.RecordID}}, r.tags, "record %d", i)
				}
			}

			// And the production decoder reads it back.
			seq := SequenceNumber{counter: 9, shard: 2}
			urs, err := Deaggregate(Record{SequenceNumber: seq, PartitionKey: "a", Data: want})
			require.NoError(t, err)
			assertUserRecords(t, tc.records, urs, seq, time.Time{})
		})
	}
}

// testAgg is an AggregatedRecord as the test's own decoder sees it.
type testAgg struct {
	pkTable, ehkTable []string
	records           []testAggRecord
}

type testAggRecord struct {
	pkIndex, ehkIndex uint64
	hasEHK            bool
	data              []byte
	tags              [][2]string // key, value
}

// testField is one protobuf field read by testFields.
type testField struct {
	num, wire int
	varint    uint64
	bytes     []byte
}

// testFields is a deliberately plain protobuf reader, independent of the
// production decoder: it understands only wire types 0 and 2 and fails the
// test on anything else.
func testFields(t testing.TB, b []byte) []testField {
	t.Helper()
	readVarint := func() uint64 {
		var v uint64
		for shift := 0; ; shift += 7 {
			require.NotEmpty(t, b, "truncated varint")
			require.Less(t, shift, 64, "varint too long")
			c := b[0]
			b = b[1:]
			v |= uint64(c&0x7F) << shift
			if c < 0x80 {
				return v
			}
		}
	}
	var fields []testField
	for len(b) > 0 {
		key := readVarint()
		f := testField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			f.varint = readVarint()
		case 2:
			n := int(readVarint())
			require.LessOrEqual(t, n, len(b), "length past the end")
			f.bytes, b = b[:n], b[n:]
		default:
			t.Fatalf("unexpected wire type %d", f.wire)
		}
		fields = append(fields, f)
	}
	return fields
}

func testDecodeAggregate(t testing.TB, body []byte) testAgg {
	t.Helper()
	var agg testAgg
	for _, f := range testFields(t, body) {
		switch {
		case f.num == 1 && f.wire == 2:
			agg.pkTable = append(agg.pkTable, string(f.bytes))
		case f.num == 2 && f.wire == 2:
			agg.ehkTable = append(agg.ehkTable, string(f.bytes))
		case f.num == 3 && f.wire == 2:
			var r testAggRecord
			for _, g := range testFields(t, f.bytes) {
				switch {
				case g.num == 1 && g.wire == 0:
					r.pkIndex = g.varint
				case g.num == 2 && g.wire == 0:
					r.ehkIndex, r.hasEHK = g.varint, true
				case g.num == 3 && g.wire == 2:
					r.data = g.bytes
				case g.num == 4 && g.wire == 2:
					var tag [2]string
					for _, h := range testFields(t, g.bytes) {
						require.Equal(t, 2, h.wire)
						require.Contains(t, []int{1, 2}, h.num)
						tag[h.num-1] = string(h.bytes)
					}
					r.tags = append(r.tags, tag)
				default:
					t.Fatalf("unexpected record field %d/%d", g.num, g.wire)
				}
			}
			agg.records = append(agg.records, r)
		default:
			t.Fatalf("unexpected field %d/%d", f.num, f.wire)
		}
	}
	return agg
}

// assertUserRecords checks that got is the deaggregation of want.
func assertUserRecords(t *testing.T, want, got []UserRecord, seq SequenceNumber, arrival time.Time) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		g := got[i]
		assert.Equal(t, want[i].PartitionKey, g.PartitionKey, "record %d", i)
		assert.Equal(t, want[i].ExplicitHashKey, g.ExplicitHashKey, "record %d", i)
		assert.Equal(t, want[i].RecordID, g.RecordID, "record %d", i)
		assert.True(t, bytes.Equal(want[i].Data, g.Data), "record %d: data %q, want %q", i, g.Data, want[i].Data)
		assert.NotNil(t, g.Data, "record %d", i)
		assert.Equal(t, seq, g.SequenceNumber, "record %d", i)
		assert.Equal(t, i, g.SubSequenceNumber, "record %d", i)
		assert.True(t, g.Aggregated, "record %d", i)
		assert.True(t, arrival.Equal(g.ApproximateArrivalTimestamp), "record %d", i)
	}
}

// randomUserRecords returns n records with keys from a small pool (so that
// keys repeat), some multi-byte, some with explicit hash keys or record ids,
// and data of 0 to maxData bytes.
func randomUserRecords(rng *rand.Rand, n, maxData int) []UserRecord {
	pks := []string{
		"a", "user-42", "ключ", "日本語のキー", "🙂", strings.Repeat("é", 256),
		strings.Repeat("🙂", 256), strings.Repeat("k", 256),
	}
	ehks := []string{"", "", "0", MaxHashKey().String(), "170141183460469231731687303715884105728"}
	recs := make([]UserRecord, n)
	for i := range recs {
		r := &recs[i]
		if rng.IntN(3) == 0 {
			r.PartitionKey = fmt.Sprintf("key-%d", rng.IntN(1000))
		} else {
			r.PartitionKey = pks[rng.IntN(len(pks))]
		}
		switch rng.IntN(4) {
		case 0:
			r.ExplicitHashKey = ehks[rng.IntN(len(ehks))]
		case 1:
			r.ExplicitHashKey = HashKey{hi: rng.Uint64(), lo: rng.Uint64()}.String()
		}
		if rng.IntN(3) == 0 {
			r.RecordID = fmt.Sprintf("%016x-%s", rng.Uint64(), strings.Repeat("z", rng.IntN(120)))
		}
		r.Data = make([]byte, rng.IntN(maxData+1))
		for j := range r.Data {
			r.Data[j] = byte(rng.Uint32())
		}
	}
	return recs
}

func TestAggregateRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		maxData int
	}{
		{"one record", 1, 50},
		{"two records", 2, 50},
		{"only empty data", 20, 0},
		{"ten records", 10, 300},
		{"thousand records", 1000, 200},
		{"large data", 5, 40000},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			recs := randomUserRecords(rng, tc.n, tc.maxData)
			data, err := Aggregate(recs)
			require.NoError(t, err)

			seq := SequenceNumber{counter: uint64(100 + i), shard: 7}
			arrival := time.UnixMilli(1_700_000_000_123)
			urs, err := Deaggregate(Record{SequenceNumber: seq, PartitionKey: "a", Data: data, ApproximateArrivalTimestamp: arrival})
			require.NoError(t, err)
			assertUserRecords(t, recs, urs, seq, arrival)

			// Re-aggregating what came out gives the same bytes.
			again, err := Aggregate(urs)
			require.NoError(t, err)
			assert.Equal(t, data, again)
		})
	}
}

func TestAggregateDeduplicatesKeysInFirstSeenOrder(t *testing.T) {
	recs := []UserRecord{
		{PartitionKey: "c", ExplicitHashKey: "3"},
		{PartitionKey: "a"},
		{PartitionKey: "c", ExplicitHashKey: "1"},
		{PartitionKey: "b", ExplicitHashKey: "3"},
		{PartitionKey: "a", ExplicitHashKey: "1"},
	}
	data, err := Aggregate(recs)
	require.NoError(t, err)
	agg := testDecodeAggregate(t, data[4:len(data)-16])
	assert.Equal(t, []string{"c", "a", "b"}, agg.pkTable)
	assert.Equal(t, []string{"3", "1"}, agg.ehkTable)
	var pkIdx, ehkIdx []uint64
	for _, r := range agg.records {
		pkIdx = append(pkIdx, r.pkIndex)
		if r.hasEHK {
			ehkIdx = append(ehkIdx, r.ehkIndex)
		}
	}
	assert.Equal(t, []uint64{0, 1, 0, 2, 1}, pkIdx)
	assert.Equal(t, []uint64{0, 1, 0, 1}, ehkIdx)
}

func TestDeaggregatePassThrough(t *testing.T) {
	valid := wrapAggregate(unhex(t, "0A0161 1A04 0800 1A00"))
	badDigest := bytes.Clone(valid)
	badDigest[len(badDigest)-1] ^= 1
	badBody := bytes.Clone(valid)
	badBody[6] ^= 1
	badMagic := bytes.Clone(valid)
	badMagic[0] = 0xF2

	tests := []struct {
		name string
		data []byte
	}{
		{"nil data", nil},
		{"empty data", []byte{}},
		{"plain text", []byte("hello, world")},
		{"magic only", []byte{0xF3, 0x89, 0x9A, 0xC2}},
		{"one byte short of magic and digest", valid[:4+15]},
		{"shorter than its digest claims", valid[:len(valid)-1]},
		{"bad digest", badDigest},
		{"body changed after digest", badBody},
		{"wrong magic", badMagic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Record{
				SequenceNumber:              SequenceNumber{counter: 5, shard: 1},
				PartitionKey:                "outer",
				Data:                        tc.data,
				ApproximateArrivalTimestamp: time.UnixMilli(1234),
			}
			urs, err := Deaggregate(in)
			require.NoError(t, err)
			require.Len(t, urs, 1)
			assert.Equal(t, UserRecord{
				PartitionKey:                "outer",
				Data:                        tc.data,
				SequenceNumber:              in.SequenceNumber,
				ApproximateArrivalTimestamp: in.ApproximateArrivalTimestamp,
			}, urs[0])
			if len(tc.data) > 0 {
				assert.Same(t, &tc.data[0], &urs[0].Data[0], "data is not copied")
			}
		})
	}
}

func TestDeaggregateTolerated(t *testing.T) {
	// Valid protobuf that a different encoder could write: fields out of
	// order, unknown fields of every skippable wire type, known fields with an
	// unexpected wire type (unknown to protobuf), tags, repeated scalars.
	tests := []struct {
		name string
		body string
		want []UserRecord
	}{
		{
			name: "records before the tables",
			body: "1A04 0801 1A00  0A0161 1A05 0800 1A01 78  0A0162",
			want: []UserRecord{{PartitionKey: "b", Data: []byte{}}, {PartitionKey: "a", Data: []byte("x")}},
		},
		{
			name: "unknown top-level fields of every skippable wire type",
			body: "7805 0A0161 79 0102030405060708 7D 01020304 7A 03 AABBCC 1A04 0800 1A00 F8FFFFFF0F 01",
			want: []UserRecord{{PartitionKey: "a", Data: []byte{}}},
		},
		{
			name: "unknown record fields",
			body: "0A0161 1A10 2800 0800 3102030405060708 09 1A0178",
			want: []UserRecord{{PartitionKey: "a", Data: []byte("x")}},
		},
		{
			name: "known field number with another wire type is unknown",
			body: "0805 0A0161 1A08 0A0163 0800 1A0178 1803",
			want: []UserRecord{{PartitionKey: "a", Data: []byte("x")}},
		},
		{
			name: "tags with and without value and with unknown fields",
			body: "0A0161 1A18 0800 1A0178 2203 0A016B 2206 0A016B 120176 2204 0A00 1801",
			want: []UserRecord{{PartitionKey: "a", Data: []byte("x")}},
		},
		{
			name: "record id tag among other tags; the last id wins",
			body: "0A0161 1A3D 0800 1A0178 2208 0A016B 120376616C 2216 0A10 72756e6e656c2d7265636f72642d6964 12026964 2214 0A10 72756e6e656c2d7265636f72642d6964 1200",
			want: []UserRecord{{PartitionKey: "a", Data: []byte("x")}},
		},
		{
			name: "record id tag",
			body: "0A0161 1A1F 0800 1A0178 2218 0A10 72756e6e656c2d7265636f72642d6964 1204 69642D31",
			want: []UserRecord{{PartitionKey: "a", Data: []byte("x"), RecordID: "id-1"}},
		},
		{
			name: "repeated scalar: the last value wins",
			body: "0A0161 0A0162 1A06 0800 1A00 0801",
			want: []UserRecord{{PartitionKey: "b", Data: []byte{}}},
		},
		{
			name: "non-minimal varints",
			body: "0A0161 1A05 088000 1A00",
			want: []UserRecord{{PartitionKey: "a", Data: []byte{}}},
		},
		{
			name: "unused and duplicate table entries",
			body: "0A0161 0A0161 120131 120132 1A06 0801 1001 1A00",
			want: []UserRecord{{PartitionKey: "a", ExplicitHashKey: "2", Data: []byte{}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq := SequenceNumber{counter: 3, shard: 0}
			urs, err := Deaggregate(Record{SequenceNumber: seq, Data: wrapAggregate(unhex(t, tc.body))})
			require.NoError(t, err)
			assertUserRecords(t, tc.want, urs, seq, time.Time{})
		})
	}
}

func TestDeaggregateDamaged(t *testing.T) {
	tests := []struct {
		name string
		body string
		msg  string // the error message after "aggregated record <seq>: "
	}{
		{
			name: "no records at all",
			body: "",
			msg:  "aggregate holds no records (0 partition keys, 0 explicit hash keys)",
		},
		{
			name: "tables but no records",
			body: "0A0161 120131",
			msg:  "aggregate holds no records (1 partition keys, 1 explicit hash keys)",
		},
		{
			name: "varint longer than 64 bits",
			body: "0A0161 1A FFFFFFFFFFFFFFFFFF7F",
			msg:  "byte 8: varint is longer than 64 bits",
		},
		{
			name: "truncated varint",
			body: "0A0161 1A80",
			msg:  "byte 8: varint is truncated at the end of its message",
		},
		{
			name: "truncated key",
			body: "0A0161 1A04 0800 1A00 80",
			msg:  "byte 13: varint is truncated at the end of its message",
		},
		{
			name: "length past the end",
			body: "0A0561",
			msg:  "byte 4: field 1 has length 5 but only 1 bytes are left in its message",
		},
		{
			name: "data length past the end of its record",
			body: "0A0161 1A05 0800 1A05 00",
			msg:  "records[0] (byte 7): byte 11: field 3 has length 5 but only 1 bytes are left in its message",
		},
		{
			name: "partition key index out of range",
			body: "0A0161 1A04 0805 1A00",
			msg:  "records[0] (byte 7): byte 9: partition key index 5 is out of range; the partition key table has 1 entries",
		},
		{
			name: "huge partition key index",
			body: "0A0161 1A0D 08FFFFFFFFFFFFFFFFFF01 1A00",
			msg:  "records[0] (byte 7): byte 9: partition key index 18446744073709551615 is out of range; the partition key table has 1 entries",
		},
		{
			name: "explicit hash key index out of range",
			body: "0A0161 1A06 0800 1000 1A00",
			msg:  "records[0] (byte 7): byte 11: explicit hash key index 0 is out of range; the explicit hash key table has 0 entries",
		},
		{
			name: "missing data",
			body: "0A0161 1A02 0800",
			msg:  "records[0] (byte 7): required field data (3) is missing (record ends at byte 11)",
		},
		{
			name: "missing partition key index",
			body: "0A0161 1A02 1A00",
			msg:  "records[0] (byte 7): required field partition_key_index (1) is missing (record ends at byte 11)",
		},
		{
			name: "error in the second record",
			body: "0A0161 1A04 0800 1A00 1A04 0801 1A00",
			msg:  "records[1] (byte 13): byte 15: partition key index 1 is out of range; the partition key table has 1 entries",
		},
		{
			name: "tag without key",
			body: "0A0161 1A08 0800 1A00 2202 1200",
			msg:  "records[0] (byte 7): tag at byte 13: required field key (1) is missing",
		},
		{
			name: "damaged tag",
			body: "0A0161 1A07 0800 1A00 2201 0A",
			msg:  "records[0] (byte 7): tag at byte 13: byte 16: varint is truncated at the end of its message",
		},
		{
			name: "group start",
			body: "0A0161 1A04 0800 1A00 0B",
			msg:  "byte 13: field 1 uses the group wire type 3, which is not supported",
		},
		{
			name: "group end in a record",
			body: "0A0161 1A05 0800 1A00 0C",
			msg:  "records[0] (byte 7): byte 13: field 1 uses the group wire type 4, which is not supported",
		},
		{
			name: "wire type 6",
			body: "0E",
			msg:  "byte 4: field 1 has invalid wire type 6",
		},
		{
			name: "wire type 7",
			body: "0A0161 1F",
			msg:  "byte 7: field 3 has invalid wire type 7",
		},
		{
			name: "field number 0",
			body: "0A0161 0200",
			msg:  "byte 7: invalid field number 0",
		},
		{
			name: "field number above 2^29-1",
			body: "0A0161 8080808010",
			msg:  "byte 7: invalid field number 536870912",
		},
		{
			name: "truncated fixed64",
			body: "0A0161 09 0102",
			msg:  "byte 7: fixed-size field needs 8 bytes but only 2 are left in its message",
		},
		{
			name: "truncated fixed32",
			body: "0A0161 1A04 0800 1A00 0D 01",
			msg:  "byte 13: fixed-size field needs 4 bytes but only 1 are left in its message",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq := SequenceNumber{counter: 12, shard: 4}
			urs, err := Deaggregate(Record{SequenceNumber: seq, Data: wrapAggregate(unhex(t, tc.body))})
			require.Error(t, err)
			assert.Nil(t, urs)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "Deaggregate", e.Op)
			assert.Equal(t, "aggregated record "+seq.String()+": "+tc.msg, e.Msg)
		})
	}
}

func TestDeaggregateAll(t *testing.T) {
	agg, err := Aggregate([]UserRecord{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}})
	require.NoError(t, err)
	damaged := wrapAggregate(unhex(t, "0A0161 1A02 0800"))
	seq := func(n uint64) SequenceNumber { return SequenceNumber{counter: n} }
	recs := []Record{
		{SequenceNumber: seq(1), PartitionKey: "p", Data: []byte("plain")},
		{SequenceNumber: seq(2), PartitionKey: "a", Data: agg},
		{SequenceNumber: seq(3), PartitionKey: "a", Data: damaged},
		{SequenceNumber: seq(4), PartitionKey: "q", Data: []byte("after")},
	}

	t.Run("all good", func(t *testing.T) {
		urs, err := DeaggregateAll(recs[:2])
		require.NoError(t, err)
		require.Len(t, urs, 3)
		var got []string
		for _, u := range urs {
			got = append(got, fmt.Sprintf("%s/%d/%s", fmt.Sprint(u.SequenceNumber.counter), u.SubSequenceNumber, u.Data))
		}
		assert.Equal(t, []string{"1/0/plain", "2/0/1", "2/1/2"}, got)
	})
	t.Run("stops at the first damaged record", func(t *testing.T) {
		urs, err := DeaggregateAll(recs)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrInvalidArgument)
		assert.Len(t, urs, 3, "the user records before the damaged record are returned")
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, "Deaggregate", e.Op)
		assert.True(t, strings.HasPrefix(e.Msg, "records[2]: aggregated record "+seq(3).String()+": "), e.Msg)
	})
	t.Run("empty", func(t *testing.T) {
		urs, err := DeaggregateAll(nil)
		require.NoError(t, err)
		assert.Empty(t, urs)
	})
}

func TestAggregateValidation(t *testing.T) {
	ok := UserRecord{PartitionKey: "ok", Data: []byte("d")}
	tests := []struct {
		name    string
		records []UserRecord
		msg     []string // parts of the message; none means valid
	}{
		{name: "nil", records: nil, msg: []string{"no records to aggregate; at least one is needed"}},
		{name: "empty", records: []UserRecord{}, msg: []string{"no records to aggregate; at least one is needed"}},
		{
			name:    "empty partition key",
			records: []UserRecord{ok, {PartitionKey: ""}},
			msg:     []string{"records[1]: ", "partition key is empty"},
		},
		{
			name:    "partition key of 257 characters",
			records: []UserRecord{ok, ok, {PartitionKey: strings.Repeat("é", 257)}},
			msg:     []string{"records[2]: ", "ééééé", "257 characters", "256"},
		},
		{
			name:    "partition key not UTF-8",
			records: []UserRecord{{PartitionKey: "a\xffb"}},
			msg:     []string{"records[0]: ", `"a\xffb"`, "not valid UTF-8"},
		},
		{
			name:    "explicit hash key not a number",
			records: []UserRecord{ok, {PartitionKey: "p", ExplicitHashKey: "12a"}},
			msg:     []string{`records[1]: ExplicitHashKey "12a" is not a decimal integer`},
		},
		{
			name:    "explicit hash key with leading zero",
			records: []UserRecord{{PartitionKey: "p", ExplicitHashKey: "012"}},
			msg:     []string{`records[0]: ExplicitHashKey "012" has a leading zero`},
		},
		{
			name:    "explicit hash key 2^128",
			records: []UserRecord{{PartitionKey: "p", ExplicitHashKey: "340282366920938463463374607431768211456"}},
			msg:     []string{"records[0]: ExplicitHashKey ", "340282366920938463463374607431768211456 is above the maximum"},
		},
		{
			name:    "explicit hash key of 40 digits",
			records: []UserRecord{{PartitionKey: "p", ExplicitHashKey: strings.Repeat("1", 40)}},
			msg:     []string{"records[0]: ExplicitHashKey ", "has 40 digits; the limit is 39"},
		},
		{name: "256 two-byte characters", records: []UserRecord{{PartitionKey: strings.Repeat("é", 256)}}},
		{name: "256 four-byte characters", records: []UserRecord{{PartitionKey: strings.Repeat("🙂", 256)}}},
		{name: "explicit hash key 0", records: []UserRecord{{PartitionKey: "p", ExplicitHashKey: "0"}}},
		{name: "explicit hash key 2^128-1", records: []UserRecord{{PartitionKey: "p", ExplicitHashKey: MaxHashKey().String()}}},
		{name: "nil data", records: []UserRecord{{PartitionKey: "p"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Aggregate(tc.records)
			if len(tc.msg) == 0 {
				require.NoError(t, err)
				assert.NotEmpty(t, data)
				return
			}
			require.Error(t, err)
			assert.Nil(t, data)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "Aggregate", e.Op)
			assert.True(t, strings.HasPrefix(e.Msg, tc.msg[0]), "message %q starts with %q", e.Msg, tc.msg[0])
			for _, part := range tc.msg[1:] {
				assert.Contains(t, e.Msg, part)
			}
		})
	}
}

// aggAdd is one add call on an aggregator.
type aggAdd struct {
	pk, ehk, id string
	dataLen     int
}

func TestAggregatorSizeIsExact(t *testing.T) {
	key := func(n int) string { return strings.Repeat("k", n) }
	var many []aggAdd
	for i := range 300 { // key indexes cross 127/128 and need two-byte varints
		many = append(many, aggAdd{pk: fmt.Sprint("pk", i), ehk: fmt.Sprint(i), id: fmt.Sprint(i % 3), dataLen: i % 7})
	}
	var recordLens, idLens []aggAdd
	for n := 115; n < 135; n++ { // record lengths cross 127/128
		recordLens = append(recordLens, aggAdd{pk: "p", dataLen: n})
	}
	for n := 80; n < 115; n++ { // tag and record lengths cross 127/128
		idLens = append(idLens, aggAdd{pk: "p", id: key(n), dataLen: 1})
	}
	tests := []struct {
		name string
		adds []aggAdd
	}{
		{"single empty record", []aggAdd{{pk: "a"}}},
		{"shared keys", []aggAdd{{"a", "", "", 1}, {"a", "", "", 2}, {"b", "7", "", 3}, {"a", "7", "", 0}, {"b", "", "", 5}}},
		{"data of 127 and 128 bytes", []aggAdd{{"a", "", "", 127}, {"a", "", "", 128}, {"b", "1", "", 127}, {"b", "1", "", 128}}},
		{"data of 16383 and 16384 bytes", []aggAdd{{"a", "", "", 16383}, {"a", "", "", 16384}, {"a", "9", "", 16383}, {"c", "9", "x", 16384}}},
		{"data of 2097151 and 2097152 bytes", []aggAdd{{"a", "", "", 2097151}, {"a", "", "id", 2097152}}},
		{"keys of 127 and 128 bytes", []aggAdd{{key(127), key(127), "", 1}, {key(128), key(128), "", 1}, {key(256), "", "", 0}}},
		{"record lengths around 128", recordLens},
		{"record ids of 80 to 114 bytes", idLens},
		{"300 distinct keys", many},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a aggregator
			assert.Equal(t, 20, a.size())
			want := make([]UserRecord, 0, len(tc.adds))
			for i, ad := range tc.adds {
				data := bytes.Repeat([]byte{byte(i)}, ad.dataLen)
				predicted := a.sizeWith(ad.pk, ad.ehk, ad.id, len(data))
				before := a.size()
				a.add(ad.pk, ad.ehk, ad.id, data)
				require.Equal(t, predicted, a.size(), "add %d: sizeWith predicted %d, size is %d", i, predicted, a.size())
				require.Greater(t, a.size(), before)
				assert.Equal(t, i+1, a.len())
				want = append(want, UserRecord{PartitionKey: ad.pk, ExplicitHashKey: ad.ehk, RecordID: ad.id, Data: data})
			}
			enc := a.encode()
			require.Equal(t, a.size(), len(enc))
			require.Equal(t, a.size(), cap(enc), "encode allocates exactly")
			urs, err := Deaggregate(Record{Data: enc})
			require.NoError(t, err)
			assertUserRecords(t, want, urs, SequenceNumber{}, time.Time{})

			// encode does not disturb the aggregator; reset empties it and a
			// reused aggregator encodes like a fresh one.
			assert.Equal(t, enc, a.encode())
			a.reset()
			assert.Equal(t, 0, a.len())
			assert.Equal(t, 20, a.size())
			var fresh aggregator
			for i, ad := range tc.adds[:min(len(tc.adds), 3)] {
				data := bytes.Repeat([]byte{byte(i)}, ad.dataLen)
				a.add(ad.pk, ad.ehk, ad.id, data)
				fresh.add(ad.pk, ad.ehk, ad.id, data)
			}
			assert.Equal(t, fresh.encode(), a.encode())
		})
	}
}

func TestAggregatorSizeIsExactRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var a aggregator
	for round := range 5 {
		recs := randomUserRecords(rng, 400, 300)
		for i, r := range recs {
			predicted := a.sizeWith(r.PartitionKey, r.ExplicitHashKey, r.RecordID, len(r.Data))
			a.add(r.PartitionKey, r.ExplicitHashKey, r.RecordID, r.Data)
			require.Equal(t, predicted, a.size(), "round %d, add %d", round, i)
			if i%50 == 0 {
				require.Len(t, a.encode(), a.size(), "round %d, add %d", round, i)
			}
		}
		want, err := Aggregate(recs)
		require.NoError(t, err)
		assert.Equal(t, want, a.encode(), "Aggregate and the aggregator agree")
		a.reset()
	}
}

func TestAggregatorEmpty(t *testing.T) {
	var a aggregator
	sum := md5.Sum(nil)
	want := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, sum[:]...)
	assert.Equal(t, want, a.encode())
	assert.Equal(t, 0, a.len())
}

func TestAggregateDoesNotRetainInput(t *testing.T) {
	recs := []UserRecord{{PartitionKey: "a", Data: []byte("abc")}, {PartitionKey: "b", Data: []byte("def")}}
	data, err := Aggregate(recs)
	require.NoError(t, err)
	want := bytes.Clone(data)
	recs[0].Data[0] = 'X'
	assert.Equal(t, want, data)
}

func BenchmarkAggregate(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]UserRecord, 100)
	total := 0
	for i := range recs {
		recs[i].PartitionKey = fmt.Sprintf("partition-key-%d", rng.IntN(1000))
		recs[i].Data = make([]byte, 100)
		for j := range recs[i].Data {
			recs[i].Data[j] = byte(rng.Uint32())
		}
		total += len(recs[i].Data)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		var err error
		if out, err = Aggregate(recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(out)), "aggregate-bytes")
}

func BenchmarkAggregatorReuse(b *testing.B) {
	data := bytes.Repeat([]byte("x"), 100)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("partition-key-%d", i%37)
	}
	b.SetBytes(int64(len(data) * len(keys)))
	b.ReportAllocs()
	var a aggregator
	for b.Loop() {
		a.reset()
		for _, k := range keys {
			a.add(k, "", "", data)
		}
		_ = a.encode()
	}
}

func BenchmarkDeaggregate(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := randomUserRecords(rng, 100, 200)
	data, err := Aggregate(recs)
	require.NoError(b, err)
	in := Record{SequenceNumber: SequenceNumber{counter: 1}, PartitionKey: "a", Data: data}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Deaggregate(in); err != nil {
			b.Fatal(err)
		}
	}
}
