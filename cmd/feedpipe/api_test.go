package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/feedpipe/feedpipe/shared/uploads"
)

// feedFile writes n delta lines; the lines listed in bad are not JSON.
func feedFile(t *testing.T, n int, bad ...int) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	isBad := map[int]bool{}
	for _, l := range bad {
		isBad[l] = true
	}
	for i := 1; i <= n; i++ {
		switch {
		case isBad[i]:
			fmt.Fprintf(&b, "{\"op\":\"upsert\",\"id\":\"sku-%d\"\n", i)
		case i%10 == 0:
			fmt.Fprintf(&b, "{\"op\":\"delete\",\"id\":\"sku-%d\"}\n", i)
		default:
			fmt.Fprintf(&b, "{\"op\":\"upsert\",\"id\":\"sku-%d\",\"product\":{\"title\":\"Product %d\",\"price\":%d}}\n", i, i, i*3)
		}
	}
	path := filepath.Join(t.TempDir(), "feed.ndjson")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b.Bytes()
}

func TestUploadImported(t *testing.T) {
	f := newFakeAPI(t)
	file, _ := feedFile(t, 200, 57)
	golden(t, "upload", feedpipe(t, f.args("upload", file, "--poll-interval", "1ms")...))
	golden(t, "upload_json", feedpipe(t, f.args("upload", file, "--poll-interval", "1ms", "--json")...))
	// status of the first upload, which is final now
	golden(t, "status", feedpipe(t, f.args("status", "00000000000000000001-fake1")...))
	golden(t, "status_json", feedpipe(t, f.args("status", "00000000000000000001-fake1", "--json")...))
}

func TestUploadRejected(t *testing.T) {
	f := newFakeAPI(t)
	file, _ := feedFile(t, 20, 3, 8, 9)
	golden(t, "upload_rejected", feedpipe(t, f.args("upload", file, "--full", "--poll-interval", "1ms")...))
	if got := f.uploads["00000000000000000001-fake1"].rec.Mode; got != uploads.Full {
		t.Errorf("mode %q, want full", got)
	}
}

func TestUploadCompressed(t *testing.T) {
	file, plain := feedFile(t, 500)
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			f := newFakeAPI(t)
			r := feedpipe(t, f.args("upload", file, "--"+enc, "--poll-interval", "1ms", "--json")...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			u := f.uploads["00000000000000000001-fake1"]
			if u.rec.ContentEncoding != enc || int64(len(u.body)) != u.rec.ContentLength || len(u.body) >= len(plain) {
				t.Fatalf("sent %d bytes as %s, signed %d (plain %d)", len(u.body), u.rec.ContentEncoding, u.rec.ContentLength, len(plain))
			}
			var zr io.Reader
			if enc == "gzip" {
				g, err := gzip.NewReader(bytes.NewReader(u.body))
				if err != nil {
					t.Fatal(err)
				}
				zr = g
			} else {
				d, err := zstd.NewReader(bytes.NewReader(u.body))
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				zr = d
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("the sent body does not decompress to the file (err %v)", err)
			}
			var st uploadStatus
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.State != uploads.Imported || st.Counts.Lines != 500 {
				t.Fatalf("stdout %s: %v", r.stdout, err)
			}
		})
	}
}

func TestUploadAlreadyCompressedFile(t *testing.T) {
	_, plain := feedFile(t, 50)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	file := filepath.Join(t.TempDir(), "feed.ndjson.gz")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFakeAPI(t)
	r := feedpipe(t, f.args("upload", file, "--poll-interval", "1ms")...)
	if r.code != 0 || !strings.Contains(r.stderr, "gzip-compressed") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if u := f.uploads["00000000000000000001-fake1"]; u.rec.ContentEncoding != "gzip" || !bytes.Equal(u.body, b.Bytes()) {
		t.Fatalf("sent %d bytes as %s", len(u.body), u.rec.ContentEncoding)
	}
	if r := feedpipe(t, f.args("upload", file, "--gzip")...); r.code != exitUsage {
		t.Fatalf("--gzip on a .gz file: exit %d", r.code)
	}
}

func TestUploadNoWait(t *testing.T) {
	f := newFakeAPI(t)
	file, _ := feedFile(t, 5)
	r := feedpipe(t, f.args("upload", file, "--no-wait", "--json")...)
	var st uploadStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil || st.State != uploads.Received {
		t.Fatalf("exit %d, state %q (%v)\n%s", r.code, st.State, err, r.stderr)
	}
}

func TestUploadEmptyFile(t *testing.T) {
	f := newFakeAPI(t)
	file := filepath.Join(t.TempDir(), "empty.ndjson")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := feedpipe(t, f.args("upload", file)...)
	if r.code != 1 || !strings.Contains(r.stderr, "is empty") || f.posts != 0 {
		t.Fatalf("exit %d, %d posts\n%s", r.code, f.posts, r.stderr)
	}
	// an empty full upload is possible compressed, with --allow-empty
	r = feedpipe(t, f.args("upload", file, "--full", "--allow-empty", "--gzip", "--poll-interval", "1ms")...)
	if r.code != 0 || !f.uploads["00000000000000000001-fake1"].rec.AllowEmpty {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestQueries(t *testing.T) {
	f := newFakeAPI(t)
	golden(t, "list", feedpipe(t, f.args("list", "--after", "1", "--limit", "2")...))
	golden(t, "list_json", feedpipe(t, f.args("list", "--after", "1", "--limit", "2", "--json")...))
	golden(t, "catalog", feedpipe(t, f.args("catalog")...))
	golden(t, "catalog_json", feedpipe(t, f.args("catalog", "--json")...))
	// the id holds a slash and a space: it is path-escaped
	golden(t, "get", feedpipe(t, f.args("get", "shoes/red 42")...))
	golden(t, "get_json", feedpipe(t, f.args("get", "shoes/red 42", "--json")...))
}

func TestAPIErrors(t *testing.T) {
	f := newFakeAPI(t)
	base := func(token, site string, extra ...string) []string {
		return append(extra, "--api", f.api.URL, "--token", token, "--site", site)
	}
	golden(t, "error_401", feedpipe(t, base("unauth", "shop", "status", "00000000000000000001-x")...))
	golden(t, "error_403", feedpipe(t, base(fakeToken, "other", "catalog")...))
	golden(t, "error_404", feedpipe(t, base(fakeToken, "shop", "status", "00000000000000000009-nope")...))
	golden(t, "error_404_product", feedpipe(t, base(fakeToken, "shop", "get", "sku-404")...))
	golden(t, "error_400", feedpipe(t, base(fakeToken, "shop", "get", strings.Repeat("x", 300))...))
	golden(t, "error_403_json", feedpipe(t, base("wrong", "shop", "list", "--json")...))
	golden(t, "error_unreachable", feedpipe(t, "catalog", "--api", "http://127.0.0.1:1", "--token", "t", "--site", "shop", "--retries", "0"))
}
