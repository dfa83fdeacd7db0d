package e2e

// The randomized schedule test: many small sites, each with a few uploads,
// driven through a random interleaving of permuted PUTs, duplicated S3
// events, duplicated and reordered import messages, late PUTs racing the
// expiry resolver, cancels, concurrent importers and crashes injected into
// every S3/SQS call of the copy, import and sync functions. Each schedule is
// then driven to quiescence and checked against an independent model.
//
// The functions are package main, so they cannot be called from here as Go
// code; they run as their real binaries under the in-process Lambda Runtime
// API (lambdaruntime, not the runner), each pointed at a fault-injecting
// endpoint (shared/faultinject) in front of one embedded cloud.
//
//	go test ./e2e -run TestRandomSchedules -schedules=5000
//	go test ./e2e -run TestRandomSchedules -schedule.seed=1234 -schedules=1 -v

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/faultinject"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/lambdaruntime"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

var (
	numSchedules = flag.Int("schedules", 500, "randomized schedules to run in TestRandomSchedules")
	scheduleSeed = flag.Uint64("schedule.seed", 1, "seed of the first schedule; schedule i uses seed+i")
	scheduleJobs = flag.Int("schedule.workers", 4, "schedules run at once (each on its own buckets, queue and function instances)")
)

// grace is the resolver's grace in the schedules (EXPIRY_GRACE_SECONDS).
const grace = time.Second

func TestRandomSchedules(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	started := time.Now()
	ctx := context.Background()
	cloud, err := localcloud.Start(ctx, localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	bins := buildFunctions(t)
	rt := lambdaruntime.New(cloud.Clock(), nil)
	t.Cleanup(func() { _ = rt.Close() })

	workers := max(1, min(*scheduleJobs, *numSchedules))
	envs := make([]*schedEnv, workers)
	for i := range envs {
		envs[i] = newSchedEnv(t, cloud, rt, bins, i)
	}
	seeds := make(chan uint64)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for _, env := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				if err := env.run(ctx, seed); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("seed %d: %v\nreproduce: go test ./e2e -run TestRandomSchedules -schedules=1 -schedule.seed=%d\nfunction output:\n%s", seed, err, seed, env.logs.String()))
					mu.Unlock()
				}
			}
		}()
	}
	first := *scheduleSeed
	n := uint64(*numSchedules)
	for s := first; s < first+n; s++ {
		mu.Lock()
		stop := len(failures) > 0
		mu.Unlock()
		if stop {
			break
		}
		seeds <- s
	}
	// Coverage schedules: keep going (a bounded number) while some call site
	// was reached but never crashed; the crash planner aims at those first.
	for extra := uint64(0); extra < 200 && len(failures) == 0 && len(uncrashed(envs)) > 0 && n >= 100; extra++ {
		seeds <- first + n + extra
	}
	close(seeds)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}
	if n >= 100 {
		if left := uncrashed(envs); len(left) > 0 {
			t.Errorf("call sites reached but never crashed: %v", left)
		}
	}
	var sites []string
	for fn, labels := range crashedSites(envs) {
		sites = append(sites, fmt.Sprintf("%s: %d", fn, len(labels)))
	}
	sort.Strings(sites)
	t.Logf("%d schedules (seeds %d…) in %v; call sites crashed: %s", n, first, time.Since(started).Round(time.Millisecond), strings.Join(sites, ", "))
}

// crashable are the functions whose calls are crashed.
var crashable = []string{"copy", "import", "sync"}

func uncrashed(envs []*schedEnv) []string {
	seen, crashed := map[string]bool{}, map[string]bool{}
	for _, e := range envs {
		for _, fn := range crashable {
			for l := range e.inject[fn].Seen() {
				seen[fn+": "+l] = true
			}
			for l := range e.inject[fn].Crashed() {
				crashed[fn+": "+l] = true
			}
		}
	}
	var out []string
	for l := range seen {
		// ChangeMessageVisibility is reached only after an earlier failure of
		// the same invocation, and its failure is only logged.
		if !crashed[l] && l != "import: sqs ChangeMessageVisibility" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func crashedSites(envs []*schedEnv) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, e := range envs {
		for _, fn := range crashable {
			if out[fn] == nil {
				out[fn] = map[string]bool{}
			}
			for l := range e.inject[fn].Crashed() {
				out[fn][l] = true
			}
		}
	}
	return out
}

// buildFunctions builds the four function binaries for this machine.
func buildFunctions(t *testing.T) map[string]string {
	t.Helper()
	dir := localcloudtest.BuildDir("feedpipe-schedule-build")
	bins := map[string]string{}
	for _, fn := range []string{"copy", "import", "sync", "upload"} {
		out := filepath.Join(dir, fn, "bootstrap")
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, "../functions/"+fn)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", fn, err, b)
		}
		bins[fn] = out
	}
	return bins
}

// schedEnv is one worker: its own buckets, import queue, fault injectors
// and function instances, so schedules on different workers never meet.
type schedEnv struct {
	rt                     *lambdaruntime.Runtime
	name                   string
	s3                     *s3.Client
	sqs                    *sqs.Client
	incoming, store, queue string
	inject                 map[string]*faultinject.Injector
	token                  string
	tokenHash              string
	logs                   *tailBuffer
}

func newSchedEnv(t *testing.T, cloud *localcloud.Cloud, rt *lambdaruntime.Runtime, bins map[string]string, n int) *schedEnv {
	t.Helper()
	ctx := context.Background()
	ak, sk := cloud.Credentials()
	creds := credentials.NewStaticCredentialsProvider(ak, sk, "")
	e := &schedEnv{rt: rt, name: fmt.Sprintf("w%d", n), inject: map[string]*faultinject.Injector{}, logs: &tailBuffer{}}
	e.s3 = s3.New(s3.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), UsePathStyle: true, Credentials: creds})
	e.sqs = sqs.New(sqs.Options{Region: cloud.Region(), BaseEndpoint: aws.String(cloud.Endpoint()), Credentials: creds})
	e.incoming, e.store = "sched-incoming-"+e.name, "sched-store-"+e.name
	for _, b := range []string{e.incoming, e.store} {
		if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("sched-import-" + e.name + ".fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	e.queue = aws.ToString(q.QueueUrl)
	e.token, e.tokenHash = apiauth.NewToken()
	for _, fn := range []string{"copy", "import", "sync", "upload"} {
		in := faultinject.New(cloud)
		e.inject[fn] = in
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: in, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		err = rt.Register(lambdaruntime.FunctionConfig{
			Name: fn + "-" + e.name, Command: bins[fn], Timeout: 5 * time.Minute, MemoryMB: 256, MaxInstances: 2,
			Stdout: e.logs, Stderr: e.logs,
			Env: map[string]string{
				"AWS_ENDPOINT_URL": "http://" + l.Addr().String(), "AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk,
				"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
				layout.EnvIncomingBucket: e.incoming, layout.EnvStoreBucket: e.store, layout.EnvImportQueueURL: e.queue,
				"EXPIRY_GRACE_SECONDS": strconv.Itoa(int(grace / time.Second)),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// planUpload is one upload of a schedule and what the test did with it.
type planUpload struct {
	rec      uploads.Record
	ops      []modelOp
	body     []byte
	badLine  bool // one line is invalid: over the error budget
	badSize  bool // the PUT's length differs from the signed one
	put      bool // the client PUTs it
	cancel   bool // the client DELETEs it
	putDone  bool
	resolved bool // the resolver ran past expiry before the PUT landed
}

type modelOp struct {
	id      string
	product string // "" for a delete
}

// schedule is one run: a site and what the test knows about it.
type schedule struct {
	e        *schedEnv
	rnd      *rand.Rand
	site     string
	ups      []*planUpload
	expiry   time.Time
	s3Events []string // S3 event bodies not yet delivered (duplicates kept)
	imports  []events.SQSMessage
	observed map[uint64][]uploads.State
	late     map[uint64]bool
	versions map[uint64]uint64
	applied  uint64
	msgN     int
}

func (e *schedEnv) run(ctx context.Context, seed uint64) error {
	e.logs.Reset()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	s := &schedule{e: e, rnd: rand.New(rand.NewPCG(seed, 0x5eed)), site: fmt.Sprintf("s%d-%s", seed, e.name),
		observed: map[uint64][]uploads.State{}, late: map[uint64]bool{}, versions: map[uint64]uint64{}}
	if err := s.setup(ctx); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := s.interleave(ctx); err != nil {
		return err
	}
	if err := s.quiesce(ctx); err != nil {
		return err
	}
	return s.check(ctx)
}

func (s *schedule) setup(ctx context.Context) error {
	e := s.e
	if err := site.Save(ctx, e.s3, e.store, site.Config{Site: s.site, TokenHashes: []string{e.tokenHash}}); err != nil {
		return err
	}
	s.expiry = time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	store := uploads.NewStore(e.s3, e.store)
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "ü/../x"}
	n := 2 + s.rnd.IntN(5)
	for i := 0; i < n; i++ {
		u := &planUpload{put: s.rnd.IntN(100) < 85, cancel: s.rnd.IntN(100) < 15}
		full := s.rnd.IntN(100) < 20
		lines := 1 + s.rnd.IntN(4)
		var buf bytes.Buffer
		for j := 0; j < lines; j++ {
			id := ids[s.rnd.IntN(len(ids))]
			if !full && s.rnd.IntN(3) == 0 {
				u.ops = append(u.ops, modelOp{id: id})
				fmt.Fprintf(&buf, `{"op":"delete","id":%q}`+"\n", id)
				continue
			}
			p := fmt.Sprintf(`{"seq":%d,"line":%d,"v":%d}`, i+1, j+1, s.rnd.IntN(1000))
			u.ops = append(u.ops, modelOp{id: id, product: p})
			fmt.Fprintf(&buf, `{"op":"upsert","id":%q,"product":%s}`+"\n", id, p)
		}
		if s.rnd.IntN(100) < 8 {
			u.badLine = true
			buf.WriteString("{not json\n")
		}
		enc := layout.Identity
		body := buf.Bytes()
		if s.rnd.IntN(4) == 0 {
			enc = layout.Gzip
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = z.Bytes()
		}
		u.body = body
		length := int64(len(body))
		if s.rnd.IntN(100) < 6 {
			u.badSize = true
			length++
		}
		mode := uploads.Delta
		if full {
			mode = uploads.Full
		}
		rec, err := store.Allocate(ctx, uploads.Record{Site: s.site, Mode: mode, ContentLength: length, ContentEncoding: string(enc),
			AllowEmpty: full, ExpiresAt: s.expiry, State: uploads.AwaitingUpload,
			Timestamps: map[uploads.State]time.Time{uploads.AwaitingUpload: time.Now().UTC()}}, layout.NewUploadID)
		if err != nil {
			return err
		}
		if rec.Sequence != uint64(i+1) {
			return fmt.Errorf("allocated sequence %d, want %d", rec.Sequence, i+1)
		}
		u.rec = rec
		s.ups = append(s.ups, u)
	}
	_, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.store), Key: aws.String(layout.PendingKey(s.site)), Body: strings.NewReader("{}")})
	return err
}

// interleave runs the client's actions and the deliveries in a random order.
func (s *schedule) interleave(ctx context.Context) error {
	type action func(context.Context) error
	var client []action
	for _, u := range s.ups {
		if u.put {
			client = append(client, func(ctx context.Context) error { return s.put(ctx, u) })
		}
		if u.cancel {
			client = append(client, func(ctx context.Context) error { return s.cancelUpload(ctx, u) })
		}
	}
	for range s.rnd.IntN(3) {
		client = append(client, s.resolve)
	}
	s.rnd.Shuffle(len(client), func(i, j int) { client[i], client[j] = client[j], client[i] })
	for steps := 0; steps < 200; steps++ {
		var err error
		switch k := s.rnd.IntN(10); {
		case k < 4 && len(client) > 0:
			err = client[0](ctx)
			client = client[1:]
		case k < 7 && len(s.s3Events) > 0:
			err = s.deliverCopy(ctx, s.rnd.IntN(len(s.s3Events)), s.rnd.IntN(4) == 0)
		case k < 10 && len(s.imports) > 0:
			err = s.deliverImports(ctx, false)
		default:
			if len(client) == 0 && len(s.s3Events) == 0 && len(s.imports) == 0 {
				return nil
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := s.observe(ctx); err != nil {
			return err
		}
	}
	return nil
}

// quiesce delivers everything outstanding, runs the resolver past every
// expiry and wakes the site, until nothing is left to do.
func (s *schedule) quiesce(ctx context.Context) error {
	for round := 0; round < 30; round++ {
		for len(s.s3Events) > 0 {
			if err := s.deliverCopy(ctx, 0, false); err != nil {
				return err
			}
		}
		if err := s.resolve(ctx); err != nil {
			return err
		}
		if err := s.drain(ctx); err != nil {
			return err
		}
		if len(s.imports) == 0 {
			s.imports = append(s.imports, s.message(`{"kind":"wake","site":"`+s.site+`","reason":"test"}`))
		}
		for len(s.imports) > 0 {
			if err := s.deliverImports(ctx, true); err != nil {
				return err
			}
		}
		if err := s.observe(ctx); err != nil {
			return err
		}
		done := s.applied == uint64(len(s.ups))
		for _, u := range s.ups {
			st := s.observed[u.rec.Sequence]
			done = done && st[len(st)-1].Terminal()
		}
		if done && len(s.s3Events) == 0 {
			return nil
		}
	}
	return fmt.Errorf("not quiescent after 30 rounds: appliedSeq %d of %d, states %v", s.applied, len(s.ups), s.observed)
}

func (s *schedule) put(ctx context.Context, u *planUpload) error {
	key := layout.Incoming{Site: s.site, Sequence: u.rec.Sequence, UploadID: u.rec.UploadID}.Key()
	_, err := s.e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.e.incoming), Key: aws.String(key), Body: bytes.NewReader(u.body), IfNoneMatch: aws.String("*")})
	if err != nil {
		return fmt.Errorf("PUT %s: %w", key, err)
	}
	u.putDone = true
	ev := events.S3Event{Records: []events.S3EventRecord{{EventName: "ObjectCreated:Put", EventTime: time.Now().UTC(),
		S3: events.S3Entity{Bucket: events.S3Bucket{Name: s.e.incoming}, Object: events.S3Object{Key: key, Size: int64(len(u.body))}}}}}
	b, _ := json.Marshal(ev)
	for range 1 + s.rnd.IntN(2) { // S3 delivers at least once
		s.s3Events = append(s.s3Events, string(b))
	}
	return nil
}

// cancelUpload is the client's DELETE through the upload function.
func (s *schedule) cancelUpload(ctx context.Context, u *planUpload) error {
	req := events.APIGatewayV2HTTPRequest{RouteKey: "DELETE /v1/sites/{site}/uploads/{uploadId}",
		RawPath:        "/v1/sites/" + s.site + "/uploads/" + u.rec.UploadID,
		PathParameters: map[string]string{"site": s.site, "uploadId": u.rec.UploadID},
		Headers:        map[string]string{"authorization": "Bearer " + s.e.token},
		RequestContext: events.APIGatewayV2HTTPRequestContext{TimeEpoch: time.Now().UnixMilli()}}
	var resp events.APIGatewayV2HTTPResponse
	if err := s.invoke(ctx, "upload", req, &resp); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("cancel %s: %d %s", u.rec.UploadID, resp.StatusCode, resp.Body)
	}
	return s.drain(ctx)
}

// resolve runs the scheduled function at a time past every expiry.
func (s *schedule) resolve(ctx context.Context) error {
	for _, u := range s.ups {
		if !u.putDone {
			u.resolved = true
		}
	}
	ev := events.CloudWatchEvent{Source: "aws.events", DetailType: "Scheduled Event", Time: s.expiry.Add(grace + time.Second), Detail: json.RawMessage(`{}`)}
	return s.withCrashes(ctx, "sync", func(ctx context.Context) (bool, error) {
		res, err := s.e.rt.Invoke(ctx, "sync-"+s.e.name, mustJSON(ev))
		if err != nil {
			return false, err
		}
		return res.FuncError == nil, s.drain(ctx)
	})
}

// deliverCopy hands the i-th outstanding S3 event to the copy function,
// keeping it for a second delivery when dup is set.
func (s *schedule) deliverCopy(ctx context.Context, i int, dup bool) error {
	body := s.s3Events[i]
	if !dup {
		s.s3Events = slices.Delete(s.s3Events, i, i+1)
	}
	msg := s.message(body)
	return s.withCrashes(ctx, "copy", func(ctx context.Context) (bool, error) {
		var resp events.SQSEventResponse
		if err := s.invoke(ctx, "copy", events.SQSEvent{Records: []events.SQSMessage{msg}}, &resp); err != nil {
			return false, err
		}
		return len(resp.BatchItemFailures) == 0, s.drain(ctx)
	})
}

// deliverImports hands outstanding import messages to the import function:
// a random subset in random order, some duplicated, sometimes to two
// concurrent importers. all delivers every message.
func (s *schedule) deliverImports(ctx context.Context, all bool) error {
	msgs := s.imports
	s.rnd.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	k := len(msgs)
	if !all {
		k = 1 + s.rnd.IntN(len(msgs))
	}
	batch := slices.Clone(msgs[:k])
	s.imports = slices.Clone(msgs[k:])
	if s.rnd.IntN(4) == 0 { // a duplicate delivery of one of them
		dup := batch[s.rnd.IntN(len(batch))]
		dup.MessageId += "-dup"
		batch = append(batch, dup)
	}
	s.rnd.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	var parts [][]events.SQSMessage
	if len(batch) > 1 && s.rnd.IntN(3) == 0 {
		cut := 1 + s.rnd.IntN(len(batch)-1)
		parts = [][]events.SQSMessage{batch[:cut], batch[cut:]}
	} else {
		parts = [][]events.SQSMessage{batch}
	}
	return s.withCrashes(ctx, "import", func(ctx context.Context) (bool, error) {
		var wg sync.WaitGroup
		errs := make([]error, len(parts))
		failed := make([]bool, len(parts))
		for i, p := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var resp events.SQSEventResponse
				errs[i] = s.invoke(ctx, "import", events.SQSEvent{Records: p}, &resp)
				failed[i] = len(resp.BatchItemFailures) > 0
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return false, err
		}
		return !slices.Contains(failed, true), s.drain(ctx)
	})
}

// withCrashes runs call, maybe with a crash armed, and runs it again (as a
// redelivery would) until it succeeds.
func (s *schedule) withCrashes(ctx context.Context, fn string, call func(context.Context) (bool, error)) error {
	in := s.e.inject[fn]
	for attempt := 0; attempt < 20; attempt++ {
		if attempt < 3 && s.rnd.IntN(2) == 0 {
			p := faultinject.Plan{Nth: 1 + s.rnd.IntN(12), Mode: faultinject.Mode(s.rnd.IntN(2))}
			if left := in.Uncrashed(); len(left) > 0 && s.rnd.IntN(10) < 7 {
				sort.Strings(left)
				p.Nth, p.Label = 1, left[s.rnd.IntN(len(left))]
			}
			in.Arm(p)
		}
		ok, err := call(ctx)
		in.Disarm()
		if err != nil {
			return fmt.Errorf("%s: %w", fn, err)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%s: still failing after 20 attempts without crashes", fn)
}

func (s *schedule) invoke(ctx context.Context, fn string, payload, out any) error {
	res, err := s.e.rt.Invoke(ctx, fn+"-"+s.e.name, mustJSON(payload))
	if err != nil {
		return err
	}
	if res.FuncError != nil {
		return fmt.Errorf("%s failed: %v", fn, res.FuncError)
	}
	return json.Unmarshal(res.Payload, out)
}

// drain moves the messages the functions sent to the import queue into the
// test's hands, to deliver in its own order.
func (s *schedule) drain(ctx context.Context) error {
	for {
		out, err := s.e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.e.queue), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			return err
		}
		if len(out.Messages) == 0 {
			return nil
		}
		for _, m := range out.Messages {
			if _, err := s.e.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(s.e.queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				return err
			}
			msg := s.message(aws.ToString(m.Body))
			msg.ReceiptHandle = aws.ToString(m.ReceiptHandle)
			msg.Attributes["MessageGroupId"] = m.Attributes["MessageGroupId"]
			if msg.Attributes["MessageGroupId"] != s.site {
				return fmt.Errorf("import message for group %q in site %s's schedule: %s", msg.Attributes["MessageGroupId"], s.site, msg.Body)
			}
			s.imports = append(s.imports, msg)
		}
	}
}

func (s *schedule) message(body string) events.SQSMessage {
	s.msgN++
	return events.SQSMessage{MessageId: fmt.Sprintf("%s-m%d", s.site, s.msgN), ReceiptHandle: "rh", Body: body,
		Attributes: map[string]string{"MessageGroupId": s.site, "ApproximateReceiveCount": "1"}}
}

// observe records every record state and the applied sequence, and checks
// that nothing moved backwards.
func (s *schedule) observe(ctx context.Context) error {
	recs, _, err := uploads.NewStore(s.e.s3, s.e.store).List(ctx, s.site, 0, 100)
	if err != nil {
		return err
	}
	for _, r := range recs {
		seen := s.observed[r.Sequence]
		if len(seen) == 0 {
			seen = []uploads.State{uploads.AwaitingUpload}
		}
		last := seen[len(seen)-1]
		if r.State != last {
			if !reachable(last, r.State) {
				return fmt.Errorf("sequence %d went backwards: %v then %s", r.Sequence, seen, r.State)
			}
			seen = append(seen, r.State)
		}
		s.observed[r.Sequence] = seen
		if s.late[r.Sequence] && r.LateUpload == nil {
			return fmt.Errorf("sequence %d lost its lateUpload", r.Sequence)
		}
		s.late[r.Sequence] = r.LateUpload != nil
		if v := s.versions[r.Sequence]; v != 0 && r.CatalogVersion != v {
			return fmt.Errorf("sequence %d changed catalog version %d → %d", r.Sequence, v, r.CatalogVersion)
		}
		s.versions[r.Sequence] = r.CatalogVersion
	}
	head, err := catalog.New(s.e.s3, s.e.store).Head(ctx, s.site)
	if err != nil {
		return err
	}
	if head.AppliedSeq < s.applied {
		return fmt.Errorf("appliedSeq went back from %d to %d", s.applied, head.AppliedSeq)
	}
	s.applied = head.AppliedSeq
	return nil
}

// allowed are the upload state moves of DESIGN.md "Ordering" 2, written out
// here rather than taken from the uploads package.
var allowed = map[uploads.State][]uploads.State{
	"awaiting_upload": {"received", "expired", "cancelled"},
	"received":        {"queued", "rejected"},
	"queued":          {"importing", "rejected"},
	"importing":       {"imported", "rejected"},
}

func reachable(from, to uploads.State) bool {
	for _, n := range allowed[from] {
		if n == to || reachable(n, to) {
			return true
		}
	}
	return false
}

// check compares the final state with the model.
func (s *schedule) check(ctx context.Context) error {
	store := uploads.NewStore(s.e.s3, s.e.store)
	model := map[string]string{}
	var problems []error
	for _, u := range s.ups {
		rec, _, err := store.Get(ctx, s.site, u.rec.Sequence)
		if err != nil {
			return err
		}
		want := []uploads.State{}
		switch {
		case !u.put && u.cancel:
			want = append(want, "cancelled", "expired")
		case !u.put:
			want = append(want, "expired")
		case u.badSize || u.badLine:
			want = append(want, "rejected")
		default:
			want = append(want, "imported")
		}
		if u.put && u.cancel {
			want = append(want, "cancelled")
		}
		if u.put && u.resolved {
			want = append(want, "expired")
		}
		if !slices.Contains(want, rec.State) {
			problems = append(problems, fmt.Errorf("sequence %d (put %v, cancel %v, badSize %v, badLine %v, resolved before PUT %v) is %s, want one of %v",
				rec.Sequence, u.put, u.cancel, u.badSize, u.badLine, u.resolved, rec.State, want))
		}
		switch rec.State {
		case "imported":
			if rec.CatalogVersion == 0 || rec.Counts == nil || rec.Counts.Lines == 0 {
				problems = append(problems, fmt.Errorf("sequence %d imported without a catalog version or counts: %+v", rec.Sequence, rec))
			}
			if u.rec.Mode == uploads.Full {
				clear(model)
			}
			for _, op := range u.ops {
				if op.product == "" {
					delete(model, op.id)
				} else {
					model[op.id] = op.product
				}
			}
		case "rejected":
			wantReason := uploads.ReasonErrorBudget
			if u.badSize {
				wantReason = uploads.ReasonSizeMismatch
			}
			if rec.Reason != wantReason {
				problems = append(problems, fmt.Errorf("sequence %d rejected with reason %q, want %q", rec.Sequence, rec.Reason, wantReason))
			}
		case "expired", "cancelled":
			if u.putDone && (rec.LateUpload == nil || rec.LateUpload.Reason != "late_upload") {
				problems = append(problems, fmt.Errorf("sequence %d is %s although S3 accepted its PUT, and says nothing of a late upload", rec.Sequence, rec.State))
			}
		}
	}
	cat := catalog.New(s.e.s3, s.e.store)
	head, err := cat.Head(ctx, s.site)
	if err != nil {
		return err
	}
	if head.AppliedSeq != uint64(len(s.ups)) {
		problems = append(problems, fmt.Errorf("appliedSeq %d, want %d: the site stays blocked", head.AppliedSeq, len(s.ups)))
	}
	got := map[string]string{}
	err = cat.Diff(ctx, s.site, catalog.Version{Site: s.site}, head, func(c catalog.Change) error {
		if c.Product == nil {
			delete(got, c.ID)
			return nil
		}
		var b bytes.Buffer
		if err := json.Compact(&b, c.Product); err != nil {
			return err
		}
		got[c.ID] = b.String()
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the catalog: %w", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(model) {
		problems = append(problems, fmt.Errorf("catalog differs from the model:\n got  %v\n want %v", got, model))
	}
	if head.Products != int64(len(model)) {
		problems = append(problems, fmt.Errorf("catalog version counts %d products, the model %d", head.Products, len(model)))
	}
	st, err := site.LoadState(ctx, s.e.s3, s.e.store, s.site)
	if err != nil {
		return err
	}
	if st.Halted {
		problems = append(problems, fmt.Errorf("site halted although no data is missing: %s", st.Reason))
	}
	if len(problems) > 0 {
		return fmt.Errorf("observed states %v:\n%w", s.observed, errors.Join(problems...))
	}
	return nil
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if n := len(b.buf) - 64<<10; n > 0 {
		b.buf = append(b.buf[:0], b.buf[n:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = b.buf[:0]
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
