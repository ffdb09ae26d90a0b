package server

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

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
// Authorization header (read by the one parser of that header), and false
// if it has none or it is malformed.
func credentialScope(authorization string) (accessKey, region string, ok bool) {
	a, err := parseAuthorization(authorization)
	if err != nil {
		return "", "", false
	}
	return a.accessKey, a.region, true
}

// tenantOf returns the account and region a request is for.
func (s *Server) tenantOf(r *http.Request) (tenant, error) {
	def := tenant{s.cluster.AccountID(), s.cluster.Region()}
	accessKey, region, ok := credentialScope(r.Header.Get("Authorization"))
	if !ok {
		return def, nil
	}
	if !regionPattern.MatchString(region) {
		return tenant{}, &runnel.Error{Op: "Authorize", Kind: runnel.ErrInvalidSignature, Msg: fmt.Sprintf("the credential scope's region %.64q is not a region name", region)}
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
	if c, err := s.madeCluster(t); c != nil || err != nil {
		return c, err
	}
	// Make the cluster outside the lock: newCluster is the user's, and
	// requests for the clusters made already go on meanwhile.
	c, err := s.newCluster(t.account, t.region)
	switch {
	case err != nil:
		return nil, &runnel.Error{Op: "Authorize", Kind: runnel.ErrInternalFailure, Msg: fmt.Sprintf("making the cluster of account %s in %s failed", t.account, t.region), Err: err}
	case c == nil:
		return nil, &runnel.Error{Op: "Authorize", Kind: runnel.ErrInternalFailure, Msg: fmt.Sprintf("making the cluster of account %s in %s gave no cluster", t.account, t.region)}
	}
	s.mu.Lock()
	got, err := s.madeClusterLocked(t)
	if got == nil && err == nil {
		if s.clusters == nil {
			s.clusters = make(map[tenant]*runnel.Cluster)
		}
		s.clusters[t] = c
		got = c
	}
	s.mu.Unlock()
	if got != c {
		c.Close() // another request made the tenant's cluster first, or the server closed meanwhile
	}
	return got, err
}

// madeCluster returns the cluster made for t already, or the error that
// refuses to make one (the server is closing, or serves maxClusters
// clusters already), or neither.
func (s *Server) madeCluster(t tenant) (*runnel.Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.madeClusterLocked(t)
}

func (s *Server) madeClusterLocked(t tenant) (*runnel.Cluster, error) {
	if c := s.clusters[t]; c != nil {
		return c, nil
	}
	switch {
	case s.closed:
		return nil, &runnel.Error{Op: "Authorize", Kind: runnel.ErrClosed, Msg: "the server is closing"}
	case len(s.clusters) >= maxClusters:
		return nil, &runnel.Error{Op: "Authorize", Kind: runnel.ErrLimitExceeded, Msg: fmt.Sprintf("the server serves %d accounts and regions already; account %s in %s would be one more", maxClusters, t.account, t.region)}
	}
	return nil, nil
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

// accountSettings are an account's settings in a region
// (DescribeAccountSettings): its minimum throughput billing commitment,
// which the server keeps and reports, and which changes nothing else.
type accountSettings struct {
	mu         sync.Mutex
	commitment *billingCommitment // guarded by mu; nil: never enabled
}

type billingCommitment struct {
	Status               string
	StartedAt            *epochSeconds `json:",omitempty"`
	EndedAt              *epochSeconds `json:",omitempty"`
	EarliestAllowedEndAt *epochSeconds `json:",omitempty"`
}

// minCommitment is how long a billing commitment lasts at least.
const minCommitment = 24 * time.Hour

// kept is what the server keeps of an account and region beyond its
// cluster, which the engine does not model: its settings and channels. It
// is kept by account and region, not by cluster, so that the state file
// (WithStateFile, state.go) holds it for the clusters of a restart.
type kept struct {
	settings accountSettings
	channels channels
}

// keptOf returns what the server keeps of a cluster's account and region
// (read from the state file at New, with WithStateFile).
func (s *Server) keptOf(c *runnel.Cluster) *kept {
	t := tenant{account: c.AccountID(), region: c.Region()}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.kept[t]
	if k == nil {
		if s.kept == nil {
			s.kept = make(map[tenant]*kept)
		}
		k = newKept(t)
		s.kept[t] = k
	}
	return k
}

// view returns the commitment as of now: one whose end has come is
// DISABLED.
func (a *accountSettings) view(now time.Time) billingCommitment {
	c := a.commitment
	if c == nil {
		return billingCommitment{Status: "DISABLED"}
	}
	if c.Status == "ENABLED_UNTIL_EARLIEST_ALLOWED_END" && !now.Before(time.Time(*c.EndedAt)) {
		c.Status = "DISABLED"
	}
	return *c
}

// checkWarmThroughput refuses a warm throughput for an account without the
// minimum throughput billing commitment, as Kinesis does.
func (s *Server) checkWarmThroughput(op string, req request, mibps int) error {
	if mibps == 0 {
		return nil
	}
	a := &s.keptOf(req.cluster).settings
	a.mu.Lock()
	status := a.view(req.cluster.Now()).Status
	a.mu.Unlock()
	if status == "DISABLED" {
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("warm throughput %d MiB/s needs the account's minimum throughput billing commitment (UpdateAccountSettings)", mibps)}
	}
	return nil
}

func describeAccountSettings(ctx context.Context, s *Server, req request) (any, error) {
	if err := req.decode("DescribeAccountSettings", &struct{}{}); err != nil {
		return nil, err
	}
	a := &s.keptOf(req.cluster).settings
	a.mu.Lock()
	defer a.mu.Unlock()
	return struct{ MinimumThroughputBillingCommitment billingCommitment }{a.view(req.cluster.Now())}, nil
}

// updateAccountSettings enables or disables the commitment. Disabled
// before it has lasted its minimum, it stays enabled until then.
func updateAccountSettings(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UpdateAccountSettings"
	var in struct {
		MinimumThroughputBillingCommitment *struct{ Status string }
	}
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	if in.MinimumThroughputBillingCommitment == nil {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: "MinimumThroughputBillingCommitment is required"}
	}
	status := in.MinimumThroughputBillingCommitment.Status
	if status != "ENABLED" && status != "DISABLED" {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("Status %.40q must be ENABLED or DISABLED", status)}
	}
	a := &s.keptOf(req.cluster).settings
	now := req.cluster.Now()
	out, changed := a.update(status, now)
	if changed {
		if err := s.saveState(op); err != nil {
			return nil, err
		}
	}
	return struct{ MinimumThroughputBillingCommitment billingCommitment }{out}, nil
}

// update enables (status ENABLED) or disables the commitment at now, and
// returns it as of now and whether it changed.
func (a *accountSettings) update(status string, now time.Time) (billingCommitment, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.view(now)
	changed := false
	switch {
	case status == "ENABLED" && cur.Status != "ENABLED":
		start, earliest := epochSeconds(now), epochSeconds(now.Add(minCommitment))
		a.commitment = &billingCommitment{Status: "ENABLED", StartedAt: &start, EarliestAllowedEndAt: &earliest}
		changed = true
	case status == "DISABLED" && cur.Status == "ENABLED":
		c := *a.commitment
		end := epochSeconds(now)
		if earliest := time.Time(*c.EarliestAllowedEndAt); now.Before(earliest) {
			c.Status, end = "ENABLED_UNTIL_EARLIEST_ALLOWED_END", epochSeconds(earliest)
		} else {
			c.Status = "DISABLED"
		}
		c.EndedAt = &end
		a.commitment = &c
		changed = true
	}
	return a.view(now), changed
}
