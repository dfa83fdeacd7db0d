package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

type sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// appliedReader tells where a site's catalog stands.
type appliedReader interface {
	AppliedSeq(ctx context.Context, site string) (uint64, error)
}

// Handler is the scheduled sync function. Its first job is the expiry
// resolver: sequences still awaiting their PUT past expiresAt + Grace are
// claimed expired, and their sites woken, so an abandoned upload never
// blocks the uploads after it.
type Handler struct {
	S3             objectAPI
	SQS            sender
	Uploads        *uploads.Store
	Catalog        appliedReader
	IncomingBucket string
	StoreBucket    string
	ImportQueueURL string
	Grace          time.Duration
	Logger         *slog.Logger
	// Metrics receives the function's EMF metrics (none when nil).
	Metrics *metrics.Emitter
	// Now is the clock for events without a time (default time.Now).
	Now func() time.Time
	// Planner plans the catalog sync after the resolver (off when its
	// SyncQueueURL is empty).
	Planner
	// Collector collects the catalogs' garbage when the collect schedule
	// fires.
	Collector Collector
}

// Event is what the function receives: the scheduled event EventBridge
// sends, or a schedule's Input. The collect schedule's Input is
// {"action":"collect"}; without an action the function resolves expiries
// and plans the sync.
type Event struct {
	events.CloudWatchEvent
	Action string `json:"action,omitempty"`
}

// Report is what one run did; it is also the function's answer.
type Report struct {
	Sites   int `json:"sites"`
	Expired int `json:"expired"`
	Waiting int `json:"waiting"`
	// LateKept counts uploads past expiry whose object exists: their event
	// is on its way, so they are left for the copy stage.
	LateKept int `json:"lateKept"`
	// The sync planner: dirty sites listed, jobs sent, destinations whose
	// lease was held (deduplicated), whose own schedule was not due
	// (skipped), and that had already acknowledged the head (upToDate).
	DirtySites   int `json:"dirtySites"`
	Planned      int `json:"planned"`
	Deduplicated int `json:"deduplicated"`
	Skipped      int `json:"skipped"`
	UpToDate     int `json:"upToDate"`
	// Collect is what a collect run did (only then).
	Collect *CollectReport `json:"collect,omitempty"`
}

// Handle runs on the schedules. "Now" is the event's time: the runner's
// clock locally, EventBridge's in AWS (an Input carries none: then the
// function's clock).
func (h *Handler) Handle(ctx context.Context, ev Event) (Report, error) {
	now := ev.Time.UTC()
	if now.IsZero() {
		now = h.now()
	}
	var rep Report
	switch ev.Action {
	case "":
	case ActionCollect:
		c, err := h.collect(ctx, now)
		rep.Collect = &c
		level := slog.LevelDebug
		if c.Sites+c.Failed > 0 {
			level = slog.LevelInfo
		}
		h.Logger.Log(ctx, level, "catalog collection ran", "sites", c.Sites, "failed", c.Failed, "more", c.More,
			"versions", c.Versions, "shards", c.Shards)
		h.Metrics.Emit(nil, metrics.CountOf(metrics.VersionsCollected, c.Versions), metrics.CountOf(metrics.ShardsCollected, c.Shards),
			metrics.CountOf(metrics.CollectFailures, c.Failed))
		return rep, err
	default:
		return rep, fmt.Errorf("unknown action %q: want %q or none", ev.Action, ActionCollect)
	}
	var errs []error
	var token *string
	for {
		out, err := h.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(h.StoreBucket), Prefix: aws.String(layout.PendingPrefix), ContinuationToken: token})
		if err != nil {
			return rep, fmt.Errorf("list %s/%s: %w", h.StoreBucket, layout.PendingPrefix, err)
		}
		for _, obj := range out.Contents {
			siteName, err := layout.ParsePendingKey(aws.ToString(obj.Key))
			if err != nil {
				continue
			}
			rep.Sites++
			if err := h.resolveSite(ctx, siteName, now, &rep); err != nil {
				errs = append(errs, err)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		token = out.NextContinuationToken
	}
	level := slog.LevelDebug
	if rep.Sites > 0 {
		level = slog.LevelInfo
	}
	h.Logger.Log(ctx, level, "expiry resolver ran", "sites", rep.Sites, "expired", rep.Expired, "waiting", rep.Waiting, "lateKept", rep.LateKept)
	if err := h.planSync(ctx, now, &rep); err != nil {
		errs = append(errs, err)
	}
	if h.SyncQueueURL != "" {
		level = slog.LevelDebug
		if rep.DirtySites > 0 {
			level = slog.LevelInfo
		}
		h.Logger.Log(ctx, level, "sync planner ran", "dirtySites", rep.DirtySites, "planned", rep.Planned,
			"deduplicated", rep.Deduplicated, "skipped", rep.Skipped, "upToDate", rep.UpToDate)
	}
	h.Metrics.Emit(nil, metrics.CountOf(metrics.SequencesExpired, rep.Expired), metrics.CountOf(metrics.SyncJobsPlanned, rep.Planned),
		metrics.CountOf(metrics.SyncJobsDeduplicated, rep.Deduplicated))
	return rep, errors.Join(errs...)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// resolveSite deletes the site's pending mark first, then re-checks its
// records, and puts the mark back if uploads are still outstanding: an
// upload allocated meanwhile is either seen here or marks the site again.
func (h *Handler) resolveSite(ctx context.Context, siteName string, now time.Time, rep *Report) error {
	log := h.Logger.With("site", siteName)
	if _, err := h.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.PendingKey(siteName))}); err != nil {
		// The delete may have happened: put the mark back, or the site is never visited again.
		return h.remark(ctx, siteName, fmt.Errorf("site %s: clear pending mark: %w", siteName, err))
	}
	applied, err := h.Catalog.AppliedSeq(ctx, siteName)
	if err != nil {
		return h.remark(ctx, siteName, fmt.Errorf("site %s: %w", siteName, err))
	}
	outstanding, expired := 0, 0
	after := applied
	for {
		recs, more, err := h.Uploads.List(ctx, siteName, after, 1000)
		if err != nil {
			return h.remark(ctx, siteName, err)
		}
		for _, r := range recs {
			after = r.Sequence
			if r.State != uploads.AwaitingUpload {
				continue
			}
			if now.Before(r.ExpiresAt.Add(h.Grace)) {
				outstanding++
				continue
			}
			// Never expire an upload S3 accepted: its event may be late.
			key := layout.Incoming{Site: r.Site, Sequence: r.Sequence, UploadID: r.UploadID}.Key()
			_, herr := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.IncomingBucket), Key: aws.String(key)})
			if herr == nil {
				rep.LateKept++
				outstanding++
				continue
			}
			if !uploads.IsNotFound(herr) {
				outstanding++
				log.Warn("could not check the incoming object; will retry", "sequence", r.Sequence, "err", herr)
				continue
			}
			rec, err := h.Uploads.Update(ctx, siteName, r.Sequence, func(x *uploads.Record) error {
				if x.State != uploads.AwaitingUpload {
					return uploads.ErrUnchanged // the copy stage claimed it first
				}
				x.Message = "no file was uploaded before the URL expired"
				return x.Move(uploads.Expired, now)
			})
			if err != nil {
				outstanding++
				log.Warn("could not expire; will retry", "sequence", r.Sequence, "err", err)
				continue
			}
			if rec.State == uploads.Expired {
				expired++
				log.Info("upload expired", "sequence", r.Sequence, "uploadId", r.UploadID)
			}
		}
		if !more {
			break
		}
	}
	rep.Expired += expired
	rep.Waiting += outstanding
	if expired > 0 {
		if err := messages.Send(ctx, h.SQS, h.ImportQueueURL, messages.Import{Kind: messages.KindWake, Site: siteName, Reason: "expired"}); err != nil {
			return h.remark(ctx, siteName, err)
		}
	}
	if outstanding > 0 {
		return h.remark(ctx, siteName, nil)
	}
	return nil
}

// remark puts the site's pending mark back so the next run sees it again.
func (h *Handler) remark(ctx context.Context, siteName string, cause error) error {
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.PendingKey(siteName)), Body: strings.NewReader("{}")}); err != nil {
		return errors.Join(cause, fmt.Errorf("site %s: restore pending mark: %w", siteName, err))
	}
	return cause
}
