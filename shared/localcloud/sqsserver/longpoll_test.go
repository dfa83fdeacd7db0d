package sqsserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

type pollResult struct {
	bodies  []string
	err     error
	elapsed time.Duration
}

// startPoll starts a ReceiveMessage in the background.
func (e *env) startPoll(t *testing.T, url string, wait int32) <-chan pollResult {
	done := make(chan pollResult, 1)
	go func() {
		start := time.Now()
		out, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: wait, MaxNumberOfMessages: 10})
		r := pollResult{err: err, elapsed: time.Since(start)}
		if out != nil {
			r.bodies = bodies(out.Messages)
		}
		done <- r
	}()
	return done
}

func awaitPoll(t *testing.T, done <-chan pollResult, want string) {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if got := fmt.Sprint(r.bodies); got != want {
			t.Fatalf("poll returned %s, want %s", got, want)
		}
		if r.elapsed > 5*time.Second {
			t.Fatalf("poll took %v", r.elapsed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return")
	}
}

func waits(e *env, name string) int {
	q := e.srv.lookup("000000000000", name)
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waits
}

func TestLongPollReturnsOnSend(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"poll-std", "poll.fifo"} {
		t.Run(name, func(t *testing.T) {
			var url string
			if name == "poll.fifo" {
				url = e.createFIFO(t, name, map[string]string{"ContentBasedDeduplication": "true"})
			} else {
				url = e.createQueue(t, name, nil)
			}
			done := e.startPoll(t, url, 20)
			waitForPoll(t, e, name)
			if name == "poll.fifo" {
				e.sendFIFO(t, url, "hello", "g", "")
			} else {
				e.send(t, url, "hello")
			}
			awaitPoll(t, done, "[hello]")
		})
	}
}

func TestLongPollReturnsWhenAdvanceRevealsMessage(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "poll-advance", map[string]string{"VisibilityTimeout": "10"})
	e.send(t, url, "again")
	e.receive(t, url, 1)
	done := e.startPoll(t, url, 20)
	waitForPoll(t, e, "poll-advance")
	e.clock.Advance(10 * time.Second)
	awaitPoll(t, done, "[again]")

	// A delayed message too.
	delayed := e.createQueue(t, "poll-delayed", nil)
	if _, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(delayed), MessageBody: aws.String("delayed"), DelaySeconds: 15}); err != nil {
		t.Fatal(err)
	}
	done = e.startPoll(t, delayed, 20)
	waitForPoll(t, e, "poll-delayed")
	e.clock.Advance(15 * time.Second)
	awaitPoll(t, done, "[delayed]")
}

func TestLongPollFIFOUnblockedByDelete(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "unblock.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	e.sendFIFO(t, url, "first", "g", "")
	e.sendFIFO(t, url, "second", "g", "")
	h := e.receive(t, url, 1)[0].ReceiptHandle
	done := e.startPoll(t, url, 20)
	waitForPoll(t, e, "unblock.fifo")
	e.delete(t, url, aws.ToString(h))
	awaitPoll(t, done, "[second]")
}

func TestLongPollTimesOutOnClock(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "poll-timeout", nil)
	done := e.startPoll(t, url, 20)
	waitForPoll(t, e, "poll-timeout")
	e.clock.Advance(20 * time.Second)
	awaitPoll(t, done, "[]")
}

func TestLongPollQueueDefaultWait(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "poll-default", map[string]string{"ReceiveMessageWaitTimeSeconds": "20"})
	done := e.startPoll(t, url, 0) // the SDK omits 0: the queue's default applies
	waitForPoll(t, e, "poll-default")
	e.send(t, url, "x")
	awaitPoll(t, done, "[x]")
}

// A long poll sleeps instead of spinning, even while an in-flight message's
// deadline is far away.
func TestLongPollDoesNotSpin(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "poll-idle", map[string]string{"VisibilityTimeout": "600"})
	e.send(t, url, "held")
	e.receive(t, url, 1)
	done := e.startPoll(t, url, 1) // one second of real time
	awaitPoll(t, done, "[]")
	if n := waits(e, "poll-idle"); n > 2 {
		t.Fatalf("long poll woke %d times in one idle second", n)
	}
}

func TestCloseEndsLongPolls(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "poll-close", nil)
	done := e.startPoll(t, url, 20)
	waitForPoll(t, e, "poll-close")
	e.srv.Close()
	awaitPoll(t, done, "[]")
	_, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")})
	wantAPIError(t, err, "ServiceUnavailable")
	if err := e.srv.SendToARN(ctx(t), "arn:aws:sqs:us-east-1:000000000000:poll-close", "x"); err != ErrClosed {
		t.Fatalf("SendToARN after Close = %v", err)
	}
}
