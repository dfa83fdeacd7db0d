package sqsserver

import (
	"encoding/base64"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// validQueueName checks a queue name as SQS does: 1 to 80 characters of
// [A-Za-z0-9_-], where a FIFO queue's name ends in ".fifo" (which counts
// toward the 80).
func validQueueName(name string, fifo bool) *apiError {
	base := name
	if fifo {
		var ok bool
		base, ok = strings.CutSuffix(name, ".fifo")
		if !ok || base == "" || len(name) > 80 || !queueNameChars(base) {
			return newError(codeInvalidParameterValue,
				"The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.")
		}
		return nil
	}
	if base == "" || len(base) > 80 || !queueNameChars(base) {
		return newError(codeInvalidParameterValue, "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
	}
	return nil
}

func queueNameChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

const maxTags = 50

func validateTags(existing, add map[string]string) *apiError {
	n := len(existing)
	for k, v := range add {
		if k == "" || len(k) > 128 {
			return newError(codeInvalidParameterValue, "Tag keys must be between 1 and 128 characters in length.")
		}
		if len(v) > 256 {
			return newError(codeInvalidParameterValue, "Tag values must be less than 256 characters in length.")
		}
		if _, ok := existing[k]; !ok {
			n++
		}
	}
	if n > maxTags {
		return newError(codeInvalidParameterValue, "Too many tags added for queue. A queue can have at most %d tags.", maxTags)
	}
	return nil
}

type createQueueRequest struct {
	QueueName  *string           `json:"QueueName"`
	Attributes map[string]string `json:"Attributes"`
	Tags       map[string]string `json:"tags"`
}

// createQueue implements CreateQueue. As on SQS it is idempotent: creating
// an existing queue returns its URL when every given attribute equals the
// queue's, and fails with QueueNameExists when one differs.
func (s *Server) createQueue(r *http.Request, body []byte, w *jsonWriter) *apiError {
	var req createQueueRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	if req.QueueName == nil || *req.QueueName == "" {
		return errMissing("QueueName")
	}
	name := *req.QueueName
	fifo := strings.EqualFold(req.Attributes[attrFifoQueue], "true")
	if err := validQueueName(name, fifo); err != nil {
		return err
	}
	cfg := defaultConfig(fifo)
	if err := applyAttributes(&cfg, req.Attributes, fifo, true, s.queueTypes); err != nil {
		return err
	}
	if err := validateTags(nil, req.Tags); err != nil {
		return err
	}

	s.mu.Lock()
	q := s.lookup(s.accountID, name)
	if q != nil {
		s.mu.Unlock()
		if err := q.sameAttributes(&cfg, fifo, req.Attributes); err != nil {
			return err
		}
	} else {
		tags := make(map[string]string, len(req.Tags))
		for k, v := range req.Tags {
			tags[k] = v
		}
		q = newQueue(s, s.nextQueueID.Add(1), s.accountID, name, fifo, cfg, tags, s.clock.Now())
		s.queues.Store(queueKey{s.accountID, name}, q)
		s.mu.Unlock()
		s.log.Debug("sqs: created queue", "arn", q.arn)
	}
	w.open()
	w.strField("QueueUrl", queueURL(r, q))
	w.close()
	return nil
}

// sameAttributes reports QueueNameExists unless every attribute named in
// given has the same value on q as in want.
func (q *queue) sameAttributes(want *queueConfig, fifo bool, given map[string]string) *apiError {
	names := make([]string, 0, len(given))
	for k := range given {
		names = append(names, k)
	}
	sort.Strings(names)
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, name := range names {
		wv, _ := want.attrString(name, fifo)
		hv, _ := q.cfg.attrString(name, q.fifo)
		if wv != hv {
			return newError(codeQueueNameExists, "A queue already exists with the same name and a different value for attribute %s", name)
		}
	}
	return nil
}

type getQueueURLRequest struct {
	QueueName              *string `json:"QueueName"`
	QueueOwnerAWSAccountID *string `json:"QueueOwnerAWSAccountId"`
}

func (s *Server) getQueueURL(r *http.Request, body []byte, w *jsonWriter) *apiError {
	var req getQueueURLRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	if req.QueueName == nil || *req.QueueName == "" {
		return errMissing("QueueName")
	}
	account := s.accountID
	if req.QueueOwnerAWSAccountID != nil && *req.QueueOwnerAWSAccountID != "" {
		account = *req.QueueOwnerAWSAccountID
	}
	q := s.lookup(account, *req.QueueName)
	if q == nil {
		return errQueueDoesNotExist()
	}
	w.open()
	w.strField("QueueUrl", queueURL(r, q))
	w.close()
	return nil
}

type listQueuesRequest struct {
	QueueNamePrefix *string `json:"QueueNamePrefix"`
	MaxResults      *int    `json:"MaxResults"`
	NextToken       *string `json:"NextToken"`
}

// paginate applies MaxResults and NextToken to queues sorted by name. As on
// SQS, a page holds at most 1000 queues and NextToken is only returned when
// MaxResults was given.
func paginate(queues []*queue, maxResults *int, nextToken *string) ([]*queue, string, *apiError) {
	limit := 1000
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > 1000 {
			return nil, "", errInvalidValue(*maxResults, "MaxResults", "MaxResults must be an integer between 1 and 1000.")
		}
		limit = *maxResults
	}
	if nextToken != nil && *nextToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(*nextToken)
		if err != nil {
			return nil, "", newError(codeInvalidParameterValue, "Invalid NextToken value.")
		}
		i := sort.Search(len(queues), func(i int) bool { return queues[i].name > string(after) })
		queues = queues[i:]
	}
	token := ""
	if len(queues) > limit {
		queues = queues[:limit]
		if maxResults != nil {
			token = base64.RawURLEncoding.EncodeToString([]byte(queues[limit-1].name))
		}
	}
	return queues, token, nil
}

func (s *Server) listQueues(r *http.Request, body []byte, w *jsonWriter) *apiError {
	var req listQueuesRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	prefix := ""
	if req.QueueNamePrefix != nil {
		prefix = *req.QueueNamePrefix
	}
	page, token, err := paginate(s.sortedQueues(s.accountID, prefix), req.MaxResults, req.NextToken)
	if err != nil {
		return err
	}
	writeURLList(r, w, "QueueUrls", page, token)
	return nil
}

func writeURLList(r *http.Request, w *jsonWriter, key string, page []*queue, token string) {
	w.open()
	if len(page) > 0 {
		w.key(key)
		w.openArray()
		for _, q := range page {
			w.str(queueURL(r, q))
		}
		w.closeArray()
	}
	if token != "" {
		w.strField("NextToken", token)
	}
	w.close()
}

type queueURLRequest struct {
	QueueURL *string `json:"QueueUrl"`
}

// deleteQueue implements DeleteQueue. Long polls on the queue end with
// QueueDoesNotExist.
func (s *Server) deleteQueue(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req queueURLRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if v, ok := s.queues.Load(queueKey{q.account, q.name}); ok && v == q {
		s.queues.Delete(queueKey{q.account, q.name})
	}
	s.mu.Unlock()
	q.mu.Lock()
	q.deleted = true
	q.purge()
	q.signal()
	q.mu.Unlock()
	s.log.Debug("sqs: deleted queue", "arn", q.arn)
	writeEmpty(w)
	return nil
}

type getQueueAttributesRequest struct {
	QueueURL       *string  `json:"QueueUrl"`
	AttributeNames []string `json:"AttributeNames"`
}

// allQueueAttributes lists the attributes "All" stands for.
func allQueueAttributes() []string {
	return []string{
		attrApproximateNumberOfMessages, attrApproximateNumberOfMessagesDelayed,
		attrApproximateNumberOfMessagesNotVisible, attrContentBasedDeduplication,
		attrCreatedTimestamp, attrDeduplicationScope, attrDelaySeconds, attrFifoQueue,
		attrFifoThroughputLimit, attrKmsDataKeyReusePeriodSeconds, attrKmsMasterKeyID,
		attrLastModifiedTimestamp, attrMaximumMessageSize, attrMessageRetentionPeriod,
		attrPolicy, attrQueueArn, attrReceiveMessageWaitTimeSeconds, attrRedriveAllowPolicy,
		attrRedrivePolicy, attrSqsManagedSseEnabled, attrVisibilityTimeout,
	}
}

func isQueueAttribute(name string) bool {
	for _, a := range allQueueAttributes() {
		if a == name {
			return true
		}
	}
	return false
}

// getQueueAttributes implements GetQueueAttributes, including the
// approximate message counts (visible, in flight, delayed) at this moment.
func (s *Server) getQueueAttributes(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req getQueueAttributesRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	var names []string
	for _, n := range req.AttributeNames {
		if n == attrAll {
			names = allQueueAttributes()
			break
		}
		if !isQueueAttribute(n) {
			return newError(codeInvalidAttributeName, "Unknown Attribute %s.", n)
		}
		names = append(names, n)
	}
	now := s.clock.Now()
	if err := q.lockAt(now); err != nil {
		return err
	}
	values := make(map[string]string, len(names))
	for _, n := range names {
		switch n {
		case attrApproximateNumberOfMessages:
			values[n] = strconv.Itoa(q.nReady)
		case attrApproximateNumberOfMessagesNotVisible:
			values[n] = strconv.Itoa(q.nInflight)
		case attrApproximateNumberOfMessagesDelayed:
			values[n] = strconv.Itoa(q.nDelayed)
		case attrCreatedTimestamp:
			values[n] = strconv.FormatInt(q.created.Unix(), 10)
		case attrLastModifiedTimestamp:
			values[n] = strconv.FormatInt(q.lastModified.Unix(), 10)
		case attrQueueArn:
			values[n] = q.arn
		default:
			if v, ok := q.cfg.attrString(n, q.fifo); ok {
				values[n] = v
			}
		}
	}
	q.mu.Unlock()
	writeStringMap(w, "Attributes", values)
	return nil
}

// writeStringMap writes {"key": {...}} with sorted keys, or {} when m is
// empty.
func writeStringMap(w *jsonWriter, key string, m map[string]string) {
	w.open()
	if len(m) > 0 {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.key(key)
		w.open()
		for _, k := range keys {
			w.strField(k, m[k])
		}
		w.close()
	}
	w.close()
}

type setQueueAttributesRequest struct {
	QueueURL   *string           `json:"QueueUrl"`
	Attributes map[string]string `json:"Attributes"`
}

// setQueueAttributes implements SetQueueAttributes. All attributes are
// validated before any is applied, with the ranges SQS enforces.
func (s *Server) setQueueAttributes(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req setQueueAttributesRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	if req.Attributes == nil {
		return errMissing("Attributes")
	}
	now := s.clock.Now()
	if err := q.lockAt(now); err != nil {
		return err
	}
	defer q.mu.Unlock()
	cfg := q.cfg
	if err := applyAttributes(&cfg, req.Attributes, q.fifo, false, s.queueTypes); err != nil {
		return err
	}
	if cfg.delay != q.cfg.delay {
		q.setDelay(cfg.delay)
	}
	q.cfg = cfg
	q.lastModified = now
	// A shorter retention period or delay may take effect at once.
	q.advance(now)
	writeEmpty(w)
	return nil
}

// purgeQueue implements PurgeQueue: every message is deleted at once.
func (s *Server) purgeQueue(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req queueURLRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	if err := q.lockLive(); err != nil {
		return err
	}
	defer q.mu.Unlock()
	q.purge()
	writeEmpty(w)
	return nil
}

func (s *Server) listQueueTags(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req queueURLRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	q.mu.Lock()
	tags := make(map[string]string, len(q.tags))
	for k, v := range q.tags {
		tags[k] = v
	}
	q.mu.Unlock()
	writeStringMap(w, "Tags", tags)
	return nil
}

type tagQueueRequest struct {
	QueueURL *string           `json:"QueueUrl"`
	Tags     map[string]string `json:"Tags"`
}

func (s *Server) tagQueue(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req tagQueueRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	if len(req.Tags) == 0 {
		return errMissing("Tags")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := validateTags(q.tags, req.Tags); err != nil {
		return err
	}
	for k, v := range req.Tags {
		q.tags[k] = v
	}
	writeEmpty(w)
	return nil
}

type untagQueueRequest struct {
	QueueURL *string  `json:"QueueUrl"`
	TagKeys  []string `json:"TagKeys"`
}

func (s *Server) untagQueue(_ *http.Request, body []byte, w *jsonWriter) *apiError {
	var req untagQueueRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	q, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	if len(req.TagKeys) == 0 {
		return errMissing("TagKeys")
	}
	q.mu.Lock()
	for _, k := range req.TagKeys {
		delete(q.tags, k)
	}
	q.mu.Unlock()
	writeEmpty(w)
	return nil
}

type listDeadLetterSourceQueuesRequest struct {
	QueueURL   *string `json:"QueueUrl"`
	MaxResults *int    `json:"MaxResults"`
	NextToken  *string `json:"NextToken"`
}

// listDeadLetterSourceQueues lists the queues whose redrive policy targets
// the given queue.
func (s *Server) listDeadLetterSourceQueues(r *http.Request, body []byte, w *jsonWriter) *apiError {
	var req listDeadLetterSourceQueuesRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	dlq, err := s.queueFor(req.QueueURL)
	if err != nil {
		return err
	}
	var sources []*queue
	for _, q := range s.sortedQueues(dlq.account, "") {
		q.mu.Lock()
		if q.cfg.redrive != nil && q.cfg.redrive.deadLetterTargetArn == dlq.arn {
			sources = append(sources, q)
		}
		q.mu.Unlock()
	}
	page, token, err := paginate(sources, req.MaxResults, req.NextToken)
	if err != nil {
		return err
	}
	w.open()
	w.key("queueUrls")
	w.openArray()
	for _, q := range page {
		w.str(queueURL(r, q))
	}
	w.closeArray()
	if token != "" {
		w.strField("NextToken", token)
	}
	w.close()
	return nil
}
