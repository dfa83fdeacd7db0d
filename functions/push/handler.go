package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// Defaults of the push function.
const (
	DefaultMaxBatchBytes = 1 << 20
	DefaultMaxBatchLines = 500
	// DefaultLeaseTTL matches the planner's: a job retrying a failing
	// destination keeps its lease this long past its next attempt.
	DefaultLeaseTTL = 30 * time.Minute
	maxVisibility   = 12 * time.Hour // SQS's limit
)

type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

type visibilityAPI interface {
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

type catalogAPI interface {
	Head(ctx context.Context, site string) (catalog.Version, error)
	Load(ctx context.Context, site string, v uint64) (catalog.Version, error)
	Diff(ctx context.Context, site string, from, to catalog.Version, yield func(catalog.Change) error) error
}

// Handler is the push function: it delivers a destination's catalog changes
// since its acknowledged version, one sync job at a time per destination.
type Handler struct {
	S3 objectAPI
	// DestS3 writes s3 destinations (default: S3, when it can).
	DestS3 destAPI
	// OwnBuckets are feedpipe's buckets besides StoreBucket (the incoming
	// bucket); no s3 destination may name one of them.
	OwnBuckets []string
	// PartSize is the multipart part size of s3 destination files.
	PartSize     int
	SQS          visibilityAPI
	Catalog      catalogAPI
	StoreBucket  string
	SyncQueueURL string
	HTTP         *http.Client
	// AllowLoopbackHTTP allows http:// webhooks to loopback (dev stack).
	AllowLoopbackHTTP bool
	MaxBatchBytes     int
	MaxBatchLines     int
	LeaseTTL          time.Duration
	Now               func() time.Time
	Logger            *slog.Logger
	// Metrics receives the function's EMF metrics (none when nil).
	Metrics *metrics.Emitter
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// Handle delivers each job of the batch. Jobs of different destinations run
// at once; a failed job, and the rest of its message group in the batch, is
// reported failed after its visibility was set to the retry delay.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	type group struct{ msgs []events.SQSMessage }
	var order []string
	groups := map[string]*group{}
	for _, m := range ev.Records {
		g := m.Attributes["MessageGroupId"]
		if job, err := messages.DecodeSyncJob(m.Body); err == nil {
			g = job.GroupID()
		}
		if groups[g] == nil {
			groups[g] = &group{}
			order = append(order, g)
		}
		groups[g].msgs = append(groups[g].msgs, m)
	}
	var mu sync.Mutex
	var resp events.SQSEventResponse
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, name := range order {
		g := groups[name]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for i, m := range g.msgs {
				if err := h.handleMessage(ctx, m); err != nil {
					mu.Lock()
					for _, rest := range g.msgs[i:] {
						resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rest.MessageId})
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return resp, nil
}

// handleMessage pushes one job; a non-nil error means the message stays.
func (h *Handler) handleMessage(ctx context.Context, m events.SQSMessage) error {
	job, err := messages.DecodeSyncJob(m.Body)
	if err != nil {
		// Nothing can ever deliver it; its lease, if any, expires and the
		// planner plans the destination again.
		h.Logger.Error("dropping an undecodable sync job", "messageId", m.MessageId, "err", err)
		return nil
	}
	log := h.Logger.With("site", job.Site, "destination", job.Destination, "job", job.JobID)
	err = h.push(ctx, job, log)
	dims := map[string]string{metrics.DimSite: job.Site, metrics.DimDestination: job.Destination}
	if n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"]); n > 1 {
		h.Metrics.Emit(dims, metrics.CountOf(metrics.PushRetries, 1))
	}
	if err == nil {
		return nil
	}
	h.Metrics.Emit(dims, metrics.CountOf(metrics.PushFailures, 1))
	delay := h.backoff(m, err)
	log.Warn("sync push failed; retrying later", "err", err, "retryIn", delay.String())
	if _, verr := h.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(h.SyncQueueURL),
		ReceiptHandle: aws.String(m.ReceiptHandle), VisibilityTimeout: int32(delay / time.Second)}); verr != nil {
		log.Warn("could not change the job's visibility", "err", verr)
	}
	// Keep the lease while the job waits, so the planner does not queue a
	// second job behind it; a lost job still frees it once it expires.
	ttl := h.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	leases := &syncjob.Store{S3: h.S3, Bucket: h.StoreBucket}
	if lerr := leases.ExtendLease(ctx, job.Site, job.Destination, job.JobID, h.now().Add(delay+ttl)); lerr != nil && !errors.Is(lerr, syncjob.ErrHeld) {
		log.Warn("could not extend the lease", "err", lerr)
	}
	return err
}

// backoff is Retry-After when the destination gave one, else exponential in
// the receive count: 30 s, 1 min, 2 min, … up to 15 min (1 h for a
// destination that cannot work until its configuration changes).
func (h *Handler) backoff(m events.SQSMessage, err error) time.Duration {
	var re *retryError
	if errors.As(err, &re) && re.after >= 0 {
		return min(re.after, maxVisibility)
	}
	if errors.Is(err, errPermanent) {
		return time.Hour
	}
	n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
	d := 30 * time.Second
	for i := 1; i < n && d < 15*time.Minute; i++ {
		d *= 2
	}
	return min(d, 15*time.Minute)
}

// errPermanent marks failures that retrying soon cannot fix.
var errPermanent = errors.New("destination cannot be delivered to")

// push delivers ack → head to the destination, then records the ack and
// releases the lease. Nothing is recorded unless every batch was accepted.
func (h *Handler) push(ctx context.Context, job messages.SyncJob, log *slog.Logger) error {
	leases := &syncjob.Store{S3: h.S3, Bucket: h.StoreBucket}
	cfg, err := site.Load(ctx, h.S3, h.StoreBucket, job.Site)
	if errors.Is(err, site.ErrNotFound) {
		log.Warn("site is gone; dropping its sync job")
		return leases.ReleaseLease(ctx, job.Site, job.Destination, job.JobID)
	}
	if err != nil {
		return err
	}
	var dest *site.Destination
	for i := range cfg.Destinations {
		if cfg.Destinations[i].Name == job.Destination {
			dest = &cfg.Destinations[i]
		}
	}
	if dest == nil {
		log.Warn("destination was removed; dropping its sync job")
		return leases.ReleaseLease(ctx, job.Site, job.Destination, job.JobID)
	}
	ack, err := leases.Ack(ctx, job.Site, job.Destination)
	if err != nil {
		return err
	}
	head, err := h.Catalog.Head(ctx, job.Site)
	if err != nil {
		return err
	}
	if ack.Version < head.Version {
		h.Metrics.Emit(map[string]string{metrics.DimSite: job.Site, metrics.DimDestination: job.Destination},
			metrics.CountOf(metrics.DestinationBacklog, int(head.Version-ack.Version)))
		from, err := h.Catalog.Load(ctx, job.Site, ack.Version)
		if err != nil {
			return err
		}
		var n int
		switch dest.Type {
		case "webhook":
			n, err = h.deliverWebhook(ctx, job, *dest, from, head)
		case "s3":
			n, err = h.deliverS3(ctx, job, *dest, from, head)
		default:
			err = fmt.Errorf("%w: unknown destination type %q", errPermanent, dest.Type)
		}
		if err != nil {
			if errors.Is(err, errPermanent) {
				log.Error("destination refused; fix its configuration", "type", dest.Type, "err", err)
			}
			return err
		}
		if err := leases.SaveAck(ctx, syncjob.Ack{Site: job.Site, Destination: job.Destination, Version: head.Version,
			PlannedAt: job.PlannedAt, AckedAt: h.now()}); err != nil {
			return err
		}
		// The versions before the new ack may now be collectable.
		if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.CollectKey(job.Site)),
			Body: strings.NewReader("{}")}); err != nil {
			log.Warn("could not mark the site for catalog collection", "err", err)
		}
		log.Info("sync delivered", "from", ack.Version, "to", head.Version, "changes", n)
		h.Metrics.Emit(map[string]string{metrics.DimSite: job.Site, metrics.DimDestination: job.Destination},
			metrics.CountOf(metrics.PushDeliveries, 1), metrics.CountOf(metrics.DestinationBacklog, 0))
	}
	if err := leases.ReleaseLease(ctx, job.Site, job.Destination, job.JobID); err != nil {
		log.Warn("could not release the lease; it expires on its own", "err", err)
	}
	return nil
}

// line is one NDJSON line of a webhook batch.
type line struct {
	Op      string          `json:"op"`
	ID      string          `json:"id"`
	Product json.RawMessage `json:"product,omitempty"`
}

// deliverWebhook streams the diff into size-bounded NDJSON batches, posting
// each as it fills; it returns the number of changes delivered.
func (h *Handler) deliverWebhook(ctx context.Context, job messages.SyncJob, d site.Destination, from, to catalog.Version) (int, error) {
	if err := checkURL(d.URL, h.AllowLoopbackHTTP); err != nil {
		return 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	if len(d.Secrets) == 0 {
		return 0, fmt.Errorf("%w: webhook has no signing secret", errPermanent)
	}
	maxBytes, maxLines := h.MaxBatchBytes, h.MaxBatchLines
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBatchBytes
	}
	if maxLines <= 0 {
		maxLines = DefaultMaxBatchLines
	}
	var buf bytes.Buffer
	lines, batch, total := 0, 0, 0
	flush := func() error {
		if lines == 0 {
			return nil
		}
		key := fmt.Sprintf("%s.%d.%d", job.Site, to.Version, batch)
		if err := post(ctx, h.HTTP, d.URL, d.Secrets, h.now(), key, buf.Bytes()); err != nil {
			return fmt.Errorf("batch %d: %w", batch, err)
		}
		batch++
		buf.Reset()
		lines = 0
		return nil
	}
	err := h.Catalog.Diff(ctx, job.Site, from, to, func(c catalog.Change) error {
		b, err := changeLine(c, d.Fields)
		if err != nil {
			return err
		}
		if lines > 0 && (buf.Len()+len(b)+1 > maxBytes || lines >= maxLines) {
			if err := flush(); err != nil {
				return err
			}
		}
		buf.Write(b)
		buf.WriteByte('\n')
		lines++
		total++
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, flush()
}

// selectFields keeps only the listed top-level keys of a product (all of
// them when fields is empty).
func selectFields(product []byte, fields []string) (json.RawMessage, error) {
	if len(fields) == 0 {
		return product, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(product, &all); err != nil {
		return nil, err
	}
	kept := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		if v, ok := all[f]; ok {
			kept[f] = v
		}
	}
	return json.Marshal(kept)
}
