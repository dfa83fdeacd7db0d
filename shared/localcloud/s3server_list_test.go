package localcloud_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Listing page by page while deleting what was listed must see every key:
// the next page starts after the marker even though the marker's object is
// gone, as on S3.
func TestListWhileDeletingSeesEveryKey(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	s3c, _ := clients(c.Endpoint(), "test")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("list-bucket")}); err != nil {
		t.Fatal(err)
	}
	const n = 25
	for i := range n {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("list-bucket"), Key: aws.String(fmt.Sprintf("pending/site-%02d", i)), Body: strings.NewReader("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	var token *string
	for {
		out, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("list-bucket"), Prefix: aws.String("pending/"), MaxKeys: aws.Int32(4), ContinuationToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			seen++
			if _, err := s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("list-bucket"), Key: o.Key}); err != nil {
				t.Fatal(err)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		token = out.NextContinuationToken
	}
	if seen != n {
		t.Fatalf("saw %d of %d keys while deleting them page by page", seen, n)
	}
}
