package catalog

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// op is one operation of a batch, numbered in batch order.
type op struct {
	hash    uint64 // idHash(id)
	id      string
	product []byte // nil for a delete
	seq     uint64 // position in the batch: later ops have higher seq
	delta   int    // index of its delta in the batch
	del     bool
}

// opOverhead approximates the memory an op costs besides its bytes.
const opOverhead = 72

func (o *op) size() int64 { return int64(len(o.id) + len(o.product) + opOverhead) }

// opOrder is an order of ops: every stream of ops is sorted by one.
type opOrder func(a, b *op) int

// compareOps orders ops by the hash of their id (the order of the shards'
// ranges), then id, then batch order: all ops of one id are adjacent, and
// so are all ops of any prefix of the hash space.
func compareOps(a, b *op) int {
	switch {
	case a.hash < b.hash:
		return -1
	case a.hash > b.hash:
		return 1
	}
	return compareIDs(a, b)
}

// compareIDs orders ops by id, then batch order.
func compareIDs(a, b *op) int {
	if c := strings.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// opReader is a stream of ops sorted by an opOrder.
type opReader interface {
	next() (bool, error)
	current() *op
}

// memRun reads a sorted slice of ops.
type memRun struct {
	ops []op
	i   int
}

func (r *memRun) next() (bool, error) {
	if r.i >= len(r.ops) {
		return false, nil
	}
	r.i++
	return true, nil
}

func (r *memRun) current() *op { return &r.ops[r.i-1] }

// run is a sorted run of ops in the spill file.
type run struct {
	off, n int64
}

// spillFile is an append-only temporary file of sorted runs.
type spillFile struct {
	f    *os.File
	w    *bufio.Writer
	size int64
	buf  []byte
}

func newSpillFile(tmp *scratch) (*spillFile, error) {
	f, err := tmp.create("ops-*.spill")
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	return &spillFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// write appends one op to the run being written.
func (s *spillFile) write(o *op) error {
	b := binary.BigEndian.AppendUint64(s.buf[:0], o.hash)
	b = binary.AppendUvarint(b, uint64(len(o.id)))
	b = append(b, o.id...)
	b = binary.AppendUvarint(b, o.seq)
	b = binary.AppendUvarint(b, uint64(o.delta))
	if o.del {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(o.product)))
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	if _, err := s.w.Write(o.product); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	s.size += int64(len(b) + len(o.product))
	return nil
}

// writeRun appends every op of r as one run.
func (s *spillFile) writeRun(r opReader) (run, error) {
	start := s.size
	for {
		more, err := r.next()
		if err != nil {
			return run{}, err
		}
		if !more {
			break
		}
		if err := s.write(r.current()); err != nil {
			return run{}, err
		}
	}
	return run{off: start, n: s.size - start}, nil
}

// open reads a run back with a buffer of up to bufSize bytes (no larger
// than the run: a batch onto a large catalog spills many small runs); the
// file must have been flushed.
func (s *spillFile) open(r run, bufSize int) *runReader {
	return &runReader{br: bufio.NewReaderSize(io.NewSectionReader(s.f, r.off, r.n), int(min(int64(bufSize), max(r.n, 16))))}
}

func (s *spillFile) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	return nil
}

func (s *spillFile) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// runReader decodes a run. Each op it returns owns its bytes.
type runReader struct {
	br  *bufio.Reader
	cur op
}

func (r *runReader) current() *op { return &r.cur }

func (r *runReader) next() (bool, error) {
	var hash [8]byte
	if _, err := io.ReadFull(r.br, hash[:]); err == io.EOF {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("read spill file: %w", err)
	}
	n, err := binary.ReadUvarint(r.br)
	if err != nil {
		return false, fmt.Errorf("read spill file: %w", err)
	}
	id := make([]byte, n)
	if _, err := io.ReadFull(r.br, id); err != nil {
		return false, fmt.Errorf("read spill file: %w", err)
	}
	o := op{hash: binary.BigEndian.Uint64(hash[:]), id: string(id)}
	if o.seq, err = binary.ReadUvarint(r.br); err != nil {
		return false, fmt.Errorf("read spill file: %w", err)
	}
	d, err := binary.ReadUvarint(r.br)
	if err != nil {
		return false, fmt.Errorf("read spill file: %w", err)
	}
	o.delta = int(d)
	flag, err := r.br.ReadByte()
	if err != nil {
		return false, fmt.Errorf("read spill file: %w", err)
	}
	o.del = flag == 1
	if n, err = binary.ReadUvarint(r.br); err != nil {
		return false, fmt.Errorf("read spill file: %w", err)
	}
	if !o.del {
		o.product = make([]byte, n)
		if _, err := io.ReadFull(r.br, o.product); err != nil {
			return false, fmt.Errorf("read spill file: %w", err)
		}
	}
	r.cur = o
	return true, nil
}

// opMerger merges sorted op streams into one.
type opMerger struct {
	h       opHeap
	started bool
	cur     *op
}

type opHeap struct {
	readers []opReader
	order   opOrder
}

func (h opHeap) Len() int { return len(h.readers) }
func (h opHeap) Less(i, j int) bool {
	return h.order(h.readers[i].current(), h.readers[j].current()) < 0
}
func (h opHeap) Swap(i, j int) { h.readers[i], h.readers[j] = h.readers[j], h.readers[i] }
func (h *opHeap) Push(x any)   { h.readers = append(h.readers, x.(opReader)) }
func (h *opHeap) Pop() any {
	old := h.readers
	x := old[len(old)-1]
	h.readers = old[:len(old)-1]
	return x
}

// newOpMerger merges readers, each sorted by order, into one stream sorted
// by order.
func newOpMerger(readers []opReader, order opOrder) (*opMerger, error) {
	m := &opMerger{h: opHeap{order: order}}
	for _, r := range readers {
		more, err := r.next()
		if err != nil {
			return nil, err
		}
		if more {
			m.h.readers = append(m.h.readers, r)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// next advances to the next op; the previous one stays valid only when its
// reader owns its bytes (runReader copies, memRun points into its slice).
func (m *opMerger) next() (bool, error) {
	if m.started && m.h.Len() > 0 {
		top := m.h.readers[0]
		more, err := top.next()
		if err != nil {
			return false, err
		}
		if more {
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
	}
	m.started = true
	if m.h.Len() == 0 {
		m.cur = nil
		return false, nil
	}
	c := *m.h.readers[0].current()
	m.cur = &c
	return true, nil
}

func (m *opMerger) current() *op { return m.cur }

// mergeFanIn is the most runs merged at once; more runs are first merged in
// passes into longer runs (an external merge sort).
const mergeFanIn = 64

// reduceRuns merges runs (each sorted by order) in groups of mergeFanIn
// into new runs at the end of the spill file until at most mergeFanIn
// remain.
func (s *spillFile) reduceRuns(runs []run, order opOrder) ([]run, error) {
	for len(runs) > mergeFanIn {
		if err := s.flush(); err != nil {
			return nil, err
		}
		batch := runs[:mergeFanIn]
		readers := make([]opReader, len(batch))
		for i, r := range batch {
			readers[i] = s.open(r, 16<<10)
		}
		m, err := newOpMerger(readers, order)
		if err != nil {
			return nil, err
		}
		merged, err := s.writeRun(m)
		if err != nil {
			return nil, err
		}
		runs = append(slices.Clone(runs[mergeFanIn:]), merged)
	}
	if err := s.flush(); err != nil {
		return nil, err
	}
	return runs, nil
}

// --- record buffers ---

// recBuffer holds the products of one shard being written, in id order, as
// the shard's NDJSON lines: in memory up to a limit, then in a temporary
// file.
type recBuffer struct {
	tmp     *scratch
	limit   int64
	bufSize int
	mem     []byte
	f       *os.File
	w       *bufio.Writer
	count   int
	raw     int64 // NDJSON bytes
	line    []byte
}

func newRecBuffer(tmp *scratch, limit int64, bufSize int) *recBuffer {
	return &recBuffer{tmp: tmp, limit: limit, bufSize: bufSize}
}

// withMemory lets the buffer start with spare capacity.
func (b *recBuffer) withMemory(buf []byte) *recBuffer {
	b.mem = buf[:0]
	return b
}

func (b *recBuffer) add(id string, product []byte) error {
	b.count++
	n := lineLen(id, product)
	b.raw += n
	if b.f == nil && b.raw > b.limit {
		f, err := b.tmp.create("shard-*.ndjson")
		if err != nil {
			return fmt.Errorf("create shard buffer: %w", err)
		}
		b.f, b.w = f, bufio.NewWriterSize(f, b.bufSize)
		if _, err := b.w.Write(b.mem); err != nil {
			return fmt.Errorf("write shard buffer: %w", err)
		}
		b.mem = nil
	}
	if b.f == nil {
		b.mem = appendLine(b.mem, id, product)
		return nil
	}
	b.line = appendLine(b.line[:0], id, product)
	if _, err := b.w.Write(b.line); err != nil {
		return fmt.Errorf("write shard buffer: %w", err)
	}
	return nil
}

// content returns the buffered NDJSON.
func (b *recBuffer) content() (io.Reader, error) {
	if b.f == nil {
		return bytes.NewReader(b.mem), nil
	}
	if err := b.w.Flush(); err != nil {
		return nil, fmt.Errorf("write shard buffer: %w", err)
	}
	return io.NewSectionReader(b.f, 0, b.raw), nil
}

// reader reads the records back in the order they were added.
func (b *recBuffer) reader() (recordReader, error) {
	r, err := b.content()
	if err != nil {
		return nil, err
	}
	return &lineReader{br: bufio.NewReaderSize(r, b.bufSize)}, nil
}

// release frees the buffer, removes its file and returns its memory, if
// any, for reuse.
func (b *recBuffer) release() []byte {
	mem := b.mem
	b.mem = nil
	if b.f != nil {
		b.f.Close()
		os.Remove(b.f.Name())
		b.f = nil
	}
	return mem
}

// lineReader reads stored NDJSON lines written by recBuffer.
type lineReader struct {
	br   *bufio.Reader
	long []byte
	cur  record
}

func (r *lineReader) next() (bool, error) {
	line, err := readLine(r.br, &r.long)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read shard buffer: %w", err)
	}
	id, product, err := parseLine(line)
	if err != nil {
		return false, fmt.Errorf("read shard buffer: %w", err)
	}
	r.cur = record{id: id, product: product}
	return true, nil
}

func (r *lineReader) current() record { return r.cur }
func (r *lineReader) close()          {}
