// Package alarms evaluates template.yaml's AWS::CloudWatch::Alarm resources
// on the local stack, the way CloudWatch evaluates them, from the metrics
// the stack itself produces: the functions' Embedded Metric Format lines and
// the queues' AWS/SQS metrics.
//
// The rules are read from the template, never restated here, so an alarm
// that works locally is the alarm that is deployed.
package alarms

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/feedpipe/feedpipe/shared/samtemplate"
)

// Alarm states, as CloudWatch names them.
const (
	OK               = "OK"
	Alarming         = "ALARM"
	InsufficientData = "INSUFFICIENT_DATA"
)

// Alarm is one metric alarm's rule.
type Alarm struct {
	Name        string // the template's logical id
	Description string
	Namespace   string
	MetricName  string
	Dimensions  map[string]string
	Statistic   string // Sum, Maximum, Minimum, Average, SampleCount
	Period      time.Duration
	// EvaluationPeriods periods are looked at, and DatapointsToAlarm of
	// them must breach (CloudWatch's "M out of N"; M defaults to N).
	EvaluationPeriods int
	DatapointsToAlarm int
	Threshold         float64
	Comparison        string // GreaterThanThreshold, …
	TreatMissingData  string // missing (default), notBreaching, breaching, ignore
	// Query, when set, is the alarm's Metrics Insights query (its one
	// Metrics entry); Namespace, MetricName, Dimensions and Statistic are
	// then unused. With GROUP BY it is a multi time series alarm: each
	// group is evaluated on its own and any group in ALARM sets the alarm.
	Query *Query
}

// Metric names the alarm's metric as "Namespace MetricName".
func (a Alarm) Metric() string {
	if a.Query != nil {
		return a.Query.Namespace + " " + a.Query.Metric
	}
	return a.Namespace + " " + a.MetricName
}

var comparisons = map[string]func(v, t float64) bool{
	"GreaterThanThreshold":          func(v, t float64) bool { return v > t },
	"GreaterThanOrEqualToThreshold": func(v, t float64) bool { return v >= t },
	"LessThanThreshold":             func(v, t float64) bool { return v < t },
	"LessThanOrEqualToThreshold":    func(v, t float64) bool { return v <= t },
}

var comparisonWords = map[string]string{
	"GreaterThanThreshold":          "greater than",
	"GreaterThanOrEqualToThreshold": "greater than or equal to",
	"LessThanThreshold":             "less than",
	"LessThanOrEqualToThreshold":    "less than or equal to",
}

var statistics = map[string]bool{"Sum": true, "Maximum": true, "Minimum": true, "Average": true, "SampleCount": true}

// FromTemplate reads every AWS::CloudWatch::Alarm of t, resolving
// intrinsics (a queue's !GetAtt QueueName) with res. An alarm feature the
// local evaluator does not implement (Metrics math, ExtendedStatistic,
// anomaly detection) is an error naming the alarm, never silently skipped.
func FromTemplate(t *samtemplate.Template, res *samtemplate.Resolver) ([]Alarm, error) {
	var out []Alarm
	for _, id := range t.ResourcesOfType("AWS::CloudWatch::Alarm") {
		a, err := readAlarm(id, t.Resources[id].Properties, res)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func readAlarm(id string, props map[string]any, res *samtemplate.Resolver) (Alarm, error) {
	path := "Resources." + id + ".Properties"
	for _, unsupported := range []string{"ExtendedStatistic", "ThresholdMetricId", "EvaluateLowSampleCountPercentile"} {
		if props[unsupported] != nil {
			return Alarm{}, fmt.Errorf("%s.%s: not supported by the local alarm evaluator", path, unsupported)
		}
	}
	a := Alarm{Name: id, Dimensions: map[string]string{}, TreatMissingData: "missing"}
	queryAlarm := props["Metrics"] != nil
	str := func(key string, dst *string, required bool) error {
		v, ok := props[key]
		if !ok {
			if required {
				return fmt.Errorf("%s.%s is required", path, key)
			}
			return nil
		}
		s, err := res.String(v, path+"."+key)
		*dst = s
		return err
	}
	num := func(key string, required bool) (float64, error) {
		var s string
		if err := str(key, &s, required); err != nil || s == "" {
			return 0, err
		}
		var f float64
		if _, err := fmt.Sscan(s, &f); err != nil {
			return 0, fmt.Errorf("%s.%s: %q is not a number", path, key, s)
		}
		return f, nil
	}
	for _, f := range []struct {
		key      string
		dst      *string
		required bool
	}{
		{"AlarmDescription", &a.Description, false}, {"Namespace", &a.Namespace, !queryAlarm}, {"MetricName", &a.MetricName, !queryAlarm},
		{"Statistic", &a.Statistic, !queryAlarm}, {"ComparisonOperator", &a.Comparison, true}, {"TreatMissingData", &a.TreatMissingData, false},
	} {
		if err := str(f.key, f.dst, f.required); err != nil {
			return Alarm{}, err
		}
	}
	if queryAlarm {
		q, period, err := readQuery(props["Metrics"], path+".Metrics", res)
		if err != nil {
			return Alarm{}, err
		}
		a.Query = &q
		props = maps.Clone(props)
		props["Period"] = period
	} else if !statistics[a.Statistic] {
		return Alarm{}, fmt.Errorf("%s.Statistic: %q is not one of Sum, Maximum, Minimum, Average, SampleCount", path, a.Statistic)
	}
	if comparisons[a.Comparison] == nil {
		return Alarm{}, fmt.Errorf("%s.ComparisonOperator: %q is not supported locally (anomaly-detection bands need Metrics)", path, a.Comparison)
	}
	switch a.TreatMissingData {
	case "missing", "notBreaching", "breaching", "ignore":
	default:
		return Alarm{}, fmt.Errorf("%s.TreatMissingData: %q is not one of missing, notBreaching, breaching, ignore", path, a.TreatMissingData)
	}
	period, err := num("Period", true)
	if err != nil {
		return Alarm{}, err
	}
	if period != 10 && period != 20 && period != 30 && (period < 60 || math.Mod(period, 60) != 0) {
		return Alarm{}, fmt.Errorf("%s.Period: %v seconds; CloudWatch takes 10, 20, 30 or a multiple of 60", path, period)
	}
	a.Period = time.Duration(period) * time.Second
	n, err := num("EvaluationPeriods", true)
	if err != nil {
		return Alarm{}, err
	}
	a.EvaluationPeriods = int(n)
	m, err := num("DatapointsToAlarm", false)
	if err != nil {
		return Alarm{}, err
	}
	a.DatapointsToAlarm = int(m)
	if a.DatapointsToAlarm == 0 {
		a.DatapointsToAlarm = a.EvaluationPeriods
	}
	if a.EvaluationPeriods < 1 || a.DatapointsToAlarm < 1 || a.DatapointsToAlarm > a.EvaluationPeriods {
		return Alarm{}, fmt.Errorf("%s: EvaluationPeriods %d and DatapointsToAlarm %d: want 1 ≤ DatapointsToAlarm ≤ EvaluationPeriods", path, a.EvaluationPeriods, a.DatapointsToAlarm)
	}
	if a.Threshold, err = num("Threshold", true); err != nil {
		return Alarm{}, err
	}
	dims, _ := props["Dimensions"].([]any)
	for i, d := range dims {
		dm, _ := d.(map[string]any)
		var name, value string
		if err := errorsJoin(
			func() error {
				var e error
				name, e = res.String(dm["Name"], fmt.Sprintf("%s.Dimensions[%d].Name", path, i))
				return e
			},
			func() error {
				var e error
				value, e = res.String(dm["Value"], fmt.Sprintf("%s.Dimensions[%d].Value", path, i))
				return e
			},
		); err != nil {
			return Alarm{}, err
		}
		a.Dimensions[name] = value
	}
	return a, nil
}

// readQuery reads an alarm's Metrics: one entry with a Metrics Insights
// Expression and its Period.
func readQuery(v any, path string, res *samtemplate.Resolver) (Query, any, error) {
	list, _ := v.([]any)
	if len(list) != 1 {
		return Query{}, nil, fmt.Errorf("%s: the local evaluator runs one Metrics entry holding a Metrics Insights Expression", path)
	}
	m, _ := list[0].(map[string]any)
	if m["MetricStat"] != nil || m["Expression"] == nil {
		return Query{}, nil, fmt.Errorf("%s[0]: the local evaluator runs a Metrics Insights Expression, not MetricStat or metric math", path)
	}
	expr, err := res.String(m["Expression"], path+"[0].Expression")
	if err != nil {
		return Query{}, nil, err
	}
	q, err := ParseQuery(expr)
	if err != nil {
		return Query{}, nil, fmt.Errorf("%s[0].Expression: %w", path, err)
	}
	if m["Period"] == nil {
		return Query{}, nil, fmt.Errorf("%s[0].Period is required", path)
	}
	return q, m["Period"], nil
}

func errorsJoin(fs ...func() error) error {
	for _, f := range fs {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// State is an alarm's state and why.
type State struct {
	Name        string
	State       string
	Reason      string
	Description string
	Metric      string
	Since       time.Time // the last transition
	// Previous is the state before the last transition.
	Previous string
}

// Evaluator holds the alarms, their states and the metric store they read.
type Evaluator struct {
	mu      sync.Mutex
	alarms  []Alarm
	metrics *Metrics
	states  map[string]*State
}

// NewEvaluator returns an evaluator with every alarm INSUFFICIENT_DATA
// since now, as CloudWatch starts a new alarm.
func NewEvaluator(alarms []Alarm, m *Metrics, now time.Time) *Evaluator {
	e := &Evaluator{alarms: alarms, metrics: m, states: map[string]*State{}}
	for _, a := range alarms {
		e.states[a.Name] = &State{Name: a.Name, State: InsufficientData, Reason: "Unchecked: Initial alarm creation", Description: a.Description, Metric: a.Metric(), Since: now}
	}
	return e
}

// Alarms returns the rules.
func (e *Evaluator) Alarms() []Alarm { return e.alarms }

// States returns every alarm's state, sorted by name.
func (e *Evaluator) States() []State {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]State, 0, len(e.states))
	for _, s := range e.states {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Evaluate evaluates every alarm at now over its last EvaluationPeriods
// periods (the newest ending at now) and returns the alarms whose state
// changed, with their new state.
func (e *Evaluator) Evaluate(now time.Time) []State {
	e.mu.Lock()
	defer e.mu.Unlock()
	var changed []State
	for _, a := range e.alarms {
		state, reason, keep := e.evaluate(a, now)
		cur := e.states[a.Name]
		if keep || state == cur.State {
			continue
		}
		cur.Previous, cur.State, cur.Reason, cur.Since = cur.State, state, reason, now
		changed = append(changed, *cur)
	}
	return changed
}

// evaluate decides one alarm's state. keep is true when the alarm stays as
// it is (TreatMissingData ignore with no data).
func (e *Evaluator) evaluate(a Alarm, now time.Time) (state, reason string, keep bool) {
	if a.Query == nil {
		return judge(a, now, func(from, to time.Time) (float64, bool) {
			return e.metrics.Statistic(a.Namespace, a.MetricName, a.Dimensions, a.Statistic, from, to)
		})
	}
	groups := e.metrics.Groups(*a.Query)
	if len(groups) == 0 { // no time series at all: every period is missing
		return judge(a, now, func(time.Time, time.Time) (float64, bool) { return 0, false })
	}
	var alarming []string
	for _, g := range groups {
		st, _, _ := judge(a, now, func(from, to time.Time) (float64, bool) { return e.metrics.QueryStatistic(*a.Query, g, from, to) })
		if st == Alarming {
			alarming = append(alarming, g)
		}
	}
	if len(alarming) > 0 {
		return Alarming, fmt.Sprintf("%d out of %d time series evaluated to ALARM: %s", len(alarming), len(groups), strings.Join(alarming, "; ")), false
	}
	return OK, fmt.Sprintf("0 out of %d time series evaluated to ALARM", len(groups)), false
}

// judge decides an alarm's state over one time series, whose statistic
// over [from, to) stat gives.
func judge(a Alarm, now time.Time, stat func(from, to time.Time) (float64, bool)) (state, reason string, keep bool) {
	type period struct {
		end     time.Time
		value   float64
		present bool
	}
	periods := make([]period, a.EvaluationPeriods)
	for i := range periods {
		end := now.Add(-time.Duration(i) * a.Period)
		v, ok := stat(end.Add(-a.Period), end)
		periods[a.EvaluationPeriods-1-i] = period{end: end, value: v, present: ok}
	}
	breaches := comparisons[a.Comparison]
	var present, breaching int
	var shown []string
	for _, p := range periods {
		if !p.present {
			switch a.TreatMissingData {
			case "breaching":
				breaching++
			}
			continue
		}
		present++
		shown = append(shown, fmt.Sprintf("%s (%s)", formatValue(p.value), p.end.UTC().Format("02/01/06 15:04:05")))
		if breaches(p.value, a.Threshold) {
			breaching++
		}
	}
	if present == 0 {
		switch a.TreatMissingData {
		case "ignore":
			return "", "", true
		case "missing":
			return InsufficientData, fmt.Sprintf("Insufficient Data: %d datapoints were unknown.", a.EvaluationPeriods), false
		}
	}
	points := "datapoint"
	if len(shown) != 1 {
		points = "datapoints"
	}
	word := comparisonWords[a.Comparison]
	if breaching >= a.DatapointsToAlarm {
		return Alarming, fmt.Sprintf("Threshold Crossed: %d out of the last %d datapoints were %s the threshold (%s). The most recent %s: [%s].",
			breaching, a.EvaluationPeriods, word, formatValue(a.Threshold), points, strings.Join(shown, ", ")), false
	}
	if present == 0 {
		return OK, fmt.Sprintf("Threshold Crossed: no datapoints were received for %d periods and %d missing datapoints were treated as [NonBreaching].", a.EvaluationPeriods, a.EvaluationPeriods), false
	}
	return OK, fmt.Sprintf("Threshold Crossed: %d out of the last %d datapoints were not %s the threshold (%s). The most recent %s: [%s].",
		a.EvaluationPeriods-breaching, a.EvaluationPeriods, word, formatValue(a.Threshold), points, strings.Join(shown, ", ")), false
}

func formatValue(v float64) string {
	return fmt.Sprintf("%.1f", v)
}
