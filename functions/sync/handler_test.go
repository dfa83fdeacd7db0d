package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// sentMessages records the import messages the resolver sends.
type sentMessages struct {
	mu   sync.Mutex
	msgs []messages.Import
}

func (s *sentMessages) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	m, err := messages.DecodeImport(aws.ToString(in.MessageBody))
	if err != nil {
		return nil, err
	}
	if aws.ToString(in.MessageGroupId) != m.Site {
		return nil, errorString("group id " + aws.ToString(in.MessageGroupId) + " is not the site " + m.Site)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return &sqs.SendMessageOutput{MessageId: aws.String("x")}, nil
}

func (s *sentMessages) wakes(siteName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if m.Kind == messages.KindWake && m.Site == siteName {
			n++
		}
	}
	return n
}

type errorString string

func (e errorString) Error() string { return string(e) }

type noCatalog struct{}

func (noCatalog) AppliedSeq(context.Context, string) (uint64, error) { return 0, nil }

type resolverFixture struct {
	t       *testing.T
	cloud   *localcloud.Cloud
	ctx     context.Context
	s3      *s3.Client
	h       *Handler
	sent    *sentMessages
	expires time.Time
}

const testGrace = 2 * time.Minute

func newResolverFixture(t *testing.T) *resolverFixture {
	t.Helper()
	ctx := context.Background()
	cloud, err := localcloud.Start(ctx, localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	ak, sk := cloud.Credentials()
	s3c := s3.New(s3.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
	for _, b := range []string{"incoming", "store"} {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	sent := &sentMessages{}
	h := &Handler{S3: s3c, SQS: sent, Uploads: uploads.NewStore(s3c, "store"), Catalog: noCatalog{},
		IncomingBucket: "incoming", StoreBucket: "store", ImportQueueURL: "import-queue", Grace: testGrace,
		Logger: slog.New(slog.DiscardHandler)}
	return &resolverFixture{t: t, cloud: cloud, ctx: ctx, s3: s3c, h: h, sent: sent, expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// awaiting allocates an upload awaiting its PUT and marks the site pending,
// as the upload API does.
func (f *resolverFixture) awaiting(siteName string) uploads.Record {
	f.t.Helper()
	rec, err := f.h.Uploads.Allocate(f.ctx, uploads.Record{Site: siteName, Mode: uploads.Delta, ContentLength: 10,
		ContentEncoding: "identity", ExpiresAt: f.expires, State: uploads.AwaitingUpload}, layout.NewUploadID)
	if err != nil {
		f.t.Fatal(err)
	}
	f.put("store", layout.PendingKey(siteName))
	return rec
}

func (f *resolverFixture) put(bucket, key string) {
	f.t.Helper()
	if _, err := f.s3.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("{}")}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *resolverFixture) run(at time.Time) Report {
	f.t.Helper()
	rep, err := f.h.Handle(f.ctx, Event{CloudWatchEvent: events.CloudWatchEvent{Time: at}})
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

func (f *resolverFixture) state(rec uploads.Record) uploads.Record {
	f.t.Helper()
	got, _, err := f.h.Uploads.Get(f.ctx, rec.Site, rec.Sequence)
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

func (f *resolverFixture) pending(siteName string) bool {
	f.t.Helper()
	_, err := f.s3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String("store"), Key: aws.String(layout.PendingKey(siteName))})
	if err != nil && !uploads.IsNotFound(err) {
		f.t.Fatal(err)
	}
	return err == nil
}

func TestResolverExpiresOnlyPastExpiryPlusGrace(t *testing.T) {
	tests := []struct {
		name   string
		at     time.Duration // after expiresAt
		expire bool
	}{
		{"before expiry", -time.Minute, false},
		{"at expiry", 0, false},
		{"within grace", testGrace - time.Second, false},
		{"at expiry plus grace", testGrace, true},
		{"past expiry plus grace", testGrace + time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newResolverFixture(t)
			rec := f.awaiting("shop")
			rep := f.run(f.expires.Add(tt.at))
			got := f.state(rec)
			if tt.expire {
				if got.State != uploads.Expired || rep.Expired != 1 {
					t.Fatalf("state %s, report %+v: want expired", got.State, rep)
				}
				if f.sent.wakes("shop") != 1 {
					t.Errorf("%d wakes for shop, want 1", f.sent.wakes("shop"))
				}
				if f.pending("shop") {
					t.Errorf("pending mark kept although nothing is outstanding")
				}
				return
			}
			if got.State != uploads.AwaitingUpload || rep.Expired != 0 || rep.Waiting != 1 {
				t.Fatalf("state %s, report %+v: want still awaiting_upload", got.State, rep)
			}
			if f.sent.wakes("shop") != 0 {
				t.Errorf("woke the site without expiring anything")
			}
			if !f.pending("shop") {
				t.Errorf("pending mark not restored while an upload is outstanding")
			}
		})
	}
}

func TestResolverNeverExpiresAnUploadS3Accepted(t *testing.T) {
	f := newResolverFixture(t)
	accepted := f.awaiting("shop")
	abandoned := f.awaiting("shop")
	f.put("incoming", layout.Incoming{Site: "shop", Sequence: accepted.Sequence, UploadID: accepted.UploadID}.Key())

	rep := f.run(f.expires.Add(testGrace + 24*time.Hour))
	if got := f.state(accepted); got.State != uploads.AwaitingUpload {
		t.Errorf("the upload whose object exists is %s, want awaiting_upload (its event is on its way)", got.State)
	}
	if got := f.state(abandoned); got.State != uploads.Expired {
		t.Errorf("the abandoned upload is %s, want expired", got.State)
	}
	if rep.LateKept != 1 || rep.Expired != 1 {
		t.Errorf("report %+v, want lateKept 1 and expired 1", rep)
	}
	if f.sent.wakes("shop") != 1 {
		t.Errorf("%d wakes, want 1", f.sent.wakes("shop"))
	}
	if !f.pending("shop") {
		t.Errorf("pending mark not restored while the accepted upload is outstanding")
	}

	// Once the copy stage has claimed it, the next run lets the site go.
	if _, err := f.h.Uploads.Update(f.ctx, "shop", accepted.Sequence, func(r *uploads.Record) error {
		return r.Move(uploads.Received, f.expires)
	}); err != nil {
		t.Fatal(err)
	}
	f.run(f.expires.Add(testGrace + 25*time.Hour))
	if got := f.state(accepted); got.State != uploads.Received {
		t.Errorf("a received upload became %s", got.State)
	}
	if f.pending("shop") {
		t.Errorf("pending mark kept although nothing awaits its PUT")
	}
}

func TestResolverWakesEachSiteItExpired(t *testing.T) {
	f := newResolverFixture(t)
	f.awaiting("one")
	f.awaiting("one")
	f.awaiting("two")
	quiet := f.awaiting("three")
	if _, err := f.h.Uploads.Update(f.ctx, "three", quiet.Sequence, func(r *uploads.Record) error {
		return r.Move(uploads.Cancelled, f.expires)
	}); err != nil {
		t.Fatal(err)
	}
	rep := f.run(f.expires.Add(testGrace + time.Second))
	if rep.Sites != 3 || rep.Expired != 3 {
		t.Errorf("report %+v, want 3 sites and 3 expired", rep)
	}
	for siteName, want := range map[string]int{"one": 1, "two": 1, "three": 0} {
		if got := f.sent.wakes(siteName); got != want {
			t.Errorf("%d wakes for %s, want %d", got, siteName, want)
		}
	}
	// A second run has nothing left to do and wakes nobody.
	rep = f.run(f.expires.Add(testGrace + time.Minute))
	if rep.Sites != 0 || f.sent.wakes("one") != 1 {
		t.Errorf("second run: report %+v, wakes for one %d", rep, f.sent.wakes("one"))
	}
}
