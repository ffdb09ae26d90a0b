package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
)

// The access key and secret of the tests of signatures.
const (
	authKey    = "AKIDRUNNELTEST"
	authSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

// authServe runs a server of c with opts on a loopback port until the
// test ends, and returns its URL and the server.
func authServe(t *testing.T, c *runnel.Cluster, opts ...Option) (string, *Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(c, opts...)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("the server stopped with %v", err)
		}
	})
	return "http://" + l.Addr().String(), srv
}

// authCluster returns a cluster closed when the test ends.
func authCluster(t *testing.T, opts ...runnel.ClusterOption) *runnel.Cluster {
	t.Helper()
	c := runnel.NewCluster(opts...)
	t.Cleanup(func() { c.Close() })
	return c
}

// authClient returns an SDK client of url that signs for region with an
// access key and secret, and does not retry.
func authClient(url, region, key, secret string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           region,
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1,
	})
}

// authRequest returns a Kinesis API request of op with a JSON body, signed
// as the AWS SDK for Go signs (its v4 signer) with key and secret for
// region and service at time at; edit, if not nil, changes the request
// before it is signed.
func authRequest(t *testing.T, url, op, body, key, secret, region, service string, at time.Time, edit func(*http.Request)) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.Set("Content-Type", jsonContentType)
	if edit != nil {
		edit(req)
	}
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, at))
	return req
}

// authDo sends a request and returns its status and error body (empty
// for a success).
func authDo(t *testing.T, req *http.Request) (int, wireError) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e wireError
	if resp.StatusCode != http.StatusOK {
		require.NoError(t, json.Unmarshal(b, &e), "%s", b)
		assert.Equal(t, e.Type, resp.Header.Get("X-Amzn-ErrorType"))
	}
	return resp.StatusCode, e
}

// authAPIError returns the error code and HTTP status of an SDK error.
func authAPIError(t *testing.T, err error) (string, int) {
	t.Helper()
	require.Error(t, err)
	var api smithy.APIError
	require.ErrorAs(t, err, &api)
	var re *awshttp.ResponseError
	require.ErrorAs(t, err, &re)
	return api.ErrorCode(), re.HTTPStatusCode()
}

// TestAuthSDK drives the Go SDK, signing with the right credentials,
// against a server that verifies signatures, over HTTP/1.1 and over
// plain-text HTTP/2: the stream operations, PutRecords with many records,
// GetRecords, and a SubscribeToShard event stream (whose request is
// signed as any other) all succeed.
func TestAuthSDK(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2c=%v", h2c), func(t *testing.T) {
			c := authCluster(t)
			url, _ := authServe(t, c, WithCredentials(Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}))
			k := authClient(url, "us-east-1", authKey, authSecret)
			if h2c {
				p := new(http.Protocols)
				p.SetUnencryptedHTTP2(true)
				tr := &http.Transport{Protocols: p}
				t.Cleanup(tr.CloseIdleConnections)
				k = kinesis.New(k.Options(), func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: tr} })
			}
			authSDKSession(t, k)
		})
	}
}

// authSDKSession drives the operations of TestAuthSDK with k.
func authSDKSession(t *testing.T, k *kinesis.Client) {
	ctx := t.Context()
	name := aws.String("signed")
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: []byte("one")})
	require.NoError(t, err)
	entries := make([]types.PutRecordsRequestEntry, 200)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("k", i)), Data: bytes.Repeat([]byte{byte(i)}, 1000)}
	}
	many, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: name, Records: entries})
	require.NoError(t, err)
	assert.Zero(t, aws.ToInt32(many.FailedRecordCount))
	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	got, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	assert.Len(t, got.Records, 201)

	d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	require.NoError(t, err)
	reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: d.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("c")})
	require.NoError(t, err)
	subscribe := func(cont string) *kinesis.SubscribeToShardEventStream {
		return SubscribeAfter(t, k, reg.Consumer.ConsumerARN, cont)
	}
	stream := subscribe("")
	defer func() { stream.Close() }()
	var n int
	var cont string
	for n < 201 {
		ev, ok := <-stream.Events()
		if !ok && strings.Contains(fmt.Sprint(stream.Err()), "use of closed network connection") {
			// The Go SDK over HTTP/1.1 may close its own connection under
			// load (see the README): go on as a client does.
			stream = subscribe(cont)
			continue
		}
		require.True(t, ok, "the event stream ended after %d records: %v", n, stream.Err())
		e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		require.True(t, ok, "%T", ev)
		n += len(e.Value.Records)
		cont = aws.ToString(e.Value.ContinuationSequenceNumber)
	}
	assert.Equal(t, 201, n)
}

// TestAuthRefusals shows each way a request can fail verification, with
// the SDK and with raw requests, and the service's error name and status
// for it; refused requests change nothing.
func TestAuthRefusals(t *testing.T) {
	c := authCluster(t)
	st, err := c.CreateStream(t.Context(), "s", runnel.WithShardCount(1))
	require.NoError(t, err)
	url, _ := authServe(t, c, WithCredentials(Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}))
	now := time.Now()
	const put = `{"StreamName":"s","PartitionKey":"k","Data":"AAEC"}`

	t.Run("SDK", func(t *testing.T) {
		for _, tc := range []struct {
			name, key, secret, want string
		}{
			{"WrongSecret", authKey, "not the secret", "InvalidSignatureException"},
			{"UnknownKey", "AKIDUNKNOWN", authSecret, "UnrecognizedClientException"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				k := authClient(url, "us-east-1", tc.key, tc.secret)
				_, err := k.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
				code, status := authAPIError(t, err)
				assert.Equal(t, tc.want, code)
				assert.Equal(t, http.StatusBadRequest, status)
			})
		}
	})

	for _, tc := range []struct {
		name    string
		req     func(t *testing.T) *http.Request
		want    string
		message string // a part of the message
	}{
		{"Unsigned", func(t *testing.T) *http.Request {
			req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(put))
			require.NoError(t, err)
			req.Header.Set("X-Amz-Target", targetPrefix+"PutRecord")
			return req
		}, "MissingAuthenticationTokenException", "no Authorization header"},
		{"Presigned", func(t *testing.T) *http.Request {
			req, err := http.NewRequest(http.MethodPost, url+"/?X-Amz-Signature=00", strings.NewReader(put))
			require.NoError(t, err)
			req.Header.Set("X-Amz-Target", targetPrefix+"PutRecord")
			return req
		}, "MissingAuthenticationTokenException", "presigned"},
		{"BodyAlteredAfterSigning", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, nil)
			altered := strings.Replace(put, "AAEC", "AAED", 1)
			req.Body = io.NopCloser(strings.NewReader(altered))
			return req
		}, "InvalidSignatureException", "does not match"},
		{"TargetAlteredAfterSigning", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "ListStreams", `{}`, authKey, authSecret, "us-east-1", "kinesis", now, nil)
			req.Header.Set("X-Amz-Target", targetPrefix+"ListShards")
			return req
		}, "InvalidSignatureException", "does not match"},
		{"HeaderAlteredAfterSigning", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, nil)
			req.Header.Set("Content-Type", "application/json")
			return req
		}, "InvalidSignatureException", "does not match"},
		{"SignedHeaderRemoved", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, func(r *http.Request) {
				r.Header.Set("X-Amz-Meta-Note", "signed")
			})
			req.Header.Del("X-Amz-Meta-Note")
			return req
		}, "IncompleteSignatureException", "x-amz-meta-note"},
		{"TargetNotSigned", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, func(r *http.Request) {
				r.Header.Del("X-Amz-Target")
			})
			req.Header.Set("X-Amz-Target", targetPrefix+"PutRecord")
			return req
		}, "IncompleteSignatureException", "x-amz-target"},
		{"Stale", func(t *testing.T) *http.Request {
			return authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now.Add(-20*time.Minute), nil)
		}, "InvalidSignatureException", "Signature expired"},
		{"FromTheFuture", func(t *testing.T) *http.Request {
			return authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now.Add(20*time.Minute), nil)
		}, "InvalidSignatureException", "Signature not yet current"},
		{"OtherService", func(t *testing.T) *http.Request {
			return authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "dynamodb", now, nil)
		}, "InvalidSignatureException", "dynamodb"},
		{"ContentSHA256Mismatch", func(t *testing.T) *http.Request {
			return authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, func(r *http.Request) {
				r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64))
			})
		}, "InvalidSignatureException", "X-Amz-Content-Sha256"},
		{"UnsignedPayload", func(t *testing.T) *http.Request {
			return authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, func(r *http.Request) {
				r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			})
		}, "InvalidSignatureException", "UNSIGNED-PAYLOAD"},
		{"UnknownKey", func(t *testing.T) *http.Request {
			return authRequest(t, url, "PutRecord", put, "AKIDUNKNOWN", authSecret, "us-east-1", "kinesis", now, nil)
		}, "UnrecognizedClientException", "AKIDUNKNOWN"},
		{"Malformed", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, nil)
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+authKey+"/20240101/us-east-1/kinesis/aws4_request")
			return req
		}, "IncompleteSignatureException", "SignedHeaders, Signature"},
		{"OtherAlgorithm", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, nil)
			req.Header.Set("Authorization", "Bearer abc")
			return req
		}, "IncompleteSignatureException", "Bearer"},
		{"NoDate", func(t *testing.T) *http.Request {
			req := authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, nil)
			req.Header.Del("X-Amz-Date")
			return req
		}, "IncompleteSignatureException", "X-Amz-Date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := authDo(t, tc.req(t))
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, tc.want, e.Type)
			assert.Contains(t, e.Message, tc.message)
			assert.NotContains(t, e.Message, authSecret)
		})
	}
	assert.Zero(t, st.Stats().Total.RecordsPut, "no refused request wrote")

	t.Run("SignedRawRequest", func(t *testing.T) {
		status, e := authDo(t, authRequest(t, url, "PutRecord", put, authKey, authSecret, "us-east-1", "kinesis", now, nil))
		assert.Equal(t, http.StatusOK, status, "%+v", e)
		assert.EqualValues(t, 1, st.Stats().Total.RecordsPut)
	})
}

// TestAuthCanonicalForm signs requests whose canonical form is not
// trivial (a path that needs escaping, a query in no order, repeated and
// padded header values, a Date header instead of X-Amz-Date) with the
// SDK's signer: the server computes the same canonical request.
func TestAuthCanonicalForm(t *testing.T) {
	c := authCluster(t)
	url, _ := authServe(t, c, WithCredentials(Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}))
	now := time.Now()
	for _, tc := range []struct {
		name, path string
		edit       func(*http.Request)
	}{
		{"Root", "/", nil},
		{"EscapedPath", "/a%20b/c~d/%C3%A9", nil},
		{"Query", "/?b=2&a=1&a=0&c=x%2Fy&a-b=3", nil},
		{"PaddedAndRepeatedHeaders", "/", func(r *http.Request) {
			r.Header.Set("X-Amz-Meta-Note", "  two   spaces  ")
			r.Header.Add("X-Amz-Meta-List", "a")
			r.Header.Add("X-Amz-Meta-List", "b")
		}},
		{"ContentSHA256", "/", func(r *http.Request) {
			sum := sha256.Sum256([]byte("{}"))
			r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := authRequest(t, url+tc.path, "ListStreams", `{}`, authKey, authSecret, "eu-west-3", "kinesis", now, tc.edit)
			status, e := authDo(t, req)
			assert.Equal(t, http.StatusOK, status, "%+v", e)
		})
	}
	t.Run("DateHeader", func(t *testing.T) {
		// Sign by hand what the signer does not make: a Date header and no
		// X-Amz-Date, with the scope of the same day.
		req := authRequest(t, url, "ListStreams", `{}`, authKey, authSecret, "us-east-1", "kinesis", now, nil)
		req.Header.Del("X-Amz-Date")
		req.Header.Set("Date", now.UTC().Format(http.TimeFormat))
		a, err := parseAuthorization(req.Header.Get("Authorization"))
		require.NoError(t, err)
		a.signedHeaders = []string{"content-length", "content-type", "date", "host", "x-amz-target"}
		sum := sha256.Sum256([]byte(`{}`))
		canonical, err := canonicalRequest(req, a.signedHeaders, hex.EncodeToString(sum[:]))
		require.NoError(t, err)
		canonicalSum := sha256.Sum256([]byte(canonical))
		signedAt := now.UTC().Truncate(time.Second)
		toSign := sigV4Algorithm + "\n" + signedAt.Format(sigV4TimeFormat) + "\n" + signedAt.Format(sigV4DateFormat) + "/us-east-1/kinesis/aws4_request\n" + hex.EncodeToString(canonicalSum[:])
		sig := hex.EncodeToString(hmacSHA256(signingKey(authSecret, signedAt.Format(sigV4DateFormat), "us-east-1", "kinesis"), toSign))
		req.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s/us-east-1/kinesis/aws4_request, SignedHeaders=%s, Signature=%s",
			sigV4Algorithm, authKey, signedAt.Format(sigV4DateFormat), strings.Join(a.signedHeaders, ";"), sig))
		status, e := authDo(t, req)
		assert.Equal(t, http.StatusOK, status, "%+v", e)
	})
}

// TestAuthClockSkew checks the 15-minute window on the server's clock,
// which verifySignature takes as an input: inside it either way a request
// passes; outside, it is refused with the service's messages.
func TestAuthClockSkew(t *testing.T) {
	s := New(authCluster(t), WithCredentials(Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}))
	signedAt := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		skew time.Duration // the server's clock minus the signing time
		want string
	}{
		{"Now", 0, ""},
		{"14MinutesLater", 14 * time.Minute, ""},
		{"15MinutesLater", 15 * time.Minute, ""},
		{"14MinutesEarlier", -14 * time.Minute, ""},
		{"16MinutesLater", 16 * time.Minute, "Signature expired: 20250601T120000Z is now earlier than 20250601T120100Z (20250601T121600Z - 15 min.)"},
		{"20MinutesLater", 20 * time.Minute, "Signature expired"},
		{"20MinutesEarlier", -20 * time.Minute, "Signature not yet current: 20250601T120000Z is still later than 20250601T115500Z (20250601T114000Z + 15 min.)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := authRequest(t, "http://127.0.0.1/", "ListStreams", `{}`, authKey, authSecret, "us-east-1", "kinesis", signedAt, nil)
			err := s.verifySignature(req, []byte(`{}`), signedAt.Add(tc.skew))
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, runnel.ErrInvalidSignature)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestAuthCredentialMistakes shows what a server does with credentials
// that cannot be right: every request fails as an internal failure that
// names the mistake (and never a secret), so that it is found at once.
func TestAuthCredentialMistakes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds []Credential
		want  string
	}{
		{"NoAccessKey", []Credential{{SecretAccessKey: "s"}}, "access key id is empty"},
		{"SpaceInAccessKey", []Credential{{AccessKeyID: "AK ID", SecretAccessKey: "s"}}, `"AK ID"`},
		{"NoSecret", []Credential{{AccessKeyID: "AKID"}}, `"AKID" has no secret`},
		{"BadAccount", []Credential{{AccessKeyID: "AKID", SecretAccessKey: "s", AccountID: "12345"}}, `"12345"`},
		{"TwiceDifferently", []Credential{{AccessKeyID: "AKID", SecretAccessKey: "secret-one"}, {AccessKeyID: "AKID", SecretAccessKey: "secret-two"}}, "credential 2 of 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(authCluster(t), WithCredentials(tc.creds...))
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
			req.Header.Set("X-Amz-Target", targetPrefix+"ListStreams")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			assert.Equal(t, http.StatusInternalServerError, w.Code)
			var e wireError
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
			assert.Equal(t, "InternalFailureException", e.Type)
			assert.Contains(t, e.Message, tc.want)
			assert.NotContains(t, e.Message, "secret-")
		})
	}
	t.Run("SameTwice", func(t *testing.T) {
		cred := Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}
		s := New(authCluster(t), WithCredentials(cred), WithCredentials(cred))
		assert.NoError(t, s.credentialsErr)
	})
	t.Run("None", func(t *testing.T) {
		url, _ := authServe(t, authCluster(t), WithCredentials())
		status, e := authDo(t, authRequest(t, url, "ListStreams", `{}`, authKey, authSecret, "us-east-1", "kinesis", time.Now(), nil))
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "UnrecognizedClientException", e.Type)
	})
}

// TestAuthOff shows that a server without credentials does not verify
// signatures: unsigned and wrongly signed requests are served.
func TestAuthOff(t *testing.T) {
	url, _ := authServe(t, authCluster(t))
	for _, secret := range []string{authSecret, "wrong"} {
		status, e := authDo(t, authRequest(t, url, "ListStreams", `{}`, authKey, secret, "us-east-1", "kinesis", time.Now().Add(-time.Hour), nil))
		assert.Equal(t, http.StatusOK, status, "%+v", e)
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", targetPrefix+"ListStreams")
	status, e := authDo(t, req)
	assert.Equal(t, http.StatusOK, status, "%+v", e)
}

// FuzzAuthorization feeds the Authorization header parser arbitrary
// headers. It never panics; what it accepts re-renders to a header it
// parses the same, names the access key and region that the router
// (credentialScope) reads, and what it refuses is an
// IncompleteSignatureException. Verifying a request with the header never
// panics and refuses with one of the signature errors.
func FuzzAuthorization(f *testing.F) {
	valid := sigV4Algorithm + " Credential=" + authKey + "/20250601/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + strings.Repeat("ab", 32)
	for _, seed := range []string{
		valid,
		strings.ReplaceAll(valid, ", ", ","),
		strings.Replace(valid, "Credential=", "Credential =", 1),
		sigV4Algorithm + " Credential=" + authKey + "/20250601/us-east-1/kinesis/aws4_request",
		sigV4Algorithm + " SignedHeaders=host, Signature=" + strings.Repeat("0", 64) + ", Credential=a/20250601/r/s/aws4_request",
		sigV4Algorithm + " Credential=a/2025/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("0", 64),
		sigV4Algorithm + " Credential=a//us-east-1/kinesis/aws4_request, SignedHeaders=Host, Signature=00",
		sigV4Algorithm + " Credential=a/20250601/us-east-1/kinesis/aws4_request, Credential=b/20250601/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("0", 64),
		sigV4Algorithm + " Credential=a/20250601/us-east-1/kinesis/aws4_request, SignedHeaders=host;;x, Signature=" + strings.Repeat("0", 64),
		sigV4Algorithm + " Credential=a/20250601/us-east-1/kinesis/aws4_request, SignedHeaders=host;host, Signature=" + strings.Repeat("G", 64),
		"AWS4-HMAC-SHA512 Credential=a/20250601/us-east-1/kinesis/aws4_request",
		"Bearer token",
		"",
		" , = ,",
		sigV4Algorithm + " =, Signature",
	} {
		f.Add(seed)
	}
	s := New(runnel.NewCluster(), WithCredentials(Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}))
	f.Cleanup(func() { s.cluster.Close() })
	signatureErrors := []error{runnel.ErrMissingAuthenticationToken, runnel.ErrIncompleteSignature, runnel.ErrUnrecognizedClient, runnel.ErrInvalidSignature}
	f.Fuzz(func(t *testing.T, header string) {
		a, err := parseAuthorization(header)
		if err != nil {
			require.ErrorIs(t, err, runnel.ErrIncompleteSignature, "%q", header)
		} else {
			again := fmt.Sprintf("%s Credential=%s/%s/%s/%s/%s, SignedHeaders=%s, Signature=%s", sigV4Algorithm,
				a.accessKey, a.date, a.region, a.service, a.terminator, strings.Join(a.signedHeaders, ";"), a.signature)
			b, err := parseAuthorization(again)
			require.NoError(t, err, "%q renders as %q", header, again)
			require.Equal(t, a, b)
			key, region, ok := credentialScope(header)
			require.True(t, ok, "%q", header)
			assert.Equal(t, a.accessKey, key)
			assert.Equal(t, a.region, region)
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		req.Header.Set("X-Amz-Target", targetPrefix+"ListStreams")
		req.Header.Set("X-Amz-Date", "20250601T120000Z")
		req.Header.Set("Authorization", header)
		err = s.verifySignature(req, []byte(`{}`), time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
		if err == nil {
			return // a header that the fuzzer signed right
		}
		var known bool
		for _, kind := range signatureErrors {
			known = known || errors.Is(err, kind)
		}
		require.True(t, known, "%q: %v", header, err)
	})
}

// TestAuthUnsignedPayload checks that a request signed as the Java SDK v2
// signs over HTTPS, with UNSIGNED-PAYLOAD for the payload's hash, verifies,
// and that its signature still covers the rest.
func TestAuthUnsignedPayload(t *testing.T) {
	c := authCluster(t)
	_, err := c.CreateStream(t.Context(), "s", runnel.WithShardCount(1))
	require.NoError(t, err)
	url, _ := authServe(t, c, WithCredentials(Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}))
	const put = `{"StreamName":"s","PartitionKey":"k","Data":"AAEC"}`
	sign := func(secret string) *http.Request {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(put))
		require.NoError(t, err)
		req.Header.Set("X-Amz-Target", targetPrefix+"PutRecord")
		req.Header.Set("Content-Type", jsonContentType)
		req.Header.Set("X-Amz-Content-Sha256", unsignedPayload)
		creds := aws.Credentials{AccessKeyID: authKey, SecretAccessKey: secret}
		require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, req, unsignedPayload, "kinesis", "us-east-1", time.Now()))
		return req
	}
	status, body := authDo(t, sign(authSecret))
	assert.Equal(t, http.StatusOK, status, "%+v", body)
	status, body = authDo(t, sign("wrong"))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "InvalidSignatureException", body.Type)
}
