package runnel

import (
	"context"
	"errors"
	"testing"
)

// FuzzListShardsNextToken feeds arbitrary NextTokens to ListShards: it must
// never panic, and must either list shards or fail with a typed error.
func FuzzListShardsNextToken(f *testing.F) {
	c := NewCluster()
	defer c.Close()
	s, err := c.CreateStream(context.Background(), "fuzz", WithShardCount(3))
	if err != nil {
		f.Fatal(err)
	}
	page, err := s.ListShards(context.Background(), ListShardsInput{MaxResults: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(page.NextToken)
	f.Add("")
	f.Add("AAAA")
	f.Add("not base64!")
	f.Fuzz(func(t *testing.T, token string) {
		if token == "" {
			return
		}
		out, err := s.ListShards(context.Background(), ListShardsInput{NextToken: token})
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) && !errors.Is(err, ErrExpiredNextToken) {
				t.Fatalf("NextToken %q: untyped error %v", token, err)
			}
			return
		}
		if len(out.Shards) > 3 {
			t.Fatalf("NextToken %q listed %d shards of 3", token, len(out.Shards))
		}
	})
}

// FuzzCheckRecord checks the record validator on arbitrary keys: no
// panic, and every error is typed.
func FuzzCheckRecord(f *testing.F) {
	c := NewCluster()
	defer c.Close()
	s, err := c.CreateStream(context.Background(), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("key", "", 10)
	f.Add("", "1", 0)
	f.Add("\xff", "340282366920938463463374607431768211456", 1<<20)
	f.Fuzz(func(t *testing.T, key, explicit string, dataLen int) {
		if dataLen < 0 {
			dataLen = -dataLen
		}
		_, err := checkRecord("PutRecord", key, explicit, dataLen, s.cfg.maxRecordSize, true)
		if err != nil && !errors.Is(err, ErrValidation) && !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
