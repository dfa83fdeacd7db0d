package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/site"
)

// receiver is a webhook destination recording what it was sent.
type receiver struct {
	mu     sync.Mutex
	status int
	calls  int
	byKey  map[string]int // idempotency key → deliveries
	lines  []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if rc.status != 0 {
		w.WriteHeader(rc.status)
		return
	}
	if r.Header.Get("X-Feedpipe-Signature") == "" || r.Header.Get("X-Feedpipe-Timestamp") == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rc.byKey[r.Header.Get("X-Feedpipe-Idempotency-Key")]++
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var v any
		_ = json.Unmarshal(sc.Bytes(), &v)
		b, _ := json.Marshal(v)
		rc.lines = append(rc.lines, string(b))
	}
}

func (rc *receiver) take() ([]string, map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	l, k := rc.lines, rc.byKey
	rc.lines, rc.byKey = nil, map[string]int{}
	sort.Strings(l)
	return l, k
}

func (rc *receiver) count() (int, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.lines), rc.calls
}

func newReceiver(t *testing.T, status int) (*receiver, string) {
	rc := &receiver{status: status, byKey: map[string]int{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

// storeClient is an S3 client for the stack's endpoint.
func (s *stack) storeClient() *s3.Client {
	s.t.Helper()
	endpoint := os.Getenv("FEEDPIPE_TEST_ENDPOINT")
	if endpoint == "" {
		u, err := url.Parse(s.runner.QueueURL("SyncQueue"))
		if err != nil {
			s.t.Fatal(err)
		}
		endpoint = u.Scheme + "://" + u.Host
	}
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

// setDestinations replaces the test site's destinations.
func (s *stack) setDestinations(dests ...site.Destination) {
	s.t.Helper()
	ctx := context.Background()
	client, store := s.storeClient(), s.runner.BucketName("StoreBucket")
	cfg, err := site.Load(ctx, client, store, s.site)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.Destinations = dests
	if err := site.Save(ctx, client, store, cfg); err != nil {
		s.t.Fatal(err)
	}
}

// waitDirty waits until the site's sync dirty mark exists: the importer
// sets it just after the upload reads imported, and a sync planned before
// it has nothing to plan.
func (s *stack) waitDirty() {
	s.t.Helper()
	client, store := s.storeClient(), s.runner.BucketName("StoreBucket")
	key := layout.SyncDirtyKey(s.site)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(store), Key: aws.String(key)}); err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no sync dirty mark %s after the import", key)
		}
	}
}

func (s *stack) apply(lines ...string) {
	s.t.Helper()
	body := []byte(strings.Join(lines, "\n") + "\n")
	c := s.create("delta", body, nil)
	if st := put(s.t, c, body); st != http.StatusOK {
		s.t.Fatalf("PUT: status %d", st)
	}
	if r := s.waitTerminal(c, 60*time.Second); r.State != "imported" {
		s.t.Fatalf("upload %d: %+v", c.Sequence, r)
	}
}

// syncUntil fires the schedule twice, then keeps firing until the receiver
// has want lines (a plan is deduplicated while the previous job still holds
// its lease).
func (s *stack) syncUntil(rc *receiver, want int) {
	s.t.Helper()
	ctx := context.Background()
	for range 2 {
		if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
			s.t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if n, _ := rc.count(); n >= want {
			break
		}
		if time.Now().After(deadline) {
			n, _ := rc.count()
			s.t.Fatalf("webhook received %d lines, want %d", n, want)
		}
		time.Sleep(100 * time.Millisecond)
		if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
			s.t.Fatal(err)
		}
	}
	// Further runs have nothing more to send.
	time.Sleep(300 * time.Millisecond)
	for range 2 {
		if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
			s.t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
}

func canon(t *testing.T, lines ...string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		var v any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		out[i] = string(b)
	}
	sort.Strings(out)
	return out
}

// TestSyncPushesExactlyTheChangesOncePerVersion: deltas applied → the
// schedule fires twice → the webhook receives exactly the changed products,
// once per version; a destination that always fails blocks nothing.
func TestSyncPushesExactlyTheChangesOncePerVersion(t *testing.T) {
	s := start(t, map[string]string{"AllowLoopbackHttp": "true"})
	ctx := context.Background()
	healthy, healthyURL := newReceiver(t, 0)
	dead, deadURL := newReceiver(t, http.StatusServiceUnavailable)
	client := s.storeClient()
	store := s.runner.BucketName("StoreBucket")
	s.setDestinations(
		site.Destination{Name: "dead", Type: "webhook", URL: deadURL, Secrets: []string{"s1"}},
		site.Destination{Name: "hook", Type: "webhook", URL: healthyURL, Secrets: []string{"s1", "s2"}},
	)

	a1, _ := upsert("sku-1", 1)
	a2, _ := upsert("sku-2", 1)
	a3, _ := upsert("sku-3", 1)
	s.apply(a1, a2, a3)
	s.syncUntil(healthy, 3)
	got, keys := healthy.take()
	want := canon(t, `{"op":"upsert","id":"sku-1","product":{"title":"product sku-1","version":1}}`,
		`{"op":"upsert","id":"sku-2","product":{"title":"product sku-2","version":1}}`,
		`{"op":"upsert","id":"sku-3","product":{"title":"product sku-3","version":1}}`)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("first version:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for k, n := range keys {
		if n != 1 {
			t.Errorf("batch %s delivered %d times", k, n)
		}
	}

	b2, _ := upsert("sku-2", 2)
	d3, _ := del("sku-3")
	s.apply(b2, d3)
	s.syncUntil(healthy, 2)
	got, keys = healthy.take()
	want = canon(t, `{"op":"upsert","id":"sku-2","product":{"title":"product sku-2","version":2}}`, `{"op":"delete","id":"sku-3"}`)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("second version:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(keys) != 1 {
		t.Errorf("second version delivered as %v, want one batch once", keys)
	}
	for k, n := range keys {
		if n != 1 {
			t.Errorf("batch %s delivered %d times", k, n)
		}
	}
	if _, calls := dead.count(); calls == 0 {
		t.Errorf("the failing destination was never tried")
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(store), Key: aws.String("sync/ack/" + s.site + "/dead.json")})
	if err == nil {
		out.Body.Close()
		t.Errorf("the failing destination has an acknowledgement")
	}
}
