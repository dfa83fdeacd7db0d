package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
)

// awsFlags are the flags of the commands that use AWS credentials.
type awsFlags struct {
	AWSEndpoint string `name:"aws-endpoint" env:"AWS_ENDPOINT_URL" help:"S3/SQS endpoint (the local cloud, LocalStack); default: the SDK's normal resolution, i.e. AWS."`
	StoreBucket string `name:"store-bucket" env:"STORE_BUCKET" default:"feedpipe-store-000000000000-us-east-1" help:"The stack's store bucket (default: the dev stack's)."`
	Region      string `name:"region" help:"AWS region (default: the SDK's resolution; us-east-1 with a local --aws-endpoint)."`
	jsonFlag
}

// awsClients are the explicitly built clients of an administration command.
type awsClients struct {
	S3  *s3.Client
	SQS *sqs.Client
}

// isLocal reports whether an endpoint is on this machine.
func isLocal(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "localstack" || strings.HasSuffix(host, ".localstack.cloud") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clients builds the S3 and SQS clients: the SDK's configuration, a given
// endpoint with path-style addressing, and the local cloud's test/test
// credentials when the endpoint is local and no access key is set.
func (f *awsFlags) clients(ctx context.Context) (awsClients, error) {
	var opts []func(*config.LoadOptions) error
	if f.Region != "" {
		opts = append(opts, config.WithRegion(f.Region))
	}
	local := f.AWSEndpoint != "" && isLocal(f.AWSEndpoint)
	if local && os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	if f.AWSEndpoint != "" {
		if u, err := url.Parse(f.AWSEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return awsClients{}, usagef("--aws-endpoint %q: want a URL such as http://127.0.0.1:4566", f.AWSEndpoint)
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return awsClients{}, withHint(fmt.Errorf("load the AWS configuration: %w", err), "check AWS_PROFILE and ~/.aws/config")
	}
	if cfg.Region == "" {
		if f.AWSEndpoint == "" {
			return awsClients{}, usagef("no AWS region: pass --region or set AWS_REGION")
		}
		cfg.Region = "us-east-1"
	}
	endpoint := f.AWSEndpoint
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	sqsc := sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return awsClients{S3: s3c, SQS: sqsc}, nil
}

// awsHint explains an AWS failure.
func (f *awsFlags) awsHint(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		// "S3 PutObject: NoSuchBucket: …" rather than the SDK's request ids
		var oe *smithy.OperationError
		op := ""
		if errors.As(err, &oe) {
			op = oe.ServiceID + " " + oe.OperationName + ": "
		}
		err = &cleanAWSError{msg: op + ae.ErrorCode() + ": " + ae.ErrorMessage(), err: err}
	}
	where := "AWS"
	if f.AWSEndpoint != "" {
		where = f.AWSEndpoint
	}
	switch {
	case errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchBucket"):
		return withHint(err, "no bucket %s at %s: pass the stack's store bucket with --store-bucket or STORE_BUCKET", f.StoreBucket, where)
	case errors.As(err, &ae) && (ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "InvalidAccessKeyId" || ae.ErrorCode() == "SignatureDoesNotMatch" || ae.ErrorCode() == "ExpiredToken"):
		return withHint(err, "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) for %s", where)
	case errors.As(err, &ae):
		return err
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) {
		return withHint(err, "cannot reach %s: is the stack running (make run)? Set --aws-endpoint or AWS_ENDPOINT_URL for a local cloud", where)
	}
	return err
}

// cleanAWSError is an AWS API error without request ids.
type cleanAWSError struct {
	msg string
	err error
}

func (e *cleanAWSError) Error() string { return e.msg }
func (e *cleanAWSError) Unwrap() error { return e.err }

// loadSite reads a site's configuration with a friendly error.
func (f *awsFlags) loadSite(ctx context.Context, c awsClients, name string) (site.Config, error) {
	if err := layout.ValidateSite(name); err != nil {
		return site.Config{}, usagef("site %q: %v", name, err)
	}
	cfg, err := site.Load(ctx, c.S3, f.StoreBucket, name)
	if errors.Is(err, site.ErrNotFound) {
		return cfg, withHint(fmt.Errorf("site %s does not exist in bucket %s", name, f.StoreBucket), "create it with feedpipe site create %s", name)
	}
	if err != nil {
		return cfg, f.awsHint(err)
	}
	return cfg, nil
}

// updateSite edits a site's configuration with site.Update (a conditional
// write that re-reads and re-applies edit when another edit came first),
// with friendly errors.
func (f *awsFlags) updateSite(ctx context.Context, c awsClients, name string, edit func(*site.Config) error) (site.Config, error) {
	if _, err := f.loadSite(ctx, c, name); err != nil {
		return site.Config{}, err
	}
	cfg, err := site.Update(ctx, c.S3, f.StoreBucket, name, edit)
	var ue *usageError
	switch {
	case err == nil:
		return cfg, nil
	case errors.As(err, &ue):
		return cfg, err
	case errors.Is(err, site.ErrConflict):
		return cfg, withHint(err, "other edits of site %s kept overtaking this one; run the command again", name)
	default:
		return cfg, f.awsHint(err)
	}
}

// siteCreateCmd creates a site.
type siteCreateCmd struct {
	Site     string `arg:"" help:"Site id (^[a-z0-9][a-z0-9-]{0,62}$)."`
	awsFlags `embed:""`
}

func (c *siteCreateCmd) Run(ctx context.Context, s *streams) error {
	if err := layout.ValidateSite(c.Site); err != nil {
		return usagef("site %q: %v", c.Site, err)
	}
	cl, err := c.clients(ctx)
	if err != nil {
		return err
	}
	token, hash := apiauth.NewToken()
	cfg := site.Config{Site: c.Site, TokenHashes: []string{hash}, CreatedAt: time.Now().UTC()}
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	// Created with If-None-Match: an existing site (and its tokens) is never
	// replaced.
	_, err = cl.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.StoreBucket), Key: aws.String(layout.SiteConfigKey(c.Site)),
		Body: bytes.NewReader(b), ContentType: aws.String("application/json"), IfNoneMatch: aws.String("*")})
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return withHint(fmt.Errorf("site %s already exists", c.Site), "make a new token for it with feedpipe site rotate-token %s", c.Site)
	}
	if err != nil {
		return c.awsHint(err)
	}
	if c.JSON {
		writeJSON(s.Out, map[string]any{"site": c.Site, "token": token})
		return nil
	}
	fmt.Fprintf(s.Out, "created site %s\ntoken  %s\n\nThe token is shown only this once: store it now (e.g. export FEEDPIPE_TOKEN=%s).\n", c.Site, token, token)
	return nil
}

// siteRotateTokenCmd adds a token to a site.
type siteRotateTokenCmd struct {
	Site     string `arg:"" help:"Site id."`
	awsFlags `embed:""`
}

func (c *siteRotateTokenCmd) Run(ctx context.Context, s *streams) error {
	cl, err := c.clients(ctx)
	if err != nil {
		return err
	}
	token, hash := apiauth.NewToken()
	dropped := 0
	cfg, err := c.updateSite(ctx, cl, c.Site, func(cfg *site.Config) error {
		cfg.TokenHashes = append(cfg.TokenHashes, hash)
		dropped = 0
		if n := len(cfg.TokenHashes); n > apiauth.MaxActive {
			dropped = n - apiauth.MaxActive
			cfg.TokenHashes = cfg.TokenHashes[dropped:]
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.JSON {
		writeJSON(s.Out, map[string]any{"site": c.Site, "token": token, "activeTokens": len(cfg.TokenHashes), "droppedTokens": dropped})
		return nil
	}
	fmt.Fprintf(s.Out, "new token for site %s\ntoken  %s\n\n", c.Site, token)
	if dropped > 0 {
		fmt.Fprintf(s.Out, "The oldest token was dropped and no longer works; ")
	}
	fmt.Fprintf(s.Out, "%d tokens are active. The new token is shown only this once: store it now.\n", len(cfg.TokenHashes))
	return nil
}

// siteAddDestinationCmd adds a sync destination.
type siteAddDestinationCmd struct {
	Site          string `arg:"" help:"Site id."`
	Name          string `required:"" help:"Destination name (^[a-z0-9][a-z0-9-]{0,62}$, unique in the site)."`
	Webhook       string `xor:"kind" required:"" help:"Webhook URL (https; http only to loopback for the dev stack)."`
	S3Bucket      string `name:"s3-bucket" xor:"kind" required:"" help:"Destination S3 bucket (never one of feedpipe's own)."`
	ExpectedOwner string `name:"expected-owner" help:"Account id that must own --s3-bucket (ExpectedBucketOwner)."`
	Prefix        string `help:"Key prefix in --s3-bucket."`
	awsFlags      `embed:""`
}

func (c *siteAddDestinationCmd) Run(ctx context.Context, s *streams) error {
	d := site.Destination{Name: c.Name}
	secret := ""
	if c.Webhook != "" {
		if c.ExpectedOwner != "" || c.Prefix != "" {
			return usagef("--expected-owner and --prefix apply to --s3-bucket only")
		}
		u, err := url.Parse(c.Webhook)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLocal(c.Webhook))) {
			return usagef("--webhook %q: want an https URL (http only to loopback for the dev stack)", c.Webhook)
		}
		secret = "whsec_" + randomID(32)
		d.Type, d.URL, d.Secrets = "webhook", c.Webhook, []string{secret}
	} else {
		if c.ExpectedOwner == "" {
			return usagef("--s3-bucket needs --expected-owner ACCOUNT (the account that must own the bucket)")
		}
		d.Type, d.Bucket, d.ExpectedBucketOwner, d.Prefix = "s3", c.S3Bucket, c.ExpectedOwner, c.Prefix
	}
	cl, err := c.clients(ctx)
	if err != nil {
		return err
	}
	_, err = c.updateSite(ctx, cl, c.Site, func(cfg *site.Config) error {
		cfg.Destinations = append(cfg.Destinations, d)
		if err := cfg.Validate(); err != nil {
			return usagef("destination %s: %v", c.Name, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.JSON {
		out := map[string]any{"site": c.Site, "destination": d}
		if secret != "" {
			out["secret"] = secret
		}
		writeJSON(s.Out, out)
		return nil
	}
	if d.Type == "webhook" {
		fmt.Fprintf(s.Out, "added webhook destination %s to site %s\nurl     %s\nsecret  %s\n\nThe signing secret is shown only this once: the receiver checks HMAC-SHA256 over timestamp.idempotencyKey.body with it.\n", d.Name, c.Site, d.URL, secret)
		return nil
	}
	fmt.Fprintf(s.Out, "added s3 destination %s to site %s\nbucket  s3://%s/%s (expected owner %s)\n", d.Name, c.Site, d.Bucket, d.Prefix, d.ExpectedBucketOwner)
	return nil
}

// siteRemoveDestinationCmd removes a sync destination.
type siteRemoveDestinationCmd struct {
	Site     string `arg:"" help:"Site id."`
	Name     string `required:"" help:"Name of the destination to remove."`
	awsFlags `embed:""`
}

func (c *siteRemoveDestinationCmd) Run(ctx context.Context, s *streams) error {
	if err := layout.ValidateSite(c.Name); err != nil {
		return usagef("--name %q: not a destination name (^[a-z0-9][a-z0-9-]{0,62}$)", c.Name)
	}
	cl, err := c.clients(ctx)
	if err != nil {
		return err
	}
	var removed site.Destination
	_, err = c.updateSite(ctx, cl, c.Site, func(cfg *site.Config) error {
		var names []string
		for i, d := range cfg.Destinations {
			if d.Name == c.Name {
				removed = d
				cfg.Destinations = append(cfg.Destinations[:i], cfg.Destinations[i+1:]...)
				return nil
			}
			names = append(names, d.Name)
		}
		if len(names) == 0 {
			return usagef("site %s has no destinations", c.Site)
		}
		return usagef("site %s has no destination %s (it has: %s)", c.Site, c.Name, strings.Join(names, ", "))
	})
	if err != nil {
		return err
	}
	// A queued job of the destination is dropped by the push function; its
	// acknowledgement goes too, so a destination added again under the same
	// name starts with the whole catalog rather than from a version the
	// garbage collection no longer keeps.
	for _, key := range []string{layout.SyncAckKey(c.Site, c.Name), layout.SyncLeaseKey(c.Site, c.Name)} {
		if _, err := cl.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.StoreBucket), Key: aws.String(key)}); err != nil {
			return withHint(fmt.Errorf("destination %s was removed, but deleting %s failed: %w", c.Name, key, err),
				"delete s3://%s/%s, or a destination added again as %s resumes from its old acknowledgement", c.StoreBucket, key, c.Name)
		}
	}
	if c.JSON {
		writeJSON(s.Out, map[string]any{"site": c.Site, "removed": removed.Name, "type": removed.Type})
		return nil
	}
	fmt.Fprintf(s.Out, "removed %s destination %s from site %s; its queued sync jobs are dropped\n", removed.Type, removed.Name, c.Site)
	return nil
}

// redriveCmd resumes a halted site.
type redriveCmd struct {
	Site           string `name:"site" required:"" help:"Site id."`
	ImportQueueURL string `name:"import-queue-url" env:"IMPORT_QUEUE_URL" default:"http://127.0.0.1:4566/000000000000/feedpipe-import.fifo" help:"The stack's import FIFO queue (default: the dev stack's)."`
	awsFlags       `embed:""`
}

func (c *redriveCmd) Run(ctx context.Context, s *streams) error {
	cl, err := c.clients(ctx)
	if err != nil {
		return err
	}
	if _, err := c.loadSite(ctx, cl, c.Site); err != nil {
		return err
	}
	was, err := site.LoadState(ctx, cl.S3, c.StoreBucket, c.Site)
	if err != nil {
		return c.awsHint(err)
	}
	if err := site.SaveState(ctx, cl.S3, c.StoreBucket, c.Site, site.State{}); err != nil {
		return c.awsHint(err)
	}
	if err := messages.Send(ctx, cl.SQS, c.ImportQueueURL, messages.Import{Kind: messages.KindWake, Site: c.Site, Reason: "redrive"}); err != nil {
		return withHint(c.awsHint(err), "the halted state is cleared but the importer was not woken: run feedpipe redrive --site %s again (check --import-queue-url)", c.Site)
	}
	if c.JSON {
		writeJSON(s.Out, map[string]any{"site": c.Site, "wasHalted": was.Halted, "previousState": was, "woken": true})
		return nil
	}
	if was.Halted {
		fmt.Fprintf(s.Out, "site %s resumed: cleared the halted state (sequence %d: %s) and woke the importer\n", c.Site, was.Sequence, was.Reason)
	} else {
		fmt.Fprintf(s.Out, "site %s was not halted; woke the importer anyway\n", c.Site)
	}
	fmt.Fprintf(s.Out, "follow it with feedpipe catalog --site %s\n", c.Site)
	return nil
}
