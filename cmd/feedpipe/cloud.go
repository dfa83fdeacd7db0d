package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

// cloudCmd runs the embedded S3 + SQS until interrupted.
type cloudCmd struct {
	Addr      string `default:"127.0.0.1:4566" help:"Listen address (LocalStack's port by default)."`
	Region    string `default:"us-east-1" help:"The only region the cloud accepts in signatures."`
	AccessKey string `default:"test" help:"Access key id the cloud accepts."`
	SecretKey string `default:"test" help:"Secret access key the cloud accepts."`
	Verbose   bool   `short:"v" help:"Log every refused request and failed delivery."`
}

func (c *cloudCmd) Run(ctx context.Context) error {
	level := slog.LevelInfo
	if c.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cloud, err := localcloud.Start(ctx, localcloud.Config{
		Addr: c.Addr, Region: c.Region, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Logger: logger,
	})
	if err != nil {
		return err
	}
	fmt.Printf(`feedpipe local cloud
  endpoint      %[1]s   (S3 path-style + SQS, routed by SigV4 service)
  region        %[2]s
  credentials   %[3]s / %[4]s
  health        %[1]s%[5]s

  export AWS_ENDPOINT_URL=%[1]s AWS_REGION=%[2]s AWS_ACCESS_KEY_ID=%[3]s AWS_SECRET_ACCESS_KEY=%[4]s
  aws s3 mb s3://demo && aws sqs create-queue --queue-name demo.fifo --attributes FifoQueue=true

Ctrl-C stops it (data lives in memory).
`, cloud.Endpoint(), c.Region, c.AccessKey, c.SecretKey, localcloud.HealthPath)
	<-ctx.Done()
	logger.Info("shutting down")
	return cloud.Close()
}
