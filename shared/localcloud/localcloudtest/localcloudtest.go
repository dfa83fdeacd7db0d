// Package localcloudtest starts the embedded local cloud for a test, with
// aws-sdk-go-v2 clients built for it explicitly (static credentials, its
// region, path-style S3), so no caller's AWS environment can change a test.
package localcloudtest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

// Env is a running cloud and its clients. The cloud stops when the test ends.
type Env struct {
	Cloud *localcloud.Cloud
	S3    *s3.Client
	SQS   *sqs.Client
}

// Start starts a cloud on a random loopback port.
func Start(tb testing.TB) *Env {
	tb.Helper()
	cloud, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cloud.Close() })
	ak, sk := cloud.Credentials()
	creds := credentials.NewStaticCredentialsProvider(ak, sk, "")
	return &Env{
		Cloud: cloud,
		S3:    s3.New(s3.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), UsePathStyle: true, Credentials: creds}),
		SQS:   sqs.New(sqs.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), Credentials: creds}),
	}
}

// Buckets creates buckets.
func (e *Env) Buckets(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		if _, err := e.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(n)}); err != nil {
			tb.Fatalf("create bucket %s: %v", n, err)
		}
	}
}

// Queue creates a queue and returns its URL; a name ending in ".fifo" makes
// a FIFO queue.
func (e *Env) Queue(tb testing.TB, name string, attrs map[string]string) string {
	tb.Helper()
	a := map[string]string{}
	for k, v := range attrs {
		a[k] = v
	}
	if len(name) > 5 && name[len(name)-5:] == ".fifo" {
		a["FifoQueue"] = "true"
	}
	out, err := e.SQS.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: a})
	if err != nil {
		tb.Fatalf("create queue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// BuildDir is where tests build function binaries that they reuse across
// runs: a directory under the system's temporary directory named after
// name and the checkout the test runs in, so that two checkouts tested at
// once (two worktrees, two clones) never run each other's binaries.
func BuildDir(name string) string {
	wd, err := os.Getwd()
	if err != nil {
		wd = "unknown"
	}
	root := wd
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			root = dir
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s-%x", name, sum[:4]))
}
