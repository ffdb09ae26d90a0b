package runnel

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamTags shows tags set at creation, added, changed and removed,
// listed by key, and Kinesis's limits.
func TestStreamTags(t *testing.T) {
	c := NewCluster()
	defer c.Close()
	ctx := t.Context()
	s, err := c.CreateStream(ctx, "s", WithTags(map[string]string{"team": "billing"}))
	require.NoError(t, err)
	require.NoError(t, s.AddTags(ctx, map[string]string{"env": "test", "team": "payments"}))
	tags, err := s.Tags(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Tag{{"env", "test"}, {"team", "payments"}}, tags)
	require.NoError(t, s.RemoveTags(ctx, []string{"env", "absent"}))
	tags, err = s.Tags(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Tag{{"team", "payments"}}, tags)

	many := map[string]string{}
	for i := range MaxTagsPerStream {
		many[fmt.Sprint("k", i)] = ""
	}
	err = s.AddTags(ctx, many)
	assert.ErrorIs(t, err, ErrLimitExceeded, "51 tags")
	tags, _ = s.Tags(ctx)
	assert.Len(t, tags, 1, "nothing changed")
	_, err = c.CreateStream(ctx, "t", WithTags(map[string]string{"aws:reserved": "x"}))
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorContains(t, err, "aws:reserved")
	err = s.AddTags(ctx, map[string]string{"": "x"})
	assert.ErrorIs(t, err, ErrValidation)
	err = s.AddTags(ctx, map[string]string{"k": strings.Repeat("v", 257)})
	assert.ErrorIs(t, err, ErrValidation)
}

// FuzzCheckTag checks the tag validator against its rule on any input.
func FuzzCheckTag(f *testing.F) {
	for _, seed := range [][2]string{{"team", "billing"}, {"", ""}, {"aws:x", ""}, {"AWS:x", "y"}, {strings.Repeat("k", 129), ""}, {"k", strings.Repeat("v", 257)}, {"\xff", ""}, {"ключ", "значение"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		err := checkTag("Fuzz", key, value)
		ok := utf8.ValidString(key) && utf8.ValidString(value) &&
			utf8.RuneCountInString(key) >= 1 && utf8.RuneCountInString(key) <= 128 &&
			utf8.RuneCountInString(value) <= 256 && !strings.HasPrefix(strings.ToLower(key), "aws:")
		if ok != (err == nil) {
			t.Fatalf("checkTag(%q, %q) = %v", key, value, err)
		}
	})
}

// TestResourceTags checks the tags of resources named by ARN: a stream's
// are the ones AddTags sets, a consumer's are its own from registration
// on, and both have the same limits.
func TestResourceTags(t *testing.T) {
	c, s := newTestStream(t)
	ctx := context.Background()
	require.NoError(t, s.AddTags(ctx, map[string]string{"team": "data"}))
	require.NoError(t, c.TagResource(ctx, s.ARN(), map[string]string{"env": "test"}))
	tags, err := c.ResourceTags(ctx, s.ARN())
	require.NoError(t, err)
	assert.Equal(t, []Tag{{"env", "test"}, {"team", "data"}}, tags)

	cons, err := s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: "app", Tags: map[string]string{"owner": "me"}})
	require.NoError(t, err)
	require.NoError(t, c.TagResource(ctx, cons.ConsumerARN, map[string]string{"tier": "1"}))
	require.NoError(t, c.UntagResource(ctx, cons.ConsumerARN, []string{"owner", "absent"}))
	tags, err = c.ResourceTags(ctx, cons.ConsumerARN)
	require.NoError(t, err)
	assert.Equal(t, []Tag{{"tier", "1"}}, tags)
	tags, err = c.ResourceTags(ctx, s.ARN())
	require.NoError(t, err)
	assert.Len(t, tags, 2, "the stream's tags are apart from its consumer's")

	many := map[string]string{}
	for i := range MaxTagsPerStream {
		many[fmt.Sprint("k", i)] = ""
	}
	assert.ErrorIs(t, c.TagResource(ctx, cons.ConsumerARN, many), ErrLimitExceeded)
	assert.ErrorIs(t, c.TagResource(ctx, cons.ConsumerARN, map[string]string{"aws:x": ""}), ErrInvalidArgument)
	_, err = s.RegisterStreamConsumer(ctx, RegisterStreamConsumerInput{ConsumerName: "bad", Tags: map[string]string{"": "v"}})
	assert.ErrorIs(t, err, ErrValidation)
	require.NoError(t, s.DeregisterStreamConsumer(ctx, StreamConsumerRef{ConsumerName: "app"}))
	_, err = c.ResourceTags(ctx, cons.ConsumerARN)
	assert.ErrorIs(t, err, ErrResourceNotFound)
}
