// Command feedpipe is the feedpipe command line: it runs the embedded local
// cloud for development and, as the service grows, talks to the Upload API
// and administers sites.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

// cli is the command tree.
type cli struct {
	Run   runCmd   `cmd:"" help:"Run the whole stack from template.yaml on the embedded local cloud (or --aws-endpoint)."`
	Cloud cloudCmd `cmd:"" help:"Run just the embedded local cloud (S3 + SQS on one endpoint)."`
	Fire  fireCmd  `cmd:"" help:"Fire a schedule of the running stack now."`
	Clock struct {
		Advance advanceCmd `cmd:"" help:"Move the running stack's clock forward."`
	} `cmd:"" help:"The running stack's clock."`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("feedpipe"),
		kong.Description("feedpipe: product-feed ingestion on AWS serverless parts."),
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "feedpipe:", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "feedpipe:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "feedpipe:", err)
		return 1
	}
	return 0
}
