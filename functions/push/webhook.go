package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Webhook headers.
const (
	HeaderTimestamp      = "X-Feedpipe-Timestamp"
	HeaderIdempotencyKey = "X-Feedpipe-Idempotency-Key"
	HeaderSignature      = "X-Feedpipe-Signature"
)

// Sign returns the signature header value: "v1=<hex HMAC-SHA256>" over
// "timestamp.idempotencyKey.body" for each active secret, comma-separated,
// so a receiver verifies with whichever secret it holds during rotation.
func Sign(secrets []string, timestamp, key string, body []byte) string {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte(timestamp))
		m.Write([]byte{'.'})
		m.Write([]byte(key))
		m.Write([]byte{'.'})
		m.Write(body)
		sigs = append(sigs, "v1="+hex.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, ",")
}

// errRefused is a destination address the push function may not reach.
var errRefused = errors.New("address refused")

// NewHTTPClient is the webhook client: the address is checked at dial time
// (after resolution, so what is checked is what is connected to): loopback
// only when allowLoopback (the dev stack), private, link-local, metadata
// and unspecified ranges never; no redirects are followed; every request
// has timeout; at most maxPerHost connections per host.
func NewHTTPClient(allowLoopback bool, timeout time.Duration, maxPerHost int) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("%w: %s", errRefused, address)
		}
		return checkAddr(ip.Unmap(), allowLoopback)
	}}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, TLSHandshakeTimeout: 10 * time.Second,
			MaxConnsPerHost: maxPerHost, MaxIdleConnsPerHost: maxPerHost, IdleConnTimeout: 60 * time.Second, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var metadata = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fd00:ec2::/32"), netip.MustParsePrefix("100.64.0.0/10")}

func checkAddr(ip netip.Addr, allowLoopback bool) error {
	if ip.IsLoopback() {
		if allowLoopback {
			return nil
		}
		return fmt.Errorf("%w: loopback %s", errRefused, ip)
	}
	if ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("%w: %s", errRefused, ip)
	}
	for _, p := range metadata {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s", errRefused, ip)
		}
	}
	return nil
}

// checkURL allows https, and http only to a loopback host when allowed.
func checkURL(raw string, allowLoopback bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("webhook url: %w", err)
	}
	if u.User != nil {
		return errors.New("webhook url: credentials in the url are not allowed")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		ip, perr := netip.ParseAddr(h)
		if allowLoopback && (h == "localhost" || (perr == nil && ip.IsLoopback())) {
			return nil
		}
		return fmt.Errorf("webhook url %s: https only (http is allowed only to loopback on the dev stack)", u.Redacted())
	default:
		return fmt.Errorf("webhook url: scheme %q, want https", u.Scheme)
	}
}

// retryError is a delivery the destination asked to retry later (429/5xx).
type retryError struct {
	status int
	after  time.Duration // from Retry-After; -1 when absent
}

func (e *retryError) Error() string {
	return fmt.Sprintf("webhook answered %d (retry after %v)", e.status, e.after)
}

// post delivers one NDJSON batch.
func post(ctx context.Context, client *http.Client, rawURL string, secrets []string, now time.Time, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "feedpipe-push/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderIdempotencyKey, key)
	req.Header.Set(HeaderSignature, Sign(secrets, ts, key, body))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &retryError{status: resp.StatusCode, after: retryAfter(resp.Header.Get("Retry-After"), now)}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("webhook answered %d: redirects are not followed", resp.StatusCode)
	default:
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
}

// retryAfter parses Retry-After (seconds or an HTTP date); -1 if absent or bad.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
		return 0
	}
	return -1
}
