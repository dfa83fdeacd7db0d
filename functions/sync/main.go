// Command sync is the scheduled function: on its EventBridge schedule it
// expires abandoned uploads and wakes their sites, then plans the catalog
// sync: one job on the sync FIFO queue per due destination of each dirty
// site, under a lease. On its collect schedule ({"action":"collect"}) it
// garbage-collects the catalogs that changed since their last collection.
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
		fmt.Fprintln(os.Stderr, "sync:", err)
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
	grace := 120 * time.Second
	if grace, err = layout.EnvSeconds("EXPIRY_GRACE_SECONDS", grace, 0); err != nil {
		return err
	}
	leaseTTL, err := layout.EnvSeconds("SYNC_LEASE_SECONDS", DefaultLeaseTTL, 1)
	if err != nil {
		return err
	}
	collectGrace, err := layout.EnvSeconds("COLLECT_GRACE_SECONDS", DefaultCollectGrace, 1)
	if err != nil {
		return err
	}
	collectSites, err := layout.EnvInt("COLLECT_MAX_SITES", DefaultCollectSites, 1)
	if err != nil {
		return err
	}
	store := env[layout.EnvStoreBucket]
	cat := catalog.New(clients.S3, store)
	h := &Handler{
		S3: clients.S3, SQS: clients.SQS, Uploads: uploads.NewStore(clients.S3, store), Catalog: applied{cat},
		IncomingBucket: env[layout.EnvIncomingBucket], StoreBucket: store, ImportQueueURL: env[layout.EnvImportQueueURL],
		Grace: grace, Logger: logging.New("sync"),
		Metrics: metrics.New(os.Stdout, metrics.Namespace, "sync", time.Now),
		// Without SYNC_QUEUE_URL the function only resolves expiries.
		Planner:   Planner{SyncSQS: clients.SQS, SyncQueueURL: os.Getenv(layout.EnvSyncQueueURL), Heads: cat, LeaseTTL: leaseTTL},
		Collector: Collector{Catalog: cat, Grace: collectGrace, MaxSites: collectSites},
	}
	lambda.Start(h.Handle)
	return nil
}

type applied struct{ store *catalog.Store }

func (a applied) AppliedSeq(ctx context.Context, site string) (uint64, error) {
	v, err := a.store.Head(ctx, site)
	return v.AppliedSeq, err
}
