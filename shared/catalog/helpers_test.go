package catalog

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

var long = flag.Bool("long", false, "run the long variants of the randomized tests")

const testSite = "shop-1"

// env is one embedded cloud and a bucket of its own.
type env struct {
	cloud  *localcloud.Cloud
	client *s3.Client
	bucket string
}

var bucketSeq atomic.Int64

func newEnv(t testing.TB) *env {
	t.Helper()
	c, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	client := s3.New(s3.Options{
		Region:       localcloud.DefaultRegion,
		BaseEndpoint: aws.String(c.Endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	e := &env{cloud: c, client: client, bucket: fmt.Sprintf("store-%d", bucketSeq.Add(1))}
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &e.bucket}); err != nil {
		t.Fatal(err)
	}
	return e
}

// store returns a store on the env's bucket with temporary files in a
// directory of the test.
func (e *env) store(t testing.TB, api objectAPI, opts ...Option) *Store {
	if api == nil {
		api = e.client
	}
	return New(api, e.bucket, append([]Option{WithTempDir(t.TempDir()), WithClock(e.cloud.Clock().Now)}, opts...)...)
}

// countingAPI counts the objects and bytes written through it.
type countingAPI struct {
	objectAPI
	mu    sync.Mutex
	puts  map[string]int64
	bytes int64
}

func newCounting(api objectAPI) *countingAPI {
	return &countingAPI{objectAPI: api, puts: map[string]int64{}}
}

func (c *countingAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.mu.Lock()
	c.puts[aws.ToString(in.Key)] += aws.ToInt64(in.ContentLength)
	c.bytes += aws.ToInt64(in.ContentLength)
	c.mu.Unlock()
	return c.objectAPI.PutObject(ctx, in, opts...)
}

func (c *countingAPI) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts, c.bytes = map[string]int64{}, 0
}

// testDelta is a delta as a slice, for tests.
type testDelta struct {
	full bool
	ops  []Op
}

func deltasOf(ds ...testDelta) []Delta {
	out := make([]Delta, len(ds))
	for i, d := range ds {
		out[i] = Delta{Sequence: uint64(i + 1), Full: d.full, Ops: opsOf(d.ops)}
	}
	return out
}

func opsOf(ops []Op) func(func(Op) error) error {
	return func(yield func(Op) error) error {
		for _, o := range ops {
			if err := yield(o); err != nil {
				return err
			}
		}
		return nil
	}
}

func up(id, product string) Op { return Op{ID: id, Product: []byte(product)} }
func del(id string) Op         { return Op{ID: id, Delete: true} }

// model is the reference: a plain map, ops applied one by one.
type model map[string]string

func (m model) apply(ds []testDelta) []Counts {
	counts := make([]Counts, len(ds))
	for i, d := range ds {
		c := &counts[i]
		mentioned := map[string]bool{}
		for _, o := range d.ops {
			mentioned[o.ID] = true
			old, ok := m[o.ID]
			switch {
			case o.Delete && ok:
				c.Deleted++
				delete(m, o.ID)
			case o.Delete:
				c.Unchanged++
			case ok && old == string(o.Product):
				c.Unchanged++
			default:
				c.Upserted++
				m[o.ID] = string(o.Product)
			}
		}
		if d.full {
			for id := range m {
				if !mentioned[id] {
					c.Deleted++
					delete(m, id)
				}
			}
		}
	}
	return counts
}

func (m model) clone() model { return maps.Clone(m) }

// stageCommit stages and commits ds on the head.
func stageCommit(t testing.TB, s *Store, ds ...testDelta) (Version, []Counts) {
	t.Helper()
	ctx := context.Background()
	head, err := s.Head(ctx, testSite)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stage(ctx, testSite, head, deltasOf(ds...))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Discard()
	v, err := st.Commit(ctx, head.AppliedSeq+uint64(len(ds)))
	if err != nil {
		t.Fatal(err)
	}
	return v, st.Counts()
}

// contents reads a whole version through Diff from version 0.
func contents(t testing.TB, s *Store, v Version) model {
	t.Helper()
	m := model{}
	err := s.Diff(context.Background(), testSite, Version{Site: testSite}, v, func(c Change) error {
		if c.Product == nil {
			return fmt.Errorf("diff from version 0 deletes %q", c.ID)
		}
		if _, dup := m[c.ID]; dup {
			return fmt.Errorf("diff yields %q twice", c.ID)
		}
		m[c.ID] = string(c.Product)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffModel returns what Diff must yield from a to b.
func diffModel(a, b model) map[string]*string {
	out := map[string]*string{}
	for id, p := range b {
		if q, ok := a[id]; !ok || q != p {
			out[id] = &p
		}
	}
	for id := range a {
		if _, ok := b[id]; !ok {
			out[id] = nil
		}
	}
	return out
}

// diffOf collects Diff's changes, checking id order within each shard of
// the finer side.
func diffOf(t testing.TB, s *Store, from, to Version) map[string]*string {
	t.Helper()
	out := map[string]*string{}
	err := s.Diff(context.Background(), testSite, from, to, func(c Change) error {
		if _, dup := out[c.ID]; dup {
			return fmt.Errorf("diff yields %q twice", c.ID)
		}
		if c.Product == nil {
			out[c.ID] = nil
		} else {
			p := string(c.Product)
			out[c.ID] = &p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameDiff(a, b map[string]*string) string {
	for _, id := range slices.Sorted(maps.Keys(a)) {
		x, y := a[id], b[id]
		if _, ok := b[id]; !ok {
			return fmt.Sprintf("%q: extra change", id)
		}
		if (x == nil) != (y == nil) || (x != nil && *x != *y) {
			return fmt.Sprintf("%q: change %v, want %v", id, show(x), show(y))
		}
	}
	for id := range b {
		if _, ok := a[id]; !ok {
			return fmt.Sprintf("%q: missing change %v", id, show(b[id]))
		}
	}
	return ""
}

func show(p *string) string {
	if p == nil {
		return "delete"
	}
	return *p
}

func sameModel(got, want model) string {
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[id]; !ok {
			return fmt.Sprintf("%q missing (want %s)", id, want[id])
		} else if g != want[id] {
			return fmt.Sprintf("%q = %s, want %s", id, g, want[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			return fmt.Sprintf("%q present, want absent", id)
		}
	}
	return ""
}

// product makes a product of roughly size bytes.
func product(id string, n, size int) string {
	var b strings.Builder
	quoted, _ := json.Marshal(id)
	fmt.Fprintf(&b, `{"id":%s,"rev":%d,"title":"Product %d","price":%d.%02d,"tags":["a","b"],"text":"`, quoted, n, n, n%997, n%100)
	for b.Len() < size-2 {
		b.WriteString("lorem ipsum dolor sit amet ")
	}
	b.WriteString(`"}`)
	return b.String()
}
