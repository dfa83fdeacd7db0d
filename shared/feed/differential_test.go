package feed

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// reference decides a line the straightforward way, with encoding/json.
// It decodes into a map rather than a struct because encoding/json matches
// struct fields case-insensitively, while the format's keys are exact; a
// map also keeps the last of duplicate keys, as the format says.
func reference(line []byte, full bool) (l gotLine, code string, blank bool) {
	trimmed := bytes.TrimLeft(line, " \t\r")
	switch {
	case len(trimmed) == 0:
		return l, "", true
	case !utf8.Valid(line):
		return l, CodeBadUTF8, false
	case !json.Valid(line) || trimmed[0] != '{':
		return l, CodeBadJSON, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		panic(err) // json.Valid said it is an object
	}
	var op string
	if raw, ok := m["op"]; ok && raw[0] == '"' {
		_ = json.Unmarshal(raw, &op)
	}
	switch op {
	case "upsert":
		l.Op = OpUpsert
	case "delete":
		l.Op = OpDelete
	default:
		return l, CodeUnknownOp, false
	}
	if full && l.Op == OpDelete {
		return l, CodeNotAllowedInFull, false
	}
	raw, ok := m["id"]
	switch {
	case !ok || string(raw) == "null":
		return l, CodeMissingID, false
	case raw[0] != '"':
		return l, CodeBadID, false
	}
	_ = json.Unmarshal(raw, &l.ID)
	if layout.ValidateProductID(l.ID) != nil {
		return l, CodeBadID, false
	}
	product, ok := m["product"]
	hasProduct := ok && string(product) != "null"
	switch {
	case l.Op == OpUpsert && (!hasProduct || product[0] != '{'):
		return l, CodeBadProduct, false
	case l.Op == OpDelete && hasProduct:
		return l, CodeBadProduct, false
	case l.Op == OpUpsert:
		l.Product = string(product)
	}
	return l, "", false
}

// lineGen makes random lines: mostly well-formed delta lines with tricky
// keys, values, escapes and whitespace, some of them then damaged.
type lineGen struct{ rng *rand.Rand }

func (g lineGen) pick(s ...string) string { return s[g.rng.IntN(len(s))] }

func (g lineGen) ws() string {
	if g.rng.IntN(4) != 0 {
		return ""
	}
	return g.pick(" ", "\t", "  ", "\r", " \t ")
}

func (g lineGen) str() string {
	var b strings.Builder
	b.WriteByte('"')
	for range g.rng.IntN(6) {
		b.WriteString(g.pick("a", "sku-1", " ", "é", "日本", "😀", `\"`, `\\`, `\/`, `\n`, `\t`, `\b`,
			`\u00e9`, `\u0000`, `\uD83D\uDE00`, `\ud800`, `\udc00x`, `\ud800\u0041`, `\uFFFF`, "\x7f"))
	}
	if g.rng.IntN(50) == 0 {
		b.WriteString(g.pick(`\x`, "\t", `\u12`, "\x01", "\xff", "\xc3"))
	}
	b.WriteByte('"')
	return b.String()
}

func (g lineGen) value(depth int) string {
	n := 8
	if depth > 3 {
		n = 6 // no more containers
	}
	switch g.rng.IntN(n) {
	case 0, 1:
		return g.str()
	case 2:
		return g.pick("0", "-0", "12", "-1.5", "3.25e10", "1E-2", "2e+3", "123456789012345678901234567890")
	case 3:
		return g.pick("true", "false", "null")
	case 4:
		if g.rng.IntN(20) == 0 {
			return g.pick("01", "1.", ".5", "+1", "-", "1e", "tru", "nul", "NaN", "'x'", "")
		}
		return g.str()
	case 5:
		return g.pick("{}", "[]", "[ ]", "{ }")
	case 6:
		var b strings.Builder
		b.WriteByte('[')
		for i := range g.rng.IntN(4) {
			if i > 0 {
				b.WriteString(g.ws() + "," + g.ws())
			}
			b.WriteString(g.value(depth + 1))
		}
		b.WriteByte(']')
		return b.String()
	default:
		return g.object(depth+1, false)
	}
}

func (g lineGen) object(depth int, top bool) string {
	var b strings.Builder
	b.WriteString("{" + g.ws())
	for i := range g.rng.IntN(5) {
		if i > 0 {
			b.WriteString(g.ws() + "," + g.ws())
		}
		var key, val string
		if top {
			key = g.pick(`"op"`, `"op"`, `"id"`, `"id"`, `"product"`, `"product"`, `"extra"`, `"ID"`, `"Op"`,
				`"\u006fp"`, `"i\u0064"`, `"pro\u0064uct"`, `"op "`, `""`)
			switch key {
			case `"op"`, `"\u006fp"`:
				val = g.pick(`"upsert"`, `"delete"`, `"upsert"`, `"delete"`, `"upser\u0074"`, `"merge"`, `"UPSERT"`, "null", "1", `""`)
			case `"id"`, `"i\u0064"`:
				val = g.pick(g.str(), g.str(), `"sku-1"`, `""`, "null", "7", `["x"]`,
					`"`+strings.Repeat("x", 256)+`"`, `"`+strings.Repeat("x", 257)+`"`, `"`+strings.Repeat(`\u00e9`, 128)+`"`)
			case `"product"`, `"pro\u0064uct"`:
				val = g.pick(g.object(depth+1, false), g.object(depth+1, false), g.value(depth+1), "null", "{}")
			default:
				val = g.value(depth + 1)
			}
		} else {
			key, val = g.str(), g.value(depth+1)
		}
		b.WriteString(key + g.ws() + ":" + g.ws() + val)
	}
	b.WriteString(g.ws() + "}")
	return b.String()
}

// line returns a line without a line ending.
func (g lineGen) line() string {
	var s string
	switch g.rng.IntN(40) {
	case 0:
		s = g.ws()
	case 1:
		s = g.value(0)
	default:
		// Mostly shaped like real lines.
		s = g.object(0, true)
		if g.rng.IntN(2) == 0 {
			s = g.pick(`{"op":"upsert","id":`+g.str()+`,"product":`+g.object(1, false)+`}`,
				`{"op":"delete","id":`+g.str()+`}`, s)
		}
		s = g.ws() + s + g.ws()
	}
	if g.rng.IntN(8) == 0 && len(s) > 0 {
		b := []byte(s)
		i := g.rng.IntN(len(b))
		switch g.rng.IntN(4) {
		case 0:
			b = b[:i]
		case 1:
			b = append(b[:i], b[i+1:]...)
		case 2:
			ins := g.pick("\xff", "\x01", "{", "}", "\"", ",", ":", "\\", "x", "0", "\xc3", "[", " ")
			b = append(b[:i], append([]byte(ins), b[i:]...)...)
		default:
			b = append(b, b[i:]...)
		}
		s = string(b)
	}
	return s
}

// TestDifferential checks the Reader against reference on random lines.
func TestDifferential(t *testing.T) {
	for seed := range uint64(4) {
		g := lineGen{rand.New(rand.NewPCG(seed, 42))}
		var lines []string
		var in strings.Builder
		for range 20000 {
			l := g.line()
			lines = append(lines, l)
			in.WriteString(l + g.pick("\n", "\n", "\r\n"))
		}
		for _, full := range []bool{false, true} {
			got := readAll(t, strings.NewReader(in.String()), layout.Identity, Options{Full: full, KeepErrors: 1 << 30})
			if got.Err != nil {
				t.Fatal(got.Err)
			}
			checkStats(t, got)
			valid := map[int]gotLine{}
			for _, l := range got.Lines {
				valid[l.Number] = l
			}
			codes := map[int]string{}
			for _, e := range got.Errors {
				codes[e.Line] = e.Code
			}
			seen := map[string]int{}
			fails := 0
			for i, line := range lines {
				n := i + 1
				want, code, blank := reference([]byte(line), full)
				switch {
				case blank:
					seen["blank"]++
					if _, ok := valid[n]; ok || codes[n] != "" {
						t.Errorf("seed %d full %v line %d %q: blank, got %+v %q", seed, full, n, line, valid[n], codes[n])
						fails++
					}
				case code != "":
					seen[code]++
					if codes[n] != code {
						t.Errorf("seed %d full %v line %d %q: want %s, got %+v %q", seed, full, n, line, code, valid[n], codes[n])
						fails++
					}
				default:
					seen["valid "+want.Op.String()]++
					want.Number = n
					if valid[n] != want {
						t.Errorf("seed %d full %v line %d %q: want %+v, got %+v %q", seed, full, n, line, want, valid[n], codes[n])
						fails++
					}
				}
				if fails > 10 {
					t.Fatal("too many differences")
				}
			}
			t.Logf("seed %d full %v: %v", seed, full, seen)
			// The generator must reach every outcome.
			for _, k := range []string{"blank", "valid upsert", CodeBadUTF8, CodeBadJSON, CodeUnknownOp, CodeMissingID, CodeBadID, CodeBadProduct} {
				if seen[k] == 0 {
					t.Errorf("seed %d full %v: no line with outcome %q (%v)", seed, full, k, seen)
				}
			}
			if full && seen[CodeNotAllowedInFull] == 0 || !full && seen["valid delete"] == 0 {
				t.Errorf("seed %d full %v: outcomes %v", seed, full, seen)
			}
		}
	}
}
