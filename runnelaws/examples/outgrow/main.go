// Command outgrow is one program with one producer and one consumer group
// that runs in process, against `runnel serve`, or against Amazon Kinesis:
// only the choice of the stream differs, by flag or environment.
//
//	go run ./examples/outgrow                                 # in process
//	(cd ../cmd/runnel && go run . serve) &                    # a local endpoint
//	go run ./examples/outgrow -target serve                   # against it
//	go run ./examples/outgrow -target aws -stream my-stream   # Amazon Kinesis
//
// -target defaults to $RUNNEL_TARGET, -endpoint to $RUNNEL_ENDPOINT.
// Against AWS it uses the SDK's default credentials and region, and the
// stream must exist. Each run marks its records with a run id and counts
// only its own, so a stream that holds earlier runs' records (which the
// group reads too, from TRIM_HORIZON) does not inflate the count.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/runnel-go/runnel"
	"github.com/runnel-go/runnel/runnelaws"
)

// stream is what the program needs of a stream: a producer's Putter and a
// consumer group's StreamReader. *runnel.Stream and *runnelaws.Stream are
// both.
type stream interface {
	runnel.Putter
	runnel.StreamReader
}

func main() {
	target := flag.String("target", envOr("RUNNEL_TARGET", "inproc"), "where the stream is: inproc, serve or aws")
	endpoint := flag.String("endpoint", envOr("RUNNEL_ENDPOINT", "http://127.0.0.1:4567"), "the endpoint of runnel serve, for -target serve")
	name := flag.String("stream", "outgrow", "the stream's name")
	n := flag.Int("n", 1000, "records to write and read")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s, err := open(ctx, *target, *endpoint, *name)
	if err != nil {
		log.Fatal(err)
	}

	// From here on, nothing depends on where the stream is.
	p, err := runnel.NewProducer(ctx, s)
	if err != nil {
		log.Fatal(err)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	for i := range *n {
		rec := runnel.ProducerRecord{PartitionKey: "user-" + strconv.Itoa(i%10), Data: []byte(run + strconv.Itoa(i))}
		if err := p.Put(ctx, rec, nil); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]bool{} // this run's records, each once: delivery is at least once
	done := make(chan struct{})
	var finished sync.Once
	group, err := runnel.NewConsumer(s, "outgrow-app", func(string) runnel.RecordProcessor {
		return runnel.ProcessorFunc(func(ctx context.Context, in runnel.ProcessRecordsInput) error {
			mu.Lock()
			for _, r := range in.Records {
				if d := string(r.Data); strings.HasPrefix(d, run) {
					seen[d] = true
				}
			}
			if len(seen) == *n {
				finished.Do(func() { close(done) })
			}
			mu.Unlock()
			return in.Checkpointer.Checkpoint(ctx)
		})
	}, runnel.WithInitialPosition(runnel.StartingPosition{Type: runnel.TrimHorizon}))
	if err != nil {
		log.Fatal(err)
	}
	ok := true
	select {
	case <-done:
		fmt.Printf("%s: wrote %d records and read them\n", *target, *n)
	case <-ctx.Done():
		mu.Lock()
		fmt.Printf("%s: read %d of %d records in time\n", *target, len(seen), *n)
		mu.Unlock()
		ok = false
	}
	if err := group.Close(); err != nil || !ok {
		log.Fatalf("%s: the consumer group failed (Close: %v)", *target, err)
	}
}

// open returns the stream: in process, or through the AWS SDK.
func open(ctx context.Context, target, endpoint, name string) (stream, error) {
	switch target {
	case "inproc":
		c := runnel.NewCluster()
		return c.CreateStream(ctx, name, runnel.WithShardCount(2))
	case "serve":
		k := kinesis.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
			Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
		if err := ensureStream(ctx, k, name); err != nil {
			return nil, err
		}
		return runnelaws.NewStream(k, name)
	case "aws":
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		return runnelaws.NewStream(kinesis.NewFromConfig(cfg), name)
	}
	return nil, fmt.Errorf("-target %q: want inproc, serve or aws", target)
}

// ensureStream creates the stream on a local endpoint if it is missing and
// waits until it is ACTIVE.
func ensureStream(ctx context.Context, k *kinesis.Client, name string) error {
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2)})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return err
	}
	return kinesis.NewStreamExistsWaiter(k).Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, time.Minute)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
