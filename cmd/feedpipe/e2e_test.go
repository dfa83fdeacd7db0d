package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/localcloud/runner"
	"github.com/feedpipe/feedpipe/shared/syncbuf"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// TestEndToEnd runs the whole stack from template.yaml on the embedded cloud
// and drives it with the CLI only: site create, upload of a 5 MB file (gzip
// and plain), status, catalog, get, redrive.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the whole stack")
	}
	ctx := context.Background()
	cloud, err := localcloud.Start(ctx, localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	logs := &syncbuf.Buffer{}
	r, err := runner.Start(ctx, runner.Config{
		Template: "../../template.yaml", StackName: "clie2e", Endpoint: cloud.Endpoint(), Clock: cloud.Clock(),
		BuildDir: localcloudtest.BuildDir("feedpipe-cli-e2e-build"), LogOutput: logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Close()
		if t.Failed() {
			t.Logf("function output:\n%s", logs.String())
		}
	})
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	aws := []string{"--aws-endpoint", cloud.Endpoint(), "--store-bucket", r.BucketName("StoreBucket"), "--region", "us-east-1"}

	res := feedpipe(t, append([]string{"site", "create", "shop", "--json"}, aws...)...)
	var created struct{ Token string }
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &created) != nil || created.Token == "" {
		t.Fatalf("site create: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	api := []string{"--api", r.HTTPEndpoint(), "--token", created.Token, "--site", "shop"}

	// a 5 MB delta of 20,000 products
	file := filepath.Join(t.TempDir(), "feed.ndjson")
	fh, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	n := 0
	for size := 0; size < 5<<20; n++ {
		k, _ := fmt.Fprintf(w, `{"op":"upsert","id":"sku-%06d","product":{"title":"Product %d","price":%d.99,"description":"%s"}}`+"\n", n, n, n%500, strings.Repeat("x", 180))
		size += k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fh.Close()

	for i, extra := range [][]string{{"--json"}, {"--json", "--gzip"}} {
		args := append(append([]string{"upload", file, "--poll-interval", "100ms"}, extra...), api...)
		res = feedpipe(t, args...)
		var st uploadStatus
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &st) != nil {
			t.Fatalf("upload %v: exit %d\n%s\n%s", extra, res.code, res.stdout, res.stderr)
		}
		if st.State != uploads.Imported || st.Counts == nil || st.Counts.Lines != int64(n) || st.Counts.Rejected != 0 {
			t.Fatalf("upload %v: %+v", extra, st)
		}
		if i == 0 && st.Counts.Upserted != int64(n) {
			t.Fatalf("first upload upserted %d of %d", st.Counts.Upserted, n)
		}
		if i == 1 && (st.ContentEncoding != "gzip" || st.Counts.Unchanged != int64(n)) {
			t.Fatalf("second (gzip) upload: encoding %s, %d unchanged of %d", st.ContentEncoding, st.Counts.Unchanged, n)
		}
		if r := feedpipe(t, append([]string{"status", st.UploadID}, api...)...); r.code != 0 || !strings.Contains(r.stdout, "imported") {
			t.Fatalf("status: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	}

	res = feedpipe(t, append([]string{"catalog", "--json"}, api...)...)
	var cat struct {
		Products   int64
		AppliedSeq uint64
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &cat) != nil || cat.Products != int64(n) || cat.AppliedSeq != 2 {
		t.Fatalf("catalog: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	res = feedpipe(t, append([]string{"get", "sku-000042"}, api...)...)
	if res.code != 0 || !strings.Contains(res.stdout, `"Product 42"`) {
		t.Fatalf("get: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	res = feedpipe(t, append([]string{"list"}, api...)...)
	if res.code != 0 || strings.Count(res.stdout, "imported") != 2 {
		t.Fatalf("list: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	res = feedpipe(t, append([]string{"redrive", "--site", "shop", "--import-queue-url", r.QueueURL("ImportQueue")}, aws...)...)
	if res.code != 0 {
		t.Fatalf("redrive: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	// a rejected upload exits 3
	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	if err := os.WriteFile(bad, []byte("not json\n{\"op\":\"delete\",\"id\":\"sku-000001\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = feedpipe(t, append([]string{"upload", bad, "--poll-interval", "100ms"}, api...)...)
	if res.code != exitRejected || !strings.Contains(res.stdout, "line 1:") {
		t.Fatalf("rejected upload: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
}
