package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runnel-go/runnel"
)

// Channels deliver a stream's records to Amazon S3 in Kinesis. The server
// keeps them as resources (create, describe, list, update, delete, tags)
// with their configuration as given, and delivers nothing: there is no S3
// here. They live in the server's memory, per account and region, and in
// its state file (WithStateFile).

// maxChannels bounds the channels of an account and region.
const maxChannels = 100

// channels are the channels of one account and region.
type channels struct {
	mu     sync.Mutex
	byARN  map[string]*channel // guarded by mu
	prefix string              // arn:aws:kinesis:<region>:<account>:channel/
}

// channel is one channel; its fields are guarded by its channels' mu.
type channel struct {
	desc channelDescription
	tags runnel.TagSet
}

type channelStreamConfiguration struct {
	StreamARN               string
	RecordConfiguration     map[string]any `json:",omitempty"`
	StreamCreationTimestamp *epochSeconds  `json:",omitempty"` // in descriptions only
}

type channelEncryption struct {
	EncryptionType string
	KeyId          string `json:",omitempty"`
}

type channelDescription struct {
	ChannelARN                       string
	ChannelCreationTimestamp         epochSeconds
	ChannelId                        string
	ChannelName                      string
	ChannelStatus                    string
	ServiceExecutionRoleARN          string
	StreamConfigurationList          []channelStreamConfiguration
	EncryptionConfiguration          *channelEncryption `json:",omitempty"`
	LoggingConfiguration             map[string]any     `json:",omitempty"`
	S3DestinationConfiguration       map[string]any     `json:",omitempty"`
	S3TablesDestinationConfiguration map[string]any     `json:",omitempty"`
}

type createChannelInput struct {
	ChannelName                      string
	ServiceExecutionRoleARN          string
	StreamConfigurationList          []channelStreamConfiguration
	EncryptionConfiguration          *channelEncryption
	LoggingConfiguration             map[string]any
	S3DestinationConfiguration       map[string]any
	S3TablesDestinationConfiguration map[string]any
	Tags                             map[string]string
}

// channelsOf returns the channels of a cluster's account and region.
func (s *Server) channelsOf(c *runnel.Cluster) *channels { return &s.keptOf(c).channels }

// isChannelARN reports whether an ARN names a channel.
func isChannelARN(arn string) bool { return strings.Contains(arn, ":channel/") }

// changeChannel runs fn on the channel of an ARN of c's account and
// region, under the channels' lock, and then, if fn changed it (returned
// nil), saves the server's state.
func (s *Server) changeChannel(op string, c *runnel.Cluster, arn string, fn func(*channels, *channel) error) error {
	cs := s.channelsOf(c)
	if err := cs.with(op, arn, func(ch *channel) error { return fn(cs, ch) }); err != nil {
		return err
	}
	return s.saveState(op)
}

// with runs fn on the channel of an ARN, under the channels' lock.
func (cs *channels) with(op, arn string, fn func(*channel) error) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ch := cs.byARN[arn]
	if ch == nil {
		return &runnel.Error{Op: op, Kind: runnel.ErrResourceNotFound, Msg: fmt.Sprintf("channel %.300q does not exist", arn)}
	}
	return fn(ch)
}

// newChannelID returns a channel id: 17 characters of a-z and 0-9.
func newChannelID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 17)
	rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func createChannel(ctx context.Context, s *Server, req request) (any, error) {
	const op = "CreateChannel"
	var in createChannelInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	if err := runnel.ValidateName("channel", in.ChannelName); err != nil {
		return nil, err
	}
	switch {
	case !strings.HasPrefix(in.ServiceExecutionRoleARN, "arn:aws") || !strings.Contains(in.ServiceExecutionRoleARN, ":role/"):
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("ServiceExecutionRoleARN %.300q is not an IAM role ARN", in.ServiceExecutionRoleARN)}
	case len(in.StreamConfigurationList) != 1:
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("StreamConfigurationList has %d streams; a channel reads exactly one", len(in.StreamConfigurationList))}
	case in.StreamConfigurationList[0].RecordConfiguration == nil:
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: "the stream configuration's RecordConfiguration is required"}
	case (in.S3DestinationConfiguration == nil) == (in.S3TablesDestinationConfiguration == nil):
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: "give exactly one of S3DestinationConfiguration and S3TablesDestinationConfiguration"}
	case in.EncryptionConfiguration != nil && in.EncryptionConfiguration.EncryptionType != string(runnel.EncryptionKMS):
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("EncryptionType %.40q must be KMS", in.EncryptionConfiguration.EncryptionType)}
	}
	src := in.StreamConfigurationList[0]
	st, err := req.stream(op, streamRef{StreamARN: src.StreamARN})
	if err != nil {
		return nil, err
	}
	created := epochSeconds(st.CreationTime())
	src.StreamCreationTimestamp = &created
	var tags runnel.TagSet
	if len(in.Tags) > 0 {
		if err := tags.Tag(in.Tags); err != nil {
			return nil, err
		}
	}
	if err := checkChannelSize(op, channelDescription{ChannelName: in.ChannelName, StreamConfigurationList: in.StreamConfigurationList,
		LoggingConfiguration: in.LoggingConfiguration, S3DestinationConfiguration: in.S3DestinationConfiguration,
		S3TablesDestinationConfiguration: in.S3TablesDestinationConfiguration}); err != nil {
		return nil, err
	}
	ch, err := s.channelsOf(req.cluster).add(op, func(prefix string) *channel {
		id := newChannelID()
		return &channel{tags: tags, desc: channelDescription{
			ChannelARN:                       prefix + id,
			ChannelCreationTimestamp:         epochSeconds(req.cluster.Now()),
			ChannelId:                        id,
			ChannelName:                      in.ChannelName,
			ChannelStatus:                    "ACTIVE", // at once, as runnel's streams
			ServiceExecutionRoleARN:          in.ServiceExecutionRoleARN,
			StreamConfigurationList:          []channelStreamConfiguration{src},
			EncryptionConfiguration:          in.EncryptionConfiguration,
			LoggingConfiguration:             in.LoggingConfiguration,
			S3DestinationConfiguration:       in.S3DestinationConfiguration,
			S3TablesDestinationConfiguration: in.S3TablesDestinationConfiguration,
		}}
	}, in.ChannelName)
	if err != nil {
		return nil, err
	}
	if err := s.saveState(op); err != nil {
		return nil, err
	}
	return struct{ ChannelDescription channelDescription }{ch.desc}, nil
}

// add adds the channel that newChannel returns (given the ARN prefix) under the
// name, unless the account and region has a channel of that name or the
// most channels already. It returns the channel added.
func (cs *channels) add(op string, newChannel func(prefix string) *channel, name string) (*channel, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, ch := range cs.byARN {
		if ch.desc.ChannelName == name {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrResourceInUse, Msg: fmt.Sprintf("channel %s already exists", name)}
		}
	}
	if len(cs.byARN) >= maxChannels {
		return nil, &runnel.Error{Op: op, Kind: runnel.ErrLimitExceeded, Msg: fmt.Sprintf("the account has %d channels in this region, the most; %s would be one more", maxChannels, name)}
	}
	ch := newChannel(cs.prefix)
	cs.byARN[ch.desc.ChannelARN] = ch
	return ch, nil
}

func describeChannel(ctx context.Context, s *Server, req request) (any, error) {
	const op = "DescribeChannel"
	var in struct{ ChannelARN string }
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	var out channelDescription
	err := s.channelsOf(req.cluster).with(op, in.ChannelARN, func(ch *channel) error {
		out = ch.desc
		return nil
	})
	return struct{ ChannelDescription channelDescription }{out}, err
}

// freshnessUpdate is the one field of a destination that UpdateChannel
// changes.
type freshnessUpdate struct {
	DataFreshnessInSeconds *int
}

type updateChannelInput struct {
	ChannelARN                       string
	LoggingConfiguration             *struct{ CloudWatchLogs map[string]any }
	S3DestinationConfiguration       *freshnessUpdate
	S3TablesDestinationConfiguration *freshnessUpdate
}

// updateChannel merges the given configuration into the channel's: the
// fields given replace those of the same name.
func updateChannel(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UpdateChannel"
	var in updateChannelInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	var out channelDescription
	err := s.changeChannel(op, req.cluster, in.ChannelARN, func(cs *channels, ch *channel) error {
		d := ch.desc // a refused update changes nothing
		if err := mergeChannel(op, &d, in); err != nil {
			return err
		}
		ch.desc, out = d, d
		return nil
	})
	return struct{ ChannelDescription channelDescription }{out}, err
}

// mergeChannel merges an update into a channel's description.
func mergeChannel(op string, d *channelDescription, in updateChannelInput) error {
	switch {
	case in.S3DestinationConfiguration != nil && d.S3DestinationConfiguration == nil:
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("channel %s delivers to S3 Tables, not to an S3 bucket", d.ChannelName)}
	case in.S3TablesDestinationConfiguration != nil && d.S3TablesDestinationConfiguration == nil:
		return &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("channel %s delivers to an S3 bucket, not to S3 Tables", d.ChannelName)}
	}
	// The description is replaced, not changed: a response being encoded
	// may hold the old one.
	set := func(dst *map[string]any, key string, v any) {
		*dst = maps.Clone(*dst)
		if *dst == nil {
			*dst = make(map[string]any)
		}
		(*dst)[key] = v
	}
	if u := in.LoggingConfiguration; u != nil && u.CloudWatchLogs != nil {
		logs, _ := d.LoggingConfiguration["CloudWatchLogs"].(map[string]any)
		logs = maps.Clone(logs)
		if logs == nil {
			logs = make(map[string]any)
		}
		maps.Copy(logs, u.CloudWatchLogs)
		set(&d.LoggingConfiguration, "CloudWatchLogs", logs)
	}
	if u := in.S3DestinationConfiguration; u != nil && u.DataFreshnessInSeconds != nil {
		set(&d.S3DestinationConfiguration, "DataFreshnessInSeconds", *u.DataFreshnessInSeconds)
	}
	if u := in.S3TablesDestinationConfiguration; u != nil && u.DataFreshnessInSeconds != nil {
		set(&d.S3TablesDestinationConfiguration, "DataFreshnessInSeconds", *u.DataFreshnessInSeconds)
	}
	return checkChannelSize(op, *d)
}

// maxChannelConfig bounds the configuration a channel keeps, encoded.
const maxChannelConfig = 64 << 10

// checkChannelSize refuses a channel whose configuration is over
// maxChannelConfig, so that clients cannot make the server hold much.
func checkChannelSize(op string, d channelDescription) error {
	b, err := json.Marshal(d)
	if err != nil || len(b) > maxChannelConfig {
		return &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("channel %s's configuration is %d bytes; the most is %d", d.ChannelName, len(b), maxChannelConfig)}
	}
	return nil
}

func deleteChannel(ctx context.Context, s *Server, req request) (any, error) {
	const op = "DeleteChannel"
	var in struct{ ChannelARN string }
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	return struct{}{}, s.changeChannel(op, req.cluster, in.ChannelARN, func(cs *channels, ch *channel) error {
		delete(cs.byARN, in.ChannelARN)
		return nil
	})
}

type channelStreamFilter struct {
	StreamARN               string
	StreamCreationTimestamp *epochSeconds
}

type listChannelsInput struct {
	MaxResults   *int
	NextToken    string
	StreamFilter []channelStreamFilter
}

type channelSummary struct {
	ChannelARN               string
	ChannelCreationTimestamp epochSeconds
	ChannelDestinationType   string
	ChannelId                string
	ChannelName              string
	ChannelStatus            string
	Streams                  []channelStreamConfiguration
}

// listChannels lists the channels by name, MaxResults (default and most
// 100) a page; a NextToken names the last channel of the page before.
func listChannels(ctx context.Context, s *Server, req request) (any, error) {
	const op = "ListChannels"
	var in listChannelsInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	limit := 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 {
			return nil, &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("MaxResults %d must be at least 1", *in.MaxResults)}
		}
		limit = min(*in.MaxResults, 100) // Kinesis returns at most 100
	}
	after := ""
	if in.NextToken != "" {
		var err error
		if after, err = s.openPage(op, listChannelsToken, req.cluster, "", in.NextToken); err != nil {
			return nil, err
		}
	}
	cs := s.channelsOf(req.cluster)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	all := slices.SortedFunc(maps.Values(cs.byARN), func(a, b *channel) int { return cmp.Compare(a.desc.ChannelName, b.desc.ChannelName) })
	out := struct {
		ChannelSummaries []channelSummary
		NextToken        string `json:",omitempty"`
	}{ChannelSummaries: []channelSummary{}}
	for _, ch := range all {
		d := ch.desc
		if d.ChannelName <= after || !matchesStreamFilter(d, in.StreamFilter) {
			continue
		}
		if len(out.ChannelSummaries) == limit {
			out.NextToken = s.sealPage(listChannelsToken, req.cluster, "", out.ChannelSummaries[limit-1].ChannelName)
			break
		}
		dest := "S3"
		if d.S3TablesDestinationConfiguration != nil {
			dest = "S3_TABLES"
		}
		var streams []channelStreamConfiguration
		for _, sc := range d.StreamConfigurationList {
			streams = append(streams, channelStreamConfiguration{StreamARN: sc.StreamARN, StreamCreationTimestamp: sc.StreamCreationTimestamp})
		}
		out.ChannelSummaries = append(out.ChannelSummaries, channelSummary{
			ChannelARN: d.ChannelARN, ChannelCreationTimestamp: d.ChannelCreationTimestamp, ChannelDestinationType: dest,
			ChannelId: d.ChannelId, ChannelName: d.ChannelName, ChannelStatus: d.ChannelStatus, Streams: streams,
		})
	}
	return out, nil
}

// matchesStreamFilter reports whether a channel reads one of the filter's
// streams (every channel, with no filter).
func matchesStreamFilter(d channelDescription, filter []channelStreamFilter) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		for _, sc := range d.StreamConfigurationList {
			if sc.StreamARN == f.StreamARN && (f.StreamCreationTimestamp == nil || sc.StreamCreationTimestamp == nil ||
				time.Time(*f.StreamCreationTimestamp).UnixMilli() == time.Time(*sc.StreamCreationTimestamp).UnixMilli()) {
				return true
			}
		}
	}
	return false
}

// tagChannel, untagChannel and channels.tags serve TagResource,
// UntagResource and ListTagsForResource for channels.
func (s *Server) tagChannel(op string, c *runnel.Cluster, arn string, tags map[string]string) error {
	return s.changeChannel(op, c, arn, func(_ *channels, ch *channel) error { return ch.tags.Tag(tags) })
}

func (s *Server) untagChannel(op string, c *runnel.Cluster, arn string, keys []string) error {
	return s.changeChannel(op, c, arn, func(_ *channels, ch *channel) error { return ch.tags.Untag(keys) })
}

func (cs *channels) tags(op, arn string) ([]runnel.Tag, error) {
	var out []runnel.Tag
	err := cs.with(op, arn, func(ch *channel) error {
		out = ch.tags.List()
		return nil
	})
	return out, err
}
