package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var fixed = func() time.Time { return time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC) }

func TestGolden(t *testing.T) {
	cases := []struct {
		name   string
		dims   map[string]string
		values []Value
	}{
		{"function_only", nil, []Value{CountOf(SyncJobsPlanned, 3), CountOf(SyncJobsDeduplicated, 1), CountOf(SequencesExpired, 0)}},
		{"site", map[string]string{DimSite: "shop-1"}, []Value{CountOf(UploadsReceived, 1), {BytesReceived, Bytes, 1 << 20}, Millis(CopyLatency, 1500*time.Millisecond)}},
		{"site_destination", map[string]string{DimSite: "shop-1", DimDestination: "hook"}, []Value{CountOf(PushFailures, 1), {DestinationBacklog, None, 4}}},
		{"empty_dimension_left_out", map[string]string{DimSite: ""}, []Value{CountOf(SitesHalted, 1)}},
		{"fractions", map[string]string{DimSite: "s"}, []Value{{ImportLag, Milliseconds, 0.5}, {"Large", Count, 1e21}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := New(&buf, Namespace, "copy", fixed).Emit(c.dims, c.values...); err != nil {
				t.Fatal(err)
			}
			checkEMF(t, buf.Bytes())
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestSplitsOver100Metrics(t *testing.T) {
	var vals []Value
	for i := range 250 {
		vals = append(vals, CountOf(fmt.Sprintf("M%03d", i), i))
	}
	var buf bytes.Buffer
	if err := New(&buf, Namespace, "import", fixed).Emit(map[string]string{DimSite: "s"}, vals...); err != nil {
		t.Fatal(err)
	}
	lines := checkEMF(t, buf.Bytes())
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	total := 0
	for _, l := range lines {
		total += len(l.metrics)
	}
	if total != 250 {
		t.Errorf("%d metrics over the lines, want 250", total)
	}
}

func TestRefusesWhatEMFForbids(t *testing.T) {
	many := map[string]string{}
	for i := range MaxDimensionsPerSet {
		many[fmt.Sprintf("d%02d", i)] = "x"
	}
	cases := map[string]struct {
		dims   map[string]string
		values []Value
	}{
		"unknown unit":         {nil, []Value{{"A", "Widgets", 1}}},
		"empty unit":           {nil, []Value{{"A", "", 1}}},
		"empty name":           {nil, []Value{{"", Count, 1}}},
		"long name":            {nil, []Value{{strings.Repeat("a", 256), Count, 1}}},
		"duplicate name":       {nil, []Value{CountOf("A", 1), CountOf("A", 2)}},
		"named as dimension":   {map[string]string{DimSite: "s"}, []Value{CountOf(DimSite, 1)}},
		"named as function":    {nil, []Value{CountOf(DimFunction, 1)}},
		"reserved _aws":        {nil, []Value{CountOf("_aws", 1)}},
		"NaN":                  {nil, []Value{{"A", Count, math.NaN()}}},
		"Inf":                  {nil, []Value{{"A", Count, math.Inf(1)}}},
		"31 dimensions":        {many, []Value{CountOf("A", 1)}},
		"dimension _aws":       {map[string]string{"_aws": "x"}, []Value{CountOf("A", 1)}},
		"long dimension value": {map[string]string{DimSite: strings.Repeat("v", 1025)}, []Value{CountOf("A", 1)}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := New(&buf, Namespace, "push", fixed).Emit(c.dims, c.values...); err == nil {
				t.Errorf("no error; wrote %s", buf.String())
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %q despite the error", buf.String())
			}
		})
	}
}

func TestNilEmitterAndNoValues(t *testing.T) {
	var e *Emitter
	if err := e.Emit(map[string]string{DimSite: "s"}, CountOf("A", 1)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := New(&buf, Namespace, "sync", fixed).Emit(nil); err != nil || buf.Len() != 0 {
		t.Fatalf("err %v, wrote %q", err, buf.String())
	}
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	e := New(&buf, Namespace, "push", nil)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if err := e.Emit(map[string]string{DimSite: fmt.Sprintf("s%d", g)}, CountOf(PushDeliveries, i), CountOf(PushRetries, g)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if lines := checkEMF(t, buf.Bytes()); len(lines) != 1600 {
		t.Errorf("%d lines, want 1600", len(lines))
	}
}

// parsed is a line read back by checkEMF.
type parsed struct {
	metrics map[string]float64
}

// checkEMF parses every line of out and checks it against the EMF
// specification: a root object with an _aws member; _aws.Timestamp an
// integer of epoch milliseconds; _aws.CloudWatchMetrics an array of
// directives, each with a Namespace, Dimensions (an array of dimension sets,
// each an array of at most 30 strings, each naming a top-level string
// member) and Metrics (at most 100 definitions, each with a Name naming a
// top-level number member and, if given, a Unit from CloudWatch's list).
func checkEMF(t *testing.T, out []byte) []parsed {
	t.Helper()
	var lines []parsed
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		raw := sc.Bytes()
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var root map[string]any
		if err := dec.Decode(&root); err != nil {
			t.Fatalf("not a JSON object: %v: %s", err, raw)
		}
		if dec.More() {
			t.Fatalf("more than one JSON value on a line: %s", raw)
		}
		aws, ok := root["_aws"].(map[string]any)
		if !ok {
			t.Fatalf("no _aws object: %s", raw)
		}
		ts, ok := aws["Timestamp"].(json.Number)
		if !ok {
			t.Fatalf("_aws.Timestamp is not a number: %s", raw)
		}
		ms, err := ts.Int64()
		if err != nil || ms <= 0 {
			t.Fatalf("_aws.Timestamp %s is not epoch milliseconds", ts)
		}
		dirs, ok := aws["CloudWatchMetrics"].([]any)
		if !ok || len(dirs) == 0 {
			t.Fatalf("_aws.CloudWatchMetrics is not a non-empty array: %s", raw)
		}
		p := parsed{metrics: map[string]float64{}}
		for _, d := range dirs {
			dir, ok := d.(map[string]any)
			if !ok {
				t.Fatalf("a directive is not an object: %s", raw)
			}
			if ns, ok := dir["Namespace"].(string); !ok || ns == "" || len(ns) > 255 {
				t.Fatalf("bad Namespace %v", dir["Namespace"])
			}
			sets, ok := dir["Dimensions"].([]any)
			if !ok {
				t.Fatalf("Dimensions is not an array: %s", raw)
			}
			for _, s := range sets {
				set, ok := s.([]any)
				if !ok {
					t.Fatalf("a dimension set is not an array: %s", raw)
				}
				if len(set) > MaxDimensionsPerSet {
					t.Fatalf("dimension set of %d keys", len(set))
				}
				for _, k := range set {
					key, ok := k.(string)
					if !ok {
						t.Fatalf("dimension key %v is not a string", k)
					}
					if v, ok := root[key].(string); !ok || v == "" {
						t.Fatalf("dimension %s has no top-level string member: %s", key, raw)
					}
				}
			}
			defs, ok := dir["Metrics"].([]any)
			if !ok || len(defs) > MaxMetricsPerLine {
				t.Fatalf("Metrics is not an array of at most %d: %s", MaxMetricsPerLine, raw)
			}
			for _, m := range defs {
				def, ok := m.(map[string]any)
				if !ok {
					t.Fatalf("a metric definition is not an object: %s", raw)
				}
				name, ok := def["Name"].(string)
				if !ok || name == "" || len(name) > 255 {
					t.Fatalf("bad metric Name %v", def["Name"])
				}
				if u, ok := def["Unit"]; ok {
					if us, ok := u.(string); !ok || !ValidUnit(us) {
						t.Fatalf("metric %s: Unit %v is not a CloudWatch unit", name, u)
					}
				}
				n, ok := root[name].(json.Number)
				if !ok {
					t.Fatalf("metric %s has no top-level number member: %s", name, raw)
				}
				f, err := n.Float64()
				if err != nil {
					t.Fatalf("metric %s: %v", name, err)
				}
				p.metrics[name] = f
			}
		}
		lines = append(lines, p)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		t.Fatal("output does not end with a newline")
	}
	return lines
}
