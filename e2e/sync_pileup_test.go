package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/site"
)

// syncJobs counts the sync queue's messages, queued or in flight.
func (s *stack) syncJobs() int {
	s.t.Helper()
	for _, q := range s.runner.Queues(context.Background()) {
		if q.LogicalID == "SyncQueue" {
			return q.Visible + q.InFlight + q.Delayed
		}
	}
	s.t.Fatal("no SyncQueue")
	return 0
}

// The incident behind the sync: a schedule that keeps firing while a slow
// destination is still being pushed to must not pile up jobs. The schedule
// fires every minute of the stack's clock during a push that takes seconds;
// at most one job per destination is ever queued or running, and every
// batch arrives once.
func TestScheduleEveryMinuteDuringSlowPush(t *testing.T) {
	s := start(t, map[string]string{"AllowLoopbackHttp": "true"})
	s.embedded()
	release := make(chan struct{})
	var calls atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-release // the first delivery hangs until the schedule has fired several times
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	s.setDestinations(site.Destination{Name: "slow", Type: "webhook", URL: slow.URL, Secrets: []string{"s1"}})
	line, _ := upsert("sku-1", 1)
	s.apply(line)
	s.waitDirty()

	ctx := context.Background()
	if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("the push to reach the slow destination", 30*time.Second, func() bool { return calls.Load() >= 1 })
	for i := range 3 {
		s.clock.Advance(time.Minute)
		line, _ := upsert("sku-1", i+2) // the catalog keeps changing meanwhile
		s.apply(line)
		if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
			t.Fatal(err)
		}
		if n := s.syncJobs(); n > 1 {
			t.Fatalf("after %d more schedule runs during one slow push: %d sync jobs queued or running, want at most 1", i+1, n)
		}
	}
	if a := s.alarm("SyncQueueAgeAlarm"); a.State == alarms.Alarming {
		t.Errorf("SyncQueueAgeAlarm fired during a push of a few minutes: %s", a.Reason)
	}
	close(release)
	// The slow job finishes; the next run delivers the newest version once.
	s.waitFor("the slow job to finish", 30*time.Second, func() bool { return s.syncJobs() == 0 })
	s.waitFor("the newest version delivered", 30*time.Second, func() bool {
		if calls.Load() < 2 {
			if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return calls.Load() >= 2 && s.syncJobs() == 0
	})
	time.Sleep(300 * time.Millisecond) // a further delivery would show now
	if n := calls.Load(); n != 2 {
		t.Errorf("%d deliveries, want 2 (the slow one, then one for everything after it)", n)
	}
}

// A destination that never answers 2xx keeps its job in the sync queue;
// once the job is older than the alarm's threshold (600 s) the sync
// backlog alarm fires.
func TestAlarmSyncBacklog(t *testing.T) {
	s := start(t, map[string]string{"AllowLoopbackHttp": "true"})
	s.embedded()
	dead, deadURL := newReceiver(t, http.StatusServiceUnavailable)
	s.setDestinations(site.Destination{Name: "dead", Type: "webhook", URL: deadURL, Secrets: []string{"s1"}})
	line, _ := upsert("sku-1", 1)
	s.apply(line)
	s.waitDirty()
	if err := s.runner.FireSchedule(context.Background(), "SyncFunction"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("a push to the dead destination", 30*time.Second, func() bool { _, calls := dead.count(); return calls > 0 })
	s.waitAlarm("SyncQueueAgeAlarm", alarms.OK, time.Minute)
	s.clock.Advance(600 * time.Second)
	s.waitAlarm("SyncQueueAgeAlarm", alarms.Alarming, time.Minute)
	if n := s.syncJobs(); n != 1 {
		t.Errorf("%d sync jobs for one dead destination, want 1", n)
	}
}
