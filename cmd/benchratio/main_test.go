package main

import (
	"strings"
	"testing"
)

func TestParseAveragesRunsPerSubBenchmark(t *testing.T) {
	out := `goos: linux
BenchmarkFIFOThroughput/embedded-2         	       1	3000000000 ns/op	     30000 msgs/s
BenchmarkFIFOThroughput/embedded-2         	       1	3000000000 ns/op	     20000 msgs/s
BenchmarkFIFOThroughput/moto-2             	       1	3000000000 ns/op	      1000 msgs/s
BenchmarkOther-2 1 5 ns/op
PASS`
	got, err := parse(strings.NewReader(out), "msgs/s")
	if err != nil {
		t.Fatal(err)
	}
	fifo := got["BenchmarkFIFOThroughput"]
	if fifo["embedded"].mean() != 25000 || fifo["moto"].mean() != 1000 || len(got) != 1 {
		t.Fatalf("parsed %v", got)
	}
}

func TestNestedSubBenchmarksCompareWithinTheirGroup(t *testing.T) {
	out := `BenchmarkImport/1k/import          3  1 ns/op  50000 products/s  4.8 zstd-ratio
BenchmarkImport/1k/ceiling         3  1 ns/op  200000 products/s
BenchmarkImport/1k/read            3  1 ns/op  1000000 products/s
BenchmarkImport/100k/import        3  1 ns/op  150000 products/s
BenchmarkImport/100k/ceiling       3  1 ns/op  200000 products/s
BenchmarkImport/100k/read          3  1 ns/op  1000000 products/s`
	got, err := parse(strings.NewReader(out), "products/s")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["BenchmarkImport/1k"]["import"].mean() != 50000 || got["BenchmarkImport/100k"]["ceiling"].mean() != 200000 {
		t.Fatalf("parsed %v", got)
	}
	var w strings.Builder
	if report(&w, got, "products/s", target{base: "import", min: 0.5, against: []string{"ceiling"}}) {
		t.Errorf("1k import at 0.25× the ceiling passed a 0.5× target:\n%s", w.String())
	}
	for _, want := range []string{"import is 0.25× ceiling  (target ≥ 0.50×: MISSED)", "import is 0.75× ceiling  (target ≥ 0.50×: met)", "import is 0.15× read\n"} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, w.String())
		}
	}
	w.Reset()
	if !report(&w, map[string]map[string]result{"BenchmarkImport/100k": got["BenchmarkImport/100k"]}, "products/s", target{base: "import", min: 0.5, against: []string{"ceiling"}}) {
		t.Errorf("0.75× the ceiling missed a 0.5× target that excludes read:\n%s", w.String())
	}
}
