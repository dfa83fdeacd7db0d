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
	u := strings.TrimRight(api, "/") + "/_feedpipe/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%v (is the stack running? start it with make run)", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s", e.Error.Message)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Println(strings.TrimSpace(string(body)))
	return nil
}
