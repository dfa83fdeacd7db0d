package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/site"
)

// recordingS3 is a destination client that records every call in order.
type recordingS3 struct {
	c     *s3.Client
	mu    sync.Mutex
	calls []s3Call
}

type s3Call struct {
	op, bucket, key, owner string
}

func (r *recordingS3) record(op string, bucket, key, owner *string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s3Call{op, aws.ToString(bucket), aws.ToString(key), aws.ToString(owner)})
}

func (r *recordingS3) taken() []s3Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func (r *recordingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	r.record("PutObject", in.Bucket, in.Key, in.ExpectedBucketOwner)
	return r.c.PutObject(ctx, in, o...)
}

func (r *recordingS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	r.record("CreateMultipartUpload", in.Bucket, in.Key, in.ExpectedBucketOwner)
	return r.c.CreateMultipartUpload(ctx, in, o...)
}

func (r *recordingS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	r.record("UploadPart", in.Bucket, in.Key, in.ExpectedBucketOwner)
	return r.c.UploadPart(ctx, in, o...)
}

func (r *recordingS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	r.record("CompleteMultipartUpload", in.Bucket, in.Key, in.ExpectedBucketOwner)
	return r.c.CompleteMultipartUpload(ctx, in, o...)
}

func (r *recordingS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	r.record("AbortMultipartUpload", in.Bucket, in.Key, in.ExpectedBucketOwner)
	return r.c.AbortMultipartUpload(ctx, in, o...)
}

const owner = "111122223333"

func (f *pushFixture) s3Destination(bucket string) *recordingS3 {
	f.t.Helper()
	if _, err := f.s3.CreateBucket(f.ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		f.t.Fatal(err)
	}
	rec := &recordingS3{c: f.s3}
	f.h.DestS3 = rec
	return rec
}

// object reads an object's NDJSON lines, canonical and sorted.
func (f *pushFixture) objectLines(bucket, key string) []string {
	f.t.Helper()
	out, err := f.s3.GetObject(f.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		f.t.Fatalf("%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	var ls []string
	sc := bufio.NewScanner(out.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ls = append(ls, canonical(f.t, sc.Text()))
	}
	if err := sc.Err(); err != nil {
		f.t.Fatal(err)
	}
	sort.Strings(ls)
	return ls
}

// catalogLines is every product of the head as upsert lines.
func (f *pushFixture) catalogLines(fields ...string) []string {
	f.t.Helper()
	head, err := f.catalog.Head(f.ctx, "shop")
	if err != nil {
		f.t.Fatal(err)
	}
	var ls []string
	if err := f.catalog.Diff(f.ctx, "shop", catalog.Version{Site: "shop"}, head, func(c catalog.Change) error {
		b, err := changeLine(c, fields)
		ls = append(ls, canonical(f.t, string(b)))
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	sort.Strings(ls)
	return ls
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPushS3WritesChangesAndFeedThenThePointer(t *testing.T) {
	f := newPushFixture(t)
	rec := f.s3Destination("theirs")
	f.addDestination(site.Destination{Name: "bucket", Type: "s3", Bucket: "theirs", Prefix: "exports/", ExpectedBucketOwner: owner})
	f.addDestination(site.Destination{Name: "meta", Type: "s3", Bucket: "theirs", Prefix: "meta/", ExpectedBucketOwner: owner, Fields: []string{"title"}})

	v1 := f.commit(`a={"title":"A","price":1}`, `b={"title":"B","price":2}`, `c={"title":"C","price":3}`)
	if failed := f.handle(f.job("bucket")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	rec.taken()
	v2 := f.commit(`b={"title":"B2","price":2}`, `-c`, `d={"title":"D","price":4}`, `a={"title":"A","price":1}`)
	if failed := f.handle(f.job("bucket")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	calls := rec.taken()

	changes := fmt.Sprintf("exports/shop/changes/%020d.ndjson", v2)
	feed := fmt.Sprintf("exports/shop/feed/%020d.ndjson", v2)
	sameLines(t, "changes file", f.objectLines("theirs", changes), lines(t, `{"op":"upsert","id":"b","product":{"title":"B2","price":2}}`,
		`{"op":"delete","id":"c"}`, `{"op":"upsert","id":"d","product":{"title":"D","price":4}}`))
	sameLines(t, "full feed", f.objectLines("theirs", feed), f.catalogLines())
	sameLines(t, "full feed", f.objectLines("theirs", feed), lines(t, `{"op":"upsert","id":"a","product":{"title":"A","price":1}}`,
		`{"op":"upsert","id":"b","product":{"title":"B2","price":2}}`, `{"op":"upsert","id":"d","product":{"title":"D","price":4}}`))
	sameLines(t, "first changes file", f.objectLines("theirs", fmt.Sprintf("exports/shop/changes/%020d.ndjson", v1)), lines(t,
		`{"op":"upsert","id":"a","product":{"title":"A","price":1}}`, `{"op":"upsert","id":"b","product":{"title":"B","price":2}}`,
		`{"op":"upsert","id":"c","product":{"title":"C","price":3}}`))

	out, err := f.s3.GetObject(f.ctx, &s3.GetObjectInput{Bucket: aws.String("theirs"), Key: aws.String("exports/shop/latest.json")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	var p Pointer
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != v2 || p.From != v1 || p.Feed != feed || p.Changes != changes || !p.At.Equal(f.now) {
		t.Errorf("pointer %s", b)
	}

	if len(calls) != 3 || calls[len(calls)-1].key != "exports/shop/latest.json" {
		t.Fatalf("calls %v: want the changes file, the feed, then the pointer last", calls)
	}
	for _, c := range calls {
		if c.owner != owner || c.bucket != "theirs" {
			t.Errorf("call %+v without the expected bucket owner", c)
		}
	}
	if f.ack("bucket") != v2 || f.leased("bucket") {
		t.Errorf("ack %d, leased %v; want ack %d and the lease released", f.ack("bucket"), f.leased("bucket"), v2)
	}

	// Field selection applies to both files.
	if failed := f.handle(f.job("meta")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	want := lines(t, `{"op":"upsert","id":"a","product":{"title":"A"}}`, `{"op":"upsert","id":"b","product":{"title":"B2"}}`,
		`{"op":"upsert","id":"d","product":{"title":"D"}}`)
	sameLines(t, "meta feed", f.objectLines("theirs", fmt.Sprintf("meta/shop/feed/%020d.ndjson", v2)), want)
	sameLines(t, "meta changes", f.objectLines("theirs", fmt.Sprintf("meta/shop/changes/%020d.ndjson", v2)), want)
}

func TestPushS3UsesMultipartForLargeFiles(t *testing.T) {
	f := newPushFixture(t)
	f.h.PartSize = 1024
	rec := f.s3Destination("theirs")
	f.addDestination(site.Destination{Name: "bucket", Type: "s3", Bucket: "theirs", ExpectedBucketOwner: owner})
	var ops []string
	for i := range 200 {
		ops = append(ops, fmt.Sprintf(`p%04d={"title":"product %d","description":"%s"}`, i, i, strings.Repeat("x", i%50)))
	}
	v := f.commit(ops...)
	if failed := f.handle(f.job("bucket")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	feed := fmt.Sprintf("shop/feed/%020d.ndjson", v)
	sameLines(t, "full feed", f.objectLines("theirs", feed), f.catalogLines())
	if got := f.objectLines("theirs", fmt.Sprintf("shop/changes/%020d.ndjson", v)); len(got) != 200 {
		t.Errorf("changes file has %d lines, want 200", len(got))
	}
	count := map[string]int{}
	for _, c := range rec.taken() {
		if c.owner != owner {
			t.Errorf("call %+v without the expected bucket owner", c)
		}
		if c.key == feed {
			count[c.op]++
		}
	}
	if count["CreateMultipartUpload"] != 1 || count["UploadPart"] < 10 || count["CompleteMultipartUpload"] != 1 || count["PutObject"] != 0 {
		t.Errorf("feed written with %v, want one multipart upload of many parts", count)
	}
	// A small file is one PutObject.
	v2 := f.commit(`p0001={"title":"changed"}`)
	if failed := f.handle(f.job("bucket")); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	for _, c := range rec.taken() {
		if c.key == fmt.Sprintf("shop/changes/%020d.ndjson", v2) && c.op != "PutObject" {
			t.Errorf("small changes file written with %s", c.op)
		}
	}
}

func TestPushS3RefusesFeedpipesOwnBuckets(t *testing.T) {
	f := newPushFixture(t)
	f.h.OwnBuckets = []string{"incoming"}
	rec := f.s3Destination("incoming")
	f.addDestination(site.Destination{Name: "store", Type: "s3", Bucket: "store", ExpectedBucketOwner: owner})
	f.addDestination(site.Destination{Name: "incoming", Type: "s3", Bucket: "incoming", ExpectedBucketOwner: owner})
	f.commit(`a={"x":1}`)
	ms, mi := f.job("store"), f.job("incoming")
	failed := f.handle(ms, mi)
	if !failed[ms.MessageId] || !failed[mi.MessageId] {
		t.Fatalf("own buckets accepted: failed %v", failed)
	}
	if calls := rec.taken(); len(calls) != 0 {
		t.Errorf("wrote to feedpipe's own buckets: %v", calls)
	}
	for _, d := range []string{"store", "incoming"} {
		if f.ack(d) != 0 || !f.leased(d) {
			t.Errorf("%s: ack %d, leased %v; want ack 0 and the lease kept", d, f.ack(d), f.leased(d))
		}
	}
	if got := f.vis.calls[ms.ReceiptHandle]; got != 3600 {
		t.Errorf("visibility %d s, want the permanent failure's hour", got)
	}
}
