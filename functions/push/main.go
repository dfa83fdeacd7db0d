// Command push delivers catalog changes to a site's destinations: one job of
// the sync FIFO queue (group = site + destination) at a time per
// destination, from its acknowledged version to the catalog head.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/feedpipe/feedpipe/shared/awsconfig"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/logging"
	"github.com/feedpipe/feedpipe/shared/metrics"
)

// EnvAllowLoopbackHTTP allows http:// webhooks to loopback addresses (the
// dev and test stacks set it through the AllowLoopbackHttp parameter).
const EnvAllowLoopbackHTTP = "FEEDPIPE_ALLOW_LOOPBACK_HTTP"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "push:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	clients, err := awsconfig.Load(ctx)
	if err != nil {
		return err
	}
	env, err := layout.RequireEnv(layout.EnvStoreBucket, layout.EnvSyncQueueURL)
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	if timeout, err = layout.EnvSeconds("WEBHOOK_TIMEOUT_SECONDS", timeout, 1); err != nil {
		return err
	}
	allowLoopback := os.Getenv(EnvAllowLoopbackHTTP) == "true"
	store := env[layout.EnvStoreBucket]
	h := &Handler{
		S3: clients.S3, DestS3: clients.S3, OwnBuckets: []string{os.Getenv(layout.EnvIncomingBucket)}, SQS: clients.SQS, Catalog: catalog.New(clients.S3, store), StoreBucket: store,
		SyncQueueURL: env[layout.EnvSyncQueueURL], HTTP: NewHTTPClient(allowLoopback, timeout, 4), AllowLoopbackHTTP: allowLoopback,
		Logger:  logging.New("push"),
		Metrics: metrics.New(os.Stdout, metrics.Namespace, "push", time.Now),
	}
	lambda.Start(h.Handle)
	return nil
}
