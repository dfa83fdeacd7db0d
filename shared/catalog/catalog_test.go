package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
)

func TestLineRoundTrip(t *testing.T) {
	ids := []string{"sku-1", `q"uote`, `back\slash`, "a/b", "..", "../etc/passwd", "üñíçødé", "日本語", "🛒",
		"tab\tnl\ncr\r", "\x01\x1f", "\u2028", "<&>", strings.Repeat("x", 256)}
	for _, id := range ids {
		product := []byte(`{"name":"` + "v" + `","n":[1,2,{"a":"}"}]}`)
		line := appendLine(nil, id, product)
		if int64(len(line)) != lineLen(id, product) {
			t.Errorf("%q: lineLen %d, line has %d bytes", id, lineLen(id, product), len(line))
		}
		if strings.Count(string(line), "\n") != 1 {
			t.Errorf("%q: line %q is not one line", id, line)
		}
		gotID, gotProduct, err := parseLine(line[:len(line)-1])
		if err != nil || gotID != id || string(gotProduct) != string(product) {
			t.Errorf("%q: parse = %q, %s, %v", id, gotID, gotProduct, err)
		}
	}
	// Lines in another key order or spacing still parse.
	id, p, err := parseLine([]byte(`{ "product" : {"a":1}, "id" : "x\u0041" }`))
	if err != nil || id != "xA" || string(p) != `{"a":1}` {
		t.Errorf("slow path: %q %s %v", id, p, err)
	}
	for _, bad := range []string{``, `{}`, `{"id":"x"}`, `{"id":1,"product":{}}`, `not json`} {
		if _, _, err := parseLine([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("parseLine(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func FuzzLineRoundTrip(f *testing.F) {
	f.Add("sku-1", `{"a":1}`)
	f.Add(`q"\`, `{"x":"\n"}`)
	f.Fuzz(func(t *testing.T, id string, product string) {
		if layout.ValidateProductID(id) != nil || checkProduct([]byte(product)) != nil {
			return
		}
		line := appendLine(nil, id, []byte(product))
		gotID, gotProduct, err := parseLine(line[:len(line)-1])
		if err != nil || gotID != id || string(gotProduct) != product {
			t.Fatalf("%q %q: parse = %q, %q, %v", id, product, gotID, gotProduct, err)
		}
	})
}

func TestShardIDs(t *testing.T) {
	for _, id := range []string{"b", "b0", "b1", "b01101", "b" + strings.Repeat("1", maxDepth)} {
		p, err := parseShardID(id)
		if err != nil || p.String() != id {
			t.Errorf("parseShardID(%q) = %v %v, String %q", id, p, err, p.String())
		}
	}
	for _, id := range []string{"", "a", "b2", "b" + strings.Repeat("0", maxDepth+1), "B0"} {
		if _, err := parseShardID(id); err == nil {
			t.Errorf("parseShardID(%q) accepted", id)
		}
	}
	good := [][]string{{"b"}, {"b0", "b1"}, {"b0", "b10", "b11"}, {"b00", "b01", "b1"}}
	for _, ids := range good {
		if _, err := newCover(refsOf(ids...)); err != nil {
			t.Errorf("cover %v: %v", ids, err)
		}
	}
	bad := [][]string{{"b0"}, {"b1", "b0"}, {"b0", "b0", "b1"}, {"b", "b0"}, {"b0", "b10"}, {"b00", "b1", "b01"}}
	for _, ids := range bad {
		if _, err := newCover(refsOf(ids...)); err == nil {
			t.Errorf("cover %v accepted", ids)
		}
	}
	c, _ := newCover(refsOf("b00", "b01", "b1"))
	for _, id := range []string{"sku-1", "sku-2", "sku-3", "x"} {
		h := idHash(id)
		got := c.refs[c.lookup(h)].ID
		want := "b1"
		if h>>63 == 0 {
			want = fmt.Sprintf("b0%d", h>>62&1)
		}
		if got != want {
			t.Errorf("%q (hash %064b) in %s, want %s", id, h, got, want)
		}
	}
}

func refsOf(ids ...string) []ShardRef {
	refs := make([]ShardRef, len(ids))
	for i, id := range ids {
		refs[i] = ShardRef{ID: id}
	}
	return refs
}

// The hash that places ids in shards must never change: stored catalogs
// depend on it.
func TestIDHashIsStable(t *testing.T) {
	for id, want := range map[string]uint64{"sku-1": 0x57156ade504c73c5, "": 0xe3b0c44298fc1c14} {
		if got := idHash(id); got != want {
			t.Errorf("idHash(%q) = %#x, want %#x", id, got, want)
		}
	}
}

func TestEmptyCatalog(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	ctx := context.Background()
	v, err := s.Head(ctx, testSite)
	if err != nil || v.Version != 0 || v.Products != 0 || v.Site != testSite {
		t.Fatalf("Head of a new site = %+v, %v", v, err)
	}
	if _, ok, err := s.Get(ctx, testSite, v, "sku-1"); ok || err != nil {
		t.Errorf("Get on version 0 = %v, %v", ok, err)
	}
	if m := contents(t, s, v); len(m) != 0 {
		t.Errorf("version 0 holds %v", m)
	}
	if _, err := s.Load(ctx, testSite, 3); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), layout.CatalogVersionKey(testSite, 3)) {
		t.Errorf("Load of a missing version = %v, want ErrNotFound naming the key", err)
	}
	if _, err := s.Head(ctx, "Bad/Site"); err == nil {
		t.Error("Head accepted a bad site id")
	}
}

func TestStageCommitGetDiff(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	ctx := context.Background()
	v1, counts := stageCommit(t, s,
		testDelta{ops: []Op{up("a", `{"n":1}`), up("b", `{"n":2}`), up("a", `{"n":3}`), del("zz")}},
		testDelta{ops: []Op{up("b", `{"n":2}`), del("a"), up("c/../d", `{"n":4}`)}},
	)
	want := []Counts{{Upserted: 3, Unchanged: 1}, {Deleted: 1, Upserted: 1, Unchanged: 1}}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("counts %+v, want %+v", counts, want)
	}
	if v1.Version != 1 || v1.Parent != 0 || v1.AppliedSeq != 2 || v1.Products != 2 || s.Count(v1) != 2 {
		t.Errorf("version %+v", v1)
	}
	head, err := s.Head(ctx, testSite)
	if err != nil || !reflect.DeepEqual(head, v1) {
		t.Errorf("Head = %+v, %v; want %+v", head, err, v1)
	}
	if p, ok, err := s.Get(ctx, testSite, v1, "c/../d"); !ok || err != nil || string(p) != `{"n":4}` {
		t.Errorf("Get = %s %v %v", p, ok, err)
	}
	if _, ok, err := s.Get(ctx, testSite, v1, "a"); ok || err != nil {
		t.Errorf("Get of a deleted id = %v %v", ok, err)
	}
	if _, _, err := s.Get(ctx, "other-site", v1, "a"); err == nil {
		t.Error("Get with another site's version succeeded")
	}

	v2, counts := stageCommit(t, s, testDelta{full: true, ops: []Op{up("x", `{"n":5}`), up("b", `{"n":2}`)}})
	if want := []Counts{{Upserted: 1, Unchanged: 1, Deleted: 1}}; !reflect.DeepEqual(counts, want) {
		t.Errorf("full upload counts %+v, want %+v", counts, want)
	}
	got := diffOf(t, s, v1, v2)
	x := `{"n":5}`
	if msg := sameDiff(got, map[string]*string{"x": &x, "c/../d": nil}); msg != "" {
		t.Error(msg)
	}
	if got := diffOf(t, s, v2, v2); len(got) != 0 {
		t.Errorf("diff of a version with itself: %v", got)
	}
}

func TestStageRejectsBadOps(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	s := New(e.client, e.bucket, WithTempDir(dir))
	ctx := context.Background()
	boom := errors.New("feed failed")
	cases := map[string]Delta{
		"empty id":      {Ops: opsOf([]Op{up("", `{}`)})},
		"long id":       {Ops: opsOf([]Op{up(strings.Repeat("x", 257), `{}`)})},
		"bad utf-8":     {Ops: opsOf([]Op{up("\xff", `{}`)})},
		"array product": {Ops: opsOf([]Op{up("a", `[1]`)})},
		"two lines":     {Ops: opsOf([]Op{up("a", "{\n}")})},
		"no product":    {Ops: opsOf([]Op{{ID: "a"}})},
		"feed error": {Ops: func(yield func(Op) error) error {
			if err := yield(up("a", `{}`)); err != nil {
				return err
			}
			return boom
		}},
	}
	for name, d := range cases {
		_, err := s.Stage(ctx, testSite, Version{Site: testSite}, []Delta{d})
		if err == nil {
			t.Errorf("%s: Stage succeeded", name)
		}
		if name == "feed error" && !errors.Is(err, boom) {
			t.Errorf("%s: %v does not wrap the feed's error", name, err)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("failed stages left %d temporary files", len(left))
	}
}

func TestStagedLifecycle(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	s := New(e.client, e.bucket, WithTempDir(dir))
	ctx := context.Background()
	st, err := s.Stage(ctx, testSite, Version{Site: testSite}, deltasOf(testDelta{ops: []Op{up("a", `{}`)}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Discard = %v, want ErrClosed", err)
	}
	if v, _ := s.Head(ctx, testSite); v.Version != 0 {
		t.Errorf("a discarded batch made version %d", v.Version)
	}
	st, _ = s.Stage(ctx, testSite, Version{Site: testSite}, deltasOf(testDelta{ops: []Op{up("a", `{}`)}}))
	if _, err := st.Commit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.Discard(); err != nil {
		t.Errorf("Discard after Commit = %v", err)
	}
	if _, err := st.Commit(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("second Commit = %v, want ErrClosed", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("%d temporary files left", len(left))
	}
	// A batch of no deltas still advances appliedSeq.
	head, _ := s.Head(ctx, testSite)
	st, _ = s.Stage(ctx, testSite, head, nil)
	v, err := st.Commit(ctx, 7)
	if err != nil || v.AppliedSeq != 7 || v.Products != 1 || !reflect.DeepEqual(v.Shards, head.Shards) {
		t.Errorf("empty batch: %+v, %v", v, err)
	}
	st, _ = s.Stage(ctx, testSite, v, nil)
	if _, err := st.Commit(ctx, 6); err == nil {
		t.Error("Commit accepted an appliedSeq below the base's")
	}
	st.Discard()
}

// TestMatchesMapModel applies random batches and compares the catalog after
// each commit, read through Get and through Diff, and the counts, with a
// plain map.
func TestMatchesMapModel(t *testing.T) {
	batches := 300
	if *long {
		batches = 5000
	}
	runModel(t, 1, batches)
}

func FuzzMatchesMapModel(f *testing.F) {
	for seed := range int64(3) {
		f.Add(seed + 100)
	}
	f.Fuzz(func(t *testing.T, seed int64) { runModel(t, seed, 20) })
}

// modelIDs are the ids random batches draw from: plain and hostile.
func modelIDs(n int) []string {
	ids := []string{"a/b", "..", "../../x", `q"uote`, `back\slash`, "üñíçødé", "日本語の商品", "🛒cart", "tab\tid",
		"nl\nid", "\x01ctl", "x%2Fy", " space ", strings.Repeat("long", 64), "<script>"}
	for i := len(ids); i < n; i++ {
		ids = append(ids, fmt.Sprintf("sku-%d", i))
	}
	return ids
}

func runModel(t *testing.T, seed int64, batches int) {
	e := newEnv(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	// Tiny shards and budgets, so that splits and spills happen all the time.
	small := e.store(t, nil, WithSplitSize(1200, 10), WithMemoryBudget(2048), WithConcurrency(2))
	large := e.store(t, nil, WithSplitSize(1200, 10))
	ids := modelIDs(90)
	m := model{}
	prev, prevModel := Version{Site: testSite}, model{}
	for batch := range batches {
		s := small
		if rng.IntN(2) == 0 {
			s = large
		}
		var ds []testDelta
		for range rng.IntN(4) {
			ds = append(ds, randomDelta(rng, ids, m))
		}
		st, err := s.Stage(ctx, testSite, prev, deltasOf(ds...))
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(10) == 0 {
			st.Discard() // never visible
			continue
		}
		want := m.clone()
		wantCounts := want.apply(ds)
		if got := st.Counts(); !(len(got) == 0 && len(wantCounts) == 0) && !reflect.DeepEqual(got, wantCounts) {
			t.Fatalf("seed %d batch %d: counts %+v, want %+v", seed, batch, got, wantCounts)
		}
		if st.Products() != int64(len(want)) {
			t.Fatalf("seed %d batch %d: Products %d, want %d", seed, batch, st.Products(), len(want))
		}
		v, err := st.Commit(ctx, prev.AppliedSeq+uint64(len(ds)))
		if err != nil {
			t.Fatal(err)
		}
		m = want
		if msg := sameModel(contents(t, s, v), m); msg != "" {
			t.Fatalf("seed %d batch %d: diff from version 0: %s", seed, batch, msg)
		}
		if msg := sameDiff(diffOf(t, s, prev, v), diffModel(prevModel, m)); msg != "" {
			t.Fatalf("seed %d batch %d: diff %d..%d: %s", seed, batch, prev.Version, v.Version, msg)
		}
		if msg := sameDiff(diffOf(t, s, v, prev), diffModel(m, prevModel)); msg != "" {
			t.Fatalf("seed %d batch %d: diff %d..%d: %s", seed, batch, v.Version, prev.Version, msg)
		}
		for range 3 {
			id := ids[rng.IntN(len(ids))]
			p, ok, err := s.Get(ctx, testSite, v, id)
			if want, wantOK := m[id]; err != nil || ok != wantOK || string(p) != want {
				t.Fatalf("seed %d batch %d: Get(%q) = %s %v %v, want %s %v", seed, batch, id, p, ok, err, want, wantOK)
			}
		}
		prev, prevModel = v, m.clone()
	}
	head, err := small.Head(ctx, testSite)
	if err != nil || head.Version != prev.Version {
		t.Fatalf("Head = %d, %v; want %d", head.Version, err, prev.Version)
	}
	for _, id := range ids {
		p, ok, err := small.Get(ctx, testSite, head, id)
		if want, wantOK := m[id]; err != nil || ok != wantOK || string(p) != want {
			t.Fatalf("seed %d: Get(%q) = %s %v %v, want %s %v", seed, id, p, ok, err, want, wantOK)
		}
	}
	depth := 0
	for _, r := range head.Shards {
		depth = max(depth, len(r.ID)-1)
	}
	t.Logf("seed %d: %d versions, %d products in %d shards (depth up to %d)", seed, head.Version, head.Products, len(head.Shards), depth)
}

func randomDelta(rng *rand.Rand, ids []string, m model) testDelta {
	var d testDelta
	n := rng.IntN(20)
	if rng.IntN(8) == 0 {
		d.full = true
		n = rng.IntN(len(ids) + 10)
	}
	for range n {
		id := ids[rng.IntN(len(ids))]
		switch r := rng.IntN(20); {
		case r < 11:
			d.ops = append(d.ops, up(id, fmt.Sprintf(`{"v":%d,"pad":"%s"}`, rng.IntN(4), strings.Repeat("p", rng.IntN(120)))))
		case r < 14:
			if p, ok := m[id]; ok {
				d.ops = append(d.ops, up(id, p)) // identical re-upsert
			} else {
				d.ops = append(d.ops, up(id, `{"v":0}`))
			}
		case d.full:
			d.ops = append(d.ops, up(id, `{"v":1}`))
		default:
			d.ops = append(d.ops, del(id)) // present or absent
		}
	}
	return d
}

func TestConflictFirstCommitWins(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	ctx := context.Background()
	base, _ := stageCommit(t, s, testDelta{ops: []Op{up("a", `{"n":0}`)}})
	a, err := s.Stage(ctx, testSite, base, deltasOf(testDelta{ops: []Op{up("a", `{"n":1}`)}}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Stage(ctx, testSite, base, deltasOf(testDelta{ops: []Op{up("b", `{"n":2}`)}}))
	if err != nil {
		t.Fatal(err)
	}
	va, err := a.Commit(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, 2); !errors.Is(err, ErrConflict) {
		t.Fatalf("second commit from the same base = %v, want ErrConflict", err)
	}
	head, _ := s.Head(ctx, testSite)
	if head.Version != va.Version || !reflect.DeepEqual(head, va) {
		t.Errorf("head %+v, want the first commit %+v", head, va)
	}
	if msg := sameModel(contents(t, s, head), model{"a": `{"n":1}`}); msg != "" {
		t.Error(msg)
	}
}

// Eight committers race, each retrying on conflict with a fresh head; in the
// end every batch is applied exactly once, in the order of the versions.
func TestConcurrentCommittersApplyEachBatchOnce(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil, WithSplitSize(2000, 20))
	ctx := context.Background()
	const committers, rounds = 8, 3
	batches := map[uint64]testDelta{} // by the version that applied it
	errs := make(chan error, committers)
	type result struct {
		version uint64
		delta   testDelta
	}
	results := make(chan result, committers*rounds)
	for w := range committers {
		go func() {
			for r := range rounds {
				// Every batch upserts a shared id (so order matters), its
				// own ids, and deletes one of another committer's.
				d := testDelta{ops: []Op{
					up("shared", fmt.Sprintf(`{"by":%d,"round":%d}`, w, r)),
					up(fmt.Sprintf("w%d-r%d", w, r), `{"n":1}`),
					del(fmt.Sprintf("w%d-r%d", (w+1)%committers, r)),
				}}
				for attempt := 0; ; attempt++ {
					head, err := s.Head(ctx, testSite)
					if err != nil {
						errs <- err
						return
					}
					st, err := s.Stage(ctx, testSite, head, deltasOf(d))
					if err != nil {
						errs <- err
						return
					}
					v, err := st.Commit(ctx, head.AppliedSeq+1)
					st.Discard()
					if errors.Is(err, ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					results <- result{v.Version, d}
					break
				}
			}
			errs <- nil
		}()
	}
	for range committers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(results)
	for r := range results {
		if _, dup := batches[r.version]; dup {
			t.Fatalf("version %d committed twice", r.version)
		}
		batches[r.version] = r.delta
	}
	head, err := s.Head(ctx, testSite)
	if err != nil {
		t.Fatal(err)
	}
	if head.Version != committers*rounds || head.AppliedSeq != committers*rounds {
		t.Fatalf("head version %d appliedSeq %d, want %d", head.Version, head.AppliedSeq, committers*rounds)
	}
	m := model{}
	for v := uint64(1); v <= head.Version; v++ {
		d, ok := batches[v]
		if !ok {
			t.Fatalf("no committer reports version %d", v)
		}
		m.apply([]testDelta{d})
		ver, err := s.Load(ctx, testSite, v)
		if err != nil {
			t.Fatal(err)
		}
		if ver.Parent != v-1 {
			t.Errorf("version %d has parent %d", v, ver.Parent)
		}
		if msg := sameModel(contents(t, s, ver), m); msg != "" {
			t.Fatalf("version %d: %s", v, msg)
		}
	}
}

func TestHeadProbesPastStaleHint(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	ctx := context.Background()
	var last Version
	for i := range 13 {
		last, _ = stageCommit(t, s, testDelta{ops: []Op{up(fmt.Sprintf("sku-%d", i), `{}`)}})
	}
	putHead := func(body string) {
		key := layout.CatalogHeadKey(testSite)
		if _, err := e.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"stale":   `{"version":2}`,
		"zero":    `{"version":0}`,
		"ahead":   `{"version":40}`,
		"garbage": `not json`,
		"newest":  `{"version":13}`,
	} {
		putHead(body)
		head, err := s.Head(ctx, testSite)
		if err != nil || head.Version != last.Version || !reflect.DeepEqual(head, last) {
			t.Errorf("%s head.json: Head = %d, %v; want %d", name, head.Version, err, last.Version)
		}
	}
	key := layout.CatalogHeadKey(testSite)
	e.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key})
	if head, err := s.Head(ctx, testSite); err != nil || head.Version != last.Version {
		t.Errorf("no head.json: Head = %d, %v", head.Version, err)
	}
	// head.json never moves backwards.
	if err := s.advanceHead(ctx, testSite, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.advanceHead(ctx, testSite, 2); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.readHead(ctx, testSite); v != 3 {
		t.Errorf("head.json names %d after advancing to 3 then 2", v)
	}
}

func TestLoadRejectsCorruptVersions(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	ctx := context.Background()
	v, _ := stageCommit(t, s, testDelta{ops: []Op{up("a", `{}`), up("b", `{}`)}})
	key := layout.CatalogVersionKey(testSite, 2)
	for name, mutate := range map[string]func(d *versionDoc){
		"wrong number": func(d *versionDoc) { d.Version.Version = 5 },
		"wrong site":   func(d *versionDoc) { d.Site = "other" },
		"gap":          func(d *versionDoc) { d.Shards = []ShardRef{{ID: "b0"}} },
		"count":        func(d *versionDoc) { d.Products = 9 },
		"foreign key":  func(d *versionDoc) { d.Shards[0].Key = "imports/x" },
		"format":       func(d *versionDoc) { d.Format = 2 },
	} {
		doc := versionDoc{Format: docFormat, ShardHash: shardHashName, Version: v}
		doc.Version.Version = 2
		doc.Shards = slices.Clone(v.Shards)
		mutate(&doc)
		body, _ := json.Marshal(doc)
		if _, err := e.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: strings.NewReader(string(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, testSite, 2); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Load = %v, want ErrCorrupt", name, err)
		}
	}
}

// A retried version write that finds its own first attempt is a success,
// not a conflict.
func TestCommitRetryFindsItsOwnVersion(t *testing.T) {
	e := newEnv(t)
	api := &flakyAPI{objectAPI: e.client, failAfterPut: layout.CatalogVersionKey(testSite, 1)}
	s := e.store(t, api)
	ctx := context.Background()
	st, err := s.Stage(ctx, testSite, Version{Site: testSite}, deltasOf(testDelta{ops: []Op{up("a", `{}`)}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, 1); err == nil || errors.Is(err, ErrConflict) {
		t.Fatalf("first Commit = %v, want the transport error", err)
	}
	v, err := st.Commit(ctx, 1)
	if err != nil || v.Version != 1 {
		t.Fatalf("retried Commit = %+v, %v", v, err)
	}
}

type flakyAPI struct {
	objectAPI
	failAfterPut string
	failed       bool
}

func (f *flakyAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	out, err := f.objectAPI.PutObject(ctx, in, opts...)
	if err == nil && aws.ToString(in.Key) == f.failAfterPut && !f.failed {
		f.failed = true
		return nil, errors.New("connection reset after the write")
	}
	return out, err
}
