package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkUploadToImported measures, through the whole stack on the
// embedded cloud (real binaries, runner, HTTP API), the latency from the
// start of the PUT of a 1,000-product delta to the moment its status reads
// imported, one upload at a time. It reports p50 and p99 in milliseconds.
//
//	go test -run '^$' -bench UploadToImported -benchtime 50x ./e2e/
func BenchmarkUploadToImported(b *testing.B) {
	s := start(b, nil)
	var lines []string
	for i := range 1000 {
		line, _ := upsert(fmt.Sprintf("sku-%05d", i), 1)
		lines = append(lines, line)
	}
	body := []byte(strings.Join(lines, "\n") + "\n")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		c := s.create("delta", body, nil)
		start := time.Now()
		if st := put(s.t, c, body); st != http.StatusOK {
			b.Fatalf("PUT: %d", st)
		}
		r := s.waitTerminal(c, time.Minute)
		if r.State != "imported" {
			b.Fatalf("upload %d: %s", c.Sequence, r.State)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
