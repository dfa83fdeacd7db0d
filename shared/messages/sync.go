package messages

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// SyncJob is a message of the sync FIFO queue (group = site + "/" +
// destination): push the site's catalog changes since the destination's
// acknowledged version to that destination. The planner sends one job per
// lease it takes; JobID names the lease, so the push function releases only
// its own lease.
type SyncJob struct {
	Site        string    `json:"site"`
	Destination string    `json:"destination"`
	JobID       string    `json:"jobId"`
	Version     uint64    `json:"version"` // the catalog head when planned (the push goes to the head it finds)
	PlannedAt   time.Time `json:"plannedAt"`
}

// NewJobID returns a random job id (32 hex digits).
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Encode returns the body.
func (m SyncJob) Encode() string {
	b, _ := json.Marshal(m) // strings, numbers and a time: cannot fail
	return string(b)
}

// GroupID is the message group: site + "/" + destination (at most 127
// characters, within SQS's 128).
func (m SyncJob) GroupID() string { return m.Site + "/" + m.Destination }

// DeduplicationID is unique per job: the lease, not the five-minute
// deduplication window, keeps a destination to one job at a time, and a
// reused id would swallow a legitimate later job.
func (m SyncJob) DeduplicationID() string { return "job-" + m.JobID }

// DecodeSyncJob parses and checks a sync job.
func DecodeSyncJob(body string) (SyncJob, error) {
	var m SyncJob
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return SyncJob{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if err := layout.ValidateSite(m.Site); err != nil {
		return SyncJob{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if err := layout.ValidateSite(m.Destination); err != nil {
		return SyncJob{}, fmt.Errorf("%w: destination: %v", ErrUndecodable, err)
	}
	if len(m.JobID) == 0 || len(m.JobID) > 64 {
		return SyncJob{}, fmt.Errorf("%w: job id %q", ErrUndecodable, m.JobID)
	}
	for _, c := range m.JobID {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return SyncJob{}, fmt.Errorf("%w: job id %q", ErrUndecodable, m.JobID)
		}
	}
	return m, nil
}
