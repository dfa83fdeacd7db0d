package lambdaruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedpipe/feedpipe/shared/clock"
	"github.com/feedpipe/feedpipe/shared/syncbuf"
)

func TestEchoRoundTripAndWarmReuse(t *testing.T) {
	t.Parallel()
	rt := newTestRuntime(t, nil, nil)
	mustRegister(t, rt, FunctionConfig{Name: "Echo", Command: buildFunction(t, "echo")})

	payload := `{"site":"shop-1","sku":"A-1","qty":3}`
	first := mustInvoke(t, rt, "Echo", payload)
	if first.FuncError != nil {
		t.Fatalf("FuncError = %v", first.FuncError)
	}
	if string(first.Payload) != payload {
		t.Errorf("Payload = %s, want %s", first.Payload, payload)
	}
	if !first.ColdStart || first.RequestID == "" {
		t.Errorf("first invocation: ColdStart = %v, RequestID = %q; want a cold start with a request id", first.ColdStart, first.RequestID)
	}

	second := mustInvoke(t, rt, "Echo", `"again"`)
	if second.ColdStart {
		t.Error("second invocation was a cold start; want the warm instance reused")
	}
	if string(second.Payload) != `"again"` || second.RequestID == first.RequestID {
		t.Errorf("second invocation = %s (request %s), want \"again\" with a new request id", second.Payload, second.RequestID)
	}

	st := rt.Stats("Echo")
	if st.Invocations != 2 || st.ColdStarts != 1 || st.Instances != 1 || st.Warm != 1 || st.InFlight != 0 || st.Errors != 0 {
		t.Errorf("Stats = %+v; want 2 invocations, 1 cold start, 1 warm instance, none in flight", st)
	}
	if st.ColdStartMax <= 0 || st.ColdStartMean() <= 0 {
		t.Errorf("cold start not measured: %+v", st)
	}
}

func TestFunctionErrors(t *testing.T) {
	t.Parallel()
	failBin := buildFunction(t, "fail")
	tests := []struct {
		name      string
		cfg       FunctionConfig
		wantType  string
		wantMsg   string
		wantStack bool
	}{
		{
			name:     "binary returns a typed error",
			cfg:      FunctionConfig{Command: failBin},
			wantType: "ValidationError",
			wantMsg:  "invalid field sku",
		},
		{
			name: "handler returns an error",
			cfg: FunctionConfig{Handler: func(context.Context, []byte) ([]byte, error) {
				return nil, errors.New("boom")
			}},
			wantType: "errorString",
			wantMsg:  "boom",
		},
		{
			name: "handler returns a FunctionError",
			cfg: FunctionConfig{Handler: func(context.Context, []byte) ([]byte, error) {
				return nil, fmt.Errorf("wrapped: %w", &FunctionError{ErrorType: "Feed.Rejected", ErrorMessage: "bad delta"})
			}},
			wantType: "Feed.Rejected",
			wantMsg:  "bad delta",
		},
		{
			name: "handler panics",
			cfg: FunctionConfig{Handler: func(context.Context, []byte) ([]byte, error) {
				panic("kaput")
			}},
			wantType:  "string",
			wantMsg:   "kaput",
			wantStack: true,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := newTestRuntime(t, nil, nil)
			cfg := tt.cfg
			cfg.Name, cfg.Stdout, cfg.Stderr = fmt.Sprintf("Fail%d", i), io.Discard, io.Discard
			mustRegister(t, rt, cfg)

			res := mustInvoke(t, rt, cfg.Name, `{}`)
			if res.FuncError == nil {
				t.Fatalf("FuncError = nil, payload %s", res.Payload)
			}
			if res.FuncError.ErrorType != tt.wantType || res.FuncError.ErrorMessage != tt.wantMsg {
				t.Errorf("FuncError = %+v, want %s: %s", res.FuncError, tt.wantType, tt.wantMsg)
			}
			if tt.wantStack && len(res.FuncError.StackTrace) == 0 {
				t.Error("no stack trace")
			}
			var doc FunctionError
			if err := json.Unmarshal(res.Payload, &doc); err != nil || doc.ErrorType != tt.wantType {
				t.Errorf("Payload %s is not the error document (%v)", res.Payload, err)
			}
			if st := rt.Stats(cfg.Name); st.Errors != 1 || st.Invocations != 1 {
				t.Errorf("Stats = %+v, want 1 invocation and 1 error", st)
			}
			// The function stays invokable after an error.
			if again := mustInvoke(t, rt, cfg.Name, `{}`); again.FuncError == nil {
				t.Errorf("second invocation: FuncError = nil")
			}
		})
	}
}

func TestTimeoutKillsInstanceAndNextInvocationStartsFresh(t *testing.T) {
	t.Parallel()
	bin := buildFunction(t, "sleep")
	stdout := &syncbuf.Buffer{}
	rt := newTestRuntime(t, nil, nil)
	mustRegister(t, rt, FunctionConfig{Name: "Slow", Command: bin, Timeout: 300 * time.Millisecond, Stdout: stdout})

	res := mustInvoke(t, rt, "Slow", `{"sleepMs":20000}`)
	if res.FuncError == nil || res.FuncError.ErrorType != "Sandbox.Timedout" ||
		res.FuncError.ErrorMessage != "Task timed out after 0.30 seconds" {
		t.Fatalf("FuncError = %+v, want Sandbox.Timedout after 0.30 seconds", res.FuncError)
	}
	if res.Duration < 300*time.Millisecond {
		t.Errorf("Duration = %v, want at least the timeout", res.Duration)
	}
	waitFor(t, "the timed-out process to be killed", func() bool { return processesRunning(t, bin) == 0 })

	next := mustInvoke(t, rt, "Slow", `{"sleepMs":0}`)
	if next.FuncError != nil || !next.ColdStart {
		t.Errorf("next invocation: FuncError = %v, ColdStart = %v; want success on a fresh instance", next.FuncError, next.ColdStart)
	}
	st := rt.Stats("Slow")
	if st.Timeouts != 1 || st.Errors != 1 || st.ColdStarts != 2 || st.Instances != 1 {
		t.Errorf("Stats = %+v, want 1 timeout, 2 cold starts, 1 live instance", st)
	}
	if want := res.RequestID + " Task timed out after 0.30 seconds"; !strings.Contains(stdout.String(), want) {
		t.Errorf("function log lacks %q:\n%s", want, stdout.String())
	}
}

func TestClockAdvancePastDeadlineTimesOut(t *testing.T) {
	t.Parallel()
	bin := buildFunction(t, "sleep")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name    string
		cfg     FunctionConfig
		started func(stdout *syncbuf.Buffer) bool
	}{
		{
			name: "binary",
			cfg:  FunctionConfig{Command: bin},
			started: func(stdout *syncbuf.Buffer) bool {
				return strings.Contains(stdout.String(), "] start\n")
			},
		},
		{
			name: "handler ignoring its deadline",
			cfg: FunctionConfig{Handler: func(context.Context, []byte) ([]byte, error) {
				<-release
				return []byte(`"late"`), nil
			}},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.New()
			rt := newTestRuntime(t, clk, nil)
			stdout := &syncbuf.Buffer{}
			cfg := tt.cfg
			cfg.Name, cfg.Timeout, cfg.Stdout = fmt.Sprintf("Stuck%d", i), time.Minute, stdout
			mustRegister(t, rt, cfg)

			type outcome struct {
				res Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := rt.Invoke(context.Background(), cfg.Name, []byte(`{"sleepMs":600000}`))
				done <- outcome{res, err}
			}()
			waitFor(t, "the invocation to start", func() bool {
				if tt.started != nil {
					return tt.started(stdout)
				}
				return rt.Stats(cfg.Name).Invocations == 1
			})
			clk.Advance(2 * time.Minute)

			select {
			case o := <-done:
				if o.err != nil {
					t.Fatal(o.err)
				}
				if fe := o.res.FuncError; fe == nil || fe.ErrorType != "Sandbox.Timedout" || fe.ErrorMessage != "Task timed out after 60.00 seconds" {
					t.Errorf("FuncError = %+v, want Sandbox.Timedout after 60.00 seconds", fe)
				}
				if o.res.Duration < time.Minute {
					t.Errorf("Duration = %v, want the clock time to the deadline", o.res.Duration)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Invoke did not return after the clock passed the deadline")
			}
			if st := rt.Stats(cfg.Name); st.Timeouts != 1 || st.Instances != 0 {
				t.Errorf("Stats = %+v, want 1 timeout and the instance gone", st)
			}
		})
	}
}

func TestCrashIsExitErrorAndInstanceIsReplaced(t *testing.T) {
	t.Parallel()
	bin := buildFunction(t, "crash")
	rt := newTestRuntime(t, nil, nil)
	stdout := &syncbuf.Buffer{}
	mustRegister(t, rt, FunctionConfig{Name: "Crash", Command: bin, Stdout: stdout})

	mustInvoke(t, rt, "Crash", `{}`) // warm up, so the crash is mid-invocation of a ready instance
	res := mustInvoke(t, rt, "Crash", `{"exit":3}`)
	want := "RequestId: " + res.RequestID + " Error: Runtime exited with error: exit status 3"
	if res.FuncError == nil || res.FuncError.ErrorType != "Runtime.ExitError" || res.FuncError.ErrorMessage != want {
		t.Fatalf("FuncError = %+v, want Runtime.ExitError %q", res.FuncError, want)
	}

	next := mustInvoke(t, rt, "Crash", `{}`)
	if next.FuncError != nil || string(next.Payload) != `"ok"` || !next.ColdStart {
		t.Errorf("after the crash: %s, FuncError %v, ColdStart %v; want \"ok\" from a fresh instance", next.Payload, next.FuncError, next.ColdStart)
	}
	if st := rt.Stats("Crash"); st.Errors != 1 || st.ColdStarts != 2 || st.Instances != 1 {
		t.Errorf("Stats = %+v, want 1 error, 2 cold starts, 1 live instance", st)
	}
}

func TestInitFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		function string
		env      map[string]string
		wantType string
		wantMsg  string // after "RequestId: <id> Error: " when wantID
		wantID   bool
	}{
		{
			name:     "process exits before /next",
			function: "crash",
			env:      map[string]string{"CRASH_AT_INIT": "1"},
			wantType: "Runtime.ExitError",
			wantMsg:  "Runtime exited with error: exit status 2",
			wantID:   true,
		},
		{
			name:     "runtime posts /runtime/init/error",
			function: "raw",
			env:      map[string]string{"RAW_INIT_ERROR": "1"},
			wantType: "Runtime.ConfigError",
			wantMsg:  "TABLE_NAME is not set",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bin := buildFunction(t, tt.function)
			rt := newTestRuntime(t, nil, nil)
			name := fmt.Sprintf("Init%d", i)
			mustRegister(t, rt, FunctionConfig{Name: name, Command: bin, Env: tt.env, Stdout: &syncbuf.Buffer{}, Stderr: &syncbuf.Buffer{}})

			for attempt := 1; attempt <= 2; attempt++ { // each invocation gets a new instance, which fails again
				res := mustInvoke(t, rt, name, `{}`)
				want := tt.wantMsg
				if tt.wantID {
					want = "RequestId: " + res.RequestID + " Error: " + tt.wantMsg
				}
				if res.FuncError == nil || res.FuncError.ErrorType != tt.wantType || res.FuncError.ErrorMessage != want {
					t.Fatalf("attempt %d: FuncError = %+v, want %s %q", attempt, res.FuncError, tt.wantType, want)
				}
				if !res.ColdStart {
					t.Errorf("attempt %d: ColdStart = false", attempt)
				}
			}
			waitFor(t, "the failed instances to go", func() bool { return processesRunning(t, bin) == 0 })
			if st := rt.Stats(name); st.InitFailures != 2 || st.ColdStarts != 0 || st.Instances != 0 || st.Errors != 2 {
				t.Errorf("Stats = %+v, want 2 init failures and no live instance", st)
			}
		})
	}
}

func TestReservedConcurrencyCapsInstancesInFlight(t *testing.T) {
	t.Parallel()
	rt := newTestRuntime(t, nil, nil)
	mustRegister(t, rt, FunctionConfig{Name: "Capped", Command: buildFunction(t, "sleep"), ReservedConcurrency: 2, Stdout: &syncbuf.Buffer{}})

	stop := make(chan struct{})
	var sampled sync.WaitGroup
	var maxInFlight, maxInstances int
	sampled.Go(func() {
		for {
			st := rt.Stats("Capped")
			maxInFlight, maxInstances = max(maxInFlight, st.InFlight), max(maxInstances, st.Instances)
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})

	type span struct{ Start, End int64 }
	spans := make([]span, 5)
	var wg sync.WaitGroup
	for i := range spans {
		wg.Go(func() {
			res, err := rt.Invoke(context.Background(), "Capped", []byte(`{"sleepMs":150}`))
			if err != nil || res.FuncError != nil {
				t.Errorf("invocation %d: %v %v", i, err, res.FuncError)
				return
			}
			if err := json.Unmarshal(res.Payload, &spans[i]); err != nil {
				t.Errorf("invocation %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	sampled.Wait()

	// The children timed their own handlers; at no moment did more than
	// two run at once.
	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.Start, +1}, edge{s.End, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.delta - b.delta // an end before a start at the same instant
	})
	running, peak := 0, 0
	for _, e := range edges {
		running += e.delta
		peak = max(peak, running)
	}
	if peak > 2 {
		t.Errorf("%d handlers ran at once, want at most 2", peak)
	}
	if maxInFlight > 2 || maxInstances > 2 {
		t.Errorf("Stats showed %d in flight and %d instances, want at most 2", maxInFlight, maxInstances)
	}
	st := rt.Stats("Capped")
	if st.Invocations != 5 || st.ColdStarts > 2 {
		t.Errorf("Stats = %+v, want 5 invocations on at most 2 instances", st)
	}
	t.Logf("peak concurrency %d, cold starts %d", peak, st.ColdStarts)
}

func TestChildEnvironment(t *testing.T) {
	// Not parallel: it sets the parent's environment.
	for k, v := range map[string]string{
		"AWS_PROFILE":           "parent-profile",
		"AWS_CA_BUNDLE":         "/parent/ca.pem",
		"AWS_ACCESS_KEY_ID":     "parent-key",
		"AWS_SECRET_ACCESS_KEY": "parent-secret",
		"AWS_SESSION_TOKEN":     "parent-token",
		"AWS_ENDPOINT_URL":      "http://parent.invalid",
		"FEEDPIPE_PARENT_ONLY":  "1",
	} {
		t.Setenv(k, v)
	}
	bin := buildFunction(t, "env")
	rt := newTestRuntime(t, nil, nil)
	mustRegister(t, rt, FunctionConfig{
		Name:     "EnvFunction",
		Command:  bin,
		MemoryMB: 256,
		Env: map[string]string{
			"STORE_BUCKET":          "feedpipe-store",
			"AWS_ACCESS_KEY_ID":     "test",
			"AWS_SECRET_ACCESS_KEY": "test",
			"AWS_ENDPOINT_URL":      "http://127.0.0.1:1",
		},
	})
	res := mustInvoke(t, rt, "EnvFunction", `{}`)
	var env map[string]string
	if err := json.Unmarshal(res.Payload, &env); err != nil {
		t.Fatalf("%v: %s", err, res.Payload)
	}

	want := map[string]string{
		"STORE_BUCKET":                    "feedpipe-store",
		"AWS_ACCESS_KEY_ID":               "test",
		"AWS_SECRET_ACCESS_KEY":           "test",
		"AWS_ENDPOINT_URL":                "http://127.0.0.1:1",
		"AWS_REGION":                      "us-east-1",
		"AWS_DEFAULT_REGION":              "us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME":        "EnvFunction",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/EnvFunction",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                filepath.Dir(bin),
		"LAMBDA_RUNTIME_DIR":              filepath.Dir(bin),
		"TZ":                              "UTC",
		"LANG":                            "en_US.UTF-8",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.HasPrefix(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:") {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q, want a loopback address", env["AWS_LAMBDA_RUNTIME_API"])
	}
	if s := env["AWS_LAMBDA_LOG_STREAM_NAME"]; !strings.Contains(s, "/[$LATEST]") {
		t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q", s)
	}
	// Nothing else of the parent's comes through.
	allowed := []string{"PATH", "HOME", "TMPDIR", "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_LOG_STREAM_NAME",
		"_X_AMZN_TRACE_ID"} // set by aws-lambda-go itself for each invocation
	for k := range env {
		if _, ok := want[k]; !ok && !slices.Contains(allowed, k) {
			t.Errorf("unexpected variable %s=%q in the child's environment", k, env[k])
		}
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_CA_BUNDLE", "AWS_SESSION_TOKEN", "FEEDPIPE_PARENT_ONLY"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s=%q leaked from the parent", k, v)
		}
	}
}

func TestLogLinesArePrefixed(t *testing.T) {
	t.Parallel()
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	rt := New(nil, nil)
	mustRegister(t, rt, FunctionConfig{Name: "LogFunction", Command: buildFunction(t, "logs"), Stdout: stdout, Stderr: stderr})
	res := mustInvoke(t, rt, "LogFunction", `{}`)
	if string(res.Payload) != `"logged"` {
		t.Fatalf("Payload = %s", res.Payload)
	}
	if err := rt.Close(); err != nil { // waits until the output is copied
		t.Fatal(err)
	}

	out := stdout.String()
	for _, want := range []string{
		"[LogFunction] plain line to stdout\n",
		"[LogFunction] two lines\n[LogFunction] in one write\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	var sawJSON bool
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(line, "[LogFunction] ")
		if !ok {
			t.Errorf("stdout line without prefix: %q", line)
			continue
		}
		var rec struct {
			Msg string `json:"msg"`
			SKU string `json:"sku"`
		}
		if strings.HasPrefix(rest, "{") {
			if err := json.Unmarshal([]byte(rest), &rec); err != nil || rec.Msg != "processed" || rec.SKU != "A-1" {
				t.Errorf("JSON log line not intact: %q (%v)", rest, err)
			}
			sawJSON = true
		}
	}
	if !sawJSON {
		t.Errorf("no JSON log line in stdout:\n%s", out)
	}
	if got := stderr.String(); got != "[LogFunction] line to stderr\n" {
		t.Errorf("stderr = %q", got)
	}
}

func TestMemoryIsASoftLimit(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	rt := newTestRuntime(t, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	mustRegister(t, rt, FunctionConfig{Name: "Hungry", Command: buildFunction(t, "sleep"), MemoryMB: 128, Stdout: &syncbuf.Buffer{}})

	res := mustInvoke(t, rt, "Hungry", `{"allocMb":200}`)
	if res.FuncError != nil {
		t.Fatalf("FuncError = %v; the memory size is not enforced", res.FuncError)
	}
	if st := rt.Stats("Hungry"); st.PeakMemoryMB <= 128 || st.Instances != 1 {
		t.Errorf("Stats = %+v, want a peak above 128 MB and the instance alive", st)
	}
	waitFor(t, "the memory warning", func() bool {
		return strings.Contains(logs.String(), "used more memory than its memory size")
	})
}

func TestCloseStopsEveryProcess(t *testing.T) {
	t.Parallel()
	echo, sleep := buildFunction(t, "echo"), buildFunction(t, "sleep")
	rt := New(nil, nil)
	stdout := &syncbuf.Buffer{}
	mustRegister(t, rt, FunctionConfig{Name: "Idle", Command: echo})
	mustRegister(t, rt, FunctionConfig{Name: "Stubborn", Command: sleep, Timeout: time.Minute, Stdout: stdout,
		Env: map[string]string{"IGNORE_SIGTERM": "1"}})

	mustInvoke(t, rt, "Idle", `{}`)
	errc := make(chan error, 1)
	go func() {
		_, err := rt.Invoke(context.Background(), "Stubborn", []byte(`{"sleepMs":600000}`))
		errc <- err
	}()
	waitFor(t, "the stubborn invocation to start", func() bool { return strings.Contains(stdout.String(), "start") })
	if n := processesRunning(t, echo) + processesRunning(t, sleep); n != 2 {
		t.Fatalf("%d processes before Close, want 2", n)
	}

	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if n := processesRunning(t, echo) + processesRunning(t, sleep); n != 0 {
		t.Errorf("%d processes after Close, want 0", n)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("in-flight Invoke = %v, want ErrClosed", err)
	}
	if _, err := rt.Invoke(context.Background(), "Idle", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close = %v, want ErrClosed", err)
	}
	if err := rt.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestRuntimeAPI(t *testing.T) {
	t.Parallel()
	clk := clock.New()
	rt := newTestRuntime(t, clk, nil)
	stdout := &syncbuf.Buffer{}
	mustRegister(t, rt, FunctionConfig{Name: "Raw", Command: buildFunction(t, "raw"), Timeout: 5 * time.Second, Stdout: stdout})
	ctx := context.Background()

	t.Run("next carries Lambda's headers", func(t *testing.T) {
		meta := InvokeMetadata{
			TraceID:         "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
			ClientContext:   `{"client":{"app_title":"feedpipe"}}`,
			CognitoIdentity: `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`,
		}
		before := clk.Now()
		res, err := rt.Invoke(WithInvokeMetadata(ctx, meta), "Raw", []byte(`{"Action":"headers"}`))
		after := clk.Now()
		if err != nil || res.FuncError != nil {
			t.Fatalf("Invoke: %v %v", err, res.FuncError)
		}
		var h map[string]string
		if err := json.Unmarshal(res.Payload, &h); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"Lambda-Runtime-Aws-Request-Id":       res.RequestID,
			"Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:Raw",
			"Lambda-Runtime-Trace-Id":             meta.TraceID,
			"Lambda-Runtime-Client-Context":       meta.ClientContext,
			"Lambda-Runtime-Cognito-Identity":     meta.CognitoIdentity,
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("%s = %q, want %q", k, h[k], v)
			}
		}
		var ms int64
		if _, err := fmt.Sscan(h["Lambda-Runtime-Deadline-Ms"], &ms); err != nil {
			t.Fatalf("Lambda-Runtime-Deadline-Ms = %q", h["Lambda-Runtime-Deadline-Ms"])
		}
		lo, hi := before.Add(5*time.Second).UnixMilli(), after.Add(5*time.Second).UnixMilli()
		if ms < lo || ms > hi {
			t.Errorf("deadline %d outside [%d, %d]: not clock now + timeout", ms, lo, hi)
		}
	})

	t.Run("unknown request id is 400 InvalidRequestID", func(t *testing.T) {
		res := mustInvoke(t, rt, "Raw", `{"Action":"bad-id"}`)
		var r struct {
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(res.Payload, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != 400 || compactJSON(t, r.Body) != `{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}` {
			t.Errorf("got %d %s", r.Status, r.Body)
		}
	})

	t.Run("second response to one request is refused", func(t *testing.T) {
		res := mustInvoke(t, rt, "Raw", `{"Action":"twice"}`)
		if string(res.Payload) != `"first"` {
			t.Errorf("Payload = %s, want the first response", res.Payload)
		}
		waitFor(t, "the runtime's log line", func() bool {
			return strings.Contains(stdout.String(), `[Raw] second response: 400 {"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}`)
		})
	})

	t.Run("oversized response", func(t *testing.T) {
		res := mustInvoke(t, rt, "Raw", `{"Action":"big"}`)
		if res.FuncError == nil || res.FuncError.ErrorType != "Function.ResponseSizeTooLarge" ||
			res.FuncError.ErrorMessage != "Response payload size exceeded maximum allowed payload size (6291556 bytes)." {
			t.Errorf("FuncError = %+v", res.FuncError)
		}
		waitFor(t, "the runtime's log line", func() bool {
			return strings.Contains(stdout.String(), `[Raw] big response: 413 {"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"}`)
		})
	})

	t.Run("error body that is not JSON", func(t *testing.T) {
		res := mustInvoke(t, rt, "Raw", `{"Action":"error-text"}`)
		if res.FuncError == nil || res.FuncError.ErrorType != "Runtime.Custom" || res.FuncError.ErrorMessage != "something broke" {
			t.Errorf("FuncError = %+v", res.FuncError)
		}
	})

	if st := rt.Stats("Raw"); st.ColdStarts != 1 {
		t.Errorf("Stats = %+v, want every request served by one instance", st)
	}
}

func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return buf.String()
}
