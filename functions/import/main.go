// Command import applies queued uploads to their site's catalog in sequence
// order, from the import FIFO queue (group = site).
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
	"github.com/feedpipe/feedpipe/shared/uploads"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "import:", err)
		os.Exit(1)
	}
}

func run() error {
	h, err := handlerFromEnv(context.Background())
	if err != nil {
		return err
	}
	lambda.Start(h.Handle)
	return nil
}

// handlerFromEnv builds the handler from the function's environment, as the
// Lambda runs it.
func handlerFromEnv(ctx context.Context) (*Handler, error) {
	clients, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	env, err := layout.RequireEnv(layout.EnvStoreBucket, layout.EnvImportQueueURL)
	if err != nil {
		return nil, err
	}
	budget, err := layout.EnvInt("IMPORT_RETRY_BUDGET", DefaultRetryBudget, 1)
	if err != nil {
		return nil, err
	}
	store := env[layout.EnvStoreBucket]
	return &Handler{
		S3: clients.S3, SQS: clients.SQS, Catalog: catalog.New(clients.S3, store, catalog.WithTempDir(os.TempDir())),
		Uploads: uploads.NewStore(clients.S3, store), StoreBucket: store, ImportQueueURL: env[layout.EnvImportQueueURL],
		RetryBudget: budget, Logger: logging.New("import"),
		Metrics: metrics.New(os.Stdout, metrics.Namespace, "import", time.Now),
	}, nil
}
