// Command upload is the Upload API: it creates uploads (a sequence and a
// presigned PUT URL), shows their status, cancels them, and reads the
// site's catalog.
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
		fmt.Fprintln(os.Stderr, "upload:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	logger := logging.New("upload")
	clients, err := awsconfig.Load(ctx)
	if err != nil {
		return err
	}
	env, err := layout.RequireEnv(layout.EnvIncomingBucket, layout.EnvStoreBucket, layout.EnvImportQueueURL)
	if err != nil {
		return err
	}
	store := env[layout.EnvStoreBucket]
	h := &Handler{
		S3: clients.S3, SQS: clients.SQS, Presign: s3Presigner{client: clients.S3},
		Uploads: uploads.NewStore(clients.S3, store), Catalog: catalogAdapter{catalog.New(clients.S3, store)},
		IncomingBucket: env[layout.EnvIncomingBucket], StoreBucket: store, ImportQueueURL: env[layout.EnvImportQueueURL],
		Logger: logger, Metrics: metrics.New(os.Stdout, metrics.Namespace, "upload", time.Now),
	}
	lambda.Start(h.Handle)
	return nil
}

// catalogAdapter shows a catalog.Store as the API's catalogView.
type catalogAdapter struct{ store *catalog.Store }

func (c catalogAdapter) Summary(ctx context.Context, site string) (uint64, uint64, int64, error) {
	v, err := c.store.Head(ctx, site)
	if err != nil {
		return 0, 0, 0, err
	}
	return v.Version, v.AppliedSeq, v.Products, nil
}

func (c catalogAdapter) Product(ctx context.Context, site, id string) ([]byte, bool, error) {
	v, err := c.store.Head(ctx, site)
	if err != nil {
		return nil, false, err
	}
	return c.store.Get(ctx, site, v, id)
}
