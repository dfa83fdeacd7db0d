package messages

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSyncJobRoundTrip(t *testing.T) {
	m := SyncJob{Site: "shop", Destination: "hook-1", JobID: NewJobID(), Version: 7, PlannedAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	got, err := DecodeSyncJob(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	if m.GroupID() != "shop/hook-1" {
		t.Errorf("group %q", m.GroupID())
	}
	other := m
	other.JobID = NewJobID()
	if m.DeduplicationID() == other.DeduplicationID() {
		t.Errorf("two jobs share a deduplication id")
	}
	long := SyncJob{Site: strings.Repeat("a", 63), Destination: strings.Repeat("b", 63), JobID: NewJobID()}
	if len(long.GroupID()) > 128 || len(long.DeduplicationID()) > 128 {
		t.Errorf("ids too long for SQS: %d, %d", len(long.GroupID()), len(long.DeduplicationID()))
	}
}

func TestDecodeSyncJobRejects(t *testing.T) {
	for _, body := range []string{
		`not json`,
		`{"site":"Shop","destination":"d","jobId":"x"}`,
		`{"site":"shop","destination":"../d","jobId":"x"}`,
		`{"site":"shop","destination":"d","jobId":""}`,
		`{"site":"shop","destination":"d","jobId":"a b"}`,
	} {
		if _, err := DecodeSyncJob(body); !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: err %v, want ErrUndecodable", body, err)
		}
	}
}
