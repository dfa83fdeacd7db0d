package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// upserts returns n upserts of ids prefix-0 … prefix-(n-1), products of
// about size bytes at revision rev.
func upserts(prefix string, n, size, rev int) []Op {
	ops := make([]Op, n)
	for i := range ops {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ops[i] = up(id, product(id, rev+i, size))
	}
	return ops
}

func catalogBytes(v Version) (n int64) {
	for _, r := range v.Shards {
		n += r.Bytes
	}
	return n
}

// A 10-op delta on a 100k-product catalog writes only the shards of those
// ids, the version document and head.json.
func TestOnlyTouchedShardsAreRewritten(t *testing.T) {
	e := newEnv(t)
	api := newCounting(e.client)
	s := e.store(t, api)
	ctx := context.Background()
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	base, _ := stageCommit(t, s, testDelta{full: true, ops: upserts("sku", n, 200, 0)})
	if base.Products != int64(n) || len(base.Shards) < 2 {
		t.Fatalf("base: %d products in %d shards", base.Products, len(base.Shards))
	}
	api.reset()
	var ops []Op
	touched := map[string]bool{}
	cov, _ := newCover(base.Shards)
	for i := range 10 {
		id := fmt.Sprintf("sku-%d", i*(n/10)+3)
		if i == 9 {
			ops = append(ops, del(id))
		} else {
			ops = append(ops, up(id, `{"changed":true}`))
		}
		touched[cov.refs[cov.lookup(idHash(id))].ID] = true
	}
	v, counts := stageCommit(t, s, testDelta{ops: ops})
	if want := []Counts{{Upserted: 9, Deleted: 1}}; !reflect.DeepEqual(counts, want) {
		t.Errorf("counts %+v, want %+v", counts, want)
	}
	baseRefs := map[string]ShardRef{}
	for _, r := range base.Shards {
		baseRefs[r.ID] = r
	}
	wantPuts := map[string]bool{layout.CatalogVersionKey(testSite, v.Version): true, layout.CatalogHeadKey(testSite): true}
	for _, r := range v.Shards {
		if touched[r.ID] {
			wantPuts[r.Key] = true
			if r.Key == baseRefs[r.ID].Key {
				t.Errorf("touched shard %s kept its key", r.ID)
			}
		} else if r != baseRefs[r.ID] {
			t.Errorf("untouched shard %s changed: %+v → %+v", r.ID, baseRefs[r.ID], r)
		}
	}
	if got := slices.Sorted(maps.Keys(api.puts)); !reflect.DeepEqual(got, slices.Sorted(maps.Keys(wantPuts))) {
		t.Errorf("wrote %v, want %v", got, slices.Sorted(maps.Keys(wantPuts)))
	}
	t.Logf("10-op delta on %d products in %d shards: wrote %d of %d catalog bytes (%.2f%%) in %d shards, plus %d bytes of version and head",
		n, len(v.Shards), api.bytes-api.puts[layout.CatalogVersionKey(testSite, v.Version)]-api.puts[layout.CatalogHeadKey(testSite)],
		catalogBytes(base), 100*float64(api.bytes)/float64(catalogBytes(base)), len(touched),
		api.puts[layout.CatalogVersionKey(testSite, v.Version)]+api.puts[layout.CatalogHeadKey(testSite)])
	for i := range 10 {
		id := fmt.Sprintf("sku-%d", i*(n/10)+3)
		p, ok, err := s.Get(ctx, testSite, v, id)
		if err != nil || ok != (i != 9) || (ok && string(p) != `{"changed":true}`) {
			t.Errorf("Get(%s) = %s %v %v", id, p, ok, err)
		}
	}
	if got := diffOf(t, s, base, v); len(got) != 10 {
		t.Errorf("diff has %d changes, want 10", len(got))
	}
}

// With a tiny memory budget a 50k-op delta spills to disk and gives exactly
// the catalog (the same shard objects) that a large budget gives.
func TestSpillingMatchesInMemory(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	big := e.store(t, nil, WithSplitSize(64<<10, 500))
	tiny := e.store(t, nil, WithSplitSize(64<<10, 500), WithMemoryBudget(64<<10))
	base, _ := stageCommit(t, big, testDelta{ops: upserts("sku", 5000, 80, 0)})
	m := model{}
	m.apply([]testDelta{{ops: upserts("sku", 5000, 80, 0)}})

	rng := rand.New(rand.NewPCG(3, 4))
	var ds []testDelta
	for d := range 3 {
		var ops []Op
		for range 50_000 / 3 {
			id := fmt.Sprintf("sku-%d", rng.IntN(20_000))
			if rng.IntN(5) == 0 {
				ops = append(ops, del(id))
			} else {
				ops = append(ops, up(id, product(id, rng.IntN(3), 60+rng.IntN(100))))
			}
		}
		ds = append(ds, testDelta{full: d == 1, ops: ops})
	}
	wantCounts := m.apply(ds)
	var versions []Version
	for _, s := range []*Store{big, tiny} {
		st, err := s.Stage(ctx, testSite, base, deltasOf(ds...))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Counts(); !reflect.DeepEqual(got, wantCounts) {
			t.Errorf("counts %+v, want %+v", got, wantCounts)
		}
		if s == tiny && st.runs < 100 {
			t.Errorf("tiny budget spilled only %d runs", st.runs)
		}
		if s == big && st.runs != 0 {
			t.Errorf("large budget spilled %d runs", st.runs)
		}
		v, err := st.Commit(ctx, 4)
		if s == tiny {
			// Same base: this commit conflicts, but its shards are written.
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("second commit: %v", err)
			}
			v = Version{Site: testSite, Shards: st.shards, Products: st.products}
		} else if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if !reflect.DeepEqual(versions[0].Shards, versions[1].Shards) || versions[0].Products != versions[1].Products {
		t.Errorf("tiny budget gave other shards than a large one")
	}
	if msg := sameModel(contents(t, big, versions[1]), m); msg != "" {
		t.Error(msg)
	}
}

// With a tiny split size shards split, the versions record it, and Get and
// Diff work across the split in both directions.
func TestSplitsAreRecordedAndDiffCrossesThem(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil, WithSplitSize(4096, 32))
	ctx := context.Background()
	m := model{}
	first := testDelta{ops: upserts("sku", 20, 60, 0)}
	m.apply([]testDelta{first})
	v1, _ := stageCommit(t, s, first)
	if len(v1.Shards) != 1 || v1.Shards[0].ID != rootShard {
		t.Fatalf("small catalog has shards %+v", v1.Shards)
	}
	m1 := m.clone()
	second := testDelta{ops: append(upserts("more", 2000, 60, 0), up("sku-3", `{"x":1}`), del("sku-4"))}
	m.apply([]testDelta{second})
	v2, _ := stageCommit(t, s, second)
	depths := map[int]int{}
	for _, r := range v2.Shards {
		depths[len(r.ID)-1]++
		if r.Count > 32 || r.Raw > 4096 {
			t.Errorf("shard %s holds %d products, %d bytes: above the split size", r.ID, r.Count, r.Raw)
		}
	}
	if len(v2.Shards) < 2000/32 {
		t.Fatalf("2020 products in %d shards", len(v2.Shards))
	}
	t.Logf("2020 products in %d shards, by depth %v", len(v2.Shards), depths)
	loaded, err := s.Load(ctx, testSite, v2.Version)
	if err != nil || !reflect.DeepEqual(loaded.Shards, v2.Shards) {
		t.Fatalf("Load does not return the split: %v", err)
	}
	if msg := sameModel(contents(t, s, v2), m); msg != "" {
		t.Fatal(msg)
	}
	if msg := sameDiff(diffOf(t, s, v1, v2), diffModel(m1, m)); msg != "" {
		t.Errorf("diff across the split: %s", msg)
	}
	if msg := sameDiff(diffOf(t, s, v2, v1), diffModel(m, m1)); msg != "" {
		t.Errorf("diff back across the split: %s", msg)
	}
	for _, id := range []string{"sku-3", "sku-4", "more-1999", "sku-0"} {
		p, ok, err := s.Get(ctx, testSite, v2, id)
		if want, wantOK := m[id]; err != nil || ok != wantOK || string(p) != want {
			t.Errorf("Get(%s) = %s %v %v", id, p, ok, err)
		}
	}
	// Emptying the catalog keeps the split, as empty ranges without objects.
	v3, counts := stageCommit(t, s, testDelta{full: true})
	if counts[0].Deleted != int64(len(m)) || v3.Products != 0 || len(v3.Shards) != len(v2.Shards) {
		t.Errorf("empty full upload: counts %+v, %d products in %d shards", counts, v3.Products, len(v3.Shards))
	}
	for _, r := range v3.Shards {
		if r.Key != "" {
			t.Errorf("empty shard %s has key %s", r.ID, r.Key)
		}
	}
	if msg := sameDiff(diffOf(t, s, v1, v3), diffModel(m1, model{})); msg != "" {
		t.Error(msg)
	}
}

// One large delta into a single shard splits it many bits deep at once.
func TestDeepSplitInOneCommit(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil, WithSplitSize(1<<20, 2))
	d := testDelta{ops: upserts("sku", 1200, 30, 0)}
	v, _ := stageCommit(t, s, d)
	m := model{}
	m.apply([]testDelta{d})
	maxDepth := 0
	for _, r := range v.Shards {
		maxDepth = max(maxDepth, len(r.ID)-1)
		if r.Count > 2 {
			t.Errorf("shard %s holds %d products", r.ID, r.Count)
		}
	}
	if maxDepth <= splitPassBits {
		t.Errorf("deepest shard at %d bits, want a second split pass", maxDepth)
	}
	if msg := sameModel(contents(t, s, v), m); msg != "" {
		t.Error(msg)
	}
}

func TestCollect(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil, WithSplitSize(2048, 16))
	ctx := context.Background()
	clock := e.cloud.Clock()
	var versions []Version
	for i := range 6 {
		v, _ := stageCommit(t, s, testDelta{ops: upserts(fmt.Sprintf("r%d", i%3), 40, 60, i)})
		versions = append(versions, v)
	}
	// A crashed import: shards written, no version.
	head := versions[len(versions)-1]
	st, err := s.Stage(ctx, testSite, head, deltasOf(testDelta{ops: upserts("crashed", 30, 60, 0)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.upload(ctx); err != nil {
		t.Fatal(err)
	}
	crashed := st.writes
	st.Discard()
	if v, _ := s.Head(ctx, testSite); v.Version != head.Version {
		t.Fatalf("a crash before the version made version %d", v.Version)
	}

	clock.Advance(10 * time.Minute)
	// A running import's shards, written after the others.
	st, err = s.Stage(ctx, testSite, head, deltasOf(testDelta{ops: upserts("running", 30, 60, 0)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.upload(ctx); err != nil {
		t.Fatal(err)
	}
	young := st.writes
	defer st.Discard()

	all := objectKeys(t, e, "catalog/"+testSite+"/")
	got, err := s.Collect(ctx, testSite, []uint64{2, 4}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	left := objectKeys(t, e, "catalog/"+testSite+"/")
	if removed := got.Versions + got.Shards; removed != len(all)-len(left) {
		t.Errorf("Collect reports %+v removed, %d objects are gone", got, len(all)-len(left))
	}
	for _, v := range versions {
		_, err := s.Load(ctx, testSite, v.Version)
		kept := v.Version == 2 || v.Version >= 4
		if kept != (err == nil) {
			t.Errorf("version %d: Load = %v, kept %v", v.Version, err, kept)
		}
		if kept {
			want := contents(t, s, v) // reads every shard: none may be missing
			if len(want) != int(v.Products) {
				t.Errorf("version %d: %d products readable, want %d", v.Version, len(want), v.Products)
			}
		}
	}
	for _, w := range crashed {
		if left[w.ref.Key] {
			t.Errorf("unreferenced old shard %s survived", w.ref.Key)
		}
	}
	for _, w := range young {
		if !left[w.ref.Key] {
			t.Errorf("young shard %s of a running import was removed", w.ref.Key)
		}
	}
	if !left[layout.CatalogHeadKey(testSite)] {
		t.Error("head.json removed")
	}
	if got.Versions == 0 || got.Shards == 0 {
		t.Error("nothing removed")
	}
	if _, err := s.Collect(ctx, testSite, []uint64{3}, time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("Collect keeping a removed version = %v, want ErrNotFound", err)
	}
	// Head still finds the newest after versions below it were removed.
	if v, err := s.Head(ctx, testSite); err != nil || v.Version != head.Version {
		t.Errorf("Head after Collect = %d, %v", v.Version, err)
	}
}

func objectKeys(t *testing.T, e *env, prefix string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(e.client, &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			keys[aws.ToString(o.Key)] = true
		}
	}
	return keys
}

// A missing shard object is a clear error, never an empty result.
func TestMissingShardIsAnError(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	ctx := context.Background()
	v, _ := stageCommit(t, s, testDelta{ops: []Op{up("a", `{}`)}})
	key := v.Shards[0].Key
	if _, err := e.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, testSite, v, "a"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), key) {
		t.Errorf("Get = %v, want ErrNotFound naming %s", err, key)
	}
	if err := s.Diff(ctx, testSite, Version{Site: testSite}, v, func(Change) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Diff = %v, want ErrNotFound", err)
	}
	if _, err := s.Stage(ctx, testSite, v, deltasOf(testDelta{ops: []Op{up("a", `{"b":1}`)}})); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stage = %v, want ErrNotFound", err)
	}
}
