package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
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

// BenchmarkSmallDeltas measures how many small deltas per second one site
// absorbs through the whole stack (real binaries, runner, HTTP API) with
// group commit: b.N deltas of 10 products each, created and PUT by 16
// concurrent clients, timed from the first create until every one reads
// imported. It reports deltas/s and the mean number of deltas per catalog
// commit.
//
//	go test -run '^$' -bench SmallDeltas -benchtime 500x ./e2e/
func BenchmarkSmallDeltas(b *testing.B) {
	const clients, products = 16, 10
	s := start(b, nil)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		var lines []string
		for j := range products {
			line, _ := upsert(fmt.Sprintf("sku-%05d", (i*products+j)%5000), i)
			lines = append(lines, line)
		}
		bodies[i] = []byte(strings.Join(lines, "\n") + "\n")
	}
	jobs := make(chan []byte)
	var mu sync.Mutex
	var uploaded []created
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range jobs {
				c, err := s.upload(body)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				uploaded = append(uploaded, c)
				mu.Unlock()
			}
		}()
	}
	for _, body := range bodies {
		jobs <- body
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	last := uploaded[0]
	for _, c := range uploaded {
		if c.Sequence > last.Sequence {
			last = c
		}
	}
	// Sequences apply in order: when the last is resolved, all are.
	final := s.waitTerminal(last, 5*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	for _, c := range uploaded {
		if r := s.waitTerminal(c, time.Minute); r.State != "imported" {
			b.Fatalf("upload %d: %s (%s)", c.Sequence, r.State, r.Reason)
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deltas/s")
	// Each commit makes one catalog version: the group commit's mean size.
	b.ReportMetric(float64(b.N)/float64(final.CatalogVersion), "deltas/commit")
}

// upload creates a delta upload and PUTs body to it; unlike create and put
// it returns its errors, so that concurrent clients can call it.
func (s *stack) upload(body []byte) (created, error) {
	var c created
	req, _ := json.Marshal(map[string]any{"mode": "delta", "contentLength": len(body)})
	r, _ := http.NewRequest(http.MethodPost, s.api+"/v1/sites/"+s.site+"/uploads", bytes.NewReader(req))
	r.Header.Set("Authorization", "Bearer "+s.token)
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return c, err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return c, fmt.Errorf("create upload: %d %s", resp.StatusCode, answer)
	}
	if err := json.Unmarshal(answer, &c); err != nil {
		return c, fmt.Errorf("create upload: %w", err)
	}
	p, _ := http.NewRequest(http.MethodPut, c.URL, bytes.NewReader(body))
	for k, v := range c.Headers {
		if !strings.EqualFold(k, "Content-Length") {
			p.Header.Set(k, v)
		}
	}
	resp, err = http.DefaultClient.Do(p)
	if err != nil {
		return c, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("PUT upload %d: %d", c.Sequence, resp.StatusCode)
	}
	return c, nil
}
