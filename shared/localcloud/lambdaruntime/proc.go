package lambdaruntime

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// peakRSSKiB reads a process's peak resident set size (VmHWM) from
// /proc/<pid>/status. ok is false where /proc is not available.
func peakRSSKiB(pid int) (kib int64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, found := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !found {
			continue
		}
		fields := bytes.Fields(rest) // "12345", "kB"
		if len(fields) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(string(fields[0]), 10, 64)
		return n, err == nil
	}
	return 0, false
}
