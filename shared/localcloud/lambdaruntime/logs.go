package lambdaruntime

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
)

// maxLogLine is the longest line copied whole; longer lines are split into
// pieces of this size, each prefixed. It is CloudWatch's event size limit.
const maxLogLine = 256 * 1024

// lineWriter writes whole lines with a prefix, one Write per line, under a
// mutex shared by every function of a Runtime so lines never interleave.
type lineWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

// writeLine writes prefix + line, adding the newline if line lacks one.
func (lw *lineWriter) writeLine(line []byte) {
	buf := make([]byte, 0, len(lw.prefix)+len(line)+1)
	buf = append(buf, lw.prefix...)
	buf = append(buf, line...)
	if len(line) == 0 || line[len(line)-1] != '\n' {
		buf = append(buf, '\n')
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	_, _ = lw.w.Write(buf)
}

// pump copies r to lw line by line until r ends, then closes r.
func pump(r *os.File, lw *lineWriter) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			lw.writeLine(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
