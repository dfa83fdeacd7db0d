// Command benchratio reads `go test -bench` output on stdin and prints, for
// each benchmark with sub-benchmarks, a metric of every sub-benchmark and
// its ratio to a baseline sub-benchmark measured in the same run.
//
//	go test -bench FIFOThroughput ./shared/awstest | benchratio -metric msgs/s -base embedded
//
// With -min, it exits non-zero when the baseline's ratio to any other
// sub-benchmark is below the given factor, or the baseline's metric is below
// -floor, so make targets can state a target without timing assertions in
// tests.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
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
		parent, sub, ok := strings.Cut(name, "/")
		if !ok {
			continue
		}
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
	failed := false
	parents := make([]string, 0, len(results))
	for p := range results {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	for _, p := range parents {
		subs := results[p]
		b, ok := subs[*base]
		fmt.Printf("%s (%s, mean of runs)\n", p, *metric)
		names := make([]string, 0, len(subs))
		for s := range subs {
			names = append(names, s)
		}
		sort.Strings(names)
		for _, s := range names {
			v := subs[s].mean()
			line := fmt.Sprintf("  %-14s %12.0f", s, v)
			if ok && s != *base && v > 0 {
				ratio := b.mean() / v
				line += fmt.Sprintf("   %s is %.1f× %s", *base, ratio, s)
				if *minRatio > 0 && ratio < *minRatio {
					line += fmt.Sprintf("  (target ≥ %.1f×: MISSED)", *minRatio)
					failed = true
				}
			}
			if s == *base && *floor > 0 {
				if v < *floor {
					line += fmt.Sprintf("   (target ≥ %.0f: MISSED)", *floor)
					failed = true
				} else {
					line += fmt.Sprintf("   (target ≥ %.0f: met)", *floor)
				}
			}
			fmt.Println(line)
		}
		if !ok {
			fmt.Printf("  no %q sub-benchmark to compare against\n", *base)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
