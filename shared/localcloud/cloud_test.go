package localcloud_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

func start(t *testing.T) *localcloud.Cloud {
	t.Helper()
	c, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func clients(endpoint, secret string) (*s3.Client, *sqs.Client) {
	creds := credentials.NewStaticCredentialsProvider("test", secret, "")
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true, Credentials: creds}),
		sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: creds})
}

// One endpoint serves both services, routed by the signature's service.
func TestOneEndpointRoutesBySignedService(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	s3c, sqsc := clients(c.Endpoint(), "test")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bucket-one")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket-one"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("q")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(aws.ToString(q.QueueUrl), c.Endpoint()+"/000000000000/q") {
		t.Errorf("queue URL %s is not on the endpoint", aws.ToString(q.QueueUrl))
	}
	if s3n, sqsn := c.Requests(); s3n != 2 || sqsn != 1 {
		t.Errorf("Requests() = %d S3, %d SQS; want 2, 1", s3n, sqsn)
	}
}

func TestRefusesBadSignatures(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	s3c, sqsc := clients(c.Endpoint(), "wrong")
	_, err := s3c.ListBuckets(ctx, &s3.ListBucketsInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "SignatureDoesNotMatch" {
		t.Errorf("S3 with a wrong secret: %v, want SignatureDoesNotMatch", err)
	}
	_, err = sqsc.ListQueues(ctx, &sqs.ListQueuesInput{})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "SignatureDoesNotMatch" {
		t.Errorf("SQS with a wrong secret: %v, want SignatureDoesNotMatch", err)
	}
	resp, err := http.Get(c.Endpoint() + "/bucket-one/k")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "<Code>AccessDenied</Code>") {
		t.Errorf("anonymous GET: %d %s, want 403 AccessDenied", resp.StatusCode, body)
	}
	wrongRegion := s3.New(s3.Options{Region: "eu-west-1", BaseEndpoint: aws.String(c.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	_, err = wrongRegion.ListBuckets(ctx, &s3.ListBucketsInput{})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AuthorizationHeaderMalformed" {
		t.Errorf("S3 signed for eu-west-1: %v, want AuthorizationHeaderMalformed", err)
	}
}

func TestHealthIsUnsigned(t *testing.T) {
	c := start(t)
	resp, err := http.Get(c.Endpoint() + localcloud.HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"sqs":"running"`) {
		t.Errorf("health: %d %s", resp.StatusCode, body)
	}
}
