package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/feed"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// objectAPI is what the importer needs of S3.
type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// queueAPI is what the importer needs of SQS.
type queueAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// catalogStore is what the importer needs of the catalog.
type catalogStore interface {
	Head(ctx context.Context, site string) (catalog.Version, error)
	Stage(ctx context.Context, site string, base catalog.Version, deltas []catalog.Delta) (*catalog.Staged, error)
}

// Defaults of the importer's tunables.
const (
	DefaultRetryBudget = 5
	// maxGroup bounds the sequences of one group commit.
	maxGroup = 50
	// reserve is the invocation time kept back for the after-commit steps;
	// a group commit stops early rather than run into the timeout.
	reserve = 10 * time.Second
)

// Handler applies queued uploads to their site's catalog, strictly in
// sequence order (DESIGN.md "Ordering"). It is the only writer of catalog
// versions and of a site's halted state. Messages only wake it: the records
// and the catalog's appliedSeq decide what to apply.
type Handler struct {
	S3             objectAPI
	SQS            queueAPI
	Catalog        catalogStore
	Uploads        *uploads.Store
	StoreBucket    string
	ImportQueueURL string
	RetryBudget    int
	Logger         *slog.Logger
	// Now is the clock of timestamps in records (default time.Now).
	Now func() time.Time
	// Metrics receives the function's EMF metrics (none when nil).
	Metrics *metrics.Emitter
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// errTransient marks failures worth retrying (S3 or SQS trouble).
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// errHalt is a failure that stops the site until an operator redrives it.
type haltError struct {
	seq    uint64
	reason string
}

func (e haltError) Error() string { return fmt.Sprintf("sequence %d: %s", e.seq, e.reason) }

// badUploadError is a delta whose bytes are exactly what the client sent
// (the stored object's ETag is the one the copy stage received) but cannot
// be decoded: the client's file is at fault, so the upload is rejected and
// the site goes on.
type badUploadError struct {
	seq     uint64
	message string
}

func (e badUploadError) Error() string { return fmt.Sprintf("sequence %d: %s", e.seq, e.message) }

// Handle processes one FIFO batch. Messages are grouped by site; each site
// is advanced once, and its messages are acknowledged unless the advance
// failed for a transient reason, in which case the site's messages return
// (with a backoff) until the retry budget is spent and the site halts.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	var order []string
	bySite := map[string][]events.SQSMessage{}
	for _, m := range ev.Records {
		siteName := m.Attributes["MessageGroupId"]
		if _, err := messages.DecodeImport(m.Body); err != nil {
			log := h.Logger.With("site", siteName, "messageId", m.MessageId)
			if layout.ValidateSite(siteName) != nil {
				log.Error("undecodable import message without a site; acknowledged", "err", err, "alarm", "undecodable_message")
				continue
			}
			h.halt(ctx, siteName, haltError{reason: fmt.Sprintf("undecodable import message %s: %v", m.MessageId, err)}, log)
			continue
		}
		if _, seen := bySite[siteName]; !seen {
			order = append(order, siteName)
		}
		bySite[siteName] = append(bySite[siteName], m)
	}
	for _, siteName := range order {
		msgs := bySite[siteName]
		log := h.Logger.With("site", siteName)
		err := h.advance(ctx, siteName, log)
		var transient transientError
		if errors.As(err, &transient) {
			receives := receiveCount(msgs)
			budget := h.RetryBudget
			if budget == 0 {
				budget = DefaultRetryBudget
			}
			if receives >= budget {
				h.halt(ctx, siteName, haltError{reason: fmt.Sprintf("retry budget spent (%d attempts): %v", receives, err)}, log)
				continue
			}
			log.Warn("import failed; retrying with backoff", "attempt", receives, "err", err)
			h.backoff(ctx, msgs, receives, log)
			for _, m := range msgs {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			}
			continue
		}
		var halt haltError
		if errors.As(err, &halt) {
			h.halt(ctx, siteName, halt, log)
			continue
		}
		if err != nil {
			log.Error("import failed", "err", err)
			for _, m := range msgs {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			}
		}
	}
	return resp, nil
}

func receiveCount(msgs []events.SQSMessage) int {
	n := 0
	for _, m := range msgs {
		if c, err := strconv.Atoi(m.Attributes["ApproximateReceiveCount"]); err == nil && c > n {
			n = c
		}
	}
	return n
}

// backoff delays the messages' return: 2^attempt seconds, at most 15 min.
func (h *Handler) backoff(ctx context.Context, msgs []events.SQSMessage, attempt int, log *slog.Logger) {
	delay := int32(math.Min(math.Pow(2, float64(attempt)), 900))
	for _, m := range msgs {
		if _, err := h.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(h.ImportQueueURL),
			ReceiptHandle: aws.String(m.ReceiptHandle), VisibilityTimeout: delay}); err != nil {
			log.Warn("could not set the retry backoff", "messageId", m.MessageId, "err", err)
		}
	}
}

// halt stops the site: nothing later applies until `feedpipe redrive`.
func (h *Handler) halt(ctx context.Context, siteName string, why haltError, log *slog.Logger) {
	log.Error("site halted", "sequence", why.seq, "reason", why.reason, "alarm", "site_halted")
	h.Metrics.Emit(map[string]string{metrics.DimSite: siteName}, metrics.CountOf(metrics.SitesHalted, 1))
	st := site.State{Halted: true, Reason: why.reason, Sequence: why.seq, Since: h.now()}
	if err := site.SaveState(ctx, h.S3, h.StoreBucket, siteName, st); err != nil {
		log.Error("could not record the halt; the site stays blocked by its failing sequence", "err", err)
	}
}

// planned is one sequence of a group commit.
type planned struct {
	rec   uploads.Record
	etag  string // of rec as stored: its next write skips the read
	apply bool   // false: resolved without data (expired, cancelled, rejected)
	stats feed.Stats
	errs  []feed.LineError
}

// advance applies appliedSeq+1 and every contiguous successor already
// queued or resolved, in group commits, until a gap, the end, or the
// invocation's time runs low (then the site is woken to go on).
func (h *Handler) advance(ctx context.Context, siteName string, log *slog.Logger) error {
	state, err := site.LoadState(ctx, h.S3, h.StoreBucket, siteName)
	if err != nil {
		return transientError{err}
	}
	if state.Halted {
		log.Warn("site is halted; nothing applies until redrive", "reason", state.Reason)
		return nil
	}
	cfg, err := site.Load(ctx, h.S3, h.StoreBucket, siteName)
	if err != nil && !errors.Is(err, site.ErrNotFound) {
		return transientError{err}
	}
	cfg = cfg.Limits()
	// committed is the version this invocation committed last: the head to
	// plan on next, whose sequences are all marked imported already. Should
	// another importer have moved past it, the next commit on it conflicts
	// and the loop reads the head again.
	var committed *catalog.Version
	for {
		if h.timeLow(ctx) {
			log.Info("stopping a group commit early; waking the site to go on")
			return wrapTransient(messages.Send(ctx, h.SQS, h.ImportQueueURL, messages.Import{Kind: messages.KindWake, Site: siteName, Reason: "continue"}))
		}
		var head catalog.Version
		if committed != nil {
			head = *committed
		} else if head, err = h.Catalog.Head(ctx, siteName); err != nil {
			return transientError{err}
		}
		group, err := h.plan(ctx, siteName, head.AppliedSeq)
		if err != nil {
			return err
		}
		if committed == nil {
			if err := h.finishApplied(ctx, siteName, head, log); err != nil {
				return err
			}
		}
		if len(group) == 0 {
			return nil
		}
		committed, err = h.commit(ctx, siteName, cfg, head, group, log)
		if err != nil {
			return err
		}
		// committed == nil: lost a race with another importer; re-read the
		// head and go on.
	}
}

func wrapTransient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

func (h *Handler) timeLow(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < reserve
}

// plan lists the contiguous sequences after applied that can go in the next
// group commit: queued or importing ones to apply, resolved ones to pass.
func (h *Handler) plan(ctx context.Context, siteName string, applied uint64) ([]*planned, error) {
	var group []*planned
	for seq := applied + 1; len(group) < maxGroup; seq++ {
		rec, etag, err := h.Uploads.Get(ctx, siteName, seq)
		if errors.Is(err, uploads.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, transientError{err}
		}
		switch rec.State {
		case uploads.Queued, uploads.Importing:
			// A full upload is a group of its own, so its guard is judged
			// against the catalog it would replace.
			if rec.Mode == uploads.Full && len(group) > 0 {
				return group, nil
			}
			group = append(group, &planned{rec: rec, etag: etag, apply: true})
			if rec.Mode == uploads.Full {
				return group, nil
			}
		case uploads.Expired, uploads.Cancelled, uploads.Rejected:
			group = append(group, &planned{rec: rec, etag: etag})
		default:
			// awaiting_upload or received: the gap; imported: another
			// importer is ahead of the head we read.
			return group, nil
		}
	}
	return group, nil
}

// finishApplied redoes the idempotent after-commit steps for sequences the
// catalog already holds whose records did not reach imported (a crash
// between commit and status write).
func (h *Handler) finishApplied(ctx context.Context, siteName string, head catalog.Version, log *slog.Logger) error {
	if head.AppliedSeq == 0 {
		return nil
	}
	for seq := head.AppliedSeq; seq > 0 && head.AppliedSeq-seq < maxGroup; seq-- {
		rec, etag, err := h.Uploads.Get(ctx, siteName, seq)
		if err != nil {
			return transientError{err}
		}
		if rec.State == uploads.Imported {
			return nil
		}
		if rec.State != uploads.Queued && rec.State != uploads.Importing {
			continue // resolved without data; an earlier sequence may still need its status
		}
		if err := h.markImported(ctx, rec, etag, head.Version); err != nil {
			return err
		}
		log.Info("finished an applied sequence's status", "sequence", seq)
	}
	return nil
}

// commit stages the group on head and commits it. It returns the version it
// committed, or nil when another importer committed first.
func (h *Handler) commit(ctx context.Context, siteName string, cfg site.Config, head catalog.Version, group []*planned, log *slog.Logger) (*catalog.Version, error) {
	now := h.now()
	for _, p := range group {
		if !p.apply || p.rec.State == uploads.Importing {
			continue
		}
		rec, etag, err := h.Uploads.UpdateFrom(ctx, p.rec, p.etag, func(r *uploads.Record) error {
			if r.State != uploads.Queued {
				return uploads.ErrUnchanged
			}
			return r.Move(uploads.Importing, now)
		})
		if err != nil {
			return nil, transientError{err}
		}
		p.rec, p.etag = rec, etag
	}
	for attempt := 0; ; attempt++ {
		var deltas []catalog.Delta
		for _, p := range group {
			if p.apply {
				deltas = append(deltas, h.delta(ctx, p, cfg))
			}
		}
		staged, err := h.Catalog.Stage(ctx, siteName, head, deltas)
		var bad badUploadError
		if errors.As(err, &bad) {
			if err := h.rejectUndecodable(ctx, siteName, group, bad, log); err != nil {
				return nil, err
			}
			continue // stage again without it
		}
		if err != nil {
			var halt haltError
			if errors.As(err, &halt) {
				return nil, halt
			}
			return nil, transientError{fmt.Errorf("stage sequences %d-%d: %w", group[0].rec.Sequence, group[len(group)-1].rec.Sequence, err)}
		}
		rejected, err := h.judge(ctx, siteName, cfg, head, group, staged, log)
		if err != nil {
			_ = staged.Discard()
			return nil, err
		}
		if rejected && attempt < len(group) {
			_ = staged.Discard()
			continue // stage again without the rejected deltas
		}
		last := group[len(group)-1].rec.Sequence
		v, err := staged.Commit(ctx, last)
		if errors.Is(err, catalog.ErrConflict) {
			log.Info("another importer committed first; re-reading", "base", head.Version)
			return nil, nil
		}
		if err != nil {
			return nil, transientError{fmt.Errorf("commit sequences through %d: %w", last, err)}
		}
		log.Info("catalog committed", "version", v.Version, "appliedSeq", v.AppliedSeq, "products", v.Products, "sequences", len(group))
		for _, p := range group {
			if p.apply {
				if err := h.markImported(ctx, p.rec, p.etag, v.Version); err != nil {
					return nil, err
				}
				h.emitApplied(siteName, p.rec)
			}
		}
		if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.SyncDirtyKey(siteName)), Body: strings.NewReader("{}")}); err != nil {
			return nil, transientError{fmt.Errorf("mark %s dirty for sync: %w", siteName, err)}
		}
		if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.CollectKey(siteName)), Body: strings.NewReader("{}")}); err != nil {
			return nil, transientError{fmt.Errorf("mark %s for catalog collection: %w", siteName, err)}
		}
		return &v, nil
	}
}

// judge checks each staged delta against the error budget, emptiness and
// the full-upload guard, rejects those that fail (their data never
// applies), and writes the counts of the rest into their records before the
// commit makes them visible. It reports whether any delta was rejected.
func (h *Handler) judge(ctx context.Context, siteName string, cfg site.Config, head catalog.Version, group []*planned, staged *catalog.Staged, log *slog.Logger) (bool, error) {
	counts := staged.Counts()
	i := 0
	rejected := false
	before := head.Products // a full upload is alone in its group
	for _, p := range group {
		if !p.apply {
			continue
		}
		c := counts[i]
		i++
		reason, message := "", ""
		switch {
		case feed.BudgetExceeded(p.stats, cfg.Strict):
			reason, message = uploads.ReasonErrorBudget, fmt.Sprintf("%d of %d lines were rejected, over the site's error budget", p.stats.Rejected, p.stats.Lines)
		case p.stats.Lines == 0 && p.rec.Mode != uploads.Full:
			reason, message = uploads.ReasonEmpty, "the file holds no lines"
		case p.rec.Mode == uploads.Full:
			// An empty full file is the "0 products imported" incident: held
			// by the guard below like any full upload that leaves nothing,
			// and applied (emptying the catalog) only with allowEmpty.
			ratio := cfg.MaxFullDeleteRatio
			if p.rec.MaxFullDeleteRatio != nil {
				ratio = *p.rec.MaxFullDeleteRatio
			}
			if staged.Products() == 0 && !p.rec.AllowEmpty {
				reason, message = uploads.ReasonImplausibleFull, "the full upload would leave the catalog with 0 products; create it with allowEmpty to mean it"
			} else if before > 0 && float64(c.Deleted)/float64(before) > ratio && !p.rec.AllowEmpty {
				reason, message = uploads.ReasonImplausibleFull, fmt.Sprintf("the full upload would delete %d of %d products (over %.0f %%); create it with a higher maxFullDeleteRatio to mean it", c.Deleted, before, ratio*100)
			}
		}
		if reason != "" {
			rejected = true
			p.apply = false
			log.Warn("upload rejected", "sequence", p.rec.Sequence, "reason", reason, "message", message, "alarm", alarmFor(reason))
			h.Metrics.Emit(map[string]string{metrics.DimSite: siteName}, metrics.CountOf(metricFor(reason), 1))
			rec, etag, err := h.Uploads.UpdateFrom(ctx, p.rec, p.etag, func(r *uploads.Record) error {
				if r.State != uploads.Importing {
					return uploads.ErrUnchanged
				}
				r.Counts = &uploads.Counts{Lines: p.stats.Lines, Rejected: p.stats.Rejected}
				r.Errors = lineErrors(p.errs)
				return r.Reject(reason, message, h.now())
			})
			if err != nil {
				return false, transientError{err}
			}
			p.rec, p.etag = rec, etag
			continue
		}
		rec, etag, err := h.Uploads.UpdateFrom(ctx, p.rec, p.etag, func(r *uploads.Record) error {
			if r.State != uploads.Importing {
				return uploads.ErrUnchanged
			}
			r.Counts = &uploads.Counts{Lines: p.stats.Lines, Upserted: c.Upserted, Deleted: c.Deleted, Unchanged: c.Unchanged, Rejected: p.stats.Rejected}
			r.Errors = lineErrors(p.errs)
			return nil
		})
		if err != nil {
			return false, transientError{err}
		}
		p.rec, p.etag = rec, etag
	}
	return rejected, nil
}

func alarmFor(reason string) string {
	if reason == uploads.ReasonImplausibleFull {
		return "full_upload_held"
	}
	return "upload_rejected"
}

func metricFor(reason string) string {
	if reason == uploads.ReasonImplausibleFull {
		return metrics.FullUploadsHeld
	}
	return metrics.UploadsRejected
}

func lineErrors(errs []feed.LineError) []uploads.LineError {
	out := make([]uploads.LineError, 0, len(errs))
	for _, e := range errs {
		out = append(out, uploads.LineError{Line: e.Line, Code: e.Code, Reason: e.Reason})
	}
	return out
}

// delta streams one stored upload into the catalog. A missing or unreadable
// stored object halts the site: it is never applied as an empty delta.
func (h *Handler) delta(ctx context.Context, p *planned, cfg site.Config) catalog.Delta {
	enc, _ := layout.ParseEncoding(p.rec.ContentEncoding)
	key := layout.Import{Site: p.rec.Site, Sequence: p.rec.Sequence, UploadID: p.rec.UploadID, Encoding: enc}.Key()
	return catalog.Delta{
		Sequence: p.rec.Sequence,
		Full:     p.rec.Mode == uploads.Full,
		Ops: func(yield func(catalog.Op) error) error {
			out, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(key)})
			if uploads.IsNotFound(err) {
				return haltError{seq: p.rec.Sequence, reason: fmt.Sprintf("the stored upload %s is missing; it was queued but cannot be imported", key)}
			}
			if err != nil {
				return transientError{fmt.Errorf("read %s: %w", key, err)}
			}
			defer out.Body.Close()
			r, err := feed.NewReader(out.Body, enc, feed.Options{Full: p.rec.Mode == uploads.Full})
			if err != nil {
				return h.undecodable(ctx, p.rec, key, err)
			}
			defer r.Close()
			var arena productArena
			for {
				line, err := r.Next()
				if err == io.EOF {
					break
				}
				if errors.Is(err, feed.ErrCorrupt) {
					return h.undecodable(ctx, p.rec, key, err)
				}
				if err != nil {
					return transientError{fmt.Errorf("read %s: %w", key, err)}
				}
				op := catalog.Op{ID: line.ID, Delete: line.Op == feed.OpDelete}
				if !op.Delete {
					op.Product = arena.copy(line.Product)
				}
				if err := yield(op); err != nil {
					return err
				}
			}
			p.stats, p.errs = r.Stats(), r.Errors()
			return nil
		},
	}
}

// productArena copies products into shared chunks, one allocation per
// chunk instead of one per product. A chunk stays alive while any product in
// it does, so its size bounds the memory held beyond the products Stage
// keeps (it spills the rest).
type productArena struct{ chunk []byte }

const arenaChunk = 256 << 10

func (a *productArena) copy(p []byte) []byte {
	if len(p) > arenaChunk/8 {
		return append([]byte(nil), p...)
	}
	if cap(a.chunk)-len(a.chunk) < len(p) {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	n := len(a.chunk)
	a.chunk = append(a.chunk, p...)
	return a.chunk[n:len(a.chunk):len(a.chunk)]
}

// emitApplied emits the metrics of one applied delta; ImportLag runs from
// the record's received time (the S3 event time of its PUT) to now.
func (h *Handler) emitApplied(siteName string, rec uploads.Record) {
	c := rec.Counts
	if c == nil {
		c = &uploads.Counts{}
	}
	vals := []metrics.Value{metrics.CountOf(metrics.DeltasApplied, 1), metrics.CountOf(metrics.ProductsUpserted, int(c.Upserted)),
		metrics.CountOf(metrics.ProductsDeleted, int(c.Deleted)), metrics.CountOf(metrics.ProductsRejected, int(c.Rejected))}
	if at, ok := rec.Timestamps[uploads.Received]; ok {
		vals = append(vals, metrics.Millis(metrics.ImportLag, h.now().Sub(at)))
	}
	h.Metrics.Emit(map[string]string{metrics.DimSite: siteName}, vals...)
}

// markImported finishes a sequence: imported, with its catalog version.
// rec and etag are the record as last read or written.
func (h *Handler) markImported(ctx context.Context, rec uploads.Record, etag string, version uint64) error {
	_, _, err := h.Uploads.UpdateFrom(ctx, rec, etag, func(r *uploads.Record) error {
		switch r.State {
		case uploads.Queued:
			if err := r.Move(uploads.Importing, h.now()); err != nil {
				return err
			}
		case uploads.Importing:
		default:
			return uploads.ErrUnchanged
		}
		r.CatalogVersion = version
		return r.Move(uploads.Imported, h.now())
	})
	if err != nil {
		return transientError{err}
	}
	return nil
}

// undecodable decides what a stored upload that cannot be decoded means. If
// its ETag is the one the copy stage received and verified, the client sent
// a broken file: the upload is rejected (bad_encoding) and the site goes on.
// Otherwise the stored data is not what was received — storage trouble, not
// the client's — and the site halts, never importing it as empty.
func (h *Handler) undecodable(ctx context.Context, rec uploads.Record, key string, cause error) error {
	head, err := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(key)})
	if err == nil && rec.ReceivedETag != "" && strings.Trim(aws.ToString(head.ETag), `"`) == rec.ReceivedETag {
		return badUploadError{seq: rec.Sequence, message: fmt.Sprintf("the file cannot be decoded as %s: %v", rec.ContentEncoding, cause)}
	}
	return haltError{seq: rec.Sequence, reason: fmt.Sprintf("the stored upload %s is unreadable: %v", key, cause)}
}

// rejectUndecodable rejects the delta a badUploadError names and takes it
// out of the group.
func (h *Handler) rejectUndecodable(ctx context.Context, siteName string, group []*planned, bad badUploadError, log *slog.Logger) error {
	for _, p := range group {
		if p.rec.Sequence != bad.seq || !p.apply {
			continue
		}
		p.apply = false
		log.Warn("upload rejected", "sequence", bad.seq, "reason", uploads.ReasonBadEncoding, "message", bad.message, "alarm", "upload_rejected")
		h.Metrics.Emit(map[string]string{metrics.DimSite: siteName}, metrics.CountOf(metrics.UploadsRejected, 1))
		rec, err := h.Uploads.Update(ctx, siteName, bad.seq, func(r *uploads.Record) error {
			if r.State != uploads.Importing {
				return uploads.ErrUnchanged
			}
			return r.Reject(uploads.ReasonBadEncoding, bad.message, h.now())
		})
		if err != nil {
			return transientError{err}
		}
		p.rec = rec
		return nil
	}
	return haltError{seq: bad.seq, reason: "an undecodable delta is not in its group: " + bad.message}
}
