package server

import (
	"context"
	"fmt"

	"github.com/runnel-go/runnel"
)

// The tag operations: of streams by name (AddTagsToStream, …), and of
// streams, consumers and channels by ARN (TagResource, …).

// The most tags one call takes: AddTagsToStream adds at most 10, the
// other calls (RemoveTagsFromStream, TagResource, UntagResource) take a
// resource's 50.
const (
	maxTagsAdded   = 10
	maxTagsPerCall = runnel.MaxTagsPerStream
)

type wireTag struct {
	Key   string
	Value string `json:",omitempty"`
}

func wireTags(tags []runnel.Tag) []wireTag {
	out := make([]wireTag, len(tags))
	for i, t := range tags {
		out[i] = wireTag{Key: t.Key, Value: t.Value}
	}
	return out
}

// checkTagCount keeps a call to Kinesis's 1 to most tags.
func checkTagCount(op string, n, most int) error {
	if n < 1 || n > most {
		return &runnel.Error{Op: op, Kind: runnel.ErrValidation, Msg: fmt.Sprintf("%d tags: %s takes 1 to %d", n, op, most)}
	}
	return nil
}

type addTagsInput struct {
	streamRef
	Tags map[string]string
}

func addTagsToStream(ctx context.Context, s *Server, req request) (any, error) {
	const op = "AddTagsToStream"
	var in addTagsInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	if err := checkTagCount(op, len(in.Tags), maxTagsAdded); err != nil {
		return nil, err
	}
	return struct{}{}, st.AddTags(ctx, in.Tags)
}

type removeTagsInput struct {
	streamRef
	TagKeys []string
}

func removeTagsFromStream(ctx context.Context, s *Server, req request) (any, error) {
	const op = "RemoveTagsFromStream"
	var in removeTagsInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	if err := checkTagCount(op, len(in.TagKeys), maxTagsPerCall); err != nil {
		return nil, err
	}
	return struct{}{}, st.RemoveTags(ctx, in.TagKeys)
}

type listTagsInput struct {
	streamRef
	ExclusiveStartTagKey string
	Limit                *int
}

// listTagsForStream lists tags by key, Limit (default 10, at most 50) a
// page.
func listTagsForStream(ctx context.Context, s *Server, req request) (any, error) {
	const op = "ListTagsForStream"
	var in listTagsInput
	st, err := req.decodeStream(op, &in)
	if err != nil {
		return nil, err
	}
	limit, err := pageSize(op, "Limit", in.Limit, 10, runnel.MaxTagsPerStream)
	if err != nil {
		return nil, err
	}
	tags, err := st.Tags(ctx)
	if err != nil {
		return nil, err
	}
	for len(tags) > 0 && in.ExclusiveStartTagKey != "" && tags[0].Key <= in.ExclusiveStartTagKey {
		tags = tags[1:]
	}
	more := len(tags) > limit
	if more {
		tags = tags[:limit]
	}
	return struct {
		Tags        []wireTag
		HasMoreTags bool
	}{wireTags(tags), more}, nil
}

type tagResourceInput struct {
	ResourceARN string
	Tags        map[string]string
}

func tagResource(ctx context.Context, s *Server, req request) (any, error) {
	const op = "TagResource"
	var in tagResourceInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	if err := checkTagCount(op, len(in.Tags), maxTagsPerCall); err != nil {
		return nil, err
	}
	if isChannelARN(in.ResourceARN) {
		return struct{}{}, s.tagChannel(op, req.cluster, in.ResourceARN, in.Tags)
	}
	return struct{}{}, req.cluster.TagResource(ctx, in.ResourceARN, in.Tags)
}

type untagResourceInput struct {
	ResourceARN string
	TagKeys     []string
}

func untagResource(ctx context.Context, s *Server, req request) (any, error) {
	const op = "UntagResource"
	var in untagResourceInput
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	if err := checkTagCount(op, len(in.TagKeys), maxTagsPerCall); err != nil {
		return nil, err
	}
	if isChannelARN(in.ResourceARN) {
		return struct{}{}, s.untagChannel(op, req.cluster, in.ResourceARN, in.TagKeys)
	}
	return struct{}{}, req.cluster.UntagResource(ctx, in.ResourceARN, in.TagKeys)
}

func listTagsForResource(ctx context.Context, s *Server, req request) (any, error) {
	const op = "ListTagsForResource"
	var in struct{ ResourceARN string }
	if err := req.decode(op, &in); err != nil {
		return nil, err
	}
	var tags []runnel.Tag
	var err error
	if isChannelARN(in.ResourceARN) {
		tags, err = s.channelsOf(req.cluster).tags(op, in.ResourceARN)
	} else {
		tags, err = req.cluster.ResourceTags(ctx, in.ResourceARN)
	}
	if err != nil {
		return nil, err
	}
	return struct{ Tags []wireTag }{wireTags(tags)}, nil
}
