// Command logs writes plain and JSON log lines to stdout and stderr.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

func handle(ctx context.Context) (string, error) {
	fmt.Println("plain line to stdout")
	fmt.Fprintln(os.Stderr, "line to stderr")
	slog.New(slog.NewJSONHandler(os.Stdout, nil)).InfoContext(ctx, "processed", "sku", "A-1", "count", 3)
	fmt.Print("two lines\nin one write\n")
	return "logged", nil
}

func main() {
	lambda.Start(handle)
}
