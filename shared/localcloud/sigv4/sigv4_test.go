package sigv4_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/clock"
	"github.com/feedpipe/feedpipe/shared/localcloud/sigv4"
)

// recorder answers 200 to every request the verifier lets through and keeps
// the body it read, to show the body survives verification.
func newServer(t *testing.T, c *clock.Clock) (*httptest.Server, *[]string) {
	t.Helper()
	v := sigv4.NewVerifier("us-east-1", func(k string) (string, bool) {
		return "test", k == "test"
	}, c)
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Verify(r); err != nil {
			w.Header().Set("X-Code", err.Code)
			w.WriteHeader(err.Status)
			return
		}
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		w.Header().Set("ETag", `"x"`)
	}))
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func s3Client(endpoint, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("test", secret, ""),
	})
}

func TestHeaderSignedSDKRequests(t *testing.T) {
	c := clock.New()
	srv, _ := newServer(t, c)
	ctx := context.Background()
	good := s3Client(srv.URL, "test")
	for _, key := range []string{"plain", "with space/and+plus", "ünï/cøde?x=1", "a//b"} {
		if _, err := good.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: strings.NewReader("hello")}); err != nil {
			t.Errorf("PutObject %q with the right secret: %v", key, err)
		}
	}
	if _, err := good.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("x"), ChecksumAlgorithm: "SHA256"}); err != nil {
		t.Errorf("PutObject with a SHA256 checksum: %v", err)
	}
	bad := s3Client(srv.URL, "wrong")
	if _, err := bad.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("x")}); err == nil {
		t.Error("PutObject with a wrong secret was accepted")
	}
}

func TestPresigned(t *testing.T) {
	c := clock.New()
	srv, _ := newServer(t, c)
	ctx := context.Background()
	presign := s3.NewPresignClient(s3Client(srv.URL, "test"))
	req, err := presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("b"), Key: aws.String("incoming/s/1"),
		ContentLength: aws.Int64(5), IfNoneMatch: aws.String("*"),
	}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	send := func(u string, body string, hdr http.Header) (int, string) {
		r, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader([]byte(body)))
		for k, v := range hdr {
			if k != "Host" && k != "Content-Length" {
				r.Header[k] = v
			}
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Code")
	}
	if st, code := send(req.URL, "hello", req.SignedHeader); st != 200 {
		t.Fatalf("valid presigned PUT: %d %s", st, code)
	}
	if st, code := send(req.URL, "hello!", req.SignedHeader); st != 403 || code != "SignatureDoesNotMatch" {
		t.Errorf("wrong Content-Length: %d %s, want 403 SignatureDoesNotMatch", st, code)
	}
	noIfNoneMatch := req.SignedHeader.Clone()
	noIfNoneMatch.Del("If-None-Match")
	if st, code := send(req.URL, "hello", noIfNoneMatch); st != 403 || code != "SignatureDoesNotMatch" {
		t.Errorf("signed If-None-Match dropped: %d %s, want 403 SignatureDoesNotMatch", st, code)
	}
	if st, code := send(strings.Replace(req.URL, "incoming/s/1", "incoming/s/2", 1), "hello", req.SignedHeader); st != 403 || code != "SignatureDoesNotMatch" {
		t.Errorf("tampered key: %d %s, want 403 SignatureDoesNotMatch", st, code)
	}
	c.Advance(61 * time.Second)
	if st, code := send(req.URL, "hello", req.SignedHeader); st != 403 || code != "AccessDenied" {
		t.Errorf("expired: %d %s, want 403 AccessDenied", st, code)
	}
}

func TestPresignedSignedChecksumHeader(t *testing.T) {
	c := clock.New()
	srv, _ := newServer(t, c)
	r, _ := http.NewRequest(http.MethodPut, srv.URL+"/b/k?X-Amz-Expires=60", nil)
	r.ContentLength = 5
	r.Header.Set("X-Amz-Checksum-Sha256", "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
	r.Header.Set("If-None-Match", "*")
	u, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"},
		r, "UNSIGNED-PAYLOAD", "s3", "us-east-1", c.Now(), func(o *v4.SignerOptions) {
			o.DisableHeaderHoisting = true
			o.DisableURIPathEscaping = true
		})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hdr.Get("X-Amz-Checksum-Sha256"), "LPJ") {
		t.Fatalf("checksum header not kept as a signed header: %v", hdr)
	}
	put := func(sum string) int {
		req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader("hello"))
		req.Header.Set("If-None-Match", "*")
		req.Header.Set("X-Amz-Checksum-Sha256", sum)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := put("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="); st != 200 {
		t.Errorf("signed checksum as signed: %d", st)
	}
	if st := put("AAAAul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="); st != 403 {
		t.Errorf("changed checksum header: %d, want 403", st)
	}
}

func TestSignatureV2IsRefusedWithAHint(t *testing.T) {
	srv, _ := newServer(t, clock.New())
	resp, err := http.Get(srv.URL + "/b/k?AWSAccessKeyId=test&Signature=abc&Expires=1795505926")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Code") != "InvalidRequest" {
		t.Fatalf("SigV2 presigned URL: %d %s, want 400 InvalidRequest", resp.StatusCode, resp.Header.Get("X-Code"))
	}
}
