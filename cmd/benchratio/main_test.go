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
