package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// Expression is a parsed EventBridge schedule expression.
type Expression struct {
	raw   string
	every time.Duration // rate(…)
	cron  cron.Schedule // cron(…)
}

func (e Expression) String() string { return e.raw }

// Next returns the first fire time strictly after t.
func (e Expression) Next(t time.Time) time.Time {
	if e.cron != nil {
		return e.cron.Next(t)
	}
	return t.Add(e.every)
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (second|seconds|minute|minutes|hour|hours|day|days)\)$`)

// ParseExpression parses "rate(5 minutes)" or AWS's six-field
// "cron(Minutes Hours Day-of-month Month Day-of-week Year)", evaluated in
// location loc (UTC when nil).
//
// As in EventBridge, a rate of 1 takes the singular unit and other values the
// plural, and exactly one of day-of-month and day-of-week is "?". As a local
// extension, rate() also accepts seconds, so a development stack can run
// schedules every few seconds; AWS refuses such a value at deploy time.
// Not supported (an error names them): L, W and # in day fields, and a year
// field other than "*".
func ParseExpression(expr string, loc *time.Location) (Expression, error) {
	expr = strings.TrimSpace(expr)
	if m := rateExpr.FindStringSubmatch(expr); m != nil {
		n, _ := strconv.Atoi(m[1])
		singular := !strings.HasSuffix(m[2], "s")
		if n <= 0 {
			return Expression{}, fmt.Errorf("schedule %q: the rate must be positive", expr)
		}
		if (n == 1) != singular {
			return Expression{}, fmt.Errorf("schedule %q: use %q for 1 and the plural otherwise, as EventBridge requires", expr, strings.TrimSuffix(m[2], "s"))
		}
		unit := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
		return Expression{raw: expr, every: time.Duration(n) * unit}, nil
	}
	inner, ok := strings.CutPrefix(expr, "cron(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return Expression{}, fmt.Errorf("schedule %q: want rate(N unit) or cron(min hour day-of-month month day-of-week year)", expr)
	}
	fields := strings.Fields(strings.TrimSuffix(inner, ")"))
	if len(fields) != 6 {
		return Expression{}, fmt.Errorf("schedule %q: cron needs 6 fields (minutes hours day-of-month month day-of-week year), got %d", expr, len(fields))
	}
	dom, dow, year := fields[2], fields[4], fields[5]
	if (dom == "?") == (dow == "?") {
		return Expression{}, fmt.Errorf("schedule %q: exactly one of day-of-month and day-of-week must be ?", expr)
	}
	if year != "*" {
		return Expression{}, fmt.Errorf("schedule %q: the local runner supports only * in the year field", expr)
	}
	for _, f := range []string{dom, dow} {
		if strings.ContainsAny(f, "LW#") && !isDayName(f) {
			return Expression{}, fmt.Errorf("schedule %q: L, W and # are not supported by the local runner", expr)
		}
	}
	if dom == "?" {
		dom = "*"
	}
	if dow == "?" {
		dow = "*"
	} else {
		var err error
		if dow, err = shiftWeekdays(dow); err != nil {
			return Expression{}, fmt.Errorf("schedule %q: %w", expr, err)
		}
	}
	spec := strings.Join([]string{fields[0], fields[1], dom, fields[3], dow}, " ")
	if loc == nil {
		loc = time.UTC
	}
	sched, err := cron.ParseStandard("CRON_TZ=" + loc.String() + " " + spec)
	if err != nil {
		return Expression{}, fmt.Errorf("schedule %q: %w", expr, err)
	}
	return Expression{raw: expr, cron: sched}, nil
}

func isDayName(f string) bool {
	up := strings.ToUpper(f)
	for _, d := range []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"} {
		up = strings.ReplaceAll(up, d, "")
	}
	return !strings.ContainsAny(up, "LW#")
}

// shiftWeekdays turns EventBridge's day-of-week numbers (1 = Sunday … 7 =
// Saturday) into cron's (0 … 6); names pass through.
func shiftWeekdays(field string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(field); {
		c := field[i]
		if c < '0' || c > '9' {
			b.WriteByte(c)
			i++
			continue
		}
		j := i
		for j < len(field) && field[j] >= '0' && field[j] <= '9' {
			j++
		}
		n, _ := strconv.Atoi(field[i:j])
		stepValue := i > 0 && field[i-1] == '/'
		if stepValue {
			b.WriteString(field[i:j])
		} else {
			if n < 1 || n > 7 {
				return "", fmt.Errorf("day-of-week %d is outside 1-7", n)
			}
			b.WriteString(strconv.Itoa(n - 1))
		}
		i = j
	}
	return b.String(), nil
}

// Schedule fires a function on an expression, with the event EventBridge
// sends.
type Schedule struct {
	Name       string // the rule or schedule name
	Function   string
	Expression Expression
	// Input, when set, is sent instead of the scheduled event, as a target's
	// Input is.
	Input   []byte
	Enabled bool
	Region  string
	Account string
	// Scheduler is true for ScheduleV2 (EventBridge Scheduler) schedules.
	Scheduler bool
}

// ScheduledEvent is the event an EventBridge rule sends to its target.
type ScheduledEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// Payload is what the schedule sends when it fires at t.
func (s *Schedule) Payload(t time.Time) []byte {
	if len(s.Input) > 0 {
		return s.Input
	}
	resource := fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", s.Region, s.Account, s.Name)
	source, detailType := "aws.events", "Scheduled Event"
	if s.Scheduler {
		resource = fmt.Sprintf("arn:aws:scheduler:%s:%s:schedule/default/%s", s.Region, s.Account, s.Name)
		source, detailType = "aws.scheduler", "Scheduled Event"
	}
	ev := ScheduledEvent{
		Version: "0", ID: newID(), DetailType: detailType, Source: source, Account: s.Account,
		Time: t.UTC().Format(time.RFC3339), Region: s.Region, Resources: []string{resource}, Detail: json.RawMessage("{}"),
	}
	b, _ := json.Marshal(ev) // strings only: cannot fail
	return b
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// scheduler runs schedules on the runner's clock: moving the clock forward
// past a fire time fires the schedule at once. Like EventBridge, it does not
// replay the fires a jump skipped; it fires once and plans the next one.
type scheduler struct {
	clock  *clock.Clock
	invoke func(ctx context.Context, function string, payload []byte) error
	logger *slog.Logger

	mu     sync.Mutex
	timers map[string]*clock.Timer
	ctx    context.Context
	fires  map[string]int
}

func newScheduler(c *clock.Clock, invoke func(ctx context.Context, function string, payload []byte) error, logger *slog.Logger) *scheduler {
	return &scheduler{clock: c, invoke: invoke, logger: logger, timers: map[string]*clock.Timer{}, fires: map[string]int{}}
}

func (s *scheduler) start(ctx context.Context, sch *Schedule) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	if sch.Enabled {
		s.plan(sch, s.clock.Now())
	}
}

func (s *scheduler) plan(sch *Schedule, after time.Time) {
	next := sch.Expression.Next(after)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	s.timers[sch.Name] = s.clock.AfterFunc(s.clock.Until(next), func() {
		s.fire(sch, next)
		now := s.clock.Now()
		if now.Before(next) {
			now = next
		}
		s.plan(sch, now)
	})
}

// fire invokes the schedule's function once with the event for time t.
func (s *scheduler) fire(sch *Schedule, t time.Time) {
	s.mu.Lock()
	ctx := s.ctx
	s.fires[sch.Name]++
	s.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		return
	}
	if err := s.invoke(ctx, sch.Function, sch.Payload(t)); err != nil {
		s.logger.Warn("scheduled invocation failed", "schedule", sch.Name, "function", sch.Function, "err", err)
	}
}

func (s *scheduler) fired(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fires[name]
}

func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.timers {
		t.Stop()
	}
	s.timers = map[string]*clock.Timer{}
}
