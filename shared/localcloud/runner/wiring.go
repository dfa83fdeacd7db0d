package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Resource types the runner understands. Policies, alarms and log groups are
// accepted and listed in the summary as not enforced locally.
const (
	typeFunction    = "AWS::Serverless::Function"
	typeQueue       = "AWS::SQS::Queue"
	typeBucket      = "AWS::S3::Bucket"
	typeQueuePolicy = "AWS::SQS::QueuePolicy"
	typeBucketPol   = "AWS::S3::BucketPolicy"
)

var notEnforced = map[string]string{
	typeQueuePolicy:              "IAM is not enforced locally",
	typeBucketPol:                "bucket policies are not enforced locally",
	"AWS::Logs::LogGroup":        "function logs go to the runner's output",
	"AWS::SNS::Topic":            "no SNS in the local cloud",
	"AWS::IAM::Role":             "IAM is not enforced locally",
	"AWS::Serverless::HttpApi":   "the runner serves every HttpApi route on one port",
	"AWS::SNS::TopicPolicy":      "IAM is not enforced locally",
	"AWS::CloudWatch::Dashboard": "dashboards are an AWS console feature",
}

// queueProps maps AWS::SQS::Queue properties to queue attributes. Properties
// that change nothing locally are accepted with an empty attribute name.
var queueProps = map[string]string{
	"VisibilityTimeout": "VisibilityTimeout", "MessageRetentionPeriod": "MessageRetentionPeriod",
	"DelaySeconds": "DelaySeconds", "MaximumMessageSize": "MaximumMessageSize",
	"ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds", "FifoQueue": "FifoQueue",
	"ContentBasedDeduplication": "ContentBasedDeduplication", "DeduplicationScope": "DeduplicationScope",
	"FifoThroughputLimit": "FifoThroughputLimit", "RedrivePolicy": "RedrivePolicy",
	"RedriveAllowPolicy": "RedriveAllowPolicy",
	"QueueName":          "", "Tags": "", "SqsManagedSseEnabled": "",
	"KmsMasterKeyId": "", "KmsDataKeyReusePeriodSeconds": "",
}

var bucketProps = map[string]bool{
	"BucketName": true, "VersioningConfiguration": true, "NotificationConfiguration": true,
	"LifecycleConfiguration": true, "PublicAccessBlockConfiguration": true, "BucketEncryption": true,
	"OwnershipControls": true, "Tags": true, "CorsConfiguration": true,
}

// queue is a created queue.
type queue struct {
	logicalID, name, url, arn string
	fifo                      bool
}

// wireQueues creates every AWS::SQS::Queue (redrive policies last, once
// every dead-letter queue exists) and records their Ref and attributes.
func (r *Runner) wireQueues(ctx context.Context) error {
	t, res := r.tpl, r.resolver
	names := t.ResourcesOfType(typeQueue)
	redrive := map[string]string{}
	for _, id := range names {
		props := t.Resources[id].Properties
		path := "Resources." + id + ".Properties"
		var keys []string
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := map[string]string{}
		fifo := false
		for _, k := range keys {
			attr, ok := queueProps[k]
			if !ok {
				return fmt.Errorf("%s.%s: the local runner does not support this AWS::SQS::Queue property", path, k)
			}
			if attr == "" {
				continue
			}
			v, err := res.Resolve(props[k], path+"."+k)
			if err != nil {
				return err
			}
			s, err := attributeString(v)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", path, k, err)
			}
			if k == "FifoQueue" {
				fifo = s == "true"
			}
			if k == "RedrivePolicy" {
				redrive[id] = s
				continue
			}
			attrs[attr] = s
		}
		name := r.cfg.StackName + "-" + id
		if props["QueueName"] != nil {
			n, err := res.String(props["QueueName"], path+".QueueName")
			if err != nil {
				return err
			}
			name = n
		} else if fifo {
			name += ".fifo"
		}
		out, err := r.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
		if err != nil {
			return fmt.Errorf("create queue %s (%s): %w", name, id, err)
		}
		got, err := r.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			return fmt.Errorf("queue %s: read its ARN: %w", name, err)
		}
		q := &queue{logicalID: id, name: name, url: aws.ToString(out.QueueUrl), arn: got.Attributes["QueueArn"], fifo: fifo}
		r.queues[id] = q
		res.Refs[id] = q.url
		res.Attrs[id] = map[string]string{"Arn": q.arn, "QueueName": q.name, "QueueUrl": q.url}
	}
	for _, id := range names {
		policy, ok := redrive[id]
		if !ok {
			continue
		}
		// Resolve again now that every queue's ARN is known.
		v, err := res.Resolve(t.Resources[id].Properties["RedrivePolicy"], "Resources."+id+".Properties.RedrivePolicy")
		if err != nil {
			return err
		}
		if policy, err = attributeString(v); err != nil {
			return err
		}
		if _, err := r.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(r.queues[id].url), Attributes: map[string]string{"RedrivePolicy": policy}}); err != nil {
			return fmt.Errorf("queue %s: set redrive policy: %w", r.queues[id].name, err)
		}
	}
	return nil
}

// attributeString renders a property value as an SQS attribute string:
// objects (RedrivePolicy) as JSON, scalars as text.
func attributeString(v any) (string, error) {
	switch x := v.(type) {
	case map[string]any:
		b, err := json.Marshal(x)
		return string(b), err
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	default:
		return "", fmt.Errorf("unsupported value %T", v)
	}
}

// wireBucketNames records the name and attributes of every bucket before
// anything refers to them.
func (r *Runner) wireBucketNames() error {
	for _, id := range r.tpl.ResourcesOfType(typeBucket) {
		props := r.tpl.Resources[id].Properties
		path := "Resources." + id + ".Properties"
		for k := range props {
			if !bucketProps[k] {
				return fmt.Errorf("%s.%s: the local runner does not support this AWS::S3::Bucket property", path, k)
			}
		}
		name := strings.ToLower(r.cfg.StackName + "-" + id)
		if props["BucketName"] != nil {
			n, err := r.resolver.String(props["BucketName"], path+".BucketName")
			if err != nil {
				return err
			}
			name = n
		}
		r.buckets[id] = name
		r.resolver.Refs[id] = name
		r.resolver.Attrs[id] = map[string]string{
			"Arn": "arn:aws:s3:::" + name, "DomainName": name + ".s3.amazonaws.com",
			"RegionalDomainName": name + ".s3." + r.cfg.Region + ".amazonaws.com",
		}
	}
	return nil
}

// wireBuckets creates the buckets, their versioning and their queue
// notifications (after the queues exist).
func (r *Runner) wireBuckets(ctx context.Context) error {
	for _, id := range r.tpl.ResourcesOfType(typeBucket) {
		name := r.buckets[id]
		props := r.tpl.Resources[id].Properties
		path := "Resources." + id + ".Properties"
		_, err := r.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
		var owned *s3types.BucketAlreadyOwnedByYou
		var exists *s3types.BucketAlreadyExists
		if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
			return fmt.Errorf("create bucket %s (%s): %w", name, id, err)
		}
		if v := props["VersioningConfiguration"]; v != nil {
			vc, err := r.resolver.Resolve(v, path+".VersioningConfiguration")
			if err != nil {
				return err
			}
			status, _ := vc.(map[string]any)["Status"].(string)
			if _, err := r.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
				VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatus(status)}}); err != nil {
				return fmt.Errorf("bucket %s: versioning: %w", name, err)
			}
		}
		if v := props["NotificationConfiguration"]; v != nil {
			nc, err := r.resolver.Resolve(v, path+".NotificationConfiguration")
			if err != nil {
				return err
			}
			cfg, err := notificationConfig(nc, path+".NotificationConfiguration")
			if err != nil {
				return err
			}
			if _, err := r.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
				Bucket: aws.String(name), NotificationConfiguration: cfg}); err != nil {
				return fmt.Errorf("bucket %s: notifications: %w", name, err)
			}
			for _, qc := range cfg.QueueConfigurations {
				r.notes = append(r.notes, fmt.Sprintf("s3://%s %v → %s", name, qc.Events, aws.ToString(qc.QueueArn)))
			}
		}
	}
	return nil
}

// notificationConfig converts CloudFormation's NotificationConfiguration
// to the S3 API's.
func notificationConfig(v any, path string) (*s3types.NotificationConfiguration, error) {
	m, _ := v.(map[string]any)
	out := &s3types.NotificationConfiguration{}
	for k, raw := range m {
		if k != "QueueConfigurations" {
			return nil, fmt.Errorf("%s.%s: the local runner delivers only QueueConfigurations", path, k)
		}
		list, _ := raw.([]any)
		for i, e := range list {
			qm, _ := e.(map[string]any)
			p := fmt.Sprintf("%s.QueueConfigurations[%d]", path, i)
			queueArn, _ := qm["Queue"].(string)
			event, _ := qm["Event"].(string)
			if queueArn == "" || event == "" {
				return nil, fmt.Errorf("%s: needs Queue and Event", p)
			}
			qc := s3types.QueueConfiguration{QueueArn: aws.String(queueArn), Events: []s3types.Event{s3types.Event(event)}}
			if f, ok := qm["Filter"].(map[string]any); ok {
				key, _ := f["S3Key"].(map[string]any)
				rules, _ := key["Rules"].([]any)
				var frs []s3types.FilterRule
				for _, rr := range rules {
					rm, _ := rr.(map[string]any)
					n, _ := rm["Name"].(string)
					val, _ := rm["Value"].(string)
					frs = append(frs, s3types.FilterRule{Name: s3types.FilterRuleName(strings.ToLower(n)), Value: aws.String(val)})
				}
				qc.Filter = &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: frs}}
			}
			out.QueueConfigurations = append(out.QueueConfigurations, qc)
		}
	}
	return out, nil
}

// seconds reads a number of seconds from a resolved property.
func seconds(v any, path string) (time.Duration, error) {
	s, err := attributeString(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", path, s)
	}
	return time.Duration(n * float64(time.Second)), nil
}

// intValue reads an integer from a resolved property.
func intValue(v any, path string) (int, error) {
	s, err := attributeString(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not an integer", path, s)
	}
	return n, nil
}
