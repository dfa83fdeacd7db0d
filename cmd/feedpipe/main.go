// Command feedpipe is the feedpipe command line: it runs the embedded local
// cloud for development, talks to the Upload API (upload, status, list,
// catalog, get) and administers sites with AWS credentials (site, redrive).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // the command failed (API error, network, halted site, …)
	exitUsage    = 2 // bad flags or arguments
	exitRejected = 3 // upload: rejected, expired or cancelled
)

// cli is the command tree.
type cli struct {
	Upload  uploadCmd  `cmd:"" help:"Upload a feed file and follow it until it is imported (exit 0), rejected/expired/cancelled (3) or failed (1)."`
	Status  statusCmd  `cmd:"" help:"Show an upload's status."`
	List    listCmd    `cmd:"" help:"List a site's uploads by sequence."`
	Catalog catalogCmd `cmd:"" help:"Show a site's catalog: version, applied sequence, products, waiting sequences, halted."`
	Get     getCmd     `cmd:"" help:"Show one product of a site's catalog."`
	Site    struct {
		Create            siteCreateCmd            `cmd:"" help:"Create a site and print its first token (shown once)."`
		RotateToken       siteRotateTokenCmd       `cmd:"" name:"rotate-token" help:"Add a new token to a site (the oldest is dropped when two are active) and print it (shown once)."`
		AddDestination    siteAddDestinationCmd    `cmd:"" name:"add-destination" help:"Add a sync destination (webhook or S3 bucket) to a site."`
		RemoveDestination siteRemoveDestinationCmd `cmd:"" name:"remove-destination" help:"Remove a sync destination from a site; its queued sync jobs are dropped."`
		Show              siteShowCmd              `cmd:"" help:"Show a site: catalog, halted state, waiting sequences, destinations with their backlog, recent uploads with line errors."`
	} `cmd:"" help:"Administer sites (AWS credentials, not the Upload API)."`
	Top     topCmd     `cmd:"" help:"Show the running stack: queues (depth, age, in flight per group), alarms, sites and recent uploads; refreshes on a terminal."`
	Redrive redriveCmd `cmd:"" help:"Resume a halted site: clear its halted state and wake its importer (AWS credentials)."`
	Run     runCmd     `cmd:"" help:"Run the whole stack from template.yaml on the embedded local cloud (or --aws-endpoint)."`
	Cloud   cloudCmd   `cmd:"" help:"Run just the embedded local cloud (S3 + SQS on one endpoint)."`
	Fire    fireCmd    `cmd:"" help:"Fire a schedule of the running stack now."`
	Sync    struct {
		Now syncNowCmd `cmd:"" help:"Run the scheduled sync function of the running local stack now (expire abandoned uploads, plan syncs)."`
	} `cmd:"" help:"The scheduled sync."`
	Clock struct {
		Advance advanceCmd `cmd:"" help:"Move the running stack's clock forward."`
	} `cmd:"" help:"The running stack's clock."`
}

// streams are where a command writes; bound into every Run method that asks
// for them, so tests run commands in-process.
type streams struct {
	Out io.Writer
	Err io.Writer
	// ErrIsTerminal says whether Err is an interactive terminal (progress
	// bars are drawn only there).
	ErrIsTerminal bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// kongExit carries kong's exit code (after --help) out of Parse.
type kongExit struct{ code int }

// run parses args, runs the selected command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("feedpipe"),
		kong.Description("feedpipe: product-feed ingestion on AWS serverless parts.\n\nExit codes: 0 success, 1 failure, 2 usage error, 3 upload rejected/expired/cancelled."),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit{code}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintln(stderr, "feedpipe:", err)
		return exitUsage
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "feedpipe:", err)
		return exitUsage
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(&streams{Out: stdout, Err: stderr, ErrIsTerminal: isTerminal(stderr)})
	err = kctx.Run()
	if err == nil {
		return exitOK
	}
	return report(err, wantsJSON(kctx), stdout, stderr)
}

// jsonOutput is implemented by commands with a --json flag.
type jsonOutput interface{ wantsJSON() bool }

func wantsJSON(kctx *kong.Context) bool {
	sel := kctx.Selected()
	if sel == nil || !sel.Target.CanAddr() {
		return false
	}
	j, ok := sel.Target.Addr().Interface().(jsonOutput)
	return ok && j.wantsJSON()
}

// usageError is a mistake in the command line found after parsing.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError ends a command with a code other than 1 after its output was
// printed (an upload that was rejected).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// hinted is an error with advice on what to do next.
type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

func withHint(err error, format string, args ...any) error {
	return &hinted{err: err, hint: fmt.Sprintf(format, args...)}
}

// report prints a failed command's error — a message and a hint, never a
// stack trace — and returns its exit code. With --json the error is also
// printed on stdout as {"error":{...}}.
func report(err error, asJSON bool, stdout, stderr io.Writer) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	code := exitFailure
	var ue *usageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	msg, hint := err.Error(), ""
	var ae *apiError
	if errors.As(err, &ae) {
		msg = ae.Error()
		hint = ae.hint
	}
	var h *hinted
	if errors.As(err, &h) && h.hint != "" {
		hint = h.hint
	}
	fmt.Fprintln(stderr, "feedpipe:", msg)
	if hint != "" {
		fmt.Fprintln(stderr, "hint:", hint)
	}
	if asJSON {
		e := map[string]any{"message": msg}
		if ae != nil {
			e["status"], e["code"], e["message"] = ae.Status, ae.Code, ae.Message
		}
		if hint != "" {
			e["hint"] = hint
		}
		writeJSON(stdout, map[string]any{"error": e})
	}
	return code
}

// writeJSON prints v indented.
func writeJSON(w io.Writer, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(w, "{\"error\":{\"message\":%q}}\n", err.Error())
		return
	}
	fmt.Fprintf(w, "%s\n", b)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// jsonFlag is the --json flag every Upload API and administration command
// has.
type jsonFlag struct {
	JSON bool `name:"json" help:"Print machine-readable JSON on stdout (errors too, as {\"error\":{...}})."`
}

func (j *jsonFlag) wantsJSON() bool { return j.JSON }
