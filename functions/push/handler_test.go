package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// visibility records ChangeMessageVisibility calls.
type visibility struct {
	mu    sync.Mutex
	calls map[string]int32 // receipt handle → seconds
}

func (v *visibility) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls[aws.ToString(in.ReceiptHandle)] = in.VisibilityTimeout
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

type pushFixture struct {
	t       *testing.T
	ctx     context.Context
	s3      *s3.Client
	catalog *catalog.Store
	jobs    *syncjob.Store
	vis     *visibility
	h       *Handler
	seq     uint64
	cfg     site.Config
	now     time.Time
}

func newPushFixture(t *testing.T) *pushFixture {
	t.Helper()
	ctx := context.Background()
	cloud, err := localcloud.Start(ctx, localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	ak, sk := cloud.Credentials()
	s3c := s3.New(s3.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("store")}); err != nil {
		t.Fatal(err)
	}
	f := &pushFixture{t: t, ctx: ctx, s3: s3c, catalog: catalog.New(s3c, "store"), jobs: &syncjob.Store{S3: s3c, Bucket: "store"},
		vis: &visibility{calls: map[string]int32{}}, now: time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)}
	_, hash := apiauth.NewToken()
	f.cfg = site.Config{Site: "shop", TokenHashes: []string{hash}}
	f.h = &Handler{S3: s3c, SQS: f.vis, Catalog: f.catalog, StoreBucket: "store", SyncQueueURL: "sync-queue",
		HTTP: NewHTTPClient(true, 5*time.Second, 4), AllowLoopbackHTTP: true, Now: func() time.Time { return f.now },
		Logger: slog.New(slog.DiscardHandler)}
	return f
}

func (f *pushFixture) addDestination(d site.Destination) {
	f.t.Helper()
	f.cfg.Destinations = append(f.cfg.Destinations, d)
	if err := site.Save(f.ctx, f.s3, "store", f.cfg); err != nil {
		f.t.Fatal(err)
	}
}

// commit applies ops ("id=json" upserts, "-id" deletes) as one new version.
func (f *pushFixture) commit(ops ...string) uint64 {
	f.t.Helper()
	head, err := f.catalog.Head(f.ctx, "shop")
	if err != nil {
		f.t.Fatal(err)
	}
	f.seq++
	d := catalog.Delta{Sequence: f.seq, Ops: func(yield func(catalog.Op) error) error {
		for _, o := range ops {
			op := catalog.Op{Delete: strings.HasPrefix(o, "-"), ID: strings.TrimPrefix(o, "-")}
			if id, p, ok := strings.Cut(o, "="); ok {
				op = catalog.Op{ID: id, Product: []byte(p)}
			}
			if err := yield(op); err != nil {
				return err
			}
		}
		return nil
	}}
	st, err := f.catalog.Stage(f.ctx, "shop", head, []catalog.Delta{d})
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := st.Commit(f.ctx, f.seq)
	if err != nil {
		f.t.Fatal(err)
	}
	return v.Version
}

// job takes the destination's lease as the planner does and returns its message.
func (f *pushFixture) job(dest string) events.SQSMessage {
	f.t.Helper()
	j := messages.SyncJob{Site: "shop", Destination: dest, JobID: messages.NewJobID(), PlannedAt: f.now}
	if _, err := f.jobs.TakeLease(f.ctx, syncjob.Lease{Site: "shop", Destination: dest, JobID: j.JobID, PlannedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}, ""); err != nil {
		f.t.Fatal(err)
	}
	return events.SQSMessage{MessageId: "m-" + dest + "-" + j.JobID[:6], ReceiptHandle: "r-" + j.JobID, Body: j.Encode(),
		Attributes: map[string]string{"ApproximateReceiveCount": "1", "MessageGroupId": j.GroupID()}}
}

func (f *pushFixture) handle(msgs ...events.SQSMessage) map[string]bool {
	f.t.Helper()
	resp, err := f.h.Handle(f.ctx, events.SQSEvent{Records: msgs})
	if err != nil {
		f.t.Fatal(err)
	}
	failed := map[string]bool{}
	for _, x := range resp.BatchItemFailures {
		failed[x.ItemIdentifier] = true
	}
	return failed
}

func (f *pushFixture) ack(dest string) uint64 {
	f.t.Helper()
	a, err := f.jobs.Ack(f.ctx, "shop", dest)
	if err != nil {
		f.t.Fatal(err)
	}
	return a.Version
}

func (f *pushFixture) leased(dest string) bool {
	f.t.Helper()
	_, _, found, err := f.jobs.Lease(f.ctx, "shop", dest)
	if err != nil {
		f.t.Fatal(err)
	}
	return found
}

// webhook is a receiving endpoint that verifies signatures with its secret.
type webhook struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	calls  int
	keys   []string
	lines  []string
	answer func(call int) (status int, header http.Header)
	srv    *httptest.Server
}

func newWebhook(t *testing.T, secret string, answer func(int) (int, http.Header)) *webhook {
	w := &webhook{t: t, secret: secret, answer: answer}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	w.calls++
	call := w.calls
	w.mu.Unlock()
	if w.answer != nil {
		if st, hdr := w.answer(call); st != http.StatusOK {
			for k, v := range hdr {
				rw.Header()[k] = v
			}
			rw.WriteHeader(st)
			return
		}
	}
	ts, key := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderIdempotencyKey)
	m := hmac.New(sha256.New, []byte(w.secret))
	m.Write([]byte(ts + "." + key + "."))
	m.Write(body)
	want := "v1=" + hex.EncodeToString(m.Sum(nil))
	ok := false
	for _, s := range strings.Split(r.Header.Get(HeaderSignature), ",") {
		ok = ok || hmac.Equal([]byte(s), []byte(want))
	}
	if !ok || r.Method != http.MethodPost || ts == "" || key == "" {
		w.t.Errorf("bad request: method %s, signature %q, timestamp %q, key %q", r.Method, r.Header.Get(HeaderSignature), ts, key)
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys = append(w.keys, key)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		w.lines = append(w.lines, canonical(w.t, sc.Text()))
	}
}

// take returns the delivered lines (sorted) and clears them.
func (w *webhook) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lines
	w.lines = nil
	sort.Strings(l)
	return l
}

func canonical(t *testing.T, s string) string {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Errorf("line %q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func lines(t *testing.T, ls ...string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = canonical(t, l)
	}
	sort.Strings(out)
	return out
}

func TestPushDeliversExactlyTheChangedProducts(t *testing.T) {
	f := newPushFixture(t)
	// The site rotates secrets: each receiver knows only one of the two.
	oldHook := newWebhook(t, "old-secret", nil)
	newHook := newWebhook(t, "new-secret", nil)
	meta := newWebhook(t, "old-secret", nil)
	f.addDestination(site.Destination{Name: "old", Type: "webhook", URL: oldHook.srv.URL, Secrets: []string{"new-secret", "old-secret"}})
	f.addDestination(site.Destination{Name: "new", Type: "webhook", URL: newHook.srv.URL, Secrets: []string{"new-secret", "old-secret"}})
	f.addDestination(site.Destination{Name: "meta", Type: "webhook", URL: meta.srv.URL, Secrets: []string{"old-secret"}, Fields: []string{"title"}})

	f.commit(`a={"title":"A","price":1}`, `b={"title":"B","price":2}`, `c={"title":"C","price":3}`)
	if failed := f.handle(f.job("old"), f.job("new"), f.job("meta")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	want := lines(t, `{"op":"upsert","id":"a","product":{"title":"A","price":1}}`, `{"op":"upsert","id":"b","product":{"title":"B","price":2}}`,
		`{"op":"upsert","id":"c","product":{"title":"C","price":3}}`)
	for _, w := range []*webhook{oldHook, newHook} {
		if got := w.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("first sync:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if got, want := meta.take(), lines(t, `{"op":"upsert","id":"a","product":{"title":"A"}}`, `{"op":"upsert","id":"b","product":{"title":"B"}}`,
		`{"op":"upsert","id":"c","product":{"title":"C"}}`); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("field selection:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range []string{"old", "new", "meta"} {
		if f.ack(d) != 1 || f.leased(d) {
			t.Errorf("%s: ack %d, leased %v; want ack 1 and the lease released", d, f.ack(d), f.leased(d))
		}
	}

	v := f.commit(`b={"title":"B2","price":2}`, `-c`, `d={"title":"D","price":4}`, `a={"title":"A","price":1}`)
	if failed := f.handle(f.job("old")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	want = lines(t, `{"op":"upsert","id":"b","product":{"title":"B2","price":2}}`, `{"op":"delete","id":"c"}`,
		`{"op":"upsert","id":"d","product":{"title":"D","price":4}}`)
	if got := oldHook.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("second sync:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f.ack("old") != v {
		t.Errorf("ack %d, want %d", f.ack("old"), v)
	}
	// Nothing changed since: a job delivers nothing and releases its lease.
	if failed := f.handle(f.job("old")); len(failed) != 0 || len(oldHook.take()) != 0 || f.leased("old") {
		t.Errorf("an up-to-date destination got a delivery or kept its lease")
	}
}

func TestPushBatchesAreBoundedAndKeyed(t *testing.T) {
	f := newPushFixture(t)
	f.h.MaxBatchLines = 2
	w := newWebhook(t, "s", nil)
	f.addDestination(site.Destination{Name: "hook", Type: "webhook", URL: w.srv.URL, Secrets: []string{"s"}})
	v := f.commit(`a={}`, `b={}`, `c={}`, `d={}`, `e={}`)
	if failed := f.handle(f.job("hook")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	if len(w.take()) != 5 || len(w.keys) != 3 {
		t.Fatalf("%d posts (%v), want 3 batches of at most 2", len(w.keys), w.keys)
	}
	for i, k := range w.keys {
		if want := "shop." + itoa(v) + "." + itoa(uint64(i)); k != want {
			t.Errorf("idempotency key %q, want %q", k, want)
		}
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestPushRetriesAfterRetryAfterWithoutSleeping(t *testing.T) {
	f := newPushFixture(t)
	w := newWebhook(t, "s", func(call int) (int, http.Header) {
		if call == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}
		}
		return http.StatusOK, nil
	})
	f.addDestination(site.Destination{Name: "hook", Type: "webhook", URL: w.srv.URL, Secrets: []string{"s"}})
	f.commit(`a={"x":1}`)
	m := f.job("hook")
	started := time.Now()
	if failed := f.handle(m); !failed[m.MessageId] {
		t.Fatalf("a 429 was not reported as a failed item")
	}
	if time.Since(started) > 3*time.Second {
		t.Errorf("the handler slept")
	}
	if got := f.vis.calls[m.ReceiptHandle]; got != 7 {
		t.Errorf("visibility %d s, want the Retry-After of 7 s", got)
	}
	if f.ack("hook") != 0 || !f.leased("hook") {
		t.Errorf("after a 429: ack %d, leased %v; want ack 0 and the lease kept", f.ack("hook"), f.leased("hook"))
	}
	m.Attributes["ApproximateReceiveCount"] = "2"
	if failed := f.handle(m); len(failed) != 0 {
		t.Fatalf("retry failed")
	}
	if got := w.take(); len(got) != 1 || f.ack("hook") != 1 || f.leased("hook") {
		t.Errorf("retry delivered %v, ack %d, leased %v", got, f.ack("hook"), f.leased("hook"))
	}
}

func TestPushFailingDestinationDoesNotBlockAnother(t *testing.T) {
	f := newPushFixture(t)
	dead := newWebhook(t, "s", func(int) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	redirect := httptest.NewServer(http.RedirectHandler("https://example.com/", http.StatusFound))
	t.Cleanup(redirect.Close)
	healthy := newWebhook(t, "s", nil)
	f.addDestination(site.Destination{Name: "dead", Type: "webhook", URL: dead.srv.URL, Secrets: []string{"s"}})
	f.addDestination(site.Destination{Name: "moved", Type: "webhook", URL: redirect.URL, Secrets: []string{"s"}})
	f.addDestination(site.Destination{Name: "healthy", Type: "webhook", URL: healthy.srv.URL, Secrets: []string{"s"}})
	f.addDestination(site.Destination{Name: "bucket", Type: "s3", Bucket: "theirs", ExpectedBucketOwner: "111122223333"})
	f.commit(`a={"x":1}`)
	for round := range 3 {
		md, mm, mh, mb := f.job("dead"), f.job("moved"), f.job("healthy"), f.job("bucket")
		failed := f.handle(md, mm, mh, mb)
		if !failed[md.MessageId] || !failed[mm.MessageId] || !failed[mb.MessageId] || failed[mh.MessageId] {
			t.Fatalf("round %d: failed %v", round, failed)
		}
		if f.vis.calls[md.ReceiptHandle] <= 0 {
			t.Errorf("no backoff for the dead destination")
		}
		for _, d := range []string{"dead", "moved", "bucket"} {
			if f.ack(d) != 0 {
				t.Errorf("%s acknowledged version %d although its delivery failed", d, f.ack(d))
			}
			if !f.leased(d) {
				t.Errorf("%s: lease released although its delivery failed", d)
			}
			// The next round's planner would find the lease held; free it for the test.
			l, _, _, _ := f.jobs.Lease(f.ctx, "shop", d)
			_ = f.jobs.ReleaseLease(f.ctx, "shop", d, l.JobID)
		}
		if f.ack("healthy") != 1 || f.leased("healthy") {
			t.Errorf("healthy: ack %d, leased %v", f.ack("healthy"), f.leased("healthy"))
		}
	}
	if got := healthy.take(); len(got) != 1 {
		t.Errorf("healthy received %d lines, want the 1 change once", len(got))
	}
}

func TestPushRefusesPlainHTTPOutsideLoopback(t *testing.T) {
	for _, tt := range []struct {
		url           string
		allowLoopback bool
		ok            bool
	}{
		{"https://hooks.example.com/x", false, true},
		{"http://hooks.example.com/x", false, false},
		{"http://hooks.example.com/x", true, false},
		{"http://127.0.0.1:8080/x", false, false},
		{"http://127.0.0.1:8080/x", true, true},
		{"http://localhost:8080/x", true, true},
		{"https://user:pw@hooks.example.com/x", false, false},
		{"ftp://hooks.example.com/x", true, false},
	} {
		if err := checkURL(tt.url, tt.allowLoopback); (err == nil) != tt.ok {
			t.Errorf("checkURL(%q, %v) = %v", tt.url, tt.allowLoopback, err)
		}
	}
	// Loopback is refused at dial time unless allowed.
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	if _, err := NewHTTPClient(false, time.Second, 1).Get(srv.URL); err == nil {
		t.Errorf("dialled loopback without the dev-stack allowance")
	}
}

// A job of a destination removed after it was planned is dropped: the
// message is not retried, the lease is released, nothing is delivered or
// acknowledged, and the site is not marked for collection.
func TestPushDropsJobOfRemovedDestination(t *testing.T) {
	f := newPushFixture(t)
	hook := newWebhook(t, "s", nil)
	f.addDestination(site.Destination{Name: "gone", Type: "webhook", URL: hook.srv.URL, Secrets: []string{"s"}})
	f.addDestination(site.Destination{Name: "kept", Type: "webhook", URL: hook.srv.URL, Secrets: []string{"s"}})
	f.commit(`a={"x":1}`)
	gone, kept := f.job("gone"), f.job("kept")
	if _, err := site.Update(f.ctx, f.s3, "store", "shop", func(c *site.Config) error {
		c.Destinations = slices.DeleteFunc(c.Destinations, func(d site.Destination) bool { return d.Name == "gone" })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if failed := f.handle(gone); len(failed) != 0 {
		t.Fatalf("the removed destination's job failed (retried): %v", failed)
	}
	if f.leased("gone") || f.ack("gone") != 0 || f.vis.calls[gone.ReceiptHandle] != 0 {
		t.Errorf("removed destination: leased %v, ack %d, visibility changes %d", f.leased("gone"), f.ack("gone"), f.vis.calls[gone.ReceiptHandle])
	}
	if got := hook.take(); len(got) != 0 {
		t.Errorf("the removed destination's job delivered %d lines", len(got))
	}
	if _, err := f.s3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String("store"), Key: aws.String(layout.CollectKey("shop"))}); err == nil {
		t.Error("a dropped job marked the site for collection")
	}
	// The remaining destination is delivered to and marks the site.
	if failed := f.handle(kept); len(failed) != 0 || f.ack("kept") != 1 {
		t.Fatalf("kept: failed %v, ack %d", failed, f.ack("kept"))
	}
	if _, err := f.s3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String("store"), Key: aws.String(layout.CollectKey("shop"))}); err != nil {
		t.Errorf("an acknowledgement did not mark the site for collection: %v", err)
	}
}
