package awstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The notification feedpipe configures: ObjectCreated events of incoming/
// uploads go to the copy queue.
const (
	notifyID     = "copy-queue"
	notifyPrefix = "incoming/"
	notifySuffix = ".ndjson"
)

// s3Event is the body S3 sends to a queue: event records, or the
// s3:TestEvent sent when a configuration is saved.
type s3Event struct {
	Records []s3EventRecord `json:"Records"`

	Service string `json:"Service"`
	Event   string `json:"Event"`
	Bucket  string `json:"Bucket"`
}

type s3EventRecord struct {
	EventVersion string `json:"eventVersion"`
	EventSource  string `json:"eventSource"`
	AWSRegion    string `json:"awsRegion"`
	EventTime    string `json:"eventTime"`
	EventName    string `json:"eventName"`
	S3           struct {
		SchemaVersion   string `json:"s3SchemaVersion"`
		ConfigurationID string `json:"configurationId"`
		Bucket          struct {
			Name string `json:"name"`
			ARN  string `json:"arn"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			ETag      string `json:"eTag"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

// notifyingBucket creates a bucket whose ObjectCreated events under
// incoming/*.ndjson go to a new standard queue, as the copy queue is wired.
// It returns the bucket and the queue's URL and ARN.
func (s *suite) notifyingBucket(t *testing.T) (bucket, queueURL, queueARN string) {
	t.Helper()
	bucket = s.bucket(t)
	// On AWS the queue must let S3 send to it.
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::%s"}}}]}`, bucket)
	queueURL, queueARN = s.queue(t, false, map[string]string{"Policy": policy})
	_, err := s.S3.PutBucketNotificationConfiguration(t.Context(), &s3.PutBucketNotificationConfigurationInput{
		Bucket: &bucket,
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			Id:       aws.String(notifyID),
			QueueArn: &queueARN,
			Events:   []types.Event{"s3:ObjectCreated:*"},
			Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{
				{Name: types.FilterRuleNamePrefix, Value: aws.String(notifyPrefix)},
				{Name: types.FilterRuleNameSuffix, Value: aws.String(notifySuffix)},
			}}},
		}}},
	})
	if err != nil {
		t.Fatalf("PutBucketNotificationConfiguration: %v", err)
	}
	return bucket, queueURL, queueARN
}

func testNotificationConfiguration(t *testing.T, s *suite) {
	b, _, arn := s.notifyingBucket(t)
	out, err := s.S3.GetBucketNotificationConfiguration(t.Context(), &s3.GetBucketNotificationConfigurationInput{Bucket: &b})
	if err != nil {
		t.Fatalf("GetBucketNotificationConfiguration: %v", err)
	}
	if len(out.QueueConfigurations) != 1 {
		t.Fatalf("got %d queue configurations, want 1", len(out.QueueConfigurations))
	}
	qc := out.QueueConfigurations[0]
	if aws.ToString(qc.Id) != notifyID || aws.ToString(qc.QueueArn) != arn || !slices.Equal(qc.Events, []types.Event{"s3:ObjectCreated:*"}) {
		t.Errorf("read back Id %q QueueArn %q Events %q, want %q %q [s3:ObjectCreated:*]", aws.ToString(qc.Id), aws.ToString(qc.QueueArn), qc.Events, notifyID, arn)
	}
	rules := map[string]string{}
	if qc.Filter != nil && qc.Filter.Key != nil {
		for _, r := range qc.Filter.Key.FilterRules {
			rules[strings.ToLower(string(r.Name))] = aws.ToString(r.Value) // S3 answers Prefix/Suffix capitalised
		}
	}
	if rules["prefix"] != notifyPrefix || rules["suffix"] != notifySuffix || len(rules) != 2 {
		t.Errorf("read back filter rules %v, want prefix %s and suffix %s", rules, notifyPrefix, notifySuffix)
	}
	if len(out.TopicConfigurations)+len(out.LambdaFunctionConfigurations) != 0 {
		t.Errorf("read back topic or function configurations that were never set")
	}
}

// events receives messages from a notification queue for up to within,
// deleting them, until stop says it has seen enough.
func (s *suite) events(t *testing.T, queueURL string, within time.Duration, stop func([]s3Event) bool) []s3Event {
	t.Helper()
	var got []s3Event
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && !stop(got) {
		out, err := s.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			var e s3Event
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &e); err != nil {
				t.Errorf("message body is not an S3 event: %v: %q", err, clip([]byte(aws.ToString(m.Body))))
			}
			got = append(got, e)
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(entries) > 0 {
			if _, err := s.SQS.DeleteMessageBatch(t.Context(), &sqs.DeleteMessageBatchInput{QueueUrl: &queueURL, Entries: entries}); err != nil {
				t.Fatalf("DeleteMessageBatch: %v", err)
			}
		}
	}
	return got
}

func isTestEvent(e s3Event) bool { return e.Event == "s3:TestEvent" }

func testNotificationTestEvent(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoS3TestEvent, "NoS3TestEvent")
	b, q, _ := s.notifyingBucket(t)
	got := s.events(t, q, 15*time.Second, func(es []s3Event) bool { return slices.ContainsFunc(es, isTestEvent) })
	i := slices.IndexFunc(got, isTestEvent)
	if i < 0 {
		t.Fatalf("no s3:TestEvent within 15 s of saving the configuration (got %d other messages)", len(got))
	}
	if e := got[i]; e.Service != "Amazon S3" || e.Bucket != b {
		t.Errorf("s3:TestEvent names service %q bucket %q, want Amazon S3 and %s", e.Service, e.Bucket, b)
	}
}

// testNotificationEvents creates objects by PutObject, CopyObject and
// CompleteMultipartUpload, under keys that need URL encoding, and checks the
// event each one sends — and that keys outside the filter send none.
func testNotificationEvents(t *testing.T, s *suite) {
	ctx := t.Context()
	b, q, _ := s.notifyingBucket(t)
	type want struct {
		name string
		size int64
		etag string
	}
	wants := map[string]want{}

	// Outside the filter first, so that their events, if any, come early.
	s.put(t, b, "other/x.ndjson", []byte("prefix does not match"))
	s.put(t, b, "incoming/x.json", []byte("suffix does not match"))

	putKey := "incoming/site 1/a b+c é€.ndjson"
	putBody := []byte(`{"op":"upsert","id":"sku-1","product":{}}` + "\n")
	wants[putKey] = want{"ObjectCreated:Put", int64(len(putBody)), s.put(t, b, putKey, putBody)}

	copyKey := "incoming/site 1/copy of+ü.ndjson"
	cp, err := s.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &b, Key: &copyKey, CopySource: aws.String(copySource(b, putKey))})
	if err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	wants[copyKey] = want{"ObjectCreated:Copy", int64(len(putBody)), aws.ToString(cp.CopyObjectResult.ETag)}
	if _, err := s.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &b, Key: aws.String("other/copy.ndjson"), CopySource: aws.String(copySource(b, putKey))}); err != nil {
		t.Fatalf("CopyObject: %v", err)
	}

	mpKey := "incoming/site 1/multi part+ñ.ndjson"
	mpBody := []byte(`{"op":"delete","id":"sku-2"}` + "\n")
	mp, err := s.multipart(t, b, mpKey, mpBody, nil, nil)
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	wants[mpKey] = want{"ObjectCreated:CompleteMultipartUpload", int64(len(mpBody)), aws.ToString(mp.ETag)}

	seen := map[string]bool{}
	check := func(events []s3Event) {
		for _, e := range events {
			if isTestEvent(e) {
				continue
			}
			if len(e.Records) == 0 {
				t.Errorf("a notification without Records: %+v", e)
			}
			for _, r := range e.Records {
				key, err := url.QueryUnescape(r.S3.Object.Key)
				if err != nil {
					t.Errorf("event key %q is not URL-encoded: %v", r.S3.Object.Key, err)
					continue
				}
				w, ok := wants[key]
				if ok && s.Features.MultipartUploadAlsoSendsPut && w.name == "ObjectCreated:CompleteMultipartUpload" && r.EventName == "ObjectCreated:Put" {
					continue
				}
				if !ok {
					t.Errorf("unexpected %s event for key %q (raw %q): outside the filter or never written", r.EventName, key, r.S3.Object.Key)
					continue
				}
				seen[key] = true
				if r.S3.Object.Key == key || strings.ContainsAny(r.S3.Object.Key, " ") {
					t.Errorf("event key %q is not URL-encoded (space → +, + → %%2B)", r.S3.Object.Key)
				}
				if r.EventName != w.name {
					t.Errorf("%s: eventName %q, want %q", key, r.EventName, w.name)
				}
				checkRecord(t, s, b, key, r, w.size, w.etag)
			}
		}
	}
	allSeen := func(events []s3Event) bool {
		found := map[string]bool{}
		for _, e := range events {
			for _, r := range e.Records {
				if key, err := url.QueryUnescape(r.S3.Object.Key); err == nil && wants[key].name == r.EventName {
					found[key] = true
				}
			}
		}
		return len(found) == len(wants)
	}
	check(s.events(t, q, 20*time.Second, allSeen))
	for key, w := range wants {
		if !seen[key] {
			t.Errorf("no %s event for %q within 20 s", w.name, key)
		}
	}
	// Whatever else arrives now must not be about keys outside the filter.
	check(s.events(t, q, 2*time.Second, func([]s3Event) bool { return false }))
}

func checkRecord(t *testing.T, s *suite, bucket, key string, r s3EventRecord, size int64, etag string) {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !strings.HasPrefix(r.EventVersion, "2.") {
		bad("eventVersion %q, want 2.x", r.EventVersion)
	}
	if r.EventSource != "aws:s3" {
		bad("eventSource %q, want aws:s3", r.EventSource)
	}
	if r.AWSRegion != s.Region {
		bad("awsRegion %q, want %s", r.AWSRegion, s.Region)
	}
	if at, err := time.Parse(time.RFC3339Nano, r.EventTime); err != nil {
		bad("eventTime %q is not an ISO-8601 time", r.EventTime)
	} else if d := time.Since(at); d < -20*time.Minute || d > 5*time.Minute {
		bad("eventTime %s is %v from now", r.EventTime, -d)
	}
	if r.S3.SchemaVersion != "1.0" {
		bad("s3SchemaVersion %q, want 1.0", r.S3.SchemaVersion)
	}
	if r.S3.ConfigurationID != notifyID {
		bad("configurationId %q, want %q", r.S3.ConfigurationID, notifyID)
	}
	if r.S3.Bucket.Name != bucket || r.S3.Bucket.ARN != "arn:aws:s3:::"+bucket {
		bad("bucket %q arn %q, want %s and arn:aws:s3:::%s", r.S3.Bucket.Name, r.S3.Bucket.ARN, bucket, bucket)
	}
	if r.S3.Object.Size != size {
		bad("size %d, want %d", r.S3.Object.Size, size)
	}
	if want := strings.Trim(etag, `"`); r.S3.Object.ETag != want {
		bad("eTag %q, want %q", r.S3.Object.ETag, want)
	}
	if seq := r.S3.Object.Sequencer; !s.Features.NoEventSequencer && (seq == "" || strings.Trim(strings.ToUpper(seq), "0123456789ABCDEF") != "") {
		bad("sequencer %q, want a hexadecimal string", r.S3.Object.Sequencer)
	}
	for _, p := range problems {
		t.Errorf("%s event for %q: %s", r.EventName, key, p)
	}
}

func testNotificationUnknownQueue(t *testing.T, s *suite) {
	s.skipIf(t, s.Features.NoNotificationDestinationCheck, "NoNotificationDestinationCheck")
	wantAPIError(t, s.notifyUnknownQueue(t), http.StatusBadRequest, "InvalidArgument")
}

// notifyUnknownQueue saves a notification configuration whose queue does
// not exist.
func (s *suite) notifyUnknownQueue(t *testing.T) error {
	b := s.bucket(t)
	_, arn := s.queue(t, false, nil)
	missing := arn[:strings.LastIndex(arn, ":")+1] + uniqueName(t, 75)
	_, err := s.S3.PutBucketNotificationConfiguration(t.Context(), &s3.PutBucketNotificationConfigurationInput{
		Bucket: &b,
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			QueueArn: &missing, Events: []types.Event{"s3:ObjectCreated:*"},
		}}},
	})
	return err
}
