package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/schollz/progressbar/v3"

	"github.com/feedpipe/feedpipe/shared/uploads"
)

// progressThreshold is the size above which the PUT shows a progress bar
// (when stderr is a terminal).
const progressThreshold = 1 << 20

// uploadCmd uploads a feed file and follows it until it is imported.
type uploadCmd struct {
	File         string        `arg:"" type:"existingfile" help:"NDJSON feed file (already .gz or .zst files are sent as they are)."`
	Full         bool          `help:"A full upload: the file replaces the whole catalog (default: a delta)."`
	Gzip         bool          `xor:"compression" help:"Compress with gzip on the fly before sending."`
	Zstd         bool          `xor:"compression" help:"Compress with zstd on the fly before sending."`
	AllowEmpty   bool          `name:"allow-empty" help:"With --full: allow the upload to leave the catalog empty or delete most of it."`
	ExpiresIn    time.Duration `name:"expires-in" default:"15m" help:"How long the presigned URL is valid (1s-1h)."`
	NoWait       bool          `name:"no-wait" help:"Return once the file is sent; do not follow the import."`
	Timeout      time.Duration `default:"1h" help:"Give up following the import after this long (the import goes on)."`
	PollInterval time.Duration `name:"poll-interval" default:"500ms" hidden:"" help:"First status poll interval (doubles up to 5s)."`
	apiFlags     `embed:""`
}

// Help is the detailed help of feedpipe upload --help.
func (c *uploadCmd) Help() string {
	return `Creates the upload (length and sha256 of the bytes sent are signed into the
presigned URL), PUTs the file with a progress bar for files over 1 MiB, then
follows the upload's status until it is final and prints its line counts and
the first line errors.

Exit codes:
  0  imported (also: sent, with --no-wait)
  1  failed: API or network error, the site is halted, or --timeout passed
  2  usage error
  3  rejected, expired or cancelled`
}

// prepared is the body to send.
type prepared struct {
	path     string // the file to send (the original or a compressed temp file)
	size     int64
	sha256   string // hex
	encoding string // identity, gzip or zstd
	cleanup  func()
}

func (c *uploadCmd) Run(ctx context.Context, s *streams) error {
	if c.AllowEmpty && !c.Full {
		return usagef("--allow-empty applies to --full uploads only")
	}
	if c.ExpiresIn < time.Second || c.ExpiresIn > time.Hour {
		return usagef("--expires-in %s: want 1s-1h", c.ExpiresIn)
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	body, err := c.prepare(s)
	if err != nil {
		return err
	}
	defer body.cleanup()

	mode := uploads.Delta
	if c.Full {
		mode = uploads.Full
	}
	req := map[string]any{
		"mode": mode, "contentLength": body.size, "sha256": body.sha256, "contentEncoding": body.encoding,
		"expiresIn": int64((c.ExpiresIn + time.Second - 1) / time.Second),
	}
	if c.AllowEmpty {
		req["allowEmpty"] = true
	}
	var created struct {
		UploadID  string            `json:"uploadId"`
		Sequence  uint64            `json:"sequence"`
		URL       string            `json:"url"`
		Method    string            `json:"method"`
		Headers   map[string]string `json:"headers"`
		ExpiresAt time.Time         `json:"expiresAt"`
	}
	hdr := http.Header{"Idempotency-Key": {"feedpipe-cli-" + randomID(16)}}
	if _, err := cl.do(ctx, http.MethodPost, cl.sitePath("uploads"), req, hdr, &created); err != nil {
		return err
	}
	fmt.Fprintf(s.Err, "created upload %s (sequence %d); sending %d bytes (%s)\n", created.UploadID, created.Sequence, body.size, body.encoding)
	if err := c.put(ctx, s, body, created.Method, created.URL, created.Headers); err != nil {
		return withHint(fmt.Errorf("upload %s: %w", created.UploadID, err), "%s", putHint(err))
	}
	fmt.Fprintf(s.Err, "sent; following upload %s\n", created.UploadID)

	st, err := c.follow(ctx, s, cl, created.UploadID)
	if err != nil {
		return err
	}
	if c.JSON {
		writeJSON(s.Out, st)
	} else {
		printStatus(s.Out, st)
	}
	switch st.State {
	case uploads.Rejected, uploads.Expired, uploads.Cancelled:
		return &exitError{code: exitRejected}
	}
	return nil
}

// prepare hashes the file, compressing it into a temp file first when asked.
func (c *uploadCmd) prepare(s *streams) (prepared, error) {
	f, err := os.Open(c.File)
	if err != nil {
		return prepared{}, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(4)
	already := ""
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		already = "gzip"
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		already = "zstd"
	}
	if already != "" && (c.Gzip || c.Zstd) {
		return prepared{}, usagef("%s is already %s-compressed: leave out --gzip/--zstd (it is sent as it is)", c.File, already)
	}
	if !c.Gzip && !c.Zstd {
		h := sha256.New()
		n, err := io.Copy(h, br)
		if err != nil {
			return prepared{}, fmt.Errorf("read %s: %w", c.File, err)
		}
		if n == 0 {
			return prepared{}, withHint(fmt.Errorf("%s is empty: there is nothing to upload", c.File),
				"to empty the catalog on purpose, send an empty file with --full --allow-empty --gzip")
		}
		enc := "identity"
		if already != "" {
			enc = already
			fmt.Fprintf(s.Err, "%s is %s-compressed; sending it as contentEncoding %s\n", c.File, already, already)
		}
		return prepared{path: c.File, size: n, sha256: hex.EncodeToString(h.Sum(nil)), encoding: enc, cleanup: func() {}}, nil
	}
	tmp, err := os.CreateTemp("", "feedpipe-upload-*")
	if err != nil {
		return prepared{}, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	var zw io.WriteCloser
	enc := "gzip"
	if c.Gzip {
		zw = gzip.NewWriter(cw)
	} else {
		enc = "zstd"
		if zw, err = zstd.NewWriter(cw); err != nil {
			cleanup()
			return prepared{}, err
		}
	}
	if _, err := io.Copy(zw, br); err != nil {
		cleanup()
		return prepared{}, fmt.Errorf("compress %s: %w", c.File, err)
	}
	if err := zw.Close(); err != nil {
		cleanup()
		return prepared{}, fmt.Errorf("compress %s: %w", c.File, err)
	}
	if err := tmp.Sync(); err != nil {
		cleanup()
		return prepared{}, err
	}
	return prepared{path: tmp.Name(), size: cw.n, sha256: hex.EncodeToString(h.Sum(nil)), encoding: enc, cleanup: cleanup}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// putError is a refused PUT to the presigned URL.
type putError struct {
	Status  int
	Code    string
	Message string
}

func (e *putError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("the PUT was refused: %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("the PUT was refused: %d %s", e.Status, e.Message)
}

func putHint(err error) string {
	var pe *putError
	if !errors.As(err, &pe) {
		return "the network failed while sending; run feedpipe upload again (a new upload is created; the abandoned one expires)"
	}
	switch {
	case pe.Status == http.StatusPreconditionFailed:
		return "the upload's object already exists (a presigned URL creates it once); start a new upload"
	case strings.Contains(strings.ToLower(pe.Message), "expired"):
		return "the presigned URL expired; run feedpipe upload again, with a longer --expires-in for slow links"
	case pe.Code == "BadDigest" || strings.Contains(strings.ToLower(pe.Code+pe.Message), "checksum"):
		return "the bytes sent do not match their sha256: did the file change while it was being sent?"
	case pe.Status == http.StatusForbidden:
		return "the signature was refused; run feedpipe upload again"
	}
	return "run feedpipe upload again (the abandoned upload expires)"
}

// put sends the body with exactly the signed headers, retrying network and
// 5xx failures; a retry answered 412 means an earlier attempt created the
// object.
func (c *uploadCmd) put(ctx context.Context, s *streams, body prepared, method, target string, headers map[string]string) error {
	if method == "" {
		method = http.MethodPut
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("the API returned an unusable upload URL %q", target)
	}
	wait := time.Second
	for attempt := 0; ; attempt++ {
		err := c.putOnce(ctx, s, body, method, target, headers)
		var pe *putError
		if err == nil || (attempt > 0 && errors.As(err, &pe) && pe.Status == http.StatusPreconditionFailed) {
			return nil
		}
		var ne *netError
		retry := errors.As(err, &ne) || (errors.As(err, &pe) && pe.Status >= 500)
		if !retry || attempt >= 3 || ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(s.Err, "sending failed (%v); retrying in %s\n", err, wait)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait *= 2
	}
}

func (c *uploadCmd) putOnce(ctx context.Context, s *streams, body prepared, method, target string, headers map[string]string) error {
	f, err := os.Open(body.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var rd io.Reader = f
	var bar *progressbar.ProgressBar
	if body.size > progressThreshold && s.ErrIsTerminal {
		bar = progressbar.NewOptions64(body.size,
			progressbar.OptionSetWriter(s.Err),
			progressbar.OptionSetDescription("uploading"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(s.Err) }),
		)
		pr := progressbar.NewReader(f, bar)
		rd = &pr
	}
	req, err := http.NewRequestWithContext(ctx, method, target, io.NopCloser(rd))
	if err != nil {
		return err
	}
	req.ContentLength = body.size
	for k, v := range headers {
		if strings.EqualFold(k, "Content-Length") {
			if v != fmt.Sprint(body.size) {
				return fmt.Errorf("the API signed Content-Length %s but the file has %d bytes", v, body.size)
			}
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &netError{err: fmt.Errorf("send the file: %v", err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if bar != nil {
		_ = bar.Finish()
	}
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var x struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	pe := &putError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	if xml.Unmarshal(raw, &x) == nil && x.Code != "" {
		pe.Code, pe.Message = x.Code, x.Message
	}
	return pe
}

// follow polls the upload's status with backoff until it is final (or, with
// --no-wait, returns the status once).
func (c *uploadCmd) follow(ctx context.Context, s *streams, cl *client, id string) (uploadStatus, error) {
	path := cl.sitePath("uploads", url.PathEscape(id))
	hint := fmt.Sprintf("the upload goes on; follow it with feedpipe status %s --site %s", id, c.Site)
	deadline := time.Now().Add(c.Timeout)
	wait := c.PollInterval
	last := uploads.State("")
	for {
		var st uploadStatus
		if _, err := cl.do(ctx, http.MethodGet, path, nil, nil, &st); err != nil {
			if ctx.Err() != nil {
				return st, withHint(errors.New("interrupted"), "%s", hint)
			}
			return st, err
		}
		if c.NoWait || terminal(st.State) {
			return st, nil
		}
		if st.State != last {
			fmt.Fprintf(s.Err, "state: %s\n", st.State)
			last = st.State
		}
		if st.SiteHalted {
			if !c.JSON {
				printStatus(s.Out, st)
			} else {
				writeJSON(s.Out, st)
			}
			return st, withHint(fmt.Errorf("site %s is halted: %s", c.Site, st.SiteHaltedReason),
				"nothing imports until the site is resumed: fix the cause, then run feedpipe redrive --site %s; %s", c.Site, hint)
		}
		if c.Timeout > 0 && time.Now().After(deadline) {
			return st, withHint(fmt.Errorf("upload %s is still %s after %s", id, st.State, c.Timeout), "%s", hint)
		}
		if err := sleep(ctx, wait); err != nil {
			return st, withHint(errors.New("interrupted"), "%s", hint)
		}
		wait = min(wait*2, 5*time.Second)
	}
}
