package sqsserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestRedriveStandard(t *testing.T) {
	e := newEnv(t)
	dlq := e.createQueue(t, "dead", nil)
	src := e.createQueue(t, "source", map[string]string{
		"VisibilityTimeout": "10",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":2}`, e.arn(t, dlq)),
	})
	sent, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{
		QueueUrl: aws.String(src), MessageBody: aws.String("poison"),
		MessageAttributes: map[string]types.MessageAttributeValue{"MyAttribute": strAttr("foobar")},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, src, "healthy")

	for i, want := range []int{2, 1} {
		msgs := e.receive(t, src, 10)
		if len(msgs) != want {
			t.Fatalf("receive %d: %v", i, bodies(msgs))
		}
		for _, m := range msgs {
			if aws.ToString(m.Body) == "healthy" {
				e.delete(t, src, aws.ToString(m.ReceiptHandle))
			}
		}
		e.clock.Advance(10 * time.Second)
	}
	// The third receive would exceed maxReceiveCount: the message moves.
	if msgs := e.receive(t, src, 10); len(msgs) != 0 {
		t.Fatalf("poison message received a third time: %v", bodies(msgs))
	}
	if n := e.attr(t, src, "ApproximateNumberOfMessages"); n != "0" {
		t.Fatalf("source still has %s messages", n)
	}
	msgs := e.receive(t, dlq, 10, withAllAttributes)
	if len(msgs) != 1 {
		t.Fatalf("dead-letter queue has %d messages", len(msgs))
	}
	m := msgs[0]
	if aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(m.Body) != "poison" ||
		aws.ToString(m.MessageAttributes["MyAttribute"].StringValue) != "foobar" ||
		aws.ToString(m.MD5OfMessageAttributes) != "adb59cd4678ea5a855436b949cd07ab6" {
		t.Fatalf("moved message = %+v", m)
	}
	if m.Attributes["DeadLetterQueueSourceArn"] != e.arn(t, src) || m.Attributes["ApproximateReceiveCount"] != "3" {
		t.Fatalf("moved message attributes = %v", m.Attributes)
	}
}

func TestRedriveFIFO(t *testing.T) {
	e := newEnv(t)
	dlq := e.createFIFO(t, "dead.fifo", nil)
	src := e.createFIFO(t, "source.fifo", map[string]string{
		"ContentBasedDeduplication": "true",
		"VisibilityTimeout":         "10",
		"RedrivePolicy":             fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":1}`, e.arn(t, dlq)),
	})
	e.sendFIFO(t, src, "a0", "A", "")
	e.sendFIFO(t, src, "a1", "A", "")
	e.sendFIFO(t, src, "b0", "B", "")
	if got := fmt.Sprint(bodies(e.receive(t, src, 10))); got != "[a0 a1 b0]" {
		t.Fatalf("first receive = %s", got)
	}
	e.clock.Advance(10 * time.Second)
	if got := e.receive(t, src, 10); len(got) != 0 {
		t.Fatalf("redelivered past maxReceiveCount: %v", bodies(got))
	}
	msgs := e.receive(t, dlq, 10, withAllAttributes)
	if got := fmt.Sprint(bodies(msgs)); got != "[a0 a1 b0]" {
		t.Fatalf("dead-letter queue = %s", got)
	}
	if msgs[0].Attributes["MessageGroupId"] != "A" || msgs[2].Attributes["MessageGroupId"] != "B" ||
		msgs[0].Attributes["DeadLetterQueueSourceArn"] != e.arn(t, src) || len(msgs[0].Attributes["SequenceNumber"]) < 20 {
		t.Fatalf("moved attributes = %v / %v", msgs[0].Attributes, msgs[2].Attributes)
	}
}

func TestRedriveWithoutDeadLetterQueue(t *testing.T) {
	e := newEnv(t)
	dlq := e.createQueue(t, "vanishing", nil)
	src := e.createQueue(t, "orphan", map[string]string{
		"VisibilityTimeout": "1",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":1}`, e.arn(t, dlq)),
	})
	if _, err := e.client.DeleteQueue(ctx(t), &sqs.DeleteQueueInput{QueueUrl: aws.String(dlq)}); err != nil {
		t.Fatal(err)
	}
	e.send(t, src, "m")
	for range 3 {
		if len(e.receive(t, src, 1)) != 1 {
			t.Fatal("message lost without a dead-letter queue")
		}
		e.clock.Advance(time.Second)
	}
}
