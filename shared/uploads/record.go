// Package uploads owns the upload record: one JSON document per sequence of a
// site (uploads/{site}/{seq:020}.json in the store bucket) that is both the
// allocation of the sequence and the status document the API returns.
//
// A sequence is allocated by creating its record with If-None-Match: *, so no
// sequence exists without a record and none is issued twice. A record then
// only moves forward through the states below, every write conditional on
// the ETag it was read with; whoever wins a race decides, and the loser
// re-reads and obeys the record.
//
//	awaiting_upload → received → queued → importing → imported | rejected
//	received → rejected
//	awaiting_upload → expired | cancelled
package uploads

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// State is the state of one upload.
type State string

// The eight upload states.
const (
	AwaitingUpload State = "awaiting_upload"
	Received       State = "received"
	Queued         State = "queued"
	Importing      State = "importing"
	Imported       State = "imported"
	Rejected       State = "rejected"
	Expired        State = "expired"
	Cancelled      State = "cancelled"
)

var next = map[State][]State{
	AwaitingUpload: {Received, Expired, Cancelled},
	Received:       {Queued, Rejected},
	Queued:         {Importing, Rejected},
	Importing:      {Imported, Rejected},
}

// CanMove reports whether a record may move from one state to another.
func CanMove(from, to State) bool {
	for _, s := range next[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Terminal reports whether no state follows s.
func (s State) Terminal() bool { return len(next[s]) == 0 }

// Resolved reports whether the sequence no longer holds back later ones:
// it was applied, or it will never apply.
func (s State) Resolved() bool { return s.Terminal() }

// Valid reports whether s is one of the eight states.
func (s State) Valid() bool {
	switch s {
	case AwaitingUpload, Received, Queued, Importing, Imported, Rejected, Expired, Cancelled:
		return true
	}
	return false
}

// Mode of an upload.
type Mode string

// Upload modes.
const (
	Delta Mode = "delta"
	Full  Mode = "full"
)

// Reason codes of rejected uploads and late PUTs.
const (
	ReasonLateUpload       = "late_upload"
	ReasonSizeMismatch     = "size_mismatch"
	ReasonChecksumMismatch = "checksum_mismatch"
	ReasonBadEncoding      = "bad_encoding"
	ReasonErrorBudget      = "error_budget"
	ReasonImplausibleFull  = "implausible_full"
	ReasonEmpty            = "empty_upload"
)

// Counts are what applying an upload did.
type Counts struct {
	Lines    int64 `json:"lines"`
	Upserted int64 `json:"upserted"`
	Deleted  int64 `json:"deleted"`
	// Unchanged counts upserts of identical products and deletes of absent ids.
	Unchanged int64 `json:"unchanged"`
	Rejected  int64 `json:"rejected"`
}

// LineError is one rejected line.
type LineError struct {
	Line   int    `json:"line"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// LateUpload records a PUT that arrived after its sequence was resolved.
type LateUpload struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Record is the upload record and status document.
type Record struct {
	Site            string `json:"site"`
	Sequence        uint64 `json:"sequence"`
	UploadID        string `json:"uploadId"`
	Mode            Mode   `json:"mode"`
	ContentLength   int64  `json:"contentLength"`
	SHA256          string `json:"sha256,omitempty"`
	ContentEncoding string `json:"contentEncoding"`
	AllowEmpty      bool   `json:"allowEmpty,omitempty"`
	// MaxFullDeleteRatio overrides the site's ratio for this upload.
	MaxFullDeleteRatio *float64  `json:"maxFullDeleteRatio,omitempty"`
	ExpiresAt          time.Time `json:"expiresAt"`

	State State `json:"state"`
	// Timestamps holds when the record entered each state.
	Timestamps map[State]time.Time `json:"timestamps"`
	// Reason is the code of a rejection; Message explains it.
	Reason         string      `json:"reason,omitempty"`
	Message        string      `json:"message,omitempty"`
	Counts         *Counts     `json:"counts,omitempty"`
	Errors         []LineError `json:"errors,omitempty"`
	CatalogVersion uint64      `json:"catalogVersion,omitempty"`
	LateUpload     *LateUpload `json:"lateUpload,omitempty"`
	// ReceivedSize and ReceivedETag describe the object the copy stage saw.
	ReceivedSize int64  `json:"receivedSize,omitempty"`
	ReceivedETag string `json:"receivedEtag,omitempty"`
}

// clone returns a copy of r that shares nothing changeable with it.
func (r Record) clone() Record {
	c := r
	c.Timestamps = maps.Clone(r.Timestamps)
	c.Errors = slices.Clone(r.Errors)
	if r.Counts != nil {
		counts := *r.Counts
		c.Counts = &counts
	}
	if r.LateUpload != nil {
		late := *r.LateUpload
		c.LateUpload = &late
	}
	if r.MaxFullDeleteRatio != nil {
		ratio := *r.MaxFullDeleteRatio
		c.MaxFullDeleteRatio = &ratio
	}
	return c
}

// Move changes the record's state, checking that the move goes forward.
func (r *Record) Move(to State, at time.Time) error {
	if !CanMove(r.State, to) {
		return fmt.Errorf("upload %s/%d: %w: %s → %s", r.Site, r.Sequence, ErrBackwards, r.State, to)
	}
	r.State = to
	if r.Timestamps == nil {
		r.Timestamps = map[State]time.Time{}
	}
	r.Timestamps[to] = at.UTC().Truncate(time.Millisecond)
	return nil
}

// Reject moves the record to rejected with a reason.
func (r *Record) Reject(reason, message string, at time.Time) error {
	if err := r.Move(Rejected, at); err != nil {
		return err
	}
	r.Reason, r.Message = reason, message
	return nil
}
