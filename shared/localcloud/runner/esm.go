package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// SQSMapping is an SQS event source mapping: it polls a queue and invokes a
// function with batches of messages, as Lambda's pollers do.
type SQSMapping struct {
	Function string
	QueueURL string
	QueueARN string
	FIFO     bool
	// BatchSize is at most 10 for FIFO queues and 10,000 for standard ones
	// (default 10).
	BatchSize int
	// MaxBatchingWindow makes a poller of a standard queue gather up to
	// BatchSize messages for at most this long before invoking.
	MaxBatchingWindow time.Duration
	// MaxConcurrency bounds the invocations this mapping runs at once
	// (ScalingConfig.MaximumConcurrency; default 5 locally).
	MaxConcurrency int
	// ReportBatchItemFailures: the function answers with the messages that
	// failed; only those (and, for FIFO, the rest of their group in the batch)
	// return to the queue.
	ReportBatchItemFailures bool
	Enabled                 bool
	Region                  string
}

// Validate checks the mapping as Lambda does when it is created.
func (m *SQSMapping) Validate() error {
	var errs []error
	if m.BatchSize == 0 {
		m.BatchSize = 10
	}
	if m.MaxConcurrency == 0 {
		m.MaxConcurrency = 5
	}
	if m.FIFO && (m.BatchSize < 1 || m.BatchSize > 10) {
		errs = append(errs, fmt.Errorf("BatchSize %d: a FIFO queue allows 1-10", m.BatchSize))
	}
	if !m.FIFO && (m.BatchSize < 1 || m.BatchSize > 10000) {
		errs = append(errs, fmt.Errorf("BatchSize %d: a standard queue allows 1-10000", m.BatchSize))
	}
	if m.FIFO && m.MaxBatchingWindow > 0 {
		errs = append(errs, errors.New("MaximumBatchingWindowInSeconds is not supported for FIFO queues"))
	}
	if !m.FIFO && m.BatchSize > 10 && m.MaxBatchingWindow < time.Second {
		errs = append(errs, errors.New("a BatchSize over 10 needs MaximumBatchingWindowInSeconds of at least 1"))
	}
	if m.MaxBatchingWindow > 300*time.Second {
		errs = append(errs, errors.New("MaximumBatchingWindowInSeconds allows 0-300"))
	}
	if m.MaxConcurrency < 2 || m.MaxConcurrency > 1000 {
		errs = append(errs, fmt.Errorf("ScalingConfig.MaximumConcurrency %d: allowed 2-1000", m.MaxConcurrency))
	}
	return errors.Join(errs...)
}

// batchResponse is the answer of a function using ReportBatchItemFailures.
type batchResponse struct {
	BatchItemFailures []struct {
		ItemIdentifier string `json:"itemIdentifier"`
	} `json:"batchItemFailures"`
}

// mappingStats counts what a mapping did.
type mappingStats struct {
	invocations atomic.Int64
	messages    atomic.Int64
	deleted     atomic.Int64
	returned    atomic.Int64
	failures    atomic.Int64
}

// poller runs one mapping.
type poller struct {
	m      SQSMapping
	sqs    *sqs.Client
	clock  *clock.Clock
	invoke func(ctx context.Context, function string, payload []byte) (invocationResult, error)
	logger *slog.Logger
	stats  mappingStats

	// gate is closed while the mapping is enabled; a disabled mapping
	// holds an open one, which its pollers wait on before they receive.
	gateMu sync.Mutex
	gate   chan struct{}
}

// newPoller returns an enabled poller.
func newPoller(m SQSMapping, c *sqs.Client, clk *clock.Clock, invoke func(context.Context, string, []byte) (invocationResult, error), logger *slog.Logger) *poller {
	gate := make(chan struct{})
	close(gate)
	return &poller{m: m, sqs: c, clock: clk, invoke: invoke, logger: logger, gate: gate}
}

// setEnabled enables or disables the mapping, like UpdateEventSourceMapping
// with Enabled: a disabled mapping stops receiving (a long poll already
// under way still delivers its batch), and messages wait in the queue.
func (p *poller) setEnabled(enabled bool) {
	p.gateMu.Lock()
	defer p.gateMu.Unlock()
	open := false
	select {
	case <-p.gate:
		open = true
	default:
	}
	switch {
	case enabled && !open:
		close(p.gate)
	case !enabled && open:
		p.gate = make(chan struct{})
	}
}

func (p *poller) enabled() bool {
	p.gateMu.Lock()
	defer p.gateMu.Unlock()
	select {
	case <-p.gate:
		return true
	default:
		return false
	}
}

// release makes msgs visible again at once.
func (p *poller) release(ctx context.Context, msgs []types.Message) {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}
	}
	out, err := p.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(p.m.QueueURL), Entries: entries})
	if err == nil && len(out.Failed) > 0 {
		err = fmt.Errorf("%d of %d entries failed: %s", len(out.Failed), len(msgs), aws.ToString(out.Failed[0].Message))
	}
	if err != nil {
		p.logger.Warn("event source mapping: could not release a batch received while disabled; it returns when its visibility timeout ends", "function", p.m.Function, "err", err)
	}
}

func (p *poller) waitEnabled(ctx context.Context) {
	p.gateMu.Lock()
	gate := p.gate
	p.gateMu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done():
	}
}

// invocationResult is what the runner needs to know of one invocation.
type invocationResult struct {
	Payload []byte
	// FunctionError is non-empty when the function failed (returned an
	// error, crashed or timed out).
	FunctionError string
}

func (p *poller) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < p.m.MaxConcurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx)
		}()
	}
	wg.Wait()
}

func (p *poller) loop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		p.waitEnabled(ctx)
		if ctx.Err() != nil {
			return
		}
		msgs, err := p.receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.logger.Warn("event source mapping: receive failed", "function", p.m.Function, "queue", p.m.QueueARN, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if len(msgs) == 0 {
			continue
		}
		if !p.enabled() {
			// Disabled during the long poll: the batch goes back to the
			// queue uninvoked.
			p.release(ctx, msgs)
			continue
		}
		p.process(ctx, msgs)
	}
}

// receive gets one batch: a single long poll for FIFO queues; for standard
// queues, polls until the batch is full or the batching window has passed.
func (p *poller) receive(ctx context.Context) ([]types.Message, error) {
	var out []types.Message
	var deadline time.Time
	for {
		want := min(p.m.BatchSize-len(out), 10)
		wait := int32(20)
		if len(out) > 0 {
			left := p.clock.Until(deadline)
			if left <= 0 {
				return out, nil
			}
			wait = int32(min(max(left/time.Second, 1), 20))
		}
		res, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.m.QueueURL),
			MaxNumberOfMessages:         int32(want),
			WaitTimeSeconds:             wait,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			if len(out) > 0 && ctx.Err() == nil {
				return out, nil
			}
			return out, err
		}
		if len(out) == 0 && len(res.Messages) > 0 {
			deadline = p.clock.Now().Add(p.m.MaxBatchingWindow)
		}
		out = append(out, res.Messages...)
		if p.m.FIFO || p.m.MaxBatchingWindow == 0 || len(out) >= p.m.BatchSize || (len(out) > 0 && !p.clock.Now().Before(deadline)) {
			return out, nil
		}
	}
}

// process invokes the function with one batch and deletes what succeeded.
// Messages that are not deleted return to the queue when their visibility
// timeout ends, or earlier if the function changed their visibility.
func (p *poller) process(ctx context.Context, msgs []types.Message) {
	p.stats.invocations.Add(1)
	p.stats.messages.Add(int64(len(msgs)))
	payload, err := json.Marshal(p.event(msgs))
	if err != nil {
		p.logger.Error("event source mapping: encode event", "function", p.m.Function, "err", err)
		return
	}
	res, err := p.invoke(ctx, p.m.Function, payload)
	keep := map[string]bool{} // message ids that return to the queue
	switch {
	case err != nil || res.FunctionError != "":
		reason := res.FunctionError
		if err != nil {
			reason = err.Error()
		}
		p.logger.Warn("event source mapping: invocation failed; the batch returns to the queue", "function", p.m.Function, "messages", len(msgs), "reason", reason)
		p.stats.failures.Add(1)
		for _, m := range msgs {
			keep[aws.ToString(m.MessageId)] = true
		}
	case p.m.ReportBatchItemFailures:
		keep = p.failedItems(msgs, res.Payload)
	}
	var del []types.DeleteMessageBatchRequestEntry
	for i, m := range msgs {
		if keep[aws.ToString(m.MessageId)] {
			continue
		}
		del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	p.stats.returned.Add(int64(len(msgs) - len(del)))
	for len(del) > 0 {
		n := min(len(del), 10)
		out, err := p.sqs.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.m.QueueURL), Entries: del[:n]})
		if err != nil {
			p.logger.Warn("event source mapping: delete failed; messages will be redelivered", "function", p.m.Function, "err", err)
		} else {
			p.stats.deleted.Add(int64(len(out.Successful)))
			for _, f := range out.Failed {
				p.logger.Warn("event source mapping: delete failed; message will be redelivered", "function", p.m.Function, "code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
			}
		}
		del = del[n:]
	}
}

// failedItems reads a ReportBatchItemFailures answer. As Lambda does, an
// answer that names a message not in the batch, or cannot be read, fails
// the whole batch. For FIFO queues every message after a failed one in the
// same group returns too, so the group's order holds.
func (p *poller) failedItems(msgs []types.Message, payload []byte) map[string]bool {
	all := func() map[string]bool {
		keep := map[string]bool{}
		for _, m := range msgs {
			keep[aws.ToString(m.MessageId)] = true
		}
		return keep
	}
	keep := map[string]bool{}
	var resp batchResponse
	if len(payload) > 0 && string(payload) != "null" {
		if err := json.Unmarshal(payload, &resp); err != nil {
			p.logger.Warn("event source mapping: unreadable batch response; the batch returns to the queue", "function", p.m.Function, "err", err)
			return all()
		}
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[aws.ToString(m.MessageId)] = true
	}
	for _, f := range resp.BatchItemFailures {
		if !ids[f.ItemIdentifier] {
			p.logger.Warn("event source mapping: batch response names an unknown message; the batch returns to the queue", "function", p.m.Function, "itemIdentifier", f.ItemIdentifier)
			return all()
		}
		keep[f.ItemIdentifier] = true
	}
	if p.m.FIFO && len(keep) > 0 {
		failedGroup := map[string]bool{}
		for _, m := range msgs {
			g := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
			id := aws.ToString(m.MessageId)
			if keep[id] {
				failedGroup[g] = true
			} else if failedGroup[g] {
				keep[id] = true
			}
		}
	}
	return keep
}

// event builds the SQS event Lambda sends.
func (p *poller) event(msgs []types.Message) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:         aws.ToString(m.MessageId),
			ReceiptHandle:     aws.ToString(m.ReceiptHandle),
			Body:              aws.ToString(m.Body),
			Md5OfBody:         aws.ToString(m.MD5OfBody),
			Attributes:        m.Attributes,
			MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSourceARN:    p.m.QueueARN,
			EventSource:       "aws:sqs",
			AWSRegion:         p.m.Region,
		}
		if m.MD5OfMessageAttributes != nil {
			rec.Md5OfMessageAttributes = *m.MD5OfMessageAttributes
		}
		if rec.Attributes == nil {
			rec.Attributes = map[string]string{}
		}
		for k, v := range m.MessageAttributes {
			// Lambda sends empty lists, not null.
			rec.MessageAttributes[k] = events.SQSMessageAttribute{
				StringValue: v.StringValue, BinaryValue: v.BinaryValue, DataType: aws.ToString(v.DataType),
				StringListValues: append([]string{}, v.StringListValues...), BinaryListValues: append([][]byte{}, v.BinaryListValues...),
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}
