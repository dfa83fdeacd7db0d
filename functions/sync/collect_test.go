package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

func TestKeepVersions(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	live := &syncjob.Lease{Version: 4, ExpiresAt: now.Add(time.Minute)}
	expired := &syncjob.Lease{Version: 2, ExpiresAt: now.Add(-time.Second)}
	all := []uint64{1, 2, 3, 4, 5, 6}
	tests := []struct {
		name     string
		head     uint64
		dests    []destState
		existing []uint64
		want     []uint64
	}{
		{"no destinations", 6, nil, all, []uint64{6}},
		{"different acks", 6, []destState{{ack: 2}, {ack: 5}}, all, []uint64{2, 5, 6}},
		{"never acked", 6, []destState{{ack: 0}, {ack: 3}}, all, []uint64{3, 6}},
		{"all acked the head", 6, []destState{{ack: 6}, {ack: 6}}, all, []uint64{6}},
		{"running job keeps from its version up", 6, []destState{{ack: 1, lease: live}}, all, []uint64{1, 4, 5, 6}},
		{"expired lease keeps nothing more", 6, []destState{{ack: 1, lease: expired}}, all, []uint64{1, 6}},
		{"ack of a removed version", 6, []destState{{ack: 2}}, []uint64{4, 5, 6}, []uint64{6}},
		{"empty catalog", 0, []destState{{ack: 0}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keepVersions(tt.head, tt.dests, tt.existing, now); !slices.Equal(got, tt.want) {
				t.Errorf("keepVersions = %v, want %v", got, tt.want)
			}
		})
	}
}

type collectFixture struct {
	*resolverFixture
	cat  *catalog.Store
	jobs *syncjob.Store
	seq  uint64
}

const testCollectGrace = 5 * time.Minute

func newCollectFixture(t *testing.T) *collectFixture {
	r := newResolverFixture(t)
	cat := catalog.New(r.s3, "store", catalog.WithClock(r.cloud.Clock().Now), catalog.WithTempDir(t.TempDir()), catalog.WithSplitSize(2048, 8))
	r.h.Collector = Collector{Catalog: cat, Grace: testCollectGrace}
	r.h.Now = r.cloud.Clock().Now
	return &collectFixture{resolverFixture: r, cat: cat, jobs: &syncjob.Store{S3: r.s3, Bucket: "store"}}
}

func (f *collectFixture) site(name string, dests ...string) {
	f.t.Helper()
	_, hash := apiauth.NewToken()
	cfg := site.Config{Site: name, TokenHashes: []string{hash}}
	for _, d := range dests {
		cfg.Destinations = append(cfg.Destinations, hook(d, ""))
	}
	if err := site.Save(f.ctx, f.s3, "store", cfg); err != nil {
		f.t.Fatal(err)
	}
}

// stage stages one delta upserting products [from, to) at revision rev.
func (f *collectFixture) stage(name string, from, to, rev int) *catalog.Staged {
	f.t.Helper()
	head, err := f.cat.Head(f.ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	f.seq++
	st, err := f.cat.Stage(f.ctx, name, head, []catalog.Delta{{Sequence: f.seq, Ops: func(yield func(catalog.Op) error) error {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("p%03d", i)
			if err := yield(catalog.Op{ID: id, Product: fmt.Appendf(nil, `{"id":%q,"rev":%d}`, id, rev)}); err != nil {
				return err
			}
		}
		return nil
	}}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = st.Discard() })
	return st
}

// commit applies one delta and marks the site, as the import does.
func (f *collectFixture) commit(name string, from, to, rev int) catalog.Version {
	f.t.Helper()
	v, err := f.stage(name, from, to, rev).Commit(f.ctx, f.seq)
	if err != nil {
		f.t.Fatal(err)
	}
	f.put("store", layout.CollectKey(name))
	return v
}

func (f *collectFixture) collect() (Report, error) {
	return f.h.Handle(f.ctx, Event{Action: ActionCollect})
}

// products reads version v whole; it fails the test if a shard is missing.
func (f *collectFixture) products(name string, v catalog.Version) map[string]string {
	f.t.Helper()
	got := map[string]string{}
	if err := f.cat.Diff(f.ctx, name, catalog.Version{Site: name}, v, func(c catalog.Change) error {
		got[c.ID] = string(c.Product)
		return nil
	}); err != nil {
		f.t.Fatalf("version %d: %v", v.Version, err)
	}
	return got
}

func (f *collectFixture) marked(name string) bool {
	f.t.Helper()
	_, err := f.s3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String("store"), Key: aws.String(layout.CollectKey(name))})
	if err != nil && !syncjob.IsNotFound(err) {
		f.t.Fatal(err)
	}
	return err == nil
}

func TestCollectKeepsHeadAndAcknowledgedVersions(t *testing.T) {
	f := newCollectFixture(t)
	f.site("shop", "acked", "never")
	var versions []catalog.Version
	versions = append(versions, f.commit("shop", 0, 60, 1))
	for i := range 4 {
		versions = append(versions, f.commit("shop", i*15, i*15+10, i+2))
	}
	want := map[uint64]map[string]string{}
	for _, v := range versions {
		want[v.Version] = f.products("shop", v)
	}
	if err := f.jobs.SaveAck(f.ctx, syncjob.Ack{Site: "shop", Destination: "acked", Version: 2}); err != nil {
		t.Fatal(err)
	}
	// An acknowledgement of a destination no longer configured holds nothing.
	if err := f.jobs.SaveAck(f.ctx, syncjob.Ack{Site: "shop", Destination: "removed", Version: 1}); err != nil {
		t.Fatal(err)
	}
	f.cloud.Clock().Advance(10 * time.Minute)

	rep, err := f.collect()
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Collect
	if c == nil || c.Sites != 1 || c.Versions != 3 || c.Shards == 0 || c.Failed != 0 {
		t.Fatalf("collect report = %+v, want 1 site, versions 1, 3, 4 and their shards removed", c)
	}
	left, err := f.cat.Versions(f.ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, []uint64{2, 5}) {
		t.Errorf("versions left %v, want [2 5] (the acknowledged one and the head)", left)
	}
	for _, v := range versions {
		if !slices.Contains(left, v.Version) {
			continue
		}
		if got := f.products("shop", v); fmt.Sprint(got) != fmt.Sprint(want[v.Version]) {
			t.Errorf("version %d reads back %d products, want %d", v.Version, len(got), len(want[v.Version]))
		}
	}
	if f.marked("shop") {
		t.Error("the collect mark survived a successful collection")
	}
	// Unmarked sites are not visited.
	rep, err = f.collect()
	if err != nil || rep.Collect.Sites != 0 {
		t.Errorf("second run = %+v, %v; want no site visited", rep.Collect, err)
	}
}

// blockingVersions holds a commit's version write until release is closed,
// after it wrote its shards.
type blockingVersions struct {
	*s3.Client
	shards  chan string
	atWrite chan struct{}
	release chan struct{}
}

func (b *blockingVersions) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	key := aws.ToString(in.Key)
	if strings.Contains(key, "/versions/") {
		close(b.atWrite)
		<-b.release
	} else if strings.Contains(key, "/shards/") {
		b.shards <- key
	}
	return b.Client.PutObject(ctx, in, opts...)
}

// An import that has written its shards but not its version while a
// collection runs: its shards are younger than the grace and survive.
func TestCollectRacingAnImportKeepsItsShards(t *testing.T) {
	f := newCollectFixture(t)
	f.site("shop")
	for i := range 3 {
		f.commit("shop", 0, 40, i)
	}
	f.cloud.Clock().Advance(10 * time.Minute)
	client := &blockingVersions{Client: f.s3, shards: make(chan string, 100), atWrite: make(chan struct{}), release: make(chan struct{})}
	importer := catalog.New(client, "store", catalog.WithClock(f.cloud.Clock().Now), catalog.WithTempDir(t.TempDir()), catalog.WithSplitSize(2048, 8))
	head, err := importer.Head(f.ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	st, err := importer.Stage(f.ctx, "shop", head, []catalog.Delta{{Sequence: 4, Ops: func(yield func(catalog.Op) error) error {
		for i := range 40 {
			id := fmt.Sprintf("p%03d", i)
			if err := yield(catalog.Op{ID: id, Product: fmt.Appendf(nil, `{"id":%q,"rev":99}`, id)}); err != nil {
				return err
			}
		}
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Discard()
	committed := make(chan error, 1)
	go func() {
		_, err := st.Commit(f.ctx, 4)
		committed <- err
	}()
	<-client.atWrite
	f.cloud.Clock().Advance(time.Minute) // the import's shards are a minute old
	f.put("store", layout.CollectKey("shop"))
	rep, err := f.collect()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collect.Versions != 2 || rep.Collect.Shards == 0 {
		t.Errorf("collect report = %+v, want versions 1-2 and their shards removed", rep.Collect)
	}
	close(client.shards)
	written := 0
	for key := range client.shards {
		written++
		if _, err := f.s3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String("store"), Key: aws.String(key)}); err != nil {
			t.Errorf("shard %s of the running import: %v", key, err)
		}
	}
	if written == 0 {
		t.Fatal("the import wrote no shard")
	}
	close(client.release)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	v, err := f.cat.Head(f.ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	got := f.products("shop", v)
	if v.Version != 4 || len(got) != 40 || got["p007"] != `{"id":"p007","rev":99}` {
		t.Errorf("version %d reads back %d products, p007 = %s", v.Version, len(got), got["p007"])
	}
}

// failingCollector fails the collection of one site.
type failingCollector struct {
	catalogCollector
	site string
}

func (c failingCollector) Collect(ctx context.Context, name string, keep []uint64, grace time.Duration) (catalog.Collected, error) {
	if name == c.site {
		return catalog.Collected{}, errors.New("injected fault")
	}
	return c.catalogCollector.Collect(ctx, name, keep, grace)
}

func TestCollectFailingSiteIsMarkedAgainAndOthersGoOn(t *testing.T) {
	f := newCollectFixture(t)
	for _, name := range []string{"bad", "good"} {
		f.site(name)
		f.commit(name, 0, 20, 1)
		f.commit(name, 0, 20, 2)
	}
	f.cloud.Clock().Advance(10 * time.Minute)
	f.h.Collector.Catalog = failingCollector{catalogCollector: f.cat, site: "bad"}
	rep, err := f.collect()
	if err == nil {
		t.Error("a failed site did not fail the run")
	}
	if c := rep.Collect; c.Sites != 1 || c.Failed != 1 || c.Versions != 1 {
		t.Errorf("collect report = %+v, want 1 site collected (1 version), 1 failed", c)
	}
	if !f.marked("bad") || f.marked("good") {
		t.Errorf("marks after the run: bad %v (want true), good %v (want false)", f.marked("bad"), f.marked("good"))
	}
}

func TestCollectVisitsAtMostMaxSitesPerRun(t *testing.T) {
	f := newCollectFixture(t)
	f.h.Collector.MaxSites = 2
	for i := range 5 {
		f.put("store", layout.CollectKey(fmt.Sprintf("s%d", i)))
	}
	seen := 0
	for run := 1; ; run++ {
		rep, err := f.collect()
		if err != nil {
			t.Fatal(err)
		}
		seen += rep.Collect.Sites
		if rep.Collect.Sites > 2 {
			t.Fatalf("run %d visited %d sites, limit 2", run, rep.Collect.Sites)
		}
		if !rep.Collect.More {
			break
		}
		if run > 3 {
			t.Fatal("still more after 3 runs")
		}
	}
	if seen != 5 {
		t.Errorf("visited %d sites in all, want 5", seen)
	}
}

func TestUnknownActionFails(t *testing.T) {
	f := newCollectFixture(t)
	if _, err := f.h.Handle(f.ctx, Event{CloudWatchEvent: events.CloudWatchEvent{}, Action: "colect"}); err == nil {
		t.Error("an unknown action succeeded")
	}
}
