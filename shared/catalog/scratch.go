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
// safely from several goroutines.
type output struct {
	tmp   *scratch
	limit int
	mem   []byte
	f     *os.File
	w     *bufio.Writer
	n     int64 // bytes written
}

func (o *output) Write(p []byte) (int, error) {
	if o.f == nil && len(o.mem)+len(p) > o.limit {
		f, err := o.tmp.create("shards-*.zst")
		if err != nil {
			return 0, fmt.Errorf("create staged output: %w", err)
		}
		o.f, o.w = f, bufio.NewWriterSize(f, 256<<10)
		if _, err := o.w.Write(o.mem); err != nil {
			return 0, fmt.Errorf("write %s: %w", f.Name(), err)
		}
		o.mem = nil
	}
	if o.f == nil {
		o.mem = append(o.mem, p...)
		o.n += int64(len(p))
		return len(p), nil
	}
	n, err := o.w.Write(p)
	o.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", o.f.Name(), err)
	}
	return n, nil
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
	if off >= int64(len(o.mem)) {
		return 0, io.EOF
	}
	n := copy(p, o.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (o *output) close() error {
	o.mem = nil
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}
