// Command crash exits with the code its event names, in the middle of the
// invocation; other events return "ok". With CRASH_AT_INIT set it exits
// with status 2 before asking for work.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	Exit *int `json:"exit"`
}

func handle(_ context.Context, ev event) (string, error) {
	if ev.Exit != nil {
		fmt.Println("exiting with", *ev.Exit)
		os.Exit(*ev.Exit)
	}
	return "ok", nil
}

func main() {
	if os.Getenv("CRASH_AT_INIT") != "" {
		fmt.Fprintln(os.Stderr, "config missing")
		os.Exit(2)
	}
	lambda.Start(handle)
}
