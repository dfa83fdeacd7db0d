package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

func TestCreate(t *testing.T) {
	e := newEnv(t)
	body := []byte("{\"op\":\"upsert\",\"id\":\"sku-1\",\"product\":{}}\n")
	sum := sha256.Sum256(body)
	tests := []struct {
		name       string
		req        string
		wantSigned []string // headers the client must send, signed into the URL
	}{
		{"delta", fmt.Sprintf(`{"mode":"delta","contentLength":%d}`, len(body)), []string{"content-length", "host", "if-none-match"}},
		{"full gzip", fmt.Sprintf(`{"mode":"full","contentLength":%d,"contentEncoding":"gzip","expiresIn":60,"allowEmpty":true,"maxFullDeleteRatio":0.9}`, len(body)), []string{"content-length", "host", "if-none-match"}},
		{"sha256", fmt.Sprintf(`{"mode":"delta","contentLength":%d,"sha256":"%s"}`, len(body), strings.ToUpper(hex.EncodeToString(sum[:]))), []string{"content-length", "host", "if-none-match", "x-amz-checksum-sha256"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.create("demo", tt.req, nil)
			if c.Sequence != uint64(i+1) || c.Method != http.MethodPut {
				t.Errorf("created %+v, want sequence %d and PUT", c, i+1)
			}
			if seq, err := layout.ParseUploadID(c.UploadID); err != nil || seq != c.Sequence {
				t.Errorf("upload id %q does not carry sequence %d", c.UploadID, c.Sequence)
			}
			u, err := url.Parse(c.URL)
			if err != nil {
				t.Fatal(err)
			}
			wantPath := "/" + incomingBucket + "/" + layout.Incoming{Site: "demo", Sequence: c.Sequence, UploadID: c.UploadID}.Key()
			if u.Path != wantPath {
				t.Errorf("URL path %s, want %s", u.Path, wantPath)
			}
			if got := u.Query().Get("X-Amz-SignedHeaders"); got != strings.Join(tt.wantSigned, ";") {
				t.Errorf("signed headers %q, want %q", got, strings.Join(tt.wantSigned, ";"))
			}
			for k := range u.Query() {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum") {
					t.Errorf("the checksum was hoisted into the query string (%s), where S3 does not enforce it", k)
				}
			}
			h := http.Header{}
			for k, v := range c.Headers {
				h.Set(k, v)
			}
			if h.Get("If-None-Match") != "*" || h.Get("Content-Length") != fmt.Sprint(len(body)) {
				t.Errorf("headers %v: want If-None-Match * and Content-Length %d", c.Headers, len(body))
			}
			if strings.Contains(tt.req, "sha256") && h.Get("X-Amz-Checksum-Sha256") == "" {
				t.Errorf("headers %v: want x-amz-checksum-sha256", c.Headers)
			}
			expiresIn := 900 * time.Second
			if strings.Contains(tt.req, `"expiresIn":60`) {
				expiresIn = 60 * time.Second
			}
			if rec := e.record("demo", c.Sequence); !rec.ExpiresAt.Equal(rec.Timestamps[uploads.AwaitingUpload].Add(expiresIn)) || !c.ExpiresAt.Equal(rec.ExpiresAt) {
				t.Errorf("expiresAt %v (record %v), created %v: want %v later", c.ExpiresAt, rec.ExpiresAt, rec.Timestamps[uploads.AwaitingUpload], expiresIn)
			}
			resp := e.get("demo", c.UploadID)
			if resp.StatusCode != 200 {
				t.Fatalf("get: %d %s", resp.StatusCode, resp.Body)
			}
			golden(t, "create-"+strings.ReplaceAll(tt.name, " ", "-"), mustJSON(t, c))
			golden(t, "status-"+strings.ReplaceAll(tt.name, " ", "-"), []byte(resp.Body))
		})
	}

	// The URL works for exactly the body it was made for, once.
	t.Run("put", func(t *testing.T) {
		c := e.create("demo", fmt.Sprintf(`{"mode":"delta","contentLength":%d,"sha256":"%x"}`, len(body), sum), nil)
		if st := putURL(t, c, body); st != http.StatusOK {
			t.Fatalf("PUT: %d", st)
		}
		if st := putURL(t, c, body); st != http.StatusPreconditionFailed {
			t.Errorf("second PUT: %d, want 412", st)
		}
		c2 := e.create("demo", fmt.Sprintf(`{"mode":"delta","contentLength":%d,"sha256":"%x"}`, len(body), sum), nil)
		other := bytes.ToUpper(body)
		if st := putURL(t, c2, other); st == http.StatusOK {
			t.Errorf("PUT of a body that does not match the signed checksum: %d, want a refusal", st)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putURL sends body to a presigned URL with the headers the API listed.
func putURL(t *testing.T, c createResponse, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), c.Method, c.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.Headers {
		if !strings.EqualFold(k, "Content-Length") {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestCreateRejectsBadRequests(t *testing.T) {
	e := newEnv(t)
	e.site(site.Config{Site: "small", MaxContentLength: 1000})
	tests := []struct {
		name, site, body string
		status           int
		code             string
	}{
		{"empty body", "demo", ``, 400, "bad_request"},
		{"bad JSON", "demo", `{"mode":"delta",`, 400, "bad_request"},
		{"not an object", "demo", `[1]`, 400, "bad_request"},
		{"trailing data", "demo", `{"mode":"delta","contentLength":1} {}`, 400, "bad_request"},
		{"unknown field", "demo", `{"mode":"delta","contentLength":1,"size":1}`, 400, "bad_request"},
		{"mode missing", "demo", `{"contentLength":1}`, 400, "bad_request"},
		{"mode unknown", "demo", `{"mode":"replace","contentLength":1}`, 400, "bad_request"},
		{"contentLength missing", "demo", `{"mode":"delta"}`, 400, "bad_request"},
		{"contentLength 0", "demo", `{"mode":"delta","contentLength":0}`, 400, "bad_request"},
		{"contentLength negative", "demo", `{"mode":"delta","contentLength":-5}`, 400, "bad_request"},
		{"contentLength fractional", "demo", `{"mode":"delta","contentLength":1.5}`, 400, "bad_request"},
		{"sha256 not hex", "demo", `{"mode":"delta","contentLength":1,"sha256":"` + strings.Repeat("zz", 32) + `"}`, 400, "bad_request"},
		{"sha256 short", "demo", `{"mode":"delta","contentLength":1,"sha256":"abcd"}`, 400, "bad_request"},
		{"contentEncoding", "demo", `{"mode":"delta","contentLength":1,"contentEncoding":"br"}`, 400, "bad_request"},
		{"expiresIn 0", "demo", `{"mode":"delta","contentLength":1,"expiresIn":0}`, 400, "bad_request"},
		{"expiresIn 3601", "demo", `{"mode":"delta","contentLength":1,"expiresIn":3601}`, 400, "bad_request"},
		{"expiresIn huge", "demo", `{"mode":"delta","contentLength":1,"expiresIn":9223372036854775807}`, 400, "bad_request"},
		{"allowEmpty on a delta", "demo", `{"mode":"delta","contentLength":1,"allowEmpty":true}`, 400, "bad_request"},
		{"maxFullDeleteRatio on a delta", "demo", `{"mode":"delta","contentLength":1,"maxFullDeleteRatio":0.9}`, 400, "bad_request"},
		{"maxFullDeleteRatio over 1", "demo", `{"mode":"full","contentLength":1,"maxFullDeleteRatio":1.5}`, 400, "bad_request"},
		{"body over 64 KiB", "demo", `{"mode":"delta","contentLength":1,"sha256":"` + strings.Repeat(" ", 1<<20) + `"}`, 400, "bad_request"},
		{"over the default 5 GiB", "demo", `{"mode":"delta","contentLength":5368709121}`, 413, "too_large"},
		{"over the site's limit", "small", `{"mode":"delta","contentLength":1001}`, 413, "too_large"},
		{"at the site's limit", "small", `{"mode":"delta","contentLength":1000}`, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(call{method: "POST", route: routeCreate, params: map[string]string{"site": tt.site}, headers: auth(e.tokens[tt.site]), body: tt.body})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, resp.Body, tt.status)
			}
			if tt.code != "" {
				if code := errorCode(t, resp.Body); code != tt.code {
					t.Errorf("code %q, want %q", code, tt.code)
				}
			}
		})
	}
	// Nothing but the one valid request allocated a sequence.
	recs, _, err := e.h.Uploads.List(t.Context(), "demo", 0, 10)
	if err != nil || len(recs) != 0 {
		t.Errorf("demo has %d records after only bad requests (%v)", len(recs), err)
	}
}

func TestCreateBase64Body(t *testing.T) {
	e := newEnv(t)
	req := apiRequest("POST", routeCreate, map[string]string{"site": "demo"}, auth(e.tokens["demo"]), "eyJtb2RlIjoiZGVsdGEiLCJjb250ZW50TGVuZ3RoIjozfQ==", e.cloud.Clock().Now())
	req.IsBase64Encoded = true
	resp, err := e.h.Handle(t.Context(), req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("base64 body: %d %s %v", resp.StatusCode, resp.Body, err)
	}
	req.Body = "!!!"
	if resp, _ := e.h.Handle(t.Context(), req); resp.StatusCode != 400 {
		t.Errorf("bad base64: %d, want 400", resp.StatusCode)
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	c := e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	routes := []struct {
		method, route string
		params        map[string]string
		body          string
	}{
		{"POST", routeCreate, map[string]string{}, `{"mode":"delta","contentLength":3}`},
		{"GET", routeCreate, map[string]string{}, ""},
		{"GET", routeUpload, map[string]string{"uploadId": c.UploadID}, ""},
		{"DELETE", routeUpload, map[string]string{"uploadId": c.UploadID}, ""},
		{"GET", routeCatalog, map[string]string{}, ""},
		{"GET", routeProduct, map[string]string{"id": "sku-1"}, ""},
	}
	tokens := []struct {
		name    string
		site    string
		headers map[string]string
		status  int
	}{
		{"no token", "demo", nil, 401},
		{"not bearer", "demo", map[string]string{"Authorization": "Basic " + e.tokens["demo"]}, 401},
		{"empty bearer", "demo", map[string]string{"Authorization": "Bearer "}, 401},
		{"wrong token", "demo", auth("fp_" + strings.Repeat("a", 52)), 403},
		{"another site's token", "demo", auth(e.tokens["other"]), 403},
		{"unknown site", "nosuchsite", auth(e.tokens["demo"]), 403},
	}
	for _, r := range routes {
		for _, tk := range tokens {
			t.Run(r.method+" "+r.route+"/"+tk.name, func(t *testing.T) {
				params := map[string]string{"site": tk.site}
				for k, v := range r.params {
					params[k] = v
				}
				resp := e.do(call{method: r.method, route: r.route, params: params, headers: tk.headers, body: r.body})
				if resp.StatusCode != tk.status {
					t.Fatalf("status %d %s, want %d", resp.StatusCode, resp.Body, tk.status)
				}
				errorCode(t, resp.Body)
			})
		}
	}
	if rec := e.record("demo", c.Sequence); rec.State != uploads.AwaitingUpload {
		t.Errorf("refused requests changed the upload: %s", rec.State)
	}
	recs, _, _ := e.h.Uploads.List(t.Context(), "demo", 0, 10)
	if len(recs) != 1 {
		t.Errorf("refused creates allocated sequences: %d records", len(recs))
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	req := `{"mode":"delta","contentLength":10}`
	a := e.create("demo", req, map[string]string{"Idempotency-Key": "k1"})
	b := e.create("demo", req, map[string]string{"Idempotency-Key": "k1"})
	if a.UploadID != b.UploadID || a.URL != b.URL {
		t.Errorf("the same key gave two uploads: %s and %s", a.UploadID, b.UploadID)
	}
	c := e.create("demo", req, map[string]string{"Idempotency-Key": "k2"})
	if c.UploadID == a.UploadID || c.Sequence != 2 {
		t.Errorf("another key gave %+v, want a new upload with sequence 2", c)
	}
	// Keys are per site.
	o := e.create("other", req, map[string]string{"Idempotency-Key": "k1"})
	if o.UploadID == a.UploadID {
		t.Errorf("a key of demo answered other's create")
	}
	resp := e.do(call{method: "POST", route: routeCreate, params: map[string]string{"site": "demo"},
		headers: map[string]string{"Authorization": "Bearer " + e.tokens["demo"], "Idempotency-Key": strings.Repeat("k", 256)}, body: req})
	if resp.StatusCode != 400 {
		t.Errorf("a 256-character key: %d, want 400", resp.StatusCode)
	}
	// The same request in another spelling is the same request.
	d := e.create("demo", `{ "contentLength": 10, "mode": "delta" }`, map[string]string{"Idempotency-Key": "k1"})
	if d.UploadID != a.UploadID {
		t.Errorf("the same fields in another order gave upload %s, want %s", d.UploadID, a.UploadID)
	}
	// A key reused for another request is refused, and allocates nothing.
	before, _, _ := e.h.Uploads.List(t.Context(), "demo", 0, 100)
	resp = e.do(call{method: "POST", route: routeCreate, params: map[string]string{"site": "demo"},
		headers: map[string]string{"Authorization": "Bearer " + e.tokens["demo"], "Idempotency-Key": "k1"}, body: `{"mode":"full","contentLength":10}`})
	if resp.StatusCode != 422 || !strings.Contains(resp.Body, `"idempotency_key_reused"`) || !strings.Contains(resp.Body, a.UploadID) {
		t.Errorf("a key reused for another request: %d %s, want 422 idempotency_key_reused naming %s", resp.StatusCode, resp.Body, a.UploadID)
	}
	after, _, _ := e.h.Uploads.List(t.Context(), "demo", 0, 100)
	if len(after) != len(before) {
		t.Errorf("the refused request allocated %d sequences", len(after)-len(before))
	}
}

// racingS3 holds the answers to the first n reads of an idempotency key
// until all n were read, so that n concurrent POSTs with one key all miss it
// and race to store it.
type racingS3 struct {
	objectAPI
	mu      sync.Mutex
	waiting int
	n       int
	release chan struct{}
}

func (r *racingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := r.objectAPI.GetObject(ctx, in, opts...)
	if strings.HasPrefix(aws.ToString(in.Key), "idempotency/") {
		r.mu.Lock()
		first := r.waiting < r.n
		if first {
			r.waiting++
			if r.waiting == r.n {
				close(r.release)
			}
		}
		r.mu.Unlock()
		if first {
			<-r.release
		}
	}
	return out, err
}

func TestIdempotencyKeyConcurrent(t *testing.T) {
	e := newEnv(t)
	const n = 3
	e.h.S3 = &racingS3{objectAPI: e.h.S3, n: n, release: make(chan struct{})}
	got := make([]createResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i] = e.create("demo", `{"mode":"delta","contentLength":10}`, map[string]string{"Idempotency-Key": "same"})
		})
	}
	wg.Wait()
	for _, c := range got[1:] {
		if c.UploadID != got[0].UploadID {
			t.Fatalf("concurrent POSTs with one key answered different uploads: %s, %s", got[0].UploadID, c.UploadID)
		}
	}
	recs, _, err := e.h.Uploads.List(t.Context(), "demo", 0, 10)
	if err != nil || len(recs) != n {
		t.Fatalf("%d records (%v), want %d allocations", len(recs), err, n)
	}
	wakes := 0
	for _, m := range e.importMessages() {
		if m.Kind == messages.KindWake && m.Site == "demo" {
			wakes++
		}
	}
	for _, r := range recs {
		switch {
		case r.UploadID == got[0].UploadID && r.State != uploads.AwaitingUpload:
			t.Errorf("the winning upload is %s", r.State)
		case r.UploadID != got[0].UploadID && r.State != uploads.Cancelled:
			t.Errorf("a losing allocation (sequence %d) is %s, want cancelled", r.Sequence, r.State)
		}
	}
	if wakes != n-1 {
		t.Errorf("%d wake messages, want one per cancelled loser (%d)", wakes, n-1)
	}
}

func TestMaxOutstanding(t *testing.T) {
	e := newEnv(t)
	e.site(site.Config{Site: "busy", MaxOutstanding: 2})
	req := `{"mode":"delta","contentLength":10}`
	first := e.create("busy", req, nil)
	e.create("busy", req, nil)
	resp := e.do(call{method: "POST", route: routeCreate, params: map[string]string{"site": "busy"}, headers: auth(e.tokens["busy"]), body: req})
	if resp.StatusCode != 429 || resp.Headers["Retry-After"] == "" || errorCode(t, resp.Body) != "too_many_outstanding" {
		t.Fatalf("third create: %d %v %s, want 429 with Retry-After", resp.StatusCode, resp.Headers, resp.Body)
	}
	// A retried key is answered even at the limit? No: it created nothing;
	// cancelling one upload frees a place.
	if r := e.do(call{method: "DELETE", route: routeUpload, params: map[string]string{"site": "busy", "uploadId": first.UploadID}, headers: auth(e.tokens["busy"])}); r.StatusCode != 200 {
		t.Fatalf("cancel: %d %s", r.StatusCode, r.Body)
	}
	e.create("busy", req, nil)
	// Other sites are not limited by busy's uploads.
	e.create("demo", req, nil)
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	e.site(site.Config{Site: "slow", RatePerMinute: 6})
	req := `{"mode":"delta","contentLength":10}`
	e.create("slow", req, nil) // burst of max(1, 6/6) = 1
	resp := e.do(call{method: "POST", route: routeCreate, params: map[string]string{"site": "slow"}, headers: auth(e.tokens["slow"]), body: req})
	if resp.StatusCode != 429 || resp.Headers["Retry-After"] == "" || errorCode(t, resp.Body) != "rate_limited" {
		t.Fatalf("second create: %d %v %s, want 429 with Retry-After", resp.StatusCode, resp.Headers, resp.Body)
	}
}

func TestGetNotFound(t *testing.T) {
	e := newEnv(t)
	c := e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	o := e.create("other", `{"mode":"delta","contentLength":3}`, nil)
	_, random, _ := strings.Cut(c.UploadID, "-")
	_, otherRandom, _ := strings.Cut(o.UploadID, "-")
	tests := []struct{ name, id string }{
		{"unknown sequence", "7-" + random},
		{"another sequence's id", "2-" + random},
		{"right sequence, wrong random part", "1-" + otherRandom},
		{"another site's upload", "1-" + otherRandom},
		{"malformed", "not-an-id"},
		{"zero sequence", "0-" + random},
		{"path traversal", "../1-" + random},
		{"uppercase", strings.ToUpper(c.UploadID)},
		{"empty", ""},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "DELETE"} {
			t.Run(method+"/"+tt.name, func(t *testing.T) {
				resp := e.do(call{method: method, route: routeUpload, params: map[string]string{"site": "demo", "uploadId": tt.id}, headers: auth(e.tokens["demo"])})
				if resp.StatusCode != 404 || errorCode(t, resp.Body) != "not_found" {
					t.Errorf("%s %q: %d %s, want 404", method, tt.id, resp.StatusCode, resp.Body)
				}
			})
		}
	}
	if rec := e.record("demo", 1); rec.State != uploads.AwaitingUpload {
		t.Errorf("a DELETE with a wrong id changed sequence 1: %s", rec.State)
	}
	if r := e.do(call{method: "PATCH", route: routeUpload, params: map[string]string{"site": "demo", "uploadId": c.UploadID}, headers: auth(e.tokens["demo"])}); r.StatusCode != 404 {
		t.Errorf("unknown route: %d", r.StatusCode)
	}
}

func TestSiteIDs(t *testing.T) {
	e := newEnv(t)
	for _, s := range []string{"../demo", "demo/..", "demo%2Fother", "dém", "DEMO", "", "-demo", strings.Repeat("a", 64)} {
		t.Run(s, func(t *testing.T) {
			resp := e.do(call{method: "GET", route: routeCatalog, params: map[string]string{"site": s}, headers: auth(e.tokens["demo"])})
			if resp.StatusCode != 404 {
				t.Errorf("site %q: %d %s, want 404", s, resp.StatusCode, resp.Body)
			}
		})
	}
}

func TestList(t *testing.T) {
	e := newEnv(t)
	for range 5 {
		e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	}
	e.create("other", `{"mode":"delta","contentLength":3}`, nil)
	type page struct {
		Uploads []uploads.Record `json:"uploads"`
		Next    string           `json:"next"`
	}
	list := func(query map[string]string) (int, page, string) {
		resp := e.do(call{method: "GET", route: routeCreate, params: map[string]string{"site": "demo"}, query: query, headers: auth(e.tokens["demo"])})
		var p page
		if resp.StatusCode == 200 {
			if err := json.Unmarshal([]byte(resp.Body), &p); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, p, resp.Body
	}
	var seqs []uint64
	query := map[string]string{"limit": "2"}
	for pages := 0; ; pages++ {
		st, p, body := list(query)
		if st != 200 || pages > 5 {
			t.Fatalf("page %d: %d %s", pages, st, body)
		}
		if pages == 0 {
			golden(t, "list-page-1", []byte(body))
		}
		for _, r := range p.Uploads {
			seqs = append(seqs, r.Sequence)
		}
		if p.Next == "" {
			break
		}
		query = map[string]string{"limit": "2", "after": p.Next}
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
		t.Errorf("pages listed %v, want 1..5 once each", seqs)
	}
	if _, p, _ := list(map[string]string{"after": "5"}); len(p.Uploads) != 0 || p.Next != "" {
		t.Errorf("after the last: %+v", p)
	}
	for _, q := range []map[string]string{{"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"after": "-1"}, {"after": "x"}} {
		if st, _, _ := list(q); st != 400 {
			t.Errorf("list %v: %d, want 400", q, st)
		}
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	a := e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	b := e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	cancel := func(id string) (int, string) {
		resp := e.do(call{method: "DELETE", route: routeUpload, params: map[string]string{"site": "demo", "uploadId": id}, headers: auth(e.tokens["demo"])})
		return resp.StatusCode, resp.Body
	}
	st, body := cancel(a.UploadID)
	if st != 200 {
		t.Fatalf("cancel: %d %s", st, body)
	}
	golden(t, "cancelled", []byte(body))
	if rec := e.record("demo", a.Sequence); rec.State != uploads.Cancelled {
		t.Errorf("record is %s", rec.State)
	}
	msgs := e.importMessages()
	if len(msgs) != 1 || msgs[0].Kind != messages.KindWake || msgs[0].Site != "demo" {
		t.Errorf("import queue after a cancel: %+v, want one wake of demo", msgs)
	}
	if st, body := cancel(a.UploadID); st != 200 {
		t.Errorf("cancel again: %d %s, want 200 (idempotent)", st, body)
	}
	e.setState("demo", b.Sequence, uploads.Received)
	if st, body := cancel(b.UploadID); st != 409 || errorCode(t, body) != "conflict" {
		t.Errorf("cancel a received upload: %d %s, want 409", st, body)
	}
	if rec := e.record("demo", b.Sequence); rec.State != uploads.Received {
		t.Errorf("a refused cancel changed the record to %s", rec.State)
	}
	_, random, _ := strings.Cut(a.UploadID, "-")
	if st, _ := cancel("9-" + random); st != 404 {
		t.Errorf("cancel an unknown upload: %d, want 404", st)
	}
}

func TestStatusReconciledWithCatalog(t *testing.T) {
	e := newEnv(t)
	a := e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	b := e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	e.setState("demo", a.Sequence, uploads.Received, uploads.Queued)
	e.setState("demo", b.Sequence, uploads.Received, uploads.Queued)
	e.commitCatalog("demo", 1, map[string]string{"sku-1": `{"title":"one"}`})
	resp := e.get("demo", a.UploadID)
	golden(t, "status-applied-but-queued", []byte(resp.Body))
	var st status
	_ = json.Unmarshal([]byte(resp.Body), &st)
	if st.State != uploads.Imported {
		t.Errorf("sequence 1 is at or below appliedSeq but shown as %s", st.State)
	}
	if err := site.SaveState(t.Context(), e.s3, storeBucket, "demo", site.State{Halted: true, Reason: "the stored upload is missing", Sequence: 2}); err != nil {
		t.Fatal(err)
	}
	resp = e.get("demo", b.UploadID)
	golden(t, "status-site-halted", []byte(resp.Body))
	_ = json.Unmarshal([]byte(resp.Body), &st)
	if st.State != uploads.Queued || !st.SiteHalted || st.SiteHaltedReason == "" {
		t.Errorf("status of a halted site: %+v", st)
	}
}

func TestCatalog(t *testing.T) {
	e := newEnv(t)
	products := map[string]string{
		"sku-1":    `{"title":"plain"}`,
		"sku/2":    `{"title":"slash"}`,
		"ünï-3":    `{"title":"unicode"}`,
		"../sku-5": `{"title":"dot-dot"}`,
		"sku%2F6":  `{"title":"escaped slash"}`,
		"a b?c#d":  `{"title":"url-special"}`,
		"日本語/../x": `{"title":"mixed"}`,
	}
	for range 3 {
		e.create("demo", `{"mode":"delta","contentLength":3}`, nil)
	}
	e.setState("demo", 1, uploads.Received, uploads.Queued)
	e.setState("demo", 2, uploads.Received, uploads.Queued)
	e.setState("demo", 3, uploads.Received)
	e.commitCatalog("demo", 1, products)

	resp := e.do(call{method: "GET", route: routeCatalog, params: map[string]string{"site": "demo"}, headers: auth(e.tokens["demo"])})
	if resp.StatusCode != 200 {
		t.Fatalf("catalog: %d %s", resp.StatusCode, resp.Body)
	}
	golden(t, "catalog-summary", []byte(resp.Body))

	for id, want := range products {
		t.Run(id, func(t *testing.T) {
			resp := e.do(call{method: "GET", route: routeProduct, params: map[string]string{"site": "demo", "id": id}, headers: auth(e.tokens["demo"])})
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, resp.Body)
			}
			var out struct {
				ID      string          `json:"id"`
				Product json.RawMessage `json:"product"`
			}
			if err := json.Unmarshal([]byte(resp.Body), &out); err != nil || out.ID != id || string(out.Product) != want {
				t.Errorf("got %s, want id %q product %s", resp.Body, id, want)
			}
		})
	}
	resp = e.do(call{method: "GET", route: routeProduct, params: map[string]string{"site": "demo", "id": "sku/2"}, headers: auth(e.tokens["demo"])})
	golden(t, "product", []byte(resp.Body))

	tests := []struct {
		name, site, id string
		status         int
	}{
		{"absent", "demo", "sku-9", 404},
		{"escaped form of a stored id", "demo", "sku%2F2", 404},
		{"decoded form of a stored id", "demo", "sku/6", 404},
		{"another site's catalog", "other", "sku-1", 404},
		{"over 256 bytes", "demo", strings.Repeat("x", 257), 400},
		{"not UTF-8", "demo", "sku-\xff", 400},
		{"empty", "demo", "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(call{method: "GET", route: routeProduct, params: map[string]string{"site": tt.site, "id": tt.id}, headers: auth(e.tokens[tt.site])})
			if resp.StatusCode != tt.status {
				t.Errorf("%q: %d %s, want %d", tt.id, resp.StatusCode, resp.Body, tt.status)
			}
			errorCode(t, resp.Body)
		})
	}

	// A site without a catalog has an empty summary.
	resp = e.do(call{method: "GET", route: routeCatalog, params: map[string]string{"site": "other"}, headers: auth(e.tokens["other"])})
	golden(t, "catalog-summary-empty", []byte(resp.Body))
}
