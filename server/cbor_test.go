package server_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel/server/servertest"
)

// cborCall sends a CBOR request as the Java SDK v2 does (content type
// application/x-amz-cbor-1.1) and decodes the CBOR response into out.
func cborCall(t *testing.T, srv *servertest.Server, op string, in, out any) int {
	t.Helper()
	body, err := cbor.Marshal(in)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("Content-Type", "application/x-amz-cbor-1.1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/x-amz-cbor-1.1", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, cbor.Unmarshal(b, out), "%x", b)
	return resp.StatusCode
}

// TestCBOR drives the CBOR protocol with requests of the Java SDK's shape:
// data as byte strings, timestamps as tag 1 with epoch milliseconds; the
// responses carry the same encodings, and errors are CBOR too.
func TestCBOR(t *testing.T) {
	srv := servertest.New(t)
	var empty map[string]any
	require.Equal(t, 200, cborCall(t, srv, "CreateStream", map[string]any{"StreamName": "java", "ShardCount": 1}, &empty))

	data := []byte{0, 1, 2, 0xff}
	var put struct{ ShardId, SequenceNumber, EncryptionType string }
	require.Equal(t, 200, cborCall(t, srv, "PutRecord", map[string]any{"StreamName": "java", "PartitionKey": "k", "Data": data}, &put))
	assert.Equal(t, "shardId-000000000000", put.ShardId)

	before := time.Now().Add(-time.Minute)
	var it struct{ ShardIterator string }
	require.Equal(t, 200, cborCall(t, srv, "GetShardIterator", map[string]any{
		"StreamName": "java", "ShardId": put.ShardId, "ShardIteratorType": "AT_TIMESTAMP",
		"Timestamp": cbor.Tag{Number: 1, Content: before.UnixMilli()},
	}, &it))

	var recs struct {
		Records []struct {
			SequenceNumber              string
			ApproximateArrivalTimestamp cbor.RawTag
			Data                        []byte
			PartitionKey                string
			EncryptionType              string
		}
		NextShardIterator  string
		MillisBehindLatest int64
	}
	require.Equal(t, 200, cborCall(t, srv, "GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, &recs))
	require.Len(t, recs.Records, 1)
	r := recs.Records[0]
	assert.Equal(t, data, r.Data, "data as a byte string")
	assert.Equal(t, put.SequenceNumber, r.SequenceNumber)
	assert.EqualValues(t, 1, r.ApproximateArrivalTimestamp.Number, "timestamps carry tag 1")
	var ms int64
	require.NoError(t, cbor.Unmarshal(r.ApproximateArrivalTimestamp.Content, &ms))
	assert.WithinDuration(t, time.Now(), time.UnixMilli(ms), time.Minute, "epoch milliseconds")

	var e struct {
		Type    string `cbor:"__type"`
		Message string `cbor:"message"`
	}
	assert.Equal(t, 400, cborCall(t, srv, "DescribeStreamSummary", map[string]any{"StreamName": "missing"}, &e))
	assert.Equal(t, "ResourceNotFoundException", e.Type)
	assert.Contains(t, e.Message, "missing")
	assert.Equal(t, 400, cborCall(t, srv, "PutRecord", map[string]any{"StreamName": "java", "PartitionKey": "k", "Data": "text, not bytes"}, &e))
	assert.Equal(t, "SerializationException", e.Type)
	assert.Equal(t, 400, cborCall(t, srv, "ListStreams", map[string]any{"Limitt": 1}, &e))
	assert.Equal(t, "SerializationException", e.Type, "unknown fields are refused in CBOR too")
}
