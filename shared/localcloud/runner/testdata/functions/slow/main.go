// Command slow is a test function that outlives its timeout on the first
// delivery of each message and records the second.
package main

import (
	"context"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/feedpipe/feedpipe/shared/localcloud/runner/testdata/functions/report"
)

func handle(ctx context.Context, ev events.SQSEvent) error {
	for _, m := range ev.Records {
		if m.Attributes["ApproximateReceiveCount"] == "1" {
			time.Sleep(time.Hour)
		}
		if err := report.Send(ctx, map[string]string{"slow": m.Body, "receiveCount": m.Attributes["ApproximateReceiveCount"]}); err != nil {
			return err
		}
	}
	return nil
}

func main() { lambda.Start(handle) }
