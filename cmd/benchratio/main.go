// Command benchratio reads `go test -bench` output on stdin and prints, for
// each benchmark with sub-benchmarks, a metric of every sub-benchmark and
// its ratio to a baseline sub-benchmark measured in the same run. Siblings
// are grouped by everything before the last "/", so nested benchmarks
// (BenchmarkImport/100k/import) compare within their own group.
//
//	go test -bench FIFOThroughput ./shared/awstest | benchratio -metric msgs/s -base embedded
//
// With -min, it exits non-zero when the baseline's ratio to any other
// sub-benchmark (or only to those -against names) is below the given
// factor, or the baseline's metric is below -floor, so make targets can
// state a target without timing assertions in tests.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// result is one metric of one sub-benchmark (averaged over -count runs).
type result struct {
	sum float64
	n   int
}

func (r result) mean() float64 { return r.sum / float64(r.n) }

var gomaxprocs = regexp.MustCompile(`-\d+$`)

func parse(in io.Reader, metric string) (map[string]map[string]result, error) {
	out := map[string]map[string]result{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := gomaxprocs.ReplaceAllString(f[0], "")
		i := strings.LastIndex(name, "/")
		if i < 0 {
			continue
		}
		parent, sub := name[:i], name[i+1:]
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] != metric {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a number", f[0], f[i])
			}
			if out[parent] == nil {
				out[parent] = map[string]result{}
			}
			r := out[parent][sub]
			r.sum += v
			r.n++
			out[parent][sub] = r
		}
	}
	return out, sc.Err()
}

func main() {
	metric := flag.String("metric", "msgs/s", "the metric to compare (its unit as go test prints it)")
	base := flag.String("base", "embedded", "the baseline sub-benchmark")
	minRatio := flag.Float64("min", 0, "fail when baseline/other is below this for any other sub-benchmark")
	against := flag.String("against", "", "comma-separated sub-benchmarks -min applies to (default: every other)")
	floor := flag.Float64("floor", 0, "fail when the baseline's metric is below this")
	flag.Parse()
	results, err := parse(os.Stdin, *metric)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(2)
	}
	if len(results) == 0 {
		fmt.Fprintf(os.Stderr, "benchratio: no sub-benchmark reported %s\n", *metric)
		os.Exit(2)
	}
	t := target{base: *base, min: *minRatio, floor: *floor}
	if *against != "" {
		t.against = strings.Split(*against, ",")
	}
	if !report(os.Stdout, results, *metric, t) {
		os.Exit(1)
	}
}

// target is what report compares and checks.
type target struct {
	base    string
	min     float64
	against []string // nil: every other sub-benchmark
	floor   float64
}

func (t target) checks(sub string) bool {
	return t.min > 0 && (t.against == nil || slices.Contains(t.against, sub))
}

// report prints every group's metric and ratios and says whether every
// target was met.
func report(w io.Writer, results map[string]map[string]result, metric string, t target) bool {
	ok := true
	parents := make([]string, 0, len(results))
	for p := range results {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	for _, p := range parents {
		subs := results[p]
		b, hasBase := subs[t.base]
		fmt.Fprintf(w, "%s (%s, mean of runs)\n", p, metric)
		names := make([]string, 0, len(subs))
		for s := range subs {
			names = append(names, s)
		}
		sort.Strings(names)
		for _, s := range names {
			v := subs[s].mean()
			line := fmt.Sprintf("  %-14s %12.0f", s, v)
			if hasBase && s != t.base && v > 0 {
				ratio := b.mean() / v
				line += fmt.Sprintf("   %s is %.2f× %s", t.base, ratio, s)
				if t.checks(s) {
					if ratio < t.min {
						line += fmt.Sprintf("  (target ≥ %.2f×: MISSED)", t.min)
						ok = false
					} else {
						line += fmt.Sprintf("  (target ≥ %.2f×: met)", t.min)
					}
				}
			}
			if s == t.base && t.floor > 0 {
				if v < t.floor {
					line += fmt.Sprintf("   (target ≥ %.0f: MISSED)", t.floor)
					ok = false
				} else {
					line += fmt.Sprintf("   (target ≥ %.0f: met)", t.floor)
				}
			}
			fmt.Fprintln(w, line)
		}
		if !hasBase {
			fmt.Fprintf(w, "  no %q sub-benchmark to compare against\n", t.base)
			ok = false
		}
	}
	return ok
}
