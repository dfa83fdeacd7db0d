package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncbuf"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// fixture is an import handler on a fresh embedded cloud.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	cloud  *localcloud.Cloud
	s3     *s3.Client
	s3f    *flakyS3
	sqs    *recordingQueue
	h      *Handler
	logs   *syncbuf.Buffer
	store  string
	queue  string
	nextID int
}

const testBudget = 3

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	lc := localcloudtest.Start(t)
	s3c, sqsc := lc.S3, lc.SQS
	store := "store"
	lc.Buckets(t, store)
	queueURL := lc.Queue(t, "import.fifo", nil)
	logs := &syncbuf.Buffer{}
	f := &fixture{t: t, ctx: ctx, cloud: lc.Cloud, s3: s3c, s3f: &flakyS3{objectAPI: s3c}, sqs: &recordingQueue{next: sqsc}, logs: logs, store: store, queue: queueURL}
	f.h = &Handler{S3: f.s3f, SQS: f.sqs, Catalog: catalog.New(s3c, store), Uploads: uploads.NewStore(s3c, store),
		StoreBucket: store, ImportQueueURL: f.queue, RetryBudget: testBudget,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	return f
}

// flakyS3 fails GetObject of one key with a transient error.
type flakyS3 struct {
	objectAPI
	failKey string
}

func (f *flakyS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if f.failKey != "" && aws.ToString(in.Key) == f.failKey {
		return nil, errors.New("slow down: injected throttling")
	}
	return f.objectAPI.GetObject(ctx, in, opts...)
}

// recordingQueue forwards SendMessage and records ChangeMessageVisibility
// (the receipt handles in these tests are made up).
type recordingQueue struct {
	next       queueAPI
	mu         sync.Mutex
	visibility []*sqs.ChangeMessageVisibilityInput
}

func (q *recordingQueue) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return q.next.SendMessage(ctx, in, opts...)
}

func (q *recordingQueue) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.visibility = append(q.visibility, in)
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// queued allocates a delta upload and moves it to queued, as the copy stage
// would; body, when not nil, is stored as its imported object.
func (f *fixture) queued(siteName string, enc layout.Encoding, body []byte) uploads.Record {
	f.t.Helper()
	return f.queuedFrom(siteName, enc, func(key string) (int64, error) {
		if body == nil {
			return 0, nil
		}
		_, err := f.s3.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(f.store), Key: aws.String(key), Body: bytes.NewReader(body)})
		return int64(len(body)), err
	})
}

// queuedFrom allocates a delta upload, has store write its imported object
// under key (returning its size), and moves the upload to queued.
func (f *fixture) queuedFrom(siteName string, enc layout.Encoding, store func(key string) (int64, error)) uploads.Record {
	f.t.Helper()
	now := time.Now().UTC()
	rec, err := f.h.Uploads.Allocate(f.ctx, uploads.Record{Site: siteName, Mode: uploads.Delta,
		ContentEncoding: string(enc), ExpiresAt: now.Add(time.Hour), State: uploads.AwaitingUpload}, layout.NewUploadID)
	if err != nil {
		f.t.Fatal(err)
	}
	size, err := store(importKey(rec))
	if err != nil {
		f.t.Fatalf("store the upload of %s: %v", siteName, err)
	}
	rec, err = f.h.Uploads.Update(f.ctx, siteName, rec.Sequence, func(r *uploads.Record) error {
		r.ContentLength = size
		if err := r.Move(uploads.Received, now); err != nil {
			return err
		}
		return r.Move(uploads.Queued, now)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

func importKey(rec uploads.Record) string {
	enc, _ := layout.ParseEncoding(rec.ContentEncoding)
	return layout.Import{Site: rec.Site, Sequence: rec.Sequence, UploadID: rec.UploadID, Encoding: enc}.Key()
}

func (f *fixture) message(group, body string, receives int) events.SQSMessage {
	f.nextID++
	return events.SQSMessage{MessageId: "m" + string(rune('a'+f.nextID)), ReceiptHandle: "rh-" + group, Body: body,
		Attributes: map[string]string{"MessageGroupId": group, "ApproximateReceiveCount": itoa(receives)}}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func deltaBody(rec uploads.Record) string {
	return messages.Import{Kind: messages.KindDelta, Site: rec.Site, Sequence: rec.Sequence, UploadID: rec.UploadID}.Encode()
}

func (f *fixture) handle(msgs ...events.SQSMessage) events.SQSEventResponse {
	f.t.Helper()
	resp, err := f.h.Handle(f.ctx, events.SQSEvent{Records: msgs})
	if err != nil {
		f.t.Fatal(err)
	}
	return resp
}

// assertHalted checks the site is halted with a reason containing want and
// that an alarmable line was logged.
func (f *fixture) assertHalted(siteName, want string) {
	f.t.Helper()
	st, err := site.LoadState(f.ctx, f.s3, f.store, siteName)
	if err != nil {
		f.t.Fatal(err)
	}
	if !st.Halted || st.Reason == "" || !strings.Contains(st.Reason, want) {
		f.t.Errorf("site state = %+v, want halted with a reason naming %q", st, want)
	}
	if !strings.Contains(f.logs.String(), `"alarm":"site_halted"`) || !strings.Contains(f.logs.String(), `"site":"`+siteName+`"`) {
		f.t.Errorf("no alarm=site_halted log line for %s:\n%s", siteName, f.logs.String())
	}
}

// assertNotImported checks the sequence did not reach imported and that no
// catalog version claims it.
func (f *fixture) assertNotImported(rec uploads.Record) {
	f.t.Helper()
	got, _, err := f.h.Uploads.Get(f.ctx, rec.Site, rec.Sequence)
	if err != nil {
		f.t.Fatal(err)
	}
	if got.State == uploads.Imported || got.CatalogVersion != 0 {
		f.t.Errorf("record is %s (catalog version %d); a sequence whose data cannot be read must never be imported", got.State, got.CatalogVersion)
	}
	head, err := catalog.New(f.s3, f.store).Head(f.ctx, rec.Site)
	if err != nil {
		f.t.Fatal(err)
	}
	if head.Version != 0 || head.AppliedSeq >= rec.Sequence {
		f.t.Errorf("catalog version %d claims appliedSeq %d; it must not include sequence %d", head.Version, head.AppliedSeq, rec.Sequence)
	}
	if strings.Contains(f.logs.String(), `"products":0`) {
		f.t.Errorf("a commit with 0 products was logged:\n%s", f.logs.String())
	}
}

// The seed incident: a queued upload whose stored object is missing or
// unreadable halts its site, alarms, and is never reported imported.
func TestQueuedUploadWithoutReadableDataHaltsSite(t *testing.T) {
	tests := []struct {
		name string
		enc  layout.Encoding
		body []byte // nil: the stored object was deleted
		want string // in the halt reason
	}{
		{name: "stored object deleted", enc: layout.Identity, body: nil, want: "missing"},
		{name: "stored zstd object corrupt", enc: layout.Zstd, body: append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff, 0x00, 0x13}, 40)...), want: "unreadable"},
		{name: "stored gzip object corrupt", enc: layout.Gzip, body: append([]byte{0x1f, 0x8b, 0x08, 0x00}, bytes.Repeat([]byte{0x42}, 64)...), want: "unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rec := f.queued("shop", tt.enc, tt.body)
			resp := f.handle(f.message("shop", deltaBody(rec), 1))
			if len(resp.BatchItemFailures) != 0 {
				t.Errorf("batch item failures %v: a halted site's messages are acknowledged", resp.BatchItemFailures)
			}
			f.assertHalted("shop", importKey(rec))
			st, _ := site.LoadState(f.ctx, f.s3, f.store, "shop")
			if !strings.Contains(st.Reason, tt.want) || st.Sequence != rec.Sequence {
				t.Errorf("halt reason %q at sequence %d, want it to say %q at sequence %d", st.Reason, st.Sequence, tt.want, rec.Sequence)
			}
			f.assertNotImported(rec)

			// A later delivery changes nothing while the site is halted.
			f.handle(f.message("shop", deltaBody(rec), 1))
			f.assertNotImported(rec)
		})
	}
}

// A client that sent a broken gzip file (the stored bytes are exactly what
// the copy stage received) gets its upload rejected; the site is not halted
// and the next delta imports.
func TestClientCorruptFileIsRejectedNotHalted(t *testing.T) {
	f := newFixture(t)
	body := append([]byte{0x1f, 0x8b, 0x08, 0x00}, bytes.Repeat([]byte{0x42}, 64)...)
	rec := f.queued("shop", layout.Gzip, body)
	head, err := f.s3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String(f.store), Key: aws.String(importKey(rec))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.h.Uploads.Update(f.ctx, "shop", rec.Sequence, func(r *uploads.Record) error {
		r.ReceivedETag = strings.Trim(aws.ToString(head.ETag), `"`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	next := f.queued("shop", layout.Identity, []byte(`{"op":"upsert","id":"a","product":{"n":1}}`+"\n"))
	f.handle(f.message("shop", deltaBody(rec), 1), f.message("shop", deltaBody(next), 1))
	got, _, err := f.h.Uploads.Get(f.ctx, "shop", rec.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != uploads.Rejected || got.Reason != uploads.ReasonBadEncoding {
		t.Errorf("broken client file: %s (%s), want rejected bad_encoding", got.State, got.Reason)
	}
	if st, _ := site.LoadState(f.ctx, f.s3, f.store, "shop"); st.Halted {
		t.Errorf("site halted for a client's broken file: %+v", st)
	}
	if n, _, _ := f.h.Uploads.Get(f.ctx, "shop", next.Sequence); n.State != uploads.Imported {
		t.Errorf("the next delta is %s, want imported", n.State)
	}
}

func TestTransientFailureRetriesWithBackoffThenHalts(t *testing.T) {
	f := newFixture(t)
	rec := f.queued("shop", layout.Identity, []byte(`{"op":"upsert","id":"a","product":{"n":1}}`+"\n"))
	f.s3f.failKey = importKey(rec)

	for receives := 1; receives < testBudget; receives++ {
		msg := f.message("shop", deltaBody(rec), receives)
		resp := f.handle(msg)
		if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != msg.MessageId {
			t.Fatalf("receive %d: batch item failures %v, want the message back", receives, resp.BatchItemFailures)
		}
		if len(f.sqs.visibility) != receives {
			t.Fatalf("receive %d: %d ChangeMessageVisibility calls, want one per failed receive", receives, len(f.sqs.visibility))
		}
		cv := f.sqs.visibility[receives-1]
		if aws.ToString(cv.ReceiptHandle) != msg.ReceiptHandle || cv.VisibilityTimeout <= 0 {
			t.Errorf("receive %d: backoff %+v", receives, cv)
		}
		if receives > 1 && cv.VisibilityTimeout <= f.sqs.visibility[receives-2].VisibilityTimeout {
			t.Errorf("backoff does not grow: %d then %d", f.sqs.visibility[receives-2].VisibilityTimeout, cv.VisibilityTimeout)
		}
		if st, _ := site.LoadState(f.ctx, f.s3, f.store, "shop"); st.Halted {
			t.Fatalf("receive %d: halted within the retry budget: %+v", receives, st)
		}
	}

	resp := f.handle(f.message("shop", deltaBody(rec), testBudget))
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("past the budget: batch item failures %v, want the message acknowledged", resp.BatchItemFailures)
	}
	f.assertHalted("shop", "retry budget")
	f.assertNotImported(rec)
}

func TestUndecodableMessageHaltsItsSite(t *testing.T) {
	f := newFixture(t)
	other := f.queued("other", layout.Identity, []byte(`{"op":"upsert","id":"a","product":{"n":1}}`+"\n"))
	bad := f.message("shop", `{"kind":"delta","site":"shop","sequence":7,"uploadId":"nonsense"}`, 1)
	good := f.message("other", deltaBody(other), 1)
	resp := f.handle(bad, good)
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("batch item failures %v, want both acknowledged", resp.BatchItemFailures)
	}
	f.assertHalted("shop", bad.MessageId)
	// Another site in the same batch is not held back.
	got, _, err := f.h.Uploads.Get(f.ctx, "other", other.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != uploads.Imported {
		t.Errorf("other site's upload is %s, want imported", got.State)
	}
	if st, _ := site.LoadState(f.ctx, f.s3, f.store, "other"); st.Halted {
		t.Errorf("other site halted: %+v", st)
	}
}
