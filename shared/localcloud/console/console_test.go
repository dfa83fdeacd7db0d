package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/observe"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

type fakeSource struct {
	sites   []observe.Site
	alarms  []alarms.State
	syncErr error
	syncs   int
}

func (f *fakeSource) Sites(context.Context) ([]observe.Site, bool, error) { return f.sites, false, nil }
func (f *fakeSource) Site(_ context.Context, id string, _ int) (observe.Site, error) {
	for _, s := range f.sites {
		if s.Site == id {
			return s, nil
		}
	}
	return observe.Site{}, fmt.Errorf("site %s: %w", id, ErrNotFound)
}
func (f *fakeSource) Queues(context.Context) []Queue {
	age := 312 * time.Second
	return []Queue{{LogicalID: "CopyQueue", Name: "s-copy.fifo", Visible: 3, InFlight: 1, OldestAge: &age, InFlightByGroup: map[string]int{"shop": 1}}}
}
func (f *fakeSource) Alarms() []alarms.State { return f.alarms }
func (f *fakeSource) Sync(context.Context) error {
	f.syncs++
	return f.syncErr
}
func (f *fakeSource) Now() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }

func serve(t *testing.T, src Source) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler(src, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func hostileSource() *fakeSource {
	at := time.Date(2026, 11, 24, 11, 59, 0, 0, time.UTC)
	return &fakeSource{
		sites: []observe.Site{{Site: "shop", Version: 2, AppliedSeq: 2, Products: 10, Halted: true, HaltedReason: `<script>alert("halt")</script>`,
			Destinations: []observe.Destination{{Name: "erp", Type: "webhook", Target: "https://erp.example", Backlog: 4}},
			Recent: []uploads.Record{{Site: "shop", Sequence: 2, Mode: uploads.Delta, State: uploads.Rejected, Reason: "error_budget",
				Counts:     &uploads.Counts{Lines: 1, Rejected: 1},
				Errors:     []uploads.LineError{{Line: 1, Code: "bad_json", Reason: `<img src=x onerror=alert(1)>`}},
				Timestamps: map[uploads.State]time.Time{uploads.AwaitingUpload: at, uploads.Rejected: at.Add(time.Second)}}}}},
		alarms: []alarms.State{{Name: "SitesHaltedAlarm", State: alarms.Alarming, Reason: "Threshold Crossed", Since: at}, {Name: "CopyQueueAgeAlarm", State: alarms.OK, Since: at}},
	}
}

func TestOverview(t *testing.T) {
	srv := serve(t, hostileSource())
	status, body := get(t, srv.URL+Path)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d", Path, status)
	}
	for _, want := range []string{`data-site="shop"`, `&lt;script&gt;alert(&#34;halt&#34;)&lt;/script&gt;`, `erp <span class="pill bad">4 behind</span>`,
		`data-queue="CopyQueue"`, `5m12s`, `shop: 1`, `data-alarm="SitesHaltedAlarm" data-state="ALARM"`, `1 firing`, `id="sync-now"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("a site's halted reason was not escaped")
	}
	// A firing alarm comes first.
	if strings.Index(body, "SitesHaltedAlarm") > strings.Index(body, "CopyQueueAgeAlarm") {
		t.Error("the firing alarm is not listed first")
	}
}

func TestSitePage(t *testing.T) {
	srv := serve(t, hostileSource())
	status, body := get(t, srv.URL+Path+"/sites/shop")
	if status != http.StatusOK {
		t.Fatalf("site page: %d", status)
	}
	for _, want := range []string{`line 1: bad_json: &lt;img src=x onerror=alert(1)&gt;`, "awaiting_upload 11:59:00.000", "rejected 11:59:01.000", "feedpipe redrive --site shop"} {
		if !strings.Contains(body, want) {
			t.Errorf("the site page lacks %q", want)
		}
	}
	if strings.Contains(body, "<img src=x") {
		t.Error("a line error was not escaped")
	}
	if status, _ := get(t, srv.URL+Path+"/sites/nosuch"); status != http.StatusNotFound {
		t.Errorf("an unknown site: %d, want 404", status)
	}
	if status, _ := get(t, srv.URL+Path+"/sites/Bad_Site"); status != http.StatusNotFound {
		t.Errorf("an invalid site id: %d, want 404", status)
	}
}

func TestSyncButton(t *testing.T) {
	src := hostileSource()
	srv := serve(t, src)
	if status, _ := get(t, srv.URL+Path+"/sync"); status != http.StatusMethodNotAllowed || src.syncs != 0 {
		t.Fatalf("GET sync: %d, %d syncs; want 405 and none", status, src.syncs)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Post(srv.URL+Path+"/sync", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != Path+"?sync=ok" || src.syncs != 1 {
		t.Fatalf("POST sync: %d to %q, %d syncs", resp.StatusCode, resp.Header.Get("Location"), src.syncs)
	}
	_, body := get(t, srv.URL+resp.Header.Get("Location"))
	if !strings.Contains(body, `id="notice">Sync ran`) {
		t.Error("the overview does not say the sync ran")
	}
	src.syncErr = errors.New("no schedule named <x>")
	resp, err = http.Post(srv.URL+Path+"/sync", "", nil) // follows the redirect
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Sync failed: no schedule named &lt;x&gt;") {
		t.Errorf("a failed sync is not shown (escaped):\n%s", b)
	}
}

func TestNoAlarmEvaluator(t *testing.T) {
	src := hostileSource()
	src.alarms = nil
	_, body := get(t, serve(t, src).URL+Path)
	if !strings.Contains(body, "No alarm evaluator on this stack.") {
		t.Error("a stack without alarms is not labelled")
	}
}
