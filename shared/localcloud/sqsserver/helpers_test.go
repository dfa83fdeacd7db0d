package sqsserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// env is a server behind httptest with an SDK client pointed at it.
type env struct {
	srv    *Server
	http   *httptest.Server
	client *sqs.Client
	clock  *clock.Clock
}

func newEnv(t testing.TB, opts ...Option) *env {
	t.Helper()
	clk := clock.New()
	s := New(append([]Option{WithClock(clk)}, opts...)...)
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close() // ends long polls so ts.Close does not wait for them
		ts.Close()
	})
	return &env{srv: s, http: ts, client: newClient(ts.URL, aws.NopRetryer{}), clock: clk}
}

func newClient(endpoint string, retryer aws.Retryer) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      retryer,
	})
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func (e *env) createQueue(t testing.TB, name string, attrs map[string]string) string {
	t.Helper()
	out, err := e.client.CreateQueue(ctx(t), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func (e *env) createFIFO(t testing.TB, name string, attrs map[string]string) string {
	t.Helper()
	a := map[string]string{"FifoQueue": "true"}
	for k, v := range attrs {
		a[k] = v
	}
	return e.createQueue(t, name, a)
}

func (e *env) send(t testing.TB, url, body string) *sqs.SendMessageOutput {
	t.Helper()
	out, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return out
}

func (e *env) sendFIFO(t testing.TB, url, body, group, dedup string) *sqs.SendMessageOutput {
	t.Helper()
	in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageGroupId: aws.String(group)}
	if dedup != "" {
		in.MessageDeduplicationId = aws.String(dedup)
	}
	out, err := e.client.SendMessage(ctx(t), in)
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return out
}

func (e *env) receive(t testing.TB, url string, max int32, opts ...func(*sqs.ReceiveMessageInput)) []types.Message {
	t.Helper()
	in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: max}
	for _, o := range opts {
		o(in)
	}
	out, err := e.client.ReceiveMessage(ctx(t), in)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

func withVisibility(vt int32) func(*sqs.ReceiveMessageInput) {
	return func(in *sqs.ReceiveMessageInput) { in.VisibilityTimeout = vt }
}

func withAllAttributes(in *sqs.ReceiveMessageInput) {
	in.MessageSystemAttributeNames = []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}
	in.MessageAttributeNames = []string{"All"}
}

func (e *env) delete(t testing.TB, url, handle string) {
	t.Helper()
	if _, err := e.client.DeleteMessage(ctx(t), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String(handle)}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
}

func (e *env) attr(t testing.TB, url, name string) string {
	t.Helper()
	out, err := e.client.GetQueueAttributes(ctx(t), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeName(name)},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	return out.Attributes[name]
}

func (e *env) arn(t testing.TB, url string) string { return e.attr(t, url, "QueueArn") }

func bodies(msgs []types.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = aws.ToString(m.Body)
	}
	return out
}

// wantAPIError checks that err is an SQS error with the given code, as the
// SDK reports it (ErrorCode, which is the legacy code when the server sent
// x-amzn-query-error).
func wantAPIError(t testing.TB, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v (%T), want API error %s", err, err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got error code %q (%v), want %q", ae.ErrorCode(), err, code)
	}
}

// rawResponse is a raw HTTP answer of the server.
type rawResponse struct {
	status int
	header http.Header
	body   map[string]any
}

// rawCall posts a JSON 1.0 request to the server.
func (e *env) rawCall(t testing.TB, action string, body any, header map[string]string) rawResponse {
	t.Helper()
	var payload []byte
	switch b := body.(type) {
	case string:
		payload = []byte(b)
	default:
		var err error
		if payload, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, e.http.URL+"/", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	if action != "" {
		req.Header.Set("X-Amz-Target", "AmazonSQS."+action)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := rawResponse{status: resp.StatusCode, header: resp.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out.body); err != nil {
			t.Fatalf("response is not JSON: %q", data)
		}
	}
	return out
}
