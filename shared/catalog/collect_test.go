package catalog

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// hookAPI runs hooks around some calls of the store's client.
type hookAPI struct {
	objectAPI
	afterList   func(prefix string)
	afterDelete func(keys []string)
	beforePut   func(key string)
}

func (h *hookAPI) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out, err := h.objectAPI.ListObjectsV2(ctx, in, opts...)
	if err == nil && h.afterList != nil {
		h.afterList(aws.ToString(in.Prefix))
	}
	return out, err
}

func (h *hookAPI) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, opts ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	out, err := h.objectAPI.DeleteObjects(ctx, in, opts...)
	if h.afterDelete != nil {
		var keys []string
		for _, o := range in.Delete.Objects {
			keys = append(keys, aws.ToString(o.Key))
		}
		h.afterDelete(keys)
	}
	return out, err
}

func (h *hookAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if h.beforePut != nil {
		h.beforePut(aws.ToString(in.Key))
	}
	return h.objectAPI.PutObject(ctx, in, opts...)
}

// revertSetup commits v1 and v2 (which changes one product) and stages, on
// v2, the delta that changes it back: the staged shard has v1's shard key,
// which no version references any more and whose object is older than the
// grace.
func revertSetup(t *testing.T, e *env, s *Store) (st *Staged, reverted string, want model) {
	t.Helper()
	ctx := context.Background()
	base := upserts("p", 20, 100, 0)
	v1, _ := stageCommit(t, s, testDelta{ops: base})
	want = contents(t, s, v1)
	v2, _ := stageCommit(t, s, testDelta{ops: []Op{up("p-3", `{"changed":true}`)}})
	e.cloud.Clock().Advance(10 * time.Minute)
	keys := map[string]bool{}
	for _, r := range v2.Shards {
		keys[r.Key] = true
	}
	for _, r := range v1.Shards {
		if !keys[r.Key] {
			reverted = r.Key
		}
	}
	if reverted == "" {
		t.Fatal("v2 changed no shard")
	}
	st, err := s.Stage(ctx, testSite, v2, deltasOf(testDelta{ops: []Op{base[3]}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Discard() })
	if len(st.writes) != 1 || st.writes[0].ref.Key != reverted {
		t.Fatalf("the revert writes %v, want v1's shard %s", st.writes, reverted)
	}
	return st, reverted, want
}

// An import that writes again an old unreferenced shard and commits while
// Collect sweeps: Collect marks the new version before it deletes.
func TestCollectSparesShardOfVersionCommittedDuringSweep(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hooks := &hookAPI{objectAPI: e.client}
	collector := e.store(t, hooks)
	importer := e.store(t, nil)
	st, reverted, want := revertSetup(t, e, importer)

	var once sync.Once
	hooks.afterList = func(prefix string) {
		if !strings.Contains(prefix, "/shards/") {
			return
		}
		once.Do(func() {
			if _, err := st.Commit(ctx, 2); err != nil {
				t.Errorf("commit during the sweep: %v", err)
			}
		})
	}
	got, err := collector.Collect(ctx, testSite, []uint64{2}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got.Versions != 1 {
		t.Errorf("collected %+v, want version 1 removed", got)
	}
	if _, err := e.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: &reverted}); err != nil {
		t.Fatalf("shard %s of the version committed during the sweep: %v", reverted, err)
	}
	v3, err := importer.Head(ctx, testSite)
	if err != nil || v3.Version != 3 {
		t.Fatalf("head = %d, %v; want 3", v3.Version, err)
	}
	if msg := sameModel(contents(t, importer, v3), want); msg != "" {
		t.Error(msg)
	}
}

// An import whose rewrite of an old unreferenced shard Collect deletes
// between the import's shard write and its version: the commit writes the
// shard again once its version exists.
func TestCommitRestoresShardCollectedBeforeItsVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	collectHooks := &hookAPI{objectAPI: e.client}
	importHooks := &hookAPI{objectAPI: e.client}
	collector := e.store(t, collectHooks)
	importer := e.store(t, importHooks)
	st, reverted, want := revertSetup(t, e, importer)

	atVersion := make(chan struct{})
	deleted := make(chan struct{})
	committed := make(chan error, 1)
	var listOnce, versionOnce, deleteOnce sync.Once
	importHooks.beforePut = func(key string) {
		if strings.Contains(key, "/versions/") {
			versionOnce.Do(func() {
				close(atVersion)
				<-deleted // Collect removes the shard just written
			})
		}
	}
	collectHooks.afterList = func(prefix string) {
		if strings.Contains(prefix, "/shards/") {
			listOnce.Do(func() {
				// Collect has listed the old copy; the import writes it
				// again and stops before its version.
				go func() {
					_, err := st.Commit(ctx, 2)
					committed <- err
				}()
				<-atVersion
			})
		}
	}
	collectHooks.afterDelete = func(keys []string) {
		for _, k := range keys {
			if k == reverted {
				deleteOnce.Do(func() { close(deleted) })
			}
		}
	}
	got, err := collector.Collect(ctx, testSite, []uint64{2}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	deleteOnce.Do(func() {
		close(deleted)
		t.Errorf("Collect did not delete %s (collected %+v): the race was not set up", reverted, got)
	})
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	v3, err := importer.Head(ctx, testSite)
	if err != nil || v3.Version != 3 {
		t.Fatalf("head = %d, %v; want 3", v3.Version, err)
	}
	if msg := sameModel(contents(t, importer, v3), want); msg != "" {
		t.Error(msg)
	}
}
