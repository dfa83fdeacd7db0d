package awstest

import (
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// sendFIFO sends one message to a FIFO queue.
func (s *suite) sendFIFO(t *testing.T, url, group, dedup, body string) *sqs.SendMessageOutput {
	t.Helper()
	out, err := s.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body, MessageGroupId: &group, MessageDeduplicationId: &dedup})
	if err != nil {
		t.Fatalf("SendMessage group %s dedup %s: %v", group, dedup, err)
	}
	return out
}

// sendBatches sends n messages to a FIFO queue in batches of 10, message i
// with body(i) in group(i) and a deduplication id of its own. It returns the
// results in the order sent.
func (s *suite) sendBatches(t *testing.T, url string, n int, group func(i int) string, body func(i int) string) []types.SendMessageBatchResultEntry {
	t.Helper()
	var results []types.SendMessageBatchResultEntry
	for start := 0; start < n; start += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for i := start; i < min(start+10, n); i++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(body(i)),
				MessageGroupId: aws.String(group(i)), MessageDeduplicationId: aws.String("m" + strconv.Itoa(i)),
			})
		}
		out, err := s.SQS.SendMessageBatch(t.Context(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil {
			t.Fatalf("SendMessageBatch: %v", err)
		}
		if len(out.Failed) > 0 {
			t.Fatalf("SendMessageBatch: %d entries failed, first: %s %s", len(out.Failed), aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
		}
		slices.SortFunc(out.Successful, func(a, b types.SendMessageBatchResultEntry) int {
			x, _ := strconv.Atoi(aws.ToString(a.Id))
			y, _ := strconv.Atoi(aws.ToString(b.Id))
			return x - y
		})
		results = append(results, out.Successful...)
	}
	return results
}

func testFIFOOrder(t *testing.T, s *suite) {
	const groups, per = 3, 15
	url, _ := s.queue(t, true, nil)
	group := func(i int) string { return fmt.Sprintf("site-%d", i%groups) }
	s.sendBatches(t, url, groups*per, group, func(i int) string { return fmt.Sprintf("%s seq %02d", group(i), i/groups) })

	got := map[string][]string{}
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; n < groups*per; {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages within 60 s", n, groups*per)
		}
		msgs := s.receive(t, url, 10, 1, 0)
		var entries []types.DeleteMessageBatchRequestEntry
		for i, m := range msgs {
			g := m.Attributes["MessageGroupId"]
			got[g] = append(got[g], aws.ToString(m.Body))
			entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(entries) > 0 {
			if _, err := s.SQS.DeleteMessageBatch(t.Context(), &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
				t.Fatalf("DeleteMessageBatch: %v", err)
			}
		}
		n += len(msgs)
	}
	for g := range groups {
		name := fmt.Sprintf("site-%d", g)
		var want []string
		for i := range per {
			want = append(want, fmt.Sprintf("%s seq %02d", name, i))
		}
		if !slices.Equal(got[name], want) {
			t.Errorf("group %s delivered %q, want %q", name, got[name], want)
		}
	}
}

func testFIFOGroupBlocked(t *testing.T, s *suite) {
	url, _ := s.queue(t, true, nil)
	s.sendFIFO(t, url, "site-a", "a1", "a1")
	s.sendFIFO(t, url, "site-a", "a2", "a2")
	s.sendFIFO(t, url, "site-b", "b1", "b1")
	vis := int32(120)
	first, ok := s.receiveOne(t, url, 10*time.Second, vis)
	if !ok || aws.ToString(first.Body) != "a1" {
		t.Fatalf("first receive got %q (ok %v), want a1", aws.ToString(first.Body), ok)
	}
	// a1 is in flight: nothing of site-a may come, site-b must.
	var seen []string
	for range 5 {
		msgs := s.receive(t, url, 10, 1, vis)
		seen = append(seen, bodies(msgs)...)
		if slices.Contains(seen, "b1") {
			break
		}
	}
	if !slices.Equal(seen, []string{"b1"}) {
		t.Fatalf("while a1 was in flight, receives returned %q, want only b1", seen)
	}
	s.deleteMessage(t, url, first)
	next, ok := s.receiveOne(t, url, 10*time.Second, vis)
	if !ok || aws.ToString(next.Body) != "a2" {
		t.Errorf("after a1 was deleted, got %q (ok %v), want a2", aws.ToString(next.Body), ok)
	}
}

// testFIFOConcurrentReceivers runs 8 receivers on two message groups: a
// group never has two receives in flight at once, and each group's messages
// are processed exactly once, in order.
func testFIFOConcurrentReceivers(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.FIFOConcurrentReceiveRace, "FIFOConcurrentReceiveRace")
	for _, p := range s.concurrentFIFOReceive(t, 8, 2, 30) {
		t.Error(p)
	}
}

// concurrentFIFOReceive sends per messages to each of groups message groups
// and processes them with concurrent receivers. It returns what went
// against FIFO order: two receives of one group in flight at once, or a
// group processed out of order.
func (s *suite) concurrentFIFOReceive(t *testing.T, receivers, groups, per int) []string {
	t.Helper()
	url, _ := s.queue(t, true, nil)
	group := func(i int) string { return fmt.Sprintf("site-%d", i%groups) }
	s.sendBatches(t, url, groups*per, group, func(i int) string { return strconv.Itoa(i / groups) })

	var (
		mu        sync.Mutex
		problems  []string
		inFlight  = map[string]int{}
		processed = map[string][]string{}
		total     int
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(90 * time.Second)
	for r := range receivers {
		wg.Go(func() {
			for {
				mu.Lock()
				finished := total >= groups*per
				mu.Unlock()
				if finished || time.Now().After(deadline) || t.Context().Err() != nil {
					return
				}
				out, err := s.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
					QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 300,
					MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameMessageGroupId},
				})
				if err != nil {
					t.Errorf("receiver %d: %v", r, err)
					return
				}
				if len(out.Messages) == 0 {
					continue
				}
				// A group is in flight from the receive until its delete is
				// sent.
				batchGroups := map[string]bool{}
				mu.Lock()
				for _, m := range out.Messages {
					g := m.Attributes["MessageGroupId"]
					if !batchGroups[g] {
						batchGroups[g] = true
						if inFlight[g] > 0 {
							problems = append(problems, fmt.Sprintf("receiver %d got a message of group %s while another receive of that group was in flight", r, g))
						}
						inFlight[g]++
					}
					processed[g] = append(processed[g], aws.ToString(m.Body))
					total++
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // the work
				mu.Lock()
				for g := range batchGroups {
					inFlight[g]--
				}
				mu.Unlock()
				var entries []types.DeleteMessageBatchRequestEntry
				for i, m := range out.Messages {
					entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
				}
				if _, err := s.SQS.DeleteMessageBatch(t.Context(), &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
					t.Errorf("receiver %d: DeleteMessageBatch: %v", r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for g := range groups {
		name := fmt.Sprintf("site-%d", g)
		var want []string
		for i := range per {
			want = append(want, strconv.Itoa(i))
		}
		if !slices.Equal(processed[name], want) {
			problems = append(problems, fmt.Sprintf("group %s was processed as %q, want %q", name, processed[name], want))
		}
	}
	return problems
}

func testFIFODeduplicationID(t *testing.T, s *suite) {
	url, _ := s.queue(t, true, nil)
	first := s.sendFIFO(t, url, "site-1", "site-1/seq-7", "first")
	dup := s.sendFIFO(t, url, "site-1", "site-1/seq-7", "retry")
	other := s.sendFIFO(t, url, "site-1", "site-1/seq-8", "other")
	t.Run("NotEnqueued", func(t *testing.T) {
		if got := s.receiveAll(t, url, 2); !slices.Equal(got, []string{"first", "other"}) {
			t.Errorf("received %q, want [first other]: the duplicate must not be enqueued", got)
		}
	})
	t.Run("SameMessageId", func(t *testing.T) {
		s.skipIf(t, s.Features.NewMessageIDOnDuplicate, "NewMessageIDOnDuplicate")
		if aws.ToString(dup.MessageId) != aws.ToString(first.MessageId) {
			t.Errorf("a send with a used deduplication id returned MessageId %s, want the first message's %s", aws.ToString(dup.MessageId), aws.ToString(first.MessageId))
		}
		if aws.ToString(other.MessageId) == aws.ToString(first.MessageId) {
			t.Errorf("a new deduplication id returned the old MessageId")
		}
	})
}

func testFIFOContentBasedDeduplication(t *testing.T, s *suite) {
	ctx := t.Context()
	url, _ := s.queue(t, true, map[string]string{"ContentBasedDeduplication": "true"})
	send := func(body string) string {
		out, err := s.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body, MessageGroupId: aws.String("site-1")})
		if err != nil {
			t.Fatalf("SendMessage without a deduplication id: %v", err)
		}
		return aws.ToString(out.MessageId)
	}
	a1, a2, b := send("wake site-1"), send("wake site-1"), send("wake site-1 again")
	t.Run("NotEnqueued", func(t *testing.T) {
		if got := s.receiveAll(t, url, 2); !slices.Equal(got, []string{"wake site-1", "wake site-1 again"}) {
			t.Errorf("received %q, want each body once", got)
		}
	})
	t.Run("SameMessageId", func(t *testing.T) {
		s.skipIf(t, s.Features.NewMessageIDOnDuplicate, "NewMessageIDOnDuplicate")
		if a1 != a2 {
			t.Errorf("the same body sent twice got MessageIds %s and %s, want one", a1, a2)
		}
		if b == a1 {
			t.Errorf("a different body got the first message's MessageId")
		}
	})
}

func testFIFODeduplicationAfterDelete(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoFIFODedupAfterDelete, "NoFIFODedupAfterDelete")
	url, _ := s.queue(t, true, nil)
	s.sendFIFO(t, url, "site-1", "site-1/seq-1", "first")
	m, ok := s.receiveOne(t, url, 10*time.Second, 0)
	if !ok {
		t.Fatalf("no message within 10 s")
	}
	s.deleteMessage(t, url, m)
	s.sendFIFO(t, url, "site-1", "site-1/seq-1", "resent")
	if m, ok := s.receiveOne(t, url, 2*time.Second, 0); ok {
		t.Errorf("a message resent with the deduplication id of a deleted message was delivered: %q", aws.ToString(m.Body))
	}
}

// sequenceNumber parses an SQS sequence number (a decimal of up to 128 bits).
func sequenceNumber(t *testing.T, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("sequence number %q is not a decimal number", s)
	}
	return n
}

func testFIFOSequenceNumber(t *testing.T, s *suite) {
	url, _ := s.queue(t, true, nil)
	group := func(i int) string { return fmt.Sprintf("site-%d", i%2) }
	type sent struct{ group, seq string }
	var all []sent
	for i := range 6 {
		out := s.sendFIFO(t, url, group(i), fmt.Sprintf("single-%d", i), fmt.Sprintf("single %d", i))
		all = append(all, sent{group(i), aws.ToString(out.SequenceNumber)})
	}
	for i, r := range s.sendBatches(t, url, 10, group, func(i int) string { return fmt.Sprintf("batch %d", i) }) {
		all = append(all, sent{group(i), aws.ToString(r.SequenceNumber)})
	}
	t.Run("IncreasingInGroup", func(t *testing.T) {
		s.skipIf(t, s.Features.NoIncreasingSequenceNumbers, "NoIncreasingSequenceNumbers")
		last := map[string]*big.Int{}
		for _, m := range all {
			n := sequenceNumber(t, m.seq)
			if prev := last[m.group]; prev != nil && n.Cmp(prev) <= 0 {
				t.Errorf("group %s: sequence number %s after %s, want it to increase", m.group, n, prev)
			}
			last[m.group] = n
		}
	})
	t.Run("MatchesReceived", func(t *testing.T) {
		received := map[string]bool{}
		for range 10 {
			for _, m := range s.receive(t, url, 10, 1, 0) {
				received[m.Attributes["SequenceNumber"]] = true
				s.deleteMessage(t, url, m)
			}
			if len(received) >= len(all) {
				break
			}
		}
		for _, m := range all {
			if !received[m.seq] {
				t.Errorf("no message was received with the sequence number %s that the send returned", m.seq)
			}
		}
	})
}

func testFIFOMissingGroupID(t *testing.T, s *suite) {
	url, _ := s.queue(t, true, nil)
	_, err := s.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")})
	wantSQSError(t, err, http.StatusBadRequest, "MissingParameter")
}
