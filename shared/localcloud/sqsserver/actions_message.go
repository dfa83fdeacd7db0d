package sqsserver

import (
	"net/http"
	"time"
)

type sendMessageRequest struct {
	QueueURL                *string                  `json:"QueueUrl"`
	MessageBody             *string                  `json:"MessageBody"`
	DelaySeconds            *int                     `json:"DelaySeconds"`
	MessageAttributes       map[string]attrValueJSON `json:"MessageAttributes"`
	MessageSystemAttributes map[string]attrValueJSON `json:"MessageSystemAttributes"`
	MessageDeduplicationID  *string                  `json:"MessageDeduplicationId"`
	MessageGroupID          *string                  `json:"MessageGroupId"`
}

type sendBatchEntry struct {
	ID                      *string                  `json:"Id"`
	MessageBody             *string                  `json:"MessageBody"`
	DelaySeconds            *int                     `json:"DelaySeconds"`
	MessageAttributes       map[string]attrValueJSON `json:"MessageAttributes"`
	MessageSystemAttributes map[string]attrValueJSON `json:"MessageSystemAttributes"`
	MessageDeduplicationID  *string                  `json:"MessageDeduplicationId"`
	MessageGroupID          *string                  `json:"MessageGroupId"`
}

type sendBatchRequest struct {
	QueueURL *string          `json:"QueueUrl"`
	Entries  []sendBatchEntry `json:"Entries"`
}

// buildSendInput turns the wire form of a message into a validated
// sendInput.
func buildSendInput(body *string, delay *int, attrs, sys map[string]attrValueJSON, dedupID, groupID *string) (sendInput, *apiError) {
	in := sendInput{delay: delay, dedupID: dedupID, groupID: groupID}
	if body != nil {
		in.body = *body
	}
	var err *apiError
	in.attrs, in.attrsSize, err = parseMessageAttributes(attrs)
	if err != nil {
		return in, err
	}
	in.md5Attrs = attributesMD5(in.attrs)
	in.trace, in.hasTrace, in.md5Sys, err = parseSystemAttributes(sys)
	if err != nil {
		return in, err
	}
	if err := in.validate(); err != nil {
		return in, err
	}
	return in, nil
}

func writeSendResult(w *jsonWriter, res *sendResult) {
	w.strField("MD5OfMessageBody", res.md5Body)
	if res.md5Attrs != "" {
		w.strField("MD5OfMessageAttributes", res.md5Attrs)
	}
	if res.md5Sys != "" {
		w.strField("MD5OfMessageSystemAttributes", res.md5Sys)
	}
	w.strField("MessageId", res.messageID)
	if res.seqNumber != "" {
		w.strField("SequenceNumber", res.seqNumber)
	}
}

// sendMessage implements SendMessage.
func (s *Server) sendMessage(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req sendMessageRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	in, err := buildSendInput(req.MessageBody, req.DelaySeconds, req.MessageAttributes,
		req.MessageSystemAttributes, req.MessageDeduplicationID, req.MessageGroupID)
	if err != nil {
		return err
	}
	in.prepare(q.fifo)
	now := s.clock.Now()
	if err := q.lockAt(now); err != nil {
		return err
	}
	res, err := q.send(&in, s.accountID, now)
	q.mu.Unlock()
	if err != nil {
		return err
	}
	w.open()
	writeSendResult(w, &res)
	w.close()
	return nil
}

// sendMessageBatch implements SendMessageBatch. Request-level problems (ids,
// the 1 MiB total, FIFO parameters missing from any entry) fail the whole
// request, as on SQS; problems of one message fail only its entry.
func (s *Server) sendMessageBatch(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req sendBatchRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	ids := make([]*string, len(req.Entries))
	for i := range req.Entries {
		ids[i] = req.Entries[i].ID
	}
	if err := checkBatchIDs(ids, "SendMessageBatchRequestEntry"); err != nil {
		return err
	}
	inputs := make([]sendInput, len(req.Entries))
	errs := make([]*apiError, len(req.Entries))
	total := 0
	for i := range req.Entries {
		e := &req.Entries[i]
		inputs[i], errs[i] = buildSendInput(e.MessageBody, e.DelaySeconds, e.MessageAttributes,
			e.MessageSystemAttributes, e.MessageDeduplicationID, e.MessageGroupID)
		total += len(inputs[i].body) + inputs[i].attrsSize
		if errs[i] == nil {
			inputs[i].prepare(q.fifo)
		}
	}
	if total > maxBatchSize {
		return newError(codeBatchRequestTooLong, "Batch requests cannot be longer than %d bytes. You have sent %d bytes.", maxBatchSize, total)
	}
	if q.fifo {
		for i := range req.Entries {
			if req.Entries[i].MessageGroupID == nil {
				return newError(codeInvalidParameterValue, "The request must contain the parameter MessageGroupId.")
			}
		}
	}

	results := make([]sendResult, 0, len(req.Entries))
	okIDs := make([]string, 0, len(req.Entries))
	var failed []batchFailure
	now := s.clock.Now()
	if err := q.lockLive(); err != nil {
		return err
	}
	if q.fifo && !q.cfg.contentDedup {
		for i := range req.Entries {
			if req.Entries[i].MessageDeduplicationID == nil {
				q.mu.Unlock()
				return newError(codeInvalidParameterValue, "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
			}
		}
	}
	q.advance(now)
	for i := range inputs {
		id := *req.Entries[i].ID
		if errs[i] != nil {
			failed = append(failed, batchFailure{id, errs[i]})
			continue
		}
		res, err := q.sendEntry(&inputs[i], s.accountID, now, true)
		if err != nil {
			failed = append(failed, batchFailure{id, err})
			continue
		}
		results = append(results, res)
		okIDs = append(okIDs, id)
	}
	q.mu.Unlock()

	writeBatchResult(w, len(results), func(i int) {
		w.strField("Id", okIDs[i])
		writeSendResult(w, &results[i])
	}, failed)
	return nil
}

// resolveHandle decodes a receipt handle of q. It fails with
// ReceiptHandleIsInvalid for a malformed handle or one of another queue.
func (q *queue) resolveHandle(handle *string) (key, nonce uint64, err *apiError) {
	if handle == nil || *handle == "" {
		return 0, 0, errMissing("ReceiptHandle")
	}
	qid, key, nonce, ok := decodeReceiptHandle(*handle)
	if !ok || qid != q.id {
		return 0, 0, errInvalidReceiptHandle(*handle)
	}
	return key, nonce, nil
}

// deleteLocked deletes the message a receipt handle names; q.mu is held.
// Deleting a message that is already gone succeeds, as on SQS.
func (q *queue) deleteLocked(handle *string) *apiError {
	key, nonce, err := q.resolveHandle(handle)
	if err != nil {
		return err
	}
	m := q.msgs[key]
	if m == nil {
		return nil
	}
	return q.deleteMessage(m, nonce, *handle)
}

type deleteMessageRequest struct {
	QueueURL      *string `json:"QueueUrl"`
	ReceiptHandle *string `json:"ReceiptHandle"`
}

// deleteMessage implements DeleteMessage.
func (s *Server) deleteMessage(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req deleteMessageRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	if err := q.lockAt(now); err != nil {
		return err
	}
	err = q.deleteLocked(req.ReceiptHandle)
	q.mu.Unlock()
	if err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

type deleteBatchEntry struct {
	ID            *string `json:"Id"`
	ReceiptHandle *string `json:"ReceiptHandle"`
}

type deleteBatchRequest struct {
	QueueURL *string            `json:"QueueUrl"`
	Entries  []deleteBatchEntry `json:"Entries"`
}

// deleteMessageBatch implements DeleteMessageBatch.
func (s *Server) deleteMessageBatch(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req deleteBatchRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	return runBatch(s, req.QueueURL, req.Entries, "DeleteMessageBatchRequestEntry", w,
		func(e deleteBatchEntry) *string { return e.ID },
		func(q *queue, e deleteBatchEntry, _ time.Time) *apiError { return q.deleteLocked(e.ReceiptHandle) })
}

// runBatch applies one action to each entry of a batch request under the
// queue's lock, after checking the entry ids as SQS does, and writes the
// batch result: per-entry failures do not fail the request.
func runBatch[E any](s *Server, queueURL *string, entries []E, entryName string, w *jsonWriter,
	id func(E) *string, apply func(q *queue, e E, now time.Time) *apiError) *apiError {
	q, err := s.queueFor(queueURL)
	if err != nil {
		return err
	}
	ids := make([]*string, len(entries))
	for i, e := range entries {
		ids[i] = id(e)
	}
	if err := checkBatchIDs(ids, entryName); err != nil {
		return err
	}
	okIDs := make([]string, 0, len(entries))
	var failed []batchFailure
	now := s.clock.Now()
	if err := q.lockAt(now); err != nil {
		return err
	}
	for i, e := range entries {
		if err := apply(q, e, now); err != nil {
			failed = append(failed, batchFailure{*ids[i], err})
			continue
		}
		okIDs = append(okIDs, *ids[i])
	}
	q.mu.Unlock()
	writeBatchResult(w, len(okIDs), func(i int) { w.strField("Id", okIDs[i]) }, failed)
	return nil
}

// changeLocked changes the visibility timeout of the message a receipt
// handle names; q.mu is held.
func (q *queue) changeLocked(handle *string, vt *int, now time.Time) *apiError {
	if vt == nil {
		return errMissing("VisibilityTimeout")
	}
	if *vt < 0 || *vt > maxVisibilityTimeout {
		return errInvalidValue(*vt, "VisibilityTimeout", "VisibilityTimeout must be an integer between 0 and 43200.")
	}
	key, nonce, err := q.resolveHandle(handle)
	if err != nil {
		return err
	}
	m := q.msgs[key]
	if m == nil {
		return errInvalidValue(*handle, "ReceiptHandle", "Message does not exist or is not available for visibility timeout change.")
	}
	return q.changeVisibility(m, nonce, *handle, *vt, now)
}

type changeVisibilityRequest struct {
	QueueURL          *string `json:"QueueUrl"`
	ReceiptHandle     *string `json:"ReceiptHandle"`
	VisibilityTimeout *int    `json:"VisibilityTimeout"`
}

// changeMessageVisibility implements ChangeMessageVisibility.
func (s *Server) changeMessageVisibility(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req changeVisibilityRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	if err := q.lockAt(now); err != nil {
		return err
	}
	err = q.changeLocked(req.ReceiptHandle, req.VisibilityTimeout, now)
	q.mu.Unlock()
	if err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

type changeVisibilityBatchEntry struct {
	ID                *string `json:"Id"`
	ReceiptHandle     *string `json:"ReceiptHandle"`
	VisibilityTimeout *int    `json:"VisibilityTimeout"`
}

type changeVisibilityBatchRequest struct {
	QueueURL *string                      `json:"QueueUrl"`
	Entries  []changeVisibilityBatchEntry `json:"Entries"`
}

// changeMessageVisibilityBatch implements ChangeMessageVisibilityBatch.
func (s *Server) changeMessageVisibilityBatch(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req changeVisibilityBatchRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	return runBatch(s, req.QueueURL, req.Entries, "ChangeMessageVisibilityBatchRequestEntry", w,
		func(e changeVisibilityBatchEntry) *string { return e.ID },
		func(q *queue, e changeVisibilityBatchEntry, now time.Time) *apiError {
			return q.changeLocked(e.ReceiptHandle, e.VisibilityTimeout, now)
		})
}
