// Package syncjob holds the documents the sync planner and the push function
// share: a destination's lease (sync/lease/{site}/{destination}.json, a
// conditional write with an expiry, so that at most one job per destination
// is queued or running and a lost job is planned again) and its
// acknowledgement (sync/ack/{site}/{destination}.json, the catalog version
// the destination has received in full).
package syncjob

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// Lease is held by the one job of a destination that is queued or running.
type Lease struct {
	Site        string    `json:"site"`
	Destination string    `json:"destination"`
	JobID       string    `json:"jobId"`
	Version     uint64    `json:"version"` // the head when planned
	PlannedAt   time.Time `json:"plannedAt"`
	ExpiresAt   time.Time `json:"expiresAt"`
}

// Expired tells whether the lease no longer holds at now.
func (l Lease) Expired(now time.Time) bool { return !now.Before(l.ExpiresAt) }

// Ack is what a destination acknowledged: every change up to Version.
type Ack struct {
	Site        string    `json:"site"`
	Destination string    `json:"destination"`
	Version     uint64    `json:"version"`
	PlannedAt   time.Time `json:"plannedAt"` // when the job that delivered it was planned
	AckedAt     time.Time `json:"ackedAt"`
}

// ErrHeld is returned when a conditional lease write lost to another writer.
var ErrHeld = errors.New("lease held")

type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// Store reads and writes leases and acknowledgements in the store bucket.
type Store struct {
	S3     objectAPI
	Bucket string
}

// get reads a JSON document; found is false when it does not exist.
func (s *Store) get(ctx context.Context, key string, v any) (etag string, found bool, err error) {
	out, err := s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s/%s: %w", s.Bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return "", false, fmt.Errorf("read %s/%s: %w", s.Bucket, key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", false, fmt.Errorf("decode %s/%s: %w", s.Bucket, key, err)
	}
	return aws.ToString(out.ETag), true, nil
}

// Lease reads a destination's lease and its ETag.
func (s *Store) Lease(ctx context.Context, site, dest string) (l Lease, etag string, found bool, err error) {
	etag, found, err = s.get(ctx, layout.SyncLeaseKey(site, dest), &l)
	return l, etag, found, err
}

// TakeLease writes l: created with If-None-Match: * when replaceETag is
// empty, else replacing exactly the lease with that ETag (an expired one).
// Losing the race returns ErrHeld. It returns the new lease's ETag.
func (s *Store) TakeLease(ctx context.Context, l Lease, replaceETag string) (string, error) {
	b, _ := json.Marshal(l)
	in := &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(layout.SyncLeaseKey(l.Site, l.Destination)),
		Body: bytes.NewReader(b), ContentType: aws.String("application/json")}
	if replaceETag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(replaceETag)
	}
	out, err := s.S3.PutObject(ctx, in)
	if IsConflict(err) {
		return "", fmt.Errorf("%s/%s: %w", l.Site, l.Destination, ErrHeld)
	}
	if err != nil {
		return "", fmt.Errorf("write lease %s/%s: %w", l.Site, l.Destination, err)
	}
	return aws.ToString(out.ETag), nil
}

// ExtendLease moves the expiry of the job's own lease to until, so that a
// job retrying a failing destination is not planned a second time. A lease
// that is gone or belongs to another job is left alone (ErrHeld).
func (s *Store) ExtendLease(ctx context.Context, site, dest, jobID string, until time.Time) error {
	l, etag, found, err := s.Lease(ctx, site, dest)
	if err != nil {
		return err
	}
	if !found || l.JobID != jobID {
		return fmt.Errorf("%s/%s: %w by another job", site, dest, ErrHeld)
	}
	if !until.After(l.ExpiresAt) {
		return nil
	}
	l.ExpiresAt = until
	_, err = s.TakeLease(ctx, l, etag)
	return err
}

// ReleaseLease deletes the lease if it is still the job's own.
func (s *Store) ReleaseLease(ctx context.Context, site, dest, jobID string) error {
	l, _, found, err := s.Lease(ctx, site, dest)
	if err != nil || !found || l.JobID != jobID {
		return err
	}
	if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(layout.SyncLeaseKey(site, dest))}); err != nil {
		return fmt.Errorf("release lease %s/%s: %w", site, dest, err)
	}
	return nil
}

// Ack reads a destination's acknowledgement (version 0 when it has none).
func (s *Store) Ack(ctx context.Context, site, dest string) (Ack, error) {
	a := Ack{Site: site, Destination: dest}
	_, _, err := s.get(ctx, layout.SyncAckKey(site, dest), &a)
	return a, err
}

// SaveAck records what the destination acknowledged.
func (s *Store) SaveAck(ctx context.Context, a Ack) error {
	b, _ := json.Marshal(a)
	if _, err := s.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(layout.SyncAckKey(a.Site, a.Destination)),
		Body: bytes.NewReader(b), ContentType: aws.String("application/json")}); err != nil {
		return fmt.Errorf("write ack %s/%s: %w", a.Site, a.Destination, err)
	}
	return nil
}

var rateRE = regexp.MustCompile(`^rate\(\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*\)$`)

// ParseRate returns the interval of a destination schedule "rate(N unit)";
// an empty schedule is 0 (every run of the sync function).
func ParseRate(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	m := rateRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("schedule %q: want rate(N minutes|hours|days)", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("schedule %q: want a positive rate", s)
	}
	unit := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	u := m[2]
	if u[len(u)-1] == 's' {
		u = u[:len(u)-1]
	}
	return time.Duration(n) * unit[u], nil
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// IsNotFound tells whether err says the object does not exist.
func IsNotFound(err error) bool {
	if err == nil {
		return false
	}
	c := apiCode(err)
	return c == "NoSuchKey" || c == "NotFound" || httpStatus(err) == http.StatusNotFound
}

// IsConflict tells whether err is a lost conditional write: a failed
// If-Match / If-None-Match (412) or S3's 409 ConditionalRequestConflict.
func IsConflict(err error) bool {
	if err == nil {
		return false
	}
	c := apiCode(err)
	return c == "PreconditionFailed" || c == "ConditionalRequestConflict" || httpStatus(err) == http.StatusPreconditionFailed
}
