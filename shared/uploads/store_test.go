package uploads_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

func newStore(t *testing.T) *uploads.Store {
	t.Helper()
	cloud, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(cloud.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("store")}); err != nil {
		t.Fatal(err)
	}
	return uploads.NewStore(client, "store")
}

func TestConcurrentAllocationIssuesEachSequenceOnce(t *testing.T) {
	st := newStore(t)
	const n = 32
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	for i := range n {
		wg.Go(func() {
			rec, err := st.Allocate(context.Background(), uploads.Record{Site: "demo", Mode: uploads.Delta, State: uploads.AwaitingUpload}, layout.NewUploadID)
			if err != nil {
				t.Error(err)
				return
			}
			if id, _ := layout.ParseUploadID(rec.UploadID); id != rec.Sequence {
				t.Errorf("upload id %s does not carry sequence %d", rec.UploadID, rec.Sequence)
			}
			seqs[i] = rec.Sequence
		})
	}
	wg.Wait()
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("sequences %v: want exactly 1..%d", seqs, n)
		}
	}
	recs, more, err := st.List(context.Background(), "demo", 10, 5)
	if err != nil || !more || len(recs) != 5 || recs[0].Sequence != 11 || recs[4].Sequence != 15 {
		t.Fatalf("List(after 10, 5) = %d records from %v, more %v, %v", len(recs), recs, more, err)
	}
}

// The copy stage claiming received and the resolver claiming expired race:
// exactly one wins, the other sees the winner's state.
func TestRacingClaimsHaveOneWinner(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	for round := range 20 {
		rec, err := st.Allocate(ctx, uploads.Record{Site: "demo", State: uploads.AwaitingUpload}, layout.NewUploadID)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		won := make([]bool, 2)
		for i, to := range []uploads.State{uploads.Received, uploads.Expired} {
			wg.Go(func() {
				_, err := st.Update(ctx, "demo", rec.Sequence, func(r *uploads.Record) error {
					if r.State != uploads.AwaitingUpload {
						return uploads.ErrUnchanged // the other claimer decided
					}
					won[i] = true
					return r.Move(to, time.Now())
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		final, _, err := st.Get(ctx, "demo", rec.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		// A claimer may run its change more than once (after losing a
		// race); what matters is the final state is one claim, once.
		if final.State != uploads.Received && final.State != uploads.Expired {
			t.Fatalf("round %d: final state %s", round, final.State)
		}
		if len(final.Timestamps) != 1 {
			t.Fatalf("round %d: both claims were written: %v", round, final.Timestamps)
		}
	}
}

func TestStatesOnlyMoveForward(t *testing.T) {
	r := uploads.Record{Site: "demo", Sequence: 1, State: uploads.Imported}
	if err := r.Move(uploads.Queued, time.Now()); !errors.Is(err, uploads.ErrBackwards) {
		t.Fatalf("imported → queued: %v", err)
	}
	for _, c := range []struct {
		from, to uploads.State
		ok       bool
	}{
		{uploads.AwaitingUpload, uploads.Received, true},
		{uploads.AwaitingUpload, uploads.Imported, false},
		{uploads.Received, uploads.Rejected, true},
		{uploads.Expired, uploads.Received, false},
		{uploads.Cancelled, uploads.Expired, false},
		{uploads.Importing, uploads.Imported, true},
	} {
		if got := uploads.CanMove(c.from, c.to); got != c.ok {
			t.Errorf("CanMove(%s, %s) = %v", c.from, c.to, got)
		}
	}
}
