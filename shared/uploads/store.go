package uploads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("upload not found")
	ErrBackwards = errors.New("state cannot move backwards")
	// ErrUnchanged is returned by an Update function that decides to write
	// nothing; Update then returns the record as read.
	ErrUnchanged = errors.New("record unchanged")
)

// objectAPI is what the store needs of S3.
type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

var _ objectAPI = (*s3.Client)(nil)

// Store reads and writes upload records in the store bucket.
type Store struct {
	s3     objectAPI
	bucket string
}

// NewStore returns a store on bucket.
func NewStore(client objectAPI, bucket string) *Store { return &Store{s3: client, bucket: bucket} }

// IsPreconditionFailed reports whether err is S3's answer to a failed
// conditional write (412, or 409 ConditionalRequestConflict, which callers
// retry the same way).
func IsPreconditionFailed(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return false
}

// IsNotFound reports whether err is S3's NoSuchKey / 404.
func IsNotFound(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

type hint struct {
	Next uint64 `json:"next"`
}

// maxProbe bounds how far allocation searches past the hint before failing.
const maxProbe = 10000

// Allocate gives the record the next free sequence of its site and creates
// it, atomically: the record is created with If-None-Match: *, and on 412
// the next sequence is tried. newID makes the upload id for a sequence. The
// per-site hint only shortens the search; it may lag behind.
func (s *Store) Allocate(ctx context.Context, rec Record, newID func(seq uint64) string) (Record, error) {
	n := uint64(1)
	if h, err := s.readHint(ctx, rec.Site); err != nil {
		return Record{}, err
	} else if h > 0 {
		n = h
	}
	for tries := 0; tries < maxProbe; tries++ {
		rec.Sequence = n
		rec.UploadID = newID(n)
		body, err := json.Marshal(rec)
		if err != nil {
			return Record{}, fmt.Errorf("encode upload record: %w", err)
		}
		key := layout.UploadRecordKey(rec.Site, n)
		_, err = s.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
			IfNoneMatch: aws.String("*"), ContentType: aws.String("application/json"),
		})
		if IsPreconditionFailed(err) {
			n++
			continue
		}
		if err != nil {
			return Record{}, fmt.Errorf("create %s/%s: %w", s.bucket, key, err)
		}
		s.writeHint(ctx, rec.Site, n+1)
		return rec, nil
	}
	return Record{}, fmt.Errorf("allocate a sequence for site %s: no free sequence within %d of the hint %d", rec.Site, maxProbe, n-maxProbe)
}

func (s *Store) readHint(ctx context.Context, site string) (uint64, error) {
	key := layout.NextSequenceKey(site)
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	var h hint
	if err := json.NewDecoder(out.Body).Decode(&h); err != nil {
		return 0, nil // a damaged hint is only slower allocation
	}
	return h.Next, nil
}

// writeHint records that sequences below next are taken. It is best effort
// and never lowers the hint on purpose; a lost race only makes the next
// allocation probe a little further.
func (s *Store) writeHint(ctx context.Context, site string, next uint64) {
	body, _ := json.Marshal(hint{Next: next})
	_, _ = s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(layout.NextSequenceKey(site)), Body: bytes.NewReader(body),
	})
}

// Get reads a record and its ETag.
func (s *Store) Get(ctx context.Context, site string, seq uint64) (Record, string, error) {
	key := layout.UploadRecordKey(site, seq)
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if IsNotFound(err) {
		return Record{}, "", fmt.Errorf("%s/%d: %w", site, seq, ErrNotFound)
	}
	if err != nil {
		return Record{}, "", fmt.Errorf("read %s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return Record{}, "", fmt.Errorf("read %s/%s: %w", s.bucket, key, err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, "", fmt.Errorf("decode %s/%s: %w", s.bucket, key, err)
	}
	return rec, aws.ToString(out.ETag), nil
}

// Update reads the record, lets change modify it, and writes it back only if
// nobody wrote it in between (If-Match on the ETag); on a lost race it reads
// again and calls change again with the newer record. change returns
// ErrUnchanged to write nothing, or any other error to stop.
func (s *Store) Update(ctx context.Context, site string, seq uint64, change func(*Record) error) (Record, error) {
	rec, _, err := s.update(ctx, site, seq, nil, "", change)
	return rec, err
}

// UpdateFrom is Update starting from known, a record read (or written) with
// etag: when nobody wrote it since, it saves Update's read. Only a write
// relies on known; if change leaves known unchanged or fails on it, the
// record is read again and change decides on the stored one. It returns the
// record and its new ETag.
func (s *Store) UpdateFrom(ctx context.Context, known Record, etag string, change func(*Record) error) (Record, string, error) {
	return s.update(ctx, known.Site, known.Sequence, &known, etag, change)
}

func (s *Store) update(ctx context.Context, site string, seq uint64, known *Record, knownETag string, change func(*Record) error) (Record, string, error) {
	for attempt := 0; ; attempt++ {
		var rec Record
		var etag string
		if known != nil && knownETag != "" && attempt == 0 {
			rec, etag = known.clone(), knownETag
			if err := change(&rec); err != nil {
				continue // decide on the stored record
			}
		} else {
			var err error
			if rec, etag, err = s.Get(ctx, site, seq); err != nil {
				return Record{}, "", err
			}
			if err := change(&rec); errors.Is(err, ErrUnchanged) {
				return rec, etag, nil
			} else if err != nil {
				return rec, etag, err
			}
		}
		body, err := json.Marshal(rec)
		if err != nil {
			return Record{}, "", fmt.Errorf("encode upload record: %w", err)
		}
		key := layout.UploadRecordKey(site, seq)
		out, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
			IfMatch: aws.String(etag), ContentType: aws.String("application/json"),
		})
		if IsPreconditionFailed(err) && attempt < 50 {
			continue
		}
		if err != nil {
			return Record{}, "", fmt.Errorf("write %s/%s: %w", s.bucket, key, err)
		}
		return rec, aws.ToString(out.ETag), nil
	}
}

// List returns up to limit records of a site with sequences above after, in
// sequence order, and whether more follow.
func (s *Store) List(ctx context.Context, site string, after uint64, limit int) ([]Record, bool, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(layout.UploadRecordPrefix(site)), MaxKeys: aws.Int32(int32(limit + 1))}
	if after > 0 {
		in.StartAfter = aws.String(layout.UploadRecordKey(site, after))
	}
	out, err := s.s3.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, false, fmt.Errorf("list %s/%s: %w", s.bucket, layout.UploadRecordPrefix(site), err)
	}
	var recs []Record
	for _, obj := range out.Contents {
		if len(recs) == limit {
			return recs, true, nil
		}
		_, seq, err := layout.ParseUploadRecordKey(aws.ToString(obj.Key))
		if err != nil {
			continue
		}
		rec, _, err := s.Get(ctx, site, seq)
		if err != nil {
			return nil, false, err
		}
		recs = append(recs, rec)
	}
	return recs, aws.ToBool(out.IsTruncated), nil
}
