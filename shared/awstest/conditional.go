package awstest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// copySource is the x-amz-copy-source of an object: bucket and key, each
// path segment URL-encoded ('+' too, which some decoders take for a space).
func copySource(bucket, key string) string {
	segments := strings.Split(key, "/")
	for i, seg := range segments {
		segments[i] = strings.ReplaceAll(url.PathEscape(seg), "+", "%2B")
	}
	return bucket + "/" + strings.Join(segments, "/")
}

func testConditionalPut(t *testing.T, s *suite) {
	b := s.bucket(t)
	key := "uploads/site-1/00000000000000000001.json"
	put := func(t *testing.T, body string, ifNoneMatch, ifMatch *string) (string, error) {
		out, err := s.S3.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: &b, Key: &key, Body: strings.NewReader(body), IfNoneMatch: ifNoneMatch, IfMatch: ifMatch,
		})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.ETag), nil
	}
	var created, updated string
	t.Run("IfNoneMatchCreates", func(t *testing.T) {
		var err error
		if created, err = put(t, `{"state":"awaiting_upload"}`, aws.String("*"), nil); err != nil {
			t.Fatalf("PutObject If-None-Match: * on a new key: %v", err)
		}
	})
	if created == "" {
		t.FailNow()
	}
	t.Run("IfNoneMatchExisting", func(t *testing.T) {
		_, err := put(t, `{"state":"other"}`, aws.String("*"), nil)
		wantAPIError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
	})
	t.Run("IfMatchCurrent", func(t *testing.T) {
		var err error
		if updated, err = put(t, `{"state":"received"}`, nil, &created); err != nil {
			t.Fatalf("PutObject If-Match with the current ETag: %v", err)
		}
		if updated == created {
			t.Errorf("the ETag did not change with the content: %s", updated)
		}
	})
	t.Run("IfMatchStale", func(t *testing.T) {
		_, err := put(t, `{"state":"expired"}`, nil, &created)
		wantAPIError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
		s.wantBody(t, b, key, []byte(`{"state":"received"}`))
	})
	t.Run("IfMatchMissingKey", func(t *testing.T) {
		_, err := s.S3.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: &b, Key: aws.String("uploads/site-1/missing.json"), Body: strings.NewReader("{}"), IfMatch: &created,
		})
		wantAPIError(t, err, http.StatusNotFound, "NoSuchKey")
		s.wantMissing(t, b, "uploads/site-1/missing.json")
	})
}

func testConditionalCopy(t *testing.T, s *suite) {
	b := s.bucket(t)
	src := "incoming/site-1/upload one.ndjson"
	s.put(t, b, src, []byte("new data"))
	copyTo := func(t *testing.T, dst string) error {
		_, err := s.S3.CopyObject(t.Context(), &s3.CopyObjectInput{Bucket: &b, Key: &dst, CopySource: aws.String(copySource(b, src)), IfNoneMatch: aws.String("*")})
		return err
	}
	t.Run("ExistingDestination", func(t *testing.T) {
		s.skipIf(t, s.Features.NoConditionalCopy, "NoConditionalCopy")
		dst := "imports/site-1/00000000000000000001.ndjson"
		s.put(t, b, dst, []byte("old data"))
		wantAPIError(t, copyTo(t, dst), http.StatusPreconditionFailed, "PreconditionFailed")
		s.wantBody(t, b, dst, []byte("old data"))
	})
	t.Run("NewDestination", func(t *testing.T) {
		dst := "imports/site-1/00000000000000000002.ndjson"
		if err := copyTo(t, dst); err != nil {
			t.Fatalf("CopyObject If-None-Match: * onto a new key: %v", err)
		}
		s.wantBody(t, b, dst, []byte("new data"))
	})
}

// multipart uploads body as a one-part multipart upload and completes it
// with the given preconditions.
func (s *suite) multipart(t *testing.T, bucket, key string, body []byte, ifNoneMatch, ifMatch *string) (*s3.CompleteMultipartUploadOutput, error) {
	t.Helper()
	ctx := t.Context()
	up, err := s.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("CreateMultipartUpload %s: %v", key, err)
	}
	part, err := s.S3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("UploadPart %s: %v", key, err)
	}
	return s.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}},
		IfNoneMatch:     ifNoneMatch, IfMatch: ifMatch,
	})
}

func testConditionalCompleteMultipartUpload(t *testing.T, s *suite) {
	b := s.bucket(t)
	s.put(t, b, "catalog/site-1/versions/1.json", []byte("v1"))
	_, err := s.multipart(t, b, "catalog/site-1/versions/1.json", []byte("v1 again"), aws.String("*"), nil)
	wantAPIError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
	s.wantBody(t, b, "catalog/site-1/versions/1.json", []byte("v1"))
	if _, err := s.multipart(t, b, "catalog/site-1/versions/2.json", []byte("v2"), aws.String("*"), nil); err != nil {
		t.Fatalf("CompleteMultipartUpload If-None-Match: * onto a new key: %v", err)
	}
	s.wantBody(t, b, "catalog/site-1/versions/2.json", []byte("v2"))
}

// testConcurrentCreateOnce races 64 If-None-Match: * writers for one key:
// exactly one may win, and the object must hold the winner's body.
func testConcurrentCreateOnce(t *testing.T, s *suite) {
	const writers = 64
	b := s.bucket(t)
	key := "catalog/site-1/versions/00000000000000000001.json"
	start := make(chan struct{})
	results := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			_, results[i] = s.S3.PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: &b, Key: &key, Body: strings.NewReader(fmt.Sprintf("writer %02d", i)), IfNoneMatch: aws.String("*"),
			})
		})
	}
	close(start)
	wg.Wait()
	winners, lost, conflicts := []int{}, 0, 0
	for i, err := range results {
		switch {
		case err == nil:
			winners = append(winners, i)
		case httpStatus(err) == http.StatusPreconditionFailed && errorCode(err) == "PreconditionFailed":
			lost++
		case httpStatus(err) == http.StatusConflict && errorCode(err) == "ConditionalRequestConflict":
			conflicts++ // AWS may answer a concurrent conditional write so; the client retries
		default:
			t.Errorf("writer %d: %v, want success, 412 PreconditionFailed or 409 ConditionalRequestConflict", i, err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d writers succeeded (%v), want exactly 1; %d got 412, %d got 409", len(winners), winners, lost, conflicts)
	}
	t.Logf("1 winner, %d × 412, %d × 409", lost, conflicts)
	s.wantBody(t, b, key, fmt.Appendf(nil, "writer %02d", winners[0]))
}

// testCompareAndSwapCounter increments one counter object from 32
// goroutines, each by read → PutObject If-Match until it has succeeded a few
// times: no update may be lost, and no two writers may write the same value.
func testCompareAndSwapCounter(t *testing.T, s *suite) {
	const workers, each = 32, 4
	b := s.bucket(t)
	key := "sites/site-1/next-sequence.json"
	s.put(t, b, key, []byte("0"))
	var (
		mu      sync.Mutex
		written []int
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for done, attempts := 0, 0; done < each; attempts++ {
				if attempts > 2000 || t.Context().Err() != nil {
					t.Errorf("worker %d: no progress after %d attempts", w, attempts)
					return
				}
				out, err := s.S3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &b, Key: &key})
				if err != nil {
					t.Errorf("worker %d: GetObject: %v", w, err)
					return
				}
				var buf bytes.Buffer
				_, err = buf.ReadFrom(out.Body)
				out.Body.Close()
				if err != nil {
					t.Errorf("worker %d: read: %v", w, err)
					return
				}
				n, err := strconv.Atoi(buf.String())
				if err != nil {
					t.Errorf("worker %d: counter holds %q", w, buf.String())
					return
				}
				_, err = s.S3.PutObject(t.Context(), &s3.PutObjectInput{
					Bucket: &b, Key: &key, Body: strings.NewReader(strconv.Itoa(n + 1)), IfMatch: out.ETag,
				})
				switch {
				case err == nil:
					done++
					mu.Lock()
					written = append(written, n+1)
					mu.Unlock()
				case httpStatus(err) == http.StatusPreconditionFailed, httpStatus(err) == http.StatusConflict:
					// lost the race: read again
				default:
					t.Errorf("worker %d: PutObject If-Match: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	body, _ := s.get(t, b, key)
	if got, want := string(body), strconv.Itoa(workers*each); got != want {
		t.Errorf("counter is %s after %d successful increments, want %s: updates were lost", got, len(written), want)
	}
	slices.Sort(written)
	for i, v := range written {
		if v != i+1 {
			t.Errorf("successful writes wrote %v, want each of 1..%d exactly once", written, len(written))
			break
		}
	}
}
