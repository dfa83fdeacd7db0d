package runner_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// BenchmarkSQSMappingPerMessage measures what one message costs end to end
// through the runner: SendMessageBatch → event source mapping (batches of 5)
// → the real batch binary through the Runtime API, which reports each
// message on the out queue → DeleteMessageBatch. The reported ns/op is per
// message, including the function's own SQS send.
func BenchmarkSQSMappingPerMessage(b *testing.B) {
	s := startStack(b, nil)
	ctx := context.Background()
	plain := s.runner.QueueURL("PlainQueue")
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		var entries []types.SendMessageBatchRequestEntry
		for i := 0; i < 10 && sent < b.N; i++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String("m" + strconv.Itoa(sent))})
			sent++
		}
		if _, err := s.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(plain), Entries: entries}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	got := 0
	for got < b.N && time.Now().Before(deadline) {
		res, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.out), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			b.Fatal(err)
		}
		var del []types.DeleteMessageBatchRequestEntry
		for i, m := range res.Messages {
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			if _, err := s.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.out), Entries: del}); err != nil {
				b.Fatal(err)
			}
		}
		got += len(res.Messages)
	}
	b.StopTimer()
	if got < b.N {
		b.Fatalf("only %d of %d messages were processed", got, b.N)
	}
}
