package sqsserver

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func entries(n int) []types.SendMessageBatchRequestEntry {
	out := make([]types.SendMessageBatchRequestEntry, n)
	for i := range out {
		out[i] = types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("id", i)), MessageBody: aws.String(fmt.Sprint("body", i))}
	}
	return out
}

func TestSendMessageBatchRequestErrors(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "batch", nil)
	dupIDs := entries(2)
	dupIDs[1].Id = dupIDs[0].Id
	badID := entries(1)
	badID[0].Id = aws.String("no spaces")
	longID := entries(1)
	longID[0].Id = aws.String(strings.Repeat("i", 81))
	huge := entries(2)
	huge[0].MessageBody = aws.String(strings.Repeat("x", 600000))
	huge[1].MessageBody = aws.String(strings.Repeat("y", 600000))

	tests := []struct {
		name    string
		entries []types.SendMessageBatchRequestEntry
		code    string
		typ     any
	}{
		{"empty", []types.SendMessageBatchRequestEntry{}, "AWS.SimpleQueueService.EmptyBatchRequest", new(*types.EmptyBatchRequest)},
		{"eleven", entries(11), "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", new(*types.TooManyEntriesInBatchRequest)},
		{"duplicate ids", dupIDs, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", new(*types.BatchEntryIdsNotDistinct)},
		{"bad id", badID, "AWS.SimpleQueueService.InvalidBatchEntryId", new(*types.InvalidBatchEntryId)},
		{"long id", longID, "AWS.SimpleQueueService.InvalidBatchEntryId", new(*types.InvalidBatchEntryId)},
		{"over 1 MiB in total", huge, "AWS.SimpleQueueService.BatchRequestTooLong", new(*types.BatchRequestTooLong)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.SendMessageBatch(ctx(t), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: tc.entries})
			wantAPIError(t, err, tc.code)
			if !errors.As(err, tc.typ) {
				t.Fatalf("error %T is not %T", err, tc.typ)
			}
		})
	}
	if n := e.attr(t, url, "ApproximateNumberOfMessages"); n != "0" {
		t.Fatalf("rejected batches stored %s messages", n)
	}
}

func TestSendMessageBatchPartialFailure(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "partial", map[string]string{"MaximumMessageSize": "1024"})
	in := entries(4)
	in[1].MessageBody = aws.String(strings.Repeat("x", 1025))
	in[2].MessageBody = aws.String("bad \x00 char")
	in[3].MessageAttributes = map[string]types.MessageAttributeValue{"a": strAttr("v")}
	out, err := e.client.SendMessageBatch(ctx(t), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: in})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 2 || len(out.Failed) != 2 {
		t.Fatalf("result = %+v", out)
	}
	for _, s := range out.Successful {
		if aws.ToString(s.MessageId) == "" || aws.ToString(s.MD5OfMessageBody) == "" {
			t.Fatalf("successful entry = %+v", s)
		}
		if aws.ToString(s.Id) == "id3" && aws.ToString(s.MD5OfMessageAttributes) != attributesMD5([]msgAttr{{name: "a", dataType: "String", str: "v"}}) {
			t.Fatal("batch entry MD5OfMessageAttributes wrong")
		}
	}
	failed := map[string]types.BatchResultErrorEntry{}
	for _, f := range out.Failed {
		failed[aws.ToString(f.Id)] = f
	}
	if f := failed["id1"]; aws.ToString(f.Code) != "InvalidParameterValue" || !f.SenderFault ||
		aws.ToString(f.Message) != "One or more parameters cannot be validated. Reason: Message must be shorter than 1024 bytes." {
		t.Fatalf("id1 = %+v", f)
	}
	if f := failed["id2"]; aws.ToString(f.Code) != "InvalidMessageContents" || !f.SenderFault {
		t.Fatalf("id2 = %+v", f)
	}
	if got := fmt.Sprint(bodies(e.receive(t, url, 10))); got != "[body0 body3]" {
		t.Fatalf("stored = %s", got)
	}
}

func TestDeleteMessageBatch(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "delete-batch", nil)
	for i := range 3 {
		e.send(t, url, fmt.Sprint(i))
	}
	msgs := e.receive(t, url, 10)
	out, err := e.client.DeleteMessageBatch(ctx(t), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("a"), ReceiptHandle: msgs[0].ReceiptHandle},
		{Id: aws.String("b"), ReceiptHandle: msgs[1].ReceiptHandle},
		{Id: aws.String("c"), ReceiptHandle: aws.String("junk")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 2 || len(out.Failed) != 1 || aws.ToString(out.Failed[0].Code) != "ReceiptHandleIsInvalid" || !out.Failed[0].SenderFault {
		t.Fatalf("result = %+v", out)
	}
	if n := e.attr(t, url, "ApproximateNumberOfMessagesNotVisible"); n != "1" {
		t.Fatalf("in flight = %s", n)
	}

	_, err = e.client.DeleteMessageBatch(ctx(t), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("x"), ReceiptHandle: msgs[2].ReceiptHandle},
		{Id: aws.String("x"), ReceiptHandle: msgs[2].ReceiptHandle},
	}})
	wantAPIError(t, err, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
	_, err = e.client.DeleteMessageBatch(ctx(t), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{}})
	wantAPIError(t, err, "AWS.SimpleQueueService.EmptyBatchRequest")
}
