package server

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/runnel-go/runnel"
)

// A server holds one cluster per account and region, as Kinesis does. The
// region of a request is the one in its signature's credential scope; its
// account is the one configured for its access key (WithCredentials), or
// the access key itself when that is a 12-digit account id (a convention
// of local AWS emulators), or else the default cluster's. A request with
// no signature is for the default cluster.

// tenant is one account and region.
type tenant struct{ account, region string }

// maxClusters bounds the clusters a server makes for the accounts and
// regions its clients name, so that clients cannot exhaust its memory.
const maxClusters = 100

// WithClusters lets the server serve accounts and regions other than the
// default cluster's: the first request for another account or region makes
// its cluster with newCluster, and the server closes the clusters it made
// when it closes. Without it, every request is served by the default
// cluster, whatever account or region it is signed for.
func WithClusters(newCluster func(account, region string) (*runnel.Cluster, error)) Option {
	return func(s *Server) { s.newCluster = newCluster }
}

// regionPattern is the shape of an AWS region name (us-east-1,
// us-gov-west-1, eu-central-2).
var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

// accountPattern is the shape of an AWS account id.
var accountPattern = regexp.MustCompile(`^[0-9]{12}$`)

// credentialScope returns the access key and region of a request's SigV4
// Authorization header, and false if it has none.
func credentialScope(authorization string) (accessKey, region string, ok bool) {
	_, rest, ok := strings.Cut(authorization, "Credential=")
	if !ok {
		return "", "", false
	}
	cred, _, _ := strings.Cut(rest, ",")
	// <access key>/<date>/<region>/<service>/aws4_request
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return "", "", false
	}
	return parts[0], parts[2], true
}

// tenantOf returns the account and region a request is for.
func (s *Server) tenantOf(r *http.Request) (tenant, error) {
	def := tenant{s.cluster.AccountID(), s.cluster.Region()}
	accessKey, region, ok := credentialScope(r.Header.Get("Authorization"))
	if !ok {
		return def, nil
	}
	if !regionPattern.MatchString(region) {
		return tenant{}, &runnel.Error{Op: "Authorize", Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("the credential scope's region %.64q is not a region name", region)}
	}
	t := tenant{account: def.account, region: region}
	switch {
	case s.accounts[accessKey] != "":
		t.account = s.accounts[accessKey]
	case accountPattern.MatchString(accessKey):
		t.account = accessKey
	}
	return t, nil
}

// clusterOf returns the cluster that serves a request.
func (s *Server) clusterOf(r *http.Request) (*runnel.Cluster, error) {
	if s.newCluster == nil {
		return s.cluster, nil
	}
	t, err := s.tenantOf(r)
	if err != nil {
		return nil, err
	}
	if t.account == s.cluster.AccountID() && t.region == s.cluster.Region() {
		return s.cluster, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clusters[t]; c != nil {
		return c, nil
	}
	switch {
	case s.closed:
		return nil, &runnel.Error{Op: "Authorize", Kind: runnel.ErrClosed, Msg: "the server is closing"}
	case len(s.clusters) >= maxClusters:
		return nil, &runnel.Error{Op: "Authorize", Kind: runnel.ErrLimitExceeded, Msg: fmt.Sprintf("the server serves %d accounts and regions already; account %s in %s would be one more", maxClusters, t.account, t.region)}
	}
	c, err := s.newCluster(t.account, t.region)
	if err != nil {
		return nil, &runnel.Error{Op: "Authorize", Kind: runnel.ErrInternalFailure, Msg: fmt.Sprintf("making the cluster of account %s in %s failed", t.account, t.region), Err: err}
	}
	if s.clusters == nil {
		s.clusters = make(map[tenant]*runnel.Cluster)
	}
	s.clusters[t] = c
	return c, nil
}

// Clusters returns the clusters the server serves: the default one first,
// then those it made for other accounts and regions.
func (s *Server) Clusters() []*runnel.Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*runnel.Cluster{s.cluster}
	for _, t := range slices.SortedFunc(maps.Keys(s.clusters), func(a, b tenant) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.region, b.region))
	}) {
		out = append(out, s.clusters[t])
	}
	return out
}
