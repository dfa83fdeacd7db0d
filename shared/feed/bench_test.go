package feed

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/feedpipe/feedpipe/shared/feed/feedbench"
	"github.com/feedpipe/feedpipe/shared/layout"
)

// benchData returns n lines of a realistic delta (feedbench.Write).
func benchData(n int, seed uint64) []byte { return feedbench.Data(n, seed) }

type onlyReader = feedbench.OnlyReader

const benchLines = 10_000

// BenchmarkReader reads 10k lines of about 1 KB; MB/s counts decoded bytes.
func BenchmarkReader(b *testing.B) {
	plain := benchData(benchLines, 1)
	for _, tt := range []struct {
		enc  layout.Encoding
		data []byte
	}{
		{layout.Identity, plain},
		{layout.Zstd, zstded(b, plain)},
	} {
		b.Run(string(tt.enc), func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(onlyReader{R: bytes.NewReader(tt.data)}, tt.enc, Options{})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					if _, err := r.Next(); err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
					n++
				}
				r.Close()
				if n != benchLines {
					b.Fatalf("read %d lines, want %d", n, benchLines)
				}
			}
			b.ReportMetric(float64(benchLines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkCeiling measures what the import cannot beat on one core, on the
// data of BenchmarkReader (feedbench.Ceiling): zstd decode, line split, a
// minimal id scan and a zstd encode of the decoded bytes at the fastest
// level.
func BenchmarkCeiling(b *testing.B) {
	plain := benchData(benchLines, 1)
	data := zstded(b, plain)
	c, err := feedbench.NewCeiling()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		lines, err := c.Run(bytes.NewReader(data), true)
		if err != nil {
			b.Fatal(err)
		}
		if lines != benchLines {
			b.Fatalf("%d lines, want %d", lines, benchLines)
		}
	}
	b.ReportMetric(float64(benchLines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkValidate compares the line scanner with json.Valid on the same
// lines.
func BenchmarkValidate(b *testing.B) {
	plain := benchData(1000, 2)
	lines := bytes.Split(bytes.TrimSuffix(plain, []byte("\n")), []byte("\n"))
	b.Run("scanner", func(b *testing.B) {
		var s scanner
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			for _, l := range lines {
				if _, _, _, msg := s.scanLine(l); msg != "" {
					b.Fatal(msg)
				}
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			for _, l := range lines {
				if !json.Valid(l) {
					b.Fatal("invalid")
				}
			}
		}
	})
}
