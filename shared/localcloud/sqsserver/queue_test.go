package sqsserver

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestCreateQueueValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		queue string
		attrs map[string]string
		code  string // "" for success
	}{
		{"standard", "orders", nil, ""},
		{"fifo", "orders.fifo", map[string]string{"FifoQueue": "true"}, ""},
		{"fifo attribute case", "upper.fifo", map[string]string{"FifoQueue": "True"}, ""},
		{"fifo name without attribute", "plain.fifo", nil, "InvalidParameterValue"},
		{"fifo attribute without suffix", "nosuffix", map[string]string{"FifoQueue": "true"}, "InvalidParameterValue"},
		{"FifoQueue false on standard", "falsefifo", map[string]string{"FifoQueue": "false"}, "InvalidAttributeName"},
		{"bad characters", "bad name", nil, "InvalidParameterValue"},
		{"too long", strings.Repeat("a", 81), nil, "InvalidParameterValue"},
		{"80 characters", strings.Repeat("b", 80), nil, ""},
		{"fifo 81 with suffix", strings.Repeat("c", 76) + ".fifo", map[string]string{"FifoQueue": "true"}, "InvalidParameterValue"},
		{"visibility out of range", "vis", map[string]string{"VisibilityTimeout": "43201"}, "InvalidAttributeValue"},
		{"unknown attribute", "unknown", map[string]string{"Colour": "blue"}, "InvalidAttributeName"},
		{"read-only attribute", "readonly", map[string]string{"QueueArn": "x"}, "InvalidAttributeName"},
		{"content dedup on standard", "cbd", map[string]string{"ContentBasedDeduplication": "true"}, "InvalidAttributeName"},
		{"dedup scope on standard", "scope", map[string]string{"DeduplicationScope": "queue"}, "InvalidAttributeName"},
		{"bad dedup scope", "scope.fifo", map[string]string{"FifoQueue": "true", "DeduplicationScope": "group"}, "InvalidAttributeValue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.client.CreateQueue(ctx(t), &sqs.CreateQueueInput{QueueName: aws.String(tc.queue), Attributes: tc.attrs})
			if tc.code == "" {
				if err != nil {
					t.Fatalf("CreateQueue: %v", err)
				}
				want := e.http.URL + "/000000000000/" + tc.queue
				if got := aws.ToString(out.QueueUrl); got != want {
					t.Fatalf("QueueUrl = %q, want %q", got, want)
				}
				return
			}
			wantAPIError(t, err, tc.code)
		})
	}
}

func TestCreateQueueIdempotent(t *testing.T) {
	e := newEnv(t)
	attrs := map[string]string{"VisibilityTimeout": "60", "DelaySeconds": "5"}
	first := e.createQueue(t, "idem", attrs)
	tests := []struct {
		name  string
		attrs map[string]string
		code  string
	}{
		{"same attributes", attrs, ""},
		{"subset of attributes", map[string]string{"VisibilityTimeout": "60"}, ""},
		{"no attributes", nil, ""},
		{"different value", map[string]string{"DelaySeconds": "6"}, "QueueAlreadyExists"},
		{"default given explicitly differs", map[string]string{"MaximumMessageSize": "2048"}, "QueueAlreadyExists"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.client.CreateQueue(ctx(t), &sqs.CreateQueueInput{QueueName: aws.String("idem"), Attributes: tc.attrs})
			if tc.code != "" {
				wantAPIError(t, err, tc.code)
				var exists *types.QueueNameExists
				if !errors.As(err, &exists) {
					t.Fatalf("error %T is not *types.QueueNameExists", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateQueue: %v", err)
			}
			if aws.ToString(out.QueueUrl) != first {
				t.Fatalf("QueueUrl = %q, want %q", aws.ToString(out.QueueUrl), first)
			}
		})
	}
}

func TestGetQueueURLAndListQueues(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.createQueue(t, fmt.Sprintf("list-%d", i), nil)
	}
	e.createQueue(t, "other", nil)

	out, err := e.client.GetQueueUrl(ctx(t), &sqs.GetQueueUrlInput{QueueName: aws.String("list-3")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(out.QueueUrl), e.http.URL+"/000000000000/list-3"; got != want {
		t.Fatalf("GetQueueUrl = %q, want %q", got, want)
	}
	_, err = e.client.GetQueueUrl(ctx(t), &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	var dne *types.QueueDoesNotExist
	if !errors.As(err, &dne) {
		t.Fatalf("GetQueueUrl(missing) = %v, want *types.QueueDoesNotExist", err)
	}
	wantAPIError(t, err, "AWS.SimpleQueueService.NonExistentQueue")

	all, err := e.client.ListQueues(ctx(t), &sqs.ListQueuesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.QueueUrls) != 6 || all.NextToken != nil {
		t.Fatalf("ListQueues = %v (token %v), want 6 URLs and no token", all.QueueUrls, all.NextToken)
	}

	var pages [][]string
	var token *string
	for {
		page, err := e.client.ListQueues(ctx(t), &sqs.ListQueuesInput{QueueNamePrefix: aws.String("list-"), MaxResults: aws.Int32(2), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page.QueueUrls)
		if page.NextToken == nil {
			break
		}
		token = page.NextToken
	}
	got := fmt.Sprint(pages)
	want := fmt.Sprintf("[[%[1]s/list-0 %[1]s/list-1] [%[1]s/list-2 %[1]s/list-3] [%[1]s/list-4]]", e.http.URL+"/000000000000")
	if got != want {
		t.Fatalf("pages = %s\nwant    %s", got, want)
	}

	_, err = e.client.ListQueues(ctx(t), &sqs.ListQueuesInput{MaxResults: aws.Int32(1001)})
	wantAPIError(t, err, "InvalidParameterValue")

	empty, err := e.client.ListQueues(ctx(t), &sqs.ListQueuesInput{QueueNamePrefix: aws.String("zzz")})
	if err != nil || len(empty.QueueUrls) != 0 {
		t.Fatalf("ListQueues(zzz) = %v, %v", empty.QueueUrls, err)
	}
}

func TestQueueURLIgnoresHost(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "hosted", nil)
	e.send(t, url, "hello")
	for _, u := range []string{
		strings.Replace(url, "127.0.0.1", "localhost", 1),
		"http://sqs.us-east-1.amazonaws.com/000000000000/hosted",
		"hosted",
	} {
		if got := e.attr(t, u, "ApproximateNumberOfMessages"); got != "1" {
			t.Fatalf("%s: ApproximateNumberOfMessages = %q, want 1", u, got)
		}
	}
	// Another account's queue of the same name does not exist.
	_, err := e.client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(e.http.URL + "/111111111111/hosted")})
	wantAPIError(t, err, "AWS.SimpleQueueService.NonExistentQueue")
}

func TestQueueURLUsesRequestHost(t *testing.T) {
	s := New()
	defer s.Close()
	req := httptest.NewRequest("POST", "http://localhost:4566/", strings.NewReader(`{"QueueName":"q1"}`))
	req.Header.Set("X-Amz-Target", "AmazonSQS.CreateQueue")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if want := `{"QueueUrl":"http://localhost:4566/000000000000/q1"}`; rec.Body.String() != want {
		t.Fatalf("body = %s, want %s", rec.Body, want)
	}
}

func TestGetQueueAttributes(t *testing.T) {
	e := newEnv(t, WithRegion("eu-west-1"), WithAccountID("123456789012"))
	std := e.createQueue(t, "std", map[string]string{"VisibilityTimeout": "45"})
	fifo := e.createFIFO(t, "f.fifo", map[string]string{"ContentBasedDeduplication": "true"})

	out, err := e.client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(std), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ApproximateNumberOfMessages":           "0",
		"ApproximateNumberOfMessagesDelayed":    "0",
		"ApproximateNumberOfMessagesNotVisible": "0",
		"DelaySeconds":                          "0",
		"MaximumMessageSize":                    "1048576",
		"MessageRetentionPeriod":                "345600",
		"QueueArn":                              "arn:aws:sqs:eu-west-1:123456789012:std",
		"ReceiveMessageWaitTimeSeconds":         "0",
		"SqsManagedSseEnabled":                  "true",
		"VisibilityTimeout":                     "45",
	}
	for k, v := range want {
		if out.Attributes[k] != v {
			t.Errorf("%s = %q, want %q", k, out.Attributes[k], v)
		}
	}
	for _, k := range []string{"CreatedTimestamp", "LastModifiedTimestamp"} {
		ts, err := strconv.ParseInt(out.Attributes[k], 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
			t.Errorf("%s = %q, want a recent Unix time", k, out.Attributes[k])
		}
	}
	for _, k := range []string{"FifoQueue", "ContentBasedDeduplication", "RedrivePolicy", "DeduplicationScope"} {
		if _, ok := out.Attributes[k]; ok {
			t.Errorf("standard queue reports %s", k)
		}
	}

	out, err = e.client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(fifo), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true", "DeduplicationScope": "queue", "FifoThroughputLimit": "perQueue"} {
		if out.Attributes[k] != v {
			t.Errorf("fifo %s = %q, want %q", k, out.Attributes[k], v)
		}
	}

	out, err = e.client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(std), AttributeNames: []types.QueueAttributeName{"VisibilityTimeout"},
	})
	if err != nil || len(out.Attributes) != 1 || out.Attributes["VisibilityTimeout"] != "45" {
		t.Fatalf("specific attribute: %v, %v", out.Attributes, err)
	}
	_, err = e.client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(std), AttributeNames: []types.QueueAttributeName{"Bogus"},
	})
	wantAPIError(t, err, "InvalidAttributeName")
}

func TestApproximateCounts(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "counts", nil)
	for i := range 3 {
		e.send(t, url, fmt.Sprint(i))
	}
	if _, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("later"), DelaySeconds: 60}); err != nil {
		t.Fatal(err)
	}
	e.receive(t, url, 2)
	check := func(visible, inflight, delayed string) {
		t.Helper()
		if got := e.attr(t, url, "ApproximateNumberOfMessages"); got != visible {
			t.Errorf("visible = %s, want %s", got, visible)
		}
		if got := e.attr(t, url, "ApproximateNumberOfMessagesNotVisible"); got != inflight {
			t.Errorf("not visible = %s, want %s", got, inflight)
		}
		if got := e.attr(t, url, "ApproximateNumberOfMessagesDelayed"); got != delayed {
			t.Errorf("delayed = %s, want %s", got, delayed)
		}
	}
	check("1", "2", "1")
	e.clock.Advance(31 * time.Second) // default visibility timeout ends
	check("3", "0", "1")
	e.clock.Advance(30 * time.Second) // delay ends
	check("4", "0", "0")
}

func TestSetQueueAttributes(t *testing.T) {
	e := newEnv(t)
	std := e.createQueue(t, "set-std", nil)
	fifo := e.createFIFO(t, "set.fifo", nil)
	dlq := e.createQueue(t, "set-dlq", nil)
	fifoDLQ := e.createFIFO(t, "set-dlq.fifo", nil)
	dlqARN, fifoDLQARN := e.arn(t, dlq), e.arn(t, fifoDLQ)

	tests := []struct {
		name  string
		url   string
		attrs map[string]string
		code  string
		check map[string]string
	}{
		{"visibility", std, map[string]string{"VisibilityTimeout": "0"}, "", map[string]string{"VisibilityTimeout": "0"}},
		{"visibility max", std, map[string]string{"VisibilityTimeout": "43200"}, "", nil},
		{"visibility too big", std, map[string]string{"VisibilityTimeout": "43201"}, "InvalidAttributeValue", nil},
		{"visibility negative", std, map[string]string{"VisibilityTimeout": "-1"}, "InvalidAttributeValue", nil},
		{"visibility not a number", std, map[string]string{"VisibilityTimeout": "soon"}, "InvalidAttributeValue", nil},
		{"retention min", std, map[string]string{"MessageRetentionPeriod": "60"}, "", map[string]string{"MessageRetentionPeriod": "60"}},
		{"retention too small", std, map[string]string{"MessageRetentionPeriod": "59"}, "InvalidAttributeValue", nil},
		{"retention too big", std, map[string]string{"MessageRetentionPeriod": "1209601"}, "InvalidAttributeValue", nil},
		{"delay", std, map[string]string{"DelaySeconds": "900"}, "", map[string]string{"DelaySeconds": "900"}},
		{"delay too big", std, map[string]string{"DelaySeconds": "901"}, "InvalidAttributeValue", nil},
		{"max size min", std, map[string]string{"MaximumMessageSize": "1024"}, "", nil},
		{"max size too small", std, map[string]string{"MaximumMessageSize": "1023"}, "InvalidAttributeValue", nil},
		{"max size too big", std, map[string]string{"MaximumMessageSize": "1048577"}, "InvalidAttributeValue", nil},
		{"wait time", std, map[string]string{"ReceiveMessageWaitTimeSeconds": "20"}, "", nil},
		{"wait time too big", std, map[string]string{"ReceiveMessageWaitTimeSeconds": "21"}, "InvalidAttributeValue", nil},
		{"all or nothing", std, map[string]string{"DelaySeconds": "1", "VisibilityTimeout": "99999"}, "InvalidAttributeValue", map[string]string{"DelaySeconds": "900"}},
		{"read-only", std, map[string]string{"ApproximateNumberOfMessages": "3"}, "InvalidAttributeName", nil},
		{"fifo attribute on standard", std, map[string]string{"ContentBasedDeduplication": "true"}, "InvalidAttributeName", nil},
		{"change queue type", fifo, map[string]string{"FifoQueue": "false"}, "InvalidAttributeValue", nil},
		{"content based dedup", fifo, map[string]string{"ContentBasedDeduplication": "true"}, "", map[string]string{"ContentBasedDeduplication": "true"}},
		{"high throughput", fifo, map[string]string{"DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}, "", map[string]string{"DeduplicationScope": "messageGroup"}},
		{"redrive", std, map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"3"}`, dlqARN)}, "",
			map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":3}`, dlqARN)}},
		{"redrive missing count", std, map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q}`, dlqARN)}, "InvalidParameterValue", nil},
		{"redrive count too big", std, map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":1001}`, dlqARN)}, "InvalidParameterValue", nil},
		{"redrive not json", std, map[string]string{"RedrivePolicy": "dlq please"}, "InvalidParameterValue", nil},
		{"redrive unknown target", std, map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:nope","maxReceiveCount":1}`}, "InvalidParameterValue", nil},
		{"fifo redrive to standard", fifo, map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":1}`, dlqARN)}, "InvalidParameterValue", nil},
		{"standard redrive to fifo", std, map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":1}`, fifoDLQARN)}, "InvalidParameterValue", nil},
		{"fifo redrive to fifo", fifo, map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":1}`, fifoDLQARN)}, "", nil},
		{"redrive removed", std, map[string]string{"RedrivePolicy": ""}, "", map[string]string{"RedrivePolicy": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.SetQueueAttributes(ctx(t), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(tc.url), Attributes: tc.attrs})
			if tc.code != "" {
				wantAPIError(t, err, tc.code)
			} else if err != nil {
				t.Fatalf("SetQueueAttributes: %v", err)
			}
			for k, v := range tc.check {
				if got := e.attr(t, tc.url, k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestPurgeQueue(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "purge", nil)
	for i := range 5 {
		e.send(t, url, fmt.Sprint(i))
	}
	got := e.receive(t, url, 2)
	if _, err := e.client.PurgeQueue(ctx(t), &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
	if n := e.attr(t, url, "ApproximateNumberOfMessages"); n != "0" {
		t.Fatalf("after purge %s messages", n)
	}
	if msgs := e.receive(t, url, 10); len(msgs) != 0 {
		t.Fatalf("received %d messages after purge", len(msgs))
	}
	// Deleting a purged message is harmless.
	e.delete(t, url, aws.ToString(got[0].ReceiptHandle))
}

func TestTags(t *testing.T) {
	e := newEnv(t)
	out, err := e.client.CreateQueue(ctx(t), &sqs.CreateQueueInput{QueueName: aws.String("tagged"), Tags: map[string]string{"team": "feeds"}})
	if err != nil {
		t.Fatal(err)
	}
	url := out.QueueUrl
	if _, err := e.client.TagQueue(ctx(t), &sqs.TagQueueInput{QueueUrl: url, Tags: map[string]string{"env": "test", "team": "ingest"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UntagQueue(ctx(t), &sqs.UntagQueueInput{QueueUrl: url, TagKeys: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := e.client.ListQueueTags(ctx(t), &sqs.ListQueueTagsInput{QueueUrl: url})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tags.Tags) != "map[team:ingest]" {
		t.Fatalf("tags = %v", tags.Tags)
	}
}

func TestDeleteQueue(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "doomed", nil)
	done := make(chan error, 1)
	go func() {
		_, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 20})
		done <- err
	}()
	waitForPoll(t, e, "doomed")
	if _, err := e.client.DeleteQueue(ctx(t), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantAPIError(t, err, "AWS.SimpleQueueService.NonExistentQueue")
	case <-time.After(5 * time.Second):
		t.Fatal("long poll did not end when its queue was deleted")
	}
	_, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")})
	wantAPIError(t, err, "AWS.SimpleQueueService.NonExistentQueue")
	// The name can be used again at once.
	e.createQueue(t, "doomed", nil)
}

func TestListDeadLetterSourceQueues(t *testing.T) {
	e := newEnv(t)
	dlq := e.createQueue(t, "dlq", nil)
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":2}`, e.arn(t, dlq))
	e.createQueue(t, "src-b", map[string]string{"RedrivePolicy": policy})
	e.createQueue(t, "src-a", map[string]string{"RedrivePolicy": policy})
	e.createQueue(t, "unrelated", nil)
	out, err := e.client.ListDeadLetterSourceQueues(ctx(t), &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(dlq)})
	if err != nil {
		t.Fatal(err)
	}
	base := e.http.URL + "/000000000000/"
	if fmt.Sprint(out.QueueUrls) != fmt.Sprint([]string{base + "src-a", base + "src-b"}) {
		t.Fatalf("sources = %v", out.QueueUrls)
	}
}

// waitForPoll waits until a long poll sleeps on the named queue.
func waitForPoll(t testing.TB, e *env, name string) {
	t.Helper()
	q := e.srv.lookup("000000000000", name)
	if q == nil {
		t.Fatalf("no queue %s", name)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		q.mu.Lock()
		waiting := q.waitCh != nil
		q.mu.Unlock()
		if waiting {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("no long poll started")
}
