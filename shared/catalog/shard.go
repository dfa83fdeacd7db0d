package catalog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// rootShard is the id of the shard that covers the whole hash space.
const rootShard = "b"

// idHash is the stable hash that places a product id in a shard: the first
// 64 bits of SHA-256(id), big-endian. Shard "b" + bits holds the ids whose
// hash starts with those bits.
func idHash(id string) uint64 {
	sum := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(sum[:8])
}

// prefix is a shard's range of the hash space: the ids whose hash starts
// with the depth bits in bits (right-aligned).
type prefix struct {
	depth int
	bits  uint64
}

func parseShardID(id string) (prefix, error) {
	rest, ok := strings.CutPrefix(id, rootShard)
	if !ok || len(rest) > maxDepth {
		return prefix{}, fmt.Errorf("shard id %q: want %q and at most %d bits", id, rootShard, maxDepth)
	}
	var p prefix
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '0', '1':
			p.bits = p.bits<<1 | uint64(rest[i]-'0')
		default:
			return prefix{}, fmt.Errorf("shard id %q: want %q followed by bits", id, rootShard)
		}
	}
	p.depth = len(rest)
	return p, nil
}

// String is the shard id.
func (p prefix) String() string {
	b := make([]byte, 1+p.depth)
	b[0] = rootShard[0]
	for i := 0; i < p.depth; i++ {
		b[1+i] = '0' + byte(p.bits>>(p.depth-1-i)&1)
	}
	return string(b)
}

// start and end bound the range in units of 2^-maxDepth of the hash space.
func (p prefix) start() uint64 { return p.bits << (maxDepth - p.depth) }
func (p prefix) end() uint64   { return (p.bits + 1) << (maxDepth - p.depth) }

// child is the i-th of the 2^k children k bits deeper.
func (p prefix) child(k int, i uint64) prefix {
	return prefix{depth: p.depth + k, bits: p.bits<<k | i}
}

// childIndex is which of the 2^k children k bits deeper holds hash h.
func (p prefix) childIndex(h uint64, k int) uint64 {
	return h >> (64 - p.depth - k) & (1<<k - 1)
}

// hashPos is a hash's position in units of 2^-maxDepth.
func hashPos(h uint64) uint64 { return h >> (64 - maxDepth) }

// cover is the shards of a version, which cover the hash space exactly once,
// sorted by range.
type cover struct {
	refs     []ShardRef
	prefixes []prefix
}

// newCover checks that refs cover the hash space exactly once in order.
// No refs means the empty root shard (version 0).
func newCover(refs []ShardRef) (*cover, error) {
	if len(refs) == 0 {
		refs = []ShardRef{{ID: rootShard}}
	}
	c := &cover{refs: refs, prefixes: make([]prefix, len(refs))}
	var next uint64
	for i, r := range refs {
		p, err := parseShardID(r.ID)
		if err != nil {
			return nil, err
		}
		if p.start() != next {
			return nil, fmt.Errorf("shard %s: shards do not cover the hash space once, in order", r.ID)
		}
		next = p.end()
		c.prefixes[i] = p
	}
	if next != 1<<maxDepth {
		return nil, fmt.Errorf("shards do not cover the whole hash space")
	}
	return c, nil
}

// lookup returns the index of the shard that holds hash h.
func (c *cover) lookup(h uint64) int {
	pos := hashPos(h)
	return sort.Search(len(c.prefixes), func(i int) bool { return c.prefixes[i].start() > pos }) - 1
}

// contentHashLen is the length of the hex content hash in a shard key.
const contentHashLen = 32

func validShardKey(site string, r ShardRef) bool {
	rest, ok := strings.CutPrefix(r.Key, shardKeyPrefix(site)+r.ID+"/")
	if !ok {
		return false
	}
	hash, ok := strings.CutSuffix(rest, ".ndjson.zst")
	if !ok || len(hash) != contentHashLen || r.Key != layout.CatalogShardKey(site, r.ID, hash) {
		return false
	}
	for i := 0; i < len(hash); i++ {
		if c := hash[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// shardKeyPrefix lists every shard object of a site:
// layout.CatalogShardKey up to the shard id.
func shardKeyPrefix(site string) string {
	return strings.TrimSuffix(layout.CatalogShardKey(site, "", ""), "/.ndjson.zst")
}

// --- NDJSON lines ---

const (
	lineStart  = `{"id":`
	productSep = `,"product":`
	lineEnd    = "}\n"
)

// appendLine appends the stored line of one product.
func appendLine(dst []byte, id string, product []byte) []byte {
	dst = append(dst, lineStart...)
	dst = appendJSONString(dst, id)
	dst = append(dst, productSep...)
	dst = append(dst, product...)
	return append(dst, lineEnd...)
}

// lineLen is len(appendLine(nil, id, product)).
func lineLen(id string, product []byte) int64 {
	return int64(len(lineStart) + jsonStringLen(id) + len(productSep) + len(product) + len(lineEnd))
}

// appendJSONString appends s (valid UTF-8) as a JSON string, escaping only
// what JSON requires.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func jsonStringLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}

// parseLine splits a stored line (without its newline) into id and product.
// product aliases line.
func parseLine(line []byte) (string, []byte, error) {
	if rest, ok := bytes.CutPrefix(line, []byte(lineStart)); ok && len(rest) > 0 && rest[0] == '"' {
		if end := jsonStringEnd(rest); end > 0 {
			raw := rest[1:end]
			id := ""
			ok := true
			if bytes.IndexByte(raw, '\\') < 0 {
				id = string(raw)
			} else {
				ok = json.Unmarshal(rest[:end+1], &id) == nil
			}
			after, found := bytes.CutPrefix(rest[end+1:], []byte(productSep))
			if ok && found && len(after) > 1 && after[len(after)-1] == '}' {
				return id, after[:len(after)-1], nil
			}
		}
	}
	var v struct {
		ID      *string         `json:"id"`
		Product json.RawMessage `json:"product"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.ID == nil || len(v.Product) == 0 {
		return "", nil, fmt.Errorf("%w: bad line %.60q", ErrCorrupt, line)
	}
	return *v.ID, v.Product, nil
}

// jsonStringEnd returns the index of the quote that closes the JSON string
// starting at b[0], or -1.
func jsonStringEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// checkProduct is the cheap check that a product can be carried through as
// one NDJSON line: a JSON object on one line. Full validation is the
// caller's.
func checkProduct(p []byte) error {
	t := bytes.TrimSpace(p)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return errors.New("product is not a JSON object")
	}
	if bytes.IndexByte(p, '\n') >= 0 {
		return errors.New("product spans more than one line")
	}
	return nil
}

// --- reading shards ---

// record is one product read from a shard or buffer; product is valid until
// the next read.
type record struct {
	id      string
	product []byte
}

// recordReader is a stream of records in strictly increasing id order.
type recordReader interface {
	next() (bool, error)
	current() record
	close()
}

// shardReader streams the products of one shard object in id order. It
// checks the order and, at the end, the count the version recorded.
type shardReader struct {
	site    string
	ref     ShardRef
	body    io.ReadCloser
	dec     *zstd.Decoder
	br      *bufio.Reader
	long    []byte
	id      string
	product []byte
	n       int
	done    bool
	pool    *sync.Pool // takes the decoder back
}

// openShard starts reading a shard object.
func (s *Store) openShard(ctx context.Context, site string, ref ShardRef) (*shardReader, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &ref.Key})
	if isNotFound(err) {
		return nil, fmt.Errorf("catalog %s: read shard %s: %w", site, ref.Key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog %s: read shard %s: %w", site, ref.Key, err)
	}
	return s.newShardReader(site, ref, out.Body)
}

func (s *Store) newShardReader(site string, ref ShardRef, body io.ReadCloser) (*shardReader, error) {
	dec, _ := s.decoders.Get().(*zstd.Decoder)
	var err error
	if dec == nil {
		dec, err = zstd.NewReader(body, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
	} else {
		err = dec.Reset(body)
	}
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("catalog %s: read shard %s: %w", site, ref.Key, err)
	}
	return &shardReader{site: site, ref: ref, body: body, dec: dec, pool: &s.decoders, br: bufio.NewReaderSize(dec, 64<<10)}, nil
}

func (r *shardReader) current() record { return record{r.id, r.product} }

// next advances to the next product; false at the end.
func (r *shardReader) next() (bool, error) {
	if r.done {
		return false, nil
	}
	line, err := readLine(r.br, &r.long)
	if err == io.EOF {
		r.done = true
		if r.n != r.ref.Count {
			return false, fmt.Errorf("catalog %s: read shard %s: %w: %d products, version says %d", r.site, r.ref.Key, ErrCorrupt, r.n, r.ref.Count)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("catalog %s: read shard %s: %w", r.site, r.ref.Key, err)
	}
	id, product, err := parseLine(line)
	if err != nil {
		return false, fmt.Errorf("catalog %s: read shard %s: line %d: %w", r.site, r.ref.Key, r.n+1, err)
	}
	if r.n > 0 && id <= r.id {
		return false, fmt.Errorf("catalog %s: read shard %s: %w: ids out of order at line %d", r.site, r.ref.Key, ErrCorrupt, r.n+1)
	}
	r.id, r.product = id, product
	r.n++
	return true, nil
}

func (r *shardReader) close() {
	r.body.Close()
	if r.dec != nil && r.dec.Reset(nil) == nil {
		r.pool.Put(r.dec)
	}
	r.dec = nil
}

// readLine returns the next line without its newline; it is valid until the
// next call. A last line without a newline is an error: every stored line
// ends with one.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := append((*long)[:0], line...)
		for {
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
			if err == nil {
				*long = buf
				return buf[:len(buf)-1], nil
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		*long = buf
		line = buf
	}
	if err == io.EOF {
		if len(line) > 0 {
			return nil, fmt.Errorf("%w: last line has no newline", ErrCorrupt)
		}
		return nil, io.EOF
	}
	return nil, err
}

// emptyReader is the reader of an empty shard.
type emptyReader struct{}

func (emptyReader) next() (bool, error) { return false, nil }
func (emptyReader) current() record     { return record{} }
func (emptyReader) close()              {}
