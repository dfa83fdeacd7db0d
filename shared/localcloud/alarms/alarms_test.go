package alarms

import (
	"strings"
	"testing"
	"time"

	"github.com/feedpipe/feedpipe/shared/samtemplate"
)

const testTemplate = `
Transform: AWS::Serverless-2016-10-31
Resources:
  Q:
    Type: AWS::SQS::Queue
  AgeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: the queue is old
      Namespace: AWS/SQS
      MetricName: ApproximateAgeOfOldestMessage
      Dimensions:
        - Name: QueueName
          Value: !GetAtt Q.QueueName
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 300
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  TwoOfThree:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: feedpipe
      MetricName: Failures
      Dimensions:
        - Name: function
          Value: push
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 3
      DatapointsToAlarm: 2
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
`

func load(t *testing.T, doc string) []Alarm {
	t.Helper()
	tpl, err := samtemplate.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	res := samtemplate.NewResolver(tpl, "s", "us-east-1", "000000000000", nil)
	res.Attrs["Q"] = map[string]string{"QueueName": "s-Q"}
	a, err := FromTemplate(tpl, res)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestFromTemplate(t *testing.T) {
	a := load(t, testTemplate)
	if len(a) != 2 {
		t.Fatalf("%d alarms, want 2", len(a))
	}
	age := a[0]
	if age.Name != "AgeAlarm" || age.Dimensions["QueueName"] != "s-Q" || age.Period != time.Minute || age.Threshold != 300 ||
		age.DatapointsToAlarm != 1 || age.TreatMissingData != "notBreaching" || age.Description != "the queue is old" {
		t.Errorf("AgeAlarm read as %+v", age)
	}
	if b := a[1]; b.EvaluationPeriods != 3 || b.DatapointsToAlarm != 2 || b.TreatMissingData != "missing" {
		t.Errorf("TwoOfThree read as %+v", b)
	}
}

func TestFromTemplateRefusesWhatItCannotEvaluate(t *testing.T) {
	for name, change := range map[string][2]string{
		"metric math":      {"      Statistic: Maximum\n", "      Statistic: Maximum\n      Metrics: []\n"},
		"bad statistic":    {"Statistic: Maximum", "Statistic: p99"},
		"bad period":       {"Period: 60\n      EvaluationPeriods: 1", "Period: 45\n      EvaluationPeriods: 1"},
		"anomaly band":     {"ComparisonOperator: GreaterThanThreshold\n      TreatMissingData", "ComparisonOperator: LessThanLowerThreshold\n      TreatMissingData"},
		"M greater than N": {"DatapointsToAlarm: 2", "DatapointsToAlarm: 4"},
	} {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(testTemplate, change[0], change[1], 1)
			if doc == testTemplate {
				t.Fatal("the change did not apply")
			}
			tpl, err := samtemplate.Parse([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			res := samtemplate.NewResolver(tpl, "s", "us-east-1", "000000000000", nil)
			res.Attrs["Q"] = map[string]string{"QueueName": "s-Q"}
			if _, err := FromTemplate(tpl, res); err == nil || !strings.Contains(err.Error(), "Resources.") {
				t.Errorf("err = %v, want an error naming the alarm", err)
			}
		})
	}
}

func TestStatistics(t *testing.T) {
	m := NewMetrics()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	dims := map[string]string{"function": "push"}
	for i, v := range []float64{3, 1, 8} {
		m.Put("ns", "M", dims, v, t0.Add(time.Duration(i)*time.Second))
	}
	m.Put("ns", "M", map[string]string{"function": "push", "site": "a"}, 100, t0) // another dimension set
	m.Put("ns", "M", dims, 1000, t0.Add(time.Minute))                             // outside the window
	for stat, want := range map[string]float64{"Sum": 12, "Maximum": 8, "Minimum": 1, "Average": 4, "SampleCount": 3} {
		got, ok := m.Statistic("ns", "M", dims, stat, t0, t0.Add(time.Minute))
		if !ok || got != want {
			t.Errorf("%s = %v %v, want %v", stat, got, ok, want)
		}
	}
	if _, ok := m.Statistic("ns", "M", map[string]string{"function": "import"}, "Sum", t0, t0.Add(time.Minute)); ok {
		t.Error("datapoints of another dimension value were counted")
	}
}

func TestEvaluate(t *testing.T) {
	alarms := load(t, testTemplate)
	m := NewMetrics()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	e := NewEvaluator(alarms, m, t0)
	state := func(name string) State {
		for _, s := range e.States() {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no alarm %s", name)
		return State{}
	}
	if s := state("AgeAlarm"); s.State != InsufficientData {
		t.Fatalf("a new alarm is %s", s.State)
	}

	// No data: notBreaching → OK; missing → INSUFFICIENT_DATA (unchanged).
	now := t0.Add(time.Minute)
	changed := e.Evaluate(now)
	if len(changed) != 1 || changed[0].Name != "AgeAlarm" || changed[0].State != OK {
		t.Fatalf("first evaluation changed %+v, want AgeAlarm → OK", changed)
	}

	// Under the threshold, then over it.
	q := map[string]string{"QueueName": "s-Q"}
	m.Put("AWS/SQS", "ApproximateAgeOfOldestMessage", q, 120, now.Add(30*time.Second))
	now = now.Add(time.Minute)
	if changed := e.Evaluate(now); len(changed) != 0 {
		t.Errorf("120 s under a 300 s threshold changed %+v", changed)
	}
	m.Put("AWS/SQS", "ApproximateAgeOfOldestMessage", q, 312, now.Add(30*time.Second))
	now = now.Add(time.Minute)
	changed = e.Evaluate(now)
	if len(changed) != 1 || changed[0].State != Alarming || !strings.Contains(changed[0].Reason, "[312.0 (") || !changed[0].Since.Equal(now) {
		t.Fatalf("312 s: %+v, want ALARM with the datapoint in the reason", changed)
	}
	// The condition clears when the next period has no breaching datapoint.
	now = now.Add(time.Minute)
	if changed := e.Evaluate(now); len(changed) != 1 || changed[0].State != OK {
		t.Errorf("after the queue drained: %+v, want OK", changed)
	}

	// 2 out of 3: one breaching period is not enough, two are.
	f := map[string]string{"function": "push"}
	m.Put("feedpipe", "Failures", f, 1, now.Add(10*time.Second))
	now = now.Add(time.Minute)
	if s := e.Evaluate(now); len(s) != 1 || s[0].Name != "TwoOfThree" || s[0].State != OK {
		t.Fatalf("one of three breaching: %+v, want TwoOfThree OK (out of INSUFFICIENT_DATA)", s)
	}
	m.Put("feedpipe", "Failures", f, 2, now.Add(10*time.Second))
	now = now.Add(time.Minute)
	if s := e.Evaluate(now); len(s) != 1 || s[0].State != Alarming || !strings.Contains(s[0].Reason, "2 out of the last 3") {
		t.Fatalf("two of three breaching: %+v, want ALARM", s)
	}
	// Missing data (treated as missing) for three periods → INSUFFICIENT_DATA.
	now = now.Add(3 * time.Minute)
	if s := e.Evaluate(now); len(s) != 1 || s[0].State != InsufficientData {
		t.Errorf("no data for three periods: %+v, want INSUFFICIENT_DATA", s)
	}
}

func TestPutEMF(t *testing.T) {
	m := NewMetrics()
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	line := `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"feedpipe","Dimensions":[["function"],["function","site"]],"Metrics":[{"Name":"SitesHalted","Unit":"Count"},{"Name":"Lag","Unit":"Milliseconds"}]}]},"function":"import","site":"demo","SitesHalted":1,"Lag":[5,7]}`
	if ok, err := m.PutEMF([]byte(line), at); !ok || err != nil {
		t.Fatalf("PutEMF: %v %v", ok, err)
	}
	win := func(dims map[string]string, name, stat string) float64 {
		v, _ := m.Statistic("feedpipe", name, dims, stat, at, at.Add(time.Second))
		return v
	}
	if win(map[string]string{"function": "import"}, "SitesHalted", "Sum") != 1 || win(map[string]string{"function": "import", "site": "demo"}, "SitesHalted", "Sum") != 1 {
		t.Error("SitesHalted not published once per dimension set")
	}
	if win(map[string]string{"function": "import"}, "Lag", "SampleCount") != 2 {
		t.Error("an array value did not publish each element")
	}
	for _, notEMF := range []string{`plain text`, `{"level":"INFO","msg":"x"}`, ``} {
		if ok, _ := m.PutEMF([]byte(notEMF), at); ok {
			t.Errorf("%q taken for EMF", notEMF)
		}
	}
	if ok, err := m.PutEMF([]byte(`{"_aws":{"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["function"]],"Metrics":[{"Name":"X"}]}]},"function":"f"}`), at); !ok || err == nil {
		t.Errorf("an EMF line without its metric's value: %v %v, want an error", ok, err)
	}
}

func TestParseQuery(t *testing.T) {
	q, err := ParseQuery(`SELECT SUM(PushFailures) FROM SCHEMA(feedpipe, destination, "function", site) WHERE "function" = 'push' GROUP BY site, destination`)
	if err != nil {
		t.Fatal(err)
	}
	if q.Func != "SUM" || q.Metric != "PushFailures" || q.Namespace != "feedpipe" || strings.Join(q.Schema, ",") != "destination,function,site" ||
		q.Where["function"] != "push" || strings.Join(q.GroupBy, ",") != "site,destination" {
		t.Errorf("parsed %+v", q)
	}
	if q, err := ParseQuery(`SELECT MAX(CPUUtilization) FROM "AWS/EC2"`); err != nil || q.Schema != nil || q.Namespace != "AWS/EC2" {
		t.Errorf("FROM namespace: %+v %v", q, err)
	}
	for _, bad := range []string{
		`SELECT P99(X) FROM SCHEMA(ns)`,
		`SELECT SUM(X) FROM SCHEMA(ns, a) WHERE a != 'b'`,
		`SELECT SUM(X) FROM SCHEMA(ns, a) WHERE a = 'b' OR a = 'c'`,
		`SELECT SUM(X) FROM SCHEMA(ns, a) GROUP BY a ORDER BY SUM() DESC LIMIT 1`,
	} {
		if _, err := ParseQuery(bad); err == nil {
			t.Errorf("%s: parsed, want an error", bad)
		}
	}
}

func TestMultiTimeSeriesAlarm(t *testing.T) {
	alarms := load(t, `
Transform: AWS::Serverless-2016-10-31
Resources:
  PerDestination:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics:
        - Id: failures
          Expression: SELECT SUM(PushFailures) FROM SCHEMA(feedpipe, destination, "function", site) GROUP BY site, destination
          Period: 300
          ReturnData: true
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
`)
	if len(alarms) != 1 || alarms[0].Query == nil || alarms[0].Period != 5*time.Minute || alarms[0].Metric() != "feedpipe PushFailures" {
		t.Fatalf("read %+v", alarms)
	}
	m := NewMetrics()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	e := NewEvaluator(alarms, m, t0)
	put := func(site, dest string, v float64, at time.Time) {
		m.Put("feedpipe", "PushFailures", map[string]string{"function": "push", "site": site, "destination": dest}, v, at)
		m.Put("feedpipe", "PushFailures", map[string]string{"function": "push"}, v, at) // another dimension set: not in the schema
	}
	if s := e.Evaluate(t0.Add(time.Minute)); len(s) != 1 || s[0].State != OK {
		t.Fatalf("no series: %+v, want OK (missing treated as not breaching)", s)
	}
	put("shop", "erp", 0, t0.Add(90*time.Second))
	put("shop", "dead", 1, t0.Add(90*time.Second))
	put("other", "dead", 0, t0.Add(90*time.Second))
	s := e.Evaluate(t0.Add(2 * time.Minute))
	if len(s) != 1 || s[0].State != Alarming || s[0].Reason != "1 out of 3 time series evaluated to ALARM: site=shop, destination=dead" {
		t.Fatalf("one failing destination: %+v", s)
	}
	if s := e.Evaluate(t0.Add(10 * time.Minute)); len(s) != 1 || s[0].State != OK {
		t.Errorf("after the failures aged out: %+v, want OK", s)
	}
}
