// Package feed reads product-feed deltas: the NDJSON files that sites upload.
//
// # Format
//
// A delta is UTF-8 text, optionally gzip or zstd encoded (layout.Encoding),
// holding one JSON object per line:
//
//	{"op":"upsert","id":"sku-1","product":{...any JSON object...}}
//	{"op":"delete","id":"sku-1"}
//
// Lines end with "\n" or "\r\n"; a final line without a newline is a line.
// Lines that are empty or hold only JSON whitespace are skipped: they are
// neither counted nor errors, but they keep their place in the numbering,
// which counts the physical lines of the decoded text from 1. A UTF-8 byte
// order mark at the start of the text is ignored.
//
// The keys "op", "id" and "product" may come in any order, with whitespace
// wherever JSON allows it; key matching is exact (case-sensitive) after JSON
// unescaping, other keys are ignored, and when a key repeats, its last value
// wins, as in encoding/json. A JSON null counts as an absent value.
//
//   - op is the string "upsert" or "delete".
//   - id is a JSON string whose unescaped value is a product id
//     (layout.ValidateProductID: 1-256 bytes of UTF-8). Escapes are decoded
//     as encoding/json does, a lone surrogate becoming U+FFFD.
//   - product is a JSON object on an upsert and absent on a delete.
//   - A full upload (Options.Full) holds only upserts.
//
// A line that breaks a rule is rejected with a LineError and one code, the
// first that applies in this order: CodeLineTooLong (over
// Options.MaxLineBytes, whatever the line holds), CodeBadUTF8, CodeBadJSON
// (including a line that is not a JSON object), CodeUnknownOp,
// CodeNotAllowedInFull, CodeMissingID, CodeBadID, CodeBadProduct. A
// rejected line never stops the reading; the caller decides with
// BudgetExceeded whether the delta as a whole is rejected.
//
// A gzip or zstd stream that is corrupt, truncated or empty is not a line
// error: it makes the whole file unreadable, and Reader.Next returns an
// error wrapping ErrCorrupt. The same input always gives the same lines,
// errors and statistics.
//
// Memory stays bounded whatever the size of the input: about MaxLineBytes
// plus fixed buffers (and a zstd window of at most 128 MiB, which the
// stream itself declares).
package feed

import (
	"errors"
	"fmt"
)

// Op is the operation of a line.
type Op uint8

// Operations. The zero Op is not a valid operation.
const (
	OpUpsert Op = iota + 1
	OpDelete
)

// String returns "upsert" or "delete".
func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// MarshalText encodes an Op as its name.
func (o Op) MarshalText() ([]byte, error) {
	if o != OpUpsert && o != OpDelete {
		return nil, fmt.Errorf("feed: invalid op %d", uint8(o))
	}
	return []byte(o.String()), nil
}

// Line is a valid line of a delta.
type Line struct {
	// Number is the 1-based physical line number in the decoded text.
	Number int
	Op     Op
	// ID is the unescaped product id; it passes layout.ValidateProductID.
	ID string
	// Product holds the raw bytes of the product object of an upsert,
	// exactly as in the input; it is nil for a delete. It points into the
	// Reader's buffer and is valid only until the next call to Next: a
	// caller that keeps it must copy it.
	Product []byte
}

// Codes of line errors.
const (
	CodeBadJSON          = "bad_json"
	CodeMissingID        = "missing_id"
	CodeBadID            = "bad_id"
	CodeLineTooLong      = "line_too_long"
	CodeUnknownOp        = "unknown_op"
	CodeBadProduct       = "bad_product"
	CodeNotAllowedInFull = "not_allowed_in_full"
	CodeBadUTF8          = "bad_utf8"
)

// LineError is a rejected line: its number, a Code* constant and a reason
// for people.
type LineError struct {
	Line   int    `json:"line"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

func (e LineError) Error() string {
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Code, e.Reason)
}

// DefaultMaxLineBytes is the longest line accepted by default (1 MiB).
const DefaultMaxLineBytes = 1 << 20

// DefaultKeepErrors is how many line errors a Reader keeps by default.
const DefaultKeepErrors = 100

// Options of a Reader. The zero value reads a delta with the defaults.
type Options struct {
	// Full marks a full upload: only upserts are allowed.
	Full bool
	// MaxLineBytes is the longest line accepted, not counting its line
	// ending; 0 means DefaultMaxLineBytes.
	MaxLineBytes int
	// KeepErrors is how many LineErrors Errors keeps (the first ones);
	// 0 means DefaultKeepErrors and a negative value keeps none. Every
	// rejected line is counted in Stats all the same.
	KeepErrors int
}

func (o Options) withDefaults() Options {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	switch {
	case o.KeepErrors == 0:
		o.KeepErrors = DefaultKeepErrors
	case o.KeepErrors < 0:
		o.KeepErrors = 0
	}
	return o
}

// Stats counts what a Reader has read so far; after Next returned io.EOF
// they describe the whole file. Lines == Valid + Rejected and
// Valid == Upserts + Deletes always hold.
type Stats struct {
	// Lines counts the non-blank lines.
	Lines    int64 `json:"lines"`
	Valid    int64 `json:"valid"`
	Rejected int64 `json:"rejected"`
	Upserts  int64 `json:"upserts"`
	Deletes  int64 `json:"deletes"`
	// DecodedBytes counts the bytes of decoded text consumed, line endings
	// and skipped lines included.
	DecodedBytes int64 `json:"decodedBytes"`
}

// BudgetExceeded reports whether a delta with these statistics exceeds the
// error budget and must be rejected as a whole: when strict, any rejected
// line; otherwise more than 1 % of the lines rejected (exactly 1 % is
// within the budget). A file without lines never exceeds it.
func BudgetExceeded(s Stats, strict bool) bool {
	if strict {
		return s.Rejected > 0
	}
	return s.Rejected*100 > s.Lines
}

// ErrCorrupt is wrapped by the error Next returns when a gzip or zstd stream
// is corrupt, truncated or empty: the file is unreadable.
var ErrCorrupt = errors.New("corrupt compressed stream")

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("feed: reader closed")
