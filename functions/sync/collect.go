package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// ActionCollect is the Input of the collect schedule: {"action":"collect"}.
const ActionCollect = "collect"

// Collector defaults.
const (
	// DefaultCollectGrace is twice the import function's Timeout (900 s):
	// a shard younger than this may belong to an import still running.
	DefaultCollectGrace = 30 * time.Minute
	// DefaultCollectSites bounds the sites one run collects; the rest keep
	// their mark for the next run.
	DefaultCollectSites = 1000
	// DefaultCollectConcurrency bounds the sites collected at once.
	DefaultCollectConcurrency = 4
)

// catalogCollector is what the collector needs of the catalog store.
type catalogCollector interface {
	Head(ctx context.Context, site string) (catalog.Version, error)
	Versions(ctx context.Context, site string) ([]uint64, error)
	Collect(ctx context.Context, site string, keep []uint64, grace time.Duration) (catalog.Collected, error)
}

// Collector settings of the Handler: the catalog garbage collection that
// the collect schedule runs. It is off when Catalog is nil.
type Collector struct {
	Catalog catalogCollector
	// Grace must exceed the longest import; default DefaultCollectGrace.
	Grace       time.Duration
	MaxSites    int
	Concurrency int
}

// CollectReport is what one collection run did.
type CollectReport struct {
	Sites    int  `json:"sites"`    // sites collected
	Failed   int  `json:"failed"`   // sites whose collection failed (marked again)
	More     bool `json:"more"`     // marked sites are left for the next run
	Versions int  `json:"versions"` // versions removed
	Shards   int  `json:"shards"`   // shard objects removed
}

// destState is what the collector read of one configured destination.
type destState struct {
	ack   uint64
	lease *syncjob.Lease // nil when none
}

// keepVersions returns the versions a collection must keep, in order:
// head, every acknowledged version (push diffs from it), and, for each
// destination whose lease has not expired at now, every existing version
// from the lease's version up (the running push may have read any of them
// as its head). Version 0, the empty catalog, is never stored; versions
// that do not exist are left out.
func keepVersions(head uint64, dests []destState, existing []uint64, now time.Time) []uint64 {
	exists := map[uint64]bool{}
	for _, v := range existing {
		exists[v] = true
	}
	keep := map[uint64]bool{head: true}
	for _, d := range dests {
		keep[d.ack] = true
		if d.lease != nil && !d.lease.Expired(now) {
			for _, v := range existing {
				if v >= d.lease.Version {
					keep[v] = true
				}
			}
		}
	}
	var out []uint64
	for v := range keep {
		if v != 0 && exists[v] {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// collect visits the sites marked for collection, at most MaxSites of
// them, a few at once; a site that fails is marked again and the others go
// on.
func (h *Handler) collect(ctx context.Context, now time.Time) (CollectReport, error) {
	var rep CollectReport
	c := h.Collector
	if c.Catalog == nil {
		return rep, errors.New("collect: the catalog collector is not configured")
	}
	limit := c.MaxSites
	if limit <= 0 {
		limit = DefaultCollectSites
	}
	// Read the marks before deleting any (see planSync).
	var sites []string
	var token *string
	for {
		out, err := h.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(h.StoreBucket), Prefix: aws.String(layout.CollectPrefix),
			ContinuationToken: token, MaxKeys: aws.Int32(int32(min(limit-len(sites)+1, dirtyPage)))})
		if err != nil {
			return rep, fmt.Errorf("list %s/%s: %w", h.StoreBucket, layout.CollectPrefix, err)
		}
		for _, obj := range out.Contents {
			name := strings.TrimPrefix(aws.ToString(obj.Key), layout.CollectPrefix)
			if layout.ValidateSite(name) == nil {
				sites = append(sites, name)
			}
		}
		if len(sites) > limit || !aws.ToBool(out.IsTruncated) {
			break
		}
		token = out.NextContinuationToken
	}
	if len(sites) > limit {
		rep.More = true
		sites = sites[:limit]
	}
	n := c.Concurrency
	if n <= 0 {
		n = DefaultCollectConcurrency
	}
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, name := range sites {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := h.collectSite(ctx, name, now)
			mu.Lock()
			defer mu.Unlock()
			rep.Versions += got.Versions
			rep.Shards += got.Shards
			if err != nil {
				rep.Failed++
				errs = append(errs, err)
				return
			}
			rep.Sites++
		}()
	}
	wg.Wait()
	return rep, errors.Join(errs...)
}

// collectSite deletes the site's collect mark first, so that a commit
// during the collection marks it again, then collects; on failure the mark
// is put back.
func (h *Handler) collectSite(ctx context.Context, name string, now time.Time) (catalog.Collected, error) {
	log := h.Logger.With("site", name)
	if _, err := h.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.CollectKey(name))}); err != nil {
		return catalog.Collected{}, h.markCollect(ctx, name, fmt.Errorf("site %s: clear collect mark: %w", name, err))
	}
	keep, err := h.siteKeep(ctx, name, now)
	if err != nil {
		return catalog.Collected{}, h.markCollect(ctx, name, fmt.Errorf("site %s: collect: %w", name, err))
	}
	grace := h.Collector.Grace
	if grace <= 0 {
		grace = DefaultCollectGrace
	}
	got, err := h.Collector.Catalog.Collect(ctx, name, keep, grace)
	if err != nil {
		return got, h.markCollect(ctx, name, fmt.Errorf("site %s: %w", name, err))
	}
	log.Info("catalog collected", "kept", keep, "versions", got.Versions, "shards", got.Shards)
	h.Metrics.Emit(map[string]string{metrics.DimSite: name},
		metrics.CountOf(metrics.VersionsCollected, got.Versions), metrics.CountOf(metrics.ShardsCollected, got.Shards))
	return got, nil
}

// siteKeep reads, in this order, the head, then each configured
// destination's lease, then its acknowledgement, then the versions that
// exist. The order matters: a push planned after its lease was read reads
// a head at least as new as ours, which Collect keeps as newer than the
// newest kept; a push that acknowledges after its lease was read is seen
// holding the lease; one that released it before had already acknowledged.
func (h *Handler) siteKeep(ctx context.Context, name string, now time.Time) ([]uint64, error) {
	head, err := h.Collector.Catalog.Head(ctx, name)
	if err != nil {
		return nil, err
	}
	cfg, err := site.Load(ctx, h.S3, h.StoreBucket, name)
	if err != nil && !errors.Is(err, site.ErrNotFound) {
		return nil, err
	}
	jobs := &syncjob.Store{S3: h.S3, Bucket: h.StoreBucket}
	var dests []destState
	for _, d := range cfg.Destinations {
		var st destState
		l, _, found, err := jobs.Lease(ctx, name, d.Name)
		if err != nil {
			return nil, err
		}
		if found {
			st.lease = &l
		}
		ack, err := jobs.Ack(ctx, name, d.Name)
		if err != nil {
			return nil, err
		}
		st.ack = ack.Version
		dests = append(dests, st)
	}
	existing, err := h.Collector.Catalog.Versions(ctx, name)
	if err != nil {
		return nil, err
	}
	keep := keepVersions(head.Version, dests, existing, now)
	for i, d := range dests {
		if d.ack != 0 && !slices.Contains(existing, d.ack) {
			h.Logger.Warn("destination acknowledged a version that no longer exists", "site", name,
				"destination", cfg.Destinations[i].Name, "version", d.ack)
		}
	}
	return keep, nil
}

// markCollect puts the site's collect mark back so a later run visits it.
func (h *Handler) markCollect(ctx context.Context, name string, cause error) error {
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.CollectKey(name)), Body: strings.NewReader("{}")}); err != nil {
		return errors.Join(cause, fmt.Errorf("site %s: restore collect mark: %w", name, err))
	}
	return cause
}
