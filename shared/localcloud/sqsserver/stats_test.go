package sqsserver

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func TestStats(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	if st, ok := e.srv.Stats(url); !ok || st.Visible+st.InFlight+st.Delayed != 0 || st.OldestAge != 0 || st.InFlightByGroup != nil {
		t.Fatalf("empty queue: %+v %v", st, ok)
	}
	send := func(group, body string) {
		t.Helper()
		if _, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageGroupId: aws.String(group)}); err != nil {
			t.Fatal(err)
		}
	}
	send("a", "1")
	e.clock.Advance(40 * time.Second)
	send("a", "2")
	send("b", "3")
	e.clock.Advance(20 * time.Second)
	if _, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 1}); err != nil {
		t.Fatal(err)
	}
	st, ok := e.srv.Stats("q.fifo") // a bare name resolves too
	if !ok {
		t.Fatal("no stats for q.fifo")
	}
	if st.Visible != 2 || st.InFlight != 1 || st.OldestAge < 60*time.Second || st.OldestAge > 61*time.Second || len(st.InFlightByGroup) != 1 || st.InFlightByGroup["a"] != 1 {
		t.Errorf("stats %+v, want 2 visible, 1 in flight (group a), oldest 60s (the clock also follows the wall clock)", st)
	}
	if _, ok := e.srv.Stats("nosuchqueue"); ok {
		t.Error("stats for a queue that does not exist")
	}
}
