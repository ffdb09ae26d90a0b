package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-go/runnel"
)

// acctMaker makes the clusters of other accounts and regions, as a user
// of WithClusters does, and remembers them.
type acctMaker struct {
	mu   sync.Mutex
	made []*runnel.Cluster
}

func (m *acctMaker) newCluster(account, region string) (*runnel.Cluster, error) {
	c := runnel.NewCluster(runnel.WithAccountID(account), runnel.WithRegion(region))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.made = append(m.made, c)
	return c, nil
}

// closeAll closes what the server did not close, when the test ends.
func (m *acctMaker) closeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.made {
		c.Close()
	}
}

// acctServer returns a server of a new default cluster (account
// 000000000000 in us-east-1) that serves other accounts and regions with
// clusters of m, with opts.
func acctServer(t *testing.T, m *acctMaker, opts ...Option) (*Server, *runnel.Cluster) {
	t.Helper()
	c := authCluster(t)
	t.Cleanup(m.closeAll)
	return New(c, append([]Option{WithClusters(m.newCluster)}, opts...)...), c
}

// acctCall sends an operation to s directly, with an Authorization header
// that names an access key and a region but is not a valid signature
// (the server verifies none here); it returns the status and the body.
func acctCall(t *testing.T, s *Server, key, region, op, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	if key != "" {
		req.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/20250601/%s/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=%s",
			sigV4Algorithm, key, region, strings.Repeat("0", 64)))
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	var out map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), "%s", w.Body.Bytes())
	return w.Code, out
}

// TestAccountRouting signs with the SDK for different regions and with
// access keys that are account ids: each account and region has its own
// cluster, whose streams the others do not list, and whose ARNs name it.
func TestAccountRouting(t *testing.T) {
	var m acctMaker
	s, def := acctServer(t, &m)
	url := acctServe(t, s)
	tenants := []struct{ key, region, account string }{
		{"runnel", "us-east-1", "000000000000"}, // the default cluster's
		{"runnel", "eu-west-1", "000000000000"},
		{"111122223333", "us-east-1", "111122223333"},
		{"111122223333", "ap-southeast-2", "111122223333"},
	}
	ctx := t.Context()
	for i, tn := range tenants {
		k := authClient(url, tn.region, tn.key, "any secret")
		for _, name := range []string{"orders", fmt.Sprint("only-", i)} {
			_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
			require.NoError(t, err, "%+v", tn)
		}
	}
	for i, tn := range tenants {
		k := authClient(url, tn.region, tn.key, "any secret")
		list, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{})
		require.NoError(t, err)
		assert.Equal(t, []string{fmt.Sprint("only-", i), "orders"}, list.StreamNames, "%+v", tn)
		d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/orders", tn.region, tn.account), aws.ToString(d.StreamDescriptionSummary.StreamARN))
	}
	names, err := def.ListStreams(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"only-0", "orders"}, names, "the default cluster serves its own account and region")

	clusters := s.Clusters()
	require.Len(t, clusters, 4)
	assert.Same(t, def, clusters[0])
	var got []string
	for _, c := range clusters[1:] {
		got = append(got, c.AccountID()+"/"+c.Region())
	}
	assert.Equal(t, []string{"000000000000/eu-west-1", "111122223333/ap-southeast-2", "111122223333/us-east-1"}, got, "sorted by account, then region")
}

// TestAccountRoutingWithCredentials routes the keys of WithCredentials to
// their accounts, and a key without an account to the default one.
func TestAccountRoutingWithCredentials(t *testing.T) {
	var m acctMaker
	s, def := acctServer(t, &m, WithCredentials(
		Credential{AccessKeyID: "AKIDMAPPED", SecretAccessKey: "secret-m", AccountID: "444455556666"},
		Credential{AccessKeyID: "AKIDDEFAULT", SecretAccessKey: "secret-d"},
		Credential{AccessKeyID: "999988887777", SecretAccessKey: "secret-n"},
	))
	url := acctServe(t, s)
	ctx := t.Context()
	for _, tc := range []struct{ key, secret, region, account string }{
		{"AKIDMAPPED", "secret-m", "eu-central-1", "444455556666"},
		{"AKIDDEFAULT", "secret-d", "eu-central-1", "000000000000"},
		{"999988887777", "secret-n", "us-east-1", "000000000000"}, // a listed key's account is its AccountID, or the default
	} {
		k := authClient(url, tc.region, tc.key, tc.secret)
		_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
		require.NoError(t, err, "%+v", tc)
		d, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/s", tc.region, tc.account), aws.ToString(d.StreamDescriptionSummary.StreamARN))
	}
	_, err := def.Stream("s")
	assert.NoError(t, err, "the last key's stream is in the default cluster")
	assert.Len(t, s.Clusters(), 3)
}

// acctServe serves s on a loopback port until the test ends and returns
// its URL.
func acctServe(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("the server stopped with %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// TestAccountWithoutClusters shows that without WithClusters every
// request reaches the default cluster, whatever it is signed for.
func TestAccountWithoutClusters(t *testing.T) {
	c := authCluster(t)
	s := New(c)
	url := acctServe(t, s)
	k := authClient(url, "eu-west-1", "111122223333", "x")
	_, err := k.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	d, err := k.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	assert.Equal(t, "arn:aws:kinesis:us-east-1:000000000000:stream/s", aws.ToString(d.StreamDescriptionSummary.StreamARN))
	status, out := acctCall(t, s, "222233334444", "not_a_region", "ListStreams", `{}`)
	assert.Equal(t, http.StatusOK, status, "the region is not looked at: %v", out)
	assert.Equal(t, []any{"s"}, out["StreamNames"])
	assert.Equal(t, []*runnel.Cluster{c}, s.Clusters())
}

// TestAccountMaxClusters makes clusters for maxClusters accounts: the next
// account is refused with LimitExceededException naming it, while the
// accounts served already, and the default one, go on being served.
func TestAccountMaxClusters(t *testing.T) {
	var m acctMaker
	s, _ := acctServer(t, &m)
	account := func(i int) string { return fmt.Sprintf("%012d", 100000000000+i) }
	for i := range maxClusters {
		status, out := acctCall(t, s, account(i), "us-east-1", "ListStreams", `{}`)
		require.Equal(t, http.StatusOK, status, "account %d: %v", i, out)
	}
	assert.Len(t, s.Clusters(), maxClusters+1)
	status, out := acctCall(t, s, account(maxClusters), "us-east-1", "ListStreams", `{}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "LimitExceededException", out["__type"])
	assert.Contains(t, out["message"], account(maxClusters))
	status, out = acctCall(t, s, account(0), "eu-north-1", "ListStreams", `{}`)
	assert.Equal(t, http.StatusBadRequest, status, "a new region of a known account is one more cluster too: %v", out)

	for _, known := range []struct{ key, region string }{{account(7), "us-east-1"}, {"runnel", "us-east-1"}, {"", ""}} {
		status, out := acctCall(t, s, known.key, known.region, "ListStreams", `{}`)
		assert.Equal(t, http.StatusOK, status, "%+v: %v", known, out)
	}
	assert.Len(t, s.Clusters(), maxClusters+1)
}

// TestAccountMalformedRegion refuses a credential scope whose region is
// not a region name, as Kinesis refuses a scope of no valid region, both
// when the server verifies signatures (the request is signed right for
// the bad region) and when it does not.
func TestAccountMalformedRegion(t *testing.T) {
	var m acctMaker
	s, _ := acctServer(t, &m, WithCredentials(Credential{AccessKeyID: authKey, SecretAccessKey: authSecret}))
	url := acctServe(t, s)
	for _, region := range []string{"local", "US-EAST-1", "us-east-1x", "us-east-one", "xx"} {
		t.Run(region, func(t *testing.T) {
			status, e := authDo(t, authRequest(t, url, "ListStreams", `{}`, authKey, authSecret, region, "kinesis", time.Now(), nil))
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "InvalidSignatureException", e.Type)
			assert.Contains(t, e.Message, fmt.Sprintf("%q", region))
		})
	}
	var unverified acctMaker
	s2, _ := acctServer(t, &unverified)
	status, out := acctCall(t, s2, "runnel", "us_east_1", "ListStreams", `{}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "InvalidSignatureException", out["__type"])
	assert.Empty(t, unverified.made, "no cluster was made for a bad region")
}

// TestAccountCloseClosesClusters shows that Close closes the clusters the
// server made, but not the one given to New, and makes no more.
func TestAccountCloseClosesClusters(t *testing.T) {
	var m acctMaker
	s, def := acctServer(t, &m)
	for _, region := range []string{"eu-west-1", "eu-west-2"} {
		status, out := acctCall(t, s, "runnel", region, "CreateStream", `{"StreamName":"s","ShardCount":1}`)
		require.Equal(t, http.StatusOK, status, "%v", out)
	}
	made := s.Clusters()[1:]
	require.Len(t, made, 2)
	require.NoError(t, s.Close())
	for _, c := range made {
		_, err := c.ListStreams(t.Context())
		assert.ErrorIs(t, err, runnel.ErrClosed, "%s is closed", c.Region())
	}
	_, err := def.ListStreams(t.Context())
	assert.NoError(t, err, "the default cluster is the caller's")
	status, out := acctCall(t, s, "runnel", "eu-west-3", "ListStreams", `{}`)
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, out["message"], "closing")
	assert.Len(t, m.made, 2, "no cluster is made after Close")
	require.NoError(t, s.Close(), "Close may be called twice")
}

// TestAccountNewClusterFails answers the failures of the user's
// newCluster, an error or no cluster at all, as internal failures naming
// the account and region, and then serves the next request anew.
func TestAccountNewClusterFails(t *testing.T) {
	var calls atomic.Int32
	c := authCluster(t)
	var made []*runnel.Cluster
	t.Cleanup(func() {
		for _, c := range made {
			c.Close()
		}
	})
	s := New(c, WithClusters(func(account, region string) (*runnel.Cluster, error) {
		switch calls.Add(1) {
		case 1:
			return nil, errors.New("out of clusters")
		case 2:
			return nil, nil
		}
		made = append(made, runnel.NewCluster(runnel.WithAccountID(account), runnel.WithRegion(region)))
		return made[len(made)-1], nil
	}))
	for _, want := range []string{"out of clusters", "gave no cluster"} {
		status, out := acctCall(t, s, "123456789012", "eu-west-1", "ListStreams", `{}`)
		assert.Equal(t, http.StatusInternalServerError, status)
		assert.Equal(t, "InternalFailureException", out["__type"])
		assert.Contains(t, out["message"], want)
		assert.Contains(t, out["message"], "123456789012 in eu-west-1")
	}
	status, out := acctCall(t, s, "123456789012", "eu-west-1", "ListStreams", `{}`)
	assert.Equal(t, http.StatusOK, status, "%v", out)
	require.NoError(t, s.Close())
}

// TestAccountConcurrentFirstRequests sends the first requests of an
// account from many goroutines at once: they all succeed on one cluster,
// and any other cluster made meanwhile is closed.
func TestAccountConcurrentFirstRequests(t *testing.T) {
	var m acctMaker
	s, _ := acctServer(t, &m)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			status, out := acctCall(t, s, "555566667777", "sa-east-1", "CreateStream", fmt.Sprintf(`{"StreamName":"s%d","ShardCount":1}`, i))
			assert.Equal(t, http.StatusOK, status, "%v", out)
		})
	}
	wg.Wait()
	clusters := s.Clusters()
	require.Len(t, clusters, 2)
	names, err := clusters[1].ListStreams(t.Context())
	require.NoError(t, err)
	assert.Len(t, names, 8, "every stream is in the one cluster kept")
	for _, c := range m.made {
		if c != clusters[1] {
			_, err := c.ListStreams(t.Context())
			assert.ErrorIs(t, err, runnel.ErrClosed, "a cluster made by a request that lost the race is closed")
		}
	}
	require.NoError(t, s.Close())
}
