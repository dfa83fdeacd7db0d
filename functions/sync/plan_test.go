package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// syncQueue records the jobs the planner sends, checking their ids.
type syncQueue struct {
	mu      sync.Mutex
	jobs    []messages.SyncJob
	dedup   map[string]bool
	batches int
}

func (q *syncQueue) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(in.Entries) == 0 || len(in.Entries) > 10 {
		return nil, fmt.Errorf("batch of %d entries", len(in.Entries))
	}
	if q.dedup == nil {
		q.dedup = map[string]bool{}
	}
	q.batches++
	for _, e := range in.Entries {
		m, err := messages.DecodeSyncJob(aws.ToString(e.MessageBody))
		if err != nil {
			return nil, err
		}
		if aws.ToString(e.MessageGroupId) != m.Site+"/"+m.Destination {
			return nil, fmt.Errorf("group %q for %s/%s", aws.ToString(e.MessageGroupId), m.Site, m.Destination)
		}
		if q.dedup[aws.ToString(e.MessageDeduplicationId)] {
			return nil, fmt.Errorf("deduplication id %q reused", aws.ToString(e.MessageDeduplicationId))
		}
		q.dedup[aws.ToString(e.MessageDeduplicationId)] = true
		q.jobs = append(q.jobs, m)
	}
	return &sqs.SendMessageBatchOutput{}, nil
}

func (q *syncQueue) take() []messages.SyncJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	j := q.jobs
	q.jobs = nil
	return j
}

// heads is a fake catalog: the head version of each site.
type heads struct {
	mu sync.Mutex
	v  map[string]uint64
}

func (h *heads) Head(_ context.Context, siteName string) (catalog.Version, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return catalog.Version{Site: siteName, Version: h.v[siteName]}, nil
}

func (h *heads) set(siteName string, v uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.v[siteName] = v
}

type planFixture struct {
	*resolverFixture
	queue *syncQueue
	heads *heads
	jobs  *syncjob.Store
	now   time.Time
}

const testLeaseTTL = 30 * time.Minute

func newPlanFixture(t *testing.T) *planFixture {
	f := &planFixture{resolverFixture: newResolverFixture(t), queue: &syncQueue{}, heads: &heads{v: map[string]uint64{}},
		now: time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)}
	f.h.Planner = Planner{SyncSQS: f.queue, SyncQueueURL: "sync-queue", Heads: f.heads, LeaseTTL: testLeaseTTL}
	f.jobs = &syncjob.Store{S3: f.s3, Bucket: "store"}
	return f
}

// siteWith saves a site with the given destinations, at head version v, dirty.
func (f *planFixture) siteWith(name string, v uint64, dests ...site.Destination) {
	f.t.Helper()
	_, hash := apiauth.NewToken()
	if err := site.Save(f.ctx, f.s3, "store", site.Config{Site: name, TokenHashes: []string{hash}, Destinations: dests}); err != nil {
		f.t.Fatal(err)
	}
	f.commit(name, v)
}

// commit moves the site's head and marks it dirty, as the import does.
func (f *planFixture) commit(name string, v uint64) {
	f.heads.set(name, v)
	f.put("store", layout.SyncDirtyKey(name))
}

func hook(name, schedule string) site.Destination {
	return site.Destination{Name: name, Type: "webhook", URL: "https://example.com/" + name, Secrets: []string{"s"}, Schedule: schedule}
}

func (f *planFixture) plan(at time.Time) Report {
	f.t.Helper()
	rep, err := f.h.Handle(f.ctx, Event{CloudWatchEvent: events.CloudWatchEvent{Time: at}})
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

func (f *planFixture) dirty(name string) bool {
	f.t.Helper()
	_, err := f.s3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String("store"), Key: aws.String(layout.SyncDirtyKey(name))})
	if err != nil && !syncjob.IsNotFound(err) {
		f.t.Fatal(err)
	}
	return err == nil
}

// finish does what the push function does after a delivery: ack, release.
func (f *planFixture) finish(j messages.SyncJob, v uint64) {
	f.t.Helper()
	if err := f.jobs.SaveAck(f.ctx, syncjob.Ack{Site: j.Site, Destination: j.Destination, Version: v, PlannedAt: j.PlannedAt}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.jobs.ReleaseLease(f.ctx, j.Site, j.Destination, j.JobID); err != nil {
		f.t.Fatal(err)
	}
}

func destinations(jobs []messages.SyncJob) string {
	var s []string
	for _, j := range jobs {
		s = append(s, j.Site+"/"+j.Destination)
	}
	return strings.Join(s, ",")
}

func TestPlanTwiceSendsOneJobPerDestination(t *testing.T) {
	f := newPlanFixture(t)
	f.siteWith("shop", 3, hook("a", ""), hook("b", ""))
	rep := f.plan(f.now)
	jobs := f.queue.take()
	if len(jobs) != 2 || rep.Planned != 2 || rep.DirtySites != 1 {
		t.Fatalf("first run: jobs %s, report %+v", destinations(jobs), rep)
	}
	for _, j := range jobs {
		if j.Version != 3 || !j.PlannedAt.Equal(f.now) {
			t.Errorf("job %+v", j)
		}
		l, _, found, err := f.jobs.Lease(f.ctx, "shop", j.Destination)
		if err != nil || !found || l.JobID != j.JobID || !l.ExpiresAt.Equal(f.now.Add(testLeaseTTL)) {
			t.Errorf("lease of %s: %+v found %v err %v", j.Destination, l, found, err)
		}
	}
	if f.dirty("shop") {
		t.Errorf("dirty mark kept although every destination was planned")
	}
	rep = f.plan(f.now.Add(time.Second))
	if jobs := f.queue.take(); len(jobs) != 0 || rep.Planned != 0 {
		t.Fatalf("second run: jobs %s, report %+v", destinations(jobs), rep)
	}
}

func TestPlanHeldLeaseDeduplicatesAndKeepsTheSiteDirty(t *testing.T) {
	f := newPlanFixture(t)
	f.siteWith("shop", 1, hook("a", ""))
	f.plan(f.now)
	first := f.queue.take()
	if len(first) != 1 {
		t.Fatalf("jobs %s", destinations(first))
	}
	// A new version is committed while the job is queued.
	f.commit("shop", 2)
	for i := range 3 {
		rep := f.plan(f.now.Add(time.Duration(i+1) * time.Minute))
		if jobs := f.queue.take(); len(jobs) != 0 || rep.Deduplicated != 1 {
			t.Fatalf("run %d: jobs %s, report %+v", i, destinations(jobs), rep)
		}
		if !f.dirty("shop") {
			t.Fatalf("run %d: the site is no longer dirty while its change is unplanned", i)
		}
	}
	// The push delivered version 1 and released the lease: version 2 is planned.
	f.finish(first[0], 1)
	rep := f.plan(f.now.Add(5 * time.Minute))
	jobs := f.queue.take()
	if len(jobs) != 1 || jobs[0].Version != 2 || rep.Planned != 1 {
		t.Fatalf("after release: jobs %+v, report %+v", jobs, rep)
	}
	if f.dirty("shop") {
		t.Errorf("dirty mark kept after planning")
	}
	// Delivered: nothing more to do even when marked again.
	f.finish(jobs[0], 2)
	f.commit("shop", 2)
	rep = f.plan(f.now.Add(6 * time.Minute))
	if jobs := f.queue.take(); len(jobs) != 0 || rep.UpToDate != 1 || f.dirty("shop") {
		t.Fatalf("up to date: jobs %s, report %+v, dirty %v", destinations(jobs), rep, f.dirty("shop"))
	}
}

func TestPlanExpiredLeaseIsReplanned(t *testing.T) {
	f := newPlanFixture(t)
	f.siteWith("shop", 1, hook("a", ""))
	f.plan(f.now)
	lost := f.queue.take()
	if len(lost) != 1 {
		t.Fatalf("jobs %s", destinations(lost))
	}
	f.commit("shop", 1) // e.g. a duplicate import message marks it again
	rep := f.plan(f.now.Add(testLeaseTTL - time.Second))
	if jobs := f.queue.take(); len(jobs) != 0 || rep.Deduplicated != 1 {
		t.Fatalf("before expiry: jobs %s, report %+v", destinations(jobs), rep)
	}
	rep = f.plan(f.now.Add(testLeaseTTL))
	jobs := f.queue.take()
	if len(jobs) != 1 || jobs[0].JobID == lost[0].JobID || rep.Planned != 1 {
		t.Fatalf("after expiry: jobs %+v, report %+v", jobs, rep)
	}
	l, _, _, err := f.jobs.Lease(f.ctx, "shop", "a")
	if err != nil || l.JobID != jobs[0].JobID {
		t.Fatalf("lease %+v, err %v: want the new job's", l, err)
	}
	// The lost job's late completion cannot release the new job's lease.
	if err := f.jobs.ReleaseLease(f.ctx, "shop", "a", lost[0].JobID); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := f.jobs.Lease(f.ctx, "shop", "a"); !found {
		t.Fatalf("a stale job released the new lease")
	}
}

func TestPlanDestinationScheduleNotDueIsSkipped(t *testing.T) {
	f := newPlanFixture(t)
	f.siteWith("shop", 1, hook("fast", ""), hook("meta", "rate(1 hour)"))
	f.plan(f.now)
	jobs := f.queue.take()
	if len(jobs) != 2 {
		t.Fatalf("first plan of a never-planned destination: jobs %s", destinations(jobs))
	}
	for _, j := range jobs {
		f.finish(j, 1)
	}
	f.commit("shop", 2)
	rep := f.plan(f.now.Add(10 * time.Minute))
	jobs = f.queue.take()
	if destinations(jobs) != "shop/fast" || rep.Skipped != 1 || rep.Planned != 1 {
		t.Fatalf("10 min later: jobs %s, report %+v", destinations(jobs), rep)
	}
	if !f.dirty("shop") {
		t.Fatalf("the site is not dirty although meta still has to sync")
	}
	f.finish(jobs[0], 2)
	rep = f.plan(f.now.Add(59 * time.Minute))
	if jobs := f.queue.take(); len(jobs) != 0 || rep.Skipped != 1 || rep.UpToDate != 1 {
		t.Fatalf("59 min later: jobs %s, report %+v", destinations(jobs), rep)
	}
	rep = f.plan(f.now.Add(time.Hour))
	jobs = f.queue.take()
	if destinations(jobs) != "shop/meta" || jobs[0].Version != 2 || rep.Planned != 1 || f.dirty("shop") {
		t.Fatalf("an hour later: jobs %+v, report %+v, dirty %v", jobs, rep, f.dirty("shop"))
	}
}

func TestPlanManyDirtySitesInOneRun(t *testing.T) {
	f := newPlanFixture(t)
	f.h.PageSize = 50
	const n = 200
	for i := range n {
		f.siteWith(fmt.Sprintf("site-%03d", i), 1, hook("a", ""))
	}
	f.siteWith("no-destinations", 1)
	rep := f.plan(f.now)
	jobs := f.queue.take()
	seen := map[string]bool{}
	for _, j := range jobs {
		seen[j.Site] = true
	}
	if len(jobs) != n || len(seen) != n || rep.Planned != n || rep.DirtySites != n+1 {
		t.Fatalf("%d jobs for %d sites, report %+v", len(jobs), len(seen), rep)
	}
	if f.queue.batches > n/10+5 {
		t.Errorf("%d SendMessageBatch calls for %d jobs", f.queue.batches, n)
	}
	out, err := f.s3.ListObjectsV2(f.ctx, &s3.ListObjectsV2Input{Bucket: aws.String("store"), Prefix: aws.String(layout.SyncDirtyPrefix)})
	if err != nil || len(out.Contents) != 0 {
		t.Fatalf("%d dirty marks left (err %v)", len(out.Contents), err)
	}
}

func TestPlanSendFailureReleasesTheLeaseAndKeepsTheSiteDirty(t *testing.T) {
	f := newPlanFixture(t)
	f.h.SyncSQS = failingQueue{}
	f.siteWith("shop", 1, hook("a", ""))
	_, err := f.h.Handle(f.ctx, Event{CloudWatchEvent: events.CloudWatchEvent{Time: f.now}})
	if err == nil {
		t.Fatal("no error although the send failed")
	}
	if _, _, found, _ := f.jobs.Lease(f.ctx, "shop", "a"); found {
		t.Errorf("lease kept although no job was sent")
	}
	if !f.dirty("shop") {
		t.Errorf("site not dirty after a failed send")
	}
	f.h.SyncSQS = f.queue
	if rep := f.plan(f.now.Add(time.Minute)); rep.Planned != 1 {
		t.Fatalf("retry: report %+v", rep)
	}
}

type failingQueue struct{}

func (failingQueue) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return nil, fmt.Errorf("queue unavailable")
}
