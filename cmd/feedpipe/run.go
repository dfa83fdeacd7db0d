package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/runner"
)

// runCmd runs the whole stack from template.yaml: the embedded cloud (or an
// external endpoint) plus the runner with every function, mapping, schedule
// and route.
type runCmd struct {
	Template    string            `default:"template.yaml" help:"The SAM template: the only wiring."`
	Stack       string            `default:"feedpipe" help:"Stack name (prefix of queue and bucket names)."`
	Param       map[string]string `help:"Template parameter override, KEY=VALUE (repeatable)."`
	CloudAddr   string            `default:"127.0.0.1:4566" help:"Listen address of the embedded S3/SQS."`
	HTTPAddr    string            `default:"127.0.0.1:3000" help:"Listen address of the HTTP API (SAM's port)."`
	AWSEndpoint string            `name:"aws-endpoint" help:"Use this S3/SQS endpoint (LocalStack, AWS) instead of the embedded cloud."`
	Region      string            `default:"us-east-1"`
	AccessKey   string            `default:"test"`
	SecretKey   string            `default:"test"`
	BuildDir    string            `default:".run/build" help:"Where the functions' bootstrap binaries are built."`
	DemoSite    string            `default:"demo" help:"Development site to create ('' for none)."`
	DemoToken   string            `env:"FEEDPIPE_DEMO_TOKEN" help:"Token of the development site (default: a random one, printed)."`
	Verbose     bool              `short:"v" help:"Debug logs from the cloud and the runner."`
}

func (c *runCmd) Run(ctx context.Context) error {
	level := slog.LevelInfo
	if c.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	endpoint := c.AWSEndpoint
	cfg := localcloud.Config{Addr: c.CloudAddr, Region: c.Region, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Logger: logger}
	var cloud *localcloud.Cloud
	if endpoint == "" {
		var err error
		if cloud, err = localcloud.Start(ctx, cfg); err != nil {
			return err
		}
		defer cloud.Close()
		endpoint = cloud.Endpoint()
	}
	buildDir, err := filepath.Abs(c.BuildDir)
	if err != nil {
		return err
	}
	rcfg := runner.Config{
		Template: c.Template, StackName: c.Stack, Parameters: c.Param, Endpoint: endpoint,
		Region: c.Region, AccessKey: c.AccessKey, SecretKey: c.SecretKey,
		HTTPAddr: c.HTTPAddr, BuildDir: buildDir, Logger: logger, LogOutput: os.Stderr,
	}
	if cloud != nil {
		rcfg.Clock = cloud.Clock()
		rcfg.QueueStats = cloud.SQS.Stats
	}
	fmt.Fprintf(os.Stderr, "building functions and wiring %s onto %s …\n", c.Template, endpoint)
	r, err := runner.Start(ctx, rcfg)
	if err != nil {
		return err
	}
	defer r.Close()
	demo := ""
	if c.DemoSite != "" {
		token, err := seedSite(ctx, endpoint, c.Region, c.AccessKey, c.SecretKey, r.BucketName("StoreBucket"), c.DemoSite, c.DemoToken)
		if err != nil {
			return err
		}
		demo = fmt.Sprintf("  demo site     %s   token %s\n  try           curl -H 'Authorization: Bearer %s' %s/v1/sites/%s/catalog\n", c.DemoSite, token, token, r.HTTPEndpoint(), c.DemoSite)
	}
	where := "embedded local cloud"
	if cloud == nil {
		where = "external endpoint"
	}
	fmt.Printf(`feedpipe is running (stack %q)
  S3 + SQS      %s   (%s; credentials %s / %s, region %s)
%s%s
  export AWS_ENDPOINT_URL=%s AWS_REGION=%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s

Ctrl-C stops everything.
`, c.Stack, endpoint, where, c.AccessKey, c.SecretKey, c.Region, r.Summary(), demo, endpoint, c.Region, c.AccessKey, c.SecretKey)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "shutting down")
	return nil
}
