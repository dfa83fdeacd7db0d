package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// Planner defaults.
const (
	// DefaultLeaseTTL is six times the push function's timeout (300 s): a
	// job lost with its message is planned again after this long.
	DefaultLeaseTTL = 30 * time.Minute
	// DefaultPlanConcurrency bounds the sites planned at once.
	DefaultPlanConcurrency = 16
	// dirtyPage is the page size of the dirty-mark listing; each page is
	// planned and its jobs sent before the next is read.
	dirtyPage = 1000
)

// batchSender is what the planner needs of SQS.
type batchSender interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// headReader finds a site's newest catalog version.
type headReader interface {
	Head(ctx context.Context, site string) (catalog.Version, error)
}

// Planner settings of the Handler. The planner is off when SyncQueueURL is
// empty.
type Planner struct {
	SyncSQS      batchSender
	SyncQueueURL string
	Heads        headReader
	LeaseTTL     time.Duration
	Concurrency  int
	// NewJobID makes lease / job ids; default messages.NewJobID.
	NewJobID func() string
	// PageSize of the dirty-mark listing (default 1000, S3's maximum).
	PageSize int
}

// plannedJob is a job whose lease is taken and whose message is not sent yet.
type plannedJob struct {
	msg messages.SyncJob
}

// siteResult is what planning one site gave.
type siteResult struct {
	deduplicated, skipped, upToDate int
	jobs                            []plannedJob
	err                             error
}

// planSync lists the dirty marks page by page and plans each page's sites
// with bounded concurrency, then sends their jobs in batches of ten.
func (h *Handler) planSync(ctx context.Context, now time.Time, rep *Report) error {
	if h.SyncQueueURL == "" {
		return nil
	}
	page := h.PageSize
	if page <= 0 || page > dirtyPage {
		page = dirtyPage
	}
	// The whole listing is read before any mark is deleted: deleting the
	// keys being listed would make the continuation of some S3
	// implementations skip keys. Keys are small; 10 k dirty sites are ten
	// list calls.
	var sites []string
	var token *string
	for {
		out, err := h.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(h.StoreBucket), Prefix: aws.String(layout.SyncDirtyPrefix),
			ContinuationToken: token, MaxKeys: aws.Int32(int32(page))})
		if err != nil {
			return fmt.Errorf("list %s/%s: %w", h.StoreBucket, layout.SyncDirtyPrefix, err)
		}
		for _, obj := range out.Contents {
			name := strings.TrimPrefix(aws.ToString(obj.Key), layout.SyncDirtyPrefix)
			if layout.ValidateSite(name) == nil {
				sites = append(sites, name)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		token = out.NextContinuationToken
	}
	rep.DirtySites = len(sites)
	var errs []error
	for start := 0; start < len(sites); start += page {
		results := h.planSites(ctx, sites[start:min(start+page, len(sites))], now)
		var jobs []plannedJob
		for _, r := range results {
			rep.Deduplicated += r.deduplicated
			rep.Skipped += r.skipped
			rep.UpToDate += r.upToDate
			jobs = append(jobs, r.jobs...)
			if r.err != nil {
				errs = append(errs, r.err)
			}
		}
		sent, err := h.sendJobs(ctx, jobs)
		rep.Planned += sent
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (h *Handler) planSites(ctx context.Context, sites []string, now time.Time) []siteResult {
	n := h.Concurrency
	if n <= 0 {
		n = DefaultPlanConcurrency
	}
	results := make([]siteResult, len(sites))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, name := range sites {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = h.planSite(ctx, name, now)
		}()
	}
	wg.Wait()
	return results
}

// planSite deletes the site's dirty mark first, then reads its config and
// catalog head and takes a lease for each due destination behind the head.
// The mark is put back whenever a destination still has work that was not
// planned (lease held, schedule not due, an error), so the change is planned
// on a later run.
func (h *Handler) planSite(ctx context.Context, name string, now time.Time) (res siteResult) {
	if _, err := h.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.SyncDirtyKey(name))}); err != nil {
		res.err = h.markDirty(ctx, name, fmt.Errorf("site %s: clear dirty mark: %w", name, err))
		return res
	}
	cfg, err := site.Load(ctx, h.S3, h.StoreBucket, name)
	if errors.Is(err, site.ErrNotFound) {
		h.Logger.Warn("dirty site has no configuration; nothing to sync", "site", name)
		return res
	}
	if err != nil {
		res.err = h.markDirty(ctx, name, fmt.Errorf("site %s: %w", name, err))
		return res
	}
	if len(cfg.Destinations) == 0 {
		return res
	}
	head, err := h.Heads.Head(ctx, name)
	if err != nil {
		res.err = h.markDirty(ctx, name, fmt.Errorf("site %s: %w", name, err))
		return res
	}
	jobs := &syncjob.Store{S3: h.S3, Bucket: h.StoreBucket}
	keepDirty := false
	var errs []error
	for _, d := range cfg.Destinations {
		log := h.Logger.With("site", name, "destination", d.Name)
		ack, err := jobs.Ack(ctx, name, d.Name)
		if err != nil {
			errs, keepDirty = append(errs, err), true
			continue
		}
		if ack.Version >= head.Version {
			res.upToDate++
			continue
		}
		lease, etag, found, err := jobs.Lease(ctx, name, d.Name)
		if err != nil {
			errs, keepDirty = append(errs, err), true
			continue
		}
		if found && !lease.Expired(now) {
			// A job is queued or running; plan the change once it is done.
			res.deduplicated++
			keepDirty = true
			continue
		}
		last := ack.PlannedAt
		if found && lease.PlannedAt.After(last) {
			last = lease.PlannedAt
		}
		every, err := syncjob.ParseRate(d.Schedule)
		if err != nil {
			log.Warn("bad destination schedule; syncing on every run", "err", err)
		}
		if every > 0 && !last.IsZero() && now.Before(last.Add(every)) {
			res.skipped++
			keepDirty = true
			continue
		}
		newID := h.NewJobID
		if newID == nil {
			newID = messages.NewJobID
		}
		ttl := h.LeaseTTL
		if ttl <= 0 {
			ttl = DefaultLeaseTTL
		}
		msg := messages.SyncJob{Site: name, Destination: d.Name, JobID: newID(), Version: head.Version, PlannedAt: now}
		if _, err := jobs.TakeLease(ctx, syncjob.Lease{Site: name, Destination: d.Name, JobID: msg.JobID, Version: head.Version,
			PlannedAt: now, ExpiresAt: now.Add(ttl)}, etag); err != nil {
			keepDirty = true
			if errors.Is(err, syncjob.ErrHeld) {
				res.deduplicated++
				continue
			}
			errs = append(errs, err)
			continue
		}
		if found {
			log.Warn("replanned after an expired lease", "expiredJob", lease.JobID, "expiredAt", lease.ExpiresAt)
		}
		res.jobs = append(res.jobs, plannedJob{msg: msg})
	}
	var cause error
	if len(errs) > 0 {
		cause = fmt.Errorf("site %s: %w", name, errors.Join(errs...))
	}
	if keepDirty {
		cause = h.markDirty(ctx, name, cause)
	}
	res.err = cause
	return res
}

// sendJobs sends the jobs in batches of ten, a few batches at once. A job
// whose message could not be sent gives its lease back and marks its site
// dirty again.
func (h *Handler) sendJobs(ctx context.Context, jobs []plannedJob) (int, error) {
	var mu sync.Mutex
	sent := 0
	var errs []error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for start := 0; start < len(jobs); start += 10 {
		batch := jobs[start:min(start+10, len(jobs))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := h.sendBatch(ctx, batch)
			mu.Lock()
			defer mu.Unlock()
			sent += n
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return sent, errors.Join(errs...)
}

func (h *Handler) sendBatch(ctx context.Context, batch []plannedJob) (int, error) {
	entries := make([]sqstypes.SendMessageBatchRequestEntry, len(batch))
	for i, j := range batch {
		entries[i] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(j.msg.Encode()),
			MessageGroupId: aws.String(j.msg.GroupID()), MessageDeduplicationId: aws.String(j.msg.DeduplicationID())}
	}
	out, err := h.SyncSQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(h.SyncQueueURL), Entries: entries})
	failed := map[int]string{}
	if err != nil {
		for i := range batch {
			failed[i] = err.Error()
		}
	} else {
		for _, f := range out.Failed {
			var i int
			if _, serr := fmt.Sscan(aws.ToString(f.Id), &i); serr == nil && i >= 0 && i < len(batch) {
				failed[i] = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
			}
		}
	}
	var errs []error
	jobs := &syncjob.Store{S3: h.S3, Bucket: h.StoreBucket}
	for i, why := range failed {
		j := batch[i].msg
		cause := fmt.Errorf("site %s: send sync job for %s: %s", j.Site, j.Destination, why)
		if rerr := jobs.ReleaseLease(ctx, j.Site, j.Destination, j.JobID); rerr != nil {
			cause = errors.Join(cause, rerr) // the lease expires on its own
		}
		errs = append(errs, h.markDirty(ctx, j.Site, cause))
	}
	for i, j := range batch {
		if _, bad := failed[i]; !bad {
			h.Logger.Info("sync job planned", "site", j.msg.Site, "destination", j.msg.Destination, "version", j.msg.Version, "job", j.msg.JobID)
		}
	}
	return len(batch) - len(failed), errors.Join(errs...)
}

// markDirty puts the site's dirty mark back so a later run plans it.
func (h *Handler) markDirty(ctx context.Context, name string, cause error) error {
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.SyncDirtyKey(name)), Body: strings.NewReader("{}")}); err != nil {
		return errors.Join(cause, fmt.Errorf("site %s: restore dirty mark: %w", name, err))
	}
	return cause
}
