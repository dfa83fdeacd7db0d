package sqsserver

import (
	"encoding/base64"
	"strconv"
	"sync"
	"unicode/utf8"
)

// jsonWriter appends a JSON document to a byte slice. The hot responses
// (send, receive, delete) are written with it instead of encoding/json to keep
// them free of reflection and intermediate maps.
type jsonWriter struct {
	b     []byte
	comma bool // the next member or element needs a leading comma
}

// writerPool recycles response buffers between requests.
type writerPool struct{ p sync.Pool }

func (wp *writerPool) get() *jsonWriter {
	if w, ok := wp.p.Get().(*jsonWriter); ok {
		w.b = w.b[:0]
		w.comma = false
		return w
	}
	return &jsonWriter{b: make([]byte, 0, 4096)}
}

func (wp *writerPool) put(w *jsonWriter) {
	if cap(w.b) > 4<<20 {
		return // do not keep huge buffers alive
	}
	wp.p.Put(w)
}

func (w *jsonWriter) sep() {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.comma = true
}

func (w *jsonWriter) open() {
	w.sep()
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *jsonWriter) close() {
	w.b = append(w.b, '}')
	w.comma = true
}

func (w *jsonWriter) openArray() {
	w.sep()
	w.b = append(w.b, '[')
	w.comma = false
}

func (w *jsonWriter) closeArray() {
	w.b = append(w.b, ']')
	w.comma = true
}

// key writes a member name; the value written next needs no separator.
func (w *jsonWriter) key(k string) {
	w.sep()
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
	w.comma = false
}

func (w *jsonWriter) str(s string) {
	w.sep()
	w.b = appendJSONString(w.b, s)
}

func (w *jsonWriter) strField(k, v string) {
	w.key(k)
	w.str(v)
}

func (w *jsonWriter) boolField(k string, v bool) {
	w.key(k)
	w.sep()
	w.b = strconv.AppendBool(w.b, v)
}

// intStrField writes an integer as a JSON string, the way SQS returns
// numeric attributes.
func (w *jsonWriter) intStrField(k string, v int64) {
	w.key(k)
	w.sep()
	w.b = append(w.b, '"')
	w.b = strconv.AppendInt(w.b, v, 10)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) bytesField(k string, v []byte) {
	w.key(k)
	w.sep()
	w.b = append(w.b, '"')
	w.b = base64.StdEncoding.AppendEncode(w.b, v)
	w.b = append(w.b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 is replaced by
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
