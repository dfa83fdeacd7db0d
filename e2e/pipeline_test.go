// Package e2e runs feedpipe end to end the way `make run` does: template.yaml,
// the Makefile's build targets and the runner, on the embedded cloud (or on
// the endpoint in FEEDPIPE_TEST_ENDPOINT), driven only through the Upload API
// and presigned PUTs, as a client would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/clock"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/localcloud/runner"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncbuf"
)

// stack is feedpipe running for one test.
type stack struct {
	t      testing.TB
	api    string
	token  string
	site   string
	runner *runner.Runner
	logs   *syncbuf.Buffer
	// clock is the embedded cloud's clock; nil on an external endpoint.
	clock *clock.Clock
}

var buildDir = localcloudtest.BuildDir("feedpipe-e2e-build")

func start(t testing.TB, params map[string]string) *stack {
	t.Helper()
	ctx := context.Background()
	endpoint := os.Getenv("FEEDPIPE_TEST_ENDPOINT")
	cfg := runner.Config{Template: "../template.yaml", StackName: "e2e" + strings.ToLower(randomSuffix()), Parameters: params, BuildDir: buildDir}
	if endpoint == "" {
		cloud, err := localcloud.Start(ctx, localcloud.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cloud.Close() })
		endpoint = cloud.Endpoint()
		cfg.Clock = cloud.Clock()
		cfg.QueueStats = cloud.SQS.Stats
	}
	cfg.Endpoint = endpoint
	logs := &syncbuf.Buffer{}
	cfg.LogOutput = logs
	r, err := runner.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Close()
		if t.Failed() {
			t.Logf("function output:\n%s", logs.String())
		}
	})
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	token, hash := apiauth.NewToken()
	if err := site.Save(ctx, client, r.BucketName("StoreBucket"), site.Config{Site: "shop", TokenHashes: []string{hash}}); err != nil {
		t.Fatal(err)
	}
	return &stack{t: t, api: r.HTTPEndpoint(), token: token, site: "shop", runner: r, logs: logs, clock: cfg.Clock}
}

func randomSuffix() string { return fmt.Sprintf("%06x", rand.IntN(1<<24)) }

// call makes an API request and decodes the JSON answer.
func (s *stack) call(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type created struct {
	UploadID  string            `json:"uploadId"`
	Sequence  uint64            `json:"sequence"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

type record struct {
	Sequence uint64 `json:"sequence"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	Counts   *struct {
		Lines, Upserted, Deleted, Unchanged, Rejected int64
	} `json:"counts"`
	Errors []struct {
		Line int    `json:"line"`
		Code string `json:"code"`
	} `json:"errors"`
	CatalogVersion uint64 `json:"catalogVersion"`
}

func (s *stack) create(mode string, body []byte, extra map[string]any) created {
	s.t.Helper()
	req := map[string]any{"mode": mode, "contentLength": len(body)}
	for k, v := range extra {
		req[k] = v
	}
	var c created
	if st := s.call(http.MethodPost, "/v1/sites/"+s.site+"/uploads", req, &c); st != http.StatusCreated {
		s.t.Fatalf("create upload: status %d", st)
	}
	return c
}

// put sends the file to the presigned URL with the headers the API listed.
func put(t testing.TB, c created, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, c.URL, bytes.NewReader(body))
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

// waitTerminal polls an upload until its state is terminal.
func (s *stack) waitTerminal(c created, within time.Duration) record {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var r record
		s.call(http.MethodGet, "/v1/sites/"+s.site+"/uploads/"+c.UploadID, nil, &r)
		switch r.State {
		case "imported", "rejected", "expired", "cancelled":
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("upload %d still %s after %v", c.Sequence, r.State, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) product(id string) (json.RawMessage, bool) {
	s.t.Helper()
	var out struct {
		Product json.RawMessage `json:"product"`
	}
	st := s.call(http.MethodGet, "/v1/sites/"+s.site+"/catalog/products/"+url.PathEscape(id), nil, &out)
	return out.Product, st == http.StatusOK
}

type delta struct {
	mode  string
	lines []string
	// model ops, in order: id → product JSON or "" for delete
	ops [][2]string
}

func upsert(id string, v int) (string, [2]string) {
	p := fmt.Sprintf(`{"title":"product %s","version":%d}`, id, v)
	line, _ := json.Marshal(map[string]any{"op": "upsert", "id": id, "product": json.RawMessage(p)})
	return string(line), [2]string{id, p}
}

func del(id string) (string, [2]string) {
	line, _ := json.Marshal(map[string]any{"op": "delete", "id": id})
	return string(line), [2]string{id, ""}
}

// TestUploadsApplyInUploadOrder is the pipeline's promise: 20 uploads PUT in
// shuffled order, some twice, one malformed beyond its error budget, one
// never uploaded, one full upload; the catalog ends equal to applying the
// applicable uploads one by one in sequence order, and every status says
// truthfully what happened.
func TestUploadsApplyInUploadOrder(t *testing.T) {
	s := start(t, map[string]string{"ExpiryGraceSeconds": "0"})
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 20
	deltas := make([]delta, n)
	ids := []string{"sku-1", "sku/2", "ünï-3", "sku 4", "../sku-5", "sku%2F6", "sku-7", "sku-8"}
	for i := range n {
		d := delta{mode: "delta"}
		for j := 0; j < 1+rng.IntN(5); j++ {
			id := ids[rng.IntN(len(ids))]
			var line string
			var op [2]string
			if rng.IntN(4) == 0 {
				line, op = del(id)
			} else {
				line, op = upsert(id, i*10+j)
			}
			d.lines = append(d.lines, line)
			d.ops = append(d.ops, op)
		}
		deltas[i] = d
	}
	const malformed, neverUploaded, full = 6, 11, 14
	deltas[malformed] = delta{mode: "delta", lines: []string{`{"op":"upsert","id":"x","product":{}}`, `not json`, `{"op":"explode","id":"y"}`}}
	fullLines := []string{}
	deltas[full] = delta{mode: "full"}
	for _, id := range []string{"sku-1", "sku-7", "full-only"} {
		line, op := upsert(id, 1000)
		fullLines = append(fullLines, line)
		deltas[full].ops = append(deltas[full].ops, op)
	}
	deltas[full].lines = fullLines

	uploadsCreated := make([]created, n)
	bodies := make([][]byte, n)
	for i, d := range deltas {
		bodies[i] = []byte(strings.Join(d.lines, "\n") + "\n")
		extra := map[string]any{}
		if i == neverUploaded {
			extra["expiresIn"] = 1
		}
		if i == full {
			extra["maxFullDeleteRatio"] = 1.0
		}
		uploadsCreated[i] = s.create(d.mode, bodies[i], extra)
		if uploadsCreated[i].Sequence != uint64(i+1) {
			t.Fatalf("upload %d got sequence %d", i, uploadsCreated[i].Sequence)
		}
	}
	order := rng.Perm(n)
	for _, i := range order {
		if i == neverUploaded {
			continue
		}
		if st := put(t, uploadsCreated[i], bodies[i]); st != http.StatusOK {
			t.Fatalf("PUT of upload %d: status %d", i, st)
		}
		if i%3 == 0 {
			// The URL creates its object once and never overwrites it.
			if st := put(t, uploadsCreated[i], bodies[i]); st != http.StatusPreconditionFailed {
				t.Fatalf("second PUT of upload %d: status %d, want 412", i, st)
			}
		}
	}
	// The never-uploaded sequence expires on one of the resolver's next runs
	// (scheduled events carry whole seconds).
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := s.runner.FireSchedule(context.Background(), "SyncFunction"); err != nil {
			t.Fatal(err)
		}
		var r record
		s.call(http.MethodGet, "/v1/sites/"+s.site+"/uploads/"+uploadsCreated[neverUploaded].UploadID, nil, &r)
		if r.State == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the never-uploaded sequence is still %s", r.State)
		}
		time.Sleep(300 * time.Millisecond)
	}

	model := map[string]string{}
	for i, d := range deltas {
		r := s.waitTerminal(uploadsCreated[i], 60*time.Second)
		switch i {
		case malformed:
			if r.State != "rejected" || r.Reason != "error_budget" || len(r.Errors) != 2 || r.Errors[0].Line != 2 || r.Errors[1].Line != 3 {
				t.Errorf("malformed upload: %+v", r)
			}
			continue
		case neverUploaded:
			if r.State != "expired" {
				t.Errorf("never-uploaded upload: %+v", r)
			}
			continue
		}
		if r.State != "imported" || r.Counts == nil || r.Counts.Lines != int64(len(d.lines)) || r.CatalogVersion == 0 {
			t.Errorf("upload %d: %+v", i, r)
		}
		if d.mode == "full" {
			model = map[string]string{}
		}
		for _, op := range d.ops {
			if op[1] == "" {
				delete(model, op[0])
			} else {
				model[op[0]] = op[1]
			}
		}
	}
	var summary struct {
		AppliedSeq uint64 `json:"appliedSeq"`
		Products   int64  `json:"products"`
	}
	s.call(http.MethodGet, "/v1/sites/"+s.site+"/catalog", nil, &summary)
	if summary.AppliedSeq != n || summary.Products != int64(len(model)) {
		t.Errorf("catalog summary %+v, want appliedSeq %d and %d products", summary, n, len(model))
	}
	all := append(append([]string{}, ids...), "full-only", "x")
	sort.Strings(all)
	for _, id := range all {
		got, ok := s.product(id)
		want, inModel := model[id]
		if ok != inModel || (ok && !jsonEqual(got, want)) {
			t.Errorf("product %q: got %s (found %v), model %s (present %v)", id, got, ok, want, inModel)
		}
	}
}

func jsonEqual(a json.RawMessage, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}
