package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/runnel-go/runnel"
)

// ServeTLS accepts TLS connections on l until Close, and serves each the
// HTTP version its client picks by ALPN: HTTP/2 ("h2", which the AWS
// SDKs pick when they can) or HTTP/1.1 ("http/1.1", or a client that
// offers no ALPN). It may run alongside Serve on other listeners, and
// ends the same way: it closes l and returns http.ErrServerClosed after
// Close or Shutdown.
//
// cfg must hold a certificate (Certificates, GetCertificate or
// GetConfigForClient); SelfSignedCertificate makes one. ServeTLS uses a
// copy of cfg, whose NextProtos it completes with "h2" and "http/1.1";
// cfg is not changed, and may be used again. A server whose state file
// could not be read (Err) closes l and returns that error at once.
func (s *Server) ServeTLS(l net.Listener, cfg *tls.Config) error {
	if s.stateErr != nil {
		l.Close()
		return s.stateErr
	}
	if cfg == nil || len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		l.Close()
		return &runnel.Error{Op: "ServeTLS", Kind: runnel.ErrInvalidArgument, Msg: "the TLS configuration has no certificate: set Certificates (see SelfSignedCertificate) or GetCertificate"}
	}
	cfg = cfg.Clone()
	cfg.NextProtos = slices.Clone(cfg.NextProtos)
	for _, proto := range []string{"h2", "http/1.1"} {
		if !slices.Contains(cfg.NextProtos, proto) {
			cfg.NextProtos = append(cfg.NextProtos, proto)
		}
	}
	return s.http.Serve(tls.NewListener(l, cfg))
}

// selfSignedValidity is how long a certificate of SelfSignedCertificate
// is valid: long enough for a development session, short enough that a
// copy of it is soon worthless.
const selfSignedValidity = 30 * 24 * time.Hour

// SelfSignedCertificate makes a new ECDSA P-256 key and a certificate of
// it, signed by itself, for serving TLS to the given hosts: IP addresses
// (127.0.0.1, ::1, or in brackets, [::1]) and DNS names (localhost,
// kinesis.local, *.example.test). With no hosts it is for 127.0.0.1, ::1
// and localhost. The certificate is valid from an hour ago (for clocks
// behind the server's) for 30 days, and may serve as its own certificate
// authority: clients trust it as one (the AWS CLI's --ca-bundle, an
// x509.CertPool's AddCert of the returned Leaf). A host that is neither
// an IP address nor a DNS name is an ErrInvalidArgument naming it.
func SelfSignedCertificate(hosts ...string) (tls.Certificate, error) {
	const op = "SelfSignedCertificate"
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"runnel"}, CommonName: "runnel self-signed " + now.UTC().Format(time.DateOnly)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if !isDNSName(h) {
			return tls.Certificate{}, &runnel.Error{Op: op, Kind: runnel.ErrInvalidArgument, Msg: fmt.Sprintf("the host %.100q is neither an IP address nor a DNS name", h)}
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: "drawing a serial number failed", Err: err}
	}
	tmpl.SerialNumber = serial
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: "generating the key failed", Err: err}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: "signing the certificate failed", Err: err}
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, &runnel.Error{Op: op, Kind: runnel.ErrInternalFailure, Msg: "reading the certificate back failed", Err: err}
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// isDNSName reports whether h is a DNS name a certificate can name:
// dot-separated labels of letters, digits and hyphens (not at either end
// of a label), at most 63 bytes each and 253 in all, the first of which
// may be the wildcard "*".
func isDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i, label := range strings.Split(h, ".") {
		if label == "*" && i == 0 && strings.Contains(h, ".") {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
