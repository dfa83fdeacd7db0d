// Command batch is a test function for SQS event source mappings. For each
// message, in order, it records {group, body, receiveCount} on the out
// queue. A body starting with "fail-once" fails on its first delivery and is
// reported in batchItemFailures, and the rest of its group in the batch is
// left unprocessed and unreported, relying on the event source mapping to
// return it; "crash" exits the process; "sleep" sleeps 300 ms first.
package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/feedpipe/feedpipe/shared/localcloud/runner/testdata/functions/report"
)

type record struct {
	Queue        string `json:"queue"`
	Group        string `json:"group"`
	Body         string `json:"body"`
	ReceiveCount string `json:"receiveCount"`
	Start        int64  `json:"start"`
	End          int64  `json:"end"`
}

func handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	failed := map[string]bool{}
	for _, m := range ev.Records {
		if failed[m.Attributes["MessageGroupId"]] {
			continue
		}
		start := time.Now().UnixMilli()
		switch {
		case strings.HasPrefix(m.Body, "crash"):
			os.Exit(3)
		case strings.HasPrefix(m.Body, "sleep"):
			time.Sleep(300 * time.Millisecond)
		case strings.HasPrefix(m.Body, "fail-once") && m.Attributes["ApproximateReceiveCount"] == "1":
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			if g := m.Attributes["MessageGroupId"]; g != "" {
				failed[g] = true
			}
			continue
		}
		q := m.EventSourceARN[strings.LastIndex(m.EventSourceARN, ":")+1:]
		if err := report.Send(ctx, record{Queue: q, Group: m.Attributes["MessageGroupId"], Body: m.Body, ReceiveCount: m.Attributes["ApproximateReceiveCount"], Start: start, End: time.Now().UnixMilli()}); err != nil {
			return resp, err
		}
	}
	return resp, nil
}

func main() { lambda.Start(handle) }
