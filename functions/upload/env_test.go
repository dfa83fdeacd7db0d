package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	incomingBucket = "incoming"
	storeBucket    = "store"
)

// env is one embedded cloud with feedpipe's buckets and import queue, and
// a Handler on them.
type env struct {
	t        *testing.T
	cloud    *localcloud.Cloud
	s3       *s3.Client
	sqs      *sqs.Client
	queueURL string
	h        *Handler
	tokens   map[string]string // site → token
}

func newEnv(t *testing.T) *env {
	t.Helper()
	lc := localcloudtest.Start(t)
	lc.Buckets(t, incomingBucket, storeBucket)
	cloud, s3c, sqsc := lc.Cloud, lc.S3, lc.SQS
	e := &env{t: t, cloud: cloud, s3: s3c, sqs: sqsc, queueURL: lc.Queue(t, "test-import.fifo", nil), tokens: map[string]string{}}
	e.h = &Handler{
		S3: s3c, SQS: sqsc, Presign: s3Presigner{client: s3c},
		Uploads: uploads.NewStore(s3c, storeBucket), Catalog: catalogAdapter{catalog.New(s3c, storeBucket)},
		IncomingBucket: incomingBucket, StoreBucket: storeBucket, ImportQueueURL: e.queueURL,
		Logger: slog.New(slog.DiscardHandler),
	}
	e.site(site.Config{Site: "demo"})
	e.site(site.Config{Site: "other"})
	return e
}

// site saves a site's configuration with a fresh token.
func (e *env) site(cfg site.Config) {
	e.t.Helper()
	token, hash := apiauth.NewToken()
	cfg.TokenHashes = []string{hash}
	if err := site.Save(e.t.Context(), e.s3, storeBucket, cfg); err != nil {
		e.t.Fatal(err)
	}
	e.tokens[cfg.Site] = token
}

// apiRequest builds an event as API Gateway's payload format 2.0 does:
// route key, decoded path parameters, lower-cased headers and the request
// time in RequestContext.TimeEpoch.
func apiRequest(method, route string, params, headers map[string]string, body string, now time.Time) events.APIGatewayV2HTTPRequest {
	lower := map[string]string{}
	for k, v := range headers {
		lower[toLower(k)] = v
	}
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: method + " " + route, RawPath: route,
		PathParameters: params, Headers: lower, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: method + " " + route, Stage: "$default", RequestID: "test", TimeEpoch: now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: route},
		},
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// call is one request of site's client (token "" sends none).
type call struct {
	method, route string
	params        map[string]string
	query         map[string]string
	headers       map[string]string
	body          string
}

func (e *env) do(c call) events.APIGatewayV2HTTPResponse {
	e.t.Helper()
	req := apiRequest(c.method, c.route, c.params, c.headers, c.body, e.cloud.Clock().Now())
	req.QueryStringParameters = c.query
	resp, err := e.h.Handle(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("%s: Handle returned an error: %v", req.RouteKey, err)
	}
	return resp
}

func auth(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

const (
	routeCreate  = "/v1/sites/{site}/uploads"
	routeUpload  = "/v1/sites/{site}/uploads/{uploadId}"
	routeCatalog = "/v1/sites/{site}/catalog"
	routeProduct = "/v1/sites/{site}/catalog/products/{id+}"
)

// create posts a create request for site and decodes the 201.
func (e *env) create(siteName, body string, headers map[string]string) createResponse {
	e.t.Helper()
	h := auth(e.tokens[siteName])
	for k, v := range headers {
		h[k] = v
	}
	resp := e.do(call{method: "POST", route: routeCreate, params: map[string]string{"site": siteName}, headers: h, body: body})
	if resp.StatusCode != 201 {
		e.t.Fatalf("create %s: %d %s", body, resp.StatusCode, resp.Body)
	}
	var out createResponse
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) get(siteName, uploadID string) events.APIGatewayV2HTTPResponse {
	e.t.Helper()
	return e.do(call{method: "GET", route: routeUpload, params: map[string]string{"site": siteName, "uploadId": uploadID}, headers: auth(e.tokens[siteName])})
}

func (e *env) record(siteName string, seq uint64) uploads.Record {
	e.t.Helper()
	rec, _, err := e.h.Uploads.Get(e.t.Context(), siteName, seq)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// setState forces a record into a state, as a later stage would.
func (e *env) setState(siteName string, seq uint64, states ...uploads.State) {
	e.t.Helper()
	_, err := e.h.Uploads.Update(e.t.Context(), siteName, seq, func(r *uploads.Record) error {
		for _, s := range states {
			if err := r.Move(s, e.cloud.Clock().Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// importMessages receives every visible message of the import queue.
func (e *env) importMessages() []messages.Import {
	e.t.Helper()
	var out []messages.Import
	for {
		r, err := e.sqs.ReceiveMessage(e.t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.queueURL), MaxNumberOfMessages: 10, VisibilityTimeout: 600})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			im, err := messages.DecodeImport(aws.ToString(m.Body))
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, im)
		}
	}
}

// errorCode decodes {"error":{"code"}}.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var out struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Error.Code == "" || out.Error.Message == "" {
		t.Fatalf("not an error document: %s", body)
	}
	return out.Error.Code
}

var (
	uploadIDRE = regexp.MustCompile(`\b([1-9][0-9]*)-[a-z2-7]{26}\b`)
	timeRE     = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)
)

// normalize makes a JSON document comparable across runs: upload ids keep
// only their sequence, URLs, signatures and timestamps become placeholders,
// and keys are sorted.
func normalize(t *testing.T, doc []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("normalize %s: %v", doc, err)
	}
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				x[k] = walk(k, vv)
			}
			return x
		case []any:
			for i, vv := range x {
				x[i] = walk(key, vv)
			}
			return x
		case string:
			switch {
			case key == "url":
				return "<url>"
			case key == "receivedEtag" || key == "Etag":
				return "<etag>"
			case timeRE.MatchString(x):
				return "<time>"
			}
			return uploadIDRE.ReplaceAllString(x, "<uploadId:$1>")
		}
		return v
	}
	v = walk("", v)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// golden compares a normalized document with testdata/name.golden.json,
// or rewrites it with -update.
func golden(t *testing.T, name string, doc []byte) {
	t.Helper()
	got := normalize(t, doc)
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// commitCatalog commits one catalog version of site with the given
// products, applied up to appliedSeq.
func (e *env) commitCatalog(siteName string, appliedSeq uint64, products map[string]string) {
	e.t.Helper()
	ctx := e.t.Context()
	store := catalog.New(e.s3, storeBucket, catalog.WithTempDir(e.t.TempDir()))
	base, err := store.Head(ctx, siteName)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := sortedKeys(products)
	st, err := store.Stage(ctx, siteName, base, []catalog.Delta{{Sequence: appliedSeq, Ops: func(yield func(catalog.Op) error) error {
		for _, id := range ids {
			if err := yield(catalog.Op{ID: id, Product: []byte(products[id])}); err != nil {
				return err
			}
		}
		return nil
	}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := st.Commit(ctx, appliedSeq); err != nil {
		e.t.Fatal(err)
	}
}
