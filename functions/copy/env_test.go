package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The dev stack's names, so that events/copy/ samples apply as they are.
const (
	incomingBucket = "feedpipe-incoming-000000000000-us-east-1"
	storeBucket    = "feedpipe-store-000000000000-us-east-1"
	testSite       = "demo"
)

// env is one embedded cloud with the incoming bucket notifying a copy
// queue, the store bucket, the import FIFO queue, and a Handler on them.
type env struct {
	t         *testing.T
	cloud     *localcloud.Cloud
	s3        *s3.Client
	sqs       *sqs.Client
	copyURL   string
	importURL string
	sends     *countingSender
	h         *Handler
}

// countingSender counts the handler's SendMessage calls.
type countingSender struct {
	sender
	n atomic.Int64
}

func (c *countingSender) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	c.n.Add(1)
	return c.sender.SendMessage(ctx, in, opts...)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	lc := localcloudtest.Start(t)
	lc.Buckets(t, incomingBucket, storeBucket)
	cloud, s3c, sqsc := lc.Cloud, lc.S3, lc.SQS
	copyURL := lc.Queue(t, "feedpipe-copy", nil)
	importURL := lc.Queue(t, "feedpipe-import.fifo", nil)
	_, err := s3c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(incomingBucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			Id:       aws.String("copy-queue"),
			QueueArn: aws.String("arn:aws:sqs:" + cloud.Region() + ":" + cloud.AccountID() + ":feedpipe-copy"),
			Events:   []s3types.Event{"s3:ObjectCreated:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String(layout.IncomingPrefix())},
			}}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cloud: cloud, s3: s3c, sqs: sqsc, copyURL: copyURL, importURL: importURL, sends: &countingSender{sender: sqsc}}
	e.h = &Handler{
		S3: s3c, SQS: e.sends, Uploads: uploads.NewStore(s3c, storeBucket),
		IncomingBucket: incomingBucket, StoreBucket: storeBucket, ImportQueueURL: e.importURL,
		Logger: slog.New(slog.DiscardHandler),
	}
	return e
}

func (e *env) now() time.Time { return e.cloud.Clock().Now() }

// upload is a created upload and the file its client PUTs.
type upload struct {
	rec  uploads.Record
	body []byte
}

func (u upload) incoming() layout.Incoming {
	return layout.Incoming{Site: u.rec.Site, Sequence: u.rec.Sequence, UploadID: u.rec.UploadID}
}

// create allocates an upload record as the Upload API does, for body.
func (e *env) create(body []byte, enc layout.Encoding, withSHA bool) upload {
	e.t.Helper()
	now := e.now()
	rec := uploads.Record{Site: testSite, Mode: uploads.Delta, ContentLength: int64(len(body)), ContentEncoding: string(enc),
		ExpiresAt: now.Add(15 * time.Minute), State: uploads.AwaitingUpload, Timestamps: map[uploads.State]time.Time{uploads.AwaitingUpload: now}}
	if withSHA {
		sum := sha256.Sum256(body)
		rec.SHA256 = hex.EncodeToString(sum[:])
	}
	rec, err := e.h.Uploads.Allocate(e.t.Context(), rec, layout.NewUploadID)
	if err != nil {
		e.t.Fatal(err)
	}
	return upload{rec: rec, body: body}
}

// put stores body under the upload's incoming key as a presigned PUT would
// (If-None-Match: *, and the checksum of body when sha is set).
func (e *env) put(u upload, body []byte, sha bool) {
	e.t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(incomingBucket), Key: aws.String(u.incoming().Key()), Body: bytes.NewReader(body), IfNoneMatch: aws.String("*")}
	if sha {
		sum := sha256.Sum256(body)
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	}
	if _, err := e.s3.PutObject(e.t.Context(), in); err != nil {
		e.t.Fatal(err)
	}
}

// copyEvent receives the S3 notification of the copy queue as the event
// source mapping would deliver it; test events are skipped unless wanted.
func (e *env) copyEvent(wantTest bool) events.SQSEvent {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, err := e.sqs.ReceiveMessage(e.t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.copyURL), MaxNumberOfMessages: 1, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range out.Messages {
			if _, err := e.sqs.DeleteMessage(e.t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(e.copyURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				e.t.Fatal(err)
			}
			var probe struct{ Event string }
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &probe)
			if (probe.Event == "s3:TestEvent") != wantTest {
				continue
			}
			return events.SQSEvent{Records: []events.SQSMessage{{
				MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
				Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: m.Attributes, EventSource: "aws:sqs",
				EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:feedpipe-copy", AWSRegion: "us-east-1",
			}}}
		}
	}
	e.t.Fatal("no S3 notification on the copy queue")
	return events.SQSEvent{}
}

// handle runs the handler and fails the test on a reported failure.
func (e *env) handle(ev events.SQSEvent) {
	e.t.Helper()
	resp, err := e.h.Handle(e.t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		e.t.Fatalf("Handle: %+v %v", resp, err)
	}
}

func (e *env) record(seq uint64) (uploads.Record, string) {
	e.t.Helper()
	rec, etag, err := e.h.Uploads.Get(e.t.Context(), testSite, seq)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec, etag
}

// object returns an object's bytes, or nil when it does not exist.
func (e *env) object(bucket, key string) []byte {
	e.t.Helper()
	out, err := e.s3.GetObject(e.t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if uploads.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// importMessage is a received import queue message with its FIFO ids.
type importMessage struct {
	messages.Import
	group, dedup string
}

// importMessages receives (and deletes) every visible import message.
func (e *env) importMessages() []importMessage {
	e.t.Helper()
	var msgs []importMessage
	for {
		out, err := e.sqs.ReceiveMessage(e.t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.importURL), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return msgs
		}
		for _, m := range out.Messages {
			im, err := messages.DecodeImport(aws.ToString(m.Body))
			if err != nil {
				e.t.Fatal(err)
			}
			msgs = append(msgs, importMessage{Import: im, group: m.Attributes["MessageGroupId"], dedup: m.Attributes["MessageDeduplicationId"]})
			if _, err := e.sqs.DeleteMessage(e.t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(e.importURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// move forces a record through states, as a crashed earlier attempt would
// have left it.
func (e *env) move(seq uint64, edit func(r *uploads.Record), states ...uploads.State) {
	e.t.Helper()
	_, err := e.h.Uploads.Update(e.t.Context(), testSite, seq, func(r *uploads.Record) error {
		for _, s := range states {
			if err := r.Move(s, e.now()); err != nil {
				return err
			}
		}
		if edit != nil {
			edit(r)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

var (
	uploadIDRE = regexp.MustCompile(`\b([1-9][0-9]*)-[a-z2-7]{26}\b`)
	timeRE     = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)
)

// golden compares a record, normalized (upload ids keep their sequence;
// timestamps and ETags become placeholders), with testdata/name.golden.json,
// or rewrites it with -update.
func golden(t *testing.T, name string, rec uploads.Record) {
	t.Helper()
	doc, _ := json.Marshal(rec)
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				x[k] = walk(k, vv)
			}
		case []any:
			for i, vv := range x {
				x[i] = walk(key, vv)
			}
		case string:
			switch {
			case key == "receivedEtag":
				return "<etag>"
			case timeRE.MatchString(x):
				return "<time>"
			}
			return uploadIDRE.ReplaceAllString(x, "<uploadId:$1>")
		}
		return v
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(walk("", v)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, out.Bytes()) {
		t.Errorf("record differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, out.Bytes(), want)
	}
}
