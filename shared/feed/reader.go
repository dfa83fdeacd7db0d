package feed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

const (
	// bufSize is the initial size of a Reader's buffer; it grows up to
	// MaxLineBytes+2 only while a longer line is being read.
	bufSize = 256 << 10
	// maxWindow is the largest zstd window accepted (that of zstd --long
	// and of the highest --ultra levels). A stream that declares a larger
	// one is rejected as corrupt rather than allocated.
	maxWindow = 128 << 20
)

// Reader reads the valid lines of a delta, one at a time, and records the
// rejected ones. A Reader is not safe for concurrent use.
type Reader struct {
	opts Options
	enc  layout.Encoding
	src  *sourceReader
	in   io.Reader // the decoded text; nil until the first Next for gzip
	zr   *zstd.Decoder
	gr   *gzip.Reader

	buf     []byte
	r, w    int   // buf[r:w] is read but not consumed
	scanned int   // bytes of buf[r:w] known to hold no '\n'
	rerr    error // sticky result of the last read: io.EOF or a classified error
	err     error // sticky error of Next

	lineNo int
	stats  Stats
	errs   []LineError
	sc     scanner
	idBuf  []byte
}

// NewReader returns a Reader of the delta in r, encoded with enc (the empty
// Encoding means identity). It reads nothing before the first Next.
func NewReader(r io.Reader, enc layout.Encoding, opts Options) (*Reader, error) {
	if r == nil {
		return nil, errors.New("feed: nil reader")
	}
	fr := &Reader{opts: opts.withDefaults(), enc: enc, src: &sourceReader{r: r}}
	switch enc {
	case layout.Identity, "":
		fr.enc = layout.Identity
		fr.in = fr.src
	case layout.Gzip:
		// Opened by the first Next: reading the gzip header is I/O.
	case layout.Zstd:
		zr, err := getDecoder(fr.src)
		if err != nil {
			return nil, fmt.Errorf("feed: zstd decoder: %w", err)
		}
		fr.zr, fr.in = zr, zr
	default:
		return nil, fmt.Errorf("feed: %w encoding %q: want identity, gzip or zstd", layout.ErrInvalid, enc)
	}
	return fr, nil
}

// Next returns the next valid line. Rejected lines are recorded (Stats,
// Errors) and skipped. At the end of the input Next returns io.EOF; for a
// corrupt, truncated or empty gzip or zstd stream, an error wrapping
// ErrCorrupt; for a failure of the underlying reader, an error wrapping
// it. An error is final: later calls return it again.
func (r *Reader) Next() (Line, error) {
	if r.err != nil {
		return Line{}, r.err
	}
	if r.in == nil {
		if err := r.openGzip(); err != nil {
			r.err = err
			return Line{}, err
		}
	}
	for {
		b, err := r.readLine()
		if err != nil {
			r.err = err
			return Line{}, err
		}
		if l, ok := r.parse(b); ok {
			return l, nil
		}
	}
}

// Stats returns the counts of what was read so far.
func (r *Reader) Stats() Stats { return r.stats }

// Errors returns a copy of the first Options.KeepErrors line errors, in
// line order.
func (r *Reader) Errors() []LineError { return slices.Clone(r.errs) }

// Close releases the decoders and buffers; it does not close the
// underlying reader. Next returns ErrClosed afterwards.
func (r *Reader) Close() error {
	var err error
	if r.zr != nil {
		putDecoder(r.zr)
		r.zr = nil
	}
	if r.gr != nil {
		err = r.gr.Close()
		r.gr = nil
	}
	r.in, r.buf, r.idBuf = nil, nil, nil
	r.sc = scanner{}
	r.r, r.w, r.scanned = 0, 0, 0
	r.err = ErrClosed
	return err
}

// decoders keeps zstd decoders between Readers: a new one allocates its
// window and history buffers, which costs more than decoding a small delta.
var decoders sync.Pool // of *zstd.Decoder

func getDecoder(src io.Reader) (*zstd.Decoder, error) {
	if d, ok := decoders.Get().(*zstd.Decoder); ok {
		if err := d.Reset(src); err == nil {
			return d, nil
		}
		d.Close()
	}
	return zstd.NewReader(src,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxWindow))
}

// putDecoder returns d to the pool, holding no reference to its input.
func putDecoder(d *zstd.Decoder) {
	if err := d.Reset(nil); err != nil {
		d.Close()
		return
	}
	decoders.Put(d)
}

func (r *Reader) openGzip() error {
	gr, err := gzip.NewReader(r.src)
	if err != nil {
		return r.classify(err)
	}
	r.gr, r.in = gr, gr
	return nil
}

// sourceReader remembers the error of the underlying reader, so that a
// failure to read is told apart from a corrupt stream.
type sourceReader struct {
	r   io.Reader
	n   int64
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// classify turns an error from the decoded text into what Next returns.
func (r *Reader) classify(err error) error {
	switch {
	case r.src.err != nil:
		return fmt.Errorf("feed: read: %w", r.src.err)
	case r.enc == layout.Identity:
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("feed: read: %w", err)
	case err == io.EOF && r.src.n == 0:
		return fmt.Errorf("feed: %s: %w: empty stream", r.enc, ErrCorrupt)
	case err == io.EOF:
		return io.EOF
	}
	return fmt.Errorf("feed: %s: %w: %w", r.enc, ErrCorrupt, err)
}

// fill reads more decoded text into the buffer, first moving the unread
// bytes to its start, and growing it when it is full.
func (r *Reader) fill() {
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if r.w == len(r.buf) {
		n := max(bufSize, min(2*len(r.buf), r.opts.MaxLineBytes+2))
		if n <= len(r.buf) {
			// Unreachable: readLine never lets a line outgrow MaxLineBytes+2.
			r.rerr = errors.New("feed: line buffer full")
			return
		}
		r.buf = append(r.buf[:r.w], make([]byte, n-r.w)...)
		r.buf = r.buf[:cap(r.buf)]
	}
	for range 100 {
		n, err := r.in.Read(r.buf[r.w:])
		r.w += n
		if err != nil {
			r.rerr = r.classify(err)
			return
		}
		if n > 0 {
			return
		}
	}
	r.rerr = fmt.Errorf("feed: read: %w", io.ErrNoProgress)
}

// readLine returns the next physical line without its line ending; lines
// longer than MaxLineBytes are rejected and skipped here without being
// buffered whole. The line is valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(r.buf[r.r+r.scanned:r.w], '\n'); i >= 0 {
			end := r.r + r.scanned + i
			return r.take(end, end+1), nil
		}
		r.scanned = r.w - r.r
		if r.rerr != nil {
			if r.rerr == io.EOF && r.w > r.r {
				return r.take(r.w, r.w), nil
			}
			return nil, r.rerr
		}
		if r.w-r.r > r.opts.MaxLineBytes+1 {
			// Longer than the limit even without a "\r" before its "\n".
			r.lineNo++
			r.tooLong()
			if err := r.skipLine(); err != nil {
				return nil, err
			}
			continue
		}
		r.fill()
	}
}

// take consumes buf[r.r:next] and returns the line buf[r.r:end] without a
// final "\r".
func (r *Reader) take(end, next int) []byte {
	line := r.buf[r.r:end]
	r.stats.DecodedBytes += int64(next - r.r)
	r.r, r.scanned = next, 0
	r.lineNo++
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// skipLine discards the rest of the current line, through its "\n".
func (r *Reader) skipLine() error {
	for {
		if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 {
			r.stats.DecodedBytes += int64(i + 1)
			r.r += i + 1
			r.scanned = 0
			return nil
		}
		r.stats.DecodedBytes += int64(r.w - r.r)
		r.r, r.w, r.scanned = 0, 0, 0
		if r.rerr == io.EOF {
			return nil
		}
		if r.rerr != nil {
			return r.rerr
		}
		r.fill()
	}
}

func (r *Reader) tooLong() {
	reason := ""
	if r.keeping() {
		reason = fmt.Sprintf("line longer than %d bytes", r.opts.MaxLineBytes)
	}
	r.stats.Lines++
	r.reject(CodeLineTooLong, reason)
}

// parse checks one line; ok reports a valid line. Blank lines are neither
// valid nor counted.
func (r *Reader) parse(b []byte) (Line, bool) {
	if r.lineNo == 1 {
		b = bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF"))
	}
	if len(b) > r.opts.MaxLineBytes {
		r.tooLong()
		return Line{}, false
	}
	f, blank, off, msg := r.sc.scanLine(b)
	if blank {
		return Line{}, false
	}
	r.stats.Lines++
	if msg != "" {
		switch {
		case !utf8.Valid(b):
			r.reject(CodeBadUTF8, "the line is not valid UTF-8")
		case r.keeping() && off >= len(b):
			r.reject(CodeBadJSON, "the line ends early: "+msg)
		case r.keeping():
			r.reject(CodeBadJSON, fmt.Sprintf("%s at byte %d", msg, off))
		default:
			r.reject(CodeBadJSON, "")
		}
		return Line{}, false
	}

	var op Op
	if v := f.op; v.end > 0 && b[v.start] == '"' {
		name := b[v.start+1 : v.end-1]
		if v.esc {
			r.idBuf = unescape(r.idBuf[:0], name)
			name = r.idBuf
		}
		switch string(name) {
		case "upsert":
			op = OpUpsert
		case "delete":
			op = OpDelete
		}
	}
	switch {
	case op == 0:
		reason := ""
		if r.keeping() {
			reason = opReason(b, f.op)
		}
		r.reject(CodeUnknownOp, reason)
		return Line{}, false
	case op == OpDelete && r.opts.Full:
		r.reject(CodeNotAllowedInFull, "a full upload holds only upserts")
		return Line{}, false
	}

	v := f.id
	if v.end == 0 || b[v.start] == 'n' {
		r.reject(CodeMissingID, "no id")
		return Line{}, false
	}
	if b[v.start] != '"' {
		r.reject(CodeBadID, "id is not a JSON string")
		return Line{}, false
	}
	id := b[v.start+1 : v.end-1]
	if v.esc {
		r.idBuf = unescape(r.idBuf[:0], id)
		id = r.idBuf
	}
	if len(id) == 0 || len(id) > 256 {
		reason := ""
		if r.keeping() {
			reason = fmt.Sprintf("id of %d bytes, want 1-256", len(id))
		}
		r.reject(CodeBadID, reason)
		return Line{}, false
	}

	var product []byte
	p := f.product
	hasProduct := p.end > 0 && b[p.start] != 'n'
	switch {
	case op == OpUpsert && !hasProduct:
		r.reject(CodeBadProduct, "upsert without a product")
		return Line{}, false
	case op == OpUpsert && b[p.start] != '{':
		r.reject(CodeBadProduct, "product is not a JSON object")
		return Line{}, false
	case op == OpDelete && hasProduct:
		r.reject(CodeBadProduct, "delete with a product")
		return Line{}, false
	case op == OpUpsert:
		product = b[p.start:p.end:p.end]
	}

	l := Line{Number: r.lineNo, Op: op, ID: string(id), Product: product}
	if err := layout.ValidateProductID(l.ID); err != nil {
		// Not expected: scanLine accepts only valid UTF-8 and unescape
		// produces valid UTF-8; layout owns the rule all the same.
		r.reject(CodeBadID, err.Error())
		return Line{}, false
	}
	r.stats.Valid++
	if op == OpUpsert {
		r.stats.Upserts++
	} else {
		r.stats.Deletes++
	}
	return l, true
}

func opReason(b []byte, v span) string {
	switch {
	case v.end == 0 || b[v.start] == 'n':
		return "no op"
	case b[v.start] != '"':
		return "op is not a JSON string"
	case v.end-v.start > 34:
		return "unknown op, want upsert or delete"
	}
	return fmt.Sprintf("unknown op %s, want upsert or delete", b[v.start:v.end])
}

// keeping reports whether the next line error will be kept, so that its
// reason is worth formatting.
func (r *Reader) keeping() bool { return len(r.errs) < r.opts.KeepErrors }

// reject counts the current line as rejected and keeps its error while
// fewer than KeepErrors are kept.
func (r *Reader) reject(code, reason string) {
	r.stats.Rejected++
	if r.keeping() {
		r.errs = append(r.errs, LineError{Line: r.lineNo, Code: code, Reason: reason})
	}
}
