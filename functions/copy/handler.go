package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// objectAPI is what the copy stage needs of S3.
type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

type sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Handler moves uploads from the incoming bucket to the store bucket and
// queues them for import, in the order of DESIGN.md "Flow": claim the
// sequence (received) → check → copy → verify → queued → send to the import
// FIFO queue → delete the incoming object. Each step is idempotent, so a
// crash or a duplicate event at any point ends in the same state.
type Handler struct {
	S3             objectAPI
	SQS            sender
	Uploads        *uploads.Store
	IncomingBucket string
	StoreBucket    string
	ImportQueueURL string
	Logger         *slog.Logger
	// Metrics receives the function's EMF metrics (none when nil).
	Metrics *metrics.Emitter
}

// Handle processes a batch of S3 notifications from the copy queue. A
// message whose upload could not be handled for a transient reason is
// reported as failed and comes back; everything else is acknowledged.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, msg := range ev.Records {
		if err := h.message(ctx, msg); err != nil {
			h.Logger.Error("copy failed; the message will be retried", "messageId", msg.MessageId, "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
		}
	}
	return resp, nil
}

func (h *Handler) message(ctx context.Context, msg events.SQSMessage) error {
	var probe struct {
		Event string `json:"Event"`
	}
	if json.Unmarshal([]byte(msg.Body), &probe) == nil && probe.Event == "s3:TestEvent" {
		return nil
	}
	var ev events.S3Event
	if err := json.Unmarshal([]byte(msg.Body), &ev); err != nil || len(ev.Records) == 0 {
		h.Logger.Warn("ignoring a copy queue message that is not an S3 event", "messageId", msg.MessageId, "body", truncate(msg.Body, 200))
		return nil
	}
	var errs []error
	for _, rec := range ev.Records {
		if !strings.HasPrefix(rec.EventName, "ObjectCreated:") {
			continue
		}
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			h.Logger.Warn("ignoring an event with a badly encoded key", "key", rec.S3.Object.Key)
			continue
		}
		if rec.S3.Bucket.Name != h.IncomingBucket {
			h.Logger.Warn("ignoring an event of another bucket", "bucket", rec.S3.Bucket.Name, "key", key)
			continue
		}
		in, err := layout.ParseIncoming(key)
		if err != nil {
			h.Logger.Warn("ignoring an object that no upload created", "key", key, "err", err)
			continue
		}
		at := rec.EventTime.UTC()
		if at.IsZero() {
			at = time.Now().UTC()
		}
		if err := h.upload(ctx, in, at, h.Logger.With("site", in.Site, "sequence", in.Sequence, "uploadId", in.UploadID)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// upload drives one uploaded object as far as its record allows.
func (h *Handler) upload(ctx context.Context, in layout.Incoming, at time.Time, log *slog.Logger) error {
	rec, _, err := h.Uploads.Get(ctx, in.Site, in.Sequence)
	if errors.Is(err, uploads.ErrNotFound) {
		log.Warn("ignoring an object whose sequence has no upload record")
		return nil
	}
	if err != nil {
		return err
	}
	if rec.UploadID != in.UploadID {
		log.Warn("ignoring an object whose upload id does not match its sequence's record", "recordUploadId", rec.UploadID)
		return nil
	}
	head, err := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.IncomingBucket), Key: aws.String(in.Key()), ChecksumMode: types.ChecksumModeEnabled})
	incomingGone := uploads.IsNotFound(err)
	if err != nil && !incomingGone {
		return fmt.Errorf("head incoming object: %w", err)
	}

	// 1. Claim the sequence, or note a late upload.
	rec, err = h.Uploads.Update(ctx, in.Site, in.Sequence, func(r *uploads.Record) error {
		switch r.State {
		case uploads.AwaitingUpload:
			if incomingGone {
				return uploads.ErrUnchanged // a stale duplicate event; nothing to claim
			}
			r.ReceivedSize = aws.ToInt64(head.ContentLength)
			r.ReceivedETag = strings.Trim(aws.ToString(head.ETag), `"`)
			return r.Move(uploads.Received, at)
		case uploads.Expired, uploads.Cancelled:
			if r.LateUpload != nil || incomingGone {
				return uploads.ErrUnchanged
			}
			// The state stays as it is; the object is kept for the
			// retention period, not applied.
			r.LateUpload = &uploads.LateUpload{At: at, Reason: uploads.ReasonLateUpload}
			return nil
		default:
			return uploads.ErrUnchanged
		}
	})
	if err != nil {
		return err
	}
	switch rec.State {
	case uploads.AwaitingUpload:
		return nil
	case uploads.Expired, uploads.Cancelled:
		if rec.LateUpload != nil {
			log.Warn("late upload kept, not applied", "state", rec.State)
		}
		return nil
	case uploads.Received:
		if incomingGone {
			// Claimed, then the object vanished before it was copied: only
			// possible if someone deleted it by hand. Keep retrying loudly.
			if _, err := h.storeHead(ctx, rec); err != nil {
				return fmt.Errorf("upload %d is received but neither its incoming nor its stored object exists", rec.Sequence)
			}
		} else if reason, msg := check(rec, head); reason != "" {
			return h.reject(ctx, rec, reason, msg, at, log)
		} else if reason, msg, err := h.checkEncoding(ctx, rec, in); err != nil {
			return err
		} else if reason != "" {
			return h.reject(ctx, rec, reason, msg, at, log)
		}
		if err := h.copyAndVerify(ctx, rec, in); err != nil {
			return err
		}
		rec, err = h.Uploads.Update(ctx, in.Site, in.Sequence, func(r *uploads.Record) error {
			if r.State != uploads.Received {
				return uploads.ErrUnchanged
			}
			return r.Move(uploads.Queued, at)
		})
		if err != nil {
			return err
		}
		if rec.State != uploads.Queued {
			return nil
		}
		h.Metrics.Emit(map[string]string{metrics.DimSite: rec.Site}, metrics.CountOf(metrics.UploadsReceived, 1),
			metrics.Value{Name: metrics.BytesReceived, Unit: metrics.Bytes, Value: float64(rec.ReceivedSize)}, metrics.Millis(metrics.CopyLatency, time.Since(at)))
		fallthrough
	case uploads.Queued:
		// Idempotent: the deduplication id is site + sequence.
		m := messages.Import{Kind: messages.KindDelta, Site: rec.Site, Sequence: rec.Sequence, UploadID: rec.UploadID}
		if err := messages.Send(ctx, h.SQS, h.ImportQueueURL, m); err != nil {
			return err
		}
		log.Info("upload queued for import", "bytes", rec.ContentLength)
		fallthrough
	default:
		if !incomingGone && rec.State != uploads.Rejected {
			if _, err := h.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(h.IncomingBucket), Key: aws.String(in.Key())}); err != nil {
				return fmt.Errorf("delete incoming object: %w", err)
			}
		}
		return nil
	}
}

// check compares the received object with what the upload was created for.
func check(rec uploads.Record, head *s3.HeadObjectOutput) (reason, message string) {
	if size := aws.ToInt64(head.ContentLength); size != rec.ContentLength {
		return uploads.ReasonSizeMismatch, fmt.Sprintf("received %d bytes, the upload was created for %d", size, rec.ContentLength)
	}
	if rec.SHA256 != "" {
		want, _ := hex.DecodeString(rec.SHA256)
		if got := aws.ToString(head.ChecksumSHA256); got != "" && got != base64.StdEncoding.EncodeToString(want) {
			return uploads.ReasonChecksumMismatch, "the object's SHA-256 differs from the upload's sha256"
		}
	}
	return "", ""
}

var magic = map[layout.Encoding][]byte{layout.Gzip: {0x1f, 0x8b}, layout.Zstd: {0x28, 0xb5, 0x2f, 0xfd}}

// checkEncoding reads the first bytes of the object: a gzip or zstd upload
// must start with its magic number, and an identity upload must not be
// compressed.
func (h *Handler) checkEncoding(ctx context.Context, rec uploads.Record, in layout.Incoming) (string, string, error) {
	out, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.IncomingBucket), Key: aws.String(in.Key()), Range: aws.String("bytes=0-3")})
	if err != nil {
		return "", "", fmt.Errorf("read the start of the incoming object: %w", err)
	}
	defer out.Body.Close()
	start, err := io.ReadAll(io.LimitReader(out.Body, 4))
	if err != nil {
		return "", "", fmt.Errorf("read the start of the incoming object: %w", err)
	}
	enc, _ := layout.ParseEncoding(rec.ContentEncoding)
	if want, ok := magic[enc]; ok {
		if !bytes.HasPrefix(start, want) {
			return uploads.ReasonBadEncoding, fmt.Sprintf("the upload was created as %s, but the file does not start like %s data", enc, enc), nil
		}
		return "", "", nil
	}
	for e, m := range magic {
		if bytes.HasPrefix(start, m) {
			return uploads.ReasonBadEncoding, fmt.Sprintf("the file is %s-compressed; create the upload with contentEncoding %q", e, e), nil
		}
	}
	return "", "", nil
}

func (h *Handler) importKey(rec uploads.Record) string {
	enc, _ := layout.ParseEncoding(rec.ContentEncoding)
	return layout.Import{Site: rec.Site, Sequence: rec.Sequence, UploadID: rec.UploadID, Encoding: enc}.Key()
}

func (h *Handler) storeHead(ctx context.Context, rec uploads.Record) (*s3.HeadObjectOutput, error) {
	return h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(h.importKey(rec))})
}

// copyAndVerify copies the object to its durable key, never over an
// existing one (a 412 means an earlier attempt copied it), then checks that
// the stored object is the one received.
func (h *Handler) copyAndVerify(ctx context.Context, rec uploads.Record, in layout.Incoming) error {
	dst := h.importKey(rec)
	src := escapeCopySource(h.IncomingBucket, in.Key())
	_, err := h.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(dst), CopySource: aws.String(src), IfNoneMatch: aws.String("*")})
	if err != nil && !uploads.IsPreconditionFailed(err) {
		var notFound *types.NoSuchKey
		if errors.As(err, &notFound) {
			return fmt.Errorf("copy %s to %s/%s: the incoming object disappeared: %w", src, h.StoreBucket, dst, err)
		}
		return fmt.Errorf("copy %s to %s/%s: %w", src, h.StoreBucket, dst, err)
	}
	stored, err := h.storeHead(ctx, rec)
	if err != nil {
		return fmt.Errorf("verify %s/%s: %w", h.StoreBucket, dst, err)
	}
	if aws.ToInt64(stored.ContentLength) != rec.ContentLength {
		return fmt.Errorf("verify %s/%s: stored %d bytes, want %d", h.StoreBucket, dst, aws.ToInt64(stored.ContentLength), rec.ContentLength)
	}
	if rec.ReceivedETag != "" && strings.Trim(aws.ToString(stored.ETag), `"`) != rec.ReceivedETag {
		return fmt.Errorf("verify %s/%s: stored ETag %s, received %s", h.StoreBucket, dst, aws.ToString(stored.ETag), rec.ReceivedETag)
	}
	return nil
}

// escapeCopySource escapes bucket/key per path segment, as CopySource needs;
// '+' is escaped too, since S3 would read it as a space.
func escapeCopySource(bucket, key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(url.PathEscape(p), "+", "%2B")
	}
	return bucket + "/" + strings.Join(parts, "/")
}

// reject resolves a sequence whose upload failed the copy stage's checks,
// and wakes the site so later deltas go on.
func (h *Handler) reject(ctx context.Context, rec uploads.Record, reason, message string, at time.Time, log *slog.Logger) error {
	_, err := h.Uploads.Update(ctx, rec.Site, rec.Sequence, func(r *uploads.Record) error {
		if r.State != uploads.Received {
			return uploads.ErrUnchanged
		}
		return r.Reject(reason, message, at)
	})
	if err != nil {
		return err
	}
	log.Warn("upload rejected by the copy stage", "reason", reason, "message", message)
	h.Metrics.Emit(map[string]string{metrics.DimSite: rec.Site}, metrics.CountOf(metrics.UploadsRejected, 1))
	return messages.Send(ctx, h.SQS, h.ImportQueueURL, messages.Import{Kind: messages.KindWake, Site: rec.Site, Reason: "rejected"})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
