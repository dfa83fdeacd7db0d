package s3server

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/rclone/gofakes3"
	"github.com/rclone/gofakes3/s3mem"
)

// writeOp names the S3 operation that caused a write, as the eventName of
// its ObjectCreated notification.
type writeOp string

const (
	opPut      writeOp = "ObjectCreated:Put"
	opPost     writeOp = "ObjectCreated:Post"
	opCopy     writeOp = "ObjectCreated:Copy"
	opComplete writeOp = "ObjectCreated:CompleteMultipartUpload"
)

// requestInfo is what the front handler learned about a request that the
// backend needs: which operation it is and its write conditions. gofakes3
// checks If-Match/If-None-Match before calling the backend, outside any lock,
// and not at all for CopyObject; the backend checks them again under the
// key's lock, which is what makes them atomic.
type requestInfo struct {
	op          writeOp
	ifMatch     string
	ifNoneMatch string
	requestID   string
	sourceIP    string
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, info *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	if info == nil {
		return &requestInfo{op: opPut}
	}
	return info
}

// written describes an object that a write created, for notifications.
type written struct {
	bucket, key string
	size        int64
	etag        string // without quotes
	versionID   string
	info        *requestInfo
}

// backend wraps s3mem so that every write to one key is serialized with the
// check of its conditions, and reports each created object.
type backend struct {
	*s3mem.Backend
	locks   [256]sync.Mutex
	created func(ctx context.Context, w written)
}

var (
	_ gofakes3.Backend          = (*backend)(nil)
	_ gofakes3.VersionedBackend = (*backend)(nil)
)

func (b *backend) lock(bucket, key string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(bucket))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	m := &b.locks[h.Sum32()%uint32(len(b.locks))]
	m.Lock()
	return m.Unlock
}

// checkConditions applies S3's conditional-write rules to the current state
// of bucket/key: If-Match needs the object to exist (404 NoSuchKey otherwise)
// with a matching ETag (412 PreconditionFailed otherwise); If-None-Match: *
// needs it to be absent (412). Callers hold the key's lock.
func (b *backend) checkConditions(ctx context.Context, info *requestInfo, bucket, key string) error {
	if info.ifMatch == "" && info.ifNoneMatch == "" {
		return nil
	}
	exists, etag := false, ""
	obj, err := b.Backend.HeadObject(ctx, bucket, key)
	switch {
	case err == nil:
		exists, etag = true, hex.EncodeToString(obj.Hash)
		_ = obj.Contents.Close()
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey):
	default:
		return err
	}
	if info.ifMatch != "" {
		if !exists {
			return gofakes3.KeyNotFound(key)
		}
		if !etagListMatches(info.ifMatch, etag) {
			return gofakes3.ErrPreconditionFailed
		}
	}
	if info.ifNoneMatch != "" && exists && etagListMatches(info.ifNoneMatch, etag) {
		return gofakes3.ErrPreconditionFailed
	}
	return nil
}

func etagListMatches(list, etag string) bool {
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.Trim(strings.TrimPrefix(tag, "W/"), `"`) == etag {
			return true
		}
	}
	return false
}

// PutObject stores the object if its write conditions hold at the moment of
// the write. The body is read before the lock is taken, so a slow client
// never holds up other writers of the key.
func (b *backend) PutObject(ctx context.Context, bucket, key string, meta map[string]string, input io.Reader, size int64) (gofakes3.PutObjectResult, error) {
	body, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	info := requestInfoFrom(ctx)
	unlock := b.lock(bucket, key)
	if err := b.checkConditions(ctx, info, bucket, key); err != nil {
		unlock()
		return gofakes3.PutObjectResult{}, err
	}
	result, err := b.Backend.PutObject(ctx, bucket, key, meta, bytes.NewReader(body), int64(len(body)))
	var etag string
	if err == nil {
		etag = b.storedETag(ctx, result, bucket, key, body)
	}
	unlock()
	if err != nil {
		return result, err
	}
	b.created(ctx, written{bucket: bucket, key: key, size: int64(len(body)), etag: etag, versionID: string(result.VersionID), info: info})
	return result, nil
}

// storedETag is the ETag of the object just written under the key's lock:
// the backend's, which has already hashed the body, or the MD5 of body.
func (b *backend) storedETag(ctx context.Context, result gofakes3.PutObjectResult, bucket, key string, body []byte) string {
	if etag := strings.Trim(result.ETag, `"`); etag != "" {
		return etag
	}
	if obj, err := b.Backend.HeadObject(ctx, bucket, key); err == nil {
		_ = obj.Contents.Close()
		if len(obj.Hash) == md5.Size {
			return hex.EncodeToString(obj.Hash)
		}
	}
	return md5Hex(body)
}

// CopyObject copies under the destination key's lock, honouring the
// destination's If-None-Match / If-Match.
func (b *backend) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	info := requestInfoFrom(ctx)
	unlock := b.lock(dstBucket, dstKey)
	if err := b.checkConditions(ctx, info, dstBucket, dstKey); err != nil {
		unlock()
		return gofakes3.CopyObjectResult{}, err
	}
	result, err := b.Backend.CopyObject(ctx, srcBucket, srcKey, dstBucket, dstKey, meta)
	var size int64
	var versionID string
	if err == nil {
		if obj, herr := b.Backend.HeadObject(ctx, dstBucket, dstKey); herr == nil {
			size, versionID = obj.Size, string(obj.VersionID)
			_ = obj.Contents.Close()
		}
	}
	unlock()
	if err != nil {
		return result, err
	}
	b.created(ctx, written{bucket: dstBucket, key: dstKey, size: size, etag: strings.Trim(result.ETag, `"`), versionID: versionID, info: info})
	return result, nil
}

// DeleteObject is serialized with the key's writes so that a delete never
// lands between a conditional write's check and its write.
func (b *backend) DeleteObject(ctx context.Context, bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	unlock := b.lock(bucket, key)
	defer unlock()
	return b.Backend.DeleteObject(ctx, bucket, key)
}

// ListBucket lists as S3 does where s3mem does not:
//
//   - A page starts at the first entry after the marker, whether or not the
//     marker exists. s3mem seeks to the marker and skips one entry, assuming
//     the marker is a key; after the marker's object was deleted (a client
//     that deletes what it lists, page by page) that skipped the next key.
//   - In a bucket that has had versioning, a key whose current version is a
//     delete marker is not listed. s3mem lists it.
func (b *backend) ListBucket(ctx context.Context, name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	vc, err := b.Backend.VersioningConfiguration(name)
	if err != nil {
		return nil, err
	}
	versioned := vc.Status != ""
	if page.Marker == "" && !versioned {
		return b.Backend.ListBucket(ctx, name, prefix, page)
	}
	// Every key under the prefix, without the delimiter; rolled up below.
	var flat *gofakes3.Prefix
	if prefix != nil && prefix.HasPrefix {
		flat = &gofakes3.Prefix{HasPrefix: true, Prefix: prefix.Prefix}
	}
	all, err := b.Backend.ListBucket(ctx, name, flat, gofakes3.ListBucketPage{})
	if err != nil {
		return nil, err
	}
	type entry struct {
		key     string
		content *gofakes3.Content
	}
	var entries []entry
	rolled := map[string]bool{}
	for _, c := range all.Contents {
		if versioned {
			if _, err := b.Backend.HeadObject(ctx, name, c.Key); err != nil {
				continue // its current version is a delete marker
			}
		}
		if prefix != nil {
			var m gofakes3.PrefixMatch
			if !prefix.Match(c.Key, &m) {
				continue
			}
			if m.CommonPrefix {
				if !rolled[m.MatchedPart] {
					rolled[m.MatchedPart] = true
					entries = append(entries, entry{key: m.MatchedPart})
				}
				continue
			}
		}
		entries = append(entries, entry{key: c.Key, content: c})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	out := gofakes3.NewObjectList()
	var n int64
	for i, e := range entries {
		if page.Marker != "" && e.key <= page.Marker {
			continue
		}
		if e.content != nil {
			out.Add(e.content)
		} else {
			out.AddPrefix(e.key)
		}
		n++
		if page.MaxKeys > 0 && n >= page.MaxKeys {
			out.NextMarker = e.key
			out.IsTruncated = i+1 < len(entries)
			break
		}
	}
	return out, nil
}
