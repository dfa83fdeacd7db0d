package awstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func s3Tests() []subtest {
	return []subtest{
		{name: "Buckets", run: testBuckets},
		{name: "ObjectCRUD", run: testObjectCRUD},
		{name: "ListObjects", run: testListObjects},
		{name: "ListVersionedAfterDelete", run: testListVersionedAfterDelete},
		{name: "ChecksumPutObject", run: testChecksumPutObject},
		{name: "PathStyleSignedRequest", run: testPathStyleSignedRequest},
		{name: "WrongSecret", run: testS3WrongSecret},
		{name: "PresignedGet", run: testPresignedGet},
		{name: "PresignedPut", run: testPresignedPut},
		{name: "PresignedExpired", run: testPresignedExpired},
		{name: "PresignedTampered", run: testPresignedTampered},
		{name: "PresignedContentLength", run: testPresignedContentLength},
		{name: "PresignedIfNoneMatch", run: testPresignedIfNoneMatch},
		{name: "PresignedChecksum", run: testPresignedChecksum},
		{name: "ConditionalPut", run: testConditionalPut},
		{name: "ConditionalCopy", run: testConditionalCopy},
		{name: "ConditionalCompleteMultipartUpload", run: testConditionalCompleteMultipartUpload},
		{name: "ConcurrentCreateOnce", run: testConcurrentCreateOnce},
		{name: "CompareAndSwapCounter", run: testCompareAndSwapCounter},
		{name: "NotificationConfiguration", run: testNotificationConfiguration},
		{name: "NotificationTestEvent", run: testNotificationTestEvent},
		{name: "NotificationEvents", run: testNotificationEvents},
		{name: "NotificationUnknownQueue", run: testNotificationUnknownQueue},
	}
}

// bucket creates a bucket for the running subtest and deletes it, with
// everything in it, when the subtest ends.
func (s *suite) bucket(t *testing.T) string {
	t.Helper()
	name := uniqueName(t, 63)
	if _, err := s.S3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		s.deleteBucket(ctx, t, name)
	})
	return name
}

func (s *suite) deleteBucket(ctx context.Context, t *testing.T, bucket string) {
	uploads, err := s.S3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err == nil {
		for _, u := range uploads.Uploads {
			_, _ = s.S3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	p := s3.NewListObjectsV2Paginator(s.S3, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if httpStatus(err) == http.StatusNotFound {
			return // the subtest deleted it
		} else if err != nil {
			t.Logf("clean-up: list %s: %v", bucket, err)
			return
		}
		for _, o := range page.Contents {
			if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				t.Logf("clean-up: delete %s/%s: %v", bucket, *o.Key, err)
			}
		}
	}
	// A versioned bucket still holds its old versions and delete markers.
	vp := s3.NewListObjectVersionsPaginator(s.S3, &s3.ListObjectVersionsInput{Bucket: &bucket})
	for vp.HasMorePages() {
		page, err := vp.NextPage(ctx)
		if err != nil {
			t.Logf("clean-up: list versions of %s: %v", bucket, err)
			break
		}
		for _, v := range page.Versions {
			_, _ = s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			_, _ = s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: m.Key, VersionId: m.VersionId})
		}
	}
	if _, err := s.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Logf("clean-up: delete bucket %s: %v", bucket, err)
	}
}

// put stores body under key and returns the object's ETag.
func (s *suite) put(t *testing.T, bucket, key string, body []byte) string {
	t.Helper()
	out, err := s.S3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return aws.ToString(out.ETag)
}

// get returns the body and ETag of an object.
func (s *suite) get(t *testing.T, bucket, key string) ([]byte, string) {
	t.Helper()
	out, err := s.S3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s/%s: read body: %v", bucket, key, err)
	}
	return body, aws.ToString(out.ETag)
}

// wantBody reports an error unless the object holds want.
func (s *suite) wantBody(t *testing.T, bucket, key string, want []byte) {
	t.Helper()
	if got, _ := s.get(t, bucket, key); !bytes.Equal(got, want) {
		t.Errorf("%s/%s holds %q, want %q", bucket, key, clip(got), clip(want))
	}
}

// wantMissing reports an error unless HeadObject answers 404.
func (s *suite) wantMissing(t *testing.T, bucket, key string) {
	t.Helper()
	_, err := s.S3.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if httpStatus(err) != http.StatusNotFound {
		t.Errorf("HeadObject %s/%s: got %v, want 404: the object must not exist", bucket, key, errOrOK(err))
	}
}

func errOrOK(err error) any {
	if err == nil {
		return "200 OK"
	}
	return err
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "…"...)
	}
	return b
}

func testBuckets(t *testing.T, s *suite) {
	ctx := t.Context()
	name := uniqueName(t, 63)
	if _, err := s.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		s.deleteBucket(ctx, t, name)
	})
	if _, err := s.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &name}); err != nil {
		t.Errorf("HeadBucket after CreateBucket: %v", err)
	}
	list, err := s.S3.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	if !slices.ContainsFunc(list.Buckets, func(b types.Bucket) bool { return aws.ToString(b.Name) == name }) {
		t.Errorf("ListBuckets does not list %s", name)
	}
	s.put(t, name, "k", []byte("x"))
	_, err = s.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &name})
	wantAPIError(t, err, http.StatusConflict, "BucketNotEmpty")
	if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &name, Key: aws.String("k")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	if _, err := s.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("DeleteBucket on an empty bucket: %v", err)
	}
	_, err = s.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &name})
	if httpStatus(err) != http.StatusNotFound {
		t.Errorf("HeadBucket after DeleteBucket: got %v, want 404", errOrOK(err))
	}
	_, err = s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &name, Key: aws.String("k")})
	wantAPIError(t, err, http.StatusNotFound, "NoSuchBucket")
}

func testObjectCRUD(t *testing.T, s *suite) {
	ctx := t.Context()
	b := s.bucket(t)
	key := "uploads/site-1/00000000000000000001.json"
	body := []byte(`{"state":"awaiting_upload"}`)
	put, err := s.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &key, Body: bytes.NewReader(body), ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if aws.ToString(put.ETag) == "" {
		t.Errorf("PutObject returned no ETag")
	}
	got, err := s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &key})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	data, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil {
		t.Fatalf("GetObject: read body: %v", err)
	}
	if !bytes.Equal(data, body) {
		t.Errorf("GetObject body %q, want %q", data, body)
	}
	if aws.ToString(got.ETag) != aws.ToString(put.ETag) {
		t.Errorf("GetObject ETag %s, PutObject said %s", aws.ToString(got.ETag), aws.ToString(put.ETag))
	}
	if aws.ToString(got.ContentType) != "application/json" {
		t.Errorf("GetObject Content-Type %q, want application/json", aws.ToString(got.ContentType))
	}
	head, err := s.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: &key})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(body)) || aws.ToString(head.ETag) != aws.ToString(put.ETag) {
		t.Errorf("HeadObject: length %d ETag %s, want %d %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag), len(body), aws.ToString(put.ETag))
	}
	if head.LastModified == nil {
		t.Errorf("HeadObject: no Last-Modified")
	}
	if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: &key}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: &key}); err != nil {
		t.Errorf("DeleteObject of a missing key must succeed (204), got %v", err)
	}
	_, err = s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &key})
	var nsk *types.NoSuchKey
	if !errors.As(err, &nsk) {
		t.Errorf("GetObject after delete: got %v, want *types.NoSuchKey", errOrOK(err))
	}
	wantAPIError(t, err, http.StatusNotFound, "NoSuchKey")
	_, err = s.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: &key})
	var nf *types.NotFound
	if !errors.As(err, &nf) || httpStatus(err) != http.StatusNotFound {
		t.Errorf("HeadObject after delete: got %v, want *types.NotFound with HTTP 404", errOrOK(err))
	}
}

func testListObjects(t *testing.T, s *suite) {
	ctx := t.Context()
	b := s.bucket(t)
	var want []string
	for i := 1; i <= 7; i++ {
		k := fmt.Sprintf("uploads/site-1/%020d.json", i)
		want = append(want, k)
		s.put(t, b, k, []byte("{}"))
	}
	s.put(t, b, "uploads/site-2/00000000000000000001.json", []byte("{}"))
	s.put(t, b, "sites/site-1/config.json", []byte("{}"))

	var got []string
	pages := 0
	p := s3.NewListObjectsV2Paginator(s.S3, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("uploads/site-1/"), MaxKeys: aws.Int32(3)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2 page %d: %v", pages+1, err)
		}
		pages++
		if len(page.Contents) > 3 {
			t.Errorf("page %d has %d keys, MaxKeys was 3", pages, len(page.Contents))
		}
		if aws.ToInt32(page.KeyCount) != int32(len(page.Contents)) {
			t.Errorf("page %d: KeyCount %d but %d keys", pages, aws.ToInt32(page.KeyCount), len(page.Contents))
		}
		if truncated := aws.ToBool(page.IsTruncated); truncated != (page.NextContinuationToken != nil) {
			t.Errorf("page %d: IsTruncated %v but NextContinuationToken %v", pages, truncated, page.NextContinuationToken)
		}
		for _, o := range page.Contents {
			got = append(got, aws.ToString(o.Key))
		}
		if pages > 10 {
			t.Fatalf("pagination does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q in this order", got, want)
	}
	if pages != 3 {
		t.Errorf("7 keys with MaxKeys 3 came in %d pages, want 3", pages)
	}

	after, err := s.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("uploads/site-1/"), StartAfter: &want[2]})
	if err != nil {
		t.Fatalf("ListObjectsV2 StartAfter: %v", err)
	}
	var afterKeys []string
	for _, o := range after.Contents {
		afterKeys = append(afterKeys, aws.ToString(o.Key))
	}
	if !slices.Equal(afterKeys, want[3:]) {
		t.Errorf("StartAfter %s listed %q, want %q", want[2], afterKeys, want[3:])
	}

	dirs, err := s.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("uploads/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("ListObjectsV2 Delimiter: %v", err)
	}
	var prefixes []string
	for _, cp := range dirs.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(cp.Prefix))
	}
	if want := []string{"uploads/site-1/", "uploads/site-2/"}; !slices.Equal(prefixes, want) || len(dirs.Contents) != 0 {
		t.Errorf("Delimiter / under uploads/: prefixes %q and %d keys, want %q and none", prefixes, len(dirs.Contents), want)
	}
}

// testListVersionedAfterDelete: in a versioned bucket a deleted key's
// current version is a delete marker, and listings leave it out — keys,
// pages and rolled-up prefixes alike.
func testListVersionedAfterDelete(t *testing.T, s *suite) {
	b := s.versionedBucket(t, "marks/a", "marks/b", "marks/c", "gone/x")
	s.deleteKeys(t, b, "marks/b", "gone/x")
	var got []string
	p := s3.NewListObjectsV2Paginator(s.S3, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("marks/"), MaxKeys: aws.Int32(1)})
	for pages := 0; p.HasMorePages(); pages++ {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		for _, o := range page.Contents {
			got = append(got, aws.ToString(o.Key))
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if want := []string{"marks/a", "marks/c"}; !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q: a deleted key is listed", got, want)
	}
	s.skipIf(t, s.Features.DeletedPrefixesListed, "DeletedPrefixesListed")
	if prefixes, want := s.rolledUp(t, b), []string{"marks/"}; !slices.Equal(prefixes, want) {
		t.Errorf("prefixes %q, want %q: a prefix holding only deleted keys is listed", prefixes, want)
	}
}

// versionedBucket makes a bucket with versioning enabled holding keys.
func (s *suite) versionedBucket(t *testing.T, keys ...string) string {
	t.Helper()
	b := s.bucket(t)
	if _, err := s.S3.PutBucketVersioning(t.Context(), &s3.PutBucketVersioningInput{Bucket: &b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("PutBucketVersioning: %v", err)
	}
	for _, k := range keys {
		s.put(t, b, k, []byte("{}"))
	}
	return b
}

func (s *suite) deleteKeys(t *testing.T, b string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := s.S3.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(k)}); err != nil {
			t.Fatalf("DeleteObject %s: %v", k, err)
		}
	}
}

// rolledUp lists the bucket's top-level prefixes (delimiter /).
func (s *suite) rolledUp(t *testing.T, b string) []string {
	t.Helper()
	dirs, err := s.S3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &b, Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("ListObjectsV2 Delimiter: %v", err)
	}
	var prefixes []string
	for _, cp := range dirs.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(cp.Prefix))
	}
	return prefixes
}

// testChecksumPutObject stores objects the way the SDK does by default: a
// CRC32 (or the requested) checksum, sent in a header over HTTP and as the
// trailer of an aws-chunked body over HTTPS — which is how every Lambda
// function talks to S3.
func testChecksumPutObject(t *testing.T, s *suite) {
	b := s.bucket(t)
	body := bytes.Repeat([]byte("sku-1,upsert,{\"price\":1}\n"), 3000) // 75 kB: several chunks
	sha := sha256.Sum256(body)
	crc := crc32.ChecksumIEEE(body)
	wantCRC32 := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	wantSHA256 := base64.StdEncoding.EncodeToString(sha[:])

	chunked, rewrite := s.S3, (*httpsAsHTTP)(nil)
	if strings.HasPrefix(s.s3Endpoint(), "http://") {
		// The SDK only sends aws-chunked bodies with trailing checksums over
		// TLS. Toward a plain-HTTP backend, tell the client the endpoint is
		// https and take the scheme back at the transport, so the requests
		// are exactly those a Lambda function sends to S3.
		rewrite = &httpsAsHTTP{base: s.http.Transport}
		chunked, _ = newClients("https://"+strings.TrimPrefix(s.s3Endpoint(), "http://"), s.Region, s.AccessKey, s.SecretKey, &http.Client{Transport: rewrite})
	}
	cases := []struct {
		name   string
		client *s3.Client
		algo   types.ChecksumAlgorithm
	}{
		{"HeaderCRC32", s.S3, ""},
		{"HeaderSHA256", s.S3, types.ChecksumAlgorithmSha256},
		{"AWSChunkedCRC32", chunked, ""},
		{"AWSChunkedSHA256", chunked, types.ChecksumAlgorithmSha256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			key := "incoming/" + c.name
			if _, err := c.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &key, Body: bytes.NewReader(body), ChecksumAlgorithm: c.algo}); err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if c.client == chunked && rewrite != nil {
				if h := rewrite.lastHeader(); !strings.Contains(h.Get("Content-Encoding"), "aws-chunked") || h.Get("X-Amz-Trailer") == "" {
					t.Fatalf("the SDK did not send an aws-chunked body with a trailer (Content-Encoding %q, X-Amz-Trailer %q)", h.Get("Content-Encoding"), h.Get("X-Amz-Trailer"))
				}
			}
			s.wantBody(t, b, key, body)
			head, err := s.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatalf("HeadObject: %v", err)
			}
			if aws.ToInt64(head.ContentLength) != int64(len(body)) {
				t.Errorf("stored %d bytes, sent %d", aws.ToInt64(head.ContentLength), len(body))
			}
			switch c.algo {
			case types.ChecksumAlgorithmSha256:
				if got := aws.ToString(head.ChecksumSHA256); got != wantSHA256 {
					t.Errorf("HeadObject(ChecksumMode ENABLED) x-amz-checksum-sha256 %q, want %q", got, wantSHA256)
				}
			default:
				s.skipIf(t, s.Features.NoDefaultChecksumRetrieval, "NoDefaultChecksumRetrieval")
				if got := aws.ToString(head.ChecksumCRC32); got != wantCRC32 {
					t.Errorf("HeadObject(ChecksumMode ENABLED) x-amz-checksum-crc32 %q, want %q", got, wantCRC32)
				}
			}
		})
	}
}

// httpsAsHTTP sends requests addressed to https:// over plain HTTP, and
// remembers the headers of the last one.
type httpsAsHTTP struct {
	base http.RoundTripper
	mu   sync.Mutex
	last http.Header
}

func (rt *httpsAsHTTP) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "https" {
		r = r.Clone(r.Context())
		r.URL.Scheme = "http"
	}
	rt.mu.Lock()
	rt.last = r.Header.Clone()
	rt.mu.Unlock()
	return rt.base.RoundTrip(r)
}

func (rt *httpsAsHTTP) lastHeader() http.Header {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.last
}

// testPathStyleSignedRequest signs requests by hand, as curl --aws-sigv4
// does, to the path-style URL /bucket/key.
func testPathStyleSignedRequest(t *testing.T, s *suite) {
	ctx := t.Context()
	b := s.bucket(t)
	body := []byte("hand-signed")
	u := s.s3Endpoint() + "/" + b + "/dir/hand%20signed.txt"
	send := func(method string, body []byte) rawResponse {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		if err := signer.SignHTTP(ctx, s.credentials(), req, hex.EncodeToString(sum[:]), "s3", s.Region, time.Now()); err != nil {
			t.Fatal(err)
		}
		return s.do(ctx, t, method, req.URL.String(), req.Header, body)
	}
	wantRaw(t, "signed PUT /bucket/key", send(http.MethodPut, body), http.StatusOK, "")
	r := send(http.MethodGet, nil)
	wantRaw(t, "signed GET /bucket/key", r, http.StatusOK, "")
	if !bytes.Equal(r.Body, body) {
		t.Errorf("GET returned %q, want %q", r.Body, body)
	}
	s.wantBody(t, b, "dir/hand signed.txt", body)
}

func testS3WrongSecret(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoSignatureCheck, "NoSignatureCheck")
	ctx := t.Context()
	b := s.bucket(t)
	s.put(t, b, "k", []byte("x"))
	wrong, _ := NewClients(s.Endpoint, s.Region, s.AccessKey, s.SecretKey+"-wrong")
	_, err := wrong.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: aws.String("k")})
	wantAPIError(t, err, http.StatusForbidden, "SignatureDoesNotMatch")
	_, err = wrong.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String("k2"), Body: strings.NewReader("y")})
	wantAPIError(t, err, http.StatusForbidden, "SignatureDoesNotMatch")
	s.wantMissing(t, b, "k2")
}
