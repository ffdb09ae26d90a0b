package runnel

import (
	"context"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Kinesis's limits on stream tags.
const (
	// MaxTagsPerStream is the most tags a stream holds.
	MaxTagsPerStream = 50
	maxTagKeyLen     = 128
	maxTagValueLen   = 256
)

// Tag is a key and value attached to a stream, as Kinesis's tags are.
type Tag struct {
	Key   string
	Value string
}

// checkTag is the one validator of a tag: a key of 1 to 128 characters, a
// value of at most 256, valid UTF-8, and no "aws:" prefix (reserved).
func checkTag(op, key, value string) *Error {
	switch n := utf8.RuneCountInString(key); {
	case n < 1 || n > maxTagKeyLen || !utf8.ValidString(key):
		return errorf(op, ErrValidation, "tag key %.140q must be 1 to %d characters of valid UTF-8", key, maxTagKeyLen)
	case strings.HasPrefix(strings.ToLower(key), "aws:"):
		return errorf(op, ErrInvalidArgument, "tag key %.140q has the reserved prefix aws:", key)
	case utf8.RuneCountInString(value) > maxTagValueLen || !utf8.ValidString(value):
		return errorf(op, ErrValidation, "the value of tag %.140q must be at most %d characters of valid UTF-8", key, maxTagValueLen)
	}
	return nil
}

// WithTags sets a stream's tags at creation (CreateStream's Tags).
func WithTags(tags map[string]string) StreamOption {
	return func(c *streamConfig) { c.tags = maps.Clone(tags) }
}

// Tags returns the stream's tags, ordered by key.
func (s *Stream) Tags(ctx context.Context) ([]Tag, error) {
	if err := s.begin(ctx, "ListTagsForStream", noShard); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedTags(s.tags), nil
}

// AddTags adds tags to the stream or changes their values
// (AddTagsToStream). More than MaxTagsPerStream in all is an
// ErrLimitExceeded, and nothing is changed.
func (s *Stream) AddTags(ctx context.Context, tags map[string]string) error {
	const op = "AddTagsToStream"
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := addTags(op, "stream "+s.name, &s.tags, tags); err != nil {
		return err
	}
	return s.persistLocked(op)
}

// RemoveTags removes tags from the stream by key (RemoveTagsFromStream);
// keys it does not have are ignored, as in Kinesis.
func (s *Stream) RemoveTags(ctx context.Context, keys []string) error {
	const op = "RemoveTagsFromStream"
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := removeTags(op, s.tags, keys); err != nil {
		return err
	}
	return s.persistLocked(op)
}

// ResourceTags returns the tags of a stream or a registered consumer,
// named by its ARN, ordered by key (ListTagsForResource).
func (c *Cluster) ResourceTags(ctx context.Context, arn string) ([]Tag, error) {
	var out []Tag
	err := c.withResource(ctx, "ListTagsForResource", arn, false, func(r resource) error {
		out = sortedTags(*r.tags)
		return nil
	})
	return out, err
}

// TagResource adds tags to a stream or a registered consumer, named by its
// ARN, or changes their values, with the limits of AddTags.
func (c *Cluster) TagResource(ctx context.Context, arn string, tags map[string]string) error {
	const op = "TagResource"
	return c.withResource(ctx, op, arn, true, func(r resource) error { return addTags(op, r.name, r.tags, tags) })
}

// UntagResource removes tags from a stream or a registered consumer by
// key; keys it does not have are ignored.
func (c *Cluster) UntagResource(ctx context.Context, arn string, keys []string) error {
	const op = "UntagResource"
	return c.withResource(ctx, op, arn, true, func(r resource) error { return removeTags(op, *r.tags, keys) })
}

// TagSet is the tags of a resource that the engine does not keep (a
// server's channels), under the rules of stream tags: TagResource's and
// UntagResource's. The zero value is empty. It is not safe for concurrent
// use.
type TagSet struct{ tags map[string]string }

// Tag adds tags or changes their values; more than MaxTagsPerStream in all
// is an ErrLimitExceeded, and nothing is changed.
func (t *TagSet) Tag(tags map[string]string) error {
	return addTags("TagResource", "the resource", &t.tags, tags)
}

// Untag removes tags by key; keys it does not have are ignored.
func (t *TagSet) Untag(keys []string) error { return removeTags("UntagResource", t.tags, keys) }

// List returns the tags, ordered by key.
func (t *TagSet) List() []Tag { return sortedTags(t.tags) }

// sortedTags returns tags ordered by key.
func sortedTags(tags map[string]string) []Tag {
	out := make([]Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, Tag{Key: k, Value: tags[k]})
	}
	return out
}

// addTags adds tags to *dst, the tags of what, unless they are invalid or
// would be more than MaxTagsPerStream; the caller holds the lock of dst.
func addTags(op, what string, dst *map[string]string, tags map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if err := checkTag(op, k, tags[k]); err != nil {
			return err
		}
	}
	n := len(*dst)
	for k := range tags {
		if _, ok := (*dst)[k]; !ok {
			n++
		}
	}
	if n > MaxTagsPerStream {
		return errorf(op, ErrLimitExceeded, "%s would have %d tags; the limit is %d", what, n, MaxTagsPerStream)
	}
	if *dst == nil {
		*dst = make(map[string]string, len(tags))
	}
	maps.Copy(*dst, tags)
	return nil
}

// removeTags removes the tags of keys from tags; the caller holds its lock.
func removeTags(op string, tags map[string]string, keys []string) error {
	for _, k := range keys {
		if err := checkTag(op, k, ""); err != nil {
			return err
		}
	}
	for _, k := range keys {
		delete(tags, k)
	}
	return nil
}
