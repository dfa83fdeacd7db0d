package catalog

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// scratch is where temporary files go: a directory of its own under parent,
// made on first use (a batch that fits in memory touches no disk), or, when
// shared, dir itself ("" is the system's temporary directory).
type scratch struct {
	parent string
	dir    string
	shared bool
	made   bool
}

func (s *scratch) create(pattern string) (*os.File, error) {
	if s.shared {
		return os.CreateTemp(s.dir, pattern)
	}
	if !s.made {
		dir, err := os.MkdirTemp(s.parent, "catalog-stage-*")
		if err != nil {
			return nil, err
		}
		s.dir, s.made = dir, true
	}
	return os.CreateTemp(s.dir, pattern)
}

// remove deletes the directory scratch made, if any, with its files.
func (s *scratch) remove() error {
	if !s.made {
		return nil
	}
	return os.RemoveAll(s.dir)
}

// output holds the staged shard objects back to back: in memory up to a
// limit, then in a temporary file. Once flushed it is read with ReadAt,
// safely from several goroutines. The memory is a list of chunks, so that
// growing never copies what was written.
type output struct {
	tmp    *scratch
	limit  int
	chunks [][]byte // each but the last full to its capacity
	f      *os.File
	w      *bufio.Writer
	n      int64 // bytes written
}

// Chunks of the in-memory output start small and double up to a maximum.
const (
	minOutputChunk = 64 << 10
	maxOutputChunk = 1 << 20
)

func (o *output) Write(p []byte) (int, error) {
	if o.f == nil && o.n+int64(len(p)) > int64(o.limit) {
		f, err := o.tmp.create("shards-*.zst")
		if err != nil {
			return 0, fmt.Errorf("create staged output: %w", err)
		}
		o.f, o.w = f, bufio.NewWriterSize(f, 256<<10)
		for _, c := range o.chunks {
			if _, err := o.w.Write(c); err != nil {
				return 0, fmt.Errorf("write %s: %w", f.Name(), err)
			}
		}
		o.chunks = nil
	}
	if o.f == nil {
		o.appendMem(p)
		return len(p), nil
	}
	n, err := o.w.Write(p)
	o.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", o.f.Name(), err)
	}
	return n, nil
}

func (o *output) appendMem(p []byte) {
	o.n += int64(len(p))
	for len(p) > 0 {
		last := len(o.chunks) - 1
		if last < 0 || len(o.chunks[last]) == cap(o.chunks[last]) {
			size := minOutputChunk
			if last >= 0 {
				size = min(2*cap(o.chunks[last]), maxOutputChunk)
			}
			o.chunks = append(o.chunks, make([]byte, 0, size))
			last++
		}
		c := o.chunks[last]
		n := min(len(p), cap(c)-len(c))
		o.chunks[last] = append(c, p[:n]...)
		p = p[n:]
	}
}

func (o *output) flush() error {
	if o.w == nil {
		return nil
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", o.f.Name(), err)
	}
	return nil
}

func (o *output) ReadAt(p []byte, off int64) (int, error) {
	if o.f != nil {
		return o.f.ReadAt(p, off)
	}
	n := 0
	for _, c := range o.chunks {
		if off >= int64(len(c)) {
			off -= int64(len(c))
			continue
		}
		m := copy(p[n:], c[off:])
		n += m
		off = 0
		if n == len(p) {
			return n, nil
		}
	}
	return n, io.EOF
}

func (o *output) close() error {
	o.chunks = nil
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}
