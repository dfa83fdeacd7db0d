package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/site"
)

// The seed failures of the operability issue: each, reproduced on the local
// stack, raises its template.yaml alarm within a minute of the stack's
// clock after the condition sets in.

// embedded skips tests that move the embedded cloud's clock.
func (s *stack) embedded() {
	s.t.Helper()
	if s.clock == nil {
		s.t.Skip("moves the stack's clock and reads queue ages: needs the embedded cloud")
	}
}

func (s *stack) alarm(name string) alarms.State {
	s.t.Helper()
	for _, a := range s.runner.Alarms() {
		if a.Name == name {
			return a
		}
	}
	s.t.Fatalf("template.yaml has no alarm %s", name)
	return alarms.State{}
}

// waitAlarm moves the stack's clock forward in 10 s steps (the runner's
// evaluation interval) until the alarm is in state, and fails when that
// takes more than within of the stack's time.
func (s *stack) waitAlarm(name, state string, within time.Duration) alarms.State {
	s.t.Helper()
	for moved := time.Duration(0); ; moved += 10 * time.Second {
		for settle := time.Now().Add(500 * time.Millisecond); time.Now().Before(settle); time.Sleep(20 * time.Millisecond) {
			if a := s.alarm(name); a.State == state {
				return a
			}
		}
		if moved >= within {
			a := s.alarm(name)
			s.t.Fatalf("%s is %s (%s) %v after the condition set in, want %s", name, a.State, a.Reason, moved, state)
		}
		s.clock.Advance(10 * time.Second)
	}
}

// waitFor polls cond in real time.
func (s *stack) waitFor(what string, within time.Duration, cond func() bool) {
	s.t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// send creates an upload and PUTs body to it.
func (s *stack) send(mode string, body string, extra map[string]any) created {
	s.t.Helper()
	c := s.create(mode, []byte(body), extra)
	if st := put(s.t, c, []byte(body)); st != http.StatusOK {
		s.t.Fatalf("PUT: status %d", st)
	}
	return c
}

func TestAlarmCopyFunctionDown(t *testing.T) {
	s := start(t, nil)
	s.embedded()
	s.waitAlarm("CopyQueueAgeAlarm", alarms.OK, time.Minute)

	if err := s.runner.SetMappingsEnabled("CopyFunction", false); err != nil {
		t.Fatal(err)
	}
	line, _ := upsert("sku-1", 1)
	c := s.send("delta", line+"\n", nil)
	// The S3 event waits in the copy queue; at 300 s it is at the alarm's
	// threshold, not over it.
	s.clock.Advance(300 * time.Second)
	a := s.waitAlarm("CopyQueueAgeAlarm", alarms.Alarming, time.Minute)
	if !strings.Contains(a.Reason, "greater than the threshold (300.0)") {
		t.Errorf("reason %q", a.Reason)
	}
	if !strings.Contains(s.logs.String(), "[alarms] OK → ALARM  CopyQueueAgeAlarm: Threshold Crossed") {
		t.Errorf("the runner printed no ALARM transition:\n%s", s.logs.String())
	}

	// The copy function comes back: the upload is imported and the alarm clears.
	if err := s.runner.SetMappingsEnabled("CopyFunction", true); err != nil {
		t.Fatal(err)
	}
	if r := s.waitTerminal(c, time.Minute); r.State != "imported" {
		t.Fatalf("after the copy function came back: %+v", r)
	}
	s.waitAlarm("CopyQueueAgeAlarm", alarms.OK, time.Minute)
	if !strings.Contains(s.logs.String(), "[alarms] ALARM → OK  CopyQueueAgeAlarm") {
		t.Errorf("the runner printed no ALARM → OK transition")
	}
	if a := s.alarm("ImportQueueAgeAlarm"); a.State == alarms.Alarming {
		t.Errorf("ImportQueueAgeAlarm fired: %s", a.Reason)
	}
}

func TestAlarmImporterCannotReadItsInput(t *testing.T) {
	s := start(t, nil)
	s.embedded()
	if err := s.runner.SetMappingsEnabled("ImportFunction", false); err != nil {
		t.Fatal(err)
	}
	line, _ := upsert("sku-1", 1)
	c := s.send("delta", line+"\n", nil)
	s.waitFor("upload queued", 30*time.Second, func() bool { return s.state(c).State == "queued" })
	// The stored copy disappears before the importer reads it.
	key := layout.Import{Site: s.site, Sequence: c.Sequence, UploadID: c.UploadID, Encoding: layout.Identity}.Key()
	if _, err := s.storeClient().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s.runner.BucketName("StoreBucket")), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if err := s.runner.SetMappingsEnabled("ImportFunction", true); err != nil {
		t.Fatal(err)
	}
	s.waitFor("site halted", 30*time.Second, func() bool {
		var cat struct {
			Halted bool `json:"halted"`
		}
		s.call(http.MethodGet, "/v1/sites/"+s.site+"/catalog", nil, &cat)
		return cat.Halted
	})
	s.waitAlarm("SitesHaltedAlarm", alarms.Alarming, time.Minute)
	if r := s.state(c); r.State == "imported" {
		t.Fatalf("an upload whose data is gone was imported: %+v", r)
	}
	if _, ok := s.product("sku-1"); ok {
		t.Error("the lost upload's product is in the catalog")
	}
}

func TestAlarmFullUploadOfNothingIsHeld(t *testing.T) {
	s := start(t, nil)
	s.embedded()
	line, _ := upsert("sku-1", 1)
	s.apply(line)
	// A full catalog file that holds no product: applied, it would empty
	// the catalog.
	c := s.send("full", "\n", nil)
	r := s.waitTerminal(c, time.Minute)
	if r.State != "rejected" || r.Reason != "implausible_full" {
		t.Fatalf("a full upload of 0 products: %+v, want rejected implausible_full (held)", r)
	}
	s.waitAlarm("FullUploadsHeldAlarm", alarms.Alarming, time.Minute)
	if _, ok := s.product("sku-1"); !ok {
		t.Error("the held full upload emptied the catalog")
	}
	// Meant: with allowEmpty the same file empties the catalog.
	c = s.send("full", "\n", map[string]any{"allowEmpty": true})
	if r := s.waitTerminal(c, time.Minute); r.State != "imported" {
		t.Fatalf("an empty full upload with allowEmpty: %+v, want imported", r)
	}
	if _, ok := s.product("sku-1"); ok {
		t.Error("an empty full upload with allowEmpty left the catalog's product")
	}
}

func TestAlarmDestinationAnswering503(t *testing.T) {
	s := start(t, map[string]string{"AllowLoopbackHttp": "true"})
	s.embedded()
	dead, deadURL := newReceiver(t, http.StatusServiceUnavailable)
	ctx := context.Background()
	s.setDestinations(site.Destination{Name: "dead", Type: "webhook", URL: deadURL, Secrets: []string{"s1"}})
	// Four versions the destination never acknowledges: more than the
	// backlog alarm's three.
	for i := range 4 {
		line, _ := upsert("sku", i)
		s.apply(line)
	}
	s.waitDirty()
	if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("a push to the dead destination", 30*time.Second, func() bool { _, calls := dead.count(); return calls > 0 })
	s.waitAlarm("PushFailuresAlarm", alarms.Alarming, time.Minute)
	if a := s.waitAlarm("DestinationPushFailuresAlarm", alarms.Alarming, time.Minute); !strings.Contains(a.Reason, "site=shop, destination=dead") {
		t.Errorf("the per-destination alarm does not name the failing destination: %s", a.Reason)
	}
	s.waitAlarm("DestinationBacklogAlarm", alarms.Alarming, time.Minute)
}
