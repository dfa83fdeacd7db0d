package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/site"
)

// pointer is the s3 destination's {prefix}{site}/latest.json.
type pointer struct {
	Version uint64 `json:"version"`
	From    uint64 `json:"from"`
	Feed    string `json:"feed"`
	Changes string `json:"changes"`
}

// TestSyncToS3Destination: deltas applied → the sync schedule fires → the
// destination bucket holds the whole catalog as the feed file, exactly the
// version's changes as the changes file, and a pointer naming both.
func TestSyncToS3Destination(t *testing.T) {
	s := start(t, map[string]string{"AllowLoopbackHttp": "true"})
	ctx := context.Background()
	client := s.storeClient()
	store := s.runner.BucketName("StoreBucket")
	dest := "partner-" + strings.ToLower(randomSuffix())
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(dest)}); err != nil {
		t.Fatal(err)
	}
	if _, err := site.Update(ctx, client, store, s.site, func(c *site.Config) error {
		c.Destinations = append(c.Destinations, site.Destination{Name: "lake", Type: "s3", Bucket: dest, Prefix: "feeds/", ExpectedBucketOwner: "000000000000"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	read := func(key string) []byte {
		t.Helper()
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(dest), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("s3://%s/%s: %v", dest, key, err)
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// syncTo fires the schedule until the pointer names version v.
	syncTo := func(v uint64) pointer {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
				t.Fatal(err)
			}
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(dest), Key: aws.String("feeds/" + s.site + "/latest.json")})
			if err == nil {
				var p pointer
				err = json.NewDecoder(out.Body).Decode(&p)
				out.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if p.Version >= v {
					return p
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the destination's pointer never reached version %d (last error %v)", v, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	lines := func(b []byte) []string {
		var ls []string
		for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			if len(l) > 0 {
				ls = append(ls, string(l))
			}
		}
		return canon(t, ls...)
	}
	product := func(id string, v int) string {
		return fmt.Sprintf(`{"op":"upsert","id":%q,"product":{"title":"product %s","version":%d}}`, id, id, v)
	}
	same := func(what string, got, want []string) {
		t.Helper()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	a1, _ := upsert("sku-1", 1)
	a2, _ := upsert("sku-2", 1)
	a3, _ := upsert("sku-3", 1)
	s.apply(a1, a2, a3)
	p1 := syncTo(1)
	if p1.Version != 1 || p1.From != 0 {
		t.Errorf("first pointer %+v, want version 1 from 0", p1)
	}
	first := canon(t, product("sku-1", 1), product("sku-2", 1), product("sku-3", 1))
	same("first feed", lines(read(p1.Feed)), first)
	same("first changes", lines(read(p1.Changes)), first)

	b2, _ := upsert("sku-2", 2)
	d3, _ := del("sku-3")
	s.apply(b2, d3)
	p2 := syncTo(2)
	if p2.Version != 2 || p2.From != 1 || p2.Feed == p1.Feed || p2.Changes == p1.Changes {
		t.Errorf("second pointer %+v after %+v, want version 2 from 1 in new files", p2, p1)
	}
	same("second feed", lines(read(p2.Feed)), canon(t, product("sku-1", 1), product("sku-2", 2)))
	same("second changes", lines(read(p2.Changes)), canon(t, product("sku-2", 2), `{"op":"delete","id":"sku-3"}`))
	// The earlier version's files stay as they were.
	same("first feed after the second sync", lines(read(p1.Feed)), first)

	// The collect schedule's Input: version 1 is behind the head and every
	// acknowledgement, so it goes; the head stays and still reads whole.
	input, err := os.ReadFile("../events/sync/collect.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.runner.Invoke(ctx, "SyncFunction", input)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Collect *struct{ Sites, Versions int } `json:"collect"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || rep.Collect == nil || rep.Collect.Sites != 1 || rep.Collect.Versions != 1 {
		t.Fatalf("collect answered %s (%v), want 1 site and 1 version collected", out, err)
	}
	// Checked by GET, not by listing: the emulator's versioned store bucket
	// still lists a key whose current version is a delete marker.
	for v, want := range map[uint64]bool{1: false, 2: true} {
		key := layout.CatalogVersionKey(s.site, v)
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(store), Key: aws.String(key)})
		if err == nil {
			out.Body.Close()
		}
		if (err == nil) != want {
			t.Errorf("after collection, GET %s = %v; want it kept: %v", key, err, want)
		}
	}
	b3, _ := upsert("sku-4", 1)
	s.apply(b3)
	p3 := syncTo(3)
	same("third changes", lines(read(p3.Changes)), canon(t, product("sku-4", 1)))
	same("third feed", lines(read(p3.Feed)), canon(t, product("sku-1", 1), product("sku-2", 2), product("sku-4", 1)))
}
