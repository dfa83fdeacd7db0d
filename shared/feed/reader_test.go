package feed

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// got is everything a Reader produced, with products copied.
type got struct {
	Lines  []gotLine
	Stats  Stats
	Errors []LineError
	Err    error
}

type gotLine struct {
	Number  int
	Op      Op
	ID      string
	Product string
}

func readAll(t testing.TB, in io.Reader, enc layout.Encoding, opts Options) got {
	t.Helper()
	r, err := NewReader(in, enc, opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	defer r.Close()
	var g got
	for {
		l, err := r.Next()
		if err != nil {
			if err != io.EOF {
				g.Err = err
			}
			break
		}
		g.Lines = append(g.Lines, gotLine{l.Number, l.Op, l.ID, string(l.Product)})
	}
	g.Stats, g.Errors = r.Stats(), r.Errors()
	return g
}

func up(n int, id, product string) gotLine { return gotLine{n, OpUpsert, id, product} }
func del(n int, id string) gotLine         { return gotLine{n, OpDelete, id, ""} }

func TestReader(t *testing.T) {
	long := strings.Repeat("é", 128) // 256 bytes
	tests := []struct {
		name  string
		in    string
		opts  Options
		lines []gotLine
		errs  []LineError // Reason is not compared
	}{
		{
			name:  "upsert and delete",
			in:    `{"op":"upsert","id":"sku-1","product":{"title":"A"}}` + "\n" + `{"op":"delete","id":"sku-2"}` + "\n",
			lines: []gotLine{up(1, "sku-1", `{"title":"A"}`), del(2, "sku-2")},
		},
		{
			name: "every error code, valid lines around them",
			in: `{"op":"upsert","id":"a","product":{}}
{"op":"upsert","id":"b","product":{}
{"op":"upsert","product":{}}
{"op":"upsert","id":"","product":{}}
{"op":"merge","id":"c","product":{}}
{"op":"upsert","id":"d"}
{"op":"delete","id":"e","product":{}}
{"op":"upsert","id":"f","product":{"t":"` + "\xff" + `"}}
{"op":"upsert","id":"` + strings.Repeat("x", 100) + `","product":{}}
{"op":"delete","id":"g"}
`,
			opts:  Options{MaxLineBytes: 100},
			lines: []gotLine{up(1, "a", `{}`), del(10, "g")},
			errs: []LineError{
				{Line: 2, Code: CodeBadJSON}, {Line: 3, Code: CodeMissingID}, {Line: 4, Code: CodeBadID},
				{Line: 5, Code: CodeUnknownOp}, {Line: 6, Code: CodeBadProduct}, {Line: 7, Code: CodeBadProduct},
				{Line: 8, Code: CodeBadUTF8}, {Line: 9, Code: CodeLineTooLong},
			},
		},
		{
			name:  "not allowed in full",
			in:    `{"op":"upsert","id":"a","product":{}}` + "\n" + `{"op":"delete","id":"a"}` + "\n" + `{"op":"delete"}` + "\n",
			opts:  Options{Full: true},
			lines: []gotLine{up(1, "a", `{}`)},
			errs:  []LineError{{Line: 2, Code: CodeNotAllowedInFull}, {Line: 3, Code: CodeNotAllowedInFull}},
		},
		{
			name:  "crlf",
			in:    "{\"op\":\"delete\",\"id\":\"a\"}\r\n{\"op\":\"delete\",\"id\":\"b\"}\r\n\r\n{\"op\":\"delete\",\"id\":\"c\"}\r",
			lines: []gotLine{del(1, "a"), del(2, "b"), del(4, "c")},
		},
		{
			name:  "empty and blank lines keep their numbers but are not counted",
			in:    "\n\n{\"op\":\"delete\",\"id\":\"a\"}\n \t \n\n{\"op\":\"delete\",\"id\":\"b\"}\n\n",
			lines: []gotLine{del(3, "a"), del(6, "b")},
		},
		{
			name:  "last line without newline",
			in:    "{\"op\":\"delete\",\"id\":\"a\"}\n{\"op\":\"upsert\",\"id\":\"b\",\"product\":{\"x\":[1,2]}}",
			lines: []gotLine{del(1, "a"), up(2, "b", `{"x":[1,2]}`)},
		},
		{
			name:  "bad last line without newline",
			in:    "{\"op\":\"delete\",\"id\":\"a\"}\n{\"op\":\"delete\",\"id\":",
			lines: []gotLine{del(1, "a")},
			errs:  []LineError{{Line: 2, Code: CodeBadJSON}},
		},
		{
			name: "escaped ids",
			in: `{"op":"delete","id":"a\"b\u00e9"}
{"op":"delete","id":"\ud83d\ude00\/\\\t"}
{"op":"delete","id":"\ud800x"}
{"op":"delete","id":"\ud800\u0041"}
{"op":"delete","id":"\u0000"}
`,
			lines: []gotLine{del(1, "a\"bé"), del(2, "😀/\\\t"), del(3, "\uFFFDx"), del(4, "\uFFFDA"), del(5, "\x00")},
		},
		{
			name:  "keys in any order, whitespace anywhere, extra keys ignored",
			in:    " { \"product\" :\t{ \"a\" : [ 1 , { } , [ ] ] } , \"extra\" : {\"op\":\"delete\"} , \"id\" : \"x\" , \"op\" : \"upsert\" } \n",
			lines: []gotLine{up(1, "x", `{ "a" : [ 1 , { } , [ ] ] }`)},
		},
		{
			name: "duplicate keys: the last one wins",
			in: `{"op":"delete","op":"upsert","id":"a","id":"b","product":1,"product":{"c":2}}
{"op":"upsert","id":"a","id":null,"product":{}}
{"op":"upsert","product":{},"id":"a","product":null}
{"op":"delete","id":"a","product":{},"product":null}
`,
			lines: []gotLine{up(1, "b", `{"c":2}`), del(4, "a")},
			errs:  []LineError{{Line: 2, Code: CodeMissingID}, {Line: 3, Code: CodeBadProduct}},
		},
		{
			name:  "escaped keys and op",
			in:    `{"\u006fp":"upser\u0074","i\u0064":"x","\u0070roduct":{}}` + "\n",
			lines: []gotLine{up(1, "x", `{}`)},
		},
		{
			name: "keys are case-sensitive",
			in: `{"OP":"upsert","id":"x","product":{}}
{"op":"upsert","Id":"x","product":{}}
{"op":"Upsert","id":"x","product":{}}
`,
			errs: []LineError{{Line: 1, Code: CodeUnknownOp}, {Line: 2, Code: CodeMissingID}, {Line: 3, Code: CodeUnknownOp}},
		},
		{
			name: "ids",
			in: `{"op":"delete","id":"` + long + `"}
{"op":"delete","id":"` + long + `x"}
{"op":"delete","id":""}
{"op":"delete","id":7}
{"op":"delete","id":["a"]}
{"op":"delete","id":null}
{"op":"delete"}
`,
			lines: []gotLine{del(1, long)},
			errs: []LineError{
				{Line: 2, Code: CodeBadID}, {Line: 3, Code: CodeBadID}, {Line: 4, Code: CodeBadID},
				{Line: 5, Code: CodeBadID}, {Line: 6, Code: CodeMissingID}, {Line: 7, Code: CodeMissingID},
			},
		},
		{
			name: "products",
			in: `{"op":"upsert","id":"a","product":[]}
{"op":"upsert","id":"a","product":"x"}
{"op":"upsert","id":"a","product":null}
{"op":"upsert","id":"a"}
{"op":"delete","id":"a","product":null}
{"op":"delete","id":"a","product":1}
{"op":"upsert","id":"a","product":{"nested":{"deep":[{"x":null,"y":true,"z":false,"n":-1.5e+3}]}}}
`,
			lines: []gotLine{del(5, "a"), up(7, "a", `{"nested":{"deep":[{"x":null,"y":true,"z":false,"n":-1.5e+3}]}}`)},
			errs: []LineError{
				{Line: 1, Code: CodeBadProduct}, {Line: 2, Code: CodeBadProduct}, {Line: 3, Code: CodeBadProduct},
				{Line: 4, Code: CodeBadProduct}, {Line: 6, Code: CodeBadProduct},
			},
		},
		{
			name: "ops",
			in: `{"op":1,"id":"a"}
{"op":null,"id":"a"}
{"id":"a"}
{"op":"upsert ","id":"a","product":{}}
`,
			errs: []LineError{{Line: 1, Code: CodeUnknownOp}, {Line: 2, Code: CodeUnknownOp}, {Line: 3, Code: CodeUnknownOp}, {Line: 4, Code: CodeUnknownOp}},
		},
		{
			name: "bad json",
			in: `[{"op":"delete","id":"a"}]
"x"
{"op":"delete","id":"a"} {}
{"op":"delete","id":"a",}
{"op":"delete","id":"a"}}
{"op":"delete","id":"a","x":01}
{"op":"delete","id":"a","x":1.}
{"op":"delete","id":"a","x":tru}
{"op":"delete","id":"a","x":"\x"}
{"op":"delete","id":"a","x":"` + "\t" + `"}
{"op":"delete","id":"a","x":[1,]}
{'op':'delete'}
`,
			errs: []LineError{
				{Line: 1, Code: CodeBadJSON}, {Line: 2, Code: CodeBadJSON}, {Line: 3, Code: CodeBadJSON},
				{Line: 4, Code: CodeBadJSON}, {Line: 5, Code: CodeBadJSON}, {Line: 6, Code: CodeBadJSON},
				{Line: 7, Code: CodeBadJSON}, {Line: 8, Code: CodeBadJSON}, {Line: 9, Code: CodeBadJSON},
				{Line: 10, Code: CodeBadJSON}, {Line: 11, Code: CodeBadJSON}, {Line: 12, Code: CodeBadJSON},
			},
		},
		{
			name: "bad utf8 wins over bad json",
			in:   "{\"op\":\xff\n{\"op\":\"delete\",\"id\":\"\xed\xa0\x80\"}\n",
			errs: []LineError{{Line: 1, Code: CodeBadUTF8}, {Line: 2, Code: CodeBadUTF8}},
		},
		{
			name:  "byte order mark",
			in:    "\xEF\xBB\xBF{\"op\":\"delete\",\"id\":\"a\"}\n\xEF\xBB\xBF{\"op\":\"delete\",\"id\":\"b\"}\n",
			lines: []gotLine{del(1, "a")},
			errs:  []LineError{{Line: 2, Code: CodeBadJSON}},
		},
		{
			name:  "exactly MaxLineBytes, with and without CR",
			in:    `{"op":"delete","id":"` + strings.Repeat("a", 8) + "\"}\r\n" + `{"op":"delete","id":"` + strings.Repeat("b", 8) + "\"}\n" + `{"op":"delete","id":"` + strings.Repeat("c", 9) + "\"}\r\n",
			opts:  Options{MaxLineBytes: 31},
			lines: []gotLine{del(1, "aaaaaaaa"), del(2, "bbbbbbbb")},
			errs:  []LineError{{Line: 3, Code: CodeLineTooLong}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := readAll(t, strings.NewReader(tt.in), layout.Identity, tt.opts)
			if g.Err != nil {
				t.Fatalf("error: %v", g.Err)
			}
			if !equalLines(g.Lines, tt.lines) {
				t.Errorf("lines:\n got %+v\nwant %+v", g.Lines, tt.lines)
			}
			if !equalCodes(g.Errors, tt.errs) {
				t.Errorf("errors:\n got %+v\nwant %+v", g.Errors, tt.errs)
			}
			for _, e := range g.Errors {
				if e.Reason == "" {
					t.Errorf("line %d: empty reason", e.Line)
				}
			}
			checkStats(t, g)
			if want := int64(len(tt.in)); g.Stats.DecodedBytes != want {
				t.Errorf("DecodedBytes = %d, want %d", g.Stats.DecodedBytes, want)
			}
		})
	}
}

func equalLines(a, b []gotLine) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalCodes(got, want []LineError) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Line != want[i].Line || got[i].Code != want[i].Code {
			return false
		}
	}
	return true
}

// checkStats checks the invariants of Stats against what was read.
func checkStats(t testing.TB, g got) {
	t.Helper()
	s := g.Stats
	if s.Lines != s.Valid+s.Rejected || s.Valid != s.Upserts+s.Deletes || s.Valid != int64(len(g.Lines)) {
		t.Errorf("inconsistent stats %+v for %d lines", s, len(g.Lines))
	}
	var ups int64
	for _, l := range g.Lines {
		if l.Op == OpUpsert {
			ups++
		}
	}
	if ups != s.Upserts {
		t.Errorf("Upserts = %d, want %d", s.Upserts, ups)
	}
}

func TestKeepErrors(t *testing.T) {
	in := strings.Repeat("x\n", 150) + `{"op":"delete","id":"a"}`
	for _, tt := range []struct {
		keep, want int
	}{{0, DefaultKeepErrors}, {-1, 0}, {3, 3}, {1000, 150}} {
		g := readAll(t, strings.NewReader(in), layout.Identity, Options{KeepErrors: tt.keep})
		if len(g.Errors) != tt.want || g.Stats.Rejected != 150 || len(g.Lines) != 1 || g.Lines[0].Number != 151 {
			t.Errorf("KeepErrors %d: kept %d errors (want %d), stats %+v", tt.keep, len(g.Errors), tt.want, g.Stats)
		}
		for i, e := range g.Errors {
			if e.Line != i+1 {
				t.Errorf("KeepErrors %d: error %d is for line %d", tt.keep, i, e.Line)
			}
		}
	}
}

// TestLongLines checks that a line over the limit is rejected and skipped
// without being buffered, and that reading goes on after it.
func TestLongLines(t *testing.T) {
	head := `{"op":"upsert","id":"big","product":{"d":"`
	tail := `"}}`
	line := func(n int) string { return head + strings.Repeat("a", n-len(head)-len(tail)) + tail }
	first, last := `{"op":"delete","id":"first"}`, `{"op":"delete","id":"last"}`

	t.Run("exactly 1 MiB is a line", func(t *testing.T) {
		g := readAll(t, strings.NewReader(first+"\n"+line(1<<20)+"\r\n"+last), layout.Identity, Options{})
		if len(g.Lines) != 3 || len(g.Lines[1].Product) != 1<<20-len(`{"op":"upsert","id":"big","product":`)-1 || len(g.Errors) != 0 {
			t.Fatalf("got %d lines, errors %+v", len(g.Lines), g.Errors)
		}
	})
	t.Run("1 MiB + 1 in the middle", func(t *testing.T) {
		g := readAll(t, strings.NewReader(first+"\n"+line(1<<20+1)+"\n"+last+"\n"), layout.Identity, Options{})
		want := []gotLine{del(1, "first"), del(3, "last")}
		if !equalLines(g.Lines, want) || !equalCodes(g.Errors, []LineError{{Line: 2, Code: CodeLineTooLong}}) || g.Err != nil {
			t.Fatalf("got %+v, errors %+v, err %v", g.Lines, g.Errors, g.Err)
		}
		checkStats(t, g)
	})
	t.Run("50 MB line streams in bounded memory", func(t *testing.T) {
		const size = 50 << 20
		for _, final := range []bool{false, true} {
			parts := []io.Reader{strings.NewReader(first + "\n" + head), &repeatReader{b: 'a', n: size}}
			if !final {
				parts = append(parts, strings.NewReader(tail+"\n"+last))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			g := readAll(t, io.MultiReader(parts...), layout.Identity, Options{})
			runtime.ReadMemStats(&after)
			want := []gotLine{del(1, "first"), del(3, "last")}
			if final {
				want = want[:1]
			}
			if !equalLines(g.Lines, want) || !equalCodes(g.Errors, []LineError{{Line: 2, Code: CodeLineTooLong}}) || g.Err != nil {
				t.Fatalf("final=%v: got %+v, errors %+v, err %v", final, g.Lines, g.Errors, g.Err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("final=%v: reading a %d MB line allocated %d bytes", final, size>>20, alloc)
			}
		}
	})
}

// repeatReader yields n copies of b without holding them.
type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.n)]
	for i := range p {
		p[i] = r.b
	}
	r.n -= len(p)
	return len(p), nil
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

func TestCompressed(t *testing.T) {
	var plain bytes.Buffer
	for i := range 20000 {
		switch i % 3 {
		case 0:
			plain.WriteString(`{"op":"upsert","id":"sku-` + strings.Repeat("x", i%50) + `","product":{"title":"Product","price":12.5}}` + "\n")
		case 1:
			plain.WriteString(`{"op":"delete","id":"sku-` + strings.Repeat("y", i%50) + "\"}\r\n")
		default:
			plain.WriteString("not json\n")
		}
	}
	want := readAll(t, bytes.NewReader(plain.Bytes()), layout.Identity, Options{})
	if want.Err != nil || want.Stats.Lines != 20000 {
		t.Fatalf("identity: %+v, %v", want.Stats, want.Err)
	}
	for _, tt := range []struct {
		enc  layout.Encoding
		data []byte
	}{
		{layout.Gzip, gzipped(t, plain.Bytes())},
		{layout.Zstd, zstded(t, plain.Bytes())},
	} {
		t.Run(string(tt.enc), func(t *testing.T) {
			g := readAll(t, bytes.NewReader(tt.data), tt.enc, Options{})
			if g.Err != nil || !equalLines(g.Lines, want.Lines) || g.Stats != want.Stats || !equalCodes(g.Errors, want.Errors) {
				t.Fatalf("differs from identity: stats %+v, err %v", g.Stats, g.Err)
			}
			// One byte at a time.
			g = readAll(t, iotest.OneByteReader(bytes.NewReader(tt.data)), tt.enc, Options{})
			if g.Err != nil || g.Stats != want.Stats {
				t.Fatalf("one byte at a time: stats %+v, err %v", g.Stats, g.Err)
			}
		})
		t.Run(string(tt.enc)+"/corrupt", func(t *testing.T) {
			flipped := bytes.Clone(tt.data)
			flipped[len(flipped)/2] ^= 0x55
			for name, in := range map[string][]byte{
				"truncated":      tt.data[:len(tt.data)/2],
				"truncated tail": tt.data[:len(tt.data)-1],
				"flipped":        flipped,
				"empty":          nil,
				"not compressed": plain.Bytes()[:1000],
				"trailing junk":  append(bytes.Clone(tt.data), "junk"...),
			} {
				g := readAll(t, bytes.NewReader(in), tt.enc, Options{})
				if !errors.Is(g.Err, ErrCorrupt) {
					t.Errorf("%s: err = %v, want ErrCorrupt", name, g.Err)
				}
			}
		})
		t.Run(string(tt.enc)+"/read error", func(t *testing.T) {
			boom := errors.New("boom")
			in := io.MultiReader(bytes.NewReader(tt.data[:len(tt.data)/2]), iotest.ErrReader(boom))
			g := readAll(t, in, tt.enc, Options{})
			if !errors.Is(g.Err, boom) || errors.Is(g.Err, ErrCorrupt) {
				t.Errorf("err = %v, want boom and not ErrCorrupt", g.Err)
			}
		})
	}
}

func TestNextAfterEnd(t *testing.T) {
	r, err := NewReader(strings.NewReader(`{"op":"delete","id":"a"}`), "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("err = %v, want io.EOF", err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
	if _, err := NewReader(strings.NewReader(""), "brotli", Options{}); !errors.Is(err, layout.ErrInvalid) {
		t.Fatalf("unknown encoding: err = %v", err)
	}
	if err := (LineError{Line: 3, Code: CodeBadJSON, Reason: "x"}).Error(); err != "line 3: bad_json: x" {
		t.Fatalf("LineError.Error() = %q", err)
	}
}

func TestBudgetExceeded(t *testing.T) {
	for _, tt := range []struct {
		lines, rejected int64
		strict, want    bool
	}{
		{0, 0, false, false},
		{0, 0, true, false},
		{100, 0, false, false},
		{100, 1, false, false}, // exactly 1 %
		{100, 2, false, true},
		{1000, 10, false, false},
		{1000, 11, false, true},
		{99, 1, false, true}, // just over 1 %
		{1, 1, false, true},
		{1000, 1, true, true}, // strict: any line
		{1000, 0, true, false},
	} {
		s := Stats{Lines: tt.lines, Rejected: tt.rejected, Valid: tt.lines - tt.rejected}
		if got := BudgetExceeded(s, tt.strict); got != tt.want {
			t.Errorf("BudgetExceeded(%d of %d, strict=%v) = %v, want %v", tt.rejected, tt.lines, tt.strict, got, tt.want)
		}
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{OpUpsert: "upsert", OpDelete: "delete", 0: "Op(0)"} {
		if op.String() != want {
			t.Errorf("%d.String() = %q, want %q", op, op.String(), want)
		}
	}
	if _, err := Op(0).MarshalText(); err == nil {
		t.Error("Op(0).MarshalText: no error")
	}
}

// TestNoAllocsPerLine checks that a valid line costs one allocation: its id.
func TestNoAllocsPerLine(t *testing.T) {
	const n = 1000
	data := benchData(n, 1)
	r, err := NewReader(bytes.NewReader(data), layout.Identity, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); err != nil { // the buffer is allocated here
		t.Fatal(err)
	}
	// AllocsPerRun calls f twice: once to warm up, once to measure.
	const perRun = n/2 - 1
	allocs := testing.AllocsPerRun(1, func() {
		for range perRun {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if perLine := allocs / perRun; perLine > 1 {
		t.Errorf("%.2f allocations per line, want at most 1 (the id)", perLine)
	}
}

// TestZstdWindowLimit checks that a zstd frame declaring a window over
// 128 MiB is refused before anything is allocated for it.
func TestZstdWindowLimit(t *testing.T) {
	content := []byte(`{"op":"delete","id":"a"}`)
	frame := func(windowLog byte) []byte {
		b := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, (windowLog - 10) << 3}
		n := len(content)<<3 | 1 // last block, raw
		b = append(b, byte(n), byte(n>>8), byte(n>>16))
		return append(b, content...)
	}
	g := readAll(t, bytes.NewReader(frame(27)), layout.Zstd, Options{})
	if g.Err != nil || len(g.Lines) != 1 {
		t.Fatalf("128 MiB window: %+v, %v", g.Lines, g.Err)
	}
	g = readAll(t, bytes.NewReader(frame(28)), layout.Zstd, Options{})
	if !errors.Is(g.Err, ErrCorrupt) {
		t.Fatalf("256 MiB window: err = %v, want ErrCorrupt", g.Err)
	}
}
