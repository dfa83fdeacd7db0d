package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func FuzzReader(f *testing.F) {
	mixed, err := os.ReadFile(filepath.Join("testdata", "mixed.ndjson"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mixed, false, false)
	f.Add(mixed, true, true)
	for _, l := range bytes.Split(mixed, []byte("\n")) {
		f.Add(l, false, true)
	}
	f.Add([]byte("\xEF\xBB\xBF{\"op\":\"delete\",\"id\":\"\\ud800\"}\r\n\r\n"), false, false)

	// One encoder for all inputs: creating one is costly.
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		f.Fatal(err)
	}
	defer zw.Close()
	gw := gzip.NewWriter(io.Discard)
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		gw.Reset(&buf)
		_, _ = gw.Write(b)
		_ = gw.Close()
		return buf.Bytes()
	}

	f.Fuzz(func(t *testing.T, data []byte, full, small bool) {
		opts := Options{Full: full, KeepErrors: 1 << 20}
		if small {
			opts.MaxLineBytes = 64
		}
		g := readAll(t, bytes.NewReader(data), layout.Identity, opts)
		if g.Err != nil {
			t.Fatalf("identity input: %v", g.Err)
		}
		checkStats(t, g)
		if g.Stats.DecodedBytes != int64(len(data)) {
			t.Fatalf("DecodedBytes = %d, want %d", g.Stats.DecodedBytes, len(data))
		}
		prev := 0
		for _, l := range g.Lines {
			if l.Number <= prev {
				t.Fatalf("line %d after line %d", l.Number, prev)
			}
			prev = l.Number
			if err := layout.ValidateProductID(l.ID); err != nil {
				t.Fatalf("line %d: %v", l.Number, err)
			}
			switch {
			case l.Op == OpUpsert && (l.Product == "" || l.Product[0] != '{' || !json.Valid([]byte(l.Product))):
				t.Fatalf("line %d: upsert with product %q", l.Number, l.Product)
			case l.Op == OpDelete && (full || l.Product != ""):
				t.Fatalf("line %d: delete (full %v) with product %q", l.Number, full, l.Product)
			case l.Op != OpUpsert && l.Op != OpDelete:
				t.Fatalf("line %d: op %v", l.Number, l.Op)
			}
		}
		for i, e := range g.Errors {
			if i > 0 && e.Line <= g.Errors[i-1].Line || e.Code == "" || e.Reason == "" {
				t.Fatalf("error %d: %+v", i, e)
			}
		}

		// The same input gives the same result, however the source and
		// the decoder cut it.
		same := func(name string, h got) {
			t.Helper()
			if !reflect.DeepEqual(g, h) {
				t.Fatalf("%s: result differs:\n got %+v\nwant %+v", name, h, g)
			}
		}
		same("again", readAll(t, bytes.NewReader(data), layout.Identity, opts))
		same("one byte at a time", readAll(t, iotest.OneByteReader(bytes.NewReader(data)), layout.Identity, opts))
		if len(data) > 0 {
			same("zstd", readAll(t, bytes.NewReader(zw.EncodeAll(data, nil)), layout.Zstd, opts))
			same("gzip", readAll(t, bytes.NewReader(gzipped(data)), layout.Gzip, opts))
		}

		// The input taken as a compressed stream: lines or ErrCorrupt.
		for _, enc := range []layout.Encoding{layout.Gzip, layout.Zstd} {
			h := readAll(t, bytes.NewReader(data), enc, opts)
			if h.Err != nil && !errors.Is(h.Err, ErrCorrupt) {
				t.Fatalf("%s: err = %v, want nil or ErrCorrupt", enc, h.Err)
			}
			checkStats(t, h)
		}
	})
}
