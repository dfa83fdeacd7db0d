package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/samtemplate"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// The spec of this function's API and the template that routes to it.
const (
	oasSpecPath     = "../../api/openapi.yaml"
	oasTemplatePath = "../../template.yaml"
	oasFunction     = "UploadFunction"
	// oasServer is the spec's local server; requests are matched against
	// the spec with this base URL.
	oasServer = "http://127.0.0.1:3000"
)

// oasLoad loads and validates the spec.
func oasLoad(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(oasSpecPath)
	if err != nil {
		t.Fatalf("load %s: %v", oasSpecPath, err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("%s is OpenAPI %q, want 3.1.0", oasSpecPath, doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableMultiError()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", oasSpecPath, err)
	}
	return doc
}

// oasPath is a gateway route's path as OpenAPI writes it: a greedy {id+}
// is the path parameter {id}.
func oasPath(route string) string {
	return strings.ReplaceAll(route, "+}", "}")
}

// oasTemplateRoutes returns the HttpApi routes of UploadFunction in
// template.yaml, as "METHOD /path" route keys.
func oasTemplateRoutes(t *testing.T) []string {
	t.Helper()
	tpl, err := samtemplate.Load(oasTemplatePath)
	if err != nil {
		t.Fatal(err)
	}
	props, err := tpl.FunctionProperties(oasFunction)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := props["Events"].(map[string]any)
	var keys []string
	for name, raw := range evs {
		ev, _ := raw.(map[string]any)
		if ev["Type"] != "HttpApi" {
			continue
		}
		p, _ := ev["Properties"].(map[string]any)
		method, _ := p["Method"].(string)
		path, _ := p["Path"].(string)
		if method == "" || path == "" {
			t.Fatalf("%s.Events.%s: want a literal Method and Path, got %v", oasFunction, name, p)
		}
		keys = append(keys, strings.ToUpper(method)+" "+path)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		t.Fatalf("%s has no HttpApi events", oasFunction)
	}
	return keys
}

// oasOperations returns the spec's operations as "METHOD /path".
func oasOperations(doc *openapi3.T) []string {
	var keys []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			keys = append(keys, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(keys)
	return keys
}

// TestOpenAPIRoutesMatchTemplate checks that every route template.yaml
// sends to the function is in the spec, and that the spec has no other.
func TestOpenAPIRoutesMatchTemplate(t *testing.T) {
	doc := oasLoad(t)
	var want []string
	for _, k := range oasTemplateRoutes(t) {
		want = append(want, oasPath(k))
	}
	sort.Strings(want)
	got := oasOperations(doc)
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("template.yaml routes %s to %s; the spec does not have it", k, oasFunction)
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("the spec has %s; template.yaml routes no such request to %s", k, oasFunction)
		}
	}
	// Every operation is reachable through the spec's local server.
	if len(doc.Servers) == 0 || doc.Servers[0].URL != oasServer {
		t.Errorf("the first server is not the local stack %s", oasServer)
	}
}

// TestOpenAPICreateRequestSchema checks the create request schema against
// the handler's own parsing: the spec accepts a body exactly when the
// handler does (a size over the site's limit aside, which is a 413 and
// which the spec bounds only by the 5 GiB maximum).
func TestOpenAPICreateRequestSchema(t *testing.T) {
	doc := oasLoad(t)
	ref := doc.Components.Schemas["CreateUploadRequest"]
	if ref == nil || ref.Value == nil {
		t.Fatal("no CreateUploadRequest schema")
	}
	sha := strings.Repeat("ab", 32)
	bodies := []string{
		`{"mode":"delta","contentLength":1}`,
		`{"mode":"full","contentLength":5368709120}`,
		`{"mode":"delta","contentLength":5368709121}`,
		`{"mode":"delta","contentLength":10,"sha256":"` + sha + `","contentEncoding":"gzip","expiresIn":3600}`,
		`{"mode":"delta","contentLength":10,"sha256":"` + strings.ToUpper(sha) + `","contentEncoding":"identity"}`,
		`{"mode":"delta","contentLength":10,"contentEncoding":"zstd","expiresIn":1}`,
		`{"mode":"delta","contentLength":10,"allowEmpty":false}`,
		`{"mode":"full","contentLength":10,"allowEmpty":true,"maxFullDeleteRatio":0}`,
		`{"mode":"full","contentLength":10,"maxFullDeleteRatio":1}`,
		`{}`,
		`[]`,
		`{"contentLength":10}`,
		`{"mode":"delta"}`,
		`{"mode":"replace","contentLength":10}`,
		`{"mode":"delta","contentLength":0}`,
		`{"mode":"delta","contentLength":-1}`,
		`{"mode":"delta","contentLength":1.5}`,
		`{"mode":"delta","contentLength":"10"}`,
		`{"mode":"delta","contentLength":10,"sha256":"abcd"}`,
		`{"mode":"delta","contentLength":10,"sha256":"` + strings.Repeat("zz", 32) + `"}`,
		`{"mode":"delta","contentLength":10,"contentEncoding":"br"}`,
		`{"mode":"delta","contentLength":10,"expiresIn":0}`,
		`{"mode":"delta","contentLength":10,"expiresIn":3601}`,
		`{"mode":"delta","contentLength":10,"allowEmpty":true}`,
		`{"mode":"delta","contentLength":10,"maxFullDeleteRatio":0.5}`,
		`{"mode":"full","contentLength":10,"maxFullDeleteRatio":1.5}`,
		`{"mode":"full","contentLength":10,"maxFullDeleteRatio":-0.1}`,
		`{"mode":"delta","contentLength":10,"size":10}`,
	}
	cfg := site.Config{Site: "demo"}.Limits()
	for _, body := range bodies {
		_, apiErr := parseCreate([]byte(body), cfg)
		handlerOK := apiErr == nil
		overLimit := apiErr != nil && apiErr.status == http.StatusRequestEntityTooLarge
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		specErr := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
		switch {
		case handlerOK && specErr != nil:
			t.Errorf("%s: the handler accepts it, the spec does not: %v", body, specErr)
		case !handlerOK && !overLimit && specErr == nil:
			t.Errorf("%s: the spec accepts it, the handler answers %d %s", body, apiErr.status, apiErr.message)
		}
	}
}

// oasFailingS3 fails every read, as an unavailable S3 would.
type oasFailingS3 struct{ objectAPI }

func (oasFailingS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, errors.New("injected: S3 unavailable")
}

// oasEnv is the embedded cloud with the function's buckets and queue and a
// Handler on them, built as main.go builds it.
type oasEnv struct {
	t      *testing.T
	cloud  *localcloud.Cloud
	s3     *s3.Client
	h      *Handler
	tokens map[string]string
}

const (
	oasIncomingBucket = "oas-incoming"
	oasStoreBucket    = "oas-store"
)

func newOASEnv(t *testing.T) *oasEnv {
	t.Helper()
	ctx := t.Context()
	cloud, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	creds := credentials.NewStaticCredentialsProvider(localcloud.DefaultAccessKey, localcloud.DefaultSecretKey, "")
	s3c := s3.New(s3.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), UsePathStyle: true, Credentials: creds})
	sqsc := sqs.New(sqs.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), Credentials: creds})
	for _, b := range []string{oasIncomingBucket, oasStoreBucket} {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("oas-import.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &oasEnv{t: t, cloud: cloud, s3: s3c, tokens: map[string]string{}}
	e.h = &Handler{
		S3: s3c, SQS: sqsc, Presign: s3Presigner{client: s3c},
		Uploads: uploads.NewStore(s3c, oasStoreBucket), Catalog: catalogAdapter{catalog.New(s3c, oasStoreBucket)},
		IncomingBucket: oasIncomingBucket, StoreBucket: oasStoreBucket, ImportQueueURL: aws.ToString(q.QueueUrl),
		Logger: slog.New(slog.DiscardHandler),
	}
	return e
}

// site saves a site's configuration with a fresh token.
func (e *oasEnv) site(cfg site.Config) {
	e.t.Helper()
	token, hash := apiauth.NewToken()
	cfg.TokenHashes = []string{hash}
	if err := site.Save(e.t.Context(), e.s3, oasStoreBucket, cfg); err != nil {
		e.t.Fatal(err)
	}
	e.tokens[cfg.Site] = token
}

// event builds the payload format 2.0 event API Gateway sends for a route.
func (e *oasEnv) event(c oasCase) events.APIGatewayV2HTTPRequest {
	method, route, _ := strings.Cut(c.route, " ")
	headers := map[string]string{}
	for k, v := range c.headers {
		headers[strings.ToLower(k)] = v
	}
	now := e.cloud.Clock().Now()
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: c.route, RawPath: oasURLPath(route, c.params),
		PathParameters: c.params, QueryStringParameters: c.query, Headers: headers, Body: c.body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: c.route, Stage: "$default", RequestID: "openapi-test", TimeEpoch: now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: oasURLPath(route, c.params)},
		},
	}
}

var oasParamRE = regexp.MustCompile(`\{([A-Za-z0-9_]+)\+?\}`)

// oasURLPath fills a route's parameters in, percent-encoded as a client
// sends them.
func oasURLPath(route string, params map[string]string) string {
	return oasParamRE.ReplaceAllStringFunc(route, func(m string) string {
		return url.PathEscape(params[oasParamRE.FindStringSubmatch(m)[1]])
	})
}

// httpRequest is the request a client sends for the event, at the spec's
// local server.
func (c oasCase) httpRequest(t *testing.T) *http.Request {
	t.Helper()
	method, route, _ := strings.Cut(c.route, " ")
	u := oasServer + oasURLPath(route, c.params)
	if len(c.query) > 0 {
		q := url.Values{}
		for k, v := range c.query {
			q.Set(k, v)
		}
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// oasCase is one request to the handler and the status it must answer.
type oasCase struct {
	name    string
	route   string // the gateway's route key
	params  map[string]string
	query   map[string]string
	headers map[string]string
	body    string
	broken  bool // S3 fails every read
	status  int
}

// TestOpenAPIConformance drives the real handler on the embedded cloud
// through every route and every status it can answer and checks each
// response against the spec: the operation exists, the status is
// documented for it, and headers and body validate against its schemas.
// Every status the spec documents must have been seen.
func TestOpenAPIConformance(t *testing.T) {
	doc := oasLoad(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	e := newOASEnv(t)
	ctx := t.Context()
	now := func() time.Time { return e.cloud.Clock().Now().UTC().Truncate(time.Millisecond) }
	e.site(site.Config{Site: "demo"})
	e.site(site.Config{Site: "other"})
	e.site(site.Config{Site: "small", MaxContentLength: 1000})
	e.site(site.Config{Site: "busy", MaxOutstanding: 1})
	e.site(site.Config{Site: "slow", RatePerMinute: 1})

	const (
		create  = "POST /v1/sites/{site}/uploads"
		list    = "GET /v1/sites/{site}/uploads"
		get     = "GET /v1/sites/{site}/uploads/{uploadId}"
		cancel  = "DELETE /v1/sites/{site}/uploads/{uploadId}"
		summary = "GET /v1/sites/{site}/catalog"
		product = "GET /v1/sites/{site}/catalog/products/{id+}"
	)
	auth := func(s string) map[string]string { return map[string]string{"Authorization": "Bearer " + e.tokens[s]} }
	with := func(h map[string]string, k, v string) map[string]string { h[k] = v; return h }
	p := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	do := func(c oasCase) events.APIGatewayV2HTTPResponse {
		t.Helper()
		h := e.h
		if c.broken {
			h = &Handler{
				S3: oasFailingS3{e.h.S3}, SQS: e.h.SQS, Presign: e.h.Presign, Uploads: e.h.Uploads, Catalog: e.h.Catalog,
				IncomingBucket: e.h.IncomingBucket, StoreBucket: e.h.StoreBucket, ImportQueueURL: e.h.ImportQueueURL, Logger: e.h.Logger,
			}
		}
		resp, err := h.Handle(ctx, e.event(c))
		if err != nil {
			t.Fatalf("%s: Handle returned an error: %v", c.name, err)
		}
		return resp
	}
	// Uploads of demo in every kind of state the status document shows.
	mk := func(body string) createResponse {
		t.Helper()
		resp := do(oasCase{name: "setup", route: create, params: p("site", "demo"), headers: auth("demo"), body: body})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("setup create: %d %s", resp.StatusCode, resp.Body)
		}
		var c createResponse
		if err := json.Unmarshal([]byte(resp.Body), &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	update := func(seq uint64, f func(r *uploads.Record) error) {
		t.Helper()
		if _, err := e.h.Uploads.Update(ctx, "demo", seq, f); err != nil {
			t.Fatal(err)
		}
	}
	imported := mk(`{"mode":"full","contentLength":100,"sha256":"` + strings.Repeat("0a", 32) + `","contentEncoding":"gzip","allowEmpty":true,"maxFullDeleteRatio":0.9}`)
	update(imported.Sequence, func(r *uploads.Record) error {
		for _, s := range []uploads.State{uploads.Received, uploads.Queued} {
			if err := r.Move(s, now()); err != nil {
				return err
			}
		}
		r.ReceivedSize, r.ReceivedETag = 100, `"0123456789abcdef"`
		return nil // left queued: the catalog below applies it, and the API shows it imported
	})
	rejected := mk(`{"mode":"delta","contentLength":200,"contentEncoding":"zstd"}`)
	update(rejected.Sequence, func(r *uploads.Record) error {
		for _, s := range []uploads.State{uploads.Received, uploads.Queued, uploads.Importing} {
			if err := r.Move(s, now()); err != nil {
				return err
			}
		}
		r.Counts = &uploads.Counts{Lines: 3, Upserted: 1, Rejected: 2}
		r.Errors = []uploads.LineError{{Line: 2, Code: "bad_json", Reason: "invalid character 'x'"}, {Line: 3, Code: "missing_id", Reason: "no id"}}
		return r.Reject(uploads.ReasonErrorBudget, "2 of 3 lines were rejected", now())
	})
	late := mk(`{"mode":"delta","contentLength":10,"expiresIn":1}`)
	update(late.Sequence, func(r *uploads.Record) error {
		r.LateUpload = &uploads.LateUpload{At: now(), Reason: uploads.ReasonLateUpload}
		return r.Move(uploads.Expired, now())
	})
	received := mk(`{"mode":"delta","contentLength":10}`)
	update(received.Sequence, func(r *uploads.Record) error { return r.Move(uploads.Received, now()) })
	awaiting := mk(`{"mode":"delta","contentLength":10}`)
	toCancel := mk(`{"mode":"delta","contentLength":10}`)

	// The catalog applied the first upload; the site then halted on the
	// second.
	store := catalog.New(e.s3, oasStoreBucket, catalog.WithTempDir(t.TempDir()))
	base, err := store.Head(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	products := map[string]string{"sku-1": `{"title":"Shoe","price":{"amount":"49.90","currency":"EUR"}}`, "shoes/sku 2": `{"title":"Boot"}`}
	st, err := store.Stage(ctx, "demo", base, []catalog.Delta{{Sequence: imported.Sequence, Ops: func(yield func(catalog.Op) error) error {
		for _, id := range []string{"shoes/sku 2", "sku-1"} {
			if err := yield(catalog.Op{ID: id, Product: []byte(products[id])}); err != nil {
				return err
			}
		}
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, imported.Sequence); err != nil {
		t.Fatal(err)
	}
	if err := site.SaveState(ctx, e.s3, oasStoreBucket, "demo", site.State{Halted: true, Reason: "sequence 2 was rejected: fix the feed and resume with feedpipe redrive", Sequence: rejected.Sequence, Since: now()}); err != nil {
		t.Fatal(err)
	}

	sha := strings.Repeat("ab", 32)
	var cases []oasCase
	add := func(cs ...oasCase) { cases = append(cases, cs...) }
	// Refusals every route shares.
	for _, r := range []struct {
		route  string
		params map[string]string
		body   string
	}{
		{create, p(), `{"mode":"delta","contentLength":1}`},
		{list, p(), ""},
		{get, p("uploadId", awaiting.UploadID), ""},
		{cancel, p("uploadId", awaiting.UploadID), ""},
		{summary, p(), ""},
		{product, p("id", "sku-1"), ""},
	} {
		params := func(s string) map[string]string {
			m := p("site", s)
			for k, v := range r.params {
				m[k] = v
			}
			return m
		}
		add(
			oasCase{name: "no token", route: r.route, params: params("demo"), body: r.body, status: 401},
			oasCase{name: "not a bearer token", route: r.route, params: params("demo"), headers: map[string]string{"Authorization": "Basic eDp5"}, body: r.body, status: 401},
			oasCase{name: "another site's token", route: r.route, params: params("demo"), headers: auth("other"), body: r.body, status: 403},
			oasCase{name: "unknown site", route: r.route, params: params("nosuchsite"), headers: auth("demo"), body: r.body, status: 403},
			oasCase{name: "malformed site", route: r.route, params: params("-demo"), headers: auth("demo"), body: r.body, status: 404},
			oasCase{name: "S3 unavailable", route: r.route, params: params("demo"), headers: auth("demo"), body: r.body, broken: true, status: 500},
		)
	}
	add(
		oasCase{name: "delta", route: create, params: p("site", "demo"), headers: auth("demo"), body: `{"mode":"delta","contentLength":5}`, status: 201},
		oasCase{name: "full, every field", route: create, params: p("site", "demo"), headers: with(auth("demo"), "Idempotency-Key", "k1"),
			body: `{"mode":"full","contentLength":5,"sha256":"` + sha + `","contentEncoding":"gzip","expiresIn":3600,"allowEmpty":true,"maxFullDeleteRatio":0.75}`, status: 201},
		oasCase{name: "retried Idempotency-Key", route: create, params: p("site", "demo"), headers: with(auth("demo"), "Idempotency-Key", "k1"),
			body: `{"mode":"full","contentLength":5,"sha256":"` + sha + `","contentEncoding":"gzip","expiresIn":3600,"allowEmpty":true,"maxFullDeleteRatio":0.75}`, status: 201},
		oasCase{name: "Idempotency-Key reused for another request", route: create, params: p("site", "demo"), headers: with(auth("demo"), "Idempotency-Key", "k1"),
			body: `{"mode":"delta","contentLength":5}`, status: 422},
		oasCase{name: "bad body", route: create, params: p("site", "demo"), headers: auth("demo"), body: `{"mode":"delta","contentLength":0,"size":1}`, status: 400},
		oasCase{name: "not JSON", route: create, params: p("site", "demo"), headers: auth("demo"), body: `{"mode":`, status: 400},
		oasCase{name: "Idempotency-Key too long", route: create, params: p("site", "demo"), headers: with(auth("demo"), "Idempotency-Key", strings.Repeat("k", 256)), body: `{"mode":"delta","contentLength":5}`, status: 400},
		oasCase{name: "over the site's limit", route: create, params: p("site", "small"), headers: auth("small"), body: `{"mode":"delta","contentLength":1001}`, status: 413},
		oasCase{name: "over 5 GiB", route: create, params: p("site", "demo"), headers: auth("demo"), body: `{"mode":"delta","contentLength":5368709121}`, status: 413},
		oasCase{name: "rate: first", route: create, params: p("site", "slow"), headers: auth("slow"), body: `{"mode":"delta","contentLength":5}`, status: 201},
		oasCase{name: "rate: second", route: create, params: p("site", "slow"), headers: auth("slow"), body: `{"mode":"delta","contentLength":5}`, status: 429},
		oasCase{name: "outstanding: first", route: create, params: p("site", "busy"), headers: auth("busy"), body: `{"mode":"delta","contentLength":5}`, status: 201},
		oasCase{name: "outstanding: second", route: create, params: p("site", "busy"), headers: auth("busy"), body: `{"mode":"delta","contentLength":5}`, status: 429},

		oasCase{name: "all, halted site", route: list, params: p("site", "demo"), headers: auth("demo"), status: 200},
		oasCase{name: "first page", route: list, params: p("site", "demo"), query: p("limit", "2"), headers: auth("demo"), status: 200},
		oasCase{name: "next page", route: list, params: p("site", "demo"), query: p("after", "2", "limit", "2"), headers: auth("demo"), status: 200},
		oasCase{name: "no uploads", route: list, params: p("site", "other"), headers: auth("other"), status: 200},
		oasCase{name: "bad limit", route: list, params: p("site", "demo"), query: p("limit", "0"), headers: auth("demo"), status: 400},
		oasCase{name: "bad after", route: list, params: p("site", "demo"), query: p("after", "x"), headers: auth("demo"), status: 400},

		oasCase{name: "imported (reconciled)", route: get, params: p("site", "demo", "uploadId", imported.UploadID), headers: auth("demo"), status: 200},
		oasCase{name: "rejected", route: get, params: p("site", "demo", "uploadId", rejected.UploadID), headers: auth("demo"), status: 200},
		oasCase{name: "expired, late upload", route: get, params: p("site", "demo", "uploadId", late.UploadID), headers: auth("demo"), status: 200},
		oasCase{name: "received", route: get, params: p("site", "demo", "uploadId", received.UploadID), headers: auth("demo"), status: 200},
		oasCase{name: "awaiting upload", route: get, params: p("site", "demo", "uploadId", awaiting.UploadID), headers: auth("demo"), status: 200},
		oasCase{name: "unknown upload", route: get, params: p("site", "demo", "uploadId", "99-"+strings.Repeat("a", 26)), headers: auth("demo"), status: 404},
		oasCase{name: "malformed upload id", route: get, params: p("site", "demo", "uploadId", "nope"), headers: auth("demo"), status: 404},

		oasCase{name: "awaiting upload", route: cancel, params: p("site", "demo", "uploadId", toCancel.UploadID), headers: auth("demo"), status: 200},
		oasCase{name: "cancelled again", route: cancel, params: p("site", "demo", "uploadId", toCancel.UploadID), headers: auth("demo"), status: 200},
		oasCase{name: "received", route: cancel, params: p("site", "demo", "uploadId", received.UploadID), headers: auth("demo"), status: 409},
		oasCase{name: "unknown upload", route: cancel, params: p("site", "demo", "uploadId", "99-"+strings.Repeat("a", 26)), headers: auth("demo"), status: 404},
		oasCase{name: "malformed upload id", route: cancel, params: p("site", "demo", "uploadId", "nope"), headers: auth("demo"), status: 404},

		oasCase{name: "halted site with a catalog", route: summary, params: p("site", "demo"), headers: auth("demo"), status: 200},
		oasCase{name: "no catalog", route: summary, params: p("site", "other"), headers: auth("other"), status: 200},

		oasCase{name: "product", route: product, params: p("site", "demo", "id", "sku-1"), headers: auth("demo"), status: 200},
		oasCase{name: "id with a slash", route: product, params: p("site", "demo", "id", "shoes/sku 2"), headers: auth("demo"), status: 200},
		oasCase{name: "unknown product", route: product, params: p("site", "demo", "id", "sku-404"), headers: auth("demo"), status: 404},
		oasCase{name: "no catalog", route: product, params: p("site", "other", "id", "sku-1"), headers: auth("other"), status: 404},
		oasCase{name: "id over 256 bytes", route: product, params: p("site", "demo", "id", strings.Repeat("x", 257)), headers: auth("demo"), status: 400},
		oasCase{name: "id not UTF-8", route: product, params: p("site", "demo", "id", "sku-\xff"), headers: auth("demo"), status: 400},
	)

	// Every route of the template is driven.
	routes := oasTemplateRoutes(t)
	for _, c := range cases {
		if !slices.Contains(routes, c.route) {
			t.Fatalf("case %q: %s is not a route of %s in template.yaml", c.name, c.route, oasFunction)
		}
	}

	seen := map[string]bool{} // "METHOD /path STATUS"
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	for _, c := range cases {
		t.Run(c.route+"/"+c.name, func(t *testing.T) {
			resp := do(c)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, resp.Body, c.status)
			}
			req := c.httpRequest(t)
			route, pathParams, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("%s %s is not an operation of the spec: %v", req.Method, req.URL, err)
			}
			_, routePath, _ := strings.Cut(c.route, " ")
			if route.Path != oasPath(routePath) || route.Method != req.Method {
				t.Fatalf("%s %s matched the spec's %s %s, want %s", req.Method, req.URL, route.Method, route.Path, oasPath(c.route))
			}
			oasCheckResponse(t, route, pathParams, req, resp, opts)
			seen[route.Method+" "+route.Path+" "+fmt.Sprint(resp.StatusCode)] = true
		})
	}

	// The spec documents no status the handler was not seen to answer.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if !seen[method+" "+path+" "+status] {
					t.Errorf("the spec documents %s for %s %s; no case produced it", status, method, path)
				}
			}
		}
	}
}

// oasCheckResponse validates one handler response against the operation.
func oasCheckResponse(t *testing.T, route *routers.Route, pathParams map[string]string, req *http.Request, resp events.APIGatewayV2HTTPResponse, opts *openapi3filter.Options) {
	t.Helper()
	if ct := resp.Headers["Content-Type"]; ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	header := http.Header{}
	for k, v := range resp.Headers {
		header.Set(k, v)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route},
		Status:                 resp.StatusCode,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader([]byte(resp.Body))),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		t.Errorf("%s %s → %d does not conform to the spec: %v\nbody: %s", route.Method, route.Path, resp.StatusCode, err, resp.Body)
	}
}
