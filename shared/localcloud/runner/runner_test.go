package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/feedpipe/feedpipe/shared/localcloud"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
	"github.com/feedpipe/feedpipe/shared/localcloud/runner"
	"github.com/feedpipe/feedpipe/shared/syncbuf"
)

// stack is the test template running on a fresh embedded cloud with the
// real bootstrap binaries of testdata/functions.
type stack struct {
	cloud  *localcloud.Cloud
	runner *runner.Runner
	sqs    *sqs.Client
	s3     *s3.Client
	out    string

	mu      sync.Mutex
	records []map[string]any
}

// buildDir is shared by the tests of one run so each binary is built once.
var buildDir = localcloudtest.BuildDir("feedpipe-runner-test-build")

func startStack(t testing.TB, params map[string]string) *stack {
	t.Helper()
	ctx := context.Background()
	cloud, err := localcloud.Start(ctx, localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	logs := &syncbuf.Buffer{}
	r, err := runner.Start(ctx, runner.Config{
		Template: "testdata/template.yaml", StackName: "rt", Parameters: params,
		Endpoint: cloud.Endpoint(), Clock: cloud.Clock(), BuildDir: buildDir,
		LogOutput: logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Close()
		if t.Failed() {
			t.Logf("function output:\n%s", logs.String())
		}
	})
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	s := &stack{
		cloud: cloud, runner: r,
		sqs: sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(cloud.Endpoint()), Credentials: creds}),
		s3:  s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(cloud.Endpoint()), Credentials: creds, UsePathStyle: true}),
		out: r.QueueURL("OutQueue"),
	}
	return s
}

// waitRecords reads the out queue until n records arrived (or fails after
// a real-time limit), and returns all records so far.
func (s *stack) waitRecords(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.records)
		s.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d records on the out queue, want %d: %v", got, n, s.records)
		}
		res, err := s.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.out), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			var rec map[string]any
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &rec); err != nil {
				t.Fatalf("bad record %q: %v", aws.ToString(m.Body), err)
			}
			// The s3:TestEvent that saving the Inbox notification sent to
			// PlainQueue is not what any test waits for.
			if b, _ := rec["body"].(string); !strings.Contains(b, `"s3:TestEvent"`) {
				s.mu.Lock()
				s.records = append(s.records, rec)
				s.mu.Unlock()
			}
			if _, err := s.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(s.out), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.records...)
}

func (s *stack) send(t *testing.T, queue, group, body string) {
	t.Helper()
	in := &sqs.SendMessageInput{QueueUrl: aws.String(s.runner.QueueURL(queue)), MessageBody: aws.String(body)}
	if group != "" {
		in.MessageGroupId = aws.String(group)
		in.MessageDeduplicationId = aws.String(group + "-" + body)
	}
	if _, err := s.sqs.SendMessage(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

// waitQueue waits until a queue holds visible messages and inFlight
// messages in flight.
func (s *stack) waitQueue(t *testing.T, queue string, visible, inFlight int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(s.runner.QueueURL(queue)),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			t.Fatal(err)
		}
		v, f := out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
		if v == strconv.Itoa(visible) && f == strconv.Itoa(inFlight) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s visible and %s in flight, want %d and %d", queue, v, f, visible, inFlight)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bodies(recs []map[string]any, queue string) []string {
	var out []string
	for _, r := range recs {
		if r["queue"] == queue {
			out = append(out, r["body"].(string))
		}
	}
	return out
}

func TestFIFOPartialBatchFailureKeepsGroupOrder(t *testing.T) {
	s := startStack(t, nil)
	// One batch: m2 fails on its first delivery; the function leaves m3 and
	// m4 unprocessed and unreported. The mapping must return them with m2.
	var entries []types.SendMessageBatchRequestEntry
	for i, b := range []string{"m1", "fail-once-m2", "m3", "m4"} {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b),
			MessageGroupId: aws.String("g1"), MessageDeduplicationId: aws.String(b)})
	}
	if _, err := s.sqs.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.runner.QueueURL("WorkQueue")), Entries: entries}); err != nil {
		t.Fatal(err)
	}
	recs := s.waitRecords(t, 1)
	if got := bodies(recs, "rt-work.fifo"); strings.Join(got, ",") != "m1" {
		t.Fatalf("before the visibility timeout: %v, want [m1]", got)
	}
	// m1 is deleted; m2, m3 and m4 stay in flight until their visibility
	// timeout (30 s) ends.
	s.waitQueue(t, "WorkQueue", 0, 3)
	s.cloud.Clock().Advance(31 * time.Second)
	recs = s.waitRecords(t, 4)
	if got := bodies(recs, "rt-work.fifo"); strings.Join(got, ",") != "m1,fail-once-m2,m3,m4" {
		t.Fatalf("group order after the retry: %v", got)
	}
}

func TestFunctionTimeoutRetriesTheBatch(t *testing.T) {
	s := startStack(t, nil)
	s.send(t, "SlowQueue", "", "late")
	// SlowFunction sleeps past its 1 s timeout on the first delivery; the
	// runner kills it and the message returns after its visibility timeout.
	time.Sleep(1500 * time.Millisecond)
	s.cloud.Clock().Advance(31 * time.Second)
	recs := s.waitRecords(t, 1)
	if recs[0]["slow"] != "late" || recs[0]["receiveCount"] != "2" {
		t.Fatalf("record after timeout = %v, want the second delivery of late", recs[0])
	}
}

func TestGroupsRunInParallelAndEachGroupSerially(t *testing.T) {
	s := startStack(t, nil)
	for i := 0; i < 3; i++ {
		for _, g := range []string{"a", "b"} {
			s.send(t, "GroupsQueue", g, "sleep-"+g+string(rune('0'+i)))
		}
	}
	recs := s.waitRecords(t, 6)
	type span struct{ start, end float64 }
	spans := map[string][]span{}
	for _, r := range recs {
		g := r["group"].(string)
		spans[g] = append(spans[g], span{r["start"].(float64), r["end"].(float64)})
		if want := "sleep-" + g + string(rune('0'+len(spans[g])-1)); r["body"] != want {
			t.Errorf("group %s: got %v at position %d, want %s", g, r["body"], len(spans[g])-1, want)
		}
	}
	for g, ss := range spans {
		for i := 1; i < len(ss); i++ {
			if ss[i].start < ss[i-1].end {
				t.Errorf("group %s: message %d started before message %d ended: %v", g, i, i-1, ss)
			}
		}
	}
	overlap := false
	for _, a := range spans["a"] {
		for _, b := range spans["b"] {
			if a.start < b.end && b.start < a.end {
				overlap = true
			}
		}
	}
	if !overlap {
		t.Errorf("groups a and b never ran at the same time: %v", spans)
	}
}

func TestScheduleFiresOnTheFastForwardedClock(t *testing.T) {
	s := startStack(t, nil)
	before := s.cloud.Clock().Now()
	s.cloud.Clock().Advance(61 * time.Second) // rate(1 minute)
	recs := s.waitRecords(t, 1)
	tick, _ := recs[0]["tick"].(map[string]any)
	if tick["source"] != "aws.events" || tick["detail-type"] != "Scheduled Event" {
		t.Fatalf("scheduled event = %v", tick)
	}
	at, err := time.Parse(time.RFC3339, tick["time"].(string))
	if err != nil || at.Before(before.Add(59*time.Second)) {
		t.Fatalf("event time %v (err %v) is not the fast-forwarded time after %v", tick["time"], err, before)
	}
	if !strings.Contains(tick["resources"].([]any)[0].(string), ":rule/") {
		t.Errorf("resources = %v", tick["resources"])
	}
}

func TestHTTPAPIRoundTrip(t *testing.T) {
	s := startStack(t, nil)
	api := s.runner.HTTPEndpoint()

	req, _ := http.NewRequest(http.MethodGet, api+"/items/sku%2F1?x=1&x=2", nil)
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	req.Header.Set("Cookie", "c1=v1; c2=v2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&ev)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET status %d", resp.StatusCode)
	}
	if p := ev["pathParameters"].(map[string]any)["id"]; p != "sku/1" {
		t.Errorf("path parameter id = %v, want sku/1", p)
	}
	if ev["rawPath"] != "/items/sku%2F1" || ev["routeKey"] != "GET /items/{id}" {
		t.Errorf("rawPath %v routeKey %v", ev["rawPath"], ev["routeKey"])
	}
	if h := ev["headers"].(map[string]any)["x-multi"]; h != "a,b" {
		t.Errorf("repeated header = %v, want a,b", h)
	}
	if q := ev["queryStringParameters"].(map[string]any)["x"]; q != "1,2" {
		t.Errorf("repeated query = %v, want 1,2", q)
	}
	if c := ev["cookies"].([]any); len(c) != 2 || c[0] != "c1=v1" {
		t.Errorf("cookies = %v", c)
	}

	binary := []byte{0, 1, 2, 0xff, 0xfe}
	req, _ = http.NewRequest(http.MethodPut, api+"/files/a/b/c.bin", bytes.NewReader(binary))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !bytes.Equal(got, binary) || resp.Header.Get("X-Path") != "a/b/c.bin" || resp.Header.Get("Set-Cookie") != "seen=1; Path=/" {
		t.Errorf("binary PUT: status %d body %v path %q cookie %q", resp.StatusCode, got, resp.Header.Get("X-Path"), resp.Header.Get("Set-Cookie"))
	}

	for path, want := range map[string]int{"/fail": 502, "/nothing": 404} {
		resp, err := http.Post(api+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err = http.Post(api+"/fail", "application/octet-stream", bytes.NewReader(make([]byte, 10<<20+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("11 MB body: %d, want 413", resp.StatusCode)
	}
}

func TestS3PutReachesFunctionThroughNotification(t *testing.T) {
	s := startStack(t, nil)
	_, err := s.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(s.runner.BucketName("Inbox")), Key: aws.String("incoming/site a/1.ndjson"), Body: strings.NewReader("{}"),
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := s.waitRecords(t, 1)
	body := recs[0]["body"].(string)
	if recs[0]["queue"] != "rt-plain" || !strings.Contains(body, `"eventName":"ObjectCreated:Put"`) || !strings.Contains(body, `incoming/site+a/1.ndjson`) {
		t.Fatalf("record = %v", recs[0])
	}
}

func TestUnsupportedTemplateFeatureStopsStartUp(t *testing.T) {
	dir := t.TempDir()
	tpl := "Transform: AWS::Serverless-2016-10-31\nResources:\n  T:\n    Type: AWS::DynamoDB::Table\n"
	if err := os.WriteFile(filepath.Join(dir, "template.yaml"), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	cloud, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	_, err = runner.Start(context.Background(), runner.Config{Template: filepath.Join(dir, "template.yaml"), Endpoint: cloud.Endpoint()})
	if err == nil || !strings.Contains(err.Error(), "Resources.T: the local runner does not support AWS::DynamoDB::Table") {
		t.Fatalf("error = %v", err)
	}
}
