package sqsserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// BenchmarkFIFOSendReceiveDelete drives a FIFO queue through the SDK over
// TCP: 8 senders send batches of 10 over 20 message groups while 8 receivers
// receive up to 10 and delete them in a batch. It reports messages per
// second through the whole send-receive-delete cycle.
func BenchmarkFIFOSendReceiveDelete(b *testing.B) {
	const senders, receivers, groups, batch = 8, 8, 20, 10
	s := New()
	ts := httptest.NewServer(s)
	defer ts.Close()
	defer s.Close()
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
	})
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(ts.URL),
		HTTPClient:   hc,
	})
	bg := context.Background()
	out, err := client.CreateQueue(bg, &sqs.CreateQueueInput{
		QueueName:  aws.String("bench.fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "VisibilityTimeout": "300"},
	})
	if err != nil {
		b.Fatal(err)
	}
	url := out.QueueUrl
	body := `{"feed":"products","sku":"SKU-0001","price":"19.99","currency":"EUR","title":"A product title of moderate length"}`

	total := int64(b.N)
	var sent, deleted atomic.Int64
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, senders+receivers)

	b.ResetTimer()
	start := time.Now()
	for w := range senders {
		wg.Go(func() {
			entries := make([]types.SendMessageBatchRequestEntry, batch)
			for {
				n := sent.Add(batch)
				first := n - batch
				if first >= total {
					return
				}
				k := min(int64(batch), total-first)
				for i := range k {
					seq := first + i
					entries[i] = types.SendMessageBatchRequestEntry{
						Id:                     aws.String(strconv.Itoa(int(i))),
						MessageBody:            aws.String(body),
						MessageGroupId:         aws.String(fmt.Sprint("group-", (seq+int64(w))%groups)),
						MessageDeduplicationId: aws.String(strconv.FormatInt(seq, 10)),
					}
				}
				res, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: entries[:k]})
				if err != nil || len(res.Failed) > 0 {
					errs <- fmt.Errorf("send: %v %v", err, res)
					cancel()
					return
				}
			}
		})
	}
	for range receivers {
		wg.Go(func() {
			del := make([]types.DeleteMessageBatchRequestEntry, 0, batch)
			for deleted.Load() < total && ctx.Err() == nil {
				res, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, MaxNumberOfMessages: batch, WaitTimeSeconds: 5})
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("receive: %v", err)
						cancel()
					}
					return
				}
				if len(res.Messages) == 0 {
					continue
				}
				del = del[:0]
				for i, m := range res.Messages {
					del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
				}
				dres, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: url, Entries: del})
				if err != nil || len(dres.Failed) > 0 {
					errs <- fmt.Errorf("delete: %v %v", err, dres)
					cancel()
					return
				}
				if deleted.Add(int64(len(del))) >= total {
					cancel() // release receivers still long-polling
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if got := deleted.Load(); got != total {
		b.Fatalf("deleted %d of %d", got, total)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msg/s")
}
