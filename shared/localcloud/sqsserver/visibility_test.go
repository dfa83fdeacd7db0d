package sqsserver

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestVisibilityTimeout(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "vis", map[string]string{"VisibilityTimeout": "30"})
	e.send(t, url, "m")
	if len(e.receive(t, url, 1)) != 1 {
		t.Fatal("no message")
	}
	e.clock.Advance(29 * time.Second)
	if len(e.receive(t, url, 1)) != 0 {
		t.Fatal("visible before the timeout ended")
	}
	e.clock.Advance(time.Second)
	// Receive-level override of the queue's timeout.
	msgs := e.receive(t, url, 1, withVisibility(100))
	if len(msgs) != 1 || msgs[0].Attributes != nil {
		t.Fatal("not visible after the timeout ended")
	}
	e.clock.Advance(99 * time.Second)
	if len(e.receive(t, url, 1)) != 0 {
		t.Fatal("receive VisibilityTimeout override ignored")
	}
	e.clock.Advance(time.Second)
	if len(e.receive(t, url, 1)) != 1 {
		t.Fatal("not visible after the override ended")
	}
}

func changeVis(e *env, t *testing.T, url string, handle *string, vt int32) error {
	_, err := e.client.ChangeMessageVisibility(ctx(t), &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: handle, VisibilityTimeout: vt})
	return err
}

func TestChangeMessageVisibility(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "change", map[string]string{"VisibilityTimeout": "30"})

	t.Run("extend relative to now", func(t *testing.T) {
		e.send(t, url, "extend")
		h := e.receive(t, url, 1)[0].ReceiptHandle
		e.clock.Advance(20 * time.Second)
		if err := changeVis(e, t, url, h, 60); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(59 * time.Second) // 79s after the receive, 59s after the change
		if len(e.receive(t, url, 1)) != 0 {
			t.Fatal("visible before the new timeout")
		}
		e.clock.Advance(time.Second)
		msgs := e.receive(t, url, 1)
		if len(msgs) != 1 {
			t.Fatal("not visible after the new timeout")
		}
		e.delete(t, url, aws.ToString(msgs[0].ReceiptHandle))
	})

	t.Run("zero makes visible at once", func(t *testing.T) {
		e.send(t, url, "zero")
		h := e.receive(t, url, 1)[0].ReceiptHandle
		if err := changeVis(e, t, url, h, 0); err != nil {
			t.Fatal(err)
		}
		msgs := e.receive(t, url, 1)
		if len(msgs) != 1 {
			t.Fatal("not visible after setting 0")
		}
		e.delete(t, url, aws.ToString(msgs[0].ReceiptHandle))
	})

	t.Run("standard: expired handle hides the message again", func(t *testing.T) {
		// As on SQS: a standard queue accepts the change after the timeout
		// ended as long as nobody received the message since.
		e.send(t, url, "late change")
		h := e.receive(t, url, 1)[0].ReceiptHandle
		e.clock.Advance(31 * time.Second)
		if err := changeVis(e, t, url, h, 10); err != nil {
			t.Fatal(err)
		}
		if len(e.receive(t, url, 1)) != 0 {
			t.Fatal("message visible after the change")
		}
		e.clock.Advance(10 * time.Second)
		msgs := e.receive(t, url, 1)
		if len(msgs) != 1 {
			t.Fatal("message lost")
		}
		e.delete(t, url, aws.ToString(msgs[0].ReceiptHandle))
	})

	t.Run("deleted message", func(t *testing.T) {
		e.send(t, url, "gone")
		h := e.receive(t, url, 1)[0].ReceiptHandle
		e.delete(t, url, aws.ToString(h))
		wantAPIError(t, changeVis(e, t, url, h, 10), "InvalidParameterValue")
	})

	t.Run("garbage handle", func(t *testing.T) {
		err := changeVis(e, t, url, aws.String("garbage"), 10)
		wantAPIError(t, err, "ReceiptHandleIsInvalid")
		var rhi *types.ReceiptHandleIsInvalid
		if !errors.As(err, &rhi) {
			t.Fatalf("error %T is not *types.ReceiptHandleIsInvalid", err)
		}
	})

	t.Run("handle of another queue", func(t *testing.T) {
		other := e.createQueue(t, "change-other", nil)
		e.send(t, other, "o")
		h := e.receive(t, other, 1)[0].ReceiptHandle
		wantAPIError(t, changeVis(e, t, url, h, 10), "ReceiptHandleIsInvalid")
	})

	t.Run("out of range", func(t *testing.T) {
		e.send(t, url, "range")
		h := e.receive(t, url, 1)[0].ReceiptHandle
		wantAPIError(t, changeVis(e, t, url, h, 43201), "InvalidParameterValue")
		e.delete(t, url, aws.ToString(h))
	})

	t.Run("twelve hours in total", func(t *testing.T) {
		e.send(t, url, "12h")
		h := e.receive(t, url, 1)[0].ReceiptHandle
		e.clock.Advance(time.Hour)
		wantAPIError(t, changeVis(e, t, url, h, 43200), "InvalidParameterValue")
		if err := changeVis(e, t, url, h, 43200-3600-60); err != nil {
			t.Fatalf("change within 12 hours: %v", err)
		}
		e.delete(t, url, aws.ToString(h))
	})
}

func TestChangeMessageVisibilityFIFO(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "change.fifo", map[string]string{"ContentBasedDeduplication": "true", "VisibilityTimeout": "30"})
	e.sendFIFO(t, url, "a", "g", "")
	e.sendFIFO(t, url, "b", "g", "")
	msgs := e.receive(t, url, 1)
	h := msgs[0].ReceiptHandle

	// Making the in-flight message visible unblocks its group at once.
	if err := changeVis(e, t, url, h, 0); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, changeVis(e, t, url, h, 10), "AWS.SimpleQueueService.MessageNotInflight")
	var mni *types.MessageNotInflight
	if !errors.As(changeVis(e, t, url, h, 10), &mni) {
		t.Fatal("not *types.MessageNotInflight")
	}
	again := e.receive(t, url, 10)
	if fmt.Sprint(bodies(again)) != "[a b]" {
		t.Fatalf("after visibility 0: %v", bodies(again))
	}
	// The handle of the earlier receive no longer works.
	wantAPIError(t, changeVis(e, t, url, h, 10), "InvalidParameterValue")

	// After the timeout ends the message is no longer in flight.
	e.clock.Advance(31 * time.Second)
	wantAPIError(t, changeVis(e, t, url, again[0].ReceiptHandle, 10), "AWS.SimpleQueueService.MessageNotInflight")
}

func TestDeleteMessageStandardHandles(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "delete", map[string]string{"VisibilityTimeout": "5"})

	t.Run("stale handle deletes the message", func(t *testing.T) {
		e.send(t, url, "stale")
		old := e.receive(t, url, 1)[0].ReceiptHandle
		e.clock.Advance(6 * time.Second)
		if len(e.receive(t, url, 1)) != 1 { // received again: old is stale
			t.Fatal("message not redelivered")
		}
		e.delete(t, url, aws.ToString(old))
		e.clock.Advance(6 * time.Second)
		if msgs := e.receive(t, url, 1); len(msgs) != 0 {
			t.Fatalf("message survived delete with stale handle: %v", bodies(msgs))
		}
		if n := e.attr(t, url, "ApproximateNumberOfMessages"); n != "0" {
			t.Fatalf("count = %s", n)
		}
	})

	t.Run("visible again, handle still deletes", func(t *testing.T) {
		e.send(t, url, "visible")
		h := e.receive(t, url, 1)[0].ReceiptHandle
		e.clock.Advance(6 * time.Second)
		e.delete(t, url, aws.ToString(h))
		if msgs := e.receive(t, url, 1); len(msgs) != 0 {
			t.Fatalf("message survived: %v", bodies(msgs))
		}
	})

	t.Run("already deleted", func(t *testing.T) {
		e.send(t, url, "twice")
		h := aws.ToString(e.receive(t, url, 1)[0].ReceiptHandle)
		e.delete(t, url, h)
		e.delete(t, url, h)
	})

	t.Run("garbage handle", func(t *testing.T) {
		_, err := e.client.DeleteMessage(ctx(t), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("garbage")})
		wantAPIError(t, err, "ReceiptHandleIsInvalid")
	})
}

func TestChangeMessageVisibilityBatch(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "cvb", nil)
	e.send(t, url, "a")
	e.send(t, url, "b")
	msgs := e.receive(t, url, 2)
	out, err := e.client.ChangeMessageVisibilityBatch(ctx(t), &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: []types.ChangeMessageVisibilityBatchRequestEntry{
		{Id: aws.String("ok"), ReceiptHandle: msgs[0].ReceiptHandle, VisibilityTimeout: 0},
		{Id: aws.String("bad"), ReceiptHandle: aws.String("nope"), VisibilityTimeout: 0},
		{Id: aws.String("long"), ReceiptHandle: msgs[1].ReceiptHandle, VisibilityTimeout: 50000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 1 || aws.ToString(out.Successful[0].Id) != "ok" || len(out.Failed) != 2 {
		t.Fatalf("result = %+v", out)
	}
	codes := map[string]string{}
	for _, f := range out.Failed {
		if !f.SenderFault {
			t.Errorf("%s: SenderFault false", aws.ToString(f.Id))
		}
		codes[aws.ToString(f.Id)] = aws.ToString(f.Code)
	}
	if codes["bad"] != "ReceiptHandleIsInvalid" || codes["long"] != "InvalidParameterValue" {
		t.Fatalf("codes = %v", codes)
	}
	if got := bodies(e.receive(t, url, 10)); fmt.Sprint(got) != "[a]" {
		t.Fatalf("after batch change: %v", got)
	}
}
