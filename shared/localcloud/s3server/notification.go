package s3server

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rclone/gofakes3"
)

// QueueSender delivers bucket notifications to queues of the local SQS.
type QueueSender interface {
	SendToARN(ctx context.Context, queueARN, body string) error
	HasQueueARN(queueARN string) bool
}

// NotificationConfiguration is the document of
// PUT/GET /{bucket}?notification. Only queue destinations exist in the local
// cloud; topic and Lambda destinations are refused as AWS refuses a
// destination it cannot validate.
type NotificationConfiguration struct {
	XMLName                    xml.Name             `xml:"NotificationConfiguration"`
	Xmlns                      string               `xml:"xmlns,attr,omitempty"`
	QueueConfigurations        []QueueConfiguration `xml:"QueueConfiguration"`
	TopicConfigurations        []rawDestination     `xml:"TopicConfiguration"`
	CloudFunctionConfiguration []rawDestination     `xml:"CloudFunctionConfiguration"`
	EventBridgeConfiguration   *struct{}            `xml:"EventBridgeConfiguration"`
}

type rawDestination struct {
	ID string `xml:"Id"`
}

// QueueConfiguration sends the named events to a queue.
type QueueConfiguration struct {
	ID     string   `xml:"Id,omitempty"`
	Queue  string   `xml:"Queue"`
	Events []string `xml:"Event"`
	Filter *Filter  `xml:"Filter,omitempty"`
}

// Filter limits a configuration to keys with a prefix and/or suffix.
type Filter struct {
	S3Key struct {
		FilterRules []FilterRule `xml:"FilterRule"`
	} `xml:"S3Key"`
}

// FilterRule is one prefix or suffix rule.
type FilterRule struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

// createdEvents are the event types this local S3 emits.
var createdEvents = map[string]bool{
	"s3:ObjectCreated:*":                       true,
	"s3:ObjectCreated:Put":                     true,
	"s3:ObjectCreated:Post":                    true,
	"s3:ObjectCreated:Copy":                    true,
	"s3:ObjectCreated:CompleteMultipartUpload": true,
}

// validate checks the configuration as S3 does before saving it.
func (c *NotificationConfiguration) validate(queues QueueSender) error {
	if len(c.TopicConfigurations) > 0 || len(c.CloudFunctionConfiguration) > 0 {
		return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "Unable to validate the following destination configurations: the local cloud has only SQS destinations")
	}
	if c.EventBridgeConfiguration != nil {
		return gofakes3.ErrorMessage(gofakes3.ErrNotImplemented, "EventBridgeConfiguration is not supported by the local cloud")
	}
	ids := map[string]bool{}
	for i := range c.QueueConfigurations {
		qc := &c.QueueConfigurations[i]
		if qc.ID == "" {
			qc.ID = fmt.Sprintf("notification-%d", i+1)
		}
		if ids[qc.ID] {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "Same ID used for multiple configurations: %s", qc.ID)
		}
		ids[qc.ID] = true
		if len(qc.Events) == 0 {
			return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "A configuration must name at least one event")
		}
		for _, e := range qc.Events {
			if !createdEvents[e] {
				if strings.HasPrefix(e, "s3:") {
					return gofakes3.ErrorMessagef(gofakes3.ErrNotImplemented, "The event %q is not emitted by the local cloud; only s3:ObjectCreated:* events are", e)
				}
				return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "The event is not supported for notifications: %s", e)
			}
		}
		if qc.Filter != nil {
			seen := map[string]bool{}
			for _, r := range qc.Filter.S3Key.FilterRules {
				name := strings.ToLower(r.Name)
				if name != "prefix" && name != "suffix" {
					return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "filter rule name must be either prefix or suffix, not %q", r.Name)
				}
				if seen[name] {
					return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "Cannot specify more than one %s rule in a filter.", name)
				}
				seen[name] = true
			}
		}
		if !queues.HasQueueARN(qc.Queue) {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "Unable to validate the following destination configurations: %s", qc.Queue)
		}
	}
	return nil
}

// matches reports whether the configuration wants an event of op on key.
func (qc *QueueConfiguration) matches(op writeOp, key string) bool {
	if qc.Filter != nil {
		for _, r := range qc.Filter.S3Key.FilterRules {
			switch strings.ToLower(r.Name) {
			case "prefix":
				if !strings.HasPrefix(key, r.Value) {
					return false
				}
			case "suffix":
				if !strings.HasSuffix(key, r.Value) {
					return false
				}
			}
		}
	}
	for _, e := range qc.Events {
		if e == "s3:ObjectCreated:*" || e == "s3:"+string(op) {
			return true
		}
	}
	return false
}

// eventMessage is the body S3 sends to SQS: a Records array of one record.
type eventMessage struct {
	Records []eventRecord `json:"Records"`
}

type eventRecord struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"`
	EventName         string            `json:"eventName"`
	UserIdentity      principal         `json:"userIdentity"`
	RequestParameters map[string]string `json:"requestParameters"`
	ResponseElements  map[string]string `json:"responseElements"`
	S3                eventS3           `json:"s3"`
}

type principal struct {
	PrincipalID string `json:"principalId"`
}

type eventS3 struct {
	SchemaVersion   string      `json:"s3SchemaVersion"`
	ConfigurationID string      `json:"configurationId"`
	Bucket          eventBucket `json:"bucket"`
	Object          eventObject `json:"object"`
}

type eventBucket struct {
	Name          string    `json:"name"`
	OwnerIdentity principal `json:"ownerIdentity"`
	ARN           string    `json:"arn"`
}

type eventObject struct {
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	ETag      string `json:"eTag"`
	VersionID string `json:"versionId,omitempty"`
	Sequencer string `json:"sequencer"`
}

// eventKey encodes an object key as S3 does in event notifications: like an
// HTML form value (space becomes '+', '+' becomes "%2B"), with '/' kept.
func eventKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.QueryEscape(p)
	}
	return strings.Join(parts, "/")
}

const ownerPrincipal = "A1FEEDPIPELOCAL"

func (s *Server) eventBody(w written, configurationID, sequencer string, at time.Time) string {
	msg := eventMessage{Records: []eventRecord{{
		EventVersion:      "2.1",
		EventSource:       "aws:s3",
		AWSRegion:         s.region,
		EventTime:         at.UTC().Format("2006-01-02T15:04:05.000Z"),
		EventName:         string(w.info.op),
		UserIdentity:      principal{PrincipalID: "AWS:" + ownerPrincipal},
		RequestParameters: map[string]string{"sourceIPAddress": w.info.sourceIP},
		ResponseElements:  map[string]string{"x-amz-request-id": w.info.requestID, "x-amz-id-2": w.info.requestID},
		S3: eventS3{
			SchemaVersion:   "1.0",
			ConfigurationID: configurationID,
			Bucket:          eventBucket{Name: w.bucket, OwnerIdentity: principal{PrincipalID: ownerPrincipal}, ARN: "arn:aws:s3:::" + w.bucket},
			Object:          eventObject{Key: eventKey(w.key), Size: w.size, ETag: w.etag, VersionID: w.versionID, Sequencer: sequencer},
		},
	}}}
	b, _ := json.Marshal(msg) // plain strings and numbers: cannot fail
	return string(b)
}

// testEventBody is the message S3 sends to each destination when a
// notification configuration is saved.
func (s *Server) testEventBody(bucket string, at time.Time, requestID string) string {
	b, _ := json.Marshal(map[string]string{
		"Service":   "Amazon S3",
		"Event":     "s3:TestEvent",
		"Time":      at.UTC().Format("2006-01-02T15:04:05.000Z"),
		"Bucket":    bucket,
		"RequestId": requestID,
		"HostId":    requestID,
	})
	return string(b)
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}
