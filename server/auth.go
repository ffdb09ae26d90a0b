package server

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-go/runnel"
)

// A server given credentials (WithCredentials) verifies the AWS Signature
// Version 4 of every Kinesis API request, as Kinesis does: the client
// hashes a canonical form of the request (method, path, query, the
// headers it names as signed, and the body) and signs that hash, with its
// date and credential scope (date, region, service), by an HMAC-SHA256
// chain keyed by its secret access key. The server rebuilds the same
// string from the request it received and compares the signatures.

// Credential is an access key that a server verifies signatures with
// (WithCredentials).
type Credential struct {
	// AccessKeyID names the key in a signature's credential scope.
	AccessKeyID string
	// SecretAccessKey is the secret the client signs with; it never
	// appears in an error or a log.
	SecretAccessKey string
	// AccountID is the 12-digit account id of the key, which picks the
	// cluster that serves its requests (see WithClusters). Empty means the
	// default cluster's account.
	AccountID string
}

// WithCredentials makes the server verify the AWS Signature Version 4
// (AWS4-HMAC-SHA256, in the Authorization header) of every Kinesis API
// request against these access keys, as Kinesis does. A request must be
// signed for the service "kinesis" in any region, with one of the keys,
// at most 15 minutes before or after the server's clock (X-Amz-Date, or
// Date); its signature must cover its host, its date and its X-Amz-Target
// header, and match its method, path, query, signed headers and body. An
// X-Amz-Content-Sha256 header, when sent, must be the body's SHA-256.
// Signatures are compared in constant time.
//
// A refused request gets the service's errors, all with HTTP 400:
// MissingAuthenticationTokenException when it is not signed,
// IncompleteSignatureException when its signature is malformed or names a
// header the request lacks, UnrecognizedClientException when its access
// key is unknown, and InvalidSignatureException when its signature does
// not match, its scope is not kinesis's, or it is stale ("Signature
// expired: …"; the AWS SDKs correct their clock from the response's Date
// and sign again).
//
// Each call adds to the keys of earlier calls. A Credential without an
// access key or a secret, with an access key of spaces, slashes or
// commas, with an AccountID that is not 12 digits, or whose access key
// was given before with another secret or account, is a mistake of the
// caller: every request then fails with InternalFailureException naming
// it (never its secret). WithCredentials() with no keys refuses every
// request. Not verified: the server's own endpoints (metrics, the
// control API), presigned URLs (which are refused as unsigned) and
// session tokens (X-Amz-Security-Token is ignored).
//
// Default: signatures are not verified; the access key and region a
// request names still route it (see WithClusters).
func WithCredentials(creds ...Credential) Option {
	return func(s *Server) {
		if s.credentials == nil {
			s.credentials = make(map[string]Credential, len(creds))
		}
		if s.accounts == nil {
			s.accounts = make(map[string]string, len(creds))
		}
		for i, c := range creds {
			if err := s.addCredential(c); err != nil && s.credentialsErr == nil {
				s.credentialsErr = &runnel.Error{Op: "WithCredentials", Kind: runnel.ErrInternalFailure, Msg: fmt.Sprintf("credential %d of %d: %s", i+1, len(creds), err)}
			}
		}
	}
}

// addCredential adds one access key, or says what is wrong with it.
func (s *Server) addCredential(c Credential) error {
	switch {
	case c.AccessKeyID == "":
		return fmt.Errorf("the access key id is empty")
	case strings.ContainsAny(c.AccessKeyID, "/, \t\r\n="):
		return fmt.Errorf("the access key id %.64q has a space, a slash, a comma or an equals sign", c.AccessKeyID)
	case c.SecretAccessKey == "":
		return fmt.Errorf("access key %.64q has no secret access key", c.AccessKeyID)
	case c.AccountID != "" && !accountPattern.MatchString(c.AccountID):
		return fmt.Errorf("the account id %.64q of access key %.64q is not 12 digits", c.AccountID, c.AccessKeyID)
	}
	if s.cluster != nil {
		c.AccountID = cmp.Or(c.AccountID, s.cluster.AccountID())
	}
	if old, ok := s.credentials[c.AccessKeyID]; ok && old != c {
		return fmt.Errorf("access key %.64q is given twice, with different secrets or accounts", c.AccessKeyID)
	}
	s.credentials[c.AccessKeyID] = c
	s.accounts[c.AccessKeyID] = c.AccountID
	return nil
}

// The constants of Signature Version 4 as Kinesis uses it.
const (
	sigV4Algorithm  = "AWS4-HMAC-SHA256"
	sigV4Service    = "kinesis"
	sigV4Terminator = "aws4_request"
	// sigV4TimeFormat is the ISO 8601 basic format of X-Amz-Date.
	sigV4TimeFormat = "20060102T150405Z"
	sigV4DateFormat = "20060102"
	// sigV4MaxSkew is how far a request's date may be from the server's
	// clock, either way.
	sigV4MaxSkew = 15 * time.Minute
)

// authenticate verifies the signature of a Kinesis API request whose body
// has been read, when the server has credentials (WithCredentials).
func (s *Server) authenticate(r *http.Request, body []byte) error {
	switch {
	case s.credentialsErr != nil:
		return s.credentialsErr
	case s.credentials == nil:
		return nil
	}
	return s.verifySignature(r, body, time.Now())
}

// authError is the refusal of a request's signature.
func authError(kind error, format string, args ...any) error {
	return &runnel.Error{Op: "Authenticate", Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// verifySignature checks the SigV4 signature of a request with body, on
// the server's clock reading now.
func (s *Server) verifySignature(r *http.Request, body []byte, now time.Time) error {
	headers := r.Header.Values("Authorization")
	switch {
	case len(headers) == 0 && r.URL.Query().Has("X-Amz-Signature"):
		return authError(runnel.ErrMissingAuthenticationToken, "the request has no Authorization header; presigned requests (X-Amz-Signature in the query) are not served")
	case len(headers) == 0:
		return authError(runnel.ErrMissingAuthenticationToken, "the request has no Authorization header, and the server verifies AWS Signature Version 4 signatures")
	case len(headers) > 1:
		return authError(runnel.ErrIncompleteSignature, "the request has %d Authorization headers, not one", len(headers))
	}
	a, err := parseAuthorization(headers[0])
	if err != nil {
		return err
	}
	cred, ok := s.credentials[a.accessKey]
	if !ok {
		return authError(runnel.ErrUnrecognizedClient, "the access key %.64q is not one the server knows", a.accessKey)
	}
	signedAt, dateHeader, err := signingTime(r)
	if err != nil {
		return err
	}
	switch {
	case a.date != signedAt.Format(sigV4DateFormat):
		return authError(runnel.ErrInvalidSignature, "the date %s of the credential scope is not that of the %s header, %s", a.date, dateHeader, signedAt.Format(sigV4TimeFormat))
	case a.service != sigV4Service:
		return authError(runnel.ErrInvalidSignature, "the credential is scoped to the service %.64q, not %s", a.service, sigV4Service)
	case a.terminator != sigV4Terminator:
		return authError(runnel.ErrInvalidSignature, "the credential scope ends with %.64q, not %s", a.terminator, sigV4Terminator)
	case signedAt.Before(now.Add(-sigV4MaxSkew)):
		return authError(runnel.ErrInvalidSignature, "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			signedAt.Format(sigV4TimeFormat), now.Add(-sigV4MaxSkew).UTC().Format(sigV4TimeFormat), now.UTC().Format(sigV4TimeFormat))
	case signedAt.After(now.Add(sigV4MaxSkew)):
		return authError(runnel.ErrInvalidSignature, "Signature not yet current: %s is still later than %s (%s + 15 min.)",
			signedAt.Format(sigV4TimeFormat), now.Add(sigV4MaxSkew).UTC().Format(sigV4TimeFormat), now.UTC().Format(sigV4TimeFormat))
	}
	for _, must := range []string{"host", strings.ToLower(dateHeader), "x-amz-target"} {
		if !slices.Contains(a.signedHeaders, must) {
			return authError(runnel.ErrIncompleteSignature, "%s is not among the SignedHeaders %q; the signature must cover it", must, strings.Join(a.signedHeaders, ";"))
		}
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	switch h := r.Header.Values("X-Amz-Content-Sha256"); {
	case len(h) == 1 && h[0] == unsignedPayload:
		// The Java SDK v2 does not sign payloads over HTTPS: the signature
		// covers the literal, as SigV4 has it.
		payloadHash = unsignedPayload
	case len(h) > 0 && (len(h) > 1 || h[0] != payloadHash):
		return authError(runnel.ErrInvalidSignature, "the X-Amz-Content-Sha256 header %.80q is not the SHA-256 of the body, %s (chunked, STREAMING- payloads are not served)", strings.Join(h, ","), payloadHash)
	}
	canonical, err := canonicalRequest(r, a.signedHeaders, payloadHash)
	if err != nil {
		return err
	}
	scope := a.date + "/" + a.region + "/" + a.service + "/" + a.terminator
	canonicalSum := sha256.Sum256([]byte(canonical))
	toSign := sigV4Algorithm + "\n" + signedAt.Format(sigV4TimeFormat) + "\n" + scope + "\n" + hex.EncodeToString(canonicalSum[:])
	key := signingKey(cred.SecretAccessKey, a.date, a.region, a.service)
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		return authError(runnel.ErrInvalidSignature, "the signature does not match the request: check the secret access key of %s, and that nothing changed the request after it was signed; the server's canonical request is %q and its string to sign %q",
			a.accessKey, canonical, toSign)
	}
	return nil
}

// sigV4Authorization is a parsed SigV4 Authorization header:
//
//	AWS4-HMAC-SHA256 Credential=<access key>/<date>/<region>/<service>/aws4_request, SignedHeaders=<a;b;c>, Signature=<hex>
type sigV4Authorization struct {
	accessKey, date, region, service, terminator string
	signedHeaders                                []string // lower case, in the order given
	signature                                    string   // 64 lower-case hexadecimal digits
}

// parseAuthorization parses a SigV4 Authorization header. It checks the
// form of each part, not what the parts say (the scope's service, say):
// a malformed header is an ErrIncompleteSignature naming what is wrong.
func parseAuthorization(header string) (sigV4Authorization, error) {
	var a sigV4Authorization
	incomplete := func(format string, args ...any) (sigV4Authorization, error) {
		return sigV4Authorization{}, authError(runnel.ErrIncompleteSignature, format, args...)
	}
	algorithm, params, _ := strings.Cut(strings.TrimSpace(header), " ")
	if algorithm != sigV4Algorithm {
		return incomplete("the Authorization header's algorithm %.64q is not %s", algorithm, sigV4Algorithm)
	}
	var credential, signedHeaders, signature *string
	for part := range strings.SplitSeq(params, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return incomplete("%.100q in the Authorization header is not a key=value pair", part)
		}
		var p **string
		switch k {
		case "Credential":
			p = &credential
		case "SignedHeaders":
			p = &signedHeaders
		case "Signature":
			p = &signature
		default:
			return incomplete("the Authorization header has the parameter %.64q; it takes Credential, SignedHeaders and Signature", k)
		}
		if *p != nil {
			return incomplete("the Authorization header has the %s parameter twice", k)
		}
		*p = &v
	}
	var missing []string
	for _, p := range []struct {
		name string
		v    *string
	}{{"Credential", credential}, {"SignedHeaders", signedHeaders}, {"Signature", signature}} {
		if p.v == nil {
			missing = append(missing, p.name)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return incomplete("the Authorization header lacks the %s parameter", missing[0])
	default:
		return incomplete("the Authorization header lacks the %s parameters", strings.Join(missing, ", "))
	}

	scope := strings.Split(*credential, "/")
	if len(scope) != 5 || slices.Contains(scope, "") || !isVisibleASCII(*credential) {
		return incomplete("the Credential %.160q is not <access key>/<date>/<region>/<service>/%s", *credential, sigV4Terminator)
	}
	if _, err := time.Parse(sigV4DateFormat, scope[1]); err != nil || len(scope[1]) != len(sigV4DateFormat) {
		return incomplete("the date %.64q of the Credential is not a date of the form YYYYMMDD", scope[1])
	}
	a.accessKey, a.date, a.region, a.service, a.terminator = scope[0], scope[1], scope[2], scope[3], scope[4]

	a.signedHeaders = strings.Split(*signedHeaders, ";")
	for i, h := range a.signedHeaders {
		if !isLowerToken(h) {
			return incomplete("the signed header %.64q is not a lower-case header name", h)
		}
		if slices.Contains(a.signedHeaders[:i], h) {
			return incomplete("the signed header %.64q is named twice", h)
		}
	}

	a.signature = *signature
	if len(a.signature) != sha256.Size*2 || strings.ToLower(a.signature) != a.signature {
		return incomplete("the Signature %.80q is not %d lower-case hexadecimal digits", a.signature, sha256.Size*2)
	}
	if _, err := hex.DecodeString(a.signature); err != nil {
		return incomplete("the Signature %.80q is not %d lower-case hexadecimal digits", a.signature, sha256.Size*2)
	}
	return a, nil
}

// isVisibleASCII reports whether s is all printable ASCII other than the
// space.
func isVisibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// isLowerToken reports whether s is a header name (an RFC 9110 token)
// with no upper-case letters.
func isLowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// signingTime returns the time a request was signed at, from its
// X-Amz-Date header or else its Date header, and the header's name.
func signingTime(r *http.Request) (time.Time, string, error) {
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		t, err := time.Parse(sigV4TimeFormat, v)
		if err != nil {
			return time.Time{}, "", authError(runnel.ErrIncompleteSignature, "the X-Amz-Date header %.64q is not a time of the form YYYYMMDDTHHMMSSZ", v)
		}
		return t, "X-Amz-Date", nil
	}
	if v := r.Header.Get("Date"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, "", authError(runnel.ErrIncompleteSignature, "the Date header %.64q is not an HTTP date", v)
		}
		return t.UTC(), "Date", nil
	}
	return time.Time{}, "", authError(runnel.ErrIncompleteSignature, "the request has neither an X-Amz-Date nor a Date header; a signature needs one")
}

// canonicalRequest returns the SigV4 canonical form of a request: its
// method, path, query, the signed headers (in the order named) and the
// hash of its body, one a line.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) (string, error) {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(sigV4Escape(path, false)) // the escaped path, escaped again, as for every service but S3
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, name := range signed {
		values, ok := signedValues(r, name)
		if !ok {
			return "", authError(runnel.ErrIncompleteSignature, "%.64q is named as a signed header, but the request has no such header", name)
		}
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimHeaderValue(v))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), nil
}

// signedValues returns the values of a request's header, by its lower-case
// name, including those Go's server keeps outside Header.
func signedValues(r *http.Request, name string) ([]string, bool) {
	switch name {
	case "host":
		return []string{r.Host}, r.Host != ""
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			return v, true
		}
		return []string{strconv.FormatInt(r.ContentLength, 10)}, r.ContentLength >= 0
	case "transfer-encoding":
		return []string{strings.Join(r.TransferEncoding, ",")}, len(r.TransferEncoding) > 0
	}
	v := r.Header.Values(name)
	return v, len(v) > 0
}

// trimHeaderValue trims a header value's surrounding white space and
// turns each run of spaces in it into one, as the canonical form has it
// and the Go SDK signs. (botocore and the JavaScript and Java SDKs turn any
// run of white space into a space: a signed header value with a tab in it
// verifies only from the Go SDK.)
func trimHeaderValue(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' && i > 0 && v[i-1] == ' ' {
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// unsignedPayload is the X-Amz-Content-Sha256 of a request whose payload
// the signature does not cover.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// canonicalQuery returns the SigV4 canonical form of a query: each name
// and value escaped, the pairs sorted.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	values, _ := url.ParseQuery(raw) // a malformed pair is left out, and the signature will not match
	var pairs [][2]string
	for k, vs := range values {
		for _, v := range vs {
			pairs = append(pairs, [2]string{sigV4Escape(k, true), sigV4Escape(v, true)})
		}
	}
	slices.SortFunc(pairs, func(a, b [2]string) int { return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1])) })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p[0] + "=" + p[1])
	}
	return b.String()
}

// sigV4Escape escapes every byte of s but the unreserved characters
// (A-Z, a-z, 0-9, '-', '.', '_', '~') as %XX, and '/' too when
// escapeSlash is set.
func sigV4Escape(s string, escapeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		case c == '/' && !escapeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// signingKey derives the key that signs a day's requests for a region and
// service from a secret access key.
func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, sigV4Terminator)
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
