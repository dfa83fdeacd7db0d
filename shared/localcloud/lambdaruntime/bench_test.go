package lambdaruntime

import (
	"context"
	"testing"
	"time"
)

// BenchmarkInvokeWarm measures one invocation through the Runtime API of a
// warm echo binary: Invoke → /next → POST /response → Result.
func BenchmarkInvokeWarm(b *testing.B) {
	rt := newTestRuntime(b, nil, nil)
	mustRegister(b, rt, FunctionConfig{Name: "Echo", Command: buildFunction(b, "echo")})
	payload := []byte(`{"site":"shop-1","sku":"A-1","qty":3}`)
	mustInvoke(b, rt, "Echo", string(payload))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := rt.Invoke(ctx, "Echo", payload)
		if err != nil || res.FuncError != nil || res.ColdStart {
			b.Fatalf("Invoke: %v %v cold=%v", err, res.FuncError, res.ColdStart)
		}
	}
}

// BenchmarkInvokeWarmInProcess is the same path with an in-process handler:
// the Runtime's own overhead without HTTP and a child process.
func BenchmarkInvokeWarmInProcess(b *testing.B) {
	rt := newTestRuntime(b, nil, nil)
	mustRegister(b, rt, FunctionConfig{Name: "Echo", Handler: func(_ context.Context, p []byte) ([]byte, error) { return p, nil }})
	payload := []byte(`{"site":"shop-1","sku":"A-1","qty":3}`)
	mustInvoke(b, rt, "Echo", string(payload))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.Invoke(ctx, "Echo", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdStart measures a first invocation of the echo binary on a new
// Runtime: process start, runtime init, first /next and the round trip.
// init-ms is the part from process start to the first /next.
func BenchmarkColdStart(b *testing.B) {
	bin := buildFunction(b, "echo")
	var init time.Duration
	n := 0
	for b.Loop() {
		rt := New(nil, nil)
		mustRegister(b, rt, FunctionConfig{Name: "Echo", Command: bin})
		if res := mustInvoke(b, rt, "Echo", `{}`); !res.ColdStart {
			b.Fatal("not a cold start")
		}
		b.StopTimer()
		init += rt.Stats("Echo").ColdStartTotal
		n++
		if err := rt.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(init.Microseconds())/1000/float64(n), "init-ms")
}
