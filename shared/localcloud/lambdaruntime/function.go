package lambdaruntime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// function is one registered function: its configuration, its instances and
// the invocations no instance has taken yet.
//
// Scheduling is pull-based, as on Lambda: an instance takes work when its
// runtime calls /next. Invoke admits an invocation by taking one of the
// function's slots (the concurrency cap), hands it to an instance already
// waiting in /next or else queues it, and starts a new instance only when the
// queue is longer than the number of free instances and the cap allows.
type function struct {
	rt     *Runtime
	cfg    FunctionConfig
	arn    string
	env    []string      // child environment without the per-instance variables
	limit  int           // min(ReservedConcurrency, MaxInstances)
	slots  chan struct{} // one token per admitted invocation; capacity is limit
	stdout *lineWriter
	stderr *lineWriter

	mu        sync.Mutex
	closed    bool
	instances map[*instance]struct{} // live instances
	waiting   []*instance            // instances blocked in /next, oldest first
	pending   []*invocation          // admitted invocations not yet taken, oldest first
	seq       int                    // numbers instances in logs
	stats     Stats                  // counters; snapshot fills the gauges
}

// invocation is one admitted call. Fields below done are guarded by
// function.mu until done is closed; result and err are read only after.
type invocation struct {
	id      string
	payload []byte
	meta    InvokeMetadata
	done    chan struct{}

	inst      *instance // the instance it was delivered to
	gen       int       // delivery number, so a stale timer cannot fire on a later delivery
	startedAt time.Time
	deadline  time.Time
	coldStart bool
	timer     *clock.Timer
	hctx      *deadlineContext // in-process handlers only
	finished  bool

	result Result
	err    error
}

func (inv *invocation) stopTimer() {
	if inv.timer != nil {
		inv.timer.Stop()
		inv.timer = nil
	}
}

// effects are what a state change asks for once function.mu is released.
type effects struct {
	kill  []*instance
	lines []string // platform lines for the function's log, as Lambda writes them
}

func newFunction(r *Runtime, cfg FunctionConfig) *function {
	limit := cfg.MaxInstances
	if cfg.ReservedConcurrency > 0 && cfg.ReservedConcurrency < limit {
		limit = cfg.ReservedConcurrency
	}
	region := firstNonEmpty(cfg.Env["AWS_REGION"], cfg.Env["AWS_DEFAULT_REGION"], defaultRegion)
	fn := &function{
		rt:        r,
		cfg:       cfg,
		arn:       fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, accountID, cfg.Name),
		limit:     limit,
		slots:     make(chan struct{}, limit),
		stdout:    &lineWriter{mu: &r.logMu, w: cfg.Stdout, prefix: "[" + cfg.Name + "] "},
		stderr:    &lineWriter{mu: &r.logMu, w: cfg.Stderr, prefix: "[" + cfg.Name + "] "},
		instances: make(map[*instance]struct{}),
	}
	fn.env = baseEnv(cfg, region)
	return fn
}

// baseEnv is the environment every instance of a binary function starts
// with: the function's own variables, those Lambda sets, and PATH, HOME and
// TMPDIR from the parent. Nothing else of the parent's environment passes.
func baseEnv(cfg FunctionConfig, region string) []string {
	env := map[string]string{
		"PATH": "/usr/local/bin:/usr/bin:/bin",
		"TZ":   "UTC",
		"LANG": "en_US.UTF-8",
	}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			env[k] = v
		}
	}
	maps.Copy(env, cfg.Env)
	root := filepath.Dir(cfg.Command)
	maps.Copy(env, map[string]string{
		"_HANDLER":                        filepath.Base(cfg.Command),
		"AWS_REGION":                      region,
		"AWS_DEFAULT_REGION":              firstNonEmpty(cfg.Env["AWS_DEFAULT_REGION"], region),
		"AWS_LAMBDA_FUNCTION_NAME":        cfg.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(cfg.MemoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + cfg.Name,
		"LAMBDA_TASK_ROOT":                root,
		"LAMBDA_RUNTIME_DIR":              root,
	})
	out := make([]string, 0, len(env)+2)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// isReservedEnv reports the variables Lambda refuses in a function's
// configuration because the platform sets them. AWS_REGION,
// AWS_DEFAULT_REGION and the credential variables are reserved on Lambda too
// but are how the local stack points functions at its cloud, so they pass.
func isReservedEnv(k string) bool {
	switch k {
	case "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_EXECUTION_ENV",
		"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
		"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
		"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR":
		return true
	}
	return false
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (fn *function) newInvocation(payload []byte, meta InvokeMetadata) *invocation {
	if meta.TraceID == "" {
		meta.TraceID = newTraceID(fn.rt.clock.Now())
	}
	return &invocation{id: newRequestID(), payload: payload, meta: meta, done: make(chan struct{})}
}

// enqueue gives an admitted invocation to a waiting instance or queues it,
// starting an instance if needed. It reports false once the function is
// closed.
func (fn *function) enqueue(inv *invocation) bool {
	fn.mu.Lock()
	if fn.closed {
		fn.mu.Unlock()
		return false
	}
	if len(fn.waiting) > 0 {
		inst := fn.waiting[0]
		fn.waiting = slices.Delete(fn.waiting, 0, 1)
		fn.assignLocked(inst, inv)
		inst.wake <- inv
		fn.mu.Unlock()
		return true
	}
	fn.pending = append(fn.pending, inv)
	fn.unlockAndApply(effects{})
	return true
}

// withdraw takes back an invocation no instance has taken. It reports
// whether it did.
func (fn *function) withdraw(inv *invocation) bool {
	fn.mu.Lock()
	i := slices.Index(fn.pending, inv)
	if i < 0 {
		fn.mu.Unlock()
		return false
	}
	fn.pending = slices.Delete(fn.pending, i, i+1)
	fn.finishLocked(inv, Result{}, context.Canceled, true)
	fn.mu.Unlock()
	return true
}

// assignLocked delivers inv to inst: its deadline starts now.
func (fn *function) assignLocked(inst *instance, inv *invocation) {
	inst.current = inv
	inv.inst = inst
	inv.gen++
	now := fn.rt.clock.Now()
	inv.startedAt = now
	inv.deadline = now.Add(fn.cfg.Timeout)
	inv.coldStart = inst.served == 0
	inst.served++
	fn.stats.Invocations++
	gen := inv.gen
	inv.timer = fn.rt.clock.AfterFunc(fn.cfg.Timeout, func() { fn.expire(inv, gen) })
	if fn.cfg.Handler != nil {
		inv.hctx = newDeadlineContext(fn.lambdaContext(inv), inv.deadline)
	}
}

// unassignLocked puts back at the head of the queue an invocation whose
// instance went away before its runtime received it.
func (fn *function) unassignLocked(inst *instance, inv *invocation) {
	if inv.finished || inst.current != inv {
		return
	}
	inst.current = nil
	inst.served--
	fn.stats.Invocations--
	inv.stopTimer()
	inv.inst, inv.startedAt, inv.deadline, inv.coldStart, inv.hctx = nil, time.Time{}, time.Time{}, false, nil
	if fn.closed {
		fn.finishLocked(inv, Result{}, ErrClosed, true)
		return
	}
	fn.pending = slices.Insert(fn.pending, 0, inv)
}

func (fn *function) lambdaContext(inv *invocation) context.Context {
	lc := &lambdacontext.LambdaContext{AwsRequestID: inv.id, InvokedFunctionArn: fn.arn}
	if inv.meta.ClientContext != "" {
		_ = json.Unmarshal([]byte(inv.meta.ClientContext), &lc.ClientContext)
	}
	if inv.meta.CognitoIdentity != "" {
		_ = json.Unmarshal([]byte(inv.meta.CognitoIdentity), &lc.Identity)
	}
	return lambdacontext.NewContext(context.Background(), lc)
}

// next blocks until an invocation is delivered to inst, which must have no
// invocation in progress, or until done is closed.
func (fn *function) next(done <-chan struct{}, inst *instance) (*invocation, error) {
	fn.mu.Lock()
	if inst.dead {
		fn.mu.Unlock()
		return nil, errInstanceStopped
	}
	if inst.current != nil {
		fn.mu.Unlock()
		return nil, errBusy
	}
	if !inst.ready {
		inst.ready = true
		d := fn.rt.clock.Since(inst.startedAt)
		if inst.initTimer != nil {
			inst.initTimer.Stop()
		}
		fn.stats.ColdStarts++
		fn.stats.ColdStartTotal += d
		fn.stats.ColdStartMax = max(fn.stats.ColdStartMax, d)
	}
	if inv := inst.draining; inv != nil {
		inst.draining = nil
		inv.stopTimer()
	}
	if len(fn.pending) > 0 {
		inv := fn.pending[0]
		fn.pending = slices.Delete(fn.pending, 0, 1)
		fn.assignLocked(inst, inv)
		fn.mu.Unlock()
		return inv, nil
	}
	fn.waiting = append(fn.waiting, inst)
	fn.mu.Unlock()

	select {
	case inv := <-inst.wake:
		return inv, nil
	case <-done:
	}
	fn.mu.Lock()
	if i := slices.Index(fn.waiting, inst); i >= 0 {
		fn.waiting = slices.Delete(fn.waiting, i, i+1)
	}
	// Assignment and the send on wake happen under fn.mu, so this sees any.
	select {
	case inv := <-inst.wake: // assigned while we were giving up: hand it back
		fn.unassignLocked(inst, inv)
	default:
	}
	fn.unlockAndApply(effects{})
	return nil, errInstanceStopped
}

// isCurrent reports whether id is the invocation inst is running.
func (fn *function) isCurrent(inst *instance, id string) bool {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return inst.current != nil && inst.current.id == id && !inst.dead
}

// complete records the outcome inst reported for request id. It reports
// false if id is not the invocation inst is running. retire ends the
// instance (an in-process handler that panicked, as aws-lambda-go exits).
func (fn *function) complete(inst *instance, id string, res Result, retire bool) bool {
	fn.mu.Lock()
	inv := inst.current
	if inv == nil || inv.id != id || inst.dead {
		fn.mu.Unlock()
		return false
	}
	fn.finishLocked(inv, res, nil, retire)
	var e effects
	if retire && fn.retireLocked(inst) {
		e.kill = append(e.kill, inst)
	}
	fn.unlockAndApply(e)
	return true
}

// expire runs at an invocation's deadline. An invocation still running
// times out and its instance is killed; an instance that answered but has
// not asked for more work by the deadline is killed too, as Lambda resets an
// environment whose runtime does not return to /next.
func (fn *function) expire(inv *invocation, gen int) {
	fn.mu.Lock()
	inst := inv.inst
	if inv.gen != gen || inst == nil {
		fn.mu.Unlock()
		return
	}
	var e effects
	switch {
	case !inv.finished:
		fn.stats.Timeouts++
		if inv.hctx != nil {
			inv.hctx.end(context.DeadlineExceeded)
		}
		fn.finishLocked(inv, timeoutResult(fn.cfg.Timeout), nil, true)
		e.lines = append(e.lines, fmt.Sprintf("%s %s Task timed out after %.2f seconds",
			fn.rt.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"), inv.id, fn.cfg.Timeout.Seconds()))
	case inst.draining == inv:
		fn.rt.logger.Warn("lambda runtime did not return to /next before the deadline; resetting the instance",
			"function", fn.cfg.Name, "instance", inst.n, "requestId", inv.id)
	default:
		fn.mu.Unlock()
		return
	}
	if fn.retireLocked(inst) {
		e.kill = append(e.kill, inst)
	}
	fn.unlockAndApply(e)
}

// initExpired runs when an instance has not reached /next within
// InitTimeout: it is killed, and its process exit fails a waiting invocation.
func (fn *function) initExpired(inst *instance) {
	fn.mu.Lock()
	if inst.ready || inst.dead {
		fn.mu.Unlock()
		return
	}
	inst.initTimedOut = true
	fn.mu.Unlock()
	fn.rt.logger.Warn("lambda init phase timed out", "function", fn.cfg.Name, "instance", inst.n, "limit", InitTimeout)
	inst.signal(syscall.SIGKILL)
}

// initError handles /runtime/init/error: the waiting invocation longest in
// the queue fails with the runtime's error and inst is retired. The caller
// kills inst after answering. It reports false if inst had already finished
// its init.
func (fn *function) initError(inst *instance, res Result) bool {
	fn.mu.Lock()
	if inst.ready || inst.dead {
		fn.mu.Unlock()
		return false
	}
	fn.stats.InitFailures++
	fn.retireLocked(inst)
	fn.failOldestLocked(func(*invocation) Result { return res })
	fn.unlockAndApply(effects{})
	return true
}

// processExited handles the end of an instance's process: an invocation it
// was running fails with Runtime.ExitError, and a process that died in init
// fails the invocation waiting longest.
func (fn *function) processExited(inst *instance, state *os.ProcessState) {
	fn.mu.Lock()
	wasDead := inst.dead
	fn.retireLocked(inst)
	var e effects
	if cur := inst.current; cur != nil && !cur.finished {
		res := exitResult(cur.id, state)
		fn.finishLocked(cur, res, nil, true)
		e.lines = append(e.lines, res.FuncError.ErrorMessage, res.FuncError.ErrorType)
	} else if !inst.ready && !wasDead {
		fn.stats.InitFailures++
		fn.failOldestLocked(func(inv *invocation) Result {
			if inst.initTimedOut {
				return errorResult(&FunctionError{ErrorType: "Sandbox.Timedout",
					ErrorMessage: fmt.Sprintf("RequestId: %s Error: init phase timed out after %.2f seconds", inv.id, InitTimeout.Seconds())})
			}
			return exitResult(inv.id, state)
		})
	}
	fn.unlockAndApply(e)
	if !wasDead {
		fn.rt.logger.Warn("lambda instance exited", "function", fn.cfg.Name, "instance", inst.n, "status", state.String())
	}
}

// launchFailed handles an instance whose process could not start.
func (fn *function) launchFailed(inst *instance, err error) {
	fn.mu.Lock()
	wasDead := inst.dead
	fn.retireLocked(inst)
	if !wasDead && !fn.closed {
		fn.stats.InitFailures++
		fn.failOldestLocked(func(inv *invocation) Result {
			return errorResult(&FunctionError{ErrorType: "Runtime.InvalidEntrypoint",
				ErrorMessage: fmt.Sprintf("RequestId: %s Error: %v", inv.id, err)})
		})
		fn.rt.logger.Error("lambda instance did not start", "function", fn.cfg.Name, "instance", inst.n, "err", err)
	}
	fn.unlockAndApply(effects{})
}

func (fn *function) failOldestLocked(result func(*invocation) Result) {
	if len(fn.pending) == 0 {
		return
	}
	inv := fn.pending[0]
	fn.pending = slices.Delete(fn.pending, 0, 1)
	res := result(inv)
	res.ColdStart = true
	fn.finishLocked(inv, res, nil, true)
}

// finishLocked settles inv once: later outcomes are ignored. Unless retire
// is set, inv's instance stays on its deadline until it asks for more work.
func (fn *function) finishLocked(inv *invocation, res Result, err error, retire bool) {
	if inv.finished {
		return
	}
	inv.finished = true
	if inst := inv.inst; inst != nil && inst.current == inv {
		inst.current = nil
		if !retire && !inst.dead {
			inst.draining = inv
		} else {
			inv.stopTimer()
		}
	} else {
		inv.stopTimer()
	}
	if inv.hctx != nil {
		inv.hctx.end(context.Canceled)
	}
	res.RequestID = inv.id
	if !inv.startedAt.IsZero() {
		res.ColdStart = inv.coldStart
		res.Duration = fn.rt.clock.Since(inv.startedAt)
	}
	if res.FuncError != nil {
		fn.stats.Errors++
	}
	inv.result, inv.err = res, err
	close(inv.done)
	<-fn.slots
}

// retireLocked takes inst out of service. It reports whether inst was live.
func (fn *function) retireLocked(inst *instance) bool {
	if inst.dead {
		return false
	}
	inst.dead = true
	delete(fn.instances, inst)
	if i := slices.Index(fn.waiting, inst); i >= 0 {
		fn.waiting = slices.Delete(fn.waiting, i, i+1)
	}
	if inv := inst.draining; inv != nil {
		inst.draining = nil
		inv.stopTimer()
	}
	if inst.initTimer != nil {
		inst.initTimer.Stop()
	}
	return true
}

// unlockAndApply starts the instances the queue needs, releases fn.mu and
// carries out e.
func (fn *function) unlockAndApply(e effects) {
	start := fn.scaleLocked()
	fn.mu.Unlock()
	for _, l := range e.lines {
		fn.stdout.writeLine([]byte(l))
	}
	for _, inst := range e.kill {
		inst.signal(syscall.SIGKILL)
	}
	for _, inst := range start {
		fn.launch(inst)
	}
}

// scaleLocked creates the instances needed so that every queued invocation
// has a free instance, within the cap.
func (fn *function) scaleLocked() []*instance {
	if fn.closed {
		return nil
	}
	free := 0
	for inst := range fn.instances {
		if inst.current == nil {
			free++
		}
	}
	var start []*instance
	for len(fn.pending) > free && len(fn.instances) < fn.limit {
		fn.seq++
		inst := newInstance(fn, fn.seq)
		fn.instances[inst] = struct{}{}
		fn.rt.wg.Add(1) // released when inst's process and goroutines are gone
		start = append(start, inst)
		free++
	}
	return start
}

// shutdown fails every queued and running invocation with ErrClosed and
// returns the instances to stop.
func (fn *function) shutdown() []*instance {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	fn.closed = true
	for _, inv := range fn.pending {
		fn.finishLocked(inv, Result{}, ErrClosed, true)
	}
	fn.pending = nil
	var out []*instance
	for inst := range fn.instances {
		if cur := inst.current; cur != nil {
			fn.finishLocked(cur, Result{}, ErrClosed, true)
		}
		fn.retireLocked(inst)
		out = append(out, inst)
	}
	return out
}

func (fn *function) snapshot() Stats {
	fn.mu.Lock()
	s := fn.stats
	s.Instances = len(fn.instances)
	var live []*instance
	for inst := range fn.instances {
		if inst.ready && inst.current == nil {
			s.Warm++
		}
		live = append(live, inst)
	}
	s.InFlight = len(fn.slots)
	fn.mu.Unlock()
	for _, inst := range live {
		s.PeakMemoryMB = max(s.PeakMemoryMB, fn.sampleMemory(inst))
	}
	return s
}

// sampleMemory reads inst's peak RSS, records it, warns once per instance
// when it passes MemoryMB, and returns it in MiB (0 when unknown).
func (fn *function) sampleMemory(inst *instance) int {
	pid := inst.pid.Load()
	if pid <= 0 {
		return 0
	}
	kib, ok := peakRSSKiB(int(pid))
	if !ok {
		return 0
	}
	mb := int((kib + 1023) / 1024)
	fn.mu.Lock()
	fn.stats.PeakMemoryMB = max(fn.stats.PeakMemoryMB, mb)
	fn.mu.Unlock()
	if mb > fn.cfg.MemoryMB && inst.memWarned.CompareAndSwap(false, true) {
		fn.rt.logger.Warn("lambda function used more memory than its memory size",
			"function", fn.cfg.Name, "instance", inst.n, "maxMemoryUsedMB", mb, "memorySizeMB", fn.cfg.MemoryMB)
	}
	return mb
}

func timeoutResult(timeout time.Duration) Result {
	return errorResult(&FunctionError{
		ErrorType:    "Sandbox.Timedout",
		ErrorMessage: fmt.Sprintf("Task timed out after %.2f seconds", timeout.Seconds()),
	})
}

func exitResult(requestID string, state *os.ProcessState) Result {
	reason := "Runtime exited without providing a reason"
	if state != nil && !state.Success() {
		reason = "Runtime exited with error: " + state.String()
	}
	return errorResult(&FunctionError{
		ErrorType:    "Runtime.ExitError",
		ErrorMessage: "RequestId: " + requestID + " Error: " + reason,
	})
}

func tooLargeResult() Result {
	return errorResult(&FunctionError{
		ErrorType:    "Function.ResponseSizeTooLarge",
		ErrorMessage: fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponsePayload),
	})
}

// errorResult is the Result Lambda's Invoke API gives for fe.
func errorResult(fe *FunctionError) Result {
	payload, _ := json.Marshal(fe)
	return Result{Payload: payload, FuncError: fe}
}

// newRequestID returns a random (version 4) UUID.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// newTraceID returns an X-Ray trace header for a new, unsampled root trace.
func newTraceID(now time.Time) string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", now.Unix(), randomHex(12), randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
