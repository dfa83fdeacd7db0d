package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/site"
)

// raw sends a request with an exact body and token and returns the status
// and the answer.
func (s *stack) raw(method, path, token string, body []byte) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.api+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// endpoint is the S3/SQS endpoint the stack runs on: the test endpoint, or
// the embedded cloud's, which the runner's queue URLs carry.
func (s *stack) endpoint() string {
	if ep := os.Getenv("FEEDPIPE_TEST_ENDPOINT"); ep != "" {
		return ep
	}
	u, err := url.Parse(s.runner.QueueURL("CopyQueue"))
	if err != nil || u.Host == "" {
		s.t.Fatalf("no endpoint in the copy queue's URL %q", s.runner.QueueURL("CopyQueue"))
	}
	return u.Scheme + "://" + u.Host
}

// addSite creates another site and returns its token.
func (s *stack) addSite(name string) string {
	s.t.Helper()
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	token, hash := apiauth.NewToken()
	if err := site.Save(context.Background(), client, s.runner.BucketName("StoreBucket"), site.Config{Site: name, TokenHashes: []string{hash}}); err != nil {
		s.t.Fatal(err)
	}
	return token
}

// putWith sends body to a presigned URL with the listed headers, after edit
// changed the request.
func putWith(t *testing.T, c created, body []byte, edit func(*http.Request)) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, c.URL, bytes.NewReader(body))
	for k, v := range c.Headers {
		if !strings.EqualFold(k, "Content-Length") {
			req.Header.Set(k, v)
		}
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *stack) state(c created) record {
	s.t.Helper()
	var r record
	if st := s.call(http.MethodGet, "/v1/sites/"+s.site+"/uploads/"+c.UploadID, nil, &r); st != http.StatusOK {
		s.t.Fatalf("get upload %d: %d", c.Sequence, st)
	}
	return r
}

func (s *stack) cancel(c created) {
	s.t.Helper()
	if st := s.call(http.MethodDelete, "/v1/sites/"+s.site+"/uploads/"+c.UploadID, nil, nil); st != http.StatusOK {
		s.t.Fatalf("cancel upload %d: %d", c.Sequence, st)
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHostileInputs sends what a careless or hostile client might; each is
// answered with a clear error and nothing valid is lost.
func TestHostileInputs(t *testing.T) {
	s := start(t, map[string]string{"ExpiryGraceSeconds": "0"})
	line, _ := upsert("sku-1", 1)
	body := []byte(line + "\n")

	t.Run("tampered URL", func(t *testing.T) {
		c := s.create("delta", body, nil)
		u, _ := url.Parse(c.URL)
		tamper := map[string]func(q url.Values, u *url.URL){
			"signature": func(q url.Values, _ *url.URL) {
				sig := q.Get("X-Amz-Signature")
				q.Set("X-Amz-Signature", strings.Repeat("0", len(sig)))
			},
			"expiry":         func(q url.Values, _ *url.URL) { q.Set("X-Amz-Expires", "604800") },
			"signed headers": func(q url.Values, _ *url.URL) { q.Set("X-Amz-SignedHeaders", "host") },
			"key": func(_ url.Values, u *url.URL) {
				u.Path = strings.Replace(u.Path, "/incoming/shop/", "/incoming/other/", 1)
			},
		}
		for name, f := range tamper {
			v := *u
			q := v.Query()
			f(q, &v)
			v.RawQuery = q.Encode()
			tc := c
			tc.URL = v.String()
			if st, resp := putWith(t, tc, body, nil); st != http.StatusForbidden {
				t.Errorf("%s tampered: %d %s, want 403", name, st, resp)
			}
		}
		// Without the signed If-None-Match the URL is refused too.
		if st, _ := putWith(t, c, body, func(r *http.Request) { r.Header.Del("If-None-Match") }); st != http.StatusForbidden {
			t.Errorf("PUT without If-None-Match: %d, want 403", st)
		}
		if r := s.state(c); r.State != "awaiting_upload" {
			t.Errorf("refused PUTs moved the upload to %s", r.State)
		}
		s.cancel(c) // later sequences wait for it otherwise
	})

	t.Run("wrong Content-Length", func(t *testing.T) {
		c := s.create("delta", body, nil)
		for _, b := range [][]byte{append(append([]byte{}, body...), body...), body[:len(body)-1]} {
			if st, resp := putWith(t, c, b, nil); st != http.StatusForbidden {
				t.Errorf("PUT of %d bytes to a URL for %d: %d %s, want 403", len(b), len(body), st, resp)
			}
		}
		if st := put(t, c, body); st != http.StatusOK {
			t.Errorf("the right PUT after refused ones: %d", st)
		}
		if r := s.waitTerminal(c, 30*time.Second); r.State != "imported" {
			t.Errorf("upload %+v", r)
		}
	})

	t.Run("other sites", func(t *testing.T) {
		otherToken := s.addSite("other")
		c := s.create("delta", body, nil)
		for _, tc := range []struct{ method, path, token string }{
			{http.MethodPost, "/v1/sites/other/uploads", s.token},
			{http.MethodGet, "/v1/sites/other/uploads", s.token},
			{http.MethodGet, "/v1/sites/shop/uploads/" + c.UploadID, otherToken},
			{http.MethodDelete, "/v1/sites/shop/uploads/" + c.UploadID, otherToken},
			{http.MethodGet, "/v1/sites/shop/catalog", otherToken},
			{http.MethodGet, "/v1/sites/nosuchsite/catalog", s.token},
		} {
			if st, resp := s.raw(tc.method, tc.path, tc.token, []byte(`{"mode":"delta","contentLength":3}`)); st != http.StatusForbidden || !strings.Contains(resp, `"forbidden"`) {
				t.Errorf("%s %s with another site's token: %d %s, want 403", tc.method, tc.path, st, resp)
			}
		}
		// other's own token does not see shop's upload under its own name.
		if st, _ := s.raw(http.MethodGet, "/v1/sites/other/uploads/"+c.UploadID, otherToken, nil); st != http.StatusNotFound {
			t.Errorf("shop's upload id under other: %d, want 404", st)
		}
		if st, _ := s.raw(http.MethodGet, "/v1/sites/shop/uploads", "", nil); st != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", st)
		}
		s.cancel(c)
	})

	t.Run("site ids", func(t *testing.T) {
		for _, p := range []string{"..%2Fshop", "shop%2F..%2Fother", "%2E%2E", "sh%C3%B6p", "SHOP", "Shop", "shop%2Fuploads", "-shop", "shop%00"} {
			for _, rest := range []string{"/uploads", "/catalog"} {
				if st, resp := s.raw(http.MethodGet, "/v1/sites/"+p+rest, s.token, nil); st != http.StatusNotFound {
					t.Errorf("site %s: %d %s, want 404", p, st, resp)
				}
			}
		}
	})

	t.Run("create bodies", func(t *testing.T) {
		huge := []byte(`{"mode":"delta","contentLength":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
		for name, b := range map[string][]byte{
			"empty": nil, "1 MB": huge, "invalid JSON": []byte(`{"mode":"delta","contentLength":`),
			"not JSON": []byte("mode=delta"), "binary": {0xff, 0xfe, 0x00, 0x01}, "null": []byte("null"),
		} {
			st, resp := s.raw(http.MethodPost, "/v1/sites/shop/uploads", s.token, b)
			if st != http.StatusBadRequest || !strings.Contains(resp, `"bad_request"`) {
				t.Errorf("%s body: %d %.200s, want 400 bad_request", name, st, resp)
			}
		}
	})

	t.Run("product ids", func(t *testing.T) {
		ids := []string{"sku/2", "sku%2F6", "ünï-3", "../sku-5", "..", "a b?c#d"}
		var lines []string
		for i, id := range ids {
			l, _ := upsert(id, i)
			lines = append(lines, l)
		}
		b := []byte(strings.Join(lines, "\n") + "\n")
		c := s.create("delta", b, nil)
		if st := put(t, c, b); st != http.StatusOK {
			t.Fatalf("PUT: %d", st)
		}
		if r := s.waitTerminal(c, 30*time.Second); r.State != "imported" {
			t.Fatalf("upload %+v", r)
		}
		for _, id := range ids {
			if _, ok := s.product(id); !ok {
				t.Errorf("product %q not found through its escaped path", id)
			}
		}
		// The raw (unescaped) forms name other ids, or nothing.
		for _, p := range []string{"sku%2F2x", "sku%252F2", "%2E%2E%2Fsku-6"} {
			if st, resp := s.raw(http.MethodGet, "/v1/sites/shop/catalog/products/"+p, s.token, nil); st != http.StatusNotFound {
				t.Errorf("product path %s: %d %s, want 404", p, st, resp)
			}
		}
	})

	t.Run("bad encoding then a valid delta", func(t *testing.T) {
		plain := body
		bad := s.create("delta", plain, map[string]any{"contentEncoding": "gzip"})
		l2, _ := upsert("after-bad", 1)
		good := gzipBytes(t, []byte(l2+"\n"))
		next := s.create("delta", good, map[string]any{"contentEncoding": "gzip"})
		if st := put(t, next, good); st != http.StatusOK {
			t.Fatalf("PUT: %d", st)
		}
		if st := put(t, bad, plain); st != http.StatusOK {
			t.Fatalf("PUT: %d", st)
		}
		if r := s.waitTerminal(bad, 30*time.Second); r.State != "rejected" || r.Reason != "bad_encoding" {
			t.Errorf("plain text declared gzip: %+v, want rejected bad_encoding", r)
		}
		if r := s.waitTerminal(next, 30*time.Second); r.State != "imported" {
			t.Errorf("the valid delta after a bad one: %+v", r)
		}
		if _, ok := s.product("after-bad"); !ok {
			t.Errorf("the valid delta after a bad one was lost")
		}
		// The rejected upload's object is kept, so its URL still cannot
		// create anything: a second PUT, even of other bytes, is 412.
		other := bytes.ToUpper(plain)
		if st, resp := putWith(t, bad, other, nil); st != http.StatusPreconditionFailed {
			t.Errorf("second PUT to a used URL: %d %s, want 412", st, resp)
		}
	})
}

// TestExpiredURL: a URL past its expiry is refused, and the upload expires
// truthfully. On the embedded cloud the shared clock jumps; elsewhere the
// test waits.
func TestExpiredURL(t *testing.T) {
	s := start(t, map[string]string{"ExpiryGraceSeconds": "0"})
	line, _ := upsert("sku-1", 1)
	body := []byte(line + "\n")
	c := s.create("delta", body, map[string]any{"expiresIn": 1})
	if os.Getenv("FEEDPIPE_TEST_ENDPOINT") == "" {
		if st, resp := s.raw(http.MethodPost, "/_feedpipe/clock/advance?by=2s", "", nil); st != http.StatusOK {
			t.Fatalf("advance the clock: %d %s", st, resp)
		}
	} else {
		time.Sleep(2 * time.Second)
	}
	if st, resp := putWith(t, c, body, nil); st != http.StatusForbidden {
		t.Fatalf("PUT to an expired URL: %d %s, want 403", st, resp)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := s.runner.FireSchedule(context.Background(), "SyncFunction"); err != nil {
			t.Fatal(err)
		}
		if r := s.state(c); r.State == "expired" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("an upload whose URL expired is still %s", r.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A later upload is not held back by the expired one.
	c2 := s.create("delta", body, nil)
	if st := put(t, c2, body); st != http.StatusOK {
		t.Fatalf("PUT: %d", st)
	}
	if r := s.waitTerminal(c2, 30*time.Second); r.State != "imported" {
		t.Errorf("upload after an expired one: %+v", r)
	}
}
