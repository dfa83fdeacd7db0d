package awstest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// BenchmarkFIFOThroughput measures FIFO send → receive → delete through the
// SDK, over TCP, with every request SigV4-signed and verified: batches of
// 10, 20 message groups, 8 sending and 8 receiving workers. It reports
// msgs/s. It always runs against the embedded cloud ("embedded") and, when
// FEEDPIPE_TEST_ENDPOINT is set, against that backend too (named by
// FEEDPIPE_TEST_BACKEND), with the same client code.
func BenchmarkFIFOThroughput(b *testing.B) {
	embedded := startEmbedded(b)
	b.Run("embedded", func(b *testing.B) { benchmarkFIFO(b, embedded) })
	if h, ok := ExternalHarness(b); ok {
		b.Run(h.Name, func(b *testing.B) { benchmarkFIFO(b, h) })
	}
}

const (
	benchSenders   = 8
	benchReceivers = 8
	benchGroups    = 20
	benchBatch     = 10
)

func benchmarkFIFO(b *testing.B, h Harness) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	name := uniqueName(b, 75) + ".fifo"
	q, err := h.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		b.Fatalf("create queue: %v", err)
	}
	url := q.QueueUrl
	defer func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_, _ = h.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: url})
	}()

	batches := (b.N + benchBatch - 1) / benchBatch
	total := int64(batches * benchBatch)
	body := `{"site":"site-00","sequence":1,"uploadId":"` + strings.Repeat("u", 40) + `","key":"imports/site-00/00000000000000000001.ndjson"}`
	var (
		nextBatch atomic.Int64
		received  atomic.Int64
		wg        sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		b.Errorf(format, args...)
		cancel()
	}

	b.ResetTimer()
	start := time.Now()
	for range benchSenders {
		wg.Go(func() {
			entries := make([]types.SendMessageBatchRequestEntry, benchBatch)
			for {
				k := int(nextBatch.Add(1)) - 1
				if k >= batches || ctx.Err() != nil {
					return
				}
				for i := range entries {
					n := k*benchBatch + i
					entries[i] = types.SendMessageBatchRequestEntry{
						Id: aws.String(strconv.Itoa(i)), MessageBody: &body,
						MessageGroupId:         aws.String(fmt.Sprintf("site-%02d", n%benchGroups)),
						MessageDeduplicationId: aws.String(strconv.Itoa(n)),
					}
				}
				out, err := h.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: entries})
				if err != nil {
					fail("SendMessageBatch: %v", err)
					return
				}
				if len(out.Failed) > 0 {
					fail("SendMessageBatch: %d entries failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
					return
				}
			}
		})
	}
	for range benchReceivers {
		wg.Go(func() {
			for received.Load() < total && ctx.Err() == nil {
				out, err := h.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, MaxNumberOfMessages: benchBatch, WaitTimeSeconds: 1, VisibilityTimeout: 120})
				if err != nil {
					if ctx.Err() == nil {
						fail("ReceiveMessage: %v", err)
					}
					return
				}
				if len(out.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
				}
				del, err := h.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: url, Entries: entries})
				if err != nil {
					fail("DeleteMessageBatch: %v", err)
					return
				}
				if len(del.Failed) > 0 {
					fail("DeleteMessageBatch: %d entries failed: %s", len(del.Failed), aws.ToString(del.Failed[0].Message))
					return
				}
				if received.Add(int64(len(out.Messages))) >= total {
					cancel() // ends the other receivers' long polls
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if got := received.Load(); got < total && !b.Failed() {
		b.Fatalf("received %d of %d messages", got, total)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
}
