package runnelaws

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// kinesisCallOptions are the options of every call the adapter makes: the
// SDK's retryer is off, because runnel's Producer, Consumer and
// ShardReader retry themselves, and request bodies end cleanly once closed
// (see endingBodies).
func kinesisCallOptions(o *kinesis.Options) {
	o.Retryer = aws.NopRetryer{}
	o.HTTPClient = endingBodies{o.HTTPClient}
}

// dynamoDBCallOptions are the options of every call a LeaseTable makes:
// request bodies that end cleanly once closed (see endingBodies). The
// SDK's retryer stays on, so that one lost response does not cost a
// Consumer a lease; a retried write that had succeeded is told from a
// conflict by reading the lease back (see LeaseTable).
func dynamoDBCallOptions(o *dynamodb.Options) { o.HTTPClient = endingBodies{o.HTTPClient} }

// endingBodies is an HTTP client that works around an interplay of
// smithy-go (v1.28.9) and net/http's HTTP/1.1 transport. smithy-go closes a
// request's body as soon as the response has arrived, and a closed body's
// WriteTo fails with io.EOF. The transport may still be draining that body
// after writing it, takes the io.EOF for a write error, and closes the
// connection: that ends a SubscribeToShard event stream in mid-flight
// (over loopback TCP, a few requests in a hundred lost their connection
// so), and costs other calls a new connection. Hiding WriteTo makes a
// closed body read as ended instead. HTTP/2 (which the SDK negotiates with
// Amazon Kinesis over TLS) only reads bodies and is not affected; plain
// HTTP endpoints, `runnel serve` among them, are.
type endingBodies struct{ next smithyhttp.ClientDo }

func (c endingBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return c.next.Do(r)
}

// ownCodec gives one SubscribeToShard call a protocol of its own. The
// SDK's client keeps one event-stream codec, with its decoder and payload
// buffer, for all its calls, and decodes every stream's messages with it:
// two subscriptions of one client at once race on that buffer (the race
// detector shows it with smithy-go v1.28.9). A protocol per call gives each
// stream its own codec.
func ownCodec(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }
