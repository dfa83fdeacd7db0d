package catalog

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

var (
	benchCatalog = flag.Int("bench.catalog", 100_000, "products in the catalog of BenchmarkSmallDeltaOnLargeCatalog")
	benchLarge   = flag.Int("bench.large", 200_000, "products in the full upload of BenchmarkStageMemory")
)

// productGen makes products of about 1 KB with realistic variety: words
// from a fixed vocabulary, prices, attributes and URLs, compressing 3–5×
// with zstd like real catalog JSON.
type productGen struct {
	words []string
}

func newProductGen() *productGen {
	rng := rand.New(rand.NewPCG(11, 12))
	g := &productGen{}
	const letters = "abcdefghijklmnopqrstuvwxyzaeiouaeiou"
	for range 3000 {
		b := make([]byte, 3+rng.IntN(8))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		g.words = append(g.words, string(b))
	}
	return g
}

// product returns the product id at revision rev; the same arguments give
// the same bytes.
func (g *productGen) product(id string, rev int) []byte {
	rng := rand.New(rand.NewPCG(uint64(len(id))<<32^uint64(rev), fnv64(id)))
	words := func(n int) []byte {
		var b []byte
		for i := range n {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, g.words[rng.IntN(len(g.words))]...)
		}
		return b
	}
	b := make([]byte, 0, 1100)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, id)
	b = append(b, `,"title":"`...)
	b = append(b, words(4+rng.IntN(5))...)
	b = append(b, `","brand":"`...)
	b = append(b, g.words[rng.IntN(200)]...)
	b = append(b, `","price":`...)
	b = strconv.AppendFloat(b, float64(rng.IntN(100_000))/100, 'f', 2, 64)
	b = append(b, `,"currency":"EUR","availability":"`...)
	b = append(b, []string{"in_stock", "out_of_stock", "preorder"}[rng.IntN(3)]...)
	b = append(b, `","gtin":"`...)
	b = strconv.AppendUint(b, 4000000000000+rng.Uint64N(999999999999), 10)
	b = append(b, `","categories":["`...)
	b = append(b, g.words[rng.IntN(50)]...)
	b = append(b, ` > `...)
	b = append(b, g.words[rng.IntN(300)]...)
	b = append(b, `"],"attributes":{"color":"`...)
	b = append(b, g.words[rng.IntN(40)]...)
	b = append(b, `","size":"`...)
	b = append(b, []string{"XS", "S", "M", "L", "XL"}[rng.IntN(5)]...)
	b = append(b, `","weight_g":`...)
	b = strconv.AppendInt(b, int64(rng.IntN(5000)), 10)
	b = append(b, `},"image":"https://cdn.example.com/img/`...)
	b = strconv.AppendUint(b, rng.Uint64(), 36)
	b = append(b, `.jpg","rev":`...)
	b = strconv.AppendInt(b, int64(rev), 10)
	b = append(b, `,"description":"`...)
	b = append(b, words(60+rng.IntN(60))...)
	return append(b, `"}`...)
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// generated is a delta of n upserts made while it is read, so that no
// benchmark holds a large delta in memory.
func (g *productGen) generated(n, rev int, full bool) Delta {
	return Delta{Sequence: uint64(rev + 1), Full: full, Ops: func(yield func(Op) error) error {
		for i := range n {
			id := "sku-" + strconv.Itoa(i)
			if err := yield(Op{ID: id, Product: g.product(id, rev)}); err != nil {
				return err
			}
		}
		return nil
	}}
}

// prepared is a delta of n upserts made in advance, so that a benchmark
// measures the store, not the generator.
func (g *productGen) prepared(n, rev int) (Delta, int64) {
	ops := make([]Op, n)
	var size int64
	for i := range ops {
		id := "sku-" + strconv.Itoa(i)
		ops[i] = Op{ID: id, Product: g.product(id, rev)}
		size += int64(len(ops[i].Product))
	}
	return Delta{Sequence: uint64(rev + 1), Ops: opsOf(ops)}, size
}

// BenchmarkStageCommit measures import throughput on the embedded cloud: a
// delta that changes every one of n products, staged and committed onto the
// previous version.
func BenchmarkStageCommit(b *testing.B) {
	sizes := []int{1_000, 100_000}
	if *long {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			e := newEnv(b)
			s := e.store(b, nil)
			ctx := context.Background()
			g := newProductGen()
			// Two revisions of every product, alternating, so each delta
			// changes every product.
			var deltas [2]Delta
			if n <= 100_000 {
				for i := range deltas {
					deltas[i], _ = g.prepared(n, i)
				}
			} else {
				for i := range deltas {
					deltas[i] = g.generated(n, i, false)
				}
			}
			head := Version{Site: testSite}
			var staging time.Duration
			rev := 0
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				st, err := s.Stage(ctx, testSite, head, deltas[rev%2:rev%2+1])
				if err != nil {
					b.Fatal(err)
				}
				staging += time.Since(t0)
				rev++
				if head, err = st.Commit(ctx, uint64(rev)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			var input, stored int64
			for _, r := range head.Shards {
				input += r.Raw
				stored += r.Bytes
			}
			b.ReportMetric(float64(n*rev)/b.Elapsed().Seconds(), "products/s")
			b.ReportMetric(float64(n*rev)/staging.Seconds(), "staged-products/s")
			b.ReportMetric(float64(input)/float64(stored), "zstd-ratio")
			b.ReportMetric(float64(len(head.Shards)), "shards")
		})
	}
}

// BenchmarkSmallDeltaOnLargeCatalog measures what a 10-product delta writes
// on a large catalog (-bench.catalog products), as a share of the catalog's
// stored size.
func BenchmarkSmallDeltaOnLargeCatalog(b *testing.B) {
	e := newEnv(b)
	api := newCounting(e.client)
	s := e.store(b, api)
	ctx := context.Background()
	g := newProductGen()
	n := *benchCatalog
	st, err := s.Stage(ctx, testSite, Version{Site: testSite}, []Delta{g.generated(n, 0, true)})
	if err != nil {
		b.Fatal(err)
	}
	head, err := st.Commit(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	size := catalogBytes(head)
	api.reset()
	rng := rand.New(rand.NewPCG(5, 6))
	b.ResetTimer()
	rounds := 0
	for b.Loop() {
		rounds++
		ops := make([]Op, 10)
		for i := range ops {
			id := "sku-" + strconv.Itoa(rng.IntN(n))
			ops[i] = Op{ID: id, Product: g.product(id, rounds)}
		}
		st, err := s.Stage(ctx, testSite, head, []Delta{{Sequence: uint64(rounds + 1), Ops: opsOf(ops)}})
		if err != nil {
			b.Fatal(err)
		}
		if head, err = st.Commit(ctx, uint64(rounds+1)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	written := float64(api.bytes) / float64(rounds)
	b.ReportMetric(100*written/float64(size), "written-%")
	b.ReportMetric(written, "bytes-written/op")
	b.ReportMetric(float64(size), "catalog-bytes")
	b.ReportMetric(float64(len(head.Shards)), "shards")
}

// BenchmarkStageMemory stages a full upload of -bench.large products with
// the default memory budget and reports the peak Go heap while staging.
func BenchmarkStageMemory(b *testing.B) {
	e := newEnv(b)
	s := e.store(b, nil)
	ctx := context.Background()
	g := newProductGen()
	n := *benchLarge
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	rev := 0
	for b.Loop() {
		rev++
		st, err := s.Stage(ctx, testSite, Version{Site: testSite}, []Delta{g.generated(n, rev, true)})
		if err != nil {
			b.Fatal(err)
		}
		st.Discard()
	}
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(n*rev)/b.Elapsed().Seconds(), "products/s")
}
