package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/feedpipe/feedpipe/shared/messages"
)

// The sample event for `sam local invoke ImportFunction -e` must stay a
// valid import batch.
func TestSampleEventDecodes(t *testing.T) {
	b, err := os.ReadFile("../../events/import/fifo-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 2 {
		t.Fatalf("%d records", len(ev.Records))
	}
	for _, r := range ev.Records {
		m, err := messages.DecodeImport(r.Body)
		if err != nil {
			t.Fatalf("record %s: %v", r.MessageId, err)
		}
		if m.GroupID() != r.Attributes["MessageGroupId"] {
			t.Errorf("record %s: group %q, message site %q", r.MessageId, r.Attributes["MessageGroupId"], m.Site)
		}
	}
}
