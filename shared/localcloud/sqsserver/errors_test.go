package sqsserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Raw wire shapes of errors, as SQS sends them for the JSON protocol.
func TestErrorWireShapes(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "wire", nil)
	queryMode := map[string]string{"X-Amzn-Query-Mode": "true"}
	tests := []struct {
		name       string
		action     string
		body       any
		header     map[string]string
		status     int
		wireType   string
		queryError string
	}{
		{"unknown action", "Frobnicate", map[string]any{}, nil, 400,
			"com.amazon.coral.service#UnknownOperationException", "InvalidAction;Sender"},
		{"no target", "", map[string]any{}, nil, 400,
			"com.amazon.coral.service#UnknownOperationException", "InvalidAction;Sender"},
		{"missing QueueUrl", "SendMessage", map[string]any{"MessageBody": "x"}, nil, 400,
			"com.amazon.coral.service#MissingRequiredParameterException", "MissingParameter;Sender"},
		{"no such queue", "SendMessage", map[string]any{"QueueUrl": e.http.URL + "/000000000000/nope", "MessageBody": "x"}, nil, 400,
			"com.amazonaws.sqs#QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue;Sender"},
		{"queue exists", "CreateQueue", map[string]any{"QueueName": "wire", "Attributes": map[string]string{"DelaySeconds": "9"}}, nil, 400,
			"com.amazonaws.sqs#QueueNameExists", "QueueAlreadyExists;Sender"},
		{"invalid parameter", "ReceiveMessage", map[string]any{"QueueUrl": url, "MaxNumberOfMessages": 11}, nil, 400,
			"com.amazon.coral.service#InvalidParameterValueException", "InvalidParameterValue;Sender"},
		{"empty batch", "DeleteMessageBatch", map[string]any{"QueueUrl": url, "Entries": []any{}}, nil, 400,
			"com.amazonaws.sqs#EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest;Sender"},
		{"bad handle with query mode", "DeleteMessage", map[string]any{"QueueUrl": url, "ReceiptHandle": "x"}, queryMode, 404,
			"com.amazonaws.sqs#ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid;Sender"},
		{"bad handle without query mode", "DeleteMessage", map[string]any{"QueueUrl": url, "ReceiptHandle": "x"}, nil, 400,
			"com.amazonaws.sqs#ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid;Sender"},
		{"not json", "SendMessage", "{not json", nil, 400,
			"com.amazon.coral.service#SerializationException", ""},
		{"wrong type", "SendMessage", `{"QueueUrl": 5}`, nil, 400,
			"com.amazon.coral.service#SerializationException", ""},
		{"unsupported", "AddPermission", map[string]any{"QueueUrl": url}, nil, 400,
			"com.amazonaws.sqs#UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation;Sender"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.rawCall(t, tc.action, tc.body, tc.header)
			if r.status != tc.status || r.body["__type"] != tc.wireType || r.header.Get("x-amzn-query-error") != tc.queryError {
				t.Fatalf("got %d %v %q, want %d %s %s", r.status, r.body["__type"], r.header.Get("x-amzn-query-error"), tc.status, tc.wireType, tc.queryError)
			}
			if msg, _ := r.body["message"].(string); msg == "" {
				t.Fatalf("no message in %v", r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/x-amz-json-1.0" {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
}

func TestSuccessWireShape(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "shape", nil)
	r := e.rawCall(t, "SendMessage", map[string]any{"QueueUrl": url, "MessageBody": "a \"quoted\" \u2028 line\n"}, nil)
	if r.status != 200 || r.body["MD5OfMessageBody"] != md5Hex("a \"quoted\" \u2028 line\n") || r.header.Get("x-amzn-RequestId") == "" {
		t.Fatalf("send = %d %v", r.status, r.body)
	}
	r = e.rawCall(t, "ReceiveMessage", map[string]any{"QueueUrl": url, "VisibilityTimeout": 0}, nil)
	msgs, _ := r.body["Messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["Body"] != "a \"quoted\" \u2028 line\n" {
		t.Fatalf("receive = %v", r.body)
	}
	// VisibilityTimeout 0 on receive leaves the message visible.
	r = e.rawCall(t, "ReceiveMessage", map[string]any{"QueueUrl": url}, nil)
	if msgs, _ := r.body["Messages"].([]any); len(msgs) != 1 {
		t.Fatalf("receive after VisibilityTimeout 0 = %v", r.body)
	}
	r = e.rawCall(t, "ReceiveMessage", map[string]any{"QueueUrl": url}, nil)
	if len(r.body) != 0 {
		t.Fatalf("empty receive = %v, want {}", r.body)
	}
}

func TestSDKErrorTypes(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(e.http.URL + "/000000000000/missing"), MessageBody: aws.String("x")})
	var dne *types.QueueDoesNotExist
	if !errors.As(err, &dne) {
		t.Fatalf("error %T is not *types.QueueDoesNotExist", err)
	}
	if dne.ErrorCode() != "AWS.SimpleQueueService.NonExistentQueue" || dne.ErrorMessage() == "" {
		t.Fatalf("code %q message %q", dne.ErrorCode(), dne.ErrorMessage())
	}
}

func TestSendToARN(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "events", nil)
	e.createFIFO(t, "events.fifo", nil)
	arn := "arn:aws:sqs:us-east-1:000000000000:events"
	if !e.srv.HasQueueARN(arn) || e.srv.HasQueueARN(arn+"x") || e.srv.HasQueueARN("arn:aws:sqs:eu-west-1:000000000000:events") {
		t.Fatal("HasQueueARN wrong")
	}
	if err := e.srv.SendToARN(context.Background(), arn, `{"Records":[]}`); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SendToARN(context.Background(), arn+"x", "x"); !errors.Is(err, ErrQueueDoesNotExist) {
		t.Fatalf("missing queue: %v", err)
	}
	if err := e.srv.SendToARN(context.Background(), arn+".fifo", "x"); !errors.Is(err, ErrFIFOQueue) {
		t.Fatalf("fifo queue: %v", err)
	}
	if err := e.srv.SendToARN(context.Background(), arn, "bad\x00"); err == nil {
		t.Fatal("invalid body accepted")
	}
	msgs := e.receive(t, url, 10, withAllAttributes)
	if len(msgs) != 1 || aws.ToString(msgs[0].Body) != `{"Records":[]}` || msgs[0].Attributes["SentTimestamp"] == "" {
		t.Fatalf("received %v", msgs)
	}
}

// Many clients on a standard queue: every message arrives at least once and
// the race detector stays quiet.
func TestConcurrentStandardQueue(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "busy", map[string]string{"VisibilityTimeout": "60"})
	const senders, perSender, receivers = 4, 50, 4
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range perSender {
				e.send(t, url, fmt.Sprintf("%d-%d", s, i))
			}
		})
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	for range receivers {
		wg.Go(func() {
			for {
				mu.Lock()
				n := len(seen)
				mu.Unlock()
				if n == senders*perSender {
					return
				}
				out, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					t.Error(err)
					return
				}
				for _, m := range out.Messages {
					mu.Lock()
					seen[aws.ToString(m.Body)] = true
					mu.Unlock()
					e.delete(t, url, aws.ToString(m.ReceiptHandle))
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != senders*perSender {
		t.Fatalf("saw %d of %d messages", len(seen), senders*perSender)
	}
}
