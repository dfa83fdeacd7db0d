package sqsserver

import (
	"time"
)

// sendInput is one message to send, from SendMessage, a SendMessageBatch
// entry or SendToARN.
type sendInput struct {
	body      string
	delay     *int
	attrs     []msgAttr
	attrsSize int
	md5Attrs  string
	trace     string
	hasTrace  bool
	md5Sys    string
	groupID   *string
	dedupID   *string

	md5Body     string // filled by validate
	contentHash string // filled by prepare for content-based deduplication
}

// sendResult is what SQS answers for a sent message.
type sendResult struct {
	messageID string
	md5Body   string
	md5Attrs  string
	md5Sys    string
	seqNumber string
}

// validate checks what does not depend on the queue and computes the body
// checksum, outside the queue lock.
func (in *sendInput) validate() *apiError {
	if in.body == "" {
		return errMissing("MessageBody")
	}
	if !validMessageChars(in.body) {
		return newError(codeInvalidMessageContents, invalidCharsMessage)
	}
	if in.delay != nil && (*in.delay < 0 || *in.delay > maxDelaySeconds) {
		return errInvalidValue(*in.delay, "DelaySeconds", "DelaySeconds must be >= 0 and <= 900.")
	}
	if in.groupID != nil && !validFIFOID(*in.groupID) {
		return errInvalidFIFOID(*in.groupID, "MessageGroupId")
	}
	if in.dedupID != nil && !validFIFOID(*in.dedupID) {
		return errInvalidFIFOID(*in.dedupID, "MessageDeduplicationId")
	}
	in.md5Body = md5Hex(in.body)
	return nil
}

// prepare does the queue-type dependent work that needs no lock.
func (in *sendInput) prepare(fifo bool) {
	if fifo && in.dedupID == nil {
		in.contentHash = sha256Hex(in.body)
	}
}

func errTooLarge(limit int, batch bool) *apiError {
	if batch {
		return newError(codeInvalidParameterValue, "One or more parameters cannot be validated. Reason: Message must be shorter than %d bytes.", limit)
	}
	return newError(codeInvalidParameterValue, "One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", limit)
}

// checkFIFOParams checks the parameters a FIFO queue requires or forbids.
func (q *queue) checkFIFOParams(in *sendInput) *apiError {
	if !q.fifo {
		if in.dedupID != nil {
			return errInvalidValue(*in.dedupID, "MessageDeduplicationId", "The request includes a parameter that is not valid for this queue type.")
		}
		return nil
	}
	if in.delay != nil && *in.delay != 0 {
		return errInvalidValue(*in.delay, "DelaySeconds", "The request include parameter that is not valid for this queue type.")
	}
	if in.groupID == nil {
		return errMissing("MessageGroupId")
	}
	if in.dedupID == nil && !q.cfg.contentDedup {
		return newError(codeInvalidParameterValue, "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
	}
	return nil
}

// send stores a validated and prepared message; the caller holds q.mu and
// has called advance.
//
// On a FIFO queue a send whose deduplication id was seen in the last five
// minutes is accepted but not stored, and answers the MessageId and
// SequenceNumber of the original message, as SQS does; this holds even if
// the original was deleted meanwhile.
func (q *queue) send(in *sendInput, senderID string, now time.Time) (sendResult, *apiError) {
	return q.sendEntry(in, senderID, now, false)
}

func (q *queue) sendEntry(in *sendInput, senderID string, now time.Time, batch bool) (sendResult, *apiError) {
	if len(in.body)+in.attrsSize > q.cfg.maxMessageSize {
		return sendResult{}, errTooLarge(q.cfg.maxMessageSize, batch)
	}
	if err := q.checkFIFOParams(in); err != nil {
		return sendResult{}, err
	}
	res := sendResult{md5Body: in.md5Body, md5Attrs: in.md5Attrs, md5Sys: in.md5Sys}
	m := &message{
		body:        in.body,
		md5Body:     in.md5Body,
		attrs:       in.attrs,
		md5Attrs:    in.md5Attrs,
		traceHeader: in.trace,
		hasTrace:    in.hasTrace,
		senderID:    senderID,
		sentAt:      now.UnixMilli(),
		enqueuedAt:  now,
	}
	if in.groupID != nil {
		m.groupID = *in.groupID
	}
	delay := q.cfg.delay
	if q.fifo {
		if in.dedupID != nil {
			m.dedupID = *in.dedupID
		} else {
			m.dedupID = in.contentHash
		}
		key := q.dedupKey(m.groupID, m.dedupID)
		if e, dup := q.dedup.lookup(key, now); dup {
			res.messageID = e.messageID
			res.seqNumber = e.seqNumber
			return res, nil
		}
		m.id = newMessageID()
		m.seqNumber = q.nextSequenceNumber()
		q.dedup.add(key, m.id, m.seqNumber, now)
	} else {
		m.id = newMessageID()
		if in.delay != nil {
			delay = *in.delay
		}
	}
	q.store(m, now, delay)
	res.messageID = m.id
	res.seqNumber = m.seqNumber
	return res, nil
}
