package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// fireCmd fires a schedule of a running stack now.
type fireCmd struct {
	Schedule string `arg:"" help:"Schedule name, or the logical id of its function (e.g. SyncFunction)."`
	API      string `default:"http://127.0.0.1:3000" env:"FEEDPIPE_API" help:"The running stack's HTTP API."`
}

func (c *fireCmd) Run(ctx context.Context) error {
	return control(ctx, c.API, "schedules/"+url.PathEscape(c.Schedule)+"/fire", nil)
}

// syncNowCmd fires the sync function's schedule of a running local stack.
// In AWS, invoke the function instead: aws lambda invoke --function-name
// <stack>-SyncFunction-… (its schedule's event is optional; "now" defaults
// to the invocation time).
type syncNowCmd struct {
	API string `default:"http://127.0.0.1:3000" env:"FEEDPIPE_API" help:"The running stack's HTTP API."`
}

func (c *syncNowCmd) Run(ctx context.Context) error {
	return control(ctx, c.API, "schedules/SyncFunction/fire", nil)
}

// advanceCmd moves a running stack's clock forward (schedules, visibility
// timeouts and presigned-URL expiry all follow it).
type advanceCmd struct {
	By  time.Duration `arg:"" help:"How far, e.g. 90s or 15m."`
	API string        `default:"http://127.0.0.1:3000" env:"FEEDPIPE_API" help:"The running stack's HTTP API."`
}

func (c *advanceCmd) Run(ctx context.Context) error {
	return control(ctx, c.API, "clock/advance", url.Values{"by": {c.By.String()}})
}

// control posts to one of the runner's endpoints and prints its answer.
func control(ctx context.Context, api, path string, q url.Values) error {
	body, status, err := controlRequest(ctx, http.MethodPost, api, path, q)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return controlError(status, body)
	}
	fmt.Println(strings.TrimSpace(string(body)))
	return nil
}

// controlRequest sends one request to the runner's endpoints under
// /_feedpipe/ and returns the answer.
func controlRequest(ctx context.Context, method, api, path string, q url.Values) (body []byte, status int, err error) {
	u := strings.TrimRight(api, "/") + "/_feedpipe/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%v (is the stack running? start it with make run)", err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// controlError is the error of a runner endpoint's non-200 answer: its
// message, or the status and body.
func controlError(status int, body []byte) error {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("%s", e.Error.Message)
	}
	return fmt.Errorf("%d %s: %s", status, http.StatusText(status), strings.TrimSpace(string(body)))
}
