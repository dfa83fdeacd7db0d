package lambdaruntime

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// buildFunction builds testdata/<name> as a provided.al2023 bootstrap
// (CGO_ENABLED=0, -tags lambda.norpc) and returns its path.
func buildFunction(tb testing.TB, name string) string {
	tb.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Skipf("go tool not found: %v", err)
	}
	out := filepath.Join(tb.TempDir(), "bootstrap")
	cmd := exec.Command(goTool, "build", "-tags", "lambda.norpc", "-o", out, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build testdata/%s: %v\n%s", name, err, b)
	}
	return out
}

// newTestRuntime returns a Runtime on clk (a fresh clock when nil) that is
// closed when the test ends.
func newTestRuntime(tb testing.TB, clk *clock.Clock, logger *slog.Logger) *Runtime {
	tb.Helper()
	rt := New(clk, logger)
	tb.Cleanup(func() { _ = rt.Close() })
	return rt
}

func mustRegister(tb testing.TB, rt *Runtime, cfg FunctionConfig) {
	tb.Helper()
	if err := rt.Register(cfg); err != nil {
		tb.Fatal(err)
	}
}

func mustInvoke(tb testing.TB, rt *Runtime, name, payload string) Result {
	tb.Helper()
	res, err := rt.Invoke(context.Background(), name, []byte(payload))
	if err != nil {
		tb.Fatalf("Invoke(%s, %s): %v", name, payload, err)
	}
	return res
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	tb.Fatalf("timed out waiting for %s", what)
}

// processesRunning counts live processes whose executable is bin.
func processesRunning(tb testing.TB, bin string) int {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skip("counting processes needs /proc")
	}
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	n := 0
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && strings.TrimSuffix(target, " (deleted)") == bin {
			n++
		}
	}
	return n
}
