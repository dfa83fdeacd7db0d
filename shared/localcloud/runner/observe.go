package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/feedpipe/feedpipe/shared/clock"
	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/localcloud/sqsserver"
)

const typeAlarm = "AWS::CloudWatch::Alarm"

// alarmInterval is how often, on the stack's clock, the runner samples the
// queues and evaluates the alarms. CloudWatch evaluates once a minute; the
// local stack answers sooner, with the same rules.
const alarmInterval = 10 * time.Second

// QueueStatsFunc reads a queue's stats from the cloud that holds it (the
// embedded cloud's sqsserver.Server.Stats); ok is false for an unknown
// queue.
type QueueStatsFunc func(queueURL string) (st sqsserver.QueueStats, ok bool)

// QueueStatus is one queue of the stack as `GET /_feedpipe/queues` shows it.
type QueueStatus struct {
	LogicalID        string         `json:"logicalId"`
	Name             string         `json:"name"`
	URL              string         `json:"url"`
	FIFO             bool           `json:"fifo"`
	Visible          int            `json:"visible"`
	InFlight         int            `json:"inFlight"`
	Delayed          int            `json:"delayed"`
	OldestAgeSeconds *float64       `json:"oldestAgeSeconds,omitempty"`
	InFlightByGroup  map[string]int `json:"inFlightByGroup,omitempty"`
	Error            string         `json:"error,omitempty"`
}

// emfTee passes function output through to w and stores the metrics of
// every Embedded Metric Format line on the way. Each Write is one line,
// prefixed "[LogicalId] " by the Lambda runtime.
type emfTee struct {
	w       io.Writer
	metrics *alarms.Metrics
	clock   *clock.Clock
	warn    func(msg string, args ...any)
}

func (t *emfTee) Write(p []byte) (int, error) {
	line := p
	if len(line) > 0 && line[0] == '[' {
		if i := bytes.Index(line, []byte("] ")); i > 0 {
			line = line[i+2:]
		}
	}
	if _, err := t.metrics.PutEMF(line, t.clock.Now()); err != nil {
		t.warn("a function printed a malformed EMF line", "err", err)
	}
	return t.w.Write(p)
}

// startAlarms reads the template's alarms; they are evaluated by
// runAlarms once the stack runs.
func (r *Runner) startAlarms() error {
	list, err := alarms.FromTemplate(r.tpl, r.resolver)
	if err != nil {
		return err
	}
	r.evaluator = alarms.NewEvaluator(list, r.metrics, r.cfg.Clock.Now())
	return nil
}

// runAlarms samples the queues' AWS/SQS metrics and evaluates the alarms
// every alarmInterval of the stack's clock, printing every transition.
func (r *Runner) runAlarms(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.cfg.Clock.After(alarmInterval):
		}
		r.sampleQueues(ctx)
		for _, s := range r.evaluator.Evaluate(r.cfg.Clock.Now()) {
			// Into or out of ALARM is news; a new alarm's first OK is not.
			if s.State == alarms.Alarming || s.Previous == alarms.Alarming {
				fmt.Fprintf(r.cfg.LogOutput, "[alarms] %s → %s  %s: %s\n", s.Previous, s.State, s.Name, s.Reason)
			}
			r.cfg.Logger.Debug("alarm state changed", "alarm", s.Name, "from", s.Previous, "to", s.State, "reason", s.Reason)
		}
	}
}

// sampleQueues publishes ApproximateAgeOfOldestMessage (when the cloud
// knows it) and ApproximateNumberOfMessagesVisible of every queue.
func (r *Runner) sampleQueues(ctx context.Context) {
	now := r.cfg.Clock.Now()
	for _, q := range r.Queues(ctx) {
		if q.Error != "" {
			continue
		}
		dims := map[string]string{"QueueName": q.Name}
		r.metrics.Put("AWS/SQS", "ApproximateNumberOfMessagesVisible", dims, float64(q.Visible), now)
		r.metrics.Put("AWS/SQS", "ApproximateNumberOfMessagesNotVisible", dims, float64(q.InFlight), now)
		if q.OldestAgeSeconds != nil {
			r.metrics.Put("AWS/SQS", "ApproximateAgeOfOldestMessage", dims, *q.OldestAgeSeconds, now)
		}
	}
}

// Alarms returns the state of every alarm of the template, by name.
func (r *Runner) Alarms() []alarms.State {
	if r.evaluator == nil {
		return nil
	}
	return r.evaluator.States()
}

// Queues returns the stack's queues, by logical id: from the embedded
// cloud's stats when Config.QueueStats is set (with the age of the oldest
// message and in-flight messages per group), otherwise from
// GetQueueAttributes (counts only).
func (r *Runner) Queues(ctx context.Context) []QueueStatus {
	out := make([]QueueStatus, 0, len(r.queues))
	for _, id := range sortedKeys(r.queues) {
		q := r.queues[id]
		st := QueueStatus{LogicalID: id, Name: q.name, URL: q.url, FIFO: q.fifo}
		if r.cfg.QueueStats != nil {
			s, ok := r.cfg.QueueStats(q.url)
			if !ok {
				st.Error = "the cloud has no such queue"
			} else {
				age := s.OldestAge.Seconds()
				st.Visible, st.InFlight, st.Delayed, st.OldestAgeSeconds, st.InFlightByGroup = s.Visible, s.InFlight, s.Delayed, &age, s.InFlightByGroup
			}
			out = append(out, st)
			continue
		}
		attrs, err := r.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.url), AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		}})
		if err != nil {
			st.Error = err.Error()
		} else {
			st.Visible, _ = strconv.Atoi(attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
			st.InFlight, _ = strconv.Atoi(attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
			st.Delayed, _ = strconv.Atoi(attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)])
		}
		out = append(out, st)
	}
	return out
}

// SetMappingsEnabled enables or disables every SQS event source mapping of
// a function (by logical id), as UpdateEventSourceMapping with Enabled
// does: a disabled function takes no messages and its queue ages — how the
// local stack shows a consumer that is down.
func (r *Runner) SetMappingsEnabled(function string, enabled bool) error {
	n := 0
	for _, p := range r.pollers {
		if p.m.Function == function {
			p.setEnabled(enabled)
			n++
		}
	}
	if n == 0 {
		var names []string
		for _, p := range r.pollers {
			names = append(names, p.m.Function)
		}
		sort.Strings(names)
		return fmt.Errorf("no event source mapping invokes %q (mapped functions: %v)", function, names)
	}
	return nil
}
