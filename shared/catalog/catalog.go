// Package catalog stores a site's product catalog in S3 as immutable,
// sharded, numbered versions.
//
// # Objects
//
// A site's catalog is a sequence of versions 1, 2, 3, … (version 0 is the
// empty catalog and has no object). Version v is the JSON document
// catalog/{site}/versions/{v:020}.json; it lists the shards that hold the
// catalog's products. A shard holds the products whose id hashes into its
// range, sorted by id (byte order), as zstd-compressed NDJSON lines
// {"id":…,"product":…}; the product JSON is carried through byte for byte.
// Shards are named by their content: catalog/{site}/shards/{shard}/{hash}.ndjson.zst.
//
// A product goes to the shard whose id is a prefix of the first bits of
// SHA-256(product id), written "b" followed by those bits (the root shard
// "b" holds everything; "b01" holds the ids whose hash starts with 0, 1).
// This assignment never changes. The shards of a version always cover the
// whole hash space exactly once. A shard that a commit would make larger
// than the split size (WithSplitSize) is written as children one or more
// bits deeper instead, and the version lists the children: versions record
// every split. Shards never merge back; a shard that becomes empty stays in
// the version as an empty range without an object.
//
// # Guarantees
//
//   - Immutability. Neither a version document nor a shard object is ever
//     changed once written. A shard key names the object's bytes (a
//     SHA-256 prefix of the compressed object), so a rewrite of the same key
//     stores the same products.
//   - One winner per version. Staged.Commit creates versions/{base+1} with
//     If-None-Match: *; of any number of commits from the same base exactly
//     one succeeds and the others get ErrConflict. A loser must read the
//     new head and stage again, so the catalog always equals the sequential
//     application of the committed batches.
//   - Crash safety. A commit writes its new shards first and the version
//     document last. A crash at any point before the version document
//     exists leaves only shard objects that no version references, which
//     Collect removes once they are older than its grace period. head.json
//     is only a hint for Head, which probes past it; it is written after a
//     commit on a best-effort basis and never moves backwards.
//   - Only what changed is written. A commit reads only the shards its
//     operations touch (all of them for a full upload) and rewrites only
//     those whose content changes; every other shard reference is carried
//     over from the base version unchanged. A shard it writes is always
//     uploaded, even if an object with that key might exist already, so a
//     garbage-collected copy can never be referenced.
//   - Bounded memory. Staging keeps incoming operations grouped by shard in
//     memory up to a budget (WithMemoryBudget) and spills sorted runs to
//     temporary files past it; shards are merged as streams. A full upload
//     of N products needs temporary disk proportional to N, not memory.
//
// Garbage collection (Collect) is mark-and-sweep over the versions a caller
// keeps; it never removes a shard younger than its grace, so a running
// import's freshly written shards survive until its version exists.
package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// Errors returned (wrapped) by the store.
var (
	// ErrConflict: another commit created the version this one was to
	// create. Read the head again and stage the batch anew.
	ErrConflict = errors.New("catalog version already exists")
	// ErrNotFound: a version or shard object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt: a stored object does not have the form this package
	// writes.
	ErrCorrupt = errors.New("corrupt catalog object")
	// ErrClosed: the Staged batch was already committed or discarded.
	ErrClosed = errors.New("staged batch already committed or discarded")
)

// objectAPI is the part of the S3 API the store uses.
type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, opts ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

var _ objectAPI = (*s3.Client)(nil)

// Defaults of the options.
const (
	// DefaultSplitBytes is the uncompressed NDJSON size past which a shard
	// splits. Small shards keep the rewrite of a small delta small: with
	// 1 KB products a 1M-product catalog has about 1,000–2,000 shards, so
	// ten changed products rewrite well under 1 % of it.
	DefaultSplitBytes = 1 << 20
	// DefaultSplitProducts is the product count past which a shard splits.
	DefaultSplitProducts = 8192
	// DefaultMemoryBudget bounds the operations a Stage keeps in memory
	// before it spills them to temporary files.
	DefaultMemoryBudget = 32 << 20
	// DefaultConcurrency is the number of shard objects read ahead or
	// written at once.
	DefaultConcurrency = 8
)

// maxDepth is the deepest a shard can split: shard ids have at most this many
// hash bits. A shard at this depth is never split further.
const maxDepth = 40

// Store reads and writes the catalogs of any number of sites in one bucket.
// It is safe for concurrent use; besides its configuration it holds only
// pools of reusable decoders and encoders. Create it with New.
type Store struct {
	client        objectAPI
	bucket        string
	splitBytes    int64
	splitProducts int
	memoryBudget  int64
	tempDir       string
	concurrency   int
	now           func() time.Time
	decoders      sync.Pool // of *zstd.Decoder
	encoders      sync.Pool // of *zstd.Encoder, at encoderLevel
	shardBufs     sync.Pool // of *[]byte: the memory of a finished Stage's shard buffers
}

// Option configures a Store.
type Option func(*Store)

// WithSplitSize sets when a shard splits: when its uncompressed NDJSON would
// exceed bytes or it would hold more than products products. Values ≤ 0 keep
// the default (DefaultSplitBytes, DefaultSplitProducts). Changing it affects
// only shards written afterwards.
func WithSplitSize(bytes int64, products int) Option {
	return func(s *Store) {
		if bytes > 0 {
			s.splitBytes = bytes
		}
		if products > 0 {
			s.splitProducts = products
		}
	}
}

// WithClock sets the source of CreatedAt and of "now" in Collect (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithTempDir sets where Stage spills operations and keeps staged shards
// (default os.TempDir()). A Stage needs free space there of about the
// uncompressed size of its deltas plus the compressed size of the shards it
// writes; up to three times the deltas' size when one shard has to split
// many levels at once (a first full upload into an empty catalog).
func WithTempDir(dir string) Option { return func(s *Store) { s.tempDir = dir } }

// WithMemoryBudget sets how many bytes of operations a Stage keeps in memory
// before it spills them to temporary files (default DefaultMemoryBudget);
// shard content being merged may take as much again. So live memory stays
// near twice the budget plus fixed per-stream buffers (a few MiB), whatever
// the size of the deltas; with Go's default GOGC the heap peaks near four
// times the budget (about 150 MiB at the default, for any delta size).
func WithMemoryBudget(bytes int64) Option {
	return func(s *Store) {
		if bytes > 0 {
			s.memoryBudget = bytes
		}
	}
}

// WithConcurrency sets how many shard objects are read ahead while staging
// and written at once while committing (default DefaultConcurrency).
func WithConcurrency(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.concurrency = n
		}
	}
}

// New returns a store of the catalogs in bucket.
func New(client objectAPI, bucket string, opts ...Option) *Store {
	s := &Store{
		client:        client,
		bucket:        bucket,
		splitBytes:    DefaultSplitBytes,
		splitProducts: DefaultSplitProducts,
		memoryBudget:  DefaultMemoryBudget,
		tempDir:       os.TempDir(),
		concurrency:   DefaultConcurrency,
		now:           time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Version is one immutable catalog version of a site.
type Version struct {
	Site       string    `json:"site"`
	Version    uint64    `json:"version"`
	AppliedSeq uint64    `json:"appliedSeq"` // the newest upload sequence applied
	Parent     uint64    `json:"parent"`     // the version this one was staged from
	CreatedAt  time.Time `json:"createdAt"`
	Products   int64     `json:"products"`
	// Shards cover the hash space exactly once, in hash order. Empty for
	// version 0, which means the single empty root shard.
	Shards []ShardRef `json:"shards"`
}

// ShardRef names one shard of a version.
type ShardRef struct {
	ID    string `json:"id"`            // "b" + hash-prefix bits
	Key   string `json:"key,omitempty"` // object key; empty when the shard is empty
	Count int    `json:"count"`         // products in the shard
	Bytes int64  `json:"bytes"`         // size of the stored (compressed) object
	Raw   int64  `json:"raw"`           // uncompressed NDJSON size
}

// versionDoc is the stored form of a version.
type versionDoc struct {
	Format    int    `json:"format"`
	ShardHash string `json:"shardHash"`
	Version
}

const (
	docFormat = 1
	// shardHashName names how ids map to shards, so that a reader can tell
	// if it ever changes.
	shardHashName = "sha256-prefix"
)

// headDoc is the stored form of head.json.
type headDoc struct {
	Version   uint64    `json:"version"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Count returns the number of products in v.
func (s *Store) Count(v Version) int64 { return v.Products }

// empty is version 0 of a site.
func empty(site string) Version { return Version{Site: site} }

// Head returns the newest version of site (version 0 when it has none). It
// starts at head.json and probes upward for newer versions, so a stale or
// missing head.json only costs a few requests.
func (s *Store) Head(ctx context.Context, site string) (Version, error) {
	if err := layout.ValidateSite(site); err != nil {
		return Version{}, fmt.Errorf("catalog: %w", err)
	}
	hint, _, err := s.readHead(ctx, site)
	if err != nil {
		return Version{}, err
	}
	newest, err := s.probe(ctx, site, hint)
	if err != nil {
		return Version{}, err
	}
	if newest == 0 {
		return empty(site), nil
	}
	v, err := s.Load(ctx, site, newest)
	if errors.Is(err, ErrNotFound) {
		// The hint named a version that does not exist: find the newest
		// by listing.
		newest, err = s.newestListed(ctx, site)
		if err != nil {
			return Version{}, err
		}
		if newest == 0 {
			return empty(site), nil
		}
		return s.Load(ctx, site, newest)
	}
	return v, err
}

// probe finds the newest existing version at or above from: it doubles its
// step until a version is missing, then bisects. Versions above the hint
// are contiguous (Collect moves head.json up before it deletes any).
func (s *Store) probe(ctx context.Context, site string, from uint64) (uint64, error) {
	lo, step := from, uint64(1)
	var hi uint64
	for {
		ok, err := s.versionExists(ctx, site, lo+step)
		if err != nil {
			return 0, err
		}
		if !ok {
			hi = lo + step
			break
		}
		lo += step
		step *= 2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := s.versionExists(ctx, site, mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

func (s *Store) versionExists(ctx context.Context, site string, v uint64) (bool, error) {
	key := layout.CatalogVersionKey(site, v)
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("catalog %s: probe version %s: %w", site, key, err)
	}
}

// newestListed lists the site's versions and returns the highest.
func (s *Store) newestListed(ctx context.Context, site string) (uint64, error) {
	var newest uint64
	err := s.list(ctx, layout.CatalogVersionPrefix(site), func(key string, _ time.Time) error {
		if _, v, err := layout.ParseCatalogVersionKey(key); err == nil && v > newest {
			newest = v
		}
		return nil
	})
	return newest, err
}

// readHead returns the version head.json names (0 when it is missing or
// unreadable: it is only a hint) and its ETag.
func (s *Store) readHead(ctx context.Context, site string) (uint64, string, error) {
	key := layout.CatalogHeadKey(site)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if isNotFound(err) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("catalog %s: read %s: %w", site, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, 1<<16))
	if err != nil {
		return 0, "", fmt.Errorf("catalog %s: read %s: %w", site, key, err)
	}
	var h headDoc
	if json.Unmarshal(body, &h) != nil {
		return 0, aws.ToString(out.ETag), nil
	}
	return h.Version, aws.ToString(out.ETag), nil
}

// advanceHead moves head.json up to v unless it already names v or newer.
// It never moves the hint backwards: the write is conditional on the ETag
// it read.
func (s *Store) advanceHead(ctx context.Context, site string, v uint64) error {
	key := layout.CatalogHeadKey(site)
	for range 5 {
		cur, etag, err := s.readHead(ctx, site)
		if err != nil {
			return err
		}
		if cur >= v {
			return nil
		}
		body, _ := json.Marshal(headDoc{Version: v, UpdatedAt: s.now().UTC()})
		in := &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json"),
		}
		if etag == "" {
			in.IfNoneMatch = aws.String("*")
		} else {
			in.IfMatch = aws.String(etag)
		}
		_, err = s.client.PutObject(ctx, in)
		if err == nil {
			return nil
		}
		if !isPreconditionFailed(err) {
			return fmt.Errorf("catalog %s: write %s: %w", site, key, err)
		}
	}
	return fmt.Errorf("catalog %s: write %s: %w", site, key, ErrConflict)
}

// Load reads version v of site. Version 0 is the empty catalog; a version
// that does not exist is an error wrapping ErrNotFound.
func (s *Store) Load(ctx context.Context, site string, v uint64) (Version, error) {
	if err := layout.ValidateSite(site); err != nil {
		return Version{}, fmt.Errorf("catalog: %w", err)
	}
	if v == 0 {
		return empty(site), nil
	}
	key := layout.CatalogVersionKey(site, v)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if isNotFound(err) {
		return Version{}, fmt.Errorf("catalog %s: load version %d: %s: %w", site, v, key, ErrNotFound)
	}
	if err != nil {
		return Version{}, fmt.Errorf("catalog %s: load version %d: %s: %w", site, v, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return Version{}, fmt.Errorf("catalog %s: load version %d: %s: %w", site, v, key, err)
	}
	var doc versionDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return Version{}, fmt.Errorf("catalog %s: load version %d: %s: %w: %v", site, v, key, ErrCorrupt, err)
	}
	if err := doc.check(site, v); err != nil {
		return Version{}, fmt.Errorf("catalog %s: load version %d: %s: %w: %v", site, v, key, ErrCorrupt, err)
	}
	return doc.Version, nil
}

// check validates a version document read from key versions/{v}.
func (d *versionDoc) check(site string, v uint64) error {
	if d.Format != docFormat {
		return fmt.Errorf("format %d, want %d", d.Format, docFormat)
	}
	if d.ShardHash != shardHashName {
		return fmt.Errorf("shard hash %q, want %q", d.ShardHash, shardHashName)
	}
	if d.Site != site || d.Version.Version != v {
		return fmt.Errorf("document names %s version %d", d.Site, d.Version.Version)
	}
	if _, err := newCover(d.Shards); err != nil {
		return err
	}
	var n int64
	for _, r := range d.Shards {
		if r.Count < 0 || (r.Key == "") != (r.Count == 0) {
			return fmt.Errorf("shard %s: count %d with key %q", r.ID, r.Count, r.Key)
		}
		if r.Key != "" && !validShardKey(site, r) {
			return fmt.Errorf("shard %s: key %q is not a shard key of the site", r.ID, r.Key)
		}
		n += int64(r.Count)
	}
	if n != d.Products {
		return fmt.Errorf("shards hold %d products, document says %d", n, d.Products)
	}
	return nil
}

// checkVersion rejects a version that belongs to another site.
func checkVersion(site string, v Version) error {
	if err := layout.ValidateSite(site); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if v.Site != site && !(v.Site == "" && v.Version == 0) {
		return fmt.Errorf("catalog %s: version %d belongs to site %q", site, v.Version, v.Site)
	}
	return nil
}

// Get returns the product with the given id in version v, reading only the
// shard that holds it. ok is false when v has no such product. The returned
// bytes are the caller's.
func (s *Store) Get(ctx context.Context, site string, v Version, productID string) (product []byte, ok bool, err error) {
	if err := checkVersion(site, v); err != nil {
		return nil, false, err
	}
	if err := layout.ValidateProductID(productID); err != nil {
		return nil, false, fmt.Errorf("catalog %s: get: %w", site, err)
	}
	cov, err := newCover(v.Shards)
	if err != nil {
		return nil, false, fmt.Errorf("catalog %s: version %d: %w: %v", site, v.Version, ErrCorrupt, err)
	}
	ref := cov.refs[cov.lookup(idHash(productID))]
	if ref.Key == "" {
		return nil, false, nil
	}
	r, err := s.openShard(ctx, site, ref)
	if err != nil {
		return nil, false, err
	}
	defer r.close()
	for {
		more, err := r.next()
		if err != nil {
			return nil, false, err
		}
		if !more || r.id > productID {
			return nil, false, nil
		}
		if r.id == productID {
			return bytes.Clone(r.product), true, nil
		}
	}
}

// list calls fn for every object under prefix.
func (s *Store) list(ctx context.Context, prefix string, fn func(key string, modified time.Time) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix}
	for {
		out, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return fmt.Errorf("catalog: list %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			if err := fn(aws.ToString(o.Key), aws.ToTime(o.LastModified)); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	return httpStatus(err) == http.StatusNotFound
}

// isPreconditionFailed reports a failed If-Match / If-None-Match (412), or
// S3's 409 ConditionalRequestConflict for a concurrent conditional write.
func isPreconditionFailed(err error) bool {
	if err == nil {
		return false
	}
	switch apiCode(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	return httpStatus(err) == http.StatusPreconditionFailed
}
