package server

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/runnel-go/runnel"
)

// FuzzServeHTTP sends arbitrary bodies, as JSON or as CBOR, to every
// operation of a server with one stream: the server never panics, and
// every answer is either a success or an error body of the table.
func FuzzServeHTTP(f *testing.F) {
	names := make([]string, 0, len(operations))
	for name := range operations {
		names = append(names, name)
	}
	slices.Sort(names)
	for i := range names {
		f.Add(uint8(i), `{}`)
		f.Add(uint8(i), `{"StreamName":"s"}`)
		b, _ := cbor.Marshal(map[string]any{"StreamName": "s", "ShardId": "shardId-000000000000", "Data": []byte{1}, "PartitionKey": "k",
			"Timestamp": cbor.Tag{Number: 1, Content: 1700000000000}, "ShardIteratorType": "AT_TIMESTAMP"})
		f.Add(uint8(i)|0x80, string(b))
	}
	f.Add(uint8(slices.Index(names, "PutRecord")), `{"StreamName":"s","PartitionKey":"k","Data":"AAEC"}`)
	f.Add(uint8(slices.Index(names, "PutRecords")), `{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"AAEC"},{"PartitionKey":"","Data":null}]}`)
	f.Add(uint8(slices.Index(names, "GetShardIterator")), `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1.7e9}`)
	f.Add(uint8(slices.Index(names, "GetRecords")), `{"ShardIterator":"AQID","Limit":-1}`)
	f.Add(uint8(slices.Index(names, "ListShards")), `{"NextToken":"x","MaxResults":0,"ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":-1e300}}`)
	f.Add(uint8(slices.Index(names, "CreateStream")), `{"StreamName":"t","ShardCount":100000000}`)
	c := runnel.NewCluster()
	f.Cleanup(func() { c.Close() })
	if _, err := c.CreateStream(f.Context(), "s", runnel.WithShardCount(2)); err != nil {
		f.Fatal(err)
	}
	s := New(c)
	f.Fuzz(func(t *testing.T, op uint8, body string) {
		name := names[int(op&0x7f)%len(names)]
		if name == "CreateStream" || name == "DeleteStream" {
			return // would change the stream the other inputs use
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", targetPrefix+name)
		c := jsonCodec
		if op&0x80 != 0 {
			c = cborCodec
		}
		req.Header.Set("Content-Type", c.contentType)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			return
		}
		var e wireError
		if err := c.unmarshal(w.Body.Bytes(), &e); err != nil || e.Type == "" || runnel.ErrorForName(e.Type) == nil {
			t.Fatalf("%s %q: status %d, body %q is not an error of the table", name, body, w.Code, w.Body.Bytes())
		}
		if e.Type == "InternalFailureException" {
			t.Fatalf("%s %q: an internal failure: %s", name, body, e.Message)
		}
	})
}
