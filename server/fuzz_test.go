package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-go/runnel"
)

// FuzzServeHTTP sends arbitrary bodies to every operation of a server with
// one stream: the server never panics, and every answer is either a success
// or an error body with an error name.
func FuzzServeHTTP(f *testing.F) {
	names := make([]string, 0, len(operations))
	for name := range operations {
		names = append(names, name)
	}
	slices.Sort(names)
	for i := range names {
		f.Add(uint8(i), `{}`)
		f.Add(uint8(i), `{"StreamName":"s"}`)
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
		name := names[int(op)%len(names)]
		if name == "CreateStream" || name == "DeleteStream" {
			return // would change the stream the other inputs use
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", targetPrefix+name)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			return
		}
		var e wireError
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Type == "" || runnel.ErrorForName(e.Type) == nil {
			t.Fatalf("%s %q: status %d, body %q is not an error of the table", name, body, w.Code, w.Body.Bytes())
		}
		if e.Type == "InternalFailureException" {
			t.Fatalf("%s %q: an internal failure: %s", name, body, e.Message)
		}
	})
}
