// Command runnel runs runnel's Kinesis API server: a local Amazon Kinesis
// Data Streams endpoint for any AWS SDK or the AWS CLI.
//
//	runnel serve [-addr 127.0.0.1:4567] [-limits kinesis|off] [-shard-quota N] [-region R] [-account ID]
//	             [-tls | -tls-cert FILE -tls-key FILE] [-credentials FILE] [-metrics=true]
//	             [-control] [-control-token T] [-stream-delay D] [-consumer-delay D] [-reshard-delay D]
//	             [-data-dir DIR [-sync always|os|interval=D]] [-log-level info]
//
// It listens on a loopback address unless told otherwise, logs with
// log/slog to standard error, and shuts down gracefully on SIGINT or
// SIGTERM.
//
// It serves every account and region a client signs for, each from its
// own cluster made with the same flags: the region of the request's
// signature, and the account of its access key (from -credentials, or the
// key itself when it is a 12-digit account id, or else -account).
//
// With -tls it serves HTTPS (HTTP/2 or HTTP/1.1, by ALPN) with a new
// self-signed certificate for 127.0.0.1, ::1 and localhost (and the host
// of -addr), and logs the file its PEM is in, for clients to trust:
//
//	aws --endpoint-url https://127.0.0.1:4567 --ca-bundle /tmp/runnel-ca-….pem kinesis list-streams
//
// -tls-cert and -tls-key serve a certificate and key of PEM files instead.
//
// With -credentials it verifies the AWS Signature Version 4 of every
// request against the access keys of a file, one a line:
//
//	# ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID]
//	AKIDEXAMPLE wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY 111122223333
//
// Blank lines and lines that start with # are skipped; a key without an
// account id is for the account of -account.
//
// It serves metrics in the Prometheus text format at /metrics (unless
// -metrics=false). With -control (or -control-token) it serves the control
// API for tests under /runnel/ to loopback clients with the token, which it
// logs when it made one: inject faults, move the clock forward, read stats.
//
// With -data-dir it keeps everything in a directory, so that a restart
// (or a crash) loses nothing: each account's and region's cluster is a
// durable runnel cluster (runnel.Open) in a directory of its own, and the
// server's state file keeps its account settings and channels, and the
// key that authenticates shard iterators and NextTokens (made at the
// first start), so that iterators handed out before a restart go on where
// they were after it:
//
//	DIR/serve.lock               held while a runnel serve uses DIR: a second one fails
//	DIR/server.json              the server's token key, account settings and channels (server.WithStateFile; mode 0600)
//	DIR/<account>/<region>/      the cluster of an account and region (runnel.Open)
//
// -sync says when records reach the disk: always (the default: a put
// returns once its records are fsynced; nothing acknowledged is lost),
// os (the operating system writes them back; a crash of the machine may
// lose the last seconds), or interval=D (fsync every D; a crash may lose
// the last D). Without -data-dir everything is in memory, and gone when
// it ends.
//
// -stream-delay, -consumer-delay and -reshard-delay make streams CREATING
// and DELETING, consumers CREATING and DELETING, and resharding streams
// UPDATING for that long, as Kinesis takes seconds; by default every
// change is done at once.
package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "runnel:", err)
		os.Exit(2)
	}
}

const usage = `usage: runnel serve [flags]

Serves the Amazon Kinesis Data Streams API from an in-process runnel
cluster. Point any AWS SDK or the AWS CLI at it:

  aws --endpoint-url http://127.0.0.1:4567 kinesis list-streams

With -tls, trust the certificate file it logs:

  aws --endpoint-url https://127.0.0.1:4567 --ca-bundle FILE kinesis list-streams

Streams live in memory unless -data-dir names a directory to keep them
in: with it, streams, records, iterators, account settings and channels
survive a restart (DIR/server.json holds the key of the iterators, the
settings and the channels; DIR/ACCOUNT/REGION/ each cluster), and -sync
(default always) says when records reach the disk: always, os, or
interval=DURATION.

Flags:
`

// run runs the command with args until ctx ends. It logs to logw; ready,
// if not nil, receives the address the server listens on.
func run(ctx context.Context, args []string, logw io.Writer, ready chan<- string) (err error) {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprint(logw, usage)
		fs := serveFlags(logw)
		fs.PrintDefaults()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("the only command is serve")
	}
	fs := serveFlags(logw)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg := fs.cfg
	if *cfg.shardQuota < 1 {
		return fmt.Errorf("-shard-quota %d must be at least 1", *cfg.shardQuota)
	}
	dataDir := *cfg.dataDir
	syncSet := false
	fs.Visit(func(f *flag.Flag) { syncSet = syncSet || f.Name == "sync" })
	if syncSet && dataDir == "" {
		return fmt.Errorf("-sync %s needs -data-dir: without it the streams are in memory", cfg.sync)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*cfg.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: %w", *cfg.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))
	limits := runnel.KinesisLimits()
	switch *cfg.limits {
	case "kinesis":
	case "off":
		limits = runnel.Unlimited()
	default:
		return fmt.Errorf("-limits %q must be kinesis or off", *cfg.limits)
	}
	var creds []server.Credential
	if *cfg.credentials != "" {
		var err error
		if creds, err = readCredentials(*cfg.credentials); err != nil {
			return err
		}
	}
	tlsConfig, err := loadTLS(cfg)
	if err != nil {
		return err
	}

	for name, d := range map[string]time.Duration{"-stream-delay": *cfg.streamDelay, "-consumer-delay": *cfg.consumerDelay, "-reshard-delay": *cfg.reshardDelay} {
		if d < 0 {
			return fmt.Errorf("%s %v must not be negative", name, d)
		}
	}
	var data *dataDirectory
	if dataDir != "" {
		if data, err = openDataDir(dataDir, *cfg.account, *cfg.region); err != nil {
			return err
		}
		defer data.close()
	}
	control := *cfg.control || *cfg.controlToken != ""
	var clock *server.Clock // the control API moves it forward
	if control {
		clock = new(server.Clock)
	}
	clusterOptions := func(account, region string) []runnel.ClusterOption {
		opts := []runnel.ClusterOption{runnel.WithRegion(region), runnel.WithAccountID(account),
			runnel.WithShardQuota(*cfg.shardQuota), runnel.WithLogger(log), runnel.WithStreamDefaults(
				runnel.WithLimits(limits), runnel.WithStreamStatusDelay(*cfg.streamDelay),
				runnel.WithConsumerStatusDelay(*cfg.consumerDelay), runnel.WithReshardDuration(*cfg.reshardDelay))}
		if clock != nil {
			opts = append(opts, clock.ClusterOption())
		}
		return opts
	}
	// openCluster makes the cluster of an account and region: in memory,
	// or, with -data-dir, opened in its directory.
	openCluster := func(account, region string) (*runnel.Cluster, error) {
		if data == nil {
			return runnel.NewCluster(clusterOptions(account, region)...), nil
		}
		dir, err := data.clusterDir(account, region)
		if err != nil {
			return nil, err
		}
		c, err := runnel.Open(dir, append(clusterOptions(account, region), runnel.WithSync(cfg.sync.policy))...)
		if err != nil {
			return nil, fmt.Errorf("-data-dir: opening the cluster of account %s in %s: %w", account, region, err)
		}
		return c, nil
	}
	c, err := openCluster(*cfg.account, *cfg.region)
	if err != nil {
		return err
	}
	defer func() { // after the server's Close, which closes the clusters it made
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the cluster of account %s in %s: %w", *cfg.account, *cfg.region, cerr))
		}
	}()
	newCluster := func(account, region string) (*runnel.Cluster, error) {
		log.Info("runnel: serving another account and region", "account", account, "region", region)
		return openCluster(account, region)
	}
	opts := []server.Option{server.WithLogger(log), server.WithClusters(newCluster)}
	if data != nil {
		opts = append(opts, server.WithStateFile(data.stateFile())) // which keeps the token key too
	}
	signatures := "not verified"
	if creds != nil {
		opts = append(opts, server.WithCredentials(creds...))
		signatures = fmt.Sprintf("verified, %d access keys", len(creds))
	}
	if *cfg.metrics {
		opts = append(opts, server.WithMetrics())
	}
	if control {
		opts = append(opts, server.WithControlAPI(*cfg.controlToken, clock))
	}
	srv := server.New(c, opts...)
	defer func() { // after Shutdown too: it closes the clusters the server made
		err = errors.Join(err, srv.Close())
	}()
	if err := srv.Err(); err != nil {
		return err
	}

	var caBundle string // the file of a self-signed certificate
	if tlsConfig != nil && *cfg.tls {
		if caBundle, err = writeCertificate(tlsConfig.Certificates[0]); err != nil {
			return err
		}
		defer os.Remove(caBundle)
	}
	l, err := net.Listen("tcp", *cfg.addr)
	if err != nil {
		return err
	}
	scheme := "http://"
	if tlsConfig != nil {
		scheme = "https://"
	}
	log.Info("runnel: serving the Kinesis API", "addr", scheme+l.Addr().String(), "region", *cfg.region, "account", *cfg.account, "limits", *cfg.limits, "signatures", signatures)
	if data != nil {
		log.Info("runnel: keeping streams, records, iterators, account settings and channels in the data directory", "data-dir", data.dir, "sync", cfg.sync.policy.String())
	}
	if control && *cfg.controlToken == "" {
		log.Info("runnel: serving the control API to loopback clients with a new token (Authorization: Bearer <token>)", "token", srv.ControlToken())
	}
	if caBundle != "" {
		log.Info("runnel: serving TLS with a self-signed certificate; clients trust it with its PEM file (aws --ca-bundle)", "ca-bundle", caBundle)
	}
	if ready != nil {
		ready <- l.Addr().String()
	}
	done := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			done <- srv.ServeTLS(l, tlsConfig)
			return
		}
		done <- srv.Serve(l)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("runnel: shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveConfig holds serve's flags.
type serveConfig struct {
	addr, limits, region, account, logLevel  *string
	shardQuota                               *int
	tls                                      *bool
	tlsCert, tlsKey, credentials             *string
	metrics, control                         *bool
	controlToken                             *string
	streamDelay, consumerDelay, reshardDelay *time.Duration
	dataDir                                  *string
	sync                                     *syncFlag
}

// syncFlag is the value of -sync: always, os or interval=DURATION.
type syncFlag struct{ policy runnel.SyncPolicy }

func (f *syncFlag) String() string {
	if f == nil {
		return runnel.SyncAlways().String()
	}
	return f.policy.String()
}

func (f *syncFlag) Set(s string) error {
	p, err := parseSync(s)
	if err != nil {
		return err
	}
	f.policy = p
	return nil
}

// parseSync parses a sync policy as SyncPolicy.String names it: always,
// os, or interval=DURATION with a positive duration.
func parseSync(s string) (runnel.SyncPolicy, error) {
	switch s {
	case "always":
		return runnel.SyncAlways(), nil
	case "os":
		return runnel.SyncOS(), nil
	}
	if d, ok := strings.CutPrefix(s, "interval="); ok {
		every, err := time.ParseDuration(d)
		switch {
		case err != nil:
			return runnel.SyncPolicy{}, fmt.Errorf("the interval %q is not a duration (100ms, 1s)", d)
		case every <= 0:
			return runnel.SyncPolicy{}, fmt.Errorf("the interval %v must be positive", every)
		}
		return runnel.SyncInterval(every), nil
	}
	return runnel.SyncPolicy{}, errors.New("must be always, os or interval=DURATION (interval=1s)")
}

type flagSet struct {
	*flag.FlagSet
	cfg serveConfig
}

func serveFlags(out io.Writer) flagSet {
	fs := flag.NewFlagSet("runnel serve", flag.ContinueOnError)
	fs.SetOutput(out)
	sync := &syncFlag{policy: runnel.SyncAlways()}
	fs.Var(sync, "sync", "with -data-dir, when records reach the disk: always (before the put returns), os (when the operating system writes them back) or interval=DURATION (fsynced every DURATION) (default always)")
	return flagSet{fs, serveConfig{
		sync:          sync,
		dataDir:       fs.String("data-dir", "", "keep the streams, records, iterators, account settings and channels in this `directory`, so that they survive a restart (default: in memory)"),
		addr:          fs.String("addr", "127.0.0.1:4567", "the address to listen on (loopback by default)"),
		limits:        fs.String("limits", "kinesis", "per-shard throughput limits of new streams: kinesis or off"),
		region:        fs.String("region", "us-east-1", "the default region, of unsigned requests: the region named in its ARNs"),
		account:       fs.String("account", "000000000000", "the default account id, of unsigned requests and of access keys that name no account"),
		logLevel:      fs.String("log-level", "info", "debug, info, warn or error"),
		shardQuota:    fs.Int("shard-quota", 20_000, "the most open shards of all streams (of each account and region)"),
		tls:           fs.Bool("tls", false, "serve HTTPS with a new self-signed certificate, whose PEM file is logged (for aws --ca-bundle)"),
		tlsCert:       fs.String("tls-cert", "", "serve HTTPS with the certificate (chain) of this PEM `file`; with -tls-key"),
		tlsKey:        fs.String("tls-key", "", "the PEM `file` of the private key of -tls-cert"),
		credentials:   fs.String("credentials", "", "verify the signature of every request against the access keys of this `file`: lines of ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID]"),
		metrics:       fs.Bool("metrics", true, "serve Prometheus metrics at /metrics"),
		control:       fs.Bool("control", false, "serve the control API for tests (faults, the clock, stats) under /runnel/ to loopback clients, with a new token it logs"),
		controlToken:  fs.String("control-token", "", "serve the control API with this `token` (implies -control)"),
		streamDelay:   fs.Duration("stream-delay", 0, "how long streams are CREATING and DELETING"),
		consumerDelay: fs.Duration("consumer-delay", 0, "how long stream consumers are CREATING and DELETING"),
		reshardDelay:  fs.Duration("reshard-delay", 0, "how long each split or merge keeps a stream UPDATING"),
	}}
}

// loadTLS returns the TLS configuration the flags ask for, or nil for
// plain HTTP.
func loadTLS(cfg serveConfig) (*tls.Config, error) {
	switch {
	case *cfg.tls && (*cfg.tlsCert != "" || *cfg.tlsKey != ""):
		return nil, errors.New("-tls makes a certificate, and -tls-cert and -tls-key give one: use one or the other")
	case (*cfg.tlsCert == "") != (*cfg.tlsKey == ""):
		return nil, errors.New("-tls-cert and -tls-key go together")
	case *cfg.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(*cfg.tlsCert, *cfg.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert %s -tls-key %s: %w", *cfg.tlsCert, *cfg.tlsKey, err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
	case *cfg.tls:
		hosts := []string{"127.0.0.1", "::1", "localhost"}
		if host, _, err := net.SplitHostPort(*cfg.addr); err == nil && host != "" && !slices.Contains(hosts, host) {
			if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
				hosts = append(hosts, host)
			}
		}
		cert, err := server.SelfSignedCertificate(hosts...)
		if err != nil {
			return nil, fmt.Errorf("-tls: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
	}
	return nil, nil
}

// writeCertificate writes a certificate as PEM to a new file in the
// temporary directory, for clients to trust, and returns its name.
func writeCertificate(cert tls.Certificate) (string, error) {
	f, err := os.CreateTemp("", "runnel-ca-*.pem")
	if err != nil {
		return "", fmt.Errorf("-tls: writing the certificate: %w", err)
	}
	for _, der := range cert.Certificate {
		if err == nil {
			err = pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("-tls: writing the certificate to %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// accountID is the shape of an AWS account id.
var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// readCredentials reads the access keys of a -credentials file: one a
// line, as ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID] separated by
// spaces or tabs. Blank lines and lines that start with # are skipped.
// An error names the file and the line, never a secret.
func readCredentials(name string) ([]server.Credential, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("-credentials: %w", err)
	}
	var creds []server.Credential
	lines := make(map[string]int) // the line of each access key
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("-credentials %s line %d: %s", name, n, fmt.Sprintf(format, args...))
		}
		f := strings.Fields(line)
		switch {
		case len(f) < 2 || len(f) > 3:
			return nil, bad("%d fields; a line is ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID]", len(f))
		case strings.ContainsAny(f[0], "/,="):
			return nil, bad("the access key id %q has a slash, a comma or an equals sign", f[0])
		case len(f) == 3 && !accountID.MatchString(f[2]):
			return nil, bad("the account id %q is not 12 digits", f[2])
		case lines[f[0]] != 0:
			return nil, bad("the access key id %q is on line %d already", f[0], lines[f[0]])
		}
		lines[f[0]] = n
		c := server.Credential{AccessKeyID: f[0], SecretAccessKey: f[1]}
		if len(f) == 3 {
			c.AccountID = f[2]
		}
		creds = append(creds, c)
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("-credentials %s has no access keys", name)
	}
	return creds, nil
}
