package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-go/runnel"
)

// The tokens the server hands out (shard iterators and the NextTokens of
// listings) are authenticated: each carries an HMAC-SHA256 tag, keyed per
// server, over what the token is for (its kind, account and region) and
// its text. A token that is forged, altered, or handed out for another
// account, region or kind is refused before the engine reads it; the engine
// then refuses tokens that are expired or of another stream.

// tokenKind tells apart the tokens of different fields, so that no token
// passes for another.
type tokenKind byte

const (
	iteratorToken tokenKind = iota + 1
	listShardsToken
	listStreamsToken
	listConsumersToken
	listChannelsToken
)

// tagLen is the length of a token's tag, in bytes (128 bits of HMAC).
const tagLen = 16

// TokenKeySize is the size of a key for WithTokenKey.
const TokenKeySize = 32

// WithTokenKey sets the key that authenticates the server's iterators and
// NextTokens, so that the tokens of one server stay valid in another with
// the same key (a restart). A key of another size than TokenKeySize is
// ignored. The key is copied, and never written anywhere: with
// WithStateFile, it wins over the key the file holds, which the file keeps
// as it is (or keeps none). Default: with WithStateFile, the key of the
// file (made at the first start, see WithStateFile); else a random key
// per server.
func WithTokenKey(key []byte) Option {
	return func(s *Server) {
		if len(key) == TokenKeySize {
			s.tokenKey = append([]byte(nil), key...)
		}
	}
}

// newTokenKey returns a random token key.
func newTokenKey() []byte {
	key := make([]byte, TokenKeySize)
	rand.Read(key) // never fails (crypto/rand)
	return key
}

// tokenTag is the tag of a token's text for its kind and cluster.
func (s *Server) tokenTag(kind tokenKind, c *runnel.Cluster, text string) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write([]byte{byte(kind)})
	m.Write([]byte(c.AccountID() + "/" + c.Region() + "/"))
	m.Write([]byte(text))
	return m.Sum(nil)[:tagLen]
}

// seal returns the token the server hands out for an engine token or
// listing position: the text, a dot, and its tag in URL-safe base64. An
// empty text stays empty (no more pages).
func (s *Server) seal(kind tokenKind, c *runnel.Cluster, text string) string {
	if text == "" {
		return ""
	}
	return text + "." + base64.RawURLEncoding.EncodeToString(s.tokenTag(kind, c, text))
}

// open returns the text of a token made by seal for kind and cluster c. A
// token that is not one is an ErrInvalidArgument of op that names field.
func (s *Server) open(op, field string, kind tokenKind, c *runnel.Cluster, token string) (string, error) {
	i := strings.LastIndexByte(token, '.')
	if i >= 0 {
		tag, err := base64.RawURLEncoding.Strict().DecodeString(token[i+1:])
		if err == nil && hmac.Equal(tag, s.tokenTag(kind, c, token[:i])) {
			return token[:i], nil
		}
	}
	return "", &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("%s %.60q is not valid: not issued by this server for this account, region and field, or altered", field, token)}
}

// pageTokenTTL is how long the NextToken of a listing the server pages
// itself (ListStreams, ListStreamConsumers, ListChannels) stays valid, as
// Kinesis's do.
const pageTokenTTL = 300 * time.Second

// sealPage returns the NextToken of a page that ends at position, for the
// listing of scope (a stream's ARN and creation, for its consumers; "" for
// a cluster's streams or channels), stamped with the cluster's time.
func (s *Server) sealPage(kind tokenKind, c *runnel.Cluster, scope, position string) string {
	return s.seal(kind, c, strconv.FormatInt(c.Now().UnixMilli(), 10)+"|"+scope+"|"+position)
}

// openPage returns the position of a NextToken made by sealPage for kind,
// cluster and scope: an ErrInvalidArgument if it is not one (or of another
// scope), an ErrExpiredNextToken if it is older than pageTokenTTL.
func (s *Server) openPage(op string, kind tokenKind, c *runnel.Cluster, scope, token string) (string, error) {
	text, err := s.open(op, "NextToken", kind, c, token)
	if err != nil {
		return "", err
	}
	issued, rest, _ := strings.Cut(text, "|")
	scoped, position, ok := strings.Cut(rest, "|")
	ms, perr := strconv.ParseInt(issued, 10, 64)
	switch {
	case !ok || perr != nil || scoped != scope:
		return "", &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("NextToken %.60q is not one of this listing's", token)}
	case c.Now().Sub(time.UnixMilli(ms)) > pageTokenTTL:
		return "", &runnel.Error{Op: op, Kind: runnel.ErrExpiredNextToken, Msg: fmt.Sprintf("NextToken %.60q expired: it lives %v", token, pageTokenTTL)}
	}
	return position, nil
}
