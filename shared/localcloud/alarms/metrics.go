package alarms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// retain is how long datapoints are kept: longer than any local alarm looks
// back (EvaluationPeriods × Period of feedpipe's alarms is at most an hour).
const retain = 6 * time.Hour

// Metrics stores datapoints by namespace, metric name and exact dimension
// set, as CloudWatch does: a datapoint published with {function, site} is
// not seen by an alarm on {function} alone.
type Metrics struct {
	mu     sync.Mutex
	series map[string]*series // by seriesKey
}

// series is one metric's datapoints for one exact dimension set, in time
// order.
type series struct {
	namespace, name string
	dims            map[string]string
	pts             []datapoint
}

type datapoint struct {
	at    time.Time
	value float64
}

// NewMetrics returns an empty store.
func NewMetrics() *Metrics { return &Metrics{series: map[string]*series{}} }

func seriesKey(namespace, name string, dims map[string]string) string {
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(namespace + "\x00" + name)
	for _, k := range keys {
		b.WriteString("\x00" + k + "=" + dims[k])
	}
	return b.String()
}

// Put stores one datapoint.
func (m *Metrics) Put(namespace, name string, dims map[string]string, value float64, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := seriesKey(namespace, name, dims)
	sr := m.series[k]
	if sr == nil {
		sr = &series{namespace: namespace, name: name, dims: dims}
		m.series[k] = sr
	}
	pts := sr.pts
	// Drop what no alarm can look at any more.
	cut := 0
	for cut < len(pts) && at.Sub(pts[cut].at) > retain {
		cut++
	}
	pts = append(pts[cut:], datapoint{at, value})
	// Keep time order: datapoints usually arrive in order.
	for i := len(pts) - 1; i > 0 && pts[i].at.Before(pts[i-1].at); i-- {
		pts[i], pts[i-1] = pts[i-1], pts[i]
	}
	sr.pts = pts
}

// Statistic computes stat over the datapoints of one series in [from, to),
// and false when there are none.
func (m *Metrics) Statistic(namespace, name string, dims map[string]string, stat string, from, to time.Time) (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sr := m.series[seriesKey(namespace, name, dims)]
	if sr == nil {
		return 0, false
	}
	return statistic([]*series{sr}, stat, from, to)
}

// statistic computes stat over the datapoints of several series in
// [from, to) as one.
func statistic(all []*series, stat string, from, to time.Time) (float64, bool) {
	var n int
	var sum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, sr := range all {
		for _, p := range sr.pts {
			if p.at.Before(from) || !p.at.Before(to) {
				continue
			}
			n++
			sum += p.value
			lo, hi = min(lo, p.value), max(hi, p.value)
		}
	}
	if n == 0 {
		return 0, false
	}
	switch stat {
	case "Sum", "SUM":
		return sum, true
	case "Maximum", "MAX":
		return hi, true
	case "Minimum", "MIN":
		return lo, true
	case "Average", "AVG":
		return sum / float64(n), true
	default: // SampleCount, COUNT
		return float64(n), true
	}
}

// emfLine is the part of an Embedded Metric Format line the store reads.
type emfLine struct {
	AWS *struct {
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// PutEMF stores the metrics of one log line if it is an Embedded Metric
// Format line, at time at, and reports whether it was one. Each metric is
// published once per dimension set of its directive, as CloudWatch does;
// a value that is an array publishes each element.
//
// The line's own Timestamp is not used: the functions keep wall time while
// the local stack's clock may have been moved forward, and alarms evaluate
// on the stack's clock.
func (m *Metrics) PutEMF(line []byte, at time.Time) (bool, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' || !bytes.Contains(line, []byte(`"_aws"`)) {
		return false, nil
	}
	var head emfLine
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &head); err != nil || head.AWS == nil {
		return false, nil
	}
	if err := json.Unmarshal(line, &fields); err != nil {
		return false, nil
	}
	for _, d := range head.AWS.CloudWatchMetrics {
		for _, set := range d.Dimensions {
			dims := map[string]string{}
			for _, k := range set {
				var v string
				if err := json.Unmarshal(fields[k], &v); err != nil {
					return true, fmt.Errorf("emf: dimension %s is not a string member of the line", k)
				}
				dims[k] = v
			}
			for _, metric := range d.Metrics {
				values, err := emfValues(fields[metric.Name])
				if err != nil {
					return true, fmt.Errorf("emf: metric %s: %w", metric.Name, err)
				}
				for _, v := range values {
					m.Put(d.Namespace, metric.Name, dims, v, at)
				}
			}
		}
	}
	return true, nil
}

func emfValues(raw json.RawMessage) ([]float64, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("no value on the line")
	}
	var one float64
	if err := json.Unmarshal(raw, &one); err == nil {
		return []float64{one}, nil
	}
	var many []float64
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("value %s is neither a number nor an array of numbers", raw)
	}
	return many, nil
}
