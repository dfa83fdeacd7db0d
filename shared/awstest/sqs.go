package awstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func sqsTests() []subtest {
	return []subtest{
		// Serial: these wait on time, or move the clock.
		{name: "VisibilityTimeoutExpiry", serial: true, run: testVisibilityTimeoutExpiry},
		{name: "DelaySeconds", serial: true, run: testDelaySeconds},

		{name: "QueueLifecycle", run: testQueueLifecycle},
		{name: "StandardSendReceiveDelete", run: testStandardSendReceiveDelete},
		{name: "WrongSecret", run: testSQSWrongSecret},
		{name: "FIFOOrder", run: testFIFOOrder},
		{name: "FIFOGroupBlockedWhileInFlight", run: testFIFOGroupBlocked},
		{name: "FIFOConcurrentReceivers", run: testFIFOConcurrentReceivers},
		{name: "FIFODeduplicationID", run: testFIFODeduplicationID},
		{name: "FIFOContentBasedDeduplication", run: testFIFOContentBasedDeduplication},
		{name: "FIFODeduplicationAfterDelete", run: testFIFODeduplicationAfterDelete},
		{name: "FIFOSequenceNumber", run: testFIFOSequenceNumber},
		{name: "FIFOMissingGroupID", run: testFIFOMissingGroupID},
		{name: "ChangeVisibilityToZero", run: testChangeVisibilityToZero},
		{name: "RedriveStandard", run: func(t *testing.T, s *suite) { testRedrive(t, s, false) }},
		{name: "RedriveFIFO", run: func(t *testing.T, s *suite) { testRedrive(t, s, true) }},
		{name: "LongPollReturnsEarly", run: testLongPollReturnsEarly},
		{name: "BatchLimits", run: testBatchLimits},
		{name: "MessageSize", run: testMessageSize},
		{name: "SystemAttributes", run: testSystemAttributes},
		{name: "MaxNumberOfMessagesOver10", run: testMaxNumberOfMessagesOver10},
	}
}

// queue creates a queue for the running subtest (a FIFO queue when fifo is
// set) and deletes it when the subtest ends. It returns the queue's URL and
// ARN.
func (s *suite) queue(t *testing.T, fifo bool, attrs map[string]string) (string, string) {
	t.Helper()
	name := uniqueName(t, 75)
	all := map[string]string{}
	if fifo {
		name += ".fifo"
		all["FifoQueue"] = "true"
	}
	for k, v := range attrs {
		all[k] = v
	}
	out, err := s.SQS.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: &name, Attributes: all})
	if err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if _, err := s.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &url}); err != nil {
			t.Logf("clean-up: delete queue %s: %v", url, err)
		}
	})
	return url, s.queueARN(t, url)
}

func (s *suite) queueARN(t *testing.T, url string) string {
	t.Helper()
	a, err := s.SQS.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("GetQueueAttributes QueueArn of %s: %v", url, err)
	}
	arn := a.Attributes[string(types.QueueAttributeNameQueueArn)]
	if !strings.HasPrefix(arn, "arn:aws:sqs:") {
		t.Fatalf("queue %s has ARN %q", url, arn)
	}
	return arn
}

// receive makes one ReceiveMessage call for up to n messages, with every
// system attribute; visibility 0 means the queue's visibility timeout.
func (s *suite) receive(t *testing.T, url string, n, wait, visibility int32) []types.Message {
	t.Helper()
	out, err := s.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl: &url, MaxNumberOfMessages: n, WaitTimeSeconds: wait, VisibilityTimeout: visibility,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

// receiveOne long-polls until a message arrives, or reports false when none
// did within the given time.
func (s *suite) receiveOne(t *testing.T, url string, within time.Duration, visibility int32) (types.Message, bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		wait := max(min(int32(time.Until(deadline).Seconds()), 2), 0)
		if msgs := s.receive(t, url, 1, wait, visibility); len(msgs) > 0 {
			if len(msgs) > 1 {
				t.Errorf("MaxNumberOfMessages 1 returned %d messages", len(msgs))
			}
			return msgs[0], true
		}
		if time.Now().After(deadline) {
			return types.Message{}, false
		}
	}
}

func (s *suite) deleteMessage(t *testing.T, url string, m types.Message) {
	t.Helper()
	if _, err := s.SQS.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage %s: %v", aws.ToString(m.MessageId), err)
	}
}

func bodies(msgs []types.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, aws.ToString(m.Body))
	}
	return out
}

func testQueueLifecycle(t *testing.T, s *suite) {
	ctx := t.Context()
	name := uniqueName(t, 75)
	attrs := map[string]string{"VisibilityTimeout": "45"}
	created, err := s.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	url := aws.ToString(created.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_, _ = s.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &url})
	})
	if !strings.HasSuffix(url, "/"+name) {
		t.Errorf("queue URL %s does not end in /%s", url, name)
	}
	again, err := s.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil || aws.ToString(again.QueueUrl) != url {
		t.Errorf("CreateQueue again with the same attributes: %v %v, want the same URL %s", again, err, url)
	}
	_, err = s.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{"VisibilityTimeout": "46"}})
	wantSQSError(t, err, http.StatusBadRequest, "QueueNameExists")

	got, err := s.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
	if err != nil || aws.ToString(got.QueueUrl) != url {
		t.Errorf("GetQueueUrl: %v %v, want %s", got, err, url)
	}
	list, err := s.SQS.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: &name})
	if err != nil || !slices.Contains(list.QueueUrls, url) {
		t.Errorf("ListQueues prefix %s: %v %v, want it to list %s", name, list, err, url)
	}

	a, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatalf("GetQueueAttributes All: %v", err)
	}
	for k, want := range map[string]string{"VisibilityTimeout": "45", "DelaySeconds": "0", "MessageRetentionPeriod": "345600", "ReceiveMessageWaitTimeSeconds": "0"} {
		if got := a.Attributes[k]; got != want {
			t.Errorf("attribute %s = %q, want %q", k, got, want)
		}
	}
	if arn := a.Attributes["QueueArn"]; !strings.HasPrefix(arn, "arn:aws:sqs:"+s.Region+":") || !strings.HasSuffix(arn, ":"+name) {
		t.Errorf("QueueArn %q, want arn:aws:sqs:%s:<account>:%s", arn, s.Region, name)
	}
	for _, k := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"} {
		if _, err := strconv.ParseInt(a.Attributes[k], 10, 64); err != nil {
			t.Errorf("attribute %s = %q, want an integer", k, a.Attributes[k])
		}
	}
	t.Run("Timestamps", func(t *testing.T) {
		s.skipIf(t, s.Features.FractionalQueueTimestamps, "FractionalQueueTimestamps")
		for _, k := range []string{"CreatedTimestamp", "LastModifiedTimestamp"} {
			if _, err := strconv.ParseInt(a.Attributes[k], 10, 64); err != nil {
				t.Errorf("attribute %s = %q, want whole epoch seconds", k, a.Attributes[k])
			}
		}
	})
	if _, err := s.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{"VisibilityTimeout": "60"}}); err != nil {
		t.Fatalf("SetQueueAttributes: %v", err)
	}
	a, err = s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}})
	if err != nil || a.Attributes["VisibilityTimeout"] != "60" {
		t.Errorf("VisibilityTimeout after SetQueueAttributes: %v %v, want 60", a, err)
	}

	if _, err := s.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &url}); err != nil {
		t.Fatalf("DeleteQueue: %v", err)
	}
	missing := uniqueName(t, 75)
	_, err = s.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &missing})
	var qdne *types.QueueDoesNotExist
	if !errors.As(err, &qdne) {
		t.Errorf("GetQueueUrl of a missing queue: got %v, want *types.QueueDoesNotExist", errOrOK(err))
	}
	wantSQSError(t, err, http.StatusBadRequest, "QueueDoesNotExist")
	missingURL := strings.TrimSuffix(url, name) + missing
	_, err = s.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &missingURL, MessageBody: aws.String("x")})
	if !errors.As(err, &qdne) {
		t.Errorf("SendMessage to a missing queue: got %v, want *types.QueueDoesNotExist", errOrOK(err))
	}
}

func testStandardSendReceiveDelete(t *testing.T, s *suite) {
	ctx := t.Context()
	url, _ := s.queue(t, false, nil)
	body := `{"Records":[{"s3":{"object":{"key":"incoming/site-1/1"}}}]}`
	sent, err := s.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	if aws.ToString(sent.MessageId) == "" || aws.ToString(sent.MD5OfMessageBody) == "" {
		t.Errorf("SendMessage returned MessageId %q MD5OfMessageBody %q", aws.ToString(sent.MessageId), aws.ToString(sent.MD5OfMessageBody))
	}
	m, ok := s.receiveOne(t, url, 10*time.Second, 1)
	if !ok {
		t.Fatalf("no message within 10 s")
	}
	if aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(m.Body) != body {
		t.Errorf("received %s %q, sent %s %q", aws.ToString(m.MessageId), aws.ToString(m.Body), aws.ToString(sent.MessageId), body)
	}
	if c := m.Attributes["ApproximateReceiveCount"]; c != "1" {
		t.Errorf("ApproximateReceiveCount %q on the first receive, want 1", c)
	}
	s.deleteMessage(t, url, m)
	// Received with a visibility timeout of 1 s, the message would be
	// visible again by now had it not been deleted.
	time.Sleep(1500 * time.Millisecond)
	if m, ok := s.receiveOne(t, url, 2*time.Second, 0); ok {
		t.Errorf("received %s again after it was deleted", aws.ToString(m.MessageId))
	}
}

func testSQSWrongSecret(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoSignatureCheck, "NoSignatureCheck")
	url, _ := s.queue(t, false, nil)
	_, wrong := NewClients(s.Endpoint, s.Region, s.AccessKey, s.SecretKey+"-wrong")
	_, err := wrong.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("forged")})
	wantSQSError(t, err, http.StatusForbidden, "SignatureDoesNotMatch")
	if m, ok := s.receiveOne(t, url, time.Second, 0); ok {
		t.Errorf("a message sent with a wrong secret was enqueued: %q", aws.ToString(m.Body))
	}
}

// receiveAll receives and deletes messages until a receive comes back empty
// after at least n messages.
func (s *suite) receiveAll(t *testing.T, url string, n int) []string {
	t.Helper()
	var got []string
	for range 10 {
		msgs := s.receive(t, url, 10, 1, 0)
		for _, m := range msgs {
			got = append(got, aws.ToString(m.Body))
			s.deleteMessage(t, url, m)
		}
		if len(got) >= n && len(msgs) == 0 {
			break
		}
	}
	return got
}

func testVisibilityTimeoutExpiry(t *testing.T, s *suite) {
	for _, c := range []struct {
		name string
		fifo bool
	}{{"Standard", false}, {"FIFO", true}} {
		fifo := c.fifo
		t.Run(c.name, func(t *testing.T) {
			url, _ := s.queue(t, fifo, nil)
			body := "import site-1 seq 1"
			if fifo {
				s.sendFIFO(t, url, "site-1", "1", body)
			} else if _, err := s.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
				t.Fatal(err)
			}
			vis := s.seconds(30, 1)
			first, ok := s.receiveOne(t, url, 10*time.Second, vis)
			if !ok {
				t.Fatalf("no message within 10 s")
			}
			if msgs := s.receive(t, url, 10, 0, 0); len(msgs) > 0 {
				t.Errorf("a message in flight was received again before its visibility timeout: %q", bodies(msgs))
			}
			s.elapse(time.Duration(vis)*time.Second + 500*time.Millisecond)
			again, ok := s.receiveOne(t, url, 5*time.Second, 0)
			if !ok {
				t.Fatalf("the message was not redelivered after its visibility timeout")
			}
			if aws.ToString(again.MessageId) != aws.ToString(first.MessageId) {
				t.Errorf("redelivered %s, want %s", aws.ToString(again.MessageId), aws.ToString(first.MessageId))
			}
			if c := again.Attributes["ApproximateReceiveCount"]; c != "2" {
				t.Errorf("ApproximateReceiveCount %q on redelivery, want 2", c)
			}
			if aws.ToString(again.ReceiptHandle) == aws.ToString(first.ReceiptHandle) {
				t.Errorf("redelivery reused the receipt handle")
			}
			s.deleteMessage(t, url, again)
		})
	}
}

func testChangeVisibilityToZero(t *testing.T, s *suite) {
	ctx := t.Context()
	url, _ := s.queue(t, true, nil)
	s.sendFIFO(t, url, "site-1", "1", "retry me")
	first, ok := s.receiveOne(t, url, 10*time.Second, 300)
	if !ok {
		t.Fatalf("no message within 10 s")
	}
	// The import function backs off by extending the visibility timeout.
	if _, err := s.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 600}); err != nil {
		t.Fatalf("ChangeMessageVisibility 600: %v", err)
	}
	if msgs := s.receive(t, url, 10, 0, 0); len(msgs) > 0 {
		t.Fatalf("the message came back while in flight: %q", bodies(msgs))
	}
	if _, err := s.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatalf("ChangeMessageVisibility 0: %v", err)
	}
	again, ok := s.receiveOne(t, url, 5*time.Second, 0)
	if !ok {
		t.Fatalf("ChangeMessageVisibility 0 did not make the message visible")
	}
	if aws.ToString(again.MessageId) != aws.ToString(first.MessageId) || again.Attributes["ApproximateReceiveCount"] != "2" {
		t.Errorf("got %s with ApproximateReceiveCount %s, want %s with 2", aws.ToString(again.MessageId), again.Attributes["ApproximateReceiveCount"], aws.ToString(first.MessageId))
	}
}

func testRedrive(t *testing.T, s *suite, fifo bool) {
	ctx := t.Context()
	_, dlqARN := s.queue(t, fifo, nil)
	dlqURL := s.queueURLFromARN(t, dlqARN)
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"2"}`, dlqARN)
	url, _ := s.queue(t, fifo, map[string]string{"RedrivePolicy": policy})

	a, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy}})
	if err != nil {
		t.Fatalf("GetQueueAttributes RedrivePolicy: %v", err)
	}
	var rp struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(a.Attributes["RedrivePolicy"]), &rp); err != nil || rp.DeadLetterTargetArn != dlqARN || strings.Trim(string(rp.MaxReceiveCount), `"`) != "2" {
		t.Errorf("RedrivePolicy reads back as %q (%v), want target %s and maxReceiveCount 2", a.Attributes["RedrivePolicy"], err, dlqARN)
	}

	body := "poison"
	if fifo {
		s.sendFIFO(t, url, "site-1", "1", body)
	} else if _, err := s.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		m, ok := s.receiveOne(t, url, 10*time.Second, 0)
		if !ok {
			t.Fatalf("receive %d: no message", n)
		}
		if c := m.Attributes["ApproximateReceiveCount"]; c != strconv.Itoa(n) {
			t.Errorf("receive %d: ApproximateReceiveCount %s", n, c)
		}
		if _, err := s.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatalf("ChangeMessageVisibility 0: %v", err)
		}
	}
	if m, ok := s.receiveOne(t, url, 2*time.Second, 0); ok {
		t.Errorf("received the message a third time (count %s) with maxReceiveCount 2", m.Attributes["ApproximateReceiveCount"])
	}
	m, ok := s.receiveOne(t, dlqURL, 10*time.Second, 0)
	if !ok {
		t.Fatalf("the message did not reach the dead-letter queue")
	}
	if aws.ToString(m.Body) != body {
		t.Errorf("dead-letter queue holds %q, want %q", aws.ToString(m.Body), body)
	}
}

func (s *suite) queueURLFromARN(t *testing.T, arn string) string {
	t.Helper()
	out, err := s.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(arn[strings.LastIndex(arn, ":")+1:])})
	if err != nil {
		t.Fatalf("GetQueueUrl for %s: %v", arn, err)
	}
	return aws.ToString(out.QueueUrl)
}

func testLongPollReturnsEarly(t *testing.T, s *suite) {
	url, _ := s.queue(t, false, nil)
	type result struct {
		msgs    []types.Message
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := s.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 1, WaitTimeSeconds: 20})
		r := result{err: err, elapsed: time.Since(start)}
		if out != nil {
			r.msgs = out.Messages
		}
		done <- r
	}()
	time.Sleep(500 * time.Millisecond)
	if _, err := s.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("wake up")}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("ReceiveMessage WaitTimeSeconds 20: %v", r.err)
	}
	if len(r.msgs) != 1 {
		t.Fatalf("long poll returned %d messages after %v, want the one sent after 0.5 s", len(r.msgs), r.elapsed)
	}
	if r.elapsed > 5*time.Second {
		t.Errorf("long poll returned %v after the start, %v after the send: it must return as soon as a message is available", r.elapsed, r.elapsed-500*time.Millisecond)
	}
	t.Logf("long poll returned %v after the start", r.elapsed)
}

func testBatchLimits(t *testing.T, s *suite) {
	ctx := t.Context()
	url, _ := s.queue(t, false, nil)
	entries := func(n int) []types.SendMessageBatchRequestEntry {
		var e []types.SendMessageBatchRequestEntry
		for i := range n {
			e = append(e, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprintf("e%d", i)), MessageBody: aws.String(fmt.Sprintf("m%d", i))})
		}
		return e
	}
	out, err := s.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries(10)})
	if err != nil {
		t.Fatalf("SendMessageBatch of 10: %v", err)
	}
	if len(out.Successful) != 10 || len(out.Failed) != 0 {
		t.Errorf("SendMessageBatch of 10: %d successful, %d failed", len(out.Successful), len(out.Failed))
	}
	_, err = s.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries(11)})
	var tooMany *types.TooManyEntriesInBatchRequest
	if !errors.As(err, &tooMany) {
		t.Errorf("SendMessageBatch of 11: got %v, want *types.TooManyEntriesInBatchRequest", errOrOK(err))
	}
	wantSQSError(t, err, http.StatusBadRequest, "TooManyEntriesInBatchRequest")

	dup := entries(3)
	dup[2].Id = dup[0].Id
	_, err = s.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: dup})
	var notDistinct *types.BatchEntryIdsNotDistinct
	if !errors.As(err, &notDistinct) {
		t.Errorf("SendMessageBatch with duplicate Ids: got %v, want *types.BatchEntryIdsNotDistinct", errOrOK(err))
	}
	wantSQSError(t, err, http.StatusBadRequest, "BatchEntryIdsNotDistinct")
}

// maxMessageSize is the largest message SQS accepts: 1 MiB since August 2025.
const maxMessageSize = 1 << 20

func testMessageSize(t *testing.T, s *suite) {
	url, _ := s.queue(t, false, nil)
	t.Run("OneMiB", func(t *testing.T) {
		body := strings.Repeat("x", maxMessageSize)
		if _, err := s.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
			t.Fatalf("SendMessage of 1 MiB: %v", err)
		}
		// A visibility of 1 s: with 1 MiB bodies the Go HTTP transport can
		// lose a keep-alive connection mid-response when the previous
		// request's body is closed by the SDK while the transport's write
		// loop still holds it (seen with the SDK client only, never with a
		// plain http.Client, on every backend's server code path); the SDK
		// retries, and the message must come back soon enough to be read.
		m, ok := s.receiveOne(t, url, 10*time.Second, 1)
		if !ok || aws.ToString(m.Body) != body {
			t.Errorf("the 1 MiB message did not come back intact (received: %v, %d bytes)", ok, len(aws.ToString(m.Body)))
		}
	})
	t.Run("OverOneMiB", func(t *testing.T) {
		body := strings.Repeat("x", maxMessageSize+1)
		_, err := s.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body})
		wantSQSError(t, err, http.StatusBadRequest, "InvalidParameterValue")
	})
}

func testSystemAttributes(t *testing.T, s *suite) {
	url, _ := s.queue(t, true, nil)
	before := time.Now()
	sent := s.sendFIFO(t, url, "site-1", "site-1/seq-9", "import")
	out, err := s.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl: &url, MaxNumberOfMessages: 1, WaitTimeSeconds: 5,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameMessageGroupId, types.MessageSystemAttributeNameSequenceNumber,
			types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
			types.MessageSystemAttributeNameMessageDeduplicationId,
		},
	})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("ReceiveMessage: %v, %v", out, err)
	}
	a := out.Messages[0].Attributes
	for k, want := range map[string]string{
		"MessageGroupId": "site-1", "SequenceNumber": aws.ToString(sent.SequenceNumber),
		"ApproximateReceiveCount": "1", "MessageDeduplicationId": "site-1/seq-9",
	} {
		if a[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, a[k], want)
		}
	}
	ms, err := strconv.ParseInt(a["SentTimestamp"], 10, 64)
	if err != nil {
		t.Fatalf("SentTimestamp %q is not epoch milliseconds", a["SentTimestamp"])
	}
	// The backend's clock may run ahead of this process's by what the suite
	// advanced it.
	if sentAt := time.UnixMilli(ms); sentAt.Before(before.Add(-time.Minute)) || sentAt.After(time.Now().Add(15*time.Minute)) {
		t.Errorf("SentTimestamp %s is far from the time of sending %s", sentAt, before)
	}
}

func testMaxNumberOfMessagesOver10(t *testing.T, s *suite) {
	url, _ := s.queue(t, false, nil)
	_, err := s.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 11})
	wantSQSError(t, err, http.StatusBadRequest, "InvalidParameterValue")
}

func testDelaySeconds(t *testing.T, s *suite) {
	delay := s.seconds(60, 1)
	url, _ := s.queue(t, false, map[string]string{"DelaySeconds": strconv.Itoa(int(delay))})
	if _, err := s.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("later")}); err != nil {
		t.Fatal(err)
	}
	if msgs := s.receive(t, url, 10, 0, 0); len(msgs) > 0 {
		t.Errorf("a message was delivered before the queue's DelaySeconds %d had passed", delay)
	}
	s.elapse(time.Duration(delay)*time.Second + 500*time.Millisecond)
	if _, ok := s.receiveOne(t, url, 5*time.Second, 0); !ok {
		t.Errorf("the delayed message was not delivered after DelaySeconds %d", delay)
	}
}
