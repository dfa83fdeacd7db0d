package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
)

// DefaultPartSize is the multipart part size of s3 destination files; a
// file no larger than one part is written with a single PutObject. At most
// one part is held in memory per file being written.
const DefaultPartSize = 8 << 20

// destAPI is what the push function calls on a destination bucket.
type destAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Pointer is {prefix}{site}/latest.json of an s3 destination, written after
// the files it names: Changes holds the changes From → Version, Feed every
// product of Version.
type Pointer struct {
	Version uint64    `json:"version"`
	From    uint64    `json:"from"`
	Feed    string    `json:"feed"`
	Changes string    `json:"changes"`
	At      time.Time `json:"at"`
}

// S3 destination keys.
func changesKey(d site.Destination, siteName string, v uint64) string {
	return fmt.Sprintf("%s%s/changes/%020d.ndjson", d.Prefix, siteName, v)
}

func feedKey(d site.Destination, siteName string, v uint64) string {
	return fmt.Sprintf("%s%s/feed/%020d.ndjson", d.Prefix, siteName, v)
}

func pointerKey(d site.Destination, siteName string) string {
	return d.Prefix + siteName + "/latest.json"
}

func (h *Handler) destClient() (destAPI, error) {
	if h.DestS3 != nil {
		return h.DestS3, nil
	}
	if c, ok := h.S3.(destAPI); ok {
		return c, nil
	}
	return nil, errors.New("no S3 client for destination buckets")
}

// ownBuckets are the buckets no destination may name.
func (h *Handler) ownBuckets() []string {
	own := append([]string{h.StoreBucket}, h.OwnBuckets...)
	out := own[:0]
	for _, b := range own {
		if b != "" {
			out = append(out, b)
		}
	}
	return out
}

// deliverS3 writes the changes file of from → to and the full feed of to,
// then the pointer to both; it returns the number of changes.
func (h *Handler) deliverS3(ctx context.Context, job messages.SyncJob, d site.Destination, from, to catalog.Version) (int, error) {
	if d.Bucket == "" || d.ExpectedBucketOwner == "" {
		return 0, fmt.Errorf("%w: an s3 destination needs bucket and expectedBucketOwner", errPermanent)
	}
	for _, own := range h.ownBuckets() {
		if strings.EqualFold(d.Bucket, own) {
			return 0, fmt.Errorf("%w: bucket %q is one of feedpipe's own buckets", errPermanent, d.Bucket)
		}
	}
	client, err := h.destClient()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	partSize := h.PartSize
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	write := func(key string, base catalog.Version) (int, error) {
		w := &objectWriter{ctx: ctx, client: client, bucket: d.Bucket, key: key, owner: d.ExpectedBucketOwner, partSize: partSize}
		n := 0
		err := h.Catalog.Diff(ctx, job.Site, base, to, func(c catalog.Change) error {
			b, err := changeLine(c, d.Fields)
			if err != nil {
				return err
			}
			n++
			return w.writeLine(b)
		})
		if err != nil {
			w.abort()
			return 0, err
		}
		return n, w.close()
	}
	ck, fk := changesKey(d, job.Site, to.Version), feedKey(d, job.Site, to.Version)
	n, err := write(ck, from)
	if err != nil {
		return 0, fmt.Errorf("s3://%s/%s: %w", d.Bucket, ck, err)
	}
	if _, err := write(fk, catalog.Version{Site: job.Site}); err != nil {
		return 0, fmt.Errorf("s3://%s/%s: %w", d.Bucket, fk, err)
	}
	p, _ := json.Marshal(Pointer{Version: to.Version, From: from.Version, Feed: fk, Changes: ck, At: h.now()})
	pk := pointerKey(d, job.Site)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(d.Bucket), Key: aws.String(pk), Body: bytes.NewReader(p),
		ContentType: aws.String("application/json"), ExpectedBucketOwner: aws.String(d.ExpectedBucketOwner)}); err != nil {
		return 0, fmt.Errorf("s3://%s/%s: %w", d.Bucket, pk, err)
	}
	return n, nil
}

// changeLine is one NDJSON line (without the newline) of a change.
func changeLine(c catalog.Change, fields []string) ([]byte, error) {
	l := line{Op: "delete", ID: c.ID}
	if c.Product != nil {
		p, err := selectFields(c.Product, fields)
		if err != nil {
			return nil, fmt.Errorf("product %q: %w", c.ID, err)
		}
		l = line{Op: "upsert", ID: c.ID, Product: p}
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("product %q: %w", c.ID, err)
	}
	return b, nil
}

// objectWriter streams an object: one PutObject when it fits in a part,
// else a multipart upload whose parts are sent as they fill.
type objectWriter struct {
	ctx                context.Context
	client             destAPI
	bucket, key, owner string
	partSize           int
	buf                bytes.Buffer
	uploadID           string
	parts              []types.CompletedPart
}

func (w *objectWriter) writeLine(b []byte) error {
	w.buf.Write(b)
	w.buf.WriteByte('\n')
	for w.buf.Len() > w.partSize {
		if err := w.sendPart(w.buf.Next(w.partSize)); err != nil {
			return err
		}
	}
	return nil
}

func (w *objectWriter) sendPart(p []byte) error {
	if w.uploadID == "" {
		out, err := w.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(w.key),
			ContentType: aws.String("application/x-ndjson"), ExpectedBucketOwner: aws.String(w.owner)})
		if err != nil {
			return err
		}
		w.uploadID = aws.ToString(out.UploadId)
	}
	n := int32(len(w.parts) + 1)
	out, err := w.client.UploadPart(w.ctx, &s3.UploadPartInput{Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
		PartNumber: aws.Int32(n), Body: bytes.NewReader(p), ContentLength: aws.Int64(int64(len(p))), ExpectedBucketOwner: aws.String(w.owner)})
	if err != nil {
		return fmt.Errorf("part %d: %w", n, err)
	}
	w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	return nil
}

// close writes what is left and completes the object.
func (w *objectWriter) close() error {
	if w.uploadID == "" {
		_, err := w.client.PutObject(w.ctx, &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(w.key), Body: bytes.NewReader(w.buf.Bytes()),
			ContentLength: aws.Int64(int64(w.buf.Len())), ContentType: aws.String("application/x-ndjson"), ExpectedBucketOwner: aws.String(w.owner)})
		return err
	}
	if w.buf.Len() > 0 {
		if err := w.sendPart(w.buf.Bytes()); err != nil {
			w.abort()
			return err
		}
		w.buf.Reset()
	}
	if _, err := w.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(w.key),
		UploadId: aws.String(w.uploadID), MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
		ExpectedBucketOwner: aws.String(w.owner)}); err != nil {
		w.abort()
		return err
	}
	return nil
}

// abort drops an unfinished multipart upload so its parts are not billed.
func (w *objectWriter) abort() {
	if w.uploadID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 30*time.Second)
	defer cancel()
	_, _ = w.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(w.key),
		UploadId: aws.String(w.uploadID), ExpectedBucketOwner: aws.String(w.owner)})
	w.uploadID = ""
}
