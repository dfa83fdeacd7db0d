// Package layout owns every name feedpipe stores or sends: object keys in the
// incoming and store buckets, upload ids, queue roles and the environment
// variables that carry physical names from template.yaml to the functions.
// Each Format has a Parse, and Parse(Format(x)) == x.
//
// Site ids match ^[a-z0-9][a-z0-9-]{0,62}$. Product ids (any UTF-8 string of
// 1-256 bytes) never appear raw in a key.
package layout

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Environment variables through which template.yaml passes physical names
// to the functions.
const (
	EnvIncomingBucket = "INCOMING_BUCKET"
	EnvStoreBucket    = "STORE_BUCKET"
	EnvCopyQueueURL   = "COPY_QUEUE_URL"
	EnvImportQueueURL = "IMPORT_QUEUE_URL"
	EnvSyncQueueURL   = "SYNC_QUEUE_URL"
	EnvStackName      = "FEEDPIPE_STACK"
)

// Queue roles. The physical name is "{stack}-{role}" (FIFO roles end in
// ".fifo"); template.yaml creates them and a test checks it against these.
const (
	CopyQueue      = "copy"
	CopyDLQ        = "copy-dlq"
	ImportQueue    = "import.fifo"
	ImportDLQ      = "import-dlq.fifo"
	SyncQueue      = "sync.fifo"
	SyncDLQ        = "sync-dlq.fifo"
	IncomingBucket = "incoming"
	StoreBucket    = "store"
)

// QueueName is the physical name of a queue role in a stack.
func QueueName(stack, role string) string { return stack + "-" + role }

// BucketName is the physical name of a bucket role in a stack, account and
// region (bucket names are global).
func BucketName(stack, role, account, region string) string {
	return stack + "-" + role + "-" + account + "-" + region
}

// SeqWidth is the zero-padded width of sequence numbers in keys, so that
// keys sort in sequence order.
const SeqWidth = 20

var siteRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ErrInvalid is wrapped by every Parse and Validate error.
var ErrInvalid = errors.New("invalid")

// ValidateSite checks a site id.
func ValidateSite(site string) error {
	if !siteRE.MatchString(site) {
		return fmt.Errorf("%w site id %q: want ^[a-z0-9][a-z0-9-]{0,62}$", ErrInvalid, site)
	}
	return nil
}

// ValidateProductID checks a product id: valid UTF-8 of 1-256 bytes.
func ValidateProductID(id string) error {
	if len(id) == 0 || len(id) > 256 {
		return fmt.Errorf("%w product id: want 1-256 bytes, got %d", ErrInvalid, len(id))
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w product id: not valid UTF-8", ErrInvalid)
	}
	return nil
}

func seq(n uint64) string { return fmt.Sprintf("%0*d", SeqWidth, n) }

func parseSeq(s string) (uint64, error) {
	if len(s) != SeqWidth {
		return 0, fmt.Errorf("%w sequence %q: want %d digits", ErrInvalid, s, SeqWidth)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w sequence %q", ErrInvalid, s)
	}
	return n, nil
}

// --- upload ids ---

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewUploadID returns an unguessable upload id that carries its sequence:
// "{sequence}-{26 random base32 characters}" (128 bits of randomness).
func NewUploadID(sequence uint64) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strconv.FormatUint(sequence, 10) + "-" + idEncoding.EncodeToString(b[:])
}

var uploadIDRE = regexp.MustCompile(`^([1-9][0-9]{0,19})-([a-z2-7]{26})$`)

// ParseUploadID returns the sequence an upload id carries.
func ParseUploadID(id string) (uint64, error) {
	m := uploadIDRE.FindStringSubmatch(id)
	if m == nil {
		return 0, fmt.Errorf("%w upload id %q", ErrInvalid, id)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w upload id %q", ErrInvalid, id)
	}
	return n, nil
}

// --- incoming bucket ---

// Incoming is the key of an upload in the incoming bucket.
type Incoming struct {
	Site     string
	Sequence uint64
	UploadID string
}

const incomingPrefix = "incoming/"

// IncomingPrefix is the prefix the copy queue's notification filters on.
func IncomingPrefix() string { return incomingPrefix }

// Key formats incoming/{site}/{seq:020}-{uploadId}.
func (k Incoming) Key() string {
	return incomingPrefix + k.Site + "/" + seq(k.Sequence) + "-" + k.UploadID
}

// ParseIncoming parses an incoming key (already URL-decoded) and checks that
// the upload id carries the key's sequence.
func ParseIncoming(key string) (Incoming, error) {
	rest, ok := strings.CutPrefix(key, incomingPrefix)
	if !ok {
		return Incoming{}, fmt.Errorf("%w incoming key %q: want prefix %s", ErrInvalid, key, incomingPrefix)
	}
	site, name, ok := strings.Cut(rest, "/")
	if !ok || ValidateSite(site) != nil || len(name) < SeqWidth+2 || name[SeqWidth] != '-' {
		return Incoming{}, fmt.Errorf("%w incoming key %q", ErrInvalid, key)
	}
	n, err := parseSeq(name[:SeqWidth])
	if err != nil {
		return Incoming{}, fmt.Errorf("incoming key %q: %w", key, err)
	}
	id := name[SeqWidth+1:]
	idSeq, err := ParseUploadID(id)
	if err != nil || idSeq != n {
		return Incoming{}, fmt.Errorf("%w incoming key %q: upload id does not carry sequence %d", ErrInvalid, key, n)
	}
	return Incoming{Site: site, Sequence: n, UploadID: id}, nil
}

// --- store bucket ---

// Encoding of a delta file.
type Encoding string

// Content encodings a delta may have.
const (
	Identity Encoding = "identity"
	Gzip     Encoding = "gzip"
	Zstd     Encoding = "zstd"
)

var encodingSuffix = map[Encoding]string{Identity: ".ndjson", Gzip: ".ndjson.gz", Zstd: ".ndjson.zst"}

// ParseEncoding checks a contentEncoding value ("" means identity).
func ParseEncoding(s string) (Encoding, error) {
	if s == "" {
		return Identity, nil
	}
	e := Encoding(s)
	if _, ok := encodingSuffix[e]; !ok {
		return "", fmt.Errorf("%w contentEncoding %q: want identity, gzip or zstd", ErrInvalid, s)
	}
	return e, nil
}

// Import is the durable copy of an upload in the store bucket.
type Import struct {
	Site     string
	Sequence uint64
	UploadID string
	Encoding Encoding
}

// Key formats imports/{site}/{seq:020}-{uploadId}.ndjson[.gz|.zst].
func (k Import) Key() string {
	return "imports/" + k.Site + "/" + seq(k.Sequence) + "-" + k.UploadID + encodingSuffix[k.Encoding]
}

// ParseImport parses an import key.
func ParseImport(key string) (Import, error) {
	rest, ok := strings.CutPrefix(key, "imports/")
	if !ok {
		return Import{}, fmt.Errorf("%w import key %q", ErrInvalid, key)
	}
	for enc, suffix := range map[Encoding]string{Zstd: ".ndjson.zst", Gzip: ".ndjson.gz", Identity: ".ndjson"} {
		base, ok := strings.CutSuffix(rest, suffix)
		if !ok {
			continue
		}
		in, err := ParseIncoming(incomingPrefix + base)
		if err != nil {
			return Import{}, fmt.Errorf("import key %q: %w", key, err)
		}
		return Import{Site: in.Site, Sequence: in.Sequence, UploadID: in.UploadID, Encoding: enc}, nil
	}
	return Import{}, fmt.Errorf("%w import key %q: unknown suffix", ErrInvalid, key)
}

// UploadRecordKey formats uploads/{site}/{seq:020}.json.
func UploadRecordKey(site string, sequence uint64) string {
	return UploadRecordPrefix(site) + seq(sequence) + ".json"
}

// UploadRecordPrefix is the prefix of a site's upload records, which list
// in sequence order.
func UploadRecordPrefix(site string) string { return "uploads/" + site + "/" }

// ParseUploadRecordKey returns the site and sequence of an upload record key.
func ParseUploadRecordKey(key string) (site string, sequence uint64, err error) {
	rest, ok := strings.CutPrefix(key, "uploads/")
	if !ok {
		return "", 0, fmt.Errorf("%w upload record key %q", ErrInvalid, key)
	}
	site, name, ok := strings.Cut(rest, "/")
	name, okSuffix := strings.CutSuffix(name, ".json")
	if !ok || !okSuffix || ValidateSite(site) != nil {
		return "", 0, fmt.Errorf("%w upload record key %q", ErrInvalid, key)
	}
	n, err := parseSeq(name)
	if err != nil {
		return "", 0, fmt.Errorf("upload record key %q: %w", key, err)
	}
	return site, n, nil
}

// NextSequenceKey is the per-site hint of the next free sequence.
func NextSequenceKey(site string) string { return "sites/" + site + "/next-sequence.json" }

// SiteConfigKey is a site's configuration (token hashes, destinations,
// limits).
func SiteConfigKey(site string) string { return "sites/" + site + "/config.json" }

// SiteConfigPrefix lists every site's directory.
const SiteConfigPrefix = "sites/"

// SiteStateKey is a site's state (halted + reason), written only by import.
func SiteStateKey(site string) string { return "sites/" + site + "/state.json" }

// PendingPrefix lists the sites with outstanding uploads.
const PendingPrefix = "pending/"

// PendingKey marks a site as having uploads awaiting their PUT: the
// expiry resolver's work list.
func PendingKey(site string) string { return PendingPrefix + site }

// ParsePendingKey returns the site of a pending mark.
func ParsePendingKey(key string) (string, error) {
	site, ok := strings.CutPrefix(key, PendingPrefix)
	if !ok || ValidateSite(site) != nil {
		return "", fmt.Errorf("%w pending key %q", ErrInvalid, key)
	}
	return site, nil
}

// IdempotencyKey stores the upload a POST with an Idempotency-Key created.
func IdempotencyKey(site, key string) string {
	sum := sha256.Sum256([]byte(key))
	return "idempotency/" + site + "/" + hex.EncodeToString(sum[:]) + ".json"
}

// CatalogVersionKey is an immutable catalog version.
func CatalogVersionKey(site string, version uint64) string {
	return CatalogVersionPrefix(site) + seq(version) + ".json"
}

// CatalogVersionPrefix lists a site's catalog versions in order.
func CatalogVersionPrefix(site string) string { return "catalog/" + site + "/versions/" }

// ParseCatalogVersionKey returns the site and version of a version key.
func ParseCatalogVersionKey(key string) (site string, version uint64, err error) {
	rest, ok := strings.CutPrefix(key, "catalog/")
	if !ok {
		return "", 0, fmt.Errorf("%w catalog version key %q", ErrInvalid, key)
	}
	site, name, ok := strings.Cut(rest, "/versions/")
	name, okSuffix := strings.CutSuffix(name, ".json")
	if !ok || !okSuffix || ValidateSite(site) != nil {
		return "", 0, fmt.Errorf("%w catalog version key %q", ErrInvalid, key)
	}
	v, err := parseSeq(name)
	if err != nil {
		return "", 0, fmt.Errorf("catalog version key %q: %w", key, err)
	}
	return site, v, nil
}

// CatalogHeadKey is the hint to a site's newest catalog version.
func CatalogHeadKey(site string) string { return "catalog/" + site + "/head.json" }

// CatalogShardKey is an immutable shard, named by its content hash.
func CatalogShardKey(site, shard, hash string) string {
	return "catalog/" + site + "/shards/" + shard + "/" + hash + ".ndjson.zst"
}

// SyncDirtyPrefix lists the sites whose catalog changed since the last plan.
const SyncDirtyPrefix = "sync/dirty/"

// SyncDirtyKey marks a site dirty for sync.
func SyncDirtyKey(site string) string { return SyncDirtyPrefix + site }

// CollectPrefix lists the sites whose catalog may have garbage to collect:
// a version was committed, or a destination acknowledged a newer one,
// since their last collection.
const CollectPrefix = "collect/"

// CollectKey marks a site for catalog garbage collection.
func CollectKey(site string) string { return CollectPrefix + site }

// SyncLeaseKey is the lease of one destination's sync job.
func SyncLeaseKey(site, destination string) string {
	return "sync/lease/" + site + "/" + destination + ".json"
}

// SyncAckKey records the catalog version a destination acknowledged.
func SyncAckKey(site, destination string) string {
	return "sync/ack/" + site + "/" + destination + ".json"
}

// DeltaDeduplicationID is the import queue's MessageDeduplicationId of a
// delta: site + sequence, so a redelivered S3 event cannot enqueue twice.
func DeltaDeduplicationID(site string, sequence uint64) string {
	return site + "-" + seq(sequence)
}

// RequireEnv reads environment variables that must be set, reporting every
// missing one at once.
func RequireEnv(names ...string) (map[string]string, error) {
	out := map[string]string{}
	var missing []string
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			missing = append(missing, n)
		}
		out[n] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing environment variables %s (template.yaml sets them)", strings.Join(missing, ", "))
	}
	return out, nil
}

// EnvInt reads an optional integer environment variable: def when unset,
// an error naming the variable when it is not an integer of at least min.
func EnvInt(name string, def, min int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		return 0, fmt.Errorf("%s=%q: want an integer of at least %d", name, v, min)
	}
	return n, nil
}

// EnvSeconds is EnvInt for a number of seconds.
func EnvSeconds(name string, def time.Duration, min int) (time.Duration, error) {
	n, err := EnvInt(name, int(def/time.Second), min)
	return time.Duration(n) * time.Second, err
}
