package runnel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzStreamFile opens a data directory whose stream.json holds arbitrary
// bytes: Open either restores a usable stream or fails with an error, and
// never panics. The seeds are a real stream's file, before and after
// resharding, and damaged copies of it.
func FuzzStreamFile(f *testing.F) {
	dir := f.TempDir()
	c, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	s, err := c.CreateStream(context.Background(), "fuzz", WithShardCount(2), WithTags(map[string]string{"k": "v"}))
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(c.streamDir(s.id), "stream.json")
	seed := func() []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	plain := seed()
	if err := s.SplitShard(context.Background(), "shardId-000000000000", s.shards.Load().open[0].hashRange.Mid()); err != nil {
		f.Fatal(err)
	}
	split := seed()
	c.Close()
	f.Add(plain)
	f.Add(split)
	f.Add(plain[:len(plain)/2])
	f.Add([]byte(`{"version":1,"id":1,"name":"x","openShards":[],"shards":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		sdir := filepath.Join(dir, "streams", "1")
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sdir, "stream.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Open(dir)
		if err != nil {
			return
		}
		defer c.Close()
		for _, s := range c.Streams() {
			// A restored stream takes a write or refuses it with a typed
			// error (its limits may), and lists its shards; nothing hangs.
			var e *Error
			if _, err := s.PutRecord(context.Background(), PutRecordInput{PartitionKey: "k", Data: []byte("x")}); err != nil && !errors.As(err, &e) {
				t.Fatalf("put: untyped error %v", err)
			}
			if _, err := s.ListShards(context.Background(), ListShardsInput{}); err != nil {
				t.Fatalf("list shards of a restored stream: %v", err)
			}
		}
	})
}
