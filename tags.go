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
	out := make([]Tag, 0, len(s.tags))
	for _, k := range slices.Sorted(maps.Keys(s.tags)) {
		out = append(out, Tag{Key: k, Value: s.tags[k]})
	}
	return out, nil
}

// AddTags adds tags to the stream or changes their values
// (AddTagsToStream). More than MaxTagsPerStream in all is an
// ErrLimitExceeded, and nothing is changed.
func (s *Stream) AddTags(ctx context.Context, tags map[string]string) error {
	const op = "AddTagsToStream"
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if err := checkTag(op, k, tags[k]); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.tags)
	for k := range tags {
		if _, ok := s.tags[k]; !ok {
			n++
		}
	}
	if n > MaxTagsPerStream {
		return errorf(op, ErrLimitExceeded, "stream %s would have %d tags; the limit is %d", s.name, n, MaxTagsPerStream)
	}
	if s.tags == nil {
		s.tags = make(map[string]string, len(tags))
	}
	maps.Copy(s.tags, tags)
	return nil
}

// RemoveTags removes tags from the stream by key (RemoveTagsFromStream);
// keys it does not have are ignored, as in Kinesis.
func (s *Stream) RemoveTags(ctx context.Context, keys []string) error {
	const op = "RemoveTagsFromStream"
	if err := s.begin(ctx, op, noShard); err != nil {
		return err
	}
	for _, k := range keys {
		if err := checkTag(op, k, ""); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.tags, k)
	}
	return nil
}
