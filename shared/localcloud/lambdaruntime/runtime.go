// Package lambdaruntime runs feedpipe's Lambda functions on a developer's
// machine the way the provided.al2023 runtime runs them on AWS: each
// function's real bootstrap binary runs as a child process that pulls its
// invocations from an in-process Lambda Runtime API (GET
// /2018-06-01/runtime/invocation/next) and posts back a response or an error.
// Event source mappings, schedules and the HTTP API call Invoke.
//
// What callers can rely on, as on Lambda:
//
//   - An instance (one execution environment: one child process with its own
//     Runtime API endpoint) serves one invocation at a time and is reused
//     while it stays healthy. A new instance is started only when no started
//     instance is free and the function's cap, min(ReservedConcurrency,
//     MaxInstances), allows one more; at the cap Invoke waits for a slot or
//     for its context to end. That is how reserved concurrency is honoured.
//   - An invocation's deadline is Timeout after its instance receives it,
//     measured on the injected clock, so clock.Advance expires it as surely
//     as the passing of time. At the deadline the instance's whole process
//     group is killed, the invocation fails with Sandbox.Timedout, and later
//     invocations get a fresh instance.
//   - A process that exits during an invocation fails it with
//     Runtime.ExitError. A process that fails its init (exits, or posts
//     /runtime/init/error, before its first /next) fails the invocation
//     waiting longest. Broken instances are replaced on demand.
//   - A function error is a Result with a FuncError, never a Go error.
//     Invoke returns an error only for the caller's side of the call: an
//     unknown function, a payload Lambda would refuse, a context that ended
//     first, or a closed Runtime.
//   - A child's environment holds the function's Env, the variables Lambda
//     sets and, from the parent, only PATH, HOME and TMPDIR: never the
//     parent's credentials, AWS_PROFILE or AWS_CA_BUNDLE.
//   - Each line a child writes to stdout or stderr reaches the function's
//     Stdout or Stderr whole, prefixed "[Name] ".
//
// A function may be an in-process Handler instead of a binary. It goes
// through the same scheduling, deadlines and statistics; it runs in a
// goroutine whose context carries the deadline and a lambdacontext, and if it
// ignores the deadline Invoke still returns Sandbox.Timedout at the deadline
// (the goroutine is abandoned, as a killed process would be).
//
// Local differences from Lambda: instances are not frozen between
// invocations and are never reclaimed for idleness; memory is a soft limit
// (a peak RSS above MemoryMB is logged, not killed); the init phase has a
// fixed limit of InitTimeout; the Extensions and Telemetry APIs are not
// served. Deadlines sent to the runtime are clock time, so after
// clock.Advance a child's own view of its remaining time is generous by the
// advance, but it is killed at the clock deadline all the same.
package lambdaruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// Limits and defaults, as Lambda applies them.
const (
	DefaultTimeout      = 3 * time.Second
	MaxTimeout          = 15 * time.Minute
	DefaultMemoryMB     = 128
	MinMemoryMB         = 128
	MaxMemoryMB         = 10240
	DefaultMaxInstances = 10
	// InitTimeout bounds the time from process start to the first /next.
	InitTimeout = 10 * time.Second
	// MaxRequestPayload is the largest payload a synchronous invocation accepts.
	MaxRequestPayload = 6 * 1024 * 1024
	// MaxResponsePayload is the largest response a function may return;
	// larger ones fail with Function.ResponseSizeTooLarge.
	MaxResponsePayload = 6*1024*1024 + 100
	// ShutdownGrace is how long Close waits after SIGTERM before SIGKILL.
	ShutdownGrace = 2 * time.Second

	defaultRegion = "us-east-1"
	accountID     = "000000000000"
)

// Errors Invoke and Register wrap; test with errors.Is.
var (
	ErrUnknownFunction = errors.New("lambdaruntime: function not registered")
	ErrPayloadTooLarge = errors.New("lambdaruntime: request payload too large")
	ErrInvalidPayload  = errors.New("lambdaruntime: request payload is not JSON")
	ErrClosed          = errors.New("lambdaruntime: runtime closed")
)

// Handler is an in-process function body. Its context carries the
// invocation's deadline (on the Runtime's clock) and a
// lambdacontext.LambdaContext. A returned error becomes the Result's
// FuncError with errorType taken from the error's type name, as
// aws-lambda-go reports it, unless the error is a *FunctionError.
type Handler func(ctx context.Context, payload []byte) ([]byte, error)

// FunctionConfig describes one function. Exactly one of Command and Handler
// is set.
type FunctionConfig struct {
	// Name is the logical id ("ImportFunction"); it names the function in
	// Invoke, in its ARN and in the log prefix. Letters, digits, '-' and '_'.
	Name string
	// Command is the path of the bootstrap binary. It runs in its own
	// directory, which is also LAMBDA_TASK_ROOT.
	Command string
	// Handler runs the function in process instead of a child process.
	Handler Handler
	// Env is the function's environment (template.yaml). It may set
	// AWS_REGION, AWS_DEFAULT_REGION and credentials, which on Lambda come
	// from the platform and the execution role; the other variables Lambda
	// reserves are refused. A Handler runs in this process and sees its
	// environment; Env is not applied to it.
	Env map[string]string
	// Timeout per invocation; default DefaultTimeout, at most MaxTimeout.
	Timeout time.Duration
	// MemoryMB is reported to the function and used as a soft limit: a peak
	// RSS above it is logged. Default DefaultMemoryMB.
	MemoryMB int
	// ReservedConcurrency caps concurrent invocations; 0 means no reservation
	// (the cap is then MaxInstances).
	ReservedConcurrency int
	// MaxInstances caps the warm pool; default DefaultMaxInstances.
	MaxInstances int
	// Stdout and Stderr receive the child's output, one prefixed line per
	// Write; default os.Stderr.
	Stdout, Stderr io.Writer
}

// FunctionError is what a failed invocation reports, in Lambda's wire
// shape. StackTrace is kept as the runtime sent it (aws-lambda-go sends
// frames, other runtimes strings).
type FunctionError struct {
	ErrorMessage string          `json:"errorMessage"`
	ErrorType    string          `json:"errorType"`
	StackTrace   json.RawMessage `json:"stackTrace,omitempty"`
}

func (e *FunctionError) Error() string { return e.ErrorType + ": " + e.ErrorMessage }

// Result is the outcome of one invocation. When FuncError is set, Payload is
// the error document Lambda's Invoke API would return (with
// X-Amz-Function-Error: Unhandled).
type Result struct {
	Payload   []byte
	FuncError *FunctionError
	// Duration is clock time from delivery to the runtime until the result.
	Duration time.Duration
	// ColdStart reports that the invocation was the first of a new instance
	// (or failed that instance's init).
	ColdStart bool
	RequestID string
}

// Stats are a function's counters since Register.
type Stats struct {
	Invocations  int64 // invocations delivered to an instance
	Errors       int64 // results with a FuncError, timeouts and crashes included
	Timeouts     int64 // Sandbox.Timedout results
	InitFailures int64 // instances that exited or posted an init error before their first /next
	// ColdStarts counts instances that finished init; ColdStartTotal and
	// ColdStartMax measure their process start → first /next.
	ColdStarts     int64
	ColdStartTotal time.Duration
	ColdStartMax   time.Duration
	Instances      int // live instances: starting, busy or idle
	Warm           int // initialised instances waiting for work
	InFlight       int // invocations admitted and not yet finished
	PeakMemoryMB   int // highest peak RSS seen in any instance, in MiB
}

// ColdStartMean is the mean init time over ColdStarts.
func (s Stats) ColdStartMean() time.Duration {
	if s.ColdStarts == 0 {
		return 0
	}
	return s.ColdStartTotal / time.Duration(s.ColdStarts)
}

// InvokeMetadata is optional per-invocation context that Lambda passes to
// the runtime in headers.
type InvokeMetadata struct {
	TraceID         string // Lambda-Runtime-Trace-Id; a fresh root id when empty
	ClientContext   string // Lambda-Runtime-Client-Context (JSON)
	CognitoIdentity string // Lambda-Runtime-Cognito-Identity (JSON)
}

type metadataKey struct{}

// WithInvokeMetadata returns a context that makes Invoke send m.
func WithInvokeMetadata(ctx context.Context, m InvokeMetadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, m)
}

// Runtime runs registered functions. It is safe for concurrent use; Close
// it to stop every child process.
type Runtime struct {
	clock   *clock.Clock
	logger  *slog.Logger
	logMu   sync.Mutex     // one prefixed line per Write, across all functions
	wg      sync.WaitGroup // one count per instance until its process and goroutines are gone
	closing chan struct{}

	mu     sync.Mutex
	closed bool
	funcs  map[string]*function
}

// New returns an empty Runtime. A nil clock means clock.New(); a nil logger
// discards.
func New(c *clock.Clock, logger *slog.Logger) *Runtime {
	if c == nil {
		c = clock.New()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{
		clock:   c,
		logger:  logger,
		closing: make(chan struct{}),
		funcs:   make(map[string]*function),
	}
}

// Register validates cfg, fills its defaults and makes the function
// invokable. No process starts until the first Invoke. Every problem with
// cfg is reported at once.
func (r *Runtime) Register(cfg FunctionConfig) error {
	if err := cfg.setDefaults(); err != nil {
		return fmt.Errorf("register %s: %w", cfg.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("register %s: %w", cfg.Name, ErrClosed)
	}
	if _, ok := r.funcs[cfg.Name]; ok {
		return fmt.Errorf("register %s: already registered", cfg.Name)
	}
	r.funcs[cfg.Name] = newFunction(r, cfg)
	return nil
}

func (c *FunctionConfig) setDefaults() error {
	var errs []error
	if !validName(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: want 1-64 letters, digits, '-' or '_'", c.Name))
	}
	switch {
	case c.Command == "" && c.Handler == nil:
		errs = append(errs, errors.New("one of Command and Handler is required"))
	case c.Command != "" && c.Handler != nil:
		errs = append(errs, errors.New("Command and Handler are exclusive"))
	case c.Command != "":
		abs, err := filepath.Abs(c.Command)
		if err != nil {
			errs = append(errs, fmt.Errorf("command: %w", err))
			break
		}
		c.Command = abs
		if fi, err := os.Stat(abs); err != nil {
			errs = append(errs, fmt.Errorf("command: %w", err))
		} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			errs = append(errs, fmt.Errorf("command %s: not an executable file", abs))
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < time.Millisecond || c.Timeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("timeout %v: want 1ms to %v", c.Timeout, MaxTimeout))
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.MemoryMB < MinMemoryMB || c.MemoryMB > MaxMemoryMB {
		errs = append(errs, fmt.Errorf("memory %d MB: want %d to %d", c.MemoryMB, MinMemoryMB, MaxMemoryMB))
	}
	if c.ReservedConcurrency < 0 {
		errs = append(errs, fmt.Errorf("reserved concurrency %d: must not be negative", c.ReservedConcurrency))
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = DefaultMaxInstances
	}
	if c.MaxInstances < 0 {
		errs = append(errs, fmt.Errorf("max instances %d: must not be negative", c.MaxInstances))
	}
	var reserved []string
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		if isReservedEnv(k) {
			reserved = append(reserved, k)
		}
	}
	if len(reserved) > 0 {
		errs = append(errs, fmt.Errorf("environment: reserved keys %v are set by Lambda", reserved))
	}
	if c.Stdout == nil {
		c.Stdout = os.Stderr
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Invoke runs one synchronous (RequestResponse) invocation of function and
// waits for its result. It waits for a free slot when the function is at its
// concurrency cap. If ctx ends before the invocation reached an instance,
// the invocation is withdrawn; if it ends later, Invoke returns ctx's error
// and the invocation runs to completion (or its deadline) unobserved, as a
// Lambda invocation does when its caller hangs up. An empty payload is sent
// as "{}".
func (r *Runtime) Invoke(ctx context.Context, function string, payload []byte) (Result, error) {
	fn, err := r.lookup(function)
	if err != nil {
		return Result{}, err
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if len(payload) > MaxRequestPayload {
		return Result{}, fmt.Errorf("invoke %s: %w: %d bytes, limit %d", function, ErrPayloadTooLarge, len(payload), MaxRequestPayload)
	}
	if !json.Valid(payload) {
		return Result{}, fmt.Errorf("invoke %s: %w", function, ErrInvalidPayload)
	}
	select {
	case fn.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("invoke %s: waiting for a free instance: %w", function, context.Cause(ctx))
	case <-r.closing:
		return Result{}, fmt.Errorf("invoke %s: %w", function, ErrClosed)
	}
	meta, _ := ctx.Value(metadataKey{}).(InvokeMetadata)
	inv := fn.newInvocation(payload, meta)
	if !fn.enqueue(inv) {
		<-fn.slots
		return Result{}, fmt.Errorf("invoke %s: %w", function, ErrClosed)
	}
	select {
	case <-inv.done:
	case <-ctx.Done():
		if fn.withdraw(inv) {
			return Result{}, fmt.Errorf("invoke %s: waiting for an instance: %w", function, context.Cause(ctx))
		}
		select {
		case <-inv.done:
		default:
			return Result{}, fmt.Errorf("invoke %s: request %s: %w", function, inv.id, context.Cause(ctx))
		}
	}
	if inv.err != nil {
		return inv.result, fmt.Errorf("invoke %s: request %s: %w", function, inv.id, inv.err)
	}
	return inv.result, nil
}

func (r *Runtime) lookup(name string) (*function, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("invoke %s: %w", name, ErrClosed)
	}
	fn, ok := r.funcs[name]
	if !ok {
		return nil, fmt.Errorf("invoke %s: %w", name, ErrUnknownFunction)
	}
	return fn, nil
}

// Stats returns function's counters; the zero Stats for an unknown name.
func (r *Runtime) Stats(function string) Stats {
	r.mu.Lock()
	fn := r.funcs[function]
	r.mu.Unlock()
	if fn == nil {
		return Stats{}
	}
	return fn.snapshot()
}

// Close fails invocations still waiting or running with ErrClosed, stops
// every child process (SIGTERM to its process group, SIGKILL after
// ShutdownGrace) and waits until they and their output are gone. In-process
// handlers that ignore their context are not waited for. Close is
// idempotent; Register and Invoke fail with ErrClosed afterwards.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.closed = true
	close(r.closing)
	funcs := slices.Collect(maps.Values(r.funcs))
	r.mu.Unlock()

	var stopping sync.WaitGroup
	for _, fn := range funcs {
		for _, inst := range fn.shutdown() {
			stopping.Go(func() { inst.terminate(r.clock, ShutdownGrace) })
		}
	}
	stopping.Wait()
	r.wg.Wait()
	return nil
}
