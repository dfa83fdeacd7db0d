package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// result is what one in-process run of the command line gave.
type result struct {
	stdout, stderr string
	code           int
}

// feedpipe runs the command line in-process.
func feedpipe(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

var normalisers = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`fp_[a-z2-7]{52}`), "fp_<TOKEN>"},
	{regexp.MustCompile(`whsec_[0-9a-f]{64}`), "whsec_<SECRET>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:<PORT>"},
}

func normalise(s string) string {
	for _, n := range normalisers {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}

// golden compares a run (exit code, stdout, stderr) with
// testdata/<name>.golden; -update rewrites it.
func golden(t *testing.T, name string, r result) {
	t.Helper()
	got := normalise("exit " + strconv.Itoa(r.code) + "\n--- stdout\n" + r.stdout + "--- stderr\n" + r.stderr)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	r := feedpipe(t, "upload", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Exit codes:", "0  imported", "3  rejected, expired or cancelled", "--gzip", "--allow-empty", "--no-wait", "FEEDPIPE_TOKEN", "FEEDPIPE_API"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("upload --help lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "feed.ndjson")
	if err := os.WriteFile(file, []byte(`{"op":"delete","id":"a"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"missing site":           {"status", "x", "--token", "t"},
		"missing token":          {"status", "x", "--site", "shop", "--token", ""},
		"unknown command":        {"frobnicate"},
		"gzip and zstd":          {"upload", file, "--site", "shop", "--token", "t", "--gzip", "--zstd"},
		"allow-empty on a delta": {"upload", file, "--site", "shop", "--token", "t", "--allow-empty"},
		"expires-in too long":    {"upload", file, "--site", "shop", "--token", "t", "--expires-in", "2h"},
		"no such file":           {"upload", file + ".missing", "--site", "shop", "--token", "t"},
		"list limit":             {"list", "--site", "shop", "--token", "t", "--limit", "5000"},
	} {
		t.Run(name, func(t *testing.T) {
			r := feedpipe(t, args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "feedpipe: ") || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("stderr is not a friendly error: %q", r.stderr)
			}
		})
	}
}
