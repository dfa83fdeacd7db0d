package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// upload allocates an upload of site and moves it through states.
func upload(t *testing.T, store *uploads.Store, siteName string, states ...uploads.State) uploads.Record {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	rec, err := store.Allocate(ctx, uploads.Record{Site: siteName, Mode: uploads.Delta, ContentLength: 1, State: uploads.AwaitingUpload, ExpiresAt: now.Add(time.Hour)}, layout.NewUploadID)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) == 0 {
		return rec
	}
	rec, err = store.Update(ctx, siteName, rec.Sequence, func(r *uploads.Record) error {
		for _, st := range states {
			if err := r.Move(st, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestSnapshot(t *testing.T) {
	ctx := context.Background()
	lc := localcloudtest.Start(t)
	lc.Buckets(t, "store")
	r := Reader{S3: lc.S3, Bucket: "store"}
	for _, name := range []string{"shop", "quiet"} {
		_, hash := apiauth.NewToken()
		cfg := site.Config{Site: name, TokenHashes: []string{hash}}
		if name == "shop" {
			cfg.Destinations = []site.Destination{
				{Name: "hook", Type: "webhook", URL: "https://example.com/hook", Secrets: []string{"s"}},
				{Name: "lake", Type: "s3", Bucket: "partner", Prefix: "feeds/", ExpectedBucketOwner: "123456789012"},
			}
		}
		if err := site.Save(ctx, lc.S3, "store", cfg); err != nil {
			t.Fatal(err)
		}
	}
	// Not a site: a key under sites/ whose id is invalid.
	if _, err := lc.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("store"), Key: aws.String("sites/Not_A_Site/config.json"), Body: strings.NewReader("{}")}); err != nil {
		t.Fatal(err)
	}

	// shop: sequence 1 applied (catalog version 1, one product); 2 (queued)
	// and 3 (received) wait; 4 awaits its PUT and does not wait.
	store := uploads.NewStore(lc.S3, "store")
	upload(t, store, "shop", uploads.Received, uploads.Queued, uploads.Importing, uploads.Imported)
	upload(t, store, "shop", uploads.Received, uploads.Queued)
	upload(t, store, "shop", uploads.Received)
	upload(t, store, "shop")
	cat := catalog.New(lc.S3, "store")
	staged, err := cat.Stage(ctx, "shop", catalog.Version{Site: "shop"}, []catalog.Delta{{Sequence: 1, Ops: func(yield func(catalog.Op) error) error {
		return yield(catalog.Op{ID: "sku-1", Product: []byte(`{"t":1}`)})
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := staged.Commit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	acked := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	if err := (&syncjob.Store{S3: lc.S3, Bucket: "store"}).SaveAck(ctx, syncjob.Ack{Site: "shop", Destination: "hook", Version: 1, AckedAt: acked}); err != nil {
		t.Fatal(err)
	}
	if err := site.SaveState(ctx, lc.S3, "store", "shop", site.State{Halted: true, Reason: "why"}); err != nil {
		t.Fatal(err)
	}

	ids, more, err := r.Sites(ctx)
	if err != nil || more || strings.Join(ids, ",") != "quiet,shop" {
		t.Fatalf("Sites: %v %v %v, want quiet,shop", ids, more, err)
	}
	s, err := r.Site(ctx, "shop", 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 1 || s.AppliedSeq != 1 || s.Products != 1 || !s.Halted || s.HaltedReason != "why" {
		t.Errorf("head/state: %+v", s)
	}
	if got := s.Waiting; len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("waiting %v, want [2 3]", got)
	}
	if len(s.Recent) != 3 || s.Recent[0].Sequence != 4 || s.Recent[2].Sequence != 2 {
		t.Errorf("recent: %d records starting at %d, want 4, 3, 2", len(s.Recent), s.Recent[0].Sequence)
	}
	if d := s.Destinations; len(d) != 2 || d[0].AckedVersion != 1 || d[0].Backlog != 0 || !d[0].AckedAt.Equal(acked) ||
		d[1].Target != "s3://partner/feeds/" || d[1].AckedVersion != 0 || d[1].Backlog != 1 {
		t.Errorf("destinations %+v", d)
	}

	all, _, err := r.All(ctx, 2)
	if err != nil || len(all) != 2 || all[0].Site != "quiet" || len(all[0].Recent) != 0 || len(all[1].Recent) != 2 {
		t.Errorf("All: %d sites, %v", len(all), err)
	}
	if _, err := r.Site(ctx, "nosuch", 3); err == nil {
		t.Error("a site that does not exist read back")
	}
}
