package feed

import (
	"encoding/binary"
	"math/bits"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of objects and arrays accepted, the line
// object included; it is the limit of encoding/json, so that both accept
// the same documents.
const maxDepth = 10000

// span locates a JSON value in a line: line[start:end]. end == 0 means the
// key was absent.
type span struct {
	start, end int
	// esc reports that a string value holds escapes.
	esc bool
}

// fields holds the last value of each key of the line object that matters.
type fields struct {
	op, id, product span
}

// scanner validates lines as JSON and finds their fields. Its buffers are
// reused from line to line.
type scanner struct {
	stack   []byte // closing bytes of the open containers
	scratch []byte // unescaped keys
}

// scanLine checks that b is exactly one JSON object, surrounded by optional
// whitespace, with strings of valid UTF-8, and returns the spans of its
// op, id and product values. blank reports a line of whitespace only. On
// failure msg says what is wrong at byte off of the line.
func (s *scanner) scanLine(b []byte) (f fields, blank bool, off int, msg string) {
	i := skipSpace(b, 0)
	if i == len(b) {
		return f, true, 0, ""
	}
	if b[i] != '{' {
		return f, false, i, "the line is not a JSON object"
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return f, false, i, "want a key"
			}
			ks := i
			var esc bool
			if i, esc, msg = scanString(b, i); msg != "" {
				return f, false, i, msg
			}
			key := b[ks+1 : i-1]
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return f, false, i, "want ':' after a key"
			}
			i = skipSpace(b, i+1)
			v := span{start: i}
			if i, v.esc, msg = s.scanValue(b, i, 1); msg != "" {
				return f, false, i, msg
			}
			v.end = i
			if esc {
				s.scratch = unescape(s.scratch[:0], key)
				key = s.scratch
			}
			switch string(key) {
			case "op":
				f.op = v
			case "id":
				f.id = v
			case "product":
				f.product = v
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return f, false, i, "want ',' or '}' in the line object"
		}
	}
	if i = skipSpace(b, i); i != len(b) {
		return f, false, i, "data after the line object"
	}
	return f, false, 0, ""
}

// scanValue checks the JSON value that starts at b[i], inside depth open
// containers, and returns the index just after it. esc reports escapes in
// a value that is a string (and means nothing for other values).
func (s *scanner) scanValue(b []byte, i, depth int) (end int, esc bool, msg string) {
	s.stack = s.stack[:0]
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return i, false, "unexpected end of line, want a value"
		}
		switch c := b[i]; {
		case c == '"':
			if i, esc, msg = scanString(b, i); msg != "" {
				return i, false, msg
			}
		case c == '{' || c == '[':
			if depth+len(s.stack)+1 > maxDepth {
				return i, false, "nesting too deep"
			}
			closer := c + 2 // '{'+2 == '}', '['+2 == ']'
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer {
				i++
				break
			}
			s.stack = append(s.stack, closer)
			if c == '{' {
				if i, msg = scanKey(b, i); msg != "" {
					return i, false, msg
				}
			}
			continue
		case c == 't':
			if i, msg = scanLiteral(b, i, "true"); msg != "" {
				return i, false, msg
			}
		case c == 'f':
			if i, msg = scanLiteral(b, i, "false"); msg != "" {
				return i, false, msg
			}
		case c == 'n':
			if i, msg = scanLiteral(b, i, "null"); msg != "" {
				return i, false, msg
			}
		case c == '-' || isDigit(c):
			if i, msg = scanNumber(b, i); msg != "" {
				return i, false, msg
			}
		default:
			return i, false, "invalid character, want a value"
		}
		// A value ends at b[i]: close containers until the next value.
		for {
			n := len(s.stack)
			if n == 0 {
				return i, esc, ""
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, false, "unexpected end of line in an object or array"
			}
			closer := s.stack[n-1]
			if b[i] == closer {
				s.stack = s.stack[:n-1]
				i++
				continue
			}
			if b[i] != ',' {
				if closer == '}' {
					return i, false, "want ',' or '}' in an object"
				}
				return i, false, "want ',' or ']' in an array"
			}
			i = skipSpace(b, i+1)
			if closer == '}' {
				if i, msg = scanKey(b, i); msg != "" {
					return i, false, msg
				}
			}
			break
		}
	}
}

// scanKey checks an object key and its colon at b[i] and returns the index
// of the value that follows.
func scanKey(b []byte, i int) (int, string) {
	if i >= len(b) || b[i] != '"' {
		return i, "want a key"
	}
	i, _, msg := scanString(b, i)
	if msg != "" {
		return i, msg
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, "want ':' after a key"
	}
	return skipSpace(b, i+1), ""
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// scanString checks the string that starts with the quote at b[i] and
// returns the index just after its closing quote and whether it holds
// escapes. The string must be valid UTF-8.
func scanString(b []byte, i int) (end int, esc bool, msg string) {
	i++
	for {
		// Skip 8 plain bytes at a time: printable ASCII other than '"' and
		// '\\'. Borrows only start at a flagged byte, so the lowest flagged
		// byte of m is the first byte that needs a look.
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			m := ((x - ones*0x20) | ((x ^ ones*'"') - ones) | ((x ^ ones*'\\') - ones) | x) & highs
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return i, false, "unterminated string"
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc, ""
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return i, false, "unterminated string"
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, false, "invalid \\u escape in a string"
				}
				i += 6
			default:
				return i, false, "invalid escape in a string"
			}
		case c < 0x20:
			return i, false, "control character in a string"
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false, "invalid UTF-8 in a string"
			}
			i += size
		}
	}
}

// scanNumber checks the JSON number at b[i] and returns the index after it.
func scanNumber(b []byte, i int) (int, string) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return start, "invalid number"
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || !isDigit(b[i+1]) {
			return start, "invalid number"
		}
		i = skipDigits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return start, "invalid number"
		}
		i = skipDigits(b, i)
	}
	return i, ""
}

func scanLiteral(b []byte, i int, lit string) (int, string) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, "invalid literal, want " + lit
	}
	return i + len(lit), ""
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unescape appends to dst the value of the JSON string content s (without
// its quotes), which scanString accepted. It decodes as encoding/json does:
// a \u escape of a lone surrogate becomes U+FFFD.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if d := utf16.DecodeRune(r, hex4(s[i+2:])); d != unicode.ReplacementChar {
						i += 6
						dst = utf8.AppendRune(dst, d)
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// hex4 decodes the four hex digits at the start of s, which scanString
// checked.
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
