// Package feedbench holds what feedpipe's benchmarks share about delta
// files: a generator of realistic deltas and the read+write ceiling, the
// least an importer must do with a zstd delta on one core. It is used only
// by benchmarks; it does not import package feed, so feed's own tests can
// use it.
package feedbench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/klauspost/compress/zstd"
)

type product struct {
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

var vocabulary = strings.Fields(`organic cotton slim fit shirt with long sleeves and a button-down collar
	made in Portugal durable stretch denim jeans waterproof hiking boots with Vibram sole lightweight
	running shoe breathable mesh upper "limited" edition café crème naïve façade Größe 42 — déjà vu
	stainless steel kettle 1.7 l ceramic mug set of 4 recycled polyester backpack 25 l laptop sleeve`)

// Write writes n lines of a realistic delta to w: products of about 1 KB
// with varied fields and lengths, ids drawn from ten million, and one
// delete in twenty lines. The same n and seed give the same bytes.
func Write(w io.Writer, n int, seed uint64) error { return WriteRevision(w, n, seed, 0) }

// WriteRevision writes the lines Write writes for n and seed with the
// product content of revision rev: the same ids and ops in the same order,
// every product different from other revisions'.
func WriteRevision(w io.Writer, n int, seed, rev uint64) error {
	ids := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rng := rand.New(rand.NewPCG(seed^rev<<32, rev^0x2545f4914f6cdd1d))
	words := func(lo, hi int) string {
		k := lo + rng.IntN(hi-lo+1)
		w := make([]string, k)
		for i := range w {
			w[i] = vocabulary[rng.IntN(len(vocabulary))]
		}
		return strings.Join(w, " ")
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	for i := range n {
		line.Reset()
		id := fmt.Sprintf("sku-%08d", ids.IntN(10_000_000))
		if i%20 == 19 {
			fmt.Fprintf(&line, `{"op":"delete","id":%q}`+"\n", id)
		} else {
			p := product{
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
			line.WriteString(`{"op":"upsert","id":`)
			if err := enc.Encode(id); err != nil {
				return err
			}
			line.Truncate(line.Len() - 1)
			line.WriteString(`,"product":`)
			if err := enc.Encode(p); err != nil {
				return err
			}
			line.Truncate(line.Len() - 1)
			line.WriteString("}\n")
		}
		if _, err := bw.Write(line.Bytes()); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Data returns the n lines Write writes.
func Data(n int, seed uint64) []byte {
	var buf bytes.Buffer
	_ = Write(&buf, n, seed) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// Zstd returns the n lines WriteRevision writes, zstd-compressed at the
// default level (as a client would upload them), and their uncompressed
// size. Only the compressed bytes are held.
func Zstd(n int, seed, rev uint64) (data []byte, plain int64, err error) {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf)
	if err != nil {
		return nil, 0, err
	}
	cw := &CountingWriter{W: enc}
	if err := WriteRevision(cw, n, seed, rev); err != nil {
		return nil, 0, err
	}
	if err := enc.Close(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), cw.N, nil
}

// CountingWriter passes writes to W and counts the bytes in N.
type CountingWriter struct {
	W io.Writer
	N int64
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

// OnlyReader hides every method but Read, so that decoders stream.
type OnlyReader struct{ R io.Reader }

func (o OnlyReader) Read(p []byte) (int, error) { return o.R.Read(p) }

// Ceiling measures what an importer cannot beat on one core: zstd decode,
// line split, a minimal id scan and, with encode, one zstd encode of the
// decoded bytes at the fastest level. Without encode it is the read-only
// part. A Ceiling is reused across runs; it is not safe for concurrent use.
type Ceiling struct {
	dec *zstd.Decoder
	enc *zstd.Encoder
	buf []byte
}

// NewCeiling returns a Ceiling whose decoder and encoder use one goroutine
// each.
func NewCeiling() (*Ceiling, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(io.Discard, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		dec.Close()
		return nil, err
	}
	return &Ceiling{dec: dec, enc: enc, buf: make([]byte, 256<<10)}, nil
}

// Close releases the decoder.
func (c *Ceiling) Close() { c.dec.Close() }

var idKey = []byte(`"id":"`)

// Run reads the zstd stream r to its end and returns its line count.
func (c *Ceiling) Run(r io.Reader, encode bool) (int, error) {
	if err := c.dec.Reset(OnlyReader{r}); err != nil {
		return 0, err
	}
	if encode {
		c.enc.Reset(io.Discard)
	}
	buf := c.buf
	lines, idBytes, w := 0, 0, 0
	for {
		n, err := c.dec.Read(buf[w:])
		if n > 0 && encode {
			if _, err := c.enc.Write(buf[w : w+n]); err != nil {
				return 0, err
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
		if r == 0 && w == len(buf) {
			return 0, fmt.Errorf("a line is longer than %d bytes", len(buf))
		}
		w = copy(buf, buf[r:w])
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if encode {
		if err := c.enc.Close(); err != nil {
			return 0, err
		}
	}
	if lines > 0 && idBytes == 0 {
		return 0, fmt.Errorf("no id in %d lines", lines)
	}
	return lines, nil
}
