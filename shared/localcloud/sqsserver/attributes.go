package sqsserver

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
)

// Queue attribute names.
const (
	attrAll                                   = "All"
	attrPolicy                                = "Policy"
	attrVisibilityTimeout                     = "VisibilityTimeout"
	attrMaximumMessageSize                    = "MaximumMessageSize"
	attrMessageRetentionPeriod                = "MessageRetentionPeriod"
	attrApproximateNumberOfMessages           = "ApproximateNumberOfMessages"
	attrApproximateNumberOfMessagesNotVisible = "ApproximateNumberOfMessagesNotVisible"
	attrApproximateNumberOfMessagesDelayed    = "ApproximateNumberOfMessagesDelayed"
	attrCreatedTimestamp                      = "CreatedTimestamp"
	attrLastModifiedTimestamp                 = "LastModifiedTimestamp"
	attrQueueArn                              = "QueueArn"
	attrDelaySeconds                          = "DelaySeconds"
	attrReceiveMessageWaitTimeSeconds         = "ReceiveMessageWaitTimeSeconds"
	attrRedrivePolicy                         = "RedrivePolicy"
	attrFifoQueue                             = "FifoQueue"
	attrContentBasedDeduplication             = "ContentBasedDeduplication"
	attrKmsMasterKeyID                        = "KmsMasterKeyId"
	attrKmsDataKeyReusePeriodSeconds          = "KmsDataKeyReusePeriodSeconds"
	attrDeduplicationScope                    = "DeduplicationScope"
	attrFifoThroughputLimit                   = "FifoThroughputLimit"
	attrRedriveAllowPolicy                    = "RedriveAllowPolicy"
	attrSqsManagedSseEnabled                  = "SqsManagedSseEnabled"
)

// Limits and defaults of SQS.
const (
	defaultVisibilityTimeout = 30
	maxVisibilityTimeout     = 43200 // 12 hours
	defaultRetention         = 345600
	minRetention             = 60
	maxRetention             = 1209600
	maxDelaySeconds          = 900
	defaultMaxMessageSize    = 1048576
	minMaxMessageSize        = 1024
	maxWaitTimeSeconds       = 20
	defaultKmsReuse          = 300
	maxReceiveCountLimit     = 1000
	maxBatchEntries          = 10
	maxBatchSize             = 1048576
	dedupInterval            = 300 // seconds
)

// redrivePolicy is a parsed RedrivePolicy attribute.
type redrivePolicy struct {
	deadLetterTargetArn string
	maxReceiveCount     int
}

// queueConfig holds the settable attributes of a queue.
type queueConfig struct {
	visibilityTimeout  int
	retention          int
	delay              int
	maxMessageSize     int
	waitTime           int
	redrive            *redrivePolicy
	contentDedup       bool
	dedupScope         string // "queue" or "messageGroup"
	throughputLimit    string // "perQueue" or "perMessageGroupId"
	policy             string
	kmsKeyID           string
	kmsReuse           int
	sseEnabled         bool
	redriveAllowPolicy string
}

func defaultConfig(fifo bool) queueConfig {
	c := queueConfig{
		visibilityTimeout: defaultVisibilityTimeout,
		retention:         defaultRetention,
		maxMessageSize:    defaultMaxMessageSize,
		kmsReuse:          defaultKmsReuse,
		sseEnabled:        true,
	}
	if fifo {
		c.dedupScope = "queue"
		c.throughputLimit = "perQueue"
	}
	return c
}

// attrString returns the value SQS reports for a settable attribute, and
// whether the queue has one.
func (c *queueConfig) attrString(name string, fifo bool) (string, bool) {
	switch name {
	case attrVisibilityTimeout:
		return strconv.Itoa(c.visibilityTimeout), true
	case attrMessageRetentionPeriod:
		return strconv.Itoa(c.retention), true
	case attrDelaySeconds:
		return strconv.Itoa(c.delay), true
	case attrMaximumMessageSize:
		return strconv.Itoa(c.maxMessageSize), true
	case attrReceiveMessageWaitTimeSeconds:
		return strconv.Itoa(c.waitTime), true
	case attrRedrivePolicy:
		if c.redrive == nil {
			return "", false
		}
		return c.redrive.String(), true
	case attrPolicy:
		return c.policy, c.policy != ""
	case attrKmsMasterKeyID:
		return c.kmsKeyID, c.kmsKeyID != ""
	case attrKmsDataKeyReusePeriodSeconds:
		return strconv.Itoa(c.kmsReuse), c.kmsKeyID != ""
	case attrSqsManagedSseEnabled:
		return strconv.FormatBool(c.sseEnabled), true
	case attrRedriveAllowPolicy:
		return c.redriveAllowPolicy, c.redriveAllowPolicy != ""
	case attrFifoQueue:
		return "true", fifo
	case attrContentBasedDeduplication:
		return strconv.FormatBool(c.contentDedup), fifo
	case attrDeduplicationScope:
		return c.dedupScope, fifo
	case attrFifoThroughputLimit:
		return c.throughputLimit, fifo
	}
	return "", false
}

// String renders the policy the way SQS returns it.
func (p *redrivePolicy) String() string {
	var b strings.Builder
	b.WriteString(`{"deadLetterTargetArn":`)
	b.Write(appendJSONString(nil, p.deadLetterTargetArn))
	b.WriteString(`,"maxReceiveCount":`)
	b.WriteString(strconv.Itoa(p.maxReceiveCount))
	b.WriteByte('}')
	return b.String()
}

// queueTypeInfo tells applyAttributes what it needs to know about other
// queues: whether a dead-letter target exists and whether it is FIFO.
type queueTypeInfo func(arn string) (exists, fifo bool)

// applyAttributes validates attrs as SQS does for a queue of the given type
// and applies them to c. It processes names in sorted order so errors are
// deterministic. creating is true for CreateQueue, where FifoQueue is
// accepted.
func applyAttributes(c *queueConfig, attrs map[string]string, fifo, creating bool, lookup queueTypeInfo) *apiError {
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := applyAttribute(c, name, attrs[name], fifo, creating, lookup); err != nil {
			return err
		}
	}
	return nil
}

func applyAttribute(c *queueConfig, name, value string, fifo, creating bool, lookup queueTypeInfo) *apiError {
	unknown := func() *apiError { return newError(codeInvalidAttributeName, "Unknown Attribute %s.", name) }
	invalid := func() *apiError {
		return newError(codeInvalidAttributeValue, "Invalid value for the parameter %s.", name)
	}
	intIn := func(lo, hi int) (int, *apiError) {
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil || n < lo || n > hi {
			return 0, invalid()
		}
		return n, nil
	}
	boolVal := func() (bool, *apiError) {
		switch strings.ToLower(value) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, invalid()
	}
	var err *apiError
	switch name {
	case attrVisibilityTimeout:
		c.visibilityTimeout, err = intIn(0, maxVisibilityTimeout)
	case attrMessageRetentionPeriod:
		c.retention, err = intIn(minRetention, maxRetention)
	case attrDelaySeconds:
		c.delay, err = intIn(0, maxDelaySeconds)
	case attrMaximumMessageSize:
		c.maxMessageSize, err = intIn(minMaxMessageSize, defaultMaxMessageSize)
	case attrReceiveMessageWaitTimeSeconds:
		c.waitTime, err = intIn(0, maxWaitTimeSeconds)
	case attrRedrivePolicy:
		if value == "" {
			c.redrive = nil
			return nil
		}
		p, perr := parseRedrivePolicy(value, fifo, lookup)
		if perr != nil {
			return perr
		}
		c.redrive = p
	case attrPolicy:
		if value != "" && !json.Valid([]byte(value)) {
			return invalid()
		}
		c.policy = value
	case attrKmsMasterKeyID:
		c.kmsKeyID = value
	case attrKmsDataKeyReusePeriodSeconds:
		c.kmsReuse, err = intIn(60, 86400)
	case attrSqsManagedSseEnabled:
		c.sseEnabled, err = boolVal()
	case attrRedriveAllowPolicy:
		if value != "" && !json.Valid([]byte(value)) {
			return invalid()
		}
		c.redriveAllowPolicy = value
	case attrFifoQueue:
		if !fifo {
			return unknown()
		}
		v, berr := boolVal()
		if berr != nil || !v {
			if creating {
				return invalid()
			}
			return newError(codeInvalidAttributeValue,
				"Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported.")
		}
	case attrContentBasedDeduplication:
		if !fifo {
			return unknown()
		}
		c.contentDedup, err = boolVal()
	case attrDeduplicationScope:
		if !fifo {
			return newError(codeInvalidAttributeName, "You can specify the %s only when FifoQueue is set to true.", name)
		}
		if value != "queue" && value != "messageGroup" {
			return invalid()
		}
		c.dedupScope = value
	case attrFifoThroughputLimit:
		if !fifo {
			return newError(codeInvalidAttributeName, "You can specify the %s only when FifoQueue is set to true.", name)
		}
		if value != "perQueue" && value != "perMessageGroupId" {
			return invalid()
		}
		c.throughputLimit = value
	default:
		return unknown()
	}
	return err
}

// parseRedrivePolicy validates a RedrivePolicy: a JSON map with
// deadLetterTargetArn naming an existing queue of the same type and
// maxReceiveCount between 1 and 1000 (a number or a numeric string, as SQS
// accepts both).
func parseRedrivePolicy(value string, fifo bool, lookup queueTypeInfo) (*redrivePolicy, *apiError) {
	bad := func(reason string) *apiError { return errInvalidValue(value, attrRedrivePolicy, reason) }
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader([]byte(value)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, bad("Redrive policy is not a valid JSON map.")
	}
	var p redrivePolicy
	arnRaw, ok := raw["deadLetterTargetArn"]
	if !ok {
		return nil, bad("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
	}
	if err := json.Unmarshal(arnRaw, &p.deadLetterTargetArn); err != nil || p.deadLetterTargetArn == "" {
		return nil, bad("Invalid value for deadLetterTargetArn.")
	}
	countRaw, ok := raw["maxReceiveCount"]
	if !ok {
		return nil, bad("Redrive policy does not contain mandatory attribute: maxReceiveCount.")
	}
	countStr := strings.Trim(string(countRaw), `"`)
	n, err := strconv.Atoi(countStr)
	if err != nil || n < 1 || n > maxReceiveCountLimit {
		return nil, bad("Invalid value for maxReceiveCount: " + countStr + ", valid values are from 1 to 1000 both inclusive.")
	}
	p.maxReceiveCount = n
	for k := range raw {
		if k != "deadLetterTargetArn" && k != "maxReceiveCount" {
			return nil, bad("Only following attributes are supported: [deadLetterTargetArn, maxReceiveCount].")
		}
	}
	exists, dlqFIFO := lookup(p.deadLetterTargetArn)
	if !exists {
		return nil, bad("Dead letter target does not exist.")
	}
	if dlqFIFO != fifo {
		return nil, bad("Dead-letter queue must be same type of queue as the source.")
	}
	return &p, nil
}
