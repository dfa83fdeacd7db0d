package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// TestPushBoundsConnectionsPerHost: many sites' jobs, delivered by several
// invocations at once to one slow webhook, never open more connections to
// it than the per-host bound.
func TestPushBoundsConnectionsPerHost(t *testing.T) {
	const (
		bound       = 3
		sites       = 16
		invocations = 4
	)
	f := newPushFixture(t)
	f.h.HTTP = NewHTTPClient(true, 10*time.Second, bound)

	var open, peak, requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		time.Sleep(200 * time.Millisecond)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n := open.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	var msgs []events.SQSMessage
	for i := range sites {
		name := fmt.Sprintf("site-%02d", i)
		_, hash := apiauth.NewToken()
		if err := site.Save(f.ctx, f.s3, "store", site.Config{Site: name, TokenHashes: []string{hash},
			Destinations: []site.Destination{{Name: "hook", Type: "webhook", URL: srv.URL, Secrets: []string{"s"}}}}); err != nil {
			t.Fatal(err)
		}
		st, err := f.catalog.Stage(f.ctx, name, catalog.Version{Site: name}, []catalog.Delta{{Sequence: 1, Ops: func(yield func(catalog.Op) error) error {
			return yield(catalog.Op{ID: "p", Product: []byte(`{"n":1}`)})
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Commit(f.ctx, 1); err != nil {
			t.Fatal(err)
		}
		j := messages.SyncJob{Site: name, Destination: "hook", JobID: messages.NewJobID(), PlannedAt: f.now}
		if _, err := f.jobs.TakeLease(f.ctx, syncjob.Lease{Site: name, Destination: "hook", JobID: j.JobID, PlannedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}, ""); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, events.SQSMessage{MessageId: "m-" + name, ReceiptHandle: "r-" + name, Body: j.Encode(),
			Attributes: map[string]string{"ApproximateReceiveCount": "1", "MessageGroupId": j.GroupID()}})
	}

	var wg sync.WaitGroup
	per := sites / invocations
	for i := range invocations {
		wg.Go(func() {
			resp, err := f.h.Handle(f.ctx, events.SQSEvent{Records: msgs[i*per : (i+1)*per]})
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Errorf("invocation %d: %v, failures %v", i, err, resp.BatchItemFailures)
			}
		})
	}
	wg.Wait()

	if requests.Load() != sites {
		t.Errorf("%d requests, want one per site (%d)", requests.Load(), sites)
	}
	if p := peak.Load(); p > bound {
		t.Errorf("%d connections open at once, bound %d", p, bound)
	} else if p < 2 {
		t.Errorf("peak of %d connections: the deliveries did not overlap, the test proves nothing", p)
	}
	for i := range sites {
		if a, err := f.jobs.Ack(f.ctx, fmt.Sprintf("site-%02d", i), "hook"); err != nil || a.Version != 1 {
			t.Errorf("site-%02d: ack %+v, %v", i, a, err)
		}
	}
	t.Logf("peak %d connections (bound %d) for %d sites over %d invocations", peak.Load(), bound, sites, invocations)
}
