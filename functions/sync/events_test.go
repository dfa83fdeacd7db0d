package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// The sample event for `sam local invoke SyncFunction -e` must stay a valid
// scheduled event with the time the handler takes as "now".
func TestSampleEventDecodes(t *testing.T) {
	b, err := os.ReadFile("../../events/sync/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Source != "aws.events" || ev.DetailType != "Scheduled Event" || ev.Time.IsZero() {
		t.Fatalf("event = %+v", ev)
	}
}

// The collect sample is the Input of the collect schedule.
func TestCollectSampleEventDecodes(t *testing.T) {
	b, err := os.ReadFile("../../events/sync/collect.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Action != ActionCollect {
		t.Fatalf("event = %+v, want action %q", ev, ActionCollect)
	}
}
