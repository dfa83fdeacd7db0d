package sqsserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func strAttr(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
}

// The expected digests below were recorded from SQS itself.
func TestAttributesMD5(t *testing.T) {
	tests := []struct {
		name  string
		attrs []msgAttr
		want  string
	}{
		{"one string", []msgAttr{{name: "MyAttribute", dataType: "String", str: "foobar"}}, "adb59cd4678ea5a855436b949cd07ab6"},
		{"three strings", []msgAttr{
			{name: "General", dataType: "String", str: "Kenobi"},
			{name: "Hello", dataType: "String", str: "There"},
			{name: "Help.Me", dataType: "String", str: "Me"},
		}, "4c360f3fdafd970e05fae2f149d997f5"},
		{"binary", []msgAttr{{name: "attr1", dataType: "Binary", binary: true,
			bin: []byte("traceparent\x1e00-774062d6c37081a5a0b9b5b88e30627c-2d2482211f6489da-01")}}, "8cbe4db156db8a94db8b801b7addb984"},
		{"none", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := attributesMD5(tc.attrs); got != tc.want {
				t.Fatalf("attributesMD5 = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSendReceiveDeleteStandard(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "basic", nil)
	out, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{
		QueueUrl:          aws.String(url),
		MessageBody:       aws.String("message-1"),
		MessageAttributes: map[string]types.MessageAttributeValue{"MyAttribute": strAttr("foobar")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.MD5OfMessageBody) != "3d6b824fd8c1520e9a047d21fee6fb1f" ||
		aws.ToString(out.MD5OfMessageAttributes) != "adb59cd4678ea5a855436b949cd07ab6" {
		t.Fatalf("send MD5s = %s %s", aws.ToString(out.MD5OfMessageBody), aws.ToString(out.MD5OfMessageAttributes))
	}
	if out.SequenceNumber != nil {
		t.Fatalf("standard queue returned SequenceNumber %s", aws.ToString(out.SequenceNumber))
	}
	if len(aws.ToString(out.MessageId)) != 36 {
		t.Fatalf("MessageId %q is not a UUID", aws.ToString(out.MessageId))
	}

	// Attributes are only returned when asked for.
	msgs := e.receive(t, url, 1)
	if len(msgs) != 1 {
		t.Fatalf("received %d messages", len(msgs))
	}
	m := msgs[0]
	if aws.ToString(m.Body) != "message-1" || aws.ToString(m.MessageId) != aws.ToString(out.MessageId) {
		t.Fatalf("message = %+v", m)
	}
	if m.Attributes != nil || m.MessageAttributes != nil || m.MD5OfMessageAttributes != nil {
		t.Fatalf("unrequested attributes returned: %v %v", m.Attributes, m.MessageAttributes)
	}

	e.clock.Advance(31 * time.Second) // default visibility timeout ends
	msgs = e.receive(t, url, 1, withAllAttributes)
	m = msgs[0]
	if aws.ToString(m.MD5OfMessageAttributes) != "adb59cd4678ea5a855436b949cd07ab6" || aws.ToString(m.MessageAttributes["MyAttribute"].StringValue) != "foobar" {
		t.Fatalf("message attributes = %v (md5 %s)", m.MessageAttributes, aws.ToString(m.MD5OfMessageAttributes))
	}
	if m.Attributes["ApproximateReceiveCount"] != "2" || m.Attributes["SenderId"] != "000000000000" {
		t.Fatalf("system attributes = %v", m.Attributes)
	}
	sent, _ := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
	first, _ := strconv.ParseInt(m.Attributes["ApproximateFirstReceiveTimestamp"], 10, 64)
	if time.Since(time.UnixMilli(sent)) > time.Minute || first < sent {
		t.Fatalf("timestamps sent=%d first=%d", sent, first)
	}
	for _, k := range []string{"MessageGroupId", "SequenceNumber", "MessageDeduplicationId", "DeadLetterQueueSourceArn"} {
		if _, ok := m.Attributes[k]; ok {
			t.Errorf("standard message has %s", k)
		}
	}

	e.delete(t, url, aws.ToString(m.ReceiptHandle))
	e.clock.Advance(time.Hour)
	if msgs := e.receive(t, url, 10); len(msgs) != 0 {
		t.Fatalf("deleted message came back: %v", bodies(msgs))
	}
}

func TestReceiptHandlesUniquePerReceive(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "handles", map[string]string{"VisibilityTimeout": "0"})
	e.send(t, url, "x")
	seen := map[string]bool{}
	for range 5 {
		msgs := e.receive(t, url, 1)
		h := aws.ToString(msgs[0].ReceiptHandle)
		if seen[h] {
			t.Fatalf("receipt handle %s repeated", h)
		}
		seen[h] = true
	}
}

func TestMessageAttributeSelection(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "attrs", map[string]string{"VisibilityTimeout": "0"})
	_, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{
		QueueUrl:    aws.String(url),
		MessageBody: aws.String("body"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"General": strAttr("Kenobi"),
			"Hello":   strAttr("There"),
			"Help.Me": strAttr("Me"),
			"Bin":     {DataType: aws.String("Binary.custom"), BinaryValue: []byte{0, 1, 2, 255}},
			"Num":     {DataType: aws.String("Number"), StringValue: aws.String("-1.5e3")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  []string
		md5   string
	}{
		{[]string{"All"}, []string{"Bin", "General", "Hello", "Help.Me", "Num"}, ""},
		{[]string{".*"}, []string{"Bin", "General", "Hello", "Help.Me", "Num"}, ""},
		{[]string{"Hello", "General"}, []string{"General", "Hello"}, "fca026605781cb4126a1e9044df24232"},
		{[]string{"Help.*", "Hello"}, []string{"Hello", "Help.Me"}, "83fee93c1bcd8b9a5a923ffacdc636c7"},
		{[]string{"Nope"}, nil, ""},
		{nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.names, ","), func(t *testing.T) {
			msgs := e.receive(t, url, 1, func(in *sqs.ReceiveMessageInput) { in.MessageAttributeNames = tc.names })
			m := msgs[0]
			var got []string
			for k := range m.MessageAttributes {
				got = append(got, k)
			}
			if fmt.Sprint(sorted(got)) != fmt.Sprint(tc.want) {
				t.Fatalf("attributes = %v, want %v", sorted(got), tc.want)
			}
			if tc.md5 != "" && aws.ToString(m.MD5OfMessageAttributes) != tc.md5 {
				t.Fatalf("MD5OfMessageAttributes = %s, want %s", aws.ToString(m.MD5OfMessageAttributes), tc.md5)
			}
			if len(tc.want) == 0 && m.MD5OfMessageAttributes != nil {
				t.Fatal("MD5OfMessageAttributes without attributes")
			}
			if len(tc.want) == 5 {
				if b := m.MessageAttributes["Bin"]; fmt.Sprint(b.BinaryValue) != "[0 1 2 255]" || aws.ToString(b.DataType) != "Binary.custom" {
					t.Fatalf("binary attribute = %+v", b)
				}
				var recomputed []msgAttr
				for _, k := range sorted(got) {
					v := m.MessageAttributes[k]
					recomputed = append(recomputed, msgAttr{name: k, dataType: aws.ToString(v.DataType), str: aws.ToString(v.StringValue), bin: v.BinaryValue, binary: v.BinaryValue != nil})
				}
				if attributesMD5(recomputed) != aws.ToString(m.MD5OfMessageAttributes) {
					t.Fatal("MD5OfMessageAttributes does not match the returned attributes")
				}
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestSystemAttributeSelection(t *testing.T) {
	e := newEnv(t)
	url := e.createFIFO(t, "sys.fifo", map[string]string{"VisibilityTimeout": "0"})
	_, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{
		QueueUrl: aws.String(url), MessageBody: aws.String("b"), MessageGroupId: aws.String("g1"), MessageDeduplicationId: aws.String("d1"),
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String("Root=1-5759e988-bd862e3fe1be46a994272793")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sys    []types.MessageSystemAttributeName
		legacy []types.QueueAttributeName
		want   []string
	}{
		{"all", []types.MessageSystemAttributeName{"All"}, nil, []string{"AWSTraceHeader", "ApproximateFirstReceiveTimestamp", "ApproximateReceiveCount", "MessageDeduplicationId", "MessageGroupId", "SenderId", "SentTimestamp", "SequenceNumber"}},
		{"legacy all", nil, []types.QueueAttributeName{"All"}, []string{"AWSTraceHeader", "ApproximateFirstReceiveTimestamp", "ApproximateReceiveCount", "MessageDeduplicationId", "MessageGroupId", "SenderId", "SentTimestamp", "SequenceNumber"}},
		{"some", []types.MessageSystemAttributeName{"MessageGroupId", "SequenceNumber"}, nil, []string{"MessageGroupId", "SequenceNumber"}},
		{"mixed", []types.MessageSystemAttributeName{"ApproximateReceiveCount"}, []types.QueueAttributeName{"MessageDeduplicationId"}, []string{"ApproximateReceiveCount", "MessageDeduplicationId"}},
		{"none", nil, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs := e.receive(t, url, 1, func(in *sqs.ReceiveMessageInput) {
				in.MessageSystemAttributeNames = tc.sys
				//lint:ignore SA1019 the legacy member is what this test covers
				in.AttributeNames = tc.legacy
			})
			if len(msgs) != 1 {
				t.Fatalf("received %d", len(msgs))
			}
			var got []string
			for k := range msgs[0].Attributes {
				got = append(got, k)
			}
			if fmt.Sprint(sorted(got)) != fmt.Sprint(tc.want) {
				t.Fatalf("attributes = %v, want %v", sorted(got), tc.want)
			}
			a := msgs[0].Attributes
			if a["MessageGroupId"] != "" && a["MessageGroupId"] != "g1" || a["MessageDeduplicationId"] != "" && a["MessageDeduplicationId"] != "d1" {
				t.Fatalf("attributes = %v", a)
			}
		})
	}
}

func TestSendValidation(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "validate", map[string]string{"MaximumMessageSize": "1024"})
	big := strings.Repeat("x", 1025)
	tests := []struct {
		name string
		in   sqs.SendMessageInput
		code string
	}{
		{"ok at limit", sqs.SendMessageInput{MessageBody: aws.String(strings.Repeat("x", 1024))}, ""},
		{"too large", sqs.SendMessageInput{MessageBody: aws.String(big)}, "InvalidParameterValue"},
		{"body and attributes too large", sqs.SendMessageInput{MessageBody: aws.String(strings.Repeat("x", 1000)),
			MessageAttributes: map[string]types.MessageAttributeValue{"a": strAttr(strings.Repeat("y", 20))}}, "InvalidParameterValue"},
		{"empty body", sqs.SendMessageInput{MessageBody: aws.String("")}, "MissingParameter"},
		{"control character", sqs.SendMessageInput{MessageBody: aws.String("a\x01b")}, "InvalidMessageContents"},
		{"tab newline ok", sqs.SendMessageInput{MessageBody: aws.String("a\tb\r\nc\U0001F600")}, ""},
		{"delay too long", sqs.SendMessageInput{MessageBody: aws.String("x"), DelaySeconds: 901}, "InvalidParameterValue"},
		{"dedup id on standard", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")}, "InvalidParameterValue"},
		{"bad group id", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageGroupId: aws.String("group 1")}, "InvalidParameterValue"},
		{"attribute empty value", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{"a": strAttr("")}}, "InvalidParameterValue"},
		{"attribute bad type", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{"a": {DataType: aws.String("Date"), StringValue: aws.String("now")}}}, "InvalidParameterValue"},
		{"attribute reserved name", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{"AWS.x": strAttr("v")}}, "InvalidParameterValue"},
		{"attribute not a number", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String("ten")}}}, "InvalidParameterValue"},
		{"eleven attributes", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: elevenAttrs()}, "InvalidParameterValue"},
		{"bad system attribute", sqs.SendMessageInput{MessageBody: aws.String("x"), MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("Number"), StringValue: aws.String("1")}}}, "InvalidParameterValue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.QueueUrl = aws.String(url)
			_, err := e.client.SendMessage(ctx(t), &in)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("SendMessage: %v", err)
				}
				return
			}
			wantAPIError(t, err, tc.code)
			if tc.code == "InvalidMessageContents" {
				var imc *types.InvalidMessageContents
				if !errors.As(err, &imc) {
					t.Fatalf("error %T is not *types.InvalidMessageContents", err)
				}
			}
		})
	}
}

func elevenAttrs() map[string]types.MessageAttributeValue {
	m := map[string]types.MessageAttributeValue{}
	for i := range 11 {
		m[fmt.Sprintf("a%d", i)] = strAttr("v")
	}
	return m
}

func TestReceiveValidation(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "recv-validate", nil)
	tests := []struct {
		name string
		body map[string]any
	}{
		{"max zero", map[string]any{"MaxNumberOfMessages": 0}},
		{"max eleven", map[string]any{"MaxNumberOfMessages": 11}},
		{"wait negative", map[string]any{"WaitTimeSeconds": -1}},
		{"wait 21", map[string]any{"WaitTimeSeconds": 21}},
		{"visibility too long", map[string]any{"VisibilityTimeout": 43201}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["QueueUrl"] = url
			resp := e.rawCall(t, "ReceiveMessage", tc.body, nil)
			if resp.status != 400 || resp.body["__type"] != "com.amazon.coral.service#InvalidParameterValueException" ||
				resp.header.Get("x-amzn-query-error") != "InvalidParameterValue;Sender" {
				t.Fatalf("response = %d %v %v", resp.status, resp.body, resp.header)
			}
		})
	}
	_, err := e.client.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 11})
	wantAPIError(t, err, "InvalidParameterValue")
}

func TestDelaySeconds(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "delay", nil)
	if _, err := e.client.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("late"), DelaySeconds: 10}); err != nil {
		t.Fatal(err)
	}
	e.send(t, url, "now")
	if got := bodies(e.receive(t, url, 10)); fmt.Sprint(got) != "[now]" {
		t.Fatalf("before delay: %v", got)
	}
	e.clock.Advance(10 * time.Second)
	if got := bodies(e.receive(t, url, 10)); fmt.Sprint(got) != "[late]" {
		t.Fatalf("after delay: %v", got)
	}

	queued := e.createQueue(t, "queue-delay", map[string]string{"DelaySeconds": "30"})
	e.send(t, queued, "q")
	if got := e.receive(t, queued, 1); len(got) != 0 {
		t.Fatal("queue delay ignored")
	}
	e.clock.Advance(30 * time.Second)
	if got := bodies(e.receive(t, queued, 1)); fmt.Sprint(got) != "[q]" {
		t.Fatalf("after queue delay: %v", got)
	}
}

func TestRetention(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "retention", map[string]string{"MessageRetentionPeriod": "60"})
	e.send(t, url, "old")
	e.receive(t, url, 1, withVisibility(300)) // in flight messages expire too
	e.clock.Advance(30 * time.Second)
	e.send(t, url, "young")
	e.clock.Advance(31 * time.Second)
	if n := e.attr(t, url, "ApproximateNumberOfMessagesNotVisible"); n != "0" {
		t.Fatalf("expired in-flight message still counted: %s", n)
	}
	if got := bodies(e.receive(t, url, 10)); fmt.Sprint(got) != "[young]" {
		t.Fatalf("received %v, want [young]", got)
	}
}

func TestStandardRoughOrder(t *testing.T) {
	e := newEnv(t)
	url := e.createQueue(t, "order", nil)
	for i := range 20 {
		e.send(t, url, fmt.Sprint(i))
	}
	var got []string
	for len(got) < 20 {
		got = append(got, bodies(e.receive(t, url, 10))...)
	}
	for i, b := range got {
		if b != fmt.Sprint(i) {
			t.Fatalf("order = %v", got)
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " backslash \ slash /`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f",
		"snowman ☃ emoji \U0001F600", "line\u2028para\u2029", "bad utf8 \xff\xfe end", "<html>&amp;</html>",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var got, back string
		got = string(appendJSONString(nil, s))
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Fatalf("%q: invalid JSON %s", s, got)
		}
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q: round trip %q, want %q", s, back, wantBack)
		}
	}
}

func TestReceiptHandleRoundTrip(t *testing.T) {
	h := encodeReceiptHandle(7, 42, 99)
	q, k, n, ok := decodeReceiptHandle(h)
	if !ok || q != 7 || k != 42 || n != 99 {
		t.Fatalf("decode(%s) = %d %d %d %v", h, q, k, n, ok)
	}
	for _, bad := range []string{"", "garbage", h + "A", h[:len(h)-1] + "*", strings.Repeat("=", 32)} {
		if _, _, _, ok := decodeReceiptHandle(bad); ok {
			t.Fatalf("decoded invalid handle %q", bad)
		}
	}
}

func TestValidMessageChars(t *testing.T) {
	tests := map[string]bool{
		"plain":          true,
		"\t\n\r":         true,
		"\u00e9\uffFD":   true,
		"\U0010FFFF":     true,
		"\x00":           false,
		"\x1f":           false,
		"\uFFFE":         false,
		"\xed\xa0\x80":   false, // a UTF-8 encoded surrogate
		"broken \xc3(":   false,
		"\u007f control": true, // DEL is in #x20-#xD7FF
	}
	for s, want := range tests {
		if got := validMessageChars(s); got != want {
			t.Errorf("validMessageChars(%q) = %v, want %v", s, got, want)
		}
	}
}
