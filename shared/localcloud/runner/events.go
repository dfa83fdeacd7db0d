package runner

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// wireEvents reads a function's Events into mappings, schedules and routes.
func (r *Runner) wireEvents(f *function) error {
	props, err := r.tpl.FunctionProperties(f.logicalID)
	if err != nil {
		return err
	}
	evs, _ := props["Events"].(map[string]any)
	var names []string
	for n := range evs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := fmt.Sprintf("Resources.%s.Properties.Events.%s", f.logicalID, name)
		raw, _ := evs[name].(map[string]any)
		typ, _ := raw["Type"].(string)
		resolved, err := r.resolver.Resolve(raw["Properties"], path+".Properties")
		if err != nil {
			return err
		}
		p, _ := resolved.(map[string]any)
		if p == nil {
			p = map[string]any{}
		}
		switch typ {
		case "SQS":
			err = r.wireSQSEvent(f, p, path)
		case "Schedule", "ScheduleV2":
			err = r.wireSchedule(f, name, typ, p, path)
		case "HttpApi":
			err = r.wireRoute(f, p, path)
		default:
			err = fmt.Errorf("%s.Type: the local runner does not support %q events (SQS, Schedule, ScheduleV2 and HttpApi are supported)", path, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkKeys(p map[string]any, path string, allowed ...string) error {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k := range p {
		if !ok[k] {
			return fmt.Errorf("%s.Properties.%s: not supported by the local runner", path, k)
		}
	}
	return nil
}

func (r *Runner) wireSQSEvent(f *function, p map[string]any, path string) error {
	if err := checkKeys(p, path, "Queue", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "ScalingConfig", "Enabled"); err != nil {
		return err
	}
	arn, _ := p["Queue"].(string)
	var q *queue
	for _, cand := range r.queues {
		if cand.arn == arn {
			q = cand
		}
	}
	if q == nil {
		return fmt.Errorf("%s.Properties.Queue: %q is not a queue of this template", path, arn)
	}
	m := SQSMapping{Function: f.logicalID, QueueURL: q.url, QueueARN: q.arn, FIFO: q.fifo, Enabled: true, Region: r.cfg.Region}
	var err error
	if v, ok := p["BatchSize"]; ok {
		if m.BatchSize, err = intValue(v, path+".Properties.BatchSize"); err != nil {
			return err
		}
	}
	if v, ok := p["MaximumBatchingWindowInSeconds"]; ok {
		if m.MaxBatchingWindow, err = seconds(v, path+".Properties.MaximumBatchingWindowInSeconds"); err != nil {
			return err
		}
	}
	if v, ok := p["Enabled"].(bool); ok {
		m.Enabled = v
	}
	if sc, ok := p["ScalingConfig"].(map[string]any); ok {
		if v, ok := sc["MaximumConcurrency"]; ok {
			if m.MaxConcurrency, err = intValue(v, path+".Properties.ScalingConfig.MaximumConcurrency"); err != nil {
				return err
			}
		}
	}
	if types, ok := p["FunctionResponseTypes"].([]any); ok {
		for _, t := range types {
			if t != "ReportBatchItemFailures" {
				return fmt.Errorf("%s.Properties.FunctionResponseTypes: unknown %v", path, t)
			}
			m.ReportBatchItemFailures = true
		}
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.mappings = append(r.mappings, &m)
	return nil
}

func (r *Runner) wireSchedule(f *function, name, typ string, p map[string]any, path string) error {
	sch := &Schedule{Name: f.name + "-" + name, Function: f.logicalID, Enabled: true, Region: r.cfg.Region, Account: r.cfg.AccountID, Scheduler: typ == "ScheduleV2"}
	var exprKey string
	var loc *time.Location
	if typ == "Schedule" {
		if err := checkKeys(p, path, "Schedule", "Input", "Enabled", "State", "Name", "Description"); err != nil {
			return err
		}
		exprKey = "Schedule"
	} else {
		if err := checkKeys(p, path, "ScheduleExpression", "ScheduleExpressionTimezone", "Input", "State", "Name", "Description", "FlexibleTimeWindow", "RetryPolicy"); err != nil {
			return err
		}
		exprKey = "ScheduleExpression"
		if tz, ok := p["ScheduleExpressionTimezone"].(string); ok && tz != "" {
			l, err := time.LoadLocation(tz)
			if err != nil {
				return fmt.Errorf("%s.Properties.ScheduleExpressionTimezone: %w", path, err)
			}
			loc = l
		}
	}
	expr, _ := p[exprKey].(string)
	e, err := ParseExpression(expr, loc)
	if err != nil {
		return fmt.Errorf("%s.Properties.%s: %w", path, exprKey, err)
	}
	sch.Expression = e
	if n, ok := p["Name"].(string); ok && n != "" {
		sch.Name = n
	}
	if v, ok := p["Enabled"].(bool); ok {
		sch.Enabled = v
	}
	if s, ok := p["State"].(string); ok {
		sch.Enabled = strings.EqualFold(s, "ENABLED")
	}
	if in, ok := p["Input"].(string); ok {
		sch.Input = []byte(in)
	}
	r.schedules = append(r.schedules, sch)
	return nil
}

func (r *Runner) wireRoute(f *function, p map[string]any, path string) error {
	if err := checkKeys(p, path, "Path", "Method", "ApiId", "TimeoutInMillis", "PayloadFormatVersion", "RouteSettings"); err != nil {
		return err
	}
	if v, ok := p["PayloadFormatVersion"].(string); ok && v != "2.0" {
		return fmt.Errorf("%s.Properties.PayloadFormatVersion: the local runner serves format 2.0, not %q", path, v)
	}
	route := &Route{Function: f.logicalID, Method: "ANY", Path: "/"}
	if m, ok := p["Method"].(string); ok {
		route.Method = strings.ToUpper(m)
	}
	if s, ok := p["Path"].(string); ok {
		route.Path = s
	}
	if route.Method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
		route.Method = "ANY"
	}
	r.routes = append(r.routes, route)
	return nil
}
