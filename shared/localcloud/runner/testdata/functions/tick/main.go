// Command tick is a test function for schedules: it records each event it
// receives on the out queue.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/feedpipe/feedpipe/shared/localcloud/runner/testdata/functions/report"
)

func handle(ctx context.Context, ev json.RawMessage) error {
	return report.Send(ctx, map[string]any{"tick": ev})
}

func main() { lambda.Start(handle) }
