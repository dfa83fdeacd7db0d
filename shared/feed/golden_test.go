package feed

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/feedpipe/feedpipe/shared/layout"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenResult is what the golden file records of one read.
type goldenResult struct {
	Options Options      `json:"options"`
	Stats   Stats        `json:"stats"`
	Errors  []LineError  `json:"errors"`
	Lines   []goldenLine `json:"lines"`
}

type goldenLine struct {
	Number int    `json:"number"`
	Op     Op     `json:"op"`
	ID     string `json:"id"`
	// Product is a string, so that it records the input bytes exactly.
	Product string `json:"product,omitempty"`
}

// TestGolden reads testdata/mixed.ndjson as a delta and as a full upload
// and compares everything the Reader reports with testdata/mixed.golden.
// Refresh it with: go test ./shared/feed -run TestGolden -update
func TestGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "mixed.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var results []goldenResult
	for _, opts := range []Options{{MaxLineBytes: 256}, {MaxLineBytes: 256, Full: true}} {
		g := readAll(t, bytes.NewReader(in), layout.Identity, opts)
		if g.Err != nil {
			t.Fatal(g.Err)
		}
		checkStats(t, g)
		res := goldenResult{Options: opts, Stats: g.Stats, Errors: g.Errors, Lines: []goldenLine{}}
		for _, l := range g.Lines {
			res.Lines = append(res.Lines, goldenLine(l))
		}
		results = append(results, res)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "mixed.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("result differs from %s (run with -update after checking the change):\n%s", golden, buf.Bytes())
	}
}
