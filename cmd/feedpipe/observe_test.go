package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

var timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

func withoutTimes(r result) result {
	r.stdout = timeRE.ReplaceAllString(r.stdout, "<TIME>")
	return r
}

// seedShop creates site shop with a webhook destination that acknowledged
// nothing, one upload awaiting its PUT and one rejected with line errors,
// and halts it.
func seedShop(t *testing.T, e *adminEnv) {
	t.Helper()
	ctx := context.Background()
	token(t, feedpipe(t, e.args("site", "create", "shop")...))
	if r := feedpipe(t, e.args("site", "add-destination", "shop", "--name", "erp", "--webhook", "http://127.0.0.1:9/hook")...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	store := uploads.NewStore(e.s3, e.bucket)
	now := time.Now()
	bad, err := store.Allocate(ctx, uploads.Record{Site: "shop", Mode: uploads.Delta, ContentLength: 10, State: uploads.AwaitingUpload, ExpiresAt: now.Add(time.Hour)}, layout.NewUploadID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Update(ctx, "shop", bad.Sequence, func(r *uploads.Record) error {
		for _, st := range []uploads.State{uploads.Received, uploads.Queued, uploads.Importing} {
			if err := r.Move(st, now); err != nil {
				return err
			}
		}
		r.Counts = &uploads.Counts{Lines: 2, Rejected: 2}
		r.Errors = []uploads.LineError{{Line: 1, Code: "bad_json", Reason: "invalid character 'x'"}, {Line: 2, Code: "missing_id", Reason: "no id"}}
		return r.Reject(uploads.ReasonErrorBudget, "2 of 2 lines were rejected", now)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Allocate(ctx, uploads.Record{Site: "shop", Mode: uploads.Full, ContentLength: 10, State: uploads.AwaitingUpload, ExpiresAt: now.Add(time.Hour)}, layout.NewUploadID); err != nil {
		t.Fatal(err)
	}
	if err := site.SaveState(ctx, e.s3, e.bucket, "shop", site.State{Halted: true, Reason: "sequence 3: the stored upload is missing"}); err != nil {
		t.Fatal(err)
	}
	if err := (&syncjob.Store{S3: e.s3, Bucket: e.bucket}).SaveAck(ctx, syncjob.Ack{Site: "shop", Destination: "erp", Version: 0}); err != nil {
		t.Fatal(err)
	}
}

func TestSiteShow(t *testing.T) {
	e := newAdminEnv(t)
	seedShop(t, e)
	golden(t, "site_show", withoutTimes(feedpipe(t, e.args("site", "show", "shop")...)))
	r := feedpipe(t, e.args("site", "show", "shop", "--json")...)
	var snap struct {
		Halted        bool `json:"halted"`
		RecentUploads []struct {
			Sequence uint64 `json:"sequence"`
			Errors   []any  `json:"errors"`
		} `json:"recentUploads"`
		Destinations []struct {
			Name string `json:"name"`
		} `json:"destinations"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil || r.code != 0 {
		t.Fatalf("--json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if !snap.Halted || len(snap.RecentUploads) != 2 || snap.RecentUploads[0].Sequence != 2 || len(snap.RecentUploads[1].Errors) != 2 || len(snap.Destinations) != 1 {
		t.Errorf("--json snapshot %+v", snap)
	}
	golden(t, "site_show_missing", feedpipe(t, e.args("site", "show", "nosuch")...))
}

func TestTop(t *testing.T) {
	e := newAdminEnv(t)
	seedShop(t, e)
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_feedpipe/queues":
			_, _ = w.Write([]byte(`{"queues":[{"logicalId":"CopyQueue","name":"s-copy.fifo","url":"u","fifo":true,"visible":3,"inFlight":1,"delayed":0,"oldestAgeSeconds":312.4,"inFlightByGroup":{"shop":1}}]}`))
		case "/_feedpipe/alarms":
			_, _ = w.Write([]byte(`{"alarms":[{"name":"CopyQueueAgeAlarm","state":"ALARM","reason":"Threshold Crossed: 1 out of the last 1 datapoints were greater than the threshold (300.0).","metric":"AWS/SQS ApproximateAgeOfOldestMessage","since":"2026-11-24T12:00:00Z"},{"name":"SitesHaltedAlarm","state":"OK","reason":"fine","metric":"feedpipe SitesHalted","since":"2026-11-24T12:00:00Z"}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer runner.Close()
	golden(t, "top", withoutTimes(feedpipe(t, e.args("top", "--once", "--api", runner.URL)...)))

	// An older stack without the endpoints: those sections say so.
	old := httptest.NewServer(http.NotFoundHandler())
	defer old.Close()
	r := feedpipe(t, e.args("top", "--once", "--api", old.URL)...)
	if r.code != 0 || strings.Count(r.stdout, "not available from this stack") != 2 || !strings.Contains(r.stdout, "shop") {
		t.Errorf("top against a stack without /_feedpipe/queues and /alarms: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = feedpipe(t, e.args("top", "--json", "--api", runner.URL)...)
	var v topView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || len(v.Queues) != 1 || len(v.Alarms) != 2 || len(v.Sites) != 1 || v.Queues[0].InFlightByGroup["shop"] != 1 {
		t.Errorf("top --json: %v %+v", err, v)
	}
}
