package awstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// datedSigner presigns like the SDK's default presigner but dates the
// signature shift earlier, so an expired URL needs no waiting.
type datedSigner struct {
	signer *v4.Signer
	shift  time.Duration
}

func (d datedSigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, signingTime time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return d.signer.PresignHTTP(ctx, creds, r, payloadHash, service, region, signingTime.Add(-d.shift), optFns...)
}

var _ s3.HTTPPresignerV4 = datedSigner{}

// presigner is the SDK's presign client, with signatures dated shift ago
// and, unless hoist is set, every signed header kept a header instead of
// being moved into the query string.
func (s *suite) presigner(shift time.Duration, hoist bool) *s3.PresignClient {
	signer := v4.NewSigner(func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = true // as the S3 client's own signer
		o.DisableHeaderHoisting = !hoist
	})
	return s3.NewPresignClient(s.S3, func(o *s3.PresignOptions) { o.Presigner = datedSigner{signer, shift} })
}

// send makes the request a presigned URL allows, with the headers it signed
// and the given body.
func (s *suite) send(t *testing.T, req *v4.PresignedHTTPRequest, header http.Header, body []byte) rawResponse {
	t.Helper()
	h := req.SignedHeader.Clone()
	for k, v := range header {
		if v == nil {
			h.Del(k)
		} else {
			h[http.CanonicalHeaderKey(k)] = v
		}
	}
	return s.do(t.Context(), t, req.Method, req.URL, h, body)
}

// signedHeaders lists the X-Amz-SignedHeaders of a presigned URL.
func signedHeaders(t *testing.T, rawURL string) []string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("presigned URL %q: %v", rawURL, err)
	}
	return strings.Split(u.Query().Get("X-Amz-SignedHeaders"), ";")
}

func wantSigned(t *testing.T, rawURL string, header, why string) {
	t.Helper()
	for _, h := range signedHeaders(t, rawURL) {
		if h == header {
			return
		}
	}
	t.Errorf("the presigned URL does not sign %s (X-Amz-SignedHeaders %q): %s", header, signedHeaders(t, rawURL), why)
}

func testPresignedGet(t *testing.T, s *suite) {
	b := s.bucket(t)
	body := []byte("presigned download")
	s.put(t, b, "out/feed file+1.ndjson", body)
	req, err := s3.NewPresignClient(s.S3).PresignGetObject(t.Context(), &s3.GetObjectInput{Bucket: &b, Key: aws.String("out/feed file+1.ndjson")}, s3.WithPresignExpires(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r := s.send(t, req, nil, nil)
	wantRaw(t, "presigned GET", r, http.StatusOK, "")
	if !bytes.Equal(r.Body, body) {
		t.Errorf("presigned GET returned %q, want %q", clip(r.Body), body)
	}
}

func testPresignedPut(t *testing.T, s *suite) {
	b := s.bucket(t)
	key := "incoming/site-1/00000000000000000001-u1"
	first, second := []byte("first upload...."), []byte("second upload...")
	req, err := s3.NewPresignClient(s.S3).PresignPutObject(t.Context(), &s3.PutObjectInput{Bucket: &b, Key: &key, ContentLength: aws.Int64(int64(len(first)))}, s3.WithPresignExpires(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wantRaw(t, "presigned PUT", s.send(t, req, nil, first), http.StatusOK, "")
	s.wantBody(t, b, key, first)
	// Without a signed If-None-Match the URL can be used again until it
	// expires, and each PUT replaces the object.
	wantRaw(t, "second PUT with the same URL", s.send(t, req, nil, second), http.StatusOK, "")
	s.wantBody(t, b, key, second)
}

func testPresignedExpired(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoPresignedSignatureCheck, "NoPresignedSignatureCheck")
	ctx := t.Context()
	b := s.bucket(t)
	s.put(t, b, "k", []byte("x"))
	old := s.presigner(2*time.Hour, true) // signed 2 h ago, valid for 60 s
	get, err := old.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: aws.String("k")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r := s.send(t, get, nil, nil)
	wantRaw(t, "expired presigned GET", r, http.StatusForbidden, "AccessDenied")
	if !strings.Contains(r.Message, "Request has expired") {
		t.Errorf("expired presigned GET: message %q, want it to say \"Request has expired\"", r.Message)
	}
	put, err := old.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String("new"), ContentLength: aws.Int64(3)}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wantRaw(t, "expired presigned PUT", s.send(t, put, nil, []byte("new")), http.StatusForbidden, "AccessDenied")
	s.wantMissing(t, b, "new")
}

func testPresignedTampered(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoPresignedSignatureCheck, "NoPresignedSignatureCheck")
	b := s.bucket(t)
	s.put(t, b, "site-1/a", []byte("a"))
	s.put(t, b, "site-2/a", []byte("b"))
	req, err := s3.NewPresignClient(s.S3).PresignGetObject(t.Context(), &s3.GetObjectInput{Bucket: &b, Key: aws.String("site-1/a")}, s3.WithPresignExpires(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	tamper := map[string]func(*url.URL){
		"Key": func(u *url.URL) { u.Path = strings.Replace(u.Path, "/site-1/", "/site-2/", 1) },
		"Expires": func(u *url.URL) {
			u.RawQuery = strings.Replace(u.RawQuery, "X-Amz-Expires=900", "X-Amz-Expires=901", 1)
		},
		"Signature": func(u *url.URL) {
			q := u.Query()
			sig, first := q.Get("X-Amz-Signature"), "0"
			if strings.HasPrefix(sig, "0") {
				first = "1"
			}
			q.Set("X-Amz-Signature", first+sig[1:])
			u.RawQuery = q.Encode()
		},
		"AddedParameter": func(u *url.URL) { u.RawQuery += "&response-content-type=text%2Fhtml" },
	}
	for name, change := range tamper {
		t.Run(name, func(t *testing.T) {
			u, err := url.Parse(req.URL)
			if err != nil {
				t.Fatal(err)
			}
			change(u)
			if u.String() == req.URL {
				t.Fatalf("tampering changed nothing in %s", req.URL)
			}
			r := s.do(t.Context(), t, http.MethodGet, u.String(), req.SignedHeader, nil)
			wantRaw(t, "tampered presigned GET", r, http.StatusForbidden, "SignatureDoesNotMatch")
		})
	}
}

func testPresignedContentLength(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoPresignedSignatureCheck, "NoPresignedSignatureCheck")
	b := s.bucket(t)
	key := "incoming/site-1/00000000000000000002-u2"
	body := []byte("exactly 16 bytes")
	req, err := s3.NewPresignClient(s.S3).PresignPutObject(t.Context(), &s3.PutObjectInput{Bucket: &b, Key: &key, ContentLength: aws.Int64(int64(len(body)))}, s3.WithPresignExpires(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wantSigned(t, req.URL, "content-length", "the upload API pins each upload's size")
	wantRaw(t, "presigned PUT with a longer body", s.send(t, req, nil, append(body, '!')), http.StatusForbidden, "SignatureDoesNotMatch")
	wantRaw(t, "presigned PUT with a shorter body", s.send(t, req, nil, body[1:]), http.StatusForbidden, "SignatureDoesNotMatch")
	s.wantMissing(t, b, key)
	wantRaw(t, "presigned PUT with the signed length", s.send(t, req, nil, body), http.StatusOK, "")
	s.wantBody(t, b, key, body)
}

func testPresignedIfNoneMatch(t *testing.T, s *suite) {
	b := s.bucket(t)
	presign := func(t *testing.T, key string, n int) *v4.PresignedHTTPRequest {
		req, err := s3.NewPresignClient(s.S3).PresignPutObject(t.Context(), &s3.PutObjectInput{
			Bucket: &b, Key: &key, ContentLength: aws.Int64(int64(n)), IfNoneMatch: aws.String("*"),
		}, s3.WithPresignExpires(15*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		wantSigned(t, req.URL, "if-none-match", "a presigned upload URL must create its object once and never overwrite it")
		return req
	}
	t.Run("CreatesOnce", func(t *testing.T) {
		key := "incoming/site-1/00000000000000000003-u3"
		first, second := []byte("first"), []byte("again")
		req := presign(t, key, len(first))
		wantRaw(t, "first PUT", s.send(t, req, nil, first), http.StatusOK, "")
		wantRaw(t, "second PUT with the same URL", s.send(t, req, nil, second), http.StatusPreconditionFailed, "PreconditionFailed")
		s.wantBody(t, b, key, first)
	})
	t.Run("HeaderRequired", func(t *testing.T) {
		s.skipIf(t, s.Features.NoPresignedSignatureCheck, "NoPresignedSignatureCheck")
		key := "incoming/site-1/00000000000000000004-u4"
		body := []byte("body")
		req := presign(t, key, len(body))
		r := s.send(t, req, http.Header{"If-None-Match": nil}, body)
		wantRaw(t, "PUT without the signed If-None-Match", r, http.StatusForbidden, "SignatureDoesNotMatch")
		s.wantMissing(t, b, key)
	})
}

// testPresignedChecksum pins an upload's content by signing its SHA-256 as
// the x-amz-checksum-sha256 header: S3 must refuse any other body.
func testPresignedChecksum(t *testing.T, s *suite) {
	b := s.bucket(t)
	good := []byte("the delta the client announced")
	bad := append([]byte("T"), good[1:]...) // same length: only the checksum tells them apart
	sum := sha256.Sum256(good)
	goodSum := base64.StdEncoding.EncodeToString(sum[:])
	sum = sha256.Sum256(bad)
	badSum := base64.StdEncoding.EncodeToString(sum[:])

	presigners := []struct {
		name string
		p    *s3.PresignClient
	}{
		{"Default", s3.NewPresignClient(s.S3)},
		{"NoHeaderHoisting", s.presigner(0, false)},
	}
	for _, ps := range presigners {
		t.Run(ps.name, func(t *testing.T) {
			presign := func(t *testing.T, key string) *v4.PresignedHTTPRequest {
				req, err := ps.p.PresignPutObject(t.Context(), &s3.PutObjectInput{
					Bucket: &b, Key: &key, ContentLength: aws.Int64(int64(len(good))), ChecksumSHA256: &goodSum,
				}, s3.WithPresignExpires(15*time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				wantSigned(t, req.URL, "x-amz-checksum-sha256", "S3 enforces the checksum only as a signed header, not hoisted into the query")
				return req
			}
			t.Run("BodyMismatch", func(t *testing.T) {
				s.skipIf(t, s.Features.NoChecksumValidation, "NoChecksumValidation")
				key := "incoming/" + ps.name + "/mismatch"
				r := s.send(t, presign(t, key), nil, bad)
				wantRaw(t, "presigned PUT whose body does not match the signed checksum", r, http.StatusBadRequest, "BadDigest")
				s.wantMissing(t, b, key)
			})
			t.Run("ChecksumHeaderChanged", func(t *testing.T) {
				s.skipIf(t, s.Features.NoPresignedSignatureCheck, "NoPresignedSignatureCheck")
				key := "incoming/" + ps.name + "/changed"
				r := s.send(t, presign(t, key), http.Header{"X-Amz-Checksum-Sha256": {badSum}}, bad)
				wantRaw(t, "presigned PUT with another checksum header than signed", r, http.StatusForbidden, "SignatureDoesNotMatch")
				s.wantMissing(t, b, key)
			})
			t.Run("Match", func(t *testing.T) {
				key := "incoming/" + ps.name + "/match"
				wantRaw(t, "presigned PUT of the announced body", s.send(t, presign(t, key), nil, good), http.StatusOK, "")
				s.wantBody(t, b, key, good)
			})
		})
	}
}
