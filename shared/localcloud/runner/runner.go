// Package runner is the Lambda side of feedpipe's local cloud: it reads
// template.yaml (the only wiring), creates the template's buckets and queues
// on an S3/SQS endpoint — the embedded cloud, LocalStack or AWS — builds the
// functions with their Makefile targets as `sam build` does, runs their
// bootstrap binaries behind an in-process Lambda Runtime API, and drives
// them from SQS event source mappings, EventBridge schedules and HTTP API
// routes.
//
// All of its time (schedules, batching windows, the HTTP API's event times)
// comes from one clock, which tests move forward.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/clock"
	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/localcloud/console"
	"github.com/feedpipe/feedpipe/shared/localcloud/lambdaruntime"
	"github.com/feedpipe/feedpipe/shared/samtemplate"
)

// Config configures a Runner.
type Config struct {
	Template   string            // path to template.yaml
	StackName  string            // default "feedpipe"
	Parameters map[string]string // template parameter overrides
	Endpoint   string            // S3/SQS endpoint the functions and the runner use
	Region     string            // default us-east-1
	AccessKey  string            // default "test"
	SecretKey  string            // default "test"
	AccountID  string            // default 000000000000
	Clock      *clock.Clock      // default clock.New()
	HTTPAddr   string            // HTTP API listen address; default 127.0.0.1:0
	BuildDir   string            // where bootstrap binaries are built; default a temp dir
	// Handlers replace the built binary of a function (by logical id) with an
	// in-process handler on the same invocation path, for unit tests.
	Handlers map[string]lambdaruntime.Handler
	// Env is added to every function's environment (after the template's).
	Env       map[string]string
	Logger    *slog.Logger // runner logs; default discard
	LogOutput io.Writer    // function output, prefixed per function; default os.Stderr
	// QueueStats, when set, reads queue stats from the cloud itself (the
	// embedded cloud); the queues' age then feeds the alarms. Without it the
	// runner asks GetQueueAttributes, which has no age.
	QueueStats QueueStatsFunc
	// ConsoleStore is the logical id of the bucket the console reads sites
	// from (default StoreBucket); ConsoleSync names the schedule, or its
	// function, that the console's Sync now button fires (default
	// SyncFunction).
	ConsoleStore, ConsoleSync string
}

func (c *Config) setDefaults() error {
	var errs []error
	if c.Template == "" {
		errs = append(errs, errors.New("runner: Template is required"))
	}
	if c.Endpoint == "" {
		errs = append(errs, errors.New("runner: Endpoint is required"))
	}
	if c.StackName == "" {
		c.StackName = "feedpipe"
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.AccessKey == "" {
		c.AccessKey, c.SecretKey = "test", "test"
	}
	if c.AccountID == "" {
		c.AccountID = "000000000000"
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LogOutput == nil {
		c.LogOutput = os.Stderr
	}
	if c.ConsoleStore == "" {
		c.ConsoleStore = "StoreBucket"
	}
	if c.ConsoleSync == "" {
		c.ConsoleSync = "SyncFunction"
	}
	return errors.Join(errs...)
}

// Runner is a running stack.
type Runner struct {
	cfg      Config
	tpl      *samtemplate.Template
	resolver *samtemplate.Resolver
	s3       *s3.Client
	sqs      *sqs.Client
	lambda   *lambdaruntime.Runtime

	queues    map[string]*queue
	buckets   map[string]string
	functions []*function
	mappings  []*SQSMapping
	schedules []*Schedule
	routes    []*Route
	notes     []string
	unused    []string

	metrics   *alarms.Metrics
	evaluator *alarms.Evaluator

	pollers   []*poller
	scheduler *scheduler
	api       *httpAPI
	listener  net.Listener
	server    *http.Server
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	tempBuild string
}

// Start wires the template onto the endpoint and starts every function,
// mapping, schedule and route. A template feature the runner does not
// support stops it with the feature's name and place in the template.
func Start(ctx context.Context, cfg Config) (*Runner, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	tpl, err := samtemplate.Load(cfg.Template)
	if err != nil {
		return nil, err
	}
	if tf, _ := tpl.Transform.(string); tf != "AWS::Serverless-2016-10-31" {
		return nil, fmt.Errorf("%s: Transform must be AWS::Serverless-2016-10-31", cfg.Template)
	}
	r := &Runner{
		cfg: cfg, tpl: tpl,
		resolver: samtemplate.NewResolver(tpl, cfg.StackName, cfg.Region, cfg.AccountID, cfg.Parameters),
		queues:   map[string]*queue{}, buckets: map[string]string{},
		metrics: alarms.NewMetrics(),
	}
	r.cfg.LogOutput = &emfTee{w: cfg.LogOutput, metrics: r.metrics, clock: cfg.Clock, warn: cfg.Logger.Warn}
	for name := range cfg.Parameters {
		if _, ok := tpl.Parameters[name]; !ok {
			return nil, fmt.Errorf("parameter override %s: the template has no such parameter", name)
		}
	}
	creds := credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")
	r.s3 = s3.New(s3.Options{Region: cfg.Region, BaseEndpoint: aws.String(cfg.Endpoint), UsePathStyle: true, Credentials: creds})
	r.sqs = sqs.New(sqs.Options{Region: cfg.Region, BaseEndpoint: aws.String(cfg.Endpoint), Credentials: creds})
	if err := r.checkTypes(); err != nil {
		return nil, err
	}
	if err := r.wireBucketNames(); err != nil {
		return nil, err
	}
	if err := r.wireQueues(ctx); err != nil {
		return nil, err
	}
	if err := r.wireBuckets(ctx); err != nil {
		return nil, err
	}
	for _, id := range tpl.ResourcesOfType(typeFunction) {
		f, err := r.readFunction(id)
		if err != nil {
			return nil, err
		}
		r.functions = append(r.functions, f)
		r.resolver.Refs[id] = f.name
		r.resolver.Attrs[id] = map[string]string{"Arn": fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", cfg.Region, cfg.AccountID, f.name)}
	}
	for _, f := range r.functions {
		if err := r.wireEvents(f); err != nil {
			return nil, err
		}
	}
	if err := r.startAlarms(); err != nil {
		return nil, err
	}
	if err := r.startFunctions(ctx); err != nil {
		return nil, err
	}
	if err := r.startDrivers(); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Runner) checkTypes() error {
	var names []string
	for n := range r.tpl.Resources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := r.tpl.Resources[n].Type
		switch t {
		case typeFunction, typeQueue, typeBucket, typeAlarm:
			if r.tpl.Resources[n].Condition != "" {
				return fmt.Errorf("Resources.%s.Condition: conditional resources are not supported by the local runner", n)
			}
		default:
			why, ok := notEnforced[t]
			if !ok {
				return fmt.Errorf("Resources.%s: the local runner does not support %s", n, t)
			}
			r.unused = append(r.unused, fmt.Sprintf("%s (%s): %s", n, t, why))
		}
	}
	return nil
}

func (r *Runner) startFunctions(ctx context.Context) error {
	buildDir := r.cfg.BuildDir
	if buildDir == "" {
		d, err := os.MkdirTemp("", "feedpipe-build-")
		if err != nil {
			return err
		}
		buildDir, r.tempBuild = d, d
	}
	r.cfg.BuildDir, _ = filepath.Abs(buildDir)
	bins, err := r.buildAll(ctx, r.functions)
	if err != nil {
		return err
	}
	r.lambda = lambdaruntime.New(r.cfg.Clock, r.cfg.Logger)
	for _, f := range r.functions {
		env := map[string]string{}
		for k, v := range f.env {
			env[k] = v
		}
		for k, v := range r.cfg.Env {
			env[k] = v
		}
		env["AWS_ENDPOINT_URL"] = r.cfg.Endpoint
		env["AWS_ACCESS_KEY_ID"] = r.cfg.AccessKey
		env["AWS_SECRET_ACCESS_KEY"] = r.cfg.SecretKey
		env["AWS_REGION"] = r.cfg.Region
		env["AWS_DEFAULT_REGION"] = r.cfg.Region
		env["FEEDPIPE_S3_PATH_STYLE"] = "true"
		fc := lambdaruntime.FunctionConfig{
			Name: f.logicalID, Command: bins[f.logicalID], Handler: r.cfg.Handlers[f.logicalID],
			Env: env, Timeout: f.timeout, MemoryMB: f.memoryMB, ReservedConcurrency: f.reserved,
			Stdout: r.cfg.LogOutput, Stderr: r.cfg.LogOutput,
		}
		if err := r.lambda.Register(fc); err != nil {
			return fmt.Errorf("register %s: %w", f.logicalID, err)
		}
	}
	return nil
}

// invoke runs a function and reduces the result to what drivers need.
func (r *Runner) invoke(ctx context.Context, function string, payload []byte) (invocationResult, error) {
	res, err := r.lambda.Invoke(ctx, function, payload)
	if err != nil {
		return invocationResult{}, err
	}
	out := invocationResult{Payload: res.Payload}
	if res.FuncError != nil {
		out.FunctionError = res.FuncError.Error()
	}
	return out, nil
}

func (r *Runner) startDrivers() error {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, m := range r.mappings {
		if !m.Enabled {
			continue
		}
		p := newPoller(*m, r.sqs, r.cfg.Clock, r.invoke, r.cfg.Logger)
		r.pollers = append(r.pollers, p)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			p.run(ctx)
		}()
	}
	r.scheduler = newScheduler(r.cfg.Clock, func(ctx context.Context, fn string, payload []byte) error {
		res, err := r.invoke(ctx, fn, payload)
		if err == nil && res.FunctionError != "" {
			err = errors.New(res.FunctionError)
		}
		return err
	}, r.cfg.Logger)
	for _, s := range r.schedules {
		r.scheduler.start(ctx, s)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.runAlarms(ctx)
	}()
	r.api = newHTTPAPI(r.routes, r.invoke, r.cfg.Clock, r.cfg.AccountID, r.cfg.Logger)
	r.api.extra = r.controlHandler()
	l, err := net.Listen("tcp", r.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http api: listen on %s: %w", r.cfg.HTTPAddr, err)
	}
	r.listener = l
	r.server = &http.Server{Handler: r.api, ReadHeaderTimeout: 30 * time.Second}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.cfg.Logger.Error("http api stopped", "err", err)
		}
	}()
	return nil
}

// HTTPEndpoint is the base URL of the HTTP API, e.g. http://127.0.0.1:3000.
func (r *Runner) HTTPEndpoint() string {
	if r.listener == nil {
		return ""
	}
	return "http://" + r.listener.Addr().String()
}

// Invoke runs a function once with a payload, as `sam local invoke` would.
func (r *Runner) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	res, err := r.invoke(ctx, function, payload)
	if err != nil {
		return nil, err
	}
	if res.FunctionError != "" {
		return res.Payload, fmt.Errorf("%s: %s", function, res.FunctionError)
	}
	return res.Payload, nil
}

// FireSchedule fires a schedule now, by its name or its function's logical
// id, with the event it would send at the clock's current time.
func (r *Runner) FireSchedule(ctx context.Context, name string) error {
	for _, s := range r.schedules {
		if s.Name == name || s.Function == name {
			res, err := r.invoke(ctx, s.Function, s.Payload(r.cfg.Clock.Now()))
			if err == nil && res.FunctionError != "" {
				err = errors.New(res.FunctionError)
			}
			return err
		}
	}
	return fmt.Errorf("no schedule named %q", name)
}

// Fired reports how often the named schedule fired on its own.
func (r *Runner) Fired(name string) int { return r.scheduler.fired(name) }

// QueueURL returns the URL of a queue by logical id.
func (r *Runner) QueueURL(logicalID string) string {
	if q, ok := r.queues[logicalID]; ok {
		return q.url
	}
	return ""
}

// BucketName returns the name of a bucket by logical id.
func (r *Runner) BucketName(logicalID string) string { return r.buckets[logicalID] }

// Close stops the drivers, then the functions.
func (r *Runner) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	if r.scheduler != nil {
		r.scheduler.stop()
	}
	var errs []error
	if r.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, r.server.Shutdown(ctx))
		cancel()
	}
	r.wg.Wait()
	if r.lambda != nil {
		errs = append(errs, r.lambda.Close())
	}
	if r.tempBuild != "" {
		errs = append(errs, os.RemoveAll(r.tempBuild))
	}
	return errors.Join(errs...)
}

// Summary describes the running stack for the start-up banner.
func (r *Runner) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  HTTP API      %s\n", r.HTTPEndpoint())
	fmt.Fprintf(&b, "  console       %s%s\n", r.HTTPEndpoint(), console.Path)
	for _, rt := range r.routes {
		fmt.Fprintf(&b, "    %-40s → %s\n", rt.RouteKey(), rt.Function)
	}
	fmt.Fprintf(&b, "  buckets\n")
	for _, id := range sortedKeys(r.buckets) {
		fmt.Fprintf(&b, "    %-24s %s\n", id, r.buckets[id])
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "    %s\n", n)
	}
	fmt.Fprintf(&b, "  queues\n")
	for _, id := range sortedKeys(r.queues) {
		fmt.Fprintf(&b, "    %-24s %s\n", id, r.queues[id].url)
	}
	fmt.Fprintf(&b, "  functions\n")
	for _, f := range r.functions {
		fmt.Fprintf(&b, "    %-24s timeout %v, memory %d MB\n", f.logicalID, f.timeout, f.memoryMB)
	}
	for _, m := range r.mappings {
		fmt.Fprintf(&b, "    %-24s ← %s (batch %d, concurrency %d, partial failures %v)\n", m.Function, m.QueueARN, m.BatchSize, m.MaxConcurrency, m.ReportBatchItemFailures)
	}
	fmt.Fprintf(&b, "  alarms        %d from the template, evaluated every %v of the stack's clock (GET %salarms)\n", len(r.evaluator.Alarms()), alarmInterval, ControlPrefix)
	fmt.Fprintf(&b, "  schedules\n")
	for _, s := range r.schedules {
		state := "enabled"
		if !s.Enabled {
			state = "disabled"
		}
		fmt.Fprintf(&b, "    %-24s %s → %s (%s)\n", s.Name, s.Expression, s.Function, state)
	}
	if len(r.unused) > 0 {
		fmt.Fprintf(&b, "  accepted, not applied locally\n")
		for _, u := range r.unused {
			fmt.Fprintf(&b, "    %s\n", u)
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
