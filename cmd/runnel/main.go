// Command runnel runs runnel's Kinesis API server: a local Amazon Kinesis
// Data Streams endpoint for any AWS SDK or the AWS CLI.
//
//	runnel serve [-addr 127.0.0.1:4567] [-limits kinesis|off] [-shard-quota N] [-region R] [-account ID] [-log-level info]
//
// It listens on a loopback address unless told otherwise, logs with
// log/slog to standard error, and shuts down gracefully on SIGINT or
// SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
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

Flags:
`

// run runs the command with args until ctx ends. It logs to logw; ready,
// if not nil, receives the address the server listens on.
func run(ctx context.Context, args []string, logw io.Writer, ready chan<- string) error {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprint(logw, usage)
		serveFlags(io.Discard).PrintDefaults()
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
	c := runnel.NewCluster(runnel.WithRegion(*cfg.region), runnel.WithAccountID(*cfg.account),
		runnel.WithShardQuota(*cfg.shardQuota), runnel.WithLogger(log), runnel.WithStreamDefaults(runnel.WithLimits(limits)))
	defer c.Close()
	l, err := net.Listen("tcp", *cfg.addr)
	if err != nil {
		return err
	}
	srv := server.New(c, server.WithLogger(log))
	log.Info("runnel: serving the Kinesis API", "addr", "http://"+l.Addr().String(), "region", *cfg.region, "limits", *cfg.limits)
	if ready != nil {
		ready <- l.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
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
	addr, limits, region, account, logLevel *string
	shardQuota                              *int
}

type flagSet struct {
	*flag.FlagSet
	cfg serveConfig
}

func serveFlags(out io.Writer) flagSet {
	fs := flag.NewFlagSet("runnel serve", flag.ContinueOnError)
	fs.SetOutput(out)
	return flagSet{fs, serveConfig{
		addr:       fs.String("addr", "127.0.0.1:4567", "the address to listen on (loopback by default)"),
		limits:     fs.String("limits", "kinesis", "per-shard throughput limits of new streams: kinesis or off"),
		region:     fs.String("region", "us-east-1", "the region named in ARNs"),
		account:    fs.String("account", "000000000000", "the account id named in ARNs"),
		logLevel:   fs.String("log-level", "info", "debug, info, warn or error"),
		shardQuota: fs.Int("shard-quota", 20_000, "the most open shards of all streams"),
	}}
}
