package localcloud_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

// BenchmarkS3SmallRequest times one small S3 request through aws-sdk-go-v2
// against the cloud over loopback TCP, signed and verified: the fixed cost
// of each of the import's metadata requests (with -cpu 1, client and
// server share the core as in BenchmarkImport).
//
//	go test -run '^$' -bench S3SmallRequest -cpu 1 ./shared/localcloud/
func BenchmarkS3SmallRequest(b *testing.B) {
	c, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	s3c, _ := clients(c.Endpoint(), "test")
	bucket, key := aws.String("bench"), aws.String("record.json")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket}); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 300) // an upload record's size
	put := func() error {
		_, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader(body)})
		return err
	}
	if err := put(); err != nil {
		b.Fatal(err)
	}
	b.Run("put", func(b *testing.B) {
		for b.Loop() {
			if err := put(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key})
			if err != nil {
				b.Fatal(err)
			}
			_, err = io.Copy(io.Discard, out.Body)
			_ = out.Body.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("head", func(b *testing.B) {
		for b.Loop() {
			if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: key}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
