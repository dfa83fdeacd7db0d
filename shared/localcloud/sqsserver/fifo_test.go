package sqsserver

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestFIFOSendValidation(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "v.fifo", nil)
	cbd := e.createFIFO(t, "cbd.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	tests := []struct {
		name string
		url  string
		in   sqs.SendMessageInput
		code string
	}{
		{"ok", url, sqs.SendMessageInput{MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d")}, ""},
		{"missing group", url, sqs.SendMessageInput{MessageDeduplicationId: aws.String("d")}, "MissingParameter"},
		{"missing dedup id", url, sqs.SendMessageInput{MessageGroupId: aws.String("g")}, "InvalidParameterValue"},
		{"content based dedup", cbd, sqs.SendMessageInput{MessageGroupId: aws.String("g")}, ""},
		{"per-message delay", url, sqs.SendMessageInput{MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d2"), DelaySeconds: 5}, "InvalidParameterValue"},
		{"dedup id too long", url, sqs.SendMessageInput{MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(string(make([]byte, 129)))}, "InvalidParameterValue"},
		{"punctuation ids", url, sqs.SendMessageInput{MessageGroupId: aws.String("a!b#c"), MessageDeduplicationId: aws.String("{x}~")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.QueueUrl = aws.String(tc.url)
			in.MessageBody = aws.String("body " + tc.name)
			out, err := e.client.SendMessage(ctx(t), &in)
			if tc.code != "" {
				wantAPIError(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatalf("SendMessage: %v", err)
			}
			if len(aws.ToString(out.SequenceNumber)) < 20 {
				t.Fatalf("SequenceNumber %q is not a 20-digit number", aws.ToString(out.SequenceNumber))
			}
		})
	}
}

func TestFIFOSequenceNumbersIncrease(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "seq.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	prev := new(big.Int)
	for i := range 5 {
		out := e.sendFIFO(t, url, fmt.Sprint(i), fmt.Sprint("g", i%2), "")
		n, ok := new(big.Int).SetString(aws.ToString(out.SequenceNumber), 10)
		if !ok || len(aws.ToString(out.SequenceNumber)) < 20 || n.Cmp(prev) <= 0 {
			t.Fatalf("SequenceNumber %q after %v", aws.ToString(out.SequenceNumber), prev)
		}
		prev = n
	}
}

func TestFIFODeduplication(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "dedup.fifo", nil)
	first := e.sendFIFO(t, url, "one", "g", "id-1")

	// A duplicate answers the original MessageId and SequenceNumber, with
	// the MD5 of what was sent now, and is not enqueued.
	dup := e.sendFIFO(t, url, "one again", "g", "id-1")
	if aws.ToString(dup.MessageId) != aws.ToString(first.MessageId) || aws.ToString(dup.SequenceNumber) != aws.ToString(first.SequenceNumber) {
		t.Fatalf("duplicate got %s/%s, want %s/%s", aws.ToString(dup.MessageId), aws.ToString(dup.SequenceNumber),
			aws.ToString(first.MessageId), aws.ToString(first.SequenceNumber))
	}
	if aws.ToString(dup.MD5OfMessageBody) != md5Hex("one again") {
		t.Fatal("duplicate MD5 is not of its own body")
	}
	msgs := e.receive(t, url, 10)
	if fmt.Sprint(bodies(msgs)) != "[one]" {
		t.Fatalf("received %v", bodies(msgs))
	}

	// The entry survives the deletion of the original.
	e.delete(t, url, aws.ToString(msgs[0].ReceiptHandle))
	again := e.sendFIFO(t, url, "one", "g", "id-1")
	if aws.ToString(again.MessageId) != aws.ToString(first.MessageId) {
		t.Fatal("deduplication forgot a deleted message")
	}
	if got := e.receive(t, url, 10); len(got) != 0 {
		t.Fatalf("duplicate after delete was enqueued: %v", bodies(got))
	}

	// After five minutes the id may be used again.
	e.clock.Advance(5*time.Minute + time.Second)
	fresh := e.sendFIFO(t, url, "one", "g", "id-1")
	if aws.ToString(fresh.MessageId) == aws.ToString(first.MessageId) {
		t.Fatal("deduplication outlived five minutes")
	}
	if got := bodies(e.receive(t, url, 10)); fmt.Sprint(got) != "[one]" {
		t.Fatalf("received %v", got)
	}
}

func TestFIFOContentBasedDeduplication(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "content.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	a := e.sendFIFO(t, url, "same", "g1", "")
	b := e.sendFIFO(t, url, "same", "g2", "") // queue scope: other groups dedup too
	c := e.sendFIFO(t, url, "different", "g1", "")
	if aws.ToString(a.MessageId) != aws.ToString(b.MessageId) || aws.ToString(a.MessageId) == aws.ToString(c.MessageId) {
		t.Fatal("content-based deduplication wrong")
	}
	msgs := e.receive(t, url, 10, func(in *sqs.ReceiveMessageInput) {
		in.MessageSystemAttributeNames = []types.MessageSystemAttributeName{"MessageDeduplicationId"}
	})
	if len(msgs) != 2 || msgs[0].Attributes["MessageDeduplicationId"] != sha256Hex("same") {
		t.Fatalf("received %v", msgs)
	}
}

func TestFIFODeduplicationScopeMessageGroup(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "scope.fifo", map[string]string{"DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"})
	a := e.sendFIFO(t, url, "x", "g1", "same-id")
	b := e.sendFIFO(t, url, "x", "g2", "same-id")
	c := e.sendFIFO(t, url, "x", "g1", "same-id")
	if aws.ToString(a.MessageId) == aws.ToString(b.MessageId) || aws.ToString(a.MessageId) != aws.ToString(c.MessageId) {
		t.Fatal("messageGroup deduplication scope wrong")
	}
}

func TestFIFOGroupOrderingAndBlocking(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "order.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	for i := range 4 {
		e.sendFIFO(t, url, fmt.Sprint("a", i), "A", "")
		e.sendFIFO(t, url, fmt.Sprint("b", i), "B", "")
	}
	e.sendFIFO(t, url, "c0", "C", "")

	// One receive returns several messages of one group in order, then
	// moves on to the next group.
	first := e.receive(t, url, 6)
	if got := fmt.Sprint(bodies(first)); got != "[a0 a1 a2 a3 b0 b1]" {
		t.Fatalf("first receive = %s", got)
	}
	// A and B are blocked while their messages are in flight; C is not.
	second := e.receive(t, url, 10)
	if got := fmt.Sprint(bodies(second)); got != "[c0]" {
		t.Fatalf("second receive = %s", got)
	}
	if got := e.receive(t, url, 10); len(got) != 0 {
		t.Fatalf("blocked groups delivered %v", bodies(got))
	}
	// Deleting all of A's messages unblocks A (nothing left) but B stays
	// blocked until b1 is gone too.
	for _, m := range first[:5] {
		e.delete(t, url, aws.ToString(m.ReceiptHandle))
	}
	if got := e.receive(t, url, 10); len(got) != 0 {
		t.Fatalf("group B delivered while b1 in flight: %v", bodies(got))
	}
	e.delete(t, url, aws.ToString(first[5].ReceiptHandle))
	if got := fmt.Sprint(bodies(e.receive(t, url, 10))); got != "[b2 b3]" {
		t.Fatalf("after unblocking = %s", got)
	}
}

func TestFIFOVisibilityTimeoutRedeliversInOrder(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "redeliver.fifo", map[string]string{"ContentBasedDeduplication": "true", "VisibilityTimeout": "10"})
	for i := range 3 {
		e.sendFIFO(t, url, fmt.Sprint(i), "g", "")
	}
	got := e.receive(t, url, 2)
	e.delete(t, url, aws.ToString(got[1].ReceiptHandle)) // out of order delete of "1"
	e.clock.Advance(11 * time.Second)
	// "0" is visible again and comes before "2"; "1" is gone.
	if b := fmt.Sprint(bodies(e.receive(t, url, 10))); b != "[0 2]" {
		t.Fatalf("redelivery = %s", b)
	}
}

func TestFIFOQueueDelay(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "delay.fifo", map[string]string{"ContentBasedDeduplication": "true", "DelaySeconds": "20"})
	e.sendFIFO(t, url, "x", "g", "")
	if got := e.receive(t, url, 1); len(got) != 0 {
		t.Fatal("queue delay ignored")
	}
	if n := e.attr(t, url, "ApproximateNumberOfMessagesDelayed"); n != "1" {
		t.Fatalf("delayed = %s", n)
	}
	// Shortening the delay of a FIFO queue applies to waiting messages.
	if _, err := e.client.SetQueueAttributes(ctx(t), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: map[string]string{"DelaySeconds": "5"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Second)
	if got := bodies(e.receive(t, url, 1)); fmt.Sprint(got) != "[x]" {
		t.Fatalf("after delay = %v", got)
	}
}

// Many receivers on one FIFO queue never hold two messages of one group at
// the same time, and every group is processed exactly once, in order.
func TestFIFOConcurrentReceiversRespectGroups(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "concurrent.fifo", map[string]string{"VisibilityTimeout": "300"})
	const groups, perGroup, receivers = 5, 40, 8
	for i := range perGroup {
		entries := make([]types.SendMessageBatchRequestEntry, 0, groups)
		for g := range groups {
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id: aws.String(fmt.Sprint("e", g)), MessageBody: aws.String(fmt.Sprint(i)),
				MessageGroupId: aws.String(fmt.Sprint("g", g)), MessageDeduplicationId: aws.String(fmt.Sprintf("%d-%d", g, i)),
			})
		}
		out, err := e.client.SendMessageBatch(ctx(t), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("SendMessageBatch: %v %v", err, out)
		}
	}

	var mu sync.Mutex
	owner := map[string]int{} // group -> receiver holding it
	next := map[string]int{}  // group -> next expected body
	var done int
	var wg sync.WaitGroup
	errs := make(chan error, receivers)
	for r := range receivers {
		wg.Go(func() {
			for {
				mu.Lock()
				finished := done == groups*perGroup
				mu.Unlock()
				if finished {
					return
				}
				out, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{
					QueueUrl: aws.String(url), MaxNumberOfMessages: int32(1 + rand.IntN(10)), WaitTimeSeconds: 1,
					MessageSystemAttributeNames: []types.MessageSystemAttributeName{"MessageGroupId"},
				})
				if err != nil {
					errs <- err
					return
				}
				held := map[string]bool{}
				mu.Lock()
				for _, m := range out.Messages {
					g := m.Attributes["MessageGroupId"]
					if o, ok := owner[g]; ok && o != r {
						mu.Unlock()
						errs <- fmt.Errorf("group %s delivered to receiver %d while receiver %d holds it", g, r, o)
						return
					}
					owner[g] = r
					held[g] = true
					if b := aws.ToString(m.Body); b != fmt.Sprint(next[g]) {
						mu.Unlock()
						errs <- fmt.Errorf("group %s: got %s, want %d", g, b, next[g])
						return
					}
					next[g]++
				}
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // "process"
				// Release the groups before deleting: until the delete is
				// processed the server still holds them back.
				mu.Lock()
				for g := range held {
					delete(owner, g)
				}
				done += len(out.Messages)
				mu.Unlock()
				if len(out.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle}
				}
				dout, err := e.client.DeleteMessageBatch(ctx(t), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
				if err != nil || len(dout.Failed) > 0 {
					errs <- fmt.Errorf("DeleteMessageBatch: %v %v", err, dout)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for g := range groups {
		if next[fmt.Sprint("g", g)] != perGroup {
			t.Errorf("group g%d processed %d of %d", g, next[fmt.Sprint("g", g)], perGroup)
		}
	}
}

func TestFIFODeleteWithExpiredHandle(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "expired.fifo", map[string]string{"ContentBasedDeduplication": "true", "VisibilityTimeout": "5"})
	e.sendFIFO(t, url, "m", "g", "")
	old := e.receive(t, url, 1)[0].ReceiptHandle
	e.clock.Advance(6 * time.Second)

	// Visibility expired, not yet received again.
	_, err := e.client.DeleteMessage(ctx(t), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: old})
	wantAPIError(t, err, "InvalidParameterValue")

	// Received again: only the new handle works.
	cur := e.receive(t, url, 1)[0].ReceiptHandle
	_, err = e.client.DeleteMessage(ctx(t), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: old})
	wantAPIError(t, err, "InvalidParameterValue")
	e.delete(t, url, aws.ToString(cur))
	// Deleting again, or with the old handle, succeeds once the message is gone.
	e.delete(t, url, aws.ToString(cur))
	e.delete(t, url, aws.ToString(old))
}

func TestFIFOBatchWholeRequestErrors(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "batch.fifo", nil)
	_, err := e.client.SendMessageBatch(ctx(t), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("x"), MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("1")},
		{Id: aws.String("b"), MessageBody: aws.String("y"), MessageDeduplicationId: aws.String("2")},
	}})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.client.SendMessageBatch(ctx(t), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("x"), MessageGroupId: aws.String("g")},
	}})
	wantAPIError(t, err, "InvalidParameterValue")
	if n := e.attr(t, url, "ApproximateNumberOfMessages"); n != "0" {
		t.Fatalf("failed batch stored %s messages", n)
	}
	var none *types.QueueDoesNotExist
	if errors.As(err, &none) {
		t.Fatal("wrong error type")
	}
}
