package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiFlags are the flags of every Upload API command.
type apiFlags struct {
	API   string `name:"api" default:"http://127.0.0.1:3000" env:"FEEDPIPE_API" help:"Upload API base URL."`
	Token string `name:"token" env:"FEEDPIPE_TOKEN" help:"The site's token."`
	Site  string `name:"site" required:"" help:"Site id."`
	// Retries bounds the retries of requests answered 429/5xx or not at all.
	Retries int `name:"retries" default:"4" hidden:""`
	jsonFlag
}

// apiError is an error answer of the Upload API ({"error":{"code","message"}})
// with a hint for the user.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	hint       string
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return e.Code + ": " + e.Message
}

// client calls the Upload API.
type client struct {
	base  string
	token string
	site  string
	http  *http.Client
	// retries bounds the retries of a request answered 429/5xx or not
	// answered at all (GETs, and POSTs that carry an Idempotency-Key).
	retries int
	backoff time.Duration
	// notFound is the hint for a 404 answer (the command knows what was
	// looked up).
	notFound string
}

func (f *apiFlags) client() (*client, error) {
	if f.Token == "" {
		return nil, usagef("no site token: pass --token or set FEEDPIPE_TOKEN (feedpipe site create %s prints one)", f.Site)
	}
	u, err := url.Parse(f.API)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--api %q: want an http(s) URL such as http://127.0.0.1:3000", f.API)
	}
	return &client{base: strings.TrimRight(f.API, "/"), token: f.Token, site: f.Site, http: &http.Client{Timeout: 60 * time.Second}, retries: f.Retries, backoff: 500 * time.Millisecond}, nil
}

// sitePath is /v1/sites/{site} followed by the escaped parts.
func (c *client) sitePath(parts ...string) string {
	p := "/v1/sites/" + url.PathEscape(c.site)
	for _, s := range parts {
		p += "/" + s
	}
	return p
}

// do sends a request and decodes a 2xx JSON answer into out (raw bytes are
// returned as well). Requests that are safe to repeat are retried on 429,
// 5xx and network errors.
func (c *client) do(ctx context.Context, method, path string, body any, header http.Header, out any) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	retry := method == http.MethodGet || header.Get("Idempotency-Key") != ""
	wait := c.backoff
	for attempt := 0; ; attempt++ {
		raw, err := c.once(ctx, method, path, payload, header, out)
		if err == nil || !retry || attempt >= c.retries || !transient(err) {
			return raw, err
		}
		d := wait
		var ae *apiError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			d = ae.RetryAfter
		}
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func transient(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	var ne *netError
	return errors.As(err, &ne)
}

// netError is a request that got no answer.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

func (c *client) once(ctx context.Context, method, path string, payload []byte, header http.Header, out any) ([]byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, withHint(&netError{err: fmt.Errorf("cannot reach the Upload API at %s", c.base)},
			"is the API running there? Start the local stack with `make run`, or point --api / FEEDPIPE_API at it")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &netError{err: fmt.Errorf("read the answer of %s %s: %v", method, path, err)}
	}
	if resp.StatusCode/100 != 2 {
		return nil, c.decodeError(resp, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, withHint(fmt.Errorf("unexpected answer from %s %s: %v", method, path, err), "is --api the Upload API's base URL?")
		}
	}
	return raw, nil
}

func (c *client) decodeError(resp *http.Response, raw []byte) error {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Message = strings.TrimSpace(string(raw))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		e.hint = "pass the site's token with --token or FEEDPIPE_TOKEN"
	case resp.StatusCode == http.StatusForbidden:
		e.hint = fmt.Sprintf("check --site and the token: it must be an active token of site %s (feedpipe site rotate-token %s makes a new one)", c.site, c.site)
	case resp.StatusCode == http.StatusNotFound:
		e.hint = c.notFound
		if e.hint == "" {
			e.hint = "check --api: it must be the Upload API's base URL"
		}
	case resp.StatusCode == http.StatusBadRequest:
		e.hint = "the request was refused as invalid; see feedpipe --help for the flags"
	case resp.StatusCode == http.StatusConflict:
		e.hint = "the upload is no longer in a state that allows this"
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		e.hint = "split the file into several delta uploads, or raise the site's maxContentLength"
	case resp.StatusCode == http.StatusTooManyRequests:
		e.hint = "the site's limit was hit; wait and try again"
		if e.RetryAfter > 0 {
			e.hint = fmt.Sprintf("the site's limit was hit; try again in %s", e.RetryAfter)
		}
	case resp.StatusCode >= 500:
		e.hint = "the service failed; it is safe to try again"
	}
	return e
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// randomID is a random hex id (idempotency keys, secrets).
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// indentJSON pretty-prints raw JSON.
func indentJSON(w io.Writer, raw []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		fmt.Fprintf(w, "%s\n", bytes.TrimSpace(raw))
		return
	}
	fmt.Fprintf(w, "%s\n", buf.Bytes())
}
