package runnel

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// This file implements the KPL aggregated-record format, as the KPL writes it
// and the KCL reads it:
//
//	magic F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf
//
// with a hand-written protobuf encoder and decoder. Only two wire types occur
// in the format: varint (0) and length-delimited (2).
//
//	AggregatedRecord: 1 partition_key_table (repeated string)
//	                  2 explicit_hash_key_table (repeated string)
//	                  3 records (repeated Record)
//	Record:           1 partition_key_index (uint64, required)
//	                  2 explicit_hash_key_index (uint64, optional)
//	                  3 data (bytes, required)
//	                  4 tags (repeated Tag)
//	Tag:              1 key (string, required)
//	                  2 value (string, optional)
//
// runnel writes one tag, RecordIDTag, and only for records that have an id.

// aggMagic starts the Data of every aggregated record.
var aggMagic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// aggOverhead is the size of an aggregate without its protobuf: magic and digest.
const aggOverhead = len(aggMagic) + md5.Size

// Protobuf field keys (field number << 3 | wire type) used by the encoder.
const (
	pbKeyPKTable  = 1<<3 | pbLen    // AggregatedRecord.partition_key_table
	pbKeyEHKTable = 2<<3 | pbLen    // AggregatedRecord.explicit_hash_key_table
	pbKeyRecord   = 3<<3 | pbLen    // AggregatedRecord.records
	pbKeyPKIndex  = 1<<3 | pbVarint // Record.partition_key_index
	pbKeyEHKIndex = 2<<3 | pbVarint // Record.explicit_hash_key_index
	pbKeyData     = 3<<3 | pbLen    // Record.data
	pbKeyTag      = 4<<3 | pbLen    // Record.tags
	pbKeyTagKey   = 1<<3 | pbLen    // Tag.key
	pbKeyTagValue = 2<<3 | pbLen    // Tag.value
)

// RecordIDTag is the key of the tag that carries a user record's RecordID in
// an aggregate (see WithRecordIDs). AWS's deaggregators ignore tags, so
// aggregates with ids stay readable by them.
const RecordIDTag = "runnel-record-id"

// Protobuf wire types.
const (
	pbVarint  = 0
	pbFixed64 = 1
	pbLen     = 2
	pbGroupS  = 3
	pbGroupE  = 4
	pbFixed32 = 5
)

// UserRecord is one record as a producer put it, before aggregation or after
// deaggregation: several user records travel in one Kinesis record when they
// are aggregated in the KPL format.
//
// A UserRecord returned by Deaggregate shares Data with the Kinesis record it
// came from: Data is read-only. UserRecord is a plain value; copying it is
// cheap and does not copy Data.
type UserRecord struct {
	// PartitionKey is the user record's own partition key (for a plain record,
	// the Kinesis record's key).
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key in decimal, or ""
	// if it has none. Deaggregate returns "" for plain records, since GetRecords
	// does not report a record's explicit hash key.
	ExplicitHashKey string
	// Data is the user record's payload. Aggregate only reads it; from
	// Deaggregate it aliases the Kinesis record's Data and is read-only.
	Data []byte
	// RecordID is the id a runnel producer gave the user record (see
	// WithRecordIDs), or "". Aggregate writes a non-empty RecordID as a tag
	// with key RecordIDTag; Deaggregate reads it back from that tag.
	RecordID string
	// SequenceNumber is the sequence number of the Kinesis record that carried
	// the user record; set by Deaggregate, ignored by Aggregate. All user
	// records of one aggregate share it.
	SequenceNumber SequenceNumber
	// SubSequenceNumber is the user record's index in the aggregate (0 for a
	// plain record). (SequenceNumber, SubSequenceNumber) identifies a user
	// record and is what a consumer checkpoints, as the KCL does.
	SubSequenceNumber int
	// Aggregated reports whether the user record came out of an aggregate
	// (true) or is a plain Kinesis record passed through (false).
	Aggregated bool
	// ApproximateArrivalTimestamp is the arrival time of the Kinesis record
	// that carried the user record; set by Deaggregate, ignored by Aggregate.
	ApproximateArrivalTimestamp time.Time
}

// HashKey returns the hash key that routes the user record: its
// ExplicitHashKey if it has one, else the MD5 of its partition key. A
// consumer that drops the user records of an aggregate that lie outside
// its shard's HashKeyRange, as the KCL does, compares this key with the
// range: after a split a producer may store an aggregate in a shard that
// does not own all its records, and then sends those records again (the
// Producer does). A malformed ExplicitHashKey gives its parse error.
func (u UserRecord) HashKey() (HashKey, error) {
	if u.ExplicitHashKey == "" {
		return HashKeyOf(u.PartitionKey), nil
	}
	return ParseHashKey(u.ExplicitHashKey)
}

// Aggregate encodes records into the Data of one Kinesis record in the KPL
// aggregated-record format, byte for byte as the KPL does: the magic bytes, an
// AggregatedRecord protobuf, and the MD5 digest of the protobuf. Partition
// keys and explicit hash keys are stored once each, in the order they are
// first seen. Only PartitionKey, ExplicitHashKey, Data and RecordID are
// encoded; the only tag written is RecordIDTag, for a non-empty RecordID, so
// records without ids are encoded exactly as the KPL encodes them.
//
// Every record needs a partition key of 1 to 256 Unicode characters in valid
// UTF-8, and an ExplicitHashKey that is "" or a decimal hash key as
// ParseHashKey accepts it. At least one record is required. A violation is an
// *Error wrapping ErrInvalidArgument that names the record's index.
//
// Aggregate encodes a single record too, although producers send a batch of
// one as a plain record (with no magic and no digest); that choice is the
// producer's. Aggregate does not enforce Kinesis's 1 MiB record limit, nor
// that the records map to one shard: the caller sends the result with a
// partition key or explicit hash key that routes it to the shard of its user
// records.
//
// The returned slice is newly allocated; records is not retained. Aggregate
// is safe for concurrent use.
func Aggregate(records []UserRecord) ([]byte, error) {
	const op = "Aggregate"
	if len(records) == 0 {
		return nil, errorf(op, ErrInvalidArgument, "no records to aggregate; at least one is needed")
	}
	dataLen, keyLen := 0, 0
	for i := range records {
		r := &records[i]
		if err := checkUserRecord(op, i, r); err != nil {
			return nil, err
		}
		dataLen += len(r.Data)
		if r.RecordID != "" {
			dataLen += len(RecordIDTag) + len(r.RecordID) + 8
		}
		keyLen += len(r.PartitionKey)
	}
	// Size the buffers for the common case (one-byte indexes and lengths
	// under 16 KiB); append grows them when that is not enough.
	a := aggregator{
		pkIndex: make(map[string]int, len(records)),
		pkTable: make([]byte, 0, keyLen+3*len(records)),
		recs:    make([]byte, 0, dataLen+7*len(records)),
	}
	for i := range records {
		r := &records[i]
		a.add(r.PartitionKey, r.ExplicitHashKey, r.RecordID, r.Data)
	}
	return a.encode(), nil
}

// checkUserRecord validates the keys of records[i] for Aggregate with the
// same rules as PutRecord, but reports ErrInvalidArgument.
func checkUserRecord(op string, i int, r *UserRecord) *Error {
	if _, e := checkRecord(op, r.PartitionKey, r.ExplicitHashKey, len(r.Data), math.MaxInt, false); e != nil {
		return errorf(op, ErrInvalidArgument, "records[%d]: %s", i, e.Msg)
	}
	return nil
}

// Deaggregate returns the user records that the Kinesis record r carries.
//
// If r.Data is not an aggregate (it does not start with the magic bytes, is
// too short to hold them and a digest, or its MD5 digest does not match),
// Deaggregate returns r itself as one user record with Aggregated false, as
// AWS's deaggregators do. Otherwise it returns every user record of the
// aggregate in order, each with r's SequenceNumber and
// ApproximateArrivalTimestamp, SubSequenceNumber set to its index, Aggregated
// true, its own partition key and explicit hash key ("" if it has none), and
// its RecordID if it has a RecordIDTag tag. Keys are returned as the producer
// stored them, without Aggregate's validation, so that whatever another
// producer wrote can be read.
//
// An aggregate whose digest matches but whose content is damaged — a protobuf
// that does not decode, a key index outside its table, a missing data or
// partition key index field, a tag without a key — gives an *Error wrapping
// ErrInvalidArgument that says what is wrong, in which user record and at
// which byte offset of r.Data; no user record is returned then, so none is
// lost silently. An aggregate that holds no user records is an error too,
// since its record would otherwise vanish without a trace (AWS's
// deaggregators return nothing for it). Unknown fields are skipped as
// protobuf requires, except groups (wire types 3 and 4), which are rejected;
// tags other than RecordIDTag are checked and dropped.
//
// The returned user records' Data alias r.Data and are read-only; their keys
// are copies. Deaggregate is safe for concurrent use.
func Deaggregate(r Record) ([]UserRecord, error) {
	body, ok := aggBody(r.Data)
	if !ok {
		return []UserRecord{{
			PartitionKey:                r.PartitionKey,
			Data:                        r.Data,
			SequenceNumber:              r.SequenceNumber,
			ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp,
		}}, nil
	}
	out, err := appendAggregate(nil, body, r.SequenceNumber, r.ApproximateArrivalTimestamp)
	if err != nil {
		where := "aggregated record"
		if !r.SequenceNumber.IsZero() {
			where += " " + r.SequenceNumber.String()
		}
		return nil, errorf("Deaggregate", ErrInvalidArgument, "%s: %v", where, err)
	}
	return out, nil
}

// DeaggregateAll deaggregates records in order and returns all their user
// records in one slice. It stops at the first record that fails to
// deaggregate and returns the user records of the records before it together
// with the error, which names the failed record's index in records; a caller
// can process what it got, then skip or stop. Data of the returned user
// records alias the records' Data and are read-only. DeaggregateAll is safe
// for concurrent use.
func DeaggregateAll(records []Record) ([]UserRecord, error) {
	out := make([]UserRecord, 0, len(records))
	for i := range records {
		urs, err := Deaggregate(records[i])
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				return out, &Error{Op: e.Op, Kind: e.Kind, Msg: fmt.Sprintf("records[%d]: %s", i, e.Msg)}
			}
			return out, err
		}
		out = append(out, urs...)
	}
	return out, nil
}

// aggBody returns the protobuf of an aggregate and true, or false if data is
// not an aggregate.
func aggBody(data []byte) ([]byte, bool) {
	if len(data) < aggOverhead || !bytes.HasPrefix(data, aggMagic[:]) {
		return nil, false
	}
	body := data[len(aggMagic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, false
	}
	return body, true
}

// appendAggregate decodes an AggregatedRecord protobuf and appends its user
// records to dst. On error it returns dst unchanged. Offsets in its errors
// count from the start of the record's Data (the magic).
func appendAggregate(dst []UserRecord, body []byte, seq SequenceNumber, arrival time.Time) ([]UserRecord, error) {
	// Fields may come in any order, so the first pass checks the message
	// and counts, the second copies the key tables, the third decodes the
	// records. All keys share one allocation.
	var n, npk, nehk, keyBytes int
	s := pbScanner{b: body, base: len(aggMagic)}
	for {
		f, ok, err := s.next()
		if err != nil {
			return dst, err
		}
		if !ok {
			break
		}
		if f.typ != pbLen {
			continue // unknown field, or a known one with another wire type
		}
		switch f.num {
		case 1:
			npk++
			keyBytes += len(f.data)
		case 2:
			nehk++
			keyBytes += len(f.data)
		case 3:
			n++
		}
	}
	if n == 0 {
		return dst, fmt.Errorf("aggregate holds no records (%d partition keys, %d explicit hash keys)", npk, nehk)
	}

	keys := make([]string, npk+nehk)
	pks, ehks := keys[:0:npk], keys[npk:npk]
	var sb strings.Builder
	sb.Grow(keyBytes)
	s = pbScanner{b: body, base: len(aggMagic)}
	for {
		f, ok, _ := s.next() // the first pass found no error
		if !ok {
			break
		}
		if f.typ != pbLen || (f.num != 1 && f.num != 2) {
			continue
		}
		start := sb.Len()
		sb.Write(f.data)
		key := sb.String()[start:] // sb only appends: earlier keys stay intact
		if f.num == 1 {
			pks = append(pks, key)
		} else {
			ehks = append(ehks, key)
		}
	}

	out := slices.Grow(dst, n)
	s = pbScanner{b: body, base: len(aggMagic)}
	for {
		f, ok, _ := s.next()
		if !ok {
			break
		}
		if f.num != 3 || f.typ != pbLen {
			continue
		}
		i := len(out) - len(dst)
		u, err := decodeUserRecord(f, pks, ehks)
		if err != nil {
			return dst, fmt.Errorf("records[%d] (byte %d): %w", i, f.off, err)
		}
		u.SequenceNumber = seq
		u.SubSequenceNumber = i
		u.Aggregated = true
		u.ApproximateArrivalTimestamp = arrival
		out = append(out, u)
	}
	return out, nil
}

// decodeUserRecord decodes the Record message in f and resolves its keys.
func decodeUserRecord(f pbField, pks, ehks []string) (UserRecord, error) {
	var (
		u             UserRecord
		pki, ehki     uint64
		hasPK, hasEHK bool
		hasData       bool
		pkOff, ehkOff int
		end           = f.dataOff + len(f.data)
	)
	s := pbScanner{b: f.data, base: f.dataOff}
	for {
		g, ok, err := s.next()
		if err != nil {
			return u, err
		}
		if !ok {
			break
		}
		switch {
		case g.num == 1 && g.typ == pbVarint:
			pki, hasPK, pkOff = g.val, true, g.off
		case g.num == 2 && g.typ == pbVarint:
			ehki, hasEHK, ehkOff = g.val, true, g.off
		case g.num == 3 && g.typ == pbLen:
			u.Data, hasData = g.data, true
		case g.num == 4 && g.typ == pbLen:
			key, value, err := decodeTag(g)
			if err != nil {
				return u, err
			}
			if key == RecordIDTag {
				u.RecordID = value
			}
		}
	}
	switch {
	case !hasPK:
		return u, fmt.Errorf("required field partition_key_index (1) is missing (record ends at byte %d)", end)
	case !hasData:
		return u, fmt.Errorf("required field data (3) is missing (record ends at byte %d)", end)
	case pki >= uint64(len(pks)):
		return u, fmt.Errorf("byte %d: partition key index %d is out of range; the partition key table has %d entries", pkOff, pki, len(pks))
	case hasEHK && ehki >= uint64(len(ehks)):
		return u, fmt.Errorf("byte %d: explicit hash key index %d is out of range; the explicit hash key table has %d entries", ehkOff, ehki, len(ehks))
	}
	u.PartitionKey = pks[pki]
	if hasEHK {
		u.ExplicitHashKey = ehks[ehki]
	}
	if u.Data == nil {
		u.Data = []byte{} // present but empty: tell it apart from nothing
	}
	return u, nil
}

// decodeTag decodes the Tag message in f; its key (field 1) is required. It
// returns the key and value of a RecordIDTag tag, and "", "" for any other.
func decodeTag(f pbField) (key, value string, err error) {
	s := pbScanner{b: f.data, base: f.dataOff}
	var k, v []byte
	hasKey := false
	for {
		g, ok, err := s.next()
		if err != nil {
			return "", "", fmt.Errorf("tag at byte %d: %w", f.off, err)
		}
		if !ok {
			break
		}
		switch {
		case g.num == 1 && g.typ == pbLen:
			k, hasKey = g.data, true
		case g.num == 2 && g.typ == pbLen:
			v = g.data
		}
	}
	if !hasKey {
		return "", "", fmt.Errorf("tag at byte %d: required field key (1) is missing", f.off)
	}
	if string(k) != RecordIDTag { // no allocation for the comparison
		return "", "", nil
	}
	return RecordIDTag, string(v), nil
}

// pbField is one field of a protobuf message.
type pbField struct {
	num     uint64 // field number
	typ     int    // wire type
	val     uint64 // value of a varint field
	data    []byte // payload of a length-delimited field (aliases the input)
	off     int    // offset of the field's key in the record's Data
	dataOff int    // offset of data in the record's Data
}

// pbScanner reads the fields of one protobuf message.
type pbScanner struct {
	b    []byte // the message
	pos  int    // next byte to read in b
	base int    // offset of b[0] in the record's Data, for error messages
}

// maxFieldNumber is the largest field number protobuf allows.
const maxFieldNumber = 1<<29 - 1

// next returns the next field and true, or false at the end of the message,
// or an error that says what is malformed and at which byte.
func (s *pbScanner) next() (pbField, bool, error) {
	if s.pos >= len(s.b) {
		return pbField{}, false, nil
	}
	f := pbField{off: s.base + s.pos}
	key, err := s.varint()
	if err != nil {
		return f, false, err
	}
	f.num, f.typ = key>>3, int(key&7)
	if f.num == 0 || f.num > maxFieldNumber {
		return f, false, fmt.Errorf("byte %d: invalid field number %d", f.off, f.num)
	}
	switch f.typ {
	case pbVarint:
		f.val, err = s.varint()
	case pbFixed64:
		err = s.skip(f.off, 8)
	case pbFixed32:
		err = s.skip(f.off, 4)
	case pbLen:
		var n uint64
		if n, err = s.varint(); err == nil {
			if left := len(s.b) - s.pos; n > uint64(left) {
				err = fmt.Errorf("byte %d: field %d has length %d but only %d bytes are left in its message", f.off, f.num, n, left)
			} else {
				f.dataOff = s.base + s.pos
				f.data = s.b[s.pos : s.pos+int(n) : s.pos+int(n)]
				s.pos += int(n)
			}
		}
	case pbGroupS, pbGroupE:
		err = fmt.Errorf("byte %d: field %d uses the group wire type %d, which is not supported", f.off, f.num, f.typ)
	default:
		err = fmt.Errorf("byte %d: field %d has invalid wire type %d", f.off, f.num, f.typ)
	}
	if err != nil {
		return f, false, err
	}
	return f, true, nil
}

// varint reads a base-128 varint of at most 10 bytes.
func (s *pbScanner) varint() (uint64, error) {
	v, n := binary.Uvarint(s.b[s.pos:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("byte %d: varint is truncated at the end of its message", s.base+s.pos)
	case n < 0:
		return 0, fmt.Errorf("byte %d: varint is longer than 64 bits", s.base+s.pos)
	}
	s.pos += n
	return v, nil
}

// skip passes over a fixed-size value of n bytes of the field at off.
func (s *pbScanner) skip(off, n int) error {
	if left := len(s.b) - s.pos; left < n {
		return fmt.Errorf("byte %d: fixed-size field needs %d bytes but only %d are left in its message", off, n, left)
	}
	s.pos += n
	return nil
}

// aggregator builds one aggregate incrementally, for the producer: add
// records while sizeWith stays under the limit, then encode and reset. The
// three repeated fields of AggregatedRecord are kept already encoded in three
// buffers, which encode concatenates in field order as protobuf serializers
// (and so the KPL) write them. The zero value is an empty aggregator. An
// aggregator is not safe for concurrent use.
type aggregator struct {
	pkIndex  map[string]int // partition key → index in the table
	ehkIndex map[string]int // explicit hash key → index in the table
	pkTable  []byte         // encoded field 1 entries
	ehkTable []byte         // encoded field 2 entries
	recs     []byte         // encoded field 3 entries
	n        int            // records added
}

// add appends a user record. It does not validate the keys (the caller has);
// ehk "" means no explicit hash key, id "" no RecordIDTag tag. add copies
// data.
func (a *aggregator) add(pk, ehk, id string, data []byte) {
	pki, ok := a.pkIndex[pk]
	if !ok {
		if a.pkIndex == nil {
			a.pkIndex = make(map[string]int)
		}
		pki = len(a.pkIndex)
		a.pkIndex[pk] = pki
		a.pkTable = appendPBString(a.pkTable, pbKeyPKTable, pk)
	}
	ehki := -1
	if ehk != "" {
		if ehki, ok = a.ehkIndex[ehk]; !ok {
			if a.ehkIndex == nil {
				a.ehkIndex = make(map[string]int)
			}
			ehki = len(a.ehkIndex)
			a.ehkIndex[ehk] = ehki
			a.ehkTable = appendPBString(a.ehkTable, pbKeyEHKTable, ehk)
		}
	}
	b := append(a.recs, pbKeyRecord)
	b = binary.AppendUvarint(b, uint64(recordSize(pki, ehki, len(id), len(data))))
	b = append(b, pbKeyPKIndex)
	b = binary.AppendUvarint(b, uint64(pki))
	if ehki >= 0 {
		b = append(b, pbKeyEHKIndex)
		b = binary.AppendUvarint(b, uint64(ehki))
	}
	b = append(b, pbKeyData)
	b = binary.AppendUvarint(b, uint64(len(data)))
	b = append(b, data...)
	if id != "" {
		b = append(b, pbKeyTag)
		b = binary.AppendUvarint(b, uint64(idTagSize(len(id))))
		b = appendPBString(b, pbKeyTagKey, RecordIDTag)
		b = appendPBString(b, pbKeyTagValue, id)
	}
	a.recs = b
	a.n++
}

// sizeWith returns the exact size in bytes that encode would return after
// add(pk, ehk, id, data) with len(data) == dataLen, without adding anything.
func (a *aggregator) sizeWith(pk, ehk, id string, dataLen int) int {
	n := a.size()
	pki, ok := a.pkIndex[pk]
	if !ok {
		pki = len(a.pkIndex)
		n += 1 + uvarintLen(uint64(len(pk))) + len(pk)
	}
	ehki := -1
	if ehk != "" {
		if ehki, ok = a.ehkIndex[ehk]; !ok {
			ehki = len(a.ehkIndex)
			n += 1 + uvarintLen(uint64(len(ehk))) + len(ehk)
		}
	}
	rec := recordSize(pki, ehki, len(id), dataLen)
	return n + 1 + uvarintLen(uint64(rec)) + rec
}

// len returns the number of records added.
func (a *aggregator) len() int { return a.n }

// size returns the exact size in bytes that encode would return now.
func (a *aggregator) size() int {
	return aggOverhead + len(a.pkTable) + len(a.ehkTable) + len(a.recs)
}

// encode returns the aggregate in a new slice of exactly size() bytes. The
// aggregator is unchanged.
func (a *aggregator) encode() []byte {
	return a.appendTo(make([]byte, 0, a.size()))
}

// appendTo appends the aggregate to dst and returns the extended slice.
func (a *aggregator) appendTo(dst []byte) []byte {
	dst = slices.Grow(dst, a.size())
	start := len(dst)
	out := append(dst, aggMagic[:]...)
	out = append(out, a.pkTable...)
	out = append(out, a.ehkTable...)
	out = append(out, a.recs...)
	sum := md5.Sum(out[start+len(aggMagic):])
	return append(out, sum[:]...)
}

// reset empties the aggregator and keeps its memory for the next aggregate.
func (a *aggregator) reset() {
	clear(a.pkIndex)
	clear(a.ehkIndex)
	a.pkTable = a.pkTable[:0]
	a.ehkTable = a.ehkTable[:0]
	a.recs = a.recs[:0]
	a.n = 0
}

// recordSize returns the size of an encoded Record message (without its own
// key and length); ehki < 0 means no explicit hash key, idLen 0 no id tag.
func recordSize(pki, ehki, idLen, dataLen int) int {
	n := 1 + uvarintLen(uint64(pki)) + 1 + uvarintLen(uint64(dataLen)) + dataLen
	if ehki >= 0 {
		n += 1 + uvarintLen(uint64(ehki))
	}
	if idLen > 0 {
		t := idTagSize(idLen)
		n += 1 + uvarintLen(uint64(t)) + t
	}
	return n
}

// idTagSize returns the size of an encoded Tag message holding RecordIDTag
// and an id of idLen bytes (without its own key and length).
func idTagSize(idLen int) int {
	return 1 + uvarintLen(uint64(len(RecordIDTag))) + len(RecordIDTag) + 1 + uvarintLen(uint64(idLen)) + idLen
}

// appendPBString appends a length-delimited field with a one-byte key.
func appendPBString(b []byte, key byte, s string) []byte {
	b = append(b, key)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// uvarintLen returns the number of bytes of x as a base-128 varint.
func uvarintLen(x uint64) int {
	return (bits.Len64(x|1) + 6) / 7
}
