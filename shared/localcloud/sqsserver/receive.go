package sqsserver

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/feedpipe/feedpipe/shared/clock"
)

type receiveRequest struct {
	QueueURL                    *string  `json:"QueueUrl"`
	AttributeNames              []string `json:"AttributeNames"`
	MessageSystemAttributeNames []string `json:"MessageSystemAttributeNames"`
	MessageAttributeNames       []string `json:"MessageAttributeNames"`
	MaxNumberOfMessages         *int     `json:"MaxNumberOfMessages"`
	VisibilityTimeout           *int     `json:"VisibilityTimeout"`
	WaitTimeSeconds             *int     `json:"WaitTimeSeconds"`
	ReceiveRequestAttemptID     *string  `json:"ReceiveRequestAttemptId"`
}

// System attributes a receive can ask for.
const (
	sysSenderID uint16 = 1 << iota
	sysSentTimestamp
	sysApproximateReceiveCount
	sysApproximateFirstReceiveTimestamp
	sysSequenceNumber
	sysMessageDeduplicationID
	sysMessageGroupID
	sysAWSTraceHeader
	sysDeadLetterQueueSourceArn
	sysAll = 1<<iota - 1
)

func systemAttributeBit(name string) uint16 {
	switch name {
	case "All":
		return sysAll
	case "SenderId":
		return sysSenderID
	case "SentTimestamp":
		return sysSentTimestamp
	case "ApproximateReceiveCount":
		return sysApproximateReceiveCount
	case "ApproximateFirstReceiveTimestamp":
		return sysApproximateFirstReceiveTimestamp
	case "SequenceNumber":
		return sysSequenceNumber
	case "MessageDeduplicationId":
		return sysMessageDeduplicationID
	case "MessageGroupId":
		return sysMessageGroupID
	case "AWSTraceHeader":
		return sysAWSTraceHeader
	case "DeadLetterQueueSourceArn":
		return sysDeadLetterQueueSourceArn
	}
	return 0
}

// attrFilter selects message attributes by MessageAttributeNames: "All" or
// ".*" select every attribute, "prefix.*" those whose names start with
// "prefix.", any other entry the attribute of that name.
type attrFilter struct {
	all      bool
	names    []string
	prefixes []string
}

func newAttrFilter(names []string) attrFilter {
	var f attrFilter
	for _, n := range names {
		switch {
		case n == "All" || n == ".*":
			f.all = true
		case strings.HasSuffix(n, ".*"):
			f.prefixes = append(f.prefixes, n[:len(n)-1])
		default:
			f.names = append(f.names, n)
		}
	}
	return f
}

func (f *attrFilter) empty() bool { return !f.all && len(f.names) == 0 && len(f.prefixes) == 0 }

func (f *attrFilter) match(name string) bool {
	if f.all {
		return true
	}
	for _, n := range f.names {
		if n == name {
			return true
		}
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// receiveMessage implements ReceiveMessage.
func (s *Server) receiveMessage(r *http.Request, body []byte, w *jsonWriter) *apiError {
	var req receiveRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	n := 1
	if req.MaxNumberOfMessages != nil {
		n = *req.MaxNumberOfMessages
		if n < 1 || n > 10 {
			return errInvalidValue(n, "MaxNumberOfMessages", "Must be between 1 and 10, if provided.")
		}
	}
	vt := -1
	if req.VisibilityTimeout != nil {
		vt = *req.VisibilityTimeout
		if vt < 0 || vt > maxVisibilityTimeout {
			return errInvalidValue(vt, "VisibilityTimeout", "Must be >= 0 and <= 43200, if provided.")
		}
	}
	wait := -1
	if req.WaitTimeSeconds != nil {
		wait = *req.WaitTimeSeconds
		if wait < 0 || wait > maxWaitTimeSeconds {
			return errInvalidValue(wait, "WaitTimeSeconds", "Must be >= 0 and <= 20, if provided.")
		}
	}
	var sys uint16
	for _, name := range req.AttributeNames {
		sys |= systemAttributeBit(name)
	}
	for _, name := range req.MessageSystemAttributeNames {
		sys |= systemAttributeBit(name)
	}
	filter := newAttrFilter(req.MessageAttributeNames)

	var buf [10]delivery
	got, err := s.receive(r.Context(), q, n, vt, wait, buf[:0])
	if err != nil {
		return err
	}
	w.open()
	if len(got) > 0 {
		w.key("Messages")
		w.openArray()
		for i := range got {
			writeMessage(w, &got[i], sys, &filter)
		}
		w.closeArray()
	}
	w.close()
	return nil
}

// receive takes up to n messages from q, hiding them for vt seconds (the
// queue's VisibilityTimeout when vt < 0). With nothing to take it long-polls
// for wait seconds (the queue's ReceiveMessageWaitTimeSeconds when wait < 0):
// it sleeps until a send, delete or visibility change signals the queue or a
// clock timer reaches the next hidden message's deadline, and returns as soon
// as it has at least one message. It never spins.
func (s *Server) receive(ctx context.Context, q *queue, n, vt, wait int, out []delivery) ([]delivery, *apiError) {
	var pollTimer *clock.Timer
	defer func() {
		if pollTimer != nil {
			pollTimer.Stop()
		}
	}()
	var pollEnd <-chan time.Time
	var pollDeadline time.Time
	final := false // the wait is over: look once more, then return
	for {
		now := s.clock.Now()
		q.mu.Lock()
		if q.deleted {
			q.mu.Unlock()
			return nil, errQueueDoesNotExist()
		}
		q.advance(now)
		vis := vt
		if vis < 0 {
			vis = q.cfg.visibilityTimeout
		}
		maxReceive := 0
		var dlq *queue
		if p := q.cfg.redrive; p != nil {
			// Without its dead-letter queue a redrive policy has no effect.
			if dlq = s.queueByARN(p.deadLetterTargetArn); dlq != nil {
				maxReceive = p.maxReceiveCount
			}
		}
		var moved []*message
		out, moved = q.take(n, vis, maxReceive, now, out[:0])
		if len(out) > 0 || len(moved) > 0 {
			q.mu.Unlock()
			if len(moved) > 0 {
				s.moveToDLQ(q, dlq, moved, now)
			}
			if len(out) > 0 {
				return out, nil
			}
			continue // only moved messages: look again at once
		}
		if wait < 0 {
			wait = q.cfg.waitTime
		}
		if wait == 0 || final {
			q.mu.Unlock()
			return nil, nil
		}
		if pollDeadline.IsZero() {
			pollDeadline = now.Add(time.Duration(wait) * time.Second)
		}
		ch := q.waiter()
		next, hasNext := q.nextDeadline()
		q.waits++
		q.mu.Unlock()

		// Timers are armed for absolute deadlines with Until taken just
		// before arming, so a clock.Advance since the lock was released
		// fires them at once instead of being missed.
		if pollTimer == nil {
			pollTimer = s.clock.NewTimer(s.clock.Until(pollDeadline))
			pollEnd = pollTimer.C
		}
		var nextTimer *clock.Timer
		var nextC <-chan time.Time
		if hasNext {
			nextTimer = s.clock.NewTimer(s.clock.Until(next))
			nextC = nextTimer.C
		}
		stop := false
		select {
		case <-ch:
		case <-nextC:
		case <-pollEnd:
			// A clock jump may end the wait and reveal a message at once;
			// SQS answers with what is available when the wait ends.
			final = true
		case <-ctx.Done():
			stop = true
		case <-s.done:
			stop = true
		}
		if nextTimer != nil {
			nextTimer.Stop()
		}
		if stop {
			return nil, nil
		}
	}
}

// writeMessage writes one received message with the system attributes in
// sys and the message attributes filter selects. MD5OfMessageAttributes
// covers exactly the attributes returned, as SQS computes it.
func writeMessage(w *jsonWriter, d *delivery, sys uint16, filter *attrFilter) {
	m := d.m
	w.open()
	w.strField("MessageId", m.id)
	w.strField("ReceiptHandle", d.handle)
	w.strField("MD5OfBody", m.md5Body)
	w.strField("Body", m.body)
	if sys != 0 {
		w.key("Attributes")
		w.open()
		if sys&sysSenderID != 0 {
			w.strField("SenderId", m.senderID)
		}
		if sys&sysSentTimestamp != 0 {
			w.intStrField("SentTimestamp", m.sentAt)
		}
		if sys&sysApproximateReceiveCount != 0 {
			w.intStrField("ApproximateReceiveCount", int64(d.receiveCount))
		}
		if sys&sysApproximateFirstReceiveTimestamp != 0 {
			w.intStrField("ApproximateFirstReceiveTimestamp", d.firstReceive)
		}
		if sys&sysSequenceNumber != 0 && m.seqNumber != "" {
			w.strField("SequenceNumber", m.seqNumber)
		}
		if sys&sysMessageDeduplicationID != 0 && m.dedupID != "" {
			w.strField("MessageDeduplicationId", m.dedupID)
		}
		if sys&sysMessageGroupID != 0 && m.groupID != "" {
			w.strField("MessageGroupId", m.groupID)
		}
		if sys&sysAWSTraceHeader != 0 && m.hasTrace {
			w.strField("AWSTraceHeader", m.traceHeader)
		}
		if sys&sysDeadLetterQueueSourceArn != 0 && m.dlqSource != "" {
			w.strField("DeadLetterQueueSourceArn", m.dlqSource)
		}
		w.close()
	}
	if len(m.attrs) > 0 && !filter.empty() {
		selected := m.attrs
		md5sum := m.md5Attrs
		if !filter.all {
			selected = nil
			for _, a := range m.attrs {
				if filter.match(a.name) {
					selected = append(selected, a)
				}
			}
			md5sum = attributesMD5(selected)
		}
		if len(selected) > 0 {
			w.strField("MD5OfMessageAttributes", md5sum)
			w.key("MessageAttributes")
			w.open()
			for i := range selected {
				a := &selected[i]
				w.key(a.name)
				w.open()
				w.strField("DataType", a.dataType)
				if a.binary {
					w.bytesField("BinaryValue", a.bin)
				} else {
					w.strField("StringValue", a.str)
				}
				w.close()
			}
			w.close()
		}
	}
	w.close()
}
