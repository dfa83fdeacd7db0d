package feed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/klauspost/compress/zstd"
)

type benchProduct struct {
	Title        string            `json:"title"`
	Description  string            `json:"description"`
	Price        float64           `json:"price"`
	Currency     string            `json:"currency"`
	Availability string            `json:"availability"`
	Brand        string            `json:"brand"`
	Categories   []string          `json:"categories"`
	Images       []string          `json:"images"`
	Attributes   map[string]any    `json:"attributes"`
	Labels       map[string]string `json:"labels,omitempty"`
}

var benchWords = strings.Fields(`organic cotton slim fit shirt with long sleeves and a button-down collar
	made in Portugal durable stretch denim jeans waterproof hiking boots with Vibram sole lightweight
	running shoe breathable mesh upper "limited" edition café crème naïve façade Größe 42 — déjà vu
	stainless steel kettle 1.7 l ceramic mug set of 4 recycled polyester backpack 25 l laptop sleeve`)

// benchData returns n lines of a realistic delta: products of about 1 KB
// with varied fields and lengths, and one delete in twenty lines.
func benchData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := func(lo, hi int) string {
		k := lo + rng.IntN(hi-lo+1)
		w := make([]string, k)
		for i := range w {
			w[i] = benchWords[rng.IntN(len(benchWords))]
		}
		return strings.Join(w, " ")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range n {
		id := fmt.Sprintf("sku-%08d", rng.IntN(10_000_000))
		if i%20 == 19 {
			fmt.Fprintf(&buf, `{"op":"delete","id":%q}`+"\n", id)
			continue
		}
		p := benchProduct{
			Title:        words(3, 10),
			Description:  words(40, 110),
			Price:        float64(rng.IntN(100000)) / 100,
			Currency:     []string{"EUR", "USD", "GBP", "CHF"}[rng.IntN(4)],
			Availability: []string{"in_stock", "out_of_stock", "preorder"}[rng.IntN(3)],
			Brand:        words(1, 2),
			Attributes: map[string]any{
				"color":    []string{"red", "navy blue", "black", "forest green"}[rng.IntN(4)],
				"size":     []string{"S", "M", "L", "XL", "42", "10.5"}[rng.IntN(6)],
				"weight_g": rng.IntN(5000),
				"gtin":     fmt.Sprintf("%013d", rng.Int64N(1e13)),
				"in_sale":  rng.IntN(2) == 0,
			},
		}
		for range 1 + rng.IntN(4) {
			p.Categories = append(p.Categories, words(1, 2)+" > "+words(1, 3))
		}
		for j := range 1 + rng.IntN(5) {
			p.Images = append(p.Images, fmt.Sprintf("https://cdn.example.com/images/%s/%d-%x.jpg?w=800&h=800", id, j, rng.Uint32()))
		}
		if rng.IntN(3) == 0 {
			p.Labels = map[string]string{"season": "summer", "campaign": words(1, 3)}
		}
		buf.WriteString(`{"op":"upsert","id":`)
		_ = enc.Encode(id)
		buf.Truncate(buf.Len() - 1)
		buf.WriteString(`,"product":`)
		_ = enc.Encode(p)
		buf.Truncate(buf.Len() - 1)
		buf.WriteString("}\n")
	}
	return buf.Bytes()
}

// onlyReader hides every method but Read, so that decoders stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

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
				r, err := NewReader(onlyReader{bytes.NewReader(tt.data)}, tt.enc, Options{})
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
// data of BenchmarkReader: zstd decode, line split, a minimal id scan and a
// zstd encode of the decoded bytes at the fastest level.
func BenchmarkCeiling(b *testing.B) {
	plain := benchData(benchLines, 1)
	data := zstded(b, plain)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	enc, err := zstd.NewWriter(io.Discard, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, bufSize)
	idKey := []byte(`"id":"`)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if err := dec.Reset(onlyReader{bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
		enc.Reset(io.Discard)
		lines, idBytes, w := 0, 0, 0
		for {
			n, err := dec.Read(buf[w:])
			if n > 0 {
				if _, err := enc.Write(buf[w : w+n]); err != nil {
					b.Fatal(err)
				}
			}
			w += n
			r := 0
			for {
				i := bytes.IndexByte(buf[r:w], '\n')
				if i < 0 {
					break
				}
				line := buf[r : r+i]
				if k := bytes.Index(line, idKey); k >= 0 {
					idBytes += bytes.IndexByte(line[k+len(idKey):], '"')
				}
				lines++
				r += i + 1
			}
			w = copy(buf, buf[r:w])
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
		if lines != benchLines || idBytes == 0 {
			b.Fatalf("%d lines", lines)
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
