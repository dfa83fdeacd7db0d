package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

var update = flag.Bool("update", false, "rewrite the golden status documents in testdata/")

var (
	goldenTime     = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"`)
	goldenUploadID = regexp.MustCompile(`"(\d+)-[a-z2-7]{26}"`)
)

// golden compares a status document with testdata/<name>.golden.json after
// replacing times and the random part of upload ids.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = goldenTime.ReplaceAll(b, []byte(`"<time>"`))
	b = goldenUploadID.ReplaceAll(b, []byte(`"$1-<id>"`))
	b = append(b, '\n')
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, b, want)
	}
}

// The status documents the importer leaves, table-driven: an imported delta
// with a bad line within the budget, a delta over the budget, an empty file,
// a full upload that would empty the catalog.
func TestImportStatusDocuments(t *testing.T) {
	good := `{"op":"upsert","id":"a","product":{"n":1}}` + "\n"
	var within bytes.Buffer
	for i := 0; i < 120; i++ {
		within.WriteString(`{"op":"upsert","id":"p` + itoa(i) + `","product":{"i":` + itoa(i) + `}}` + "\n")
	}
	within.WriteString("not json\n")
	tests := []struct {
		name string
		body string
		full bool
	}{
		{name: "imported-with-a-bad-line", body: within.String()},
		{name: "rejected-error-budget", body: good + "not json\n" + `{"op":"explode","id":"x"}` + "\n"},
		{name: "rejected-empty", body: "\n\n"},
		{name: "rejected-implausible-full", body: good, full: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.full {
				// A catalog of two products that the full upload would halve.
				base := f.queued("shop", layout.Identity, []byte(good+`{"op":"upsert","id":"b","product":{"n":2}}`+"\n"+`{"op":"upsert","id":"c","product":{"n":3}}`+"\n"))
				f.handle(f.message("shop", deltaBody(base), 1))
			}
			rec := f.queued("shop", layout.Identity, []byte(tt.body))
			if tt.full {
				rec = f.markFull(rec)
			}
			f.handle(f.message("shop", deltaBody(rec), 1))
			got, _, err := f.h.Uploads.Get(f.ctx, "shop", rec.Sequence)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, got)
		})
	}
}

// markFull turns a queued record into a full upload.
func (f *fixture) markFull(rec uploads.Record) uploads.Record {
	f.t.Helper()
	rec, err := f.h.Uploads.Update(f.ctx, rec.Site, rec.Sequence, func(r *uploads.Record) error {
		r.Mode = uploads.Full
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}
