package lambdaruntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/feedpipe/feedpipe/shared/clock"
)

var (
	errInstanceStopped = errors.New("instance stopped")
	errBusy            = errors.New("invocation in progress")
)

// instance is one execution environment: a child process with its own
// Runtime API listener, or a goroutine running an in-process Handler.
type instance struct {
	fn     *function
	n      int
	wake   chan *invocation // capacity 1: the invocation assigned while waiting in /next
	stop   chan struct{}    // closed by the first signal
	exited chan struct{}    // closed once the process and its goroutines are gone

	stopOnce   sync.Once
	pid        atomic.Int64 // 0 before start and after the process is reaped
	memWarned  atomic.Bool
	lastSample atomic.Int64 // clock time of the last memory sample, Unix ns

	pmu    sync.Mutex // guards killed and srv, and orders signals with the start
	killed bool
	srv    *http.Server

	// Guarded by function.mu.
	dead         bool // out of service: takes no more work
	ready        bool // has called /next at least once
	initTimedOut bool
	current      *invocation // delivered and not finished
	draining     *invocation // finished, runtime not yet back at /next
	served       int
	startedAt    time.Time
	initTimer    *clock.Timer
}

func newInstance(fn *function, n int) *instance {
	return &instance{
		fn:        fn,
		n:         n,
		wake:      make(chan *invocation, 1),
		stop:      make(chan struct{}),
		exited:    make(chan struct{}),
		startedAt: fn.rt.clock.Now(),
	}
}

// launch starts inst, which scaleLocked has counted in rt.wg.
func (fn *function) launch(inst *instance) {
	if fn.cfg.Handler != nil {
		go fn.serveHandler(inst)
		return
	}
	if err := fn.launchProcess(inst); err != nil {
		fn.launchFailed(inst, err)
		close(inst.exited)
		fn.rt.wg.Done()
	}
}

func (fn *function) launchProcess(inst *instance) (err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("runtime API listener: %w", err)
	}
	var files []*os.File
	defer func() {
		if err != nil {
			_ = ln.Close()
			for _, f := range files {
				_ = f.Close()
			}
		}
	}()
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	files = append(files, outR, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	files = append(files, errR, errW)

	now := fn.rt.clock.Now()
	env := append(fn.env[:len(fn.env):len(fn.env)],
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
		"AWS_LAMBDA_LOG_STREAM_NAME="+now.UTC().Format("2006/01/02")+"/[$LATEST]"+randomHex(16))
	cmd := &exec.Cmd{
		Path:        fn.cfg.Command,
		Args:        []string{fn.cfg.Command},
		Dir:         filepath.Dir(fn.cfg.Command),
		Env:         env,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}, // one group, so a kill reaches its children
	}
	srv := &http.Server{
		Handler:  inst.routes(),
		ErrorLog: slog.NewLogLogger(fn.rt.logger.Handler(), slog.LevelDebug),
	}

	inst.pmu.Lock()
	if inst.killed {
		inst.pmu.Unlock()
		return errInstanceStopped
	}
	fn.mu.Lock()
	inst.startedAt = fn.rt.clock.Now()
	inst.initTimer = fn.rt.clock.AfterFunc(InitTimeout, func() { fn.initExpired(inst) })
	fn.mu.Unlock()
	err = cmd.Start()
	_ = outW.Close()
	_ = errW.Close()
	files = []*os.File{outR, errR}
	if err != nil {
		inst.pmu.Unlock()
		return fmt.Errorf("start %s: %w", fn.cfg.Command, err)
	}
	inst.pid.Store(int64(cmd.Process.Pid))
	inst.srv = srv
	inst.pmu.Unlock()

	var running sync.WaitGroup
	running.Go(func() { _ = srv.Serve(ln) })
	running.Go(func() { pump(outR, fn.stdout) })
	running.Go(func() { pump(errR, fn.stderr) })
	go func() {
		_ = cmd.Wait()
		fn.processExited(inst, cmd.ProcessState)
		inst.reaped()
		running.Wait()
		close(inst.exited)
		fn.rt.wg.Done()
	}()
	fn.rt.logger.Debug("lambda instance started", "function", fn.cfg.Name, "instance", inst.n,
		"pid", cmd.Process.Pid, "runtimeAPI", ln.Addr().String())
	return nil
}

// signal sends sig to inst's process group; SIGKILL also closes its Runtime
// API. An in-process instance is simply abandoned.
func (inst *instance) signal(sig syscall.Signal) {
	inst.stopOnce.Do(func() {
		close(inst.stop)
		if inst.fn.cfg.Handler != nil {
			close(inst.exited)
			inst.fn.rt.wg.Done()
		}
	})
	inst.pmu.Lock()
	defer inst.pmu.Unlock()
	inst.killed = true
	if pid := inst.pid.Load(); pid > 0 {
		_ = syscall.Kill(-int(pid), sig)
	}
	if sig == syscall.SIGKILL && inst.srv != nil {
		_ = inst.srv.Close()
	}
}

// reaped runs once the process has been waited for: whatever it left in its
// process group is killed and its Runtime API closed.
func (inst *instance) reaped() {
	inst.stopOnce.Do(func() { close(inst.stop) })
	inst.pmu.Lock()
	defer inst.pmu.Unlock()
	inst.killed = true
	if pid := inst.pid.Swap(0); pid > 0 {
		_ = syscall.Kill(-int(pid), syscall.SIGKILL)
	}
	if inst.srv != nil {
		_ = inst.srv.Close()
	}
}

// terminate stops inst: SIGTERM, then SIGKILL after grace.
func (inst *instance) terminate(c *clock.Clock, grace time.Duration) {
	inst.signal(syscall.SIGTERM)
	t := c.NewTimer(grace)
	defer t.Stop()
	select {
	case <-inst.exited:
		return
	case <-t.C:
	}
	inst.signal(syscall.SIGKILL)
	<-inst.exited
}

// serveHandler is the runtime loop of an in-process instance.
func (fn *function) serveHandler(inst *instance) {
	for {
		inv, err := fn.next(inst.stop, inst)
		if err != nil {
			return
		}
		res, crashed := fn.callHandler(inv)
		fn.complete(inst, inv.id, res, crashed)
		if crashed {
			return
		}
	}
}

// callHandler runs the Handler and shapes its outcome as aws-lambda-go does.
// crashed reports a panic, after which the instance is not reused.
func (fn *function) callHandler(inv *invocation) (res Result, crashed bool) {
	defer func() {
		if v := recover(); v != nil {
			stack, _ := jsonLines(string(debug.Stack()))
			fe := &FunctionError{ErrorType: typeName(v), ErrorMessage: fmt.Sprint(v), StackTrace: stack}
			res, crashed = errorResult(fe), true
		}
	}()
	out, err := fn.cfg.Handler(inv.hctx, inv.payload)
	if err != nil {
		var fe *FunctionError
		if errors.As(err, &fe) {
			c := *fe
			return errorResult(&c), false
		}
		return errorResult(&FunctionError{ErrorType: typeName(err), ErrorMessage: err.Error()}), false
	}
	if len(out) > MaxResponsePayload {
		return tooLargeResult(), false
	}
	return Result{Payload: out}, false
}

// typeName names v's type without package or pointer, as aws-lambda-go
// reports errorType ("errorString" for errors.New).
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() == "" {
		return t.String()
	}
	return t.Name()
}

func jsonLines(s string) ([]byte, error) {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return json.Marshal(lines)
}
