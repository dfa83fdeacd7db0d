package lambdaruntime

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/feedpipe/feedpipe/shared/clock"
)

func TestInProcessHandler(t *testing.T) {
	t.Parallel()
	clk := clock.New()
	rt := newTestRuntime(t, clk, nil)
	type seen struct {
		RequestID string    `json:"requestId"`
		ARN       string    `json:"arn"`
		Deadline  time.Time `json:"deadline"`
		Payload   string    `json:"payload"`
	}
	mustRegister(t, rt, FunctionConfig{
		Name:    "InProc",
		Timeout: 7 * time.Second,
		Handler: func(ctx context.Context, payload []byte) ([]byte, error) {
			lc, _ := lambdacontext.FromContext(ctx)
			deadline, _ := ctx.Deadline()
			return json.Marshal(seen{lc.AwsRequestID, lc.InvokedFunctionArn, deadline, string(payload)})
		},
	})

	before := clk.Now()
	first := mustInvoke(t, rt, "InProc", `{"sku":"A-1"}`)
	after := clk.Now()
	var got seen
	if err := json.Unmarshal(first.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got.RequestID != first.RequestID || got.ARN != "arn:aws:lambda:us-east-1:000000000000:function:InProc" || got.Payload != `{"sku":"A-1"}` {
		t.Errorf("handler saw %+v, result %+v", got, first)
	}
	if got.Deadline.Before(before.Add(7*time.Second)) || got.Deadline.After(after.Add(7*time.Second)) {
		t.Errorf("deadline %v is not clock now + timeout", got.Deadline)
	}
	if !first.ColdStart {
		t.Error("first invocation: ColdStart = false")
	}
	if second := mustInvoke(t, rt, "InProc", `{}`); second.ColdStart {
		t.Error("second invocation: ColdStart = true, want the instance reused")
	}
	if st := rt.Stats("InProc"); st.Invocations != 2 || st.ColdStarts != 1 || st.Instances != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestHandlerContextEndsAtClockDeadline(t *testing.T) {
	t.Parallel()
	clk := clock.New()
	rt := newTestRuntime(t, clk, nil)
	ctxErr := make(chan error, 1)
	started := make(chan struct{})
	mustRegister(t, rt, FunctionConfig{
		Name:    "Polite",
		Timeout: time.Minute,
		Stdout:  io.Discard,
		Handler: func(ctx context.Context, _ []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			ctxErr <- ctx.Err()
			return nil, ctx.Err()
		},
	})
	done := make(chan Result, 1)
	go func() {
		res, _ := rt.Invoke(context.Background(), "Polite", nil)
		done <- res
	}()
	<-started
	clk.Advance(time.Minute)
	if err := <-ctxErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler's ctx.Err() = %v, want DeadlineExceeded", err)
	}
	if res := <-done; res.FuncError == nil || res.FuncError.ErrorType != "Sandbox.Timedout" {
		t.Errorf("FuncError = %+v, want Sandbox.Timedout", res.FuncError)
	}
}

func TestReservedConcurrencyInProcess(t *testing.T) {
	t.Parallel()
	rt := newTestRuntime(t, nil, nil)
	var running, peak atomic.Int32
	mustRegister(t, rt, FunctionConfig{
		Name:                "Capped",
		ReservedConcurrency: 2,
		Handler: func(context.Context, []byte) ([]byte, error) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			running.Add(-1)
			return []byte(`"done"`), nil
		},
	})
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if res, err := rt.Invoke(context.Background(), "Capped", nil); err != nil || res.FuncError != nil {
				t.Errorf("Invoke: %v %v", err, res.FuncError)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 2 {
		t.Errorf("%d handlers ran at once, want at most 2", p)
	}
	if st := rt.Stats("Capped"); st.Invocations != 5 || st.ColdStarts > 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestInvokeWaitingForSlotRespectsContext(t *testing.T) {
	t.Parallel()
	rt := newTestRuntime(t, nil, nil)
	release, started := make(chan struct{}), make(chan struct{}, 1)
	mustRegister(t, rt, FunctionConfig{
		Name:                "Single",
		ReservedConcurrency: 1,
		Handler: func(context.Context, []byte) ([]byte, error) {
			started <- struct{}{}
			<-release
			return []byte(`"ok"`), nil
		},
	})
	first := make(chan error, 1)
	go func() {
		_, err := rt.Invoke(context.Background(), "Single", nil)
		first <- err
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := rt.Invoke(ctx, "Single", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Invoke at the cap = %v, want DeadlineExceeded", err)
	}
	if st := rt.Stats("Single"); st.InFlight != 1 || st.Instances != 1 {
		t.Errorf("Stats = %+v, want the first invocation alone in flight", st)
	}
	close(release)
	if err := <-first; err != nil {
		t.Error(err)
	}
	if res := mustInvoke(t, rt, "Single", `{}`); string(res.Payload) != `"ok"` || res.ColdStart {
		t.Errorf("after the slot freed: %s, ColdStart %v", res.Payload, res.ColdStart)
	}
}

func TestInvokeRefusals(t *testing.T) {
	t.Parallel()
	rt := newTestRuntime(t, nil, nil)
	mustRegister(t, rt, FunctionConfig{Name: "Echo", Handler: func(_ context.Context, p []byte) ([]byte, error) { return p, nil }})
	closed := New(nil, nil)
	mustRegister(t, closed, FunctionConfig{Name: "Echo", Handler: func(_ context.Context, p []byte) ([]byte, error) { return p, nil }})
	_ = closed.Close()

	big := `"` + strings.Repeat("x", MaxRequestPayload) + `"`
	tests := []struct {
		name     string
		rt       *Runtime
		function string
		payload  string
		want     error
	}{
		{"unknown function", rt, "Missing", `{}`, ErrUnknownFunction},
		{"payload over 6 MB", rt, "Echo", big, ErrPayloadTooLarge},
		{"payload not JSON", rt, "Echo", `{"sku":`, ErrInvalidPayload},
		{"closed runtime", closed, "Echo", `{}`, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.rt.Invoke(context.Background(), tt.function, []byte(tt.payload))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Invoke = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.function) {
				t.Errorf("error %q does not name the function", err)
			}
		})
	}
	if res := mustInvoke(t, rt, "Echo", ""); string(res.Payload) != "{}" {
		t.Errorf("empty payload delivered as %q, want {}", res.Payload)
	}
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, []byte) ([]byte, error) { return nil, nil }
	tests := []struct {
		name string
		cfg  FunctionConfig
		want []string // substrings of the error, every problem reported
	}{
		{"no name", FunctionConfig{Handler: h}, []string{`name ""`}},
		{"name with a space", FunctionConfig{Name: "Import Function", Handler: h}, []string{"name"}},
		{"neither command nor handler", FunctionConfig{Name: "F"}, []string{"one of Command and Handler"}},
		{"both command and handler", FunctionConfig{Name: "F", Command: "/bin/true", Handler: h}, []string{"exclusive"}},
		{"missing binary", FunctionConfig{Name: "F", Command: filepath.Join(dir, "missing")}, []string{"no such file"}},
		{"binary not executable", FunctionConfig{Name: "F", Command: notExec}, []string{"not an executable"}},
		{"timeout over 15 minutes", FunctionConfig{Name: "F", Handler: h, Timeout: 16 * time.Minute}, []string{"timeout"}},
		{"memory under 128 MB", FunctionConfig{Name: "F", Handler: h, MemoryMB: 64}, []string{"memory 64"}},
		{"negative concurrency", FunctionConfig{Name: "F", Handler: h, ReservedConcurrency: -1}, []string{"reserved concurrency"}},
		{"reserved variable", FunctionConfig{Name: "F", Handler: h, Env: map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "x", "_HANDLER": "y"}},
			[]string{"[AWS_LAMBDA_FUNCTION_NAME _HANDLER]"}},
		{"every problem at once", FunctionConfig{Name: "F", Timeout: -time.Second, MemoryMB: 1},
			[]string{"one of Command and Handler", "timeout", "memory 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(nil, nil).Register(tt.cfg)
			if err == nil {
				t.Fatal("Register accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	rt := newTestRuntime(t, nil, nil)
	mustRegister(t, rt, FunctionConfig{Name: "F", Handler: h})
	if err := rt.Register(FunctionConfig{Name: "F", Handler: h}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate Register = %v", err)
	}
}
