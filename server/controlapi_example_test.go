package server_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
)

// A server with the control API, driven as a test in another language
// would: plain HTTP requests with the token, JSON in and out.
func ExampleWithControlAPI() {
	clock := new(server.Clock)
	c := runnel.NewCluster(clock.ClusterOption()) // the cluster follows the clock
	defer c.Close()
	srv := server.New(c, server.WithControlAPI("secret", clock))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	call := func(path, body string) string {
		req, _ := http.NewRequest(http.MethodPost, "http://"+l.Addr().String()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		delete(out, "nowMs") // varies
		b, _ := json.Marshal(out)
		return resp.Status + " " + string(b)
	}
	fmt.Println(call("/runnel/faults/inject", `{"operation": "PutRecords", "error": "ProvisionedThroughputExceededException", "times": 1}`))
	fmt.Println(call("/runnel/faults/inject", `{"error": "NoSuchException"}`))
	fmt.Println(call("/runnel/clock/advance", `{"seconds": 301}`))
	// Output:
	// 200 OK {"faultId":"fault-1"}
	// 400 Bad Request {"__type":"InvalidArgumentException","message":"error \"NoSuchException\" is not a Kinesis error name (such as ProvisionedThroughputExceededException)"}
	// 200 OK {"offsetMs":301000}
}
