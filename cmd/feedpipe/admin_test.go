package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
)

// adminEnv is the embedded cloud with a store bucket and an import queue.
type adminEnv struct {
	s3       *s3.Client
	sqs      *sqs.Client
	endpoint string
	bucket   string
	queueURL string
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	// the CLI uses the local cloud's test/test credentials only when no
	// access key is set
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	ctx := context.Background()
	cloud, err := localcloud.Start(ctx, localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	e := &adminEnv{endpoint: cloud.Endpoint(), bucket: "store"}
	e.s3 = s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.endpoint), UsePathStyle: true, Credentials: creds})
	e.sqs = sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.endpoint), Credentials: creds})
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(e.bucket)}); err != nil {
		t.Fatal(err)
	}
	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("test-import.fifo"),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	e.queueURL = aws.ToString(q.QueueUrl)
	return e
}

func (e *adminEnv) args(extra ...string) []string {
	return append(extra, "--aws-endpoint", e.endpoint, "--store-bucket", e.bucket, "--region", "us-east-1")
}

func (e *adminEnv) config(t *testing.T, name string) site.Config {
	t.Helper()
	cfg, err := site.Load(context.Background(), e.s3, e.bucket, name)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var tokenRE = regexp.MustCompile(`fp_[a-z2-7]{52}`)

func token(t *testing.T, r result) string {
	t.Helper()
	tok := tokenRE.FindString(r.stdout)
	if r.code != 0 || tok == "" {
		t.Fatalf("exit %d, no token\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return tok
}

func TestSiteCreateAndRotateToken(t *testing.T) {
	e := newAdminEnv(t)
	r := feedpipe(t, e.args("site", "create", "shop")...)
	golden(t, "site_create", r)
	first := token(t, r)
	cfg := e.config(t, "shop")
	if !apiauth.Verify(first, cfg.TokenHashes) || len(cfg.TokenHashes) != 1 || cfg.CreatedAt.IsZero() {
		t.Fatalf("stored config %+v does not hold the printed token", cfg)
	}
	golden(t, "site_create_exists", feedpipe(t, e.args("site", "create", "shop")...))
	if got := e.config(t, "shop"); !apiauth.Verify(first, got.TokenHashes) {
		t.Fatal("a second create replaced the site's token")
	}

	r = feedpipe(t, e.args("site", "rotate-token", "shop")...)
	golden(t, "site_rotate_token", r)
	second := token(t, r)
	cfg = e.config(t, "shop")
	if len(cfg.TokenHashes) != 2 || !apiauth.Verify(first, cfg.TokenHashes) || !apiauth.Verify(second, cfg.TokenHashes) {
		t.Fatalf("after one rotation: %d hashes", len(cfg.TokenHashes))
	}

	r = feedpipe(t, e.args("site", "rotate-token", "shop", "--json")...)
	golden(t, "site_rotate_token_json", r)
	third := token(t, r)
	cfg = e.config(t, "shop")
	if len(cfg.TokenHashes) != 2 || apiauth.Verify(first, cfg.TokenHashes) || !apiauth.Verify(second, cfg.TokenHashes) || !apiauth.Verify(third, cfg.TokenHashes) {
		t.Fatal("the second rotation did not drop exactly the oldest token")
	}

	golden(t, "site_rotate_token_missing", feedpipe(t, e.args("site", "rotate-token", "nosuch")...))
	if r := feedpipe(t, e.args("site", "create", "Bad_Name")...); r.code != exitUsage {
		t.Fatalf("invalid site id: exit %d", r.code)
	}
}

func TestSiteAddDestination(t *testing.T) {
	e := newAdminEnv(t)
	token(t, feedpipe(t, e.args("site", "create", "shop")...))

	r := feedpipe(t, e.args("site", "add-destination", "shop", "--name", "erp", "--webhook", "http://127.0.0.1:9/hook")...)
	golden(t, "site_add_webhook", r)
	secret := regexp.MustCompile(`whsec_[0-9a-f]{64}`).FindString(r.stdout)
	r = feedpipe(t, e.args("site", "add-destination", "shop", "--name", "lake", "--s3-bucket", "partner-feeds", "--expected-owner", "123456789012", "--prefix", "shop/", "--json")...)
	golden(t, "site_add_s3_json", r)

	cfg := e.config(t, "shop")
	if len(cfg.Destinations) != 2 {
		t.Fatalf("destinations %+v", cfg.Destinations)
	}
	wh, b := cfg.Destinations[0], cfg.Destinations[1]
	if wh.Type != "webhook" || wh.Name != "erp" || wh.URL != "http://127.0.0.1:9/hook" || len(wh.Secrets) != 1 || wh.Secrets[0] != secret || secret == "" {
		t.Errorf("webhook %+v (printed secret %q)", wh, secret)
	}
	if b.Type != "s3" || b.Bucket != "partner-feeds" || b.ExpectedBucketOwner != "123456789012" || b.Prefix != "shop/" {
		t.Errorf("s3 destination %+v", b)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}

	golden(t, "site_add_duplicate", feedpipe(t, e.args("site", "add-destination", "shop", "--name", "erp", "--webhook", "https://example.com/hook")...))
	for name, args := range map[string][]string{
		"plain http":      {"--name", "x", "--webhook", "http://example.com/hook"},
		"no owner":        {"--name", "x", "--s3-bucket", "b"},
		"both kinds":      {"--name", "x", "--s3-bucket", "b", "--expected-owner", "1", "--webhook", "https://example.com"},
		"neither":         {"--name", "x"},
		"bad name":        {"--name", "No!", "--webhook", "https://example.com"},
		"prefix, webhook": {"--name", "x", "--webhook", "https://example.com", "--prefix", "p"},
	} {
		r := feedpipe(t, e.args(append([]string{"site", "add-destination", "shop"}, args...)...)...)
		if r.code != exitUsage {
			t.Errorf("%s: exit %d, want 2\n%s", name, r.code, r.stderr)
		}
	}
	if got := e.config(t, "shop"); len(got.Destinations) != 2 {
		t.Fatalf("refused destinations were stored: %+v", got.Destinations)
	}
}

func TestRedrive(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	token(t, feedpipe(t, e.args("site", "create", "shop")...))
	halted := site.State{Halted: true, Reason: "import of sequence 4 failed 10 times: SlowDown", Sequence: 4, Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := site.SaveState(ctx, e.s3, e.bucket, "shop", halted); err != nil {
		t.Fatal(err)
	}
	r := feedpipe(t, e.args("redrive", "--site", "shop", "--import-queue-url", e.queueURL)...)
	golden(t, "redrive", r)
	st, err := site.LoadState(ctx, e.s3, e.bucket, "shop")
	if err != nil || st != (site.State{}) {
		t.Fatalf("state after redrive %+v (%v)", st, err)
	}
	out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.queueURL), MaxNumberOfMessages: 10,
		WaitTimeSeconds: 1, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("%d messages on the import queue, want 1 wake", len(out.Messages))
	}
	m, err := messages.DecodeImport(aws.ToString(out.Messages[0].Body))
	if err != nil || m.Kind != messages.KindWake || m.Site != "shop" {
		t.Fatalf("message %+v (%v)", m, err)
	}
	if g := out.Messages[0].Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]; g != "shop" {
		t.Errorf("group %q, want shop", g)
	}

	if _, err := e.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(e.queueURL), ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	// a second redrive (not halted) still wakes, with a new dedup id
	r = feedpipe(t, e.args("redrive", "--site", "shop", "--import-queue-url", e.queueURL, "--json")...)
	golden(t, "redrive_not_halted_json", r)
	out, err = e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.queueURL), WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("second wake: %d messages (%v)", len(out.Messages), err)
	}

	golden(t, "redrive_missing_site", feedpipe(t, e.args("redrive", "--site", "nosuch", "--import-queue-url", e.queueURL)...))
	r = feedpipe(t, e.args("redrive", "--site", "shop", "--import-queue-url", strings.Replace(e.queueURL, "test-import", "gone", 1))...)
	if r.code != 1 || !strings.Contains(r.stderr, "hint:") {
		t.Fatalf("wake to a missing queue: exit %d\n%s", r.code, r.stderr)
	}
}

func TestAdminWrongBucket(t *testing.T) {
	e := newAdminEnv(t)
	r := feedpipe(t, "site", "create", "shop", "--aws-endpoint", e.endpoint, "--store-bucket", "nope", "--region", "us-east-1")
	golden(t, "site_create_no_bucket", r)
	var j map[string]any
	r = feedpipe(t, "site", "create", "shop", "--aws-endpoint", e.endpoint, "--store-bucket", "nope", "--region", "us-east-1", "--json")
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &j) != nil || j["error"] == nil {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestSiteRemoveDestination(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	token(t, feedpipe(t, e.args("site", "create", "shop")...))
	for _, name := range []string{"erp", "crm"} {
		if r := feedpipe(t, e.args("site", "add-destination", "shop", "--name", name, "--webhook", "http://127.0.0.1:9/"+name)...); r.code != 0 {
			t.Fatalf("add %s: exit %d\n%s", name, r.code, r.stderr)
		}
	}
	jobs := &syncjob.Store{S3: e.s3, Bucket: e.bucket}
	if err := jobs.SaveAck(ctx, syncjob.Ack{Site: "shop", Destination: "erp", Version: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.TakeLease(ctx, syncjob.Lease{Site: "shop", Destination: "erp", JobID: "j1", Version: 4, ExpiresAt: time.Now().Add(time.Hour)}, ""); err != nil {
		t.Fatal(err)
	}

	golden(t, "site_remove_destination", feedpipe(t, e.args("site", "remove-destination", "shop", "--name", "erp")...))
	cfg := e.config(t, "shop")
	if len(cfg.Destinations) != 1 || cfg.Destinations[0].Name != "crm" {
		t.Errorf("destinations after removing erp: %+v", cfg.Destinations)
	}
	if ack, err := jobs.Ack(ctx, "shop", "erp"); err != nil || ack.Version != 0 {
		t.Errorf("ack of the removed destination = %+v, %v; want none", ack, err)
	}
	if _, _, found, err := jobs.Lease(ctx, "shop", "erp"); err != nil || found {
		t.Errorf("lease of the removed destination: found %v, %v", found, err)
	}

	golden(t, "site_remove_destination_unknown", feedpipe(t, e.args("site", "remove-destination", "shop", "--name", "erp")...))
	golden(t, "site_remove_destination_json", feedpipe(t, e.args("site", "remove-destination", "shop", "--name", "crm", "--json")...))
	golden(t, "site_remove_destination_none", feedpipe(t, e.args("site", "remove-destination", "shop", "--name", "crm")...))
	if r := feedpipe(t, e.args("site", "remove-destination", "shop", "--name", "No!")...); r.code != exitUsage {
		t.Errorf("bad name: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if r := feedpipe(t, e.args("site", "remove-destination", "nosuch", "--name", "crm")...); r.code == 0 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing site: exit %d\n%s", r.code, r.stderr)
	}
	if got := e.config(t, "shop"); len(got.Destinations) != 0 || len(got.TokenHashes) != 1 {
		t.Errorf("config after removing both: %+v", got)
	}
}
