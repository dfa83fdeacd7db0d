// Command copy is the copy stage: S3 ObjectCreated events of the incoming
// bucket, through the standard copy queue, become queued imports.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/feedpipe/feedpipe/shared/awsconfig"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/logging"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "copy:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	clients, err := awsconfig.Load(ctx)
	if err != nil {
		return err
	}
	env, err := layout.RequireEnv(layout.EnvIncomingBucket, layout.EnvStoreBucket, layout.EnvImportQueueURL)
	if err != nil {
		return err
	}
	h := &Handler{
		S3: clients.S3, SQS: clients.SQS, Uploads: uploads.NewStore(clients.S3, env[layout.EnvStoreBucket]),
		IncomingBucket: env[layout.EnvIncomingBucket], StoreBucket: env[layout.EnvStoreBucket], ImportQueueURL: env[layout.EnvImportQueueURL],
		Logger:  logging.New("copy"),
		Metrics: metrics.New(os.Stdout, metrics.Namespace, "copy", time.Now),
	}
	lambda.Start(h.Handle)
	return nil
}
