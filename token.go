package runnel

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
)

// maxTokenLen bounds the tokens runnel reads (iterators, NextTokens).
const maxTokenLen = 1024

// sealToken turns a token's bytes into its opaque text: the bytes and their
// CRC-32, in URL-safe base64. The checksum catches damage, not forgery; the
// Kinesis API front end signs tokens on top.
func sealToken(b []byte) string {
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return base64.RawURLEncoding.EncodeToString(b)
}

// openToken returns the bytes of a token made by sealToken, or false if the
// text is not one: too long, not canonical base64, or a checksum mismatch.
func openToken(s string) ([]byte, bool) {
	if len(s) > maxTokenLen {
		return nil, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 5 {
		return nil, false
	}
	body := b[:len(b)-4]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, false
	}
	return body, true
}
