package server

import (
	"testing"

	"github.com/runnel-go/runnel"
)

// FuzzOpenToken checks the token authenticator: open never panics, takes
// back what seal made for the same kind and cluster (and nothing else), and
// refuses every token that seal did not make.
func FuzzOpenToken(f *testing.F) {
	c := runnel.NewCluster()
	f.Cleanup(func() { c.Close() })
	s := New(c, WithTokenKey(make([]byte, TokenKeySize)))
	for _, seed := range []string{"", ".", "a.", "abc.AAAAAAAAAAAAAAAAAAAAAA", s.seal(iteratorToken, c, "AQIDBA"), s.seal(listStreamsToken, c, "orders")} {
		f.Add(seed, byte(iteratorToken))
	}
	f.Fuzz(func(t *testing.T, token string, kind byte) {
		k := tokenKind(kind%5 + 1)
		text, err := s.open("Fuzz", "Token", k, c, token)
		if err == nil && s.seal(k, c, text) != token {
			t.Fatalf("open took %q, which seal did not make (it makes %q)", token, s.seal(k, c, text))
		}
		if token == "" {
			return
		}
		sealed := s.seal(k, c, token)
		if got, err := s.open("Fuzz", "Token", k, c, sealed); err != nil || got != token {
			t.Fatalf("open(seal(%q)) = %q, %v", token, got, err)
		}
		if _, err := s.open("Fuzz", "Token", k%5+1, c, sealed); err == nil {
			t.Fatalf("a token of kind %d passed for kind %d", k, k%5+1)
		}
	})
}
