// Package metrics writes CloudWatch Embedded Metric Format (EMF) lines: one
// JSON object per line, which Lambda ships from stdout to CloudWatch Logs and
// CloudWatch extracts into metrics. See
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
//
// Every line carries the dimension "function"; dimensions passed to Emit
// (e.g. "site") add a second dimension set, so each metric is published both
// per function and per function and site.
package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"
)

// Limits of the EMF specification.
const (
	MaxMetricsPerLine    = 100 // MetricDefinitions per directive
	MaxDimensionsPerSet  = 30  // keys per DimensionSet
	maxNameLen           = 255 // metric and dimension names
	maxDimensionValueLen = 1024
)

// Value is one metric value of a line. Unit is one of CloudWatch's units
// (Count, Bytes, Milliseconds, …).
type Value struct {
	Name  string
	Unit  string
	Value float64
}

// Emitter writes EMF lines to one writer. It is safe for concurrent use:
// each line is written with a single Write call under a lock. A nil
// *Emitter emits nothing, so handlers built without one still work.
type Emitter struct {
	mu        sync.Mutex
	w         io.Writer
	namespace string
	function  string
	clock     func() time.Time
}

// New returns an Emitter writing to w (os.Stdout in a Lambda function) in
// namespace, with the dimension function=function on every line. clock
// gives the lines' timestamps (time.Now when nil).
func New(w io.Writer, namespace, function string, clock func() time.Time) *Emitter {
	if clock == nil {
		clock = time.Now
	}
	return &Emitter{w: w, namespace: namespace, function: function, clock: clock}
}

// Emit writes values with the dimension sets [function] and, when dims
// holds any dimension, [function, dims keys in sorted order]. Dimensions
// with an empty value are left out (CloudWatch refuses empty values). More
// than MaxMetricsPerLine values are split over several lines. Nothing is
// written and an error is returned when the input breaks an EMF rule: an
// empty, too long or duplicate name, a metric named like a dimension, a
// unit off the CloudWatch list, a NaN or infinite value, or more than
// MaxDimensionsPerSet dimensions.
func (e *Emitter) Emit(dims map[string]string, values ...Value) error {
	if e == nil || len(values) == 0 {
		return nil
	}
	lines, err := e.encode(dims, values)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range lines {
		if _, err := e.w.Write(l); err != nil {
			return fmt.Errorf("metrics: write: %w", err)
		}
	}
	return nil
}

// CountOf is a Count value of n.
func CountOf(name string, n int) Value { return Value{Name: name, Unit: Count, Value: float64(n)} }

// Millis is a Milliseconds value of d.
func Millis(name string, d time.Duration) Value {
	return Value{Name: name, Unit: Milliseconds, Value: float64(d.Milliseconds())}
}

type metricDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit,omitempty"`
}

type directive struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

func (e *Emitter) encode(dims map[string]string, values []Value) ([][]byte, error) {
	if e.namespace == "" || len(e.namespace) > maxNameLen {
		return nil, errors.New("metrics: namespace must be 1-255 characters")
	}
	if e.function == "" {
		return nil, errors.New("metrics: empty function dimension")
	}
	members := map[string]string{DimFunction: e.function}
	var keys []string
	for k, v := range dims {
		if v == "" || k == DimFunction {
			continue
		}
		if len(k) > maxNameLen || len(v) > maxDimensionValueLen || k == "_aws" || k == "" {
			return nil, fmt.Errorf("metrics: bad dimension %q=%q", k, v)
		}
		members[k] = v
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if 1+len(keys) > MaxDimensionsPerSet {
		return nil, fmt.Errorf("metrics: %d dimensions, at most %d per set", 1+len(keys), MaxDimensionsPerSet)
	}
	sets := [][]string{{DimFunction}}
	if len(keys) > 0 {
		sets = append(sets, append([]string{DimFunction}, keys...))
	}
	seen := map[string]bool{}
	for _, v := range values {
		switch {
		case v.Name == "" || len(v.Name) > maxNameLen || v.Name == "_aws":
			return nil, fmt.Errorf("metrics: bad metric name %q", v.Name)
		case seen[v.Name]:
			return nil, fmt.Errorf("metrics: metric %s twice in one line", v.Name)
		case members[v.Name] != "":
			return nil, fmt.Errorf("metrics: metric %s is named like a dimension", v.Name)
		case !units[v.Unit]:
			return nil, fmt.Errorf("metrics: metric %s: unit %q is not a CloudWatch unit", v.Name, v.Unit)
		case math.IsNaN(v.Value) || math.IsInf(v.Value, 0):
			return nil, fmt.Errorf("metrics: metric %s: value %v is not a number JSON can carry", v.Name, v.Value)
		}
		seen[v.Name] = true
	}
	ts := e.clock().UnixMilli()
	var lines [][]byte
	for start := 0; start < len(values); start += MaxMetricsPerLine {
		chunk := values[start:min(start+MaxMetricsPerLine, len(values))]
		d := directive{Namespace: e.namespace, Dimensions: sets}
		for _, v := range chunk {
			d.Metrics = append(d.Metrics, metricDef{Name: v.Name, Unit: v.Unit})
		}
		var b bytes.Buffer
		b.WriteString(`{"_aws":`)
		if err := writeJSON(&b, metadata{Timestamp: ts, CloudWatchMetrics: []directive{d}}); err != nil {
			return nil, err
		}
		for _, k := range append([]string{DimFunction}, keys...) {
			if err := writeMember(&b, k, members[k]); err != nil {
				return nil, err
			}
		}
		for _, v := range chunk {
			if err := writeMember(&b, v.Name, v.Value); err != nil {
				return nil, err
			}
		}
		b.WriteString("}\n")
		lines = append(lines, b.Bytes())
	}
	return lines, nil
}

func writeMember(b *bytes.Buffer, k string, v any) error {
	b.WriteByte(',')
	if err := writeJSON(b, k); err != nil {
		return err
	}
	b.WriteByte(':')
	return writeJSON(b, v)
}

func writeJSON(b *bytes.Buffer, v any) error {
	out, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	b.Write(out)
	return nil
}
