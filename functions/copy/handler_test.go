package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

var deltaBody = []byte("{\"op\":\"upsert\",\"id\":\"sku-1\",\"product\":{\"title\":\"one\"}}\n{\"op\":\"delete\",\"id\":\"sku-2\"}\n")

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkQueued checks the end state of a copied upload: the record queued,
// exactly one delta message (group = site, dedup id = site + sequence), the
// file stored under imports/, the incoming object gone.
func (e *env) checkQueued(u upload, stored []byte, goldenName string) {
	e.t.Helper()
	rec, _ := e.record(u.rec.Sequence)
	if rec.State != uploads.Queued || rec.ReceivedSize != int64(len(stored)) {
		e.t.Errorf("record %s with receivedSize %d, want queued with %d", rec.State, rec.ReceivedSize, len(stored))
	}
	golden(e.t, goldenName, rec)
	msgs := e.importMessages()
	want := importMessage{Import: messages.Import{Kind: messages.KindDelta, Site: testSite, Sequence: u.rec.Sequence, UploadID: u.rec.UploadID},
		group: testSite, dedup: layout.DeltaDeduplicationID(testSite, u.rec.Sequence)}
	if len(msgs) != 1 || msgs[0] != want {
		e.t.Errorf("import queue holds %+v, want exactly %+v", msgs, want)
	}
	enc, _ := layout.ParseEncoding(u.rec.ContentEncoding)
	key := layout.Import{Site: testSite, Sequence: u.rec.Sequence, UploadID: u.rec.UploadID, Encoding: enc}.Key()
	if got := e.object(storeBucket, key); !bytes.Equal(got, stored) {
		e.t.Errorf("stored %s: %q, want %q", key, got, stored)
	}
	if got := e.object(incomingBucket, u.incoming().Key()); got != nil {
		e.t.Errorf("the incoming object is still there")
	}
}

func TestCopy(t *testing.T) {
	tests := []struct {
		name string
		enc  layout.Encoding
		body func(t *testing.T) []byte
		sha  bool
	}{
		{"identity", layout.Identity, func(*testing.T) []byte { return deltaBody }, false},
		{"identity with sha256", layout.Identity, func(*testing.T) []byte { return deltaBody }, true},
		{"gzip", layout.Gzip, func(t *testing.T) []byte { return gzipped(t, deltaBody) }, false},
		{"zstd", layout.Zstd, func(*testing.T) []byte { return append([]byte{0x28, 0xb5, 0x2f, 0xfd}, "frame"...) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			body := tt.body(t)
			u := e.create(body, tt.enc, tt.sha)
			e.put(u, body, tt.sha)
			ev := e.copyEvent(false)
			e.handle(ev)
			e.checkQueued(u, body, "queued-"+strings.ReplaceAll(tt.name, " ", "-"))

			// The same event again: nothing changes, no second message.
			before, etag := e.record(u.rec.Sequence)
			e.handle(ev)
			after, etag2 := e.record(u.rec.Sequence)
			if etag != etag2 || after.State != before.State {
				t.Errorf("a duplicate event rewrote the record: %s → %s", before.State, after.State)
			}
			if msgs := e.importMessages(); len(msgs) != 0 {
				t.Errorf("a duplicate event queued %+v", msgs)
			}

			// Once imported, a duplicate event sends nothing at all.
			e.move(u.rec.Sequence, nil, uploads.Importing, uploads.Imported)
			sends := e.sends.n.Load()
			e.handle(ev)
			if e.sends.n.Load() != sends {
				t.Errorf("a duplicate event of an imported upload sent a message")
			}
			if rec, _ := e.record(u.rec.Sequence); rec.State != uploads.Imported {
				t.Errorf("record is %s", rec.State)
			}
		})
	}
}

// TestCopyReplaysAfterCrash runs the handler on states a crashed earlier
// attempt leaves between its side effects; each ends exactly like an
// uninterrupted run.
func TestCopyReplaysAfterCrash(t *testing.T) {
	type step func(e *env, u upload)
	claim := func(e *env, u upload) {
		head, err := e.s3.HeadObject(e.t.Context(), &s3.HeadObjectInput{Bucket: aws.String(incomingBucket), Key: aws.String(u.incoming().Key())})
		if err != nil {
			e.t.Fatal(err)
		}
		e.move(u.rec.Sequence, func(r *uploads.Record) {
			r.ReceivedSize = aws.ToInt64(head.ContentLength)
			r.ReceivedETag = strings.Trim(aws.ToString(head.ETag), `"`)
		}, uploads.Received)
	}
	copied := func(e *env, u upload) {
		rec, _ := e.record(u.rec.Sequence)
		if err := e.h.copyAndVerify(e.t.Context(), rec, u.incoming()); err != nil {
			e.t.Fatal(err)
		}
	}
	queued := func(e *env, u upload) { e.move(u.rec.Sequence, nil, uploads.Queued) }
	sent := func(e *env, u upload) {
		if err := messages.Send(e.t.Context(), e.sqs, e.importURL, messages.Import{Kind: messages.KindDelta, Site: testSite, Sequence: u.rec.Sequence, UploadID: u.rec.UploadID}); err != nil {
			e.t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"crash after claim", []step{claim}},
		{"crash after copy", []step{claim, copied}},
		{"crash after queued", []step{claim, copied, queued}},
		{"crash after send", []step{claim, copied, queued, sent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			u := e.create(deltaBody, layout.Identity, true)
			e.put(u, deltaBody, true)
			ev := e.copyEvent(false)
			for _, s := range tt.steps {
				s(e, u)
			}
			e.handle(ev)
			// The same document as an uninterrupted run's.
			e.checkQueued(u, deltaBody, "queued-identity-with-sha256")
		})
	}
}

func TestCopyRejects(t *testing.T) {
	plain := deltaBody
	tests := []struct {
		name   string
		enc    layout.Encoding
		put    []byte
		sha    []byte // the upload was created with the sha256 of this
		reason string
	}{
		{"plain text declared gzip", layout.Gzip, plain, nil, uploads.ReasonBadEncoding},
		{"plain text declared zstd", layout.Zstd, plain, nil, uploads.ReasonBadEncoding},
		{"gzip declared identity", layout.Identity, gzipped(t, plain), nil, uploads.ReasonBadEncoding},
		{"checksum mismatch", layout.Identity, bytes.ToUpper(plain), plain, uploads.ReasonChecksumMismatch},
		{"size mismatch", layout.Identity, append(append([]byte{}, plain...), '\n'), nil, uploads.ReasonSizeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			created := tt.put
			if tt.sha != nil {
				created = tt.sha
			}
			if tt.reason == uploads.ReasonSizeMismatch {
				created = plain
			}
			u := e.create(created, tt.enc, tt.sha != nil)
			e.put(u, tt.put, tt.sha != nil)
			e.handle(e.copyEvent(false))
			rec, _ := e.record(u.rec.Sequence)
			if rec.State != uploads.Rejected || rec.Reason != tt.reason || rec.Message == "" {
				t.Fatalf("record %s %q %q, want rejected %s", rec.State, rec.Reason, rec.Message, tt.reason)
			}
			golden(t, "rejected-"+strings.ReplaceAll(tt.name, " ", "-"), rec)
			msgs := e.importMessages()
			if len(msgs) != 1 || msgs[0].Kind != messages.KindWake || msgs[0].group != testSite {
				t.Errorf("import queue holds %+v, want one wake of %s", msgs, testSite)
			}
			enc, _ := layout.ParseEncoding(rec.ContentEncoding)
			if got := e.object(storeBucket, layout.Import{Site: testSite, Sequence: rec.Sequence, UploadID: rec.UploadID, Encoding: enc}.Key()); got != nil {
				t.Errorf("a rejected upload was stored for import")
			}
		})
	}
}

func TestCopyLateUpload(t *testing.T) {
	for _, state := range []uploads.State{uploads.Expired, uploads.Cancelled} {
		t.Run(string(state), func(t *testing.T) {
			e := newEnv(t)
			u := e.create(deltaBody, layout.Identity, false)
			e.move(u.rec.Sequence, nil, state)
			e.put(u, deltaBody, false)
			ev := e.copyEvent(false)
			e.handle(ev)
			rec, etag := e.record(u.rec.Sequence)
			if rec.State != state || rec.LateUpload == nil || rec.LateUpload.Reason != uploads.ReasonLateUpload {
				t.Fatalf("record %s late %+v, want %s with lateUpload", rec.State, rec.LateUpload, state)
			}
			golden(t, "late-"+string(state), rec)
			if e.object(incomingBucket, u.incoming().Key()) == nil {
				t.Errorf("the late object was not kept")
			}
			if msgs := e.importMessages(); len(msgs) != 0 {
				t.Errorf("a late upload queued %+v", msgs)
			}
			e.handle(ev)
			if _, etag2 := e.record(u.rec.Sequence); etag2 != etag {
				t.Errorf("a duplicate late event rewrote the record")
			}
		})
	}
}

func TestCopyIgnores(t *testing.T) {
	e := newEnv(t)
	// s3:TestEvent, sent when the notification was configured.
	e.handle(e.copyEvent(true))

	u := e.create(deltaBody, layout.Identity, false)
	ghost := layout.Incoming{Site: testSite, Sequence: 9, UploadID: layout.NewUploadID(9)}
	wrongID := layout.Incoming{Site: testSite, Sequence: u.rec.Sequence, UploadID: layout.NewUploadID(u.rec.Sequence)}
	for _, key := range []string{ghost.Key(), wrongID.Key(), "incoming/demo/not-an-upload", "incoming/../x"} {
		if _, err := e.s3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(incomingBucket), Key: aws.String(key), Body: bytes.NewReader(deltaBody)}); err != nil {
			t.Fatal(err)
		}
		e.handle(e.copyEvent(false))
		if e.object(incomingBucket, key) == nil {
			t.Errorf("%s: an object no upload created was deleted", key)
		}
	}
	for _, body := range []string{`not json`, `{}`, `{"Records":[]}`, `{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"` + incomingBucket + `"},"object":{"key":"x"}}}]}`} {
		e.handle(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m", Body: body}}})
	}
	if rec, _ := e.record(u.rec.Sequence); rec.State != uploads.AwaitingUpload {
		t.Errorf("an object with another upload id moved the record to %s", rec.State)
	}
	if msgs := e.importMessages(); len(msgs) != 0 {
		t.Errorf("ignored events queued %+v", msgs)
	}
	if n := e.sends.n.Load(); n != 0 {
		t.Errorf("ignored events sent %d messages", n)
	}
}

// TestSampleEvent keeps events/copy/object-created.json working: it decodes
// into the handler's event type, carries an S3 event for an incoming key,
// and copies that upload.
func TestSampleEvent(t *testing.T) {
	b, err := os.ReadFile("../../events/copy/object-created.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil || len(ev.Records) != 1 {
		t.Fatalf("not an SQS event: %v", err)
	}
	var s3ev events.S3Event
	dec = json.NewDecoder(strings.NewReader(ev.Records[0].Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s3ev); err != nil || len(s3ev.Records) != 1 {
		t.Fatalf("the body is not an S3 event: %v", err)
	}
	r := s3ev.Records[0]
	in, err := layout.ParseIncoming(r.S3.Object.URLDecodedKey)
	if err != nil || r.EventName != "ObjectCreated:Put" || r.S3.Bucket.Name != incomingBucket {
		t.Fatalf("sample event %s %s/%s: %v", r.EventName, r.S3.Bucket.Name, r.S3.Object.Key, err)
	}

	e := newEnv(t)
	body := deltaBody[:r.S3.Object.Size]
	rec, err := e.h.Uploads.Allocate(t.Context(), uploads.Record{Site: in.Site, Mode: uploads.Delta, ContentLength: r.S3.Object.Size, ContentEncoding: "identity", State: uploads.AwaitingUpload},
		func(uint64) string { return in.UploadID })
	if err != nil || rec.Sequence != in.Sequence {
		t.Fatalf("allocate %+v: %v", rec, err)
	}
	u := upload{rec: rec, body: body}
	e.put(u, body, false)
	e.handle(ev)
	e.checkQueued(u, body, "queued-sample")
}
