package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// TestSyncPropertyPushedChangesRebuildTheCatalog: for seeded random delta
// sequences (upserts, deletes, now and then a full upload), firing the sync
// schedule after each batch, the pushed changes applied in order to the
// destination's previous state (empty at first) give the current catalog.
var syncSeed = flag.Uint64("sync.seed", 1, "seed of TestSyncPropertyPushedChangesRebuildTheCatalog")

func TestSyncPropertyPushedChangesRebuildTheCatalog(t *testing.T) {
	const batches = 14
	seed := *syncSeed
	t.Logf("seed %d (go test ./e2e -run SyncProperty -sync.seed=N reproduces a run)", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	s := start(t, map[string]string{"AllowLoopbackHttp": "true"})
	ctx := context.Background()
	hook, hookURL := newReceiver(t, 0)
	client := s.storeClient()
	store := s.runner.BucketName("StoreBucket")
	s.setDestinations(site.Destination{Name: "hook", Type: "webhook", URL: hookURL, Secrets: []string{"s1"}})
	cat := catalog.New(client, store)
	acks := &syncjob.Store{S3: client, Bucket: store}

	dest := map[string]string{}     // the destination, built only from what was pushed
	uploaded := map[string]string{} // what the uploads say the catalog is
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = fmt.Sprintf("sku-%02d", i)
	}
	for b := range batches {
		mode := "delta"
		if b == 5 || (b > 0 && rng.IntN(5) == 0) {
			mode = "full"
		}
		var lines []string
		next := map[string]string{}
		if mode == "delta" {
			for k, v := range uploaded {
				next[k] = v
			}
		}
		touched := map[string]bool{}
		for range 1 + rng.IntN(12) {
			id := ids[rng.IntN(len(ids))]
			if touched[id] {
				continue
			}
			touched[id] = true
			if mode == "delta" && rng.IntN(3) == 0 {
				l, _ := del(id)
				lines = append(lines, l)
				delete(next, id)
				continue
			}
			l, op := upsert(id, b*100+rng.IntN(100))
			lines = append(lines, l)
			next[id] = op[1]
		}
		if mode == "full" {
			// Keep most of the catalog so the full upload stays plausible.
			for id, p := range uploaded {
				if !touched[id] && rng.IntN(5) != 0 {
					line, _ := json.Marshal(map[string]any{"op": "upsert", "id": id, "product": json.RawMessage(p)})
					lines = append(lines, string(line))
					next[id] = p
				}
			}
		}
		body := []byte(strings.Join(lines, "\n") + "\n")
		var extra map[string]any
		if mode == "full" {
			// The property is about sync, not the full-upload guard: these
			// full uploads mean to replace whatever they replace.
			extra = map[string]any{"maxFullDeleteRatio": 1.0, "allowEmpty": true}
		}
		c := s.create(mode, body, extra)
		if st := put(t, c, body); st != http.StatusOK {
			t.Fatalf("batch %d: PUT status %d", b, st)
		}
		if r := s.waitTerminal(c, 30*time.Second); r.State != "imported" {
			t.Fatalf("batch %d (%s): %+v", b, mode, r)
		}
		uploaded = next

		head, err := cat.Head(ctx, s.site)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(15 * time.Second); ; {
			if err := s.runner.FireSchedule(ctx, "SyncFunction"); err != nil {
				t.Fatal(err)
			}
			a, err := acks.Ack(ctx, s.site, "hook")
			if err != nil {
				t.Fatal(err)
			}
			if a.Version >= head.Version {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("batch %d: ack %d, head %d after 15 s", b, a.Version, head.Version)
			}
			time.Sleep(50 * time.Millisecond)
		}
		hook.mu.Lock()
		pushed := hook.lines
		hook.lines = nil
		hook.mu.Unlock()
		for _, l := range pushed {
			var ch struct {
				Op      string          `json:"op"`
				ID      string          `json:"id"`
				Product json.RawMessage `json:"product"`
			}
			if err := json.Unmarshal([]byte(l), &ch); err != nil {
				t.Fatalf("pushed line %q: %v", l, err)
			}
			switch ch.Op {
			case "upsert":
				dest[ch.ID] = string(ch.Product)
			case "delete":
				delete(dest, ch.ID)
			default:
				t.Fatalf("pushed line %q: unknown op", l)
			}
		}
		if got, want := render(dest), render(uploaded); got != want {
			t.Fatalf("after batch %d (%s): destination\n%s\nuploads say\n%s", b, mode, got, want)
		}
	}

	head, err := cat.Head(ctx, s.site)
	if err != nil {
		t.Fatal(err)
	}
	current := map[string]string{}
	if err := cat.Diff(ctx, s.site, catalog.Version{Site: s.site}, head, func(c catalog.Change) error {
		current[c.ID] = string(c.Product)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := render(dest), render(current); got != want {
		t.Fatalf("destination\n%s\ncatalog\n%s", got, want)
	}
}

// render is a map of products as sorted, canonical "id product" lines.
func render(m map[string]string) string {
	out := make([]string, 0, len(m))
	for id, p := range m {
		var v any
		_ = json.Unmarshal([]byte(p), &v)
		b, _ := json.Marshal(v)
		out = append(out, id+" "+string(b))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
