// Command sleep prints "start", optionally allocates memory, sleeps without
// looking at its deadline and returns when it started and ended (Unix ns).
// With IGNORE_SIGTERM set it survives SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	SleepMS int `json:"sleepMs"`
	AllocMB int `json:"allocMb"`
}

type result struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

func handle(_ context.Context, ev event) (result, error) {
	start := time.Now().UnixNano()
	fmt.Println("start")
	buf := make([]byte, ev.AllocMB<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	time.Sleep(time.Duration(ev.SleepMS) * time.Millisecond)
	runtime.KeepAlive(buf)
	return result{Start: start, End: time.Now().UnixNano()}, nil
}

func main() {
	if os.Getenv("IGNORE_SIGTERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	lambda.Start(handle)
}
