// Package s3server is the local cloud's S3: rclone/gofakes3 over its in-memory
// backend, with three things added where feedpipe depends on AWS behaviour:
//
//   - Conditional writes are atomic. If-None-Match: * and If-Match on
//     PutObject, CompleteMultipartUpload and CopyObject are checked under a
//     per-key lock together with the write, so of many concurrent
//     If-None-Match: * writers exactly one wins and the rest get 412
//     PreconditionFailed, as on S3.
//   - Bucket notifications. PUT/GET ?notification store queue
//     configurations (s3:ObjectCreated:* events, prefix/suffix filters); each
//     created object is delivered to the matching queues as the event JSON S3
//     sends, before the write is acknowledged, so no event is lost.
//   - One clock. Last-Modified, event times and sequencers follow the
//     injected clock.
//
// Signatures are checked by the local cloud's router before a request gets
// here; this handler trusts its caller.
package s3server

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rclone/gofakes3"
	"github.com/rclone/gofakes3/s3mem"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// Server is the local S3. It is safe for concurrent use.
type Server struct {
	region  string
	clock   *clock.Clock
	logger  *slog.Logger
	queues  QueueSender
	backend *backend
	s3      http.Handler

	mu            sync.RWMutex
	notifications map[string]*NotificationConfiguration // by bucket

	sequence atomic.Uint64
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock (default: a new clock.Clock).
func WithClock(c *clock.Clock) Option { return func(s *Server) { s.clock = c } }

// WithRegion sets the region named in events (default us-east-1).
func WithRegion(region string) Option { return func(s *Server) { s.region = region } }

// WithLogger sets the logger for delivery failures (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// New returns an S3 server that delivers bucket notifications to queues.
func New(queues QueueSender, opts ...Option) *Server {
	s := &Server{region: "us-east-1", queues: queues, notifications: map[string]*NotificationConfiguration{}}
	for _, o := range opts {
		o(s)
	}
	if s.clock == nil {
		s.clock = clock.New()
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	ts := timeSource{s.clock}
	s.backend = &backend{Backend: s3mem.New(s3mem.WithTimeSource(ts)), created: s.objectCreated}
	s.s3 = gofakes3.New(s.backend,
		gofakes3.WithTimeSource(ts),
		gofakes3.WithTimeSkewLimit(0), // the router checks request time against the same clock
		gofakes3.WithIntegrityCheck(true),
	).Server()
	return s
}

// timeSource adapts the clock to gofakes3, which formats times in GMT.
type timeSource struct{ c *clock.Clock }

var gmt = time.FixedZone("GMT", 0)

func (t timeSource) Now() time.Time                   { return t.c.Now().In(gmt) }
func (t timeSource) Since(at time.Time) time.Duration { return t.c.Since(at) }

// CreateBucket creates a bucket directly, for start-up wiring. It succeeds if
// the bucket already exists.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	err := s.backend.CreateBucket(ctx, name)
	if gofakes3.HasErrorCode(err, gofakes3.ErrBucketAlreadyExists) {
		return nil
	}
	return err
}

// ServeHTTP serves the S3 REST API (path-style).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, object, _ := strings.Cut(strings.TrimLeft(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	if _, ok := q["notification"]; ok && bucket != "" && object == "" {
		s.serveNotification(w, r, bucket)
		return
	}
	if r.Method == http.MethodPut && object != "" && isStreaming(r) {
		decoded, err := decodeChunked(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		r = decoded
	}
	info := &requestInfo{op: opPut, sourceIP: remoteIP(r)}
	_, isComplete := q["uploadId"]
	switch {
	case r.Method == http.MethodPut && object != "" && r.Header.Get("X-Amz-Copy-Source") != "" && !isComplete:
		info.op = opCopy
	case r.Method == http.MethodPost && object != "" && isComplete:
		info.op = opComplete
	case r.Method == http.MethodPost && object == "":
		info.op = opPost
	}
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		info.ifMatch = r.Header.Get("If-Match")
		info.ifNoneMatch = r.Header.Get("If-None-Match")
	}
	rw := &statusWriter{ResponseWriter: w}
	ctx := withRequestInfo(r.Context(), info)
	ctx = context.WithValue(ctx, responseHeaderKey{}, w.Header())
	s.s3.ServeHTTP(rw, r.WithContext(ctx))
	if r.Method == http.MethodDelete && object == "" && len(q) == 0 && rw.status == http.StatusNoContent {
		s.mu.Lock()
		delete(s.notifications, bucket)
		s.mu.Unlock()
	}
}

type responseHeaderKey struct{}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) serveNotification(w http.ResponseWriter, r *http.Request, bucket string) {
	exists, err := s.backend.BucketExists(r.Context(), bucket)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !exists {
		writeError(w, r, gofakes3.BucketNotFound(bucket))
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.RLock()
		cfg := s.notifications[bucket]
		s.mu.RUnlock()
		if cfg == nil {
			cfg = &NotificationConfiguration{}
		}
		out := *cfg
		out.Xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"
		writeXML(w, &out)
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, r, gofakes3.ErrIncompleteBody)
			return
		}
		var cfg NotificationConfiguration
		if err := xml.Unmarshal(body, &cfg); err != nil {
			writeError(w, r, gofakes3.ErrMalformedXML)
			return
		}
		if err := cfg.validate(s.queues); err != nil {
			writeError(w, r, err)
			return
		}
		s.mu.Lock()
		if len(cfg.QueueConfigurations) == 0 {
			delete(s.notifications, bucket)
		} else {
			s.notifications[bucket] = &cfg
		}
		s.mu.Unlock()
		// As S3 does when a configuration is saved, each destination gets
		// an s3:TestEvent message.
		sent := map[string]bool{}
		now := s.clock.Now()
		for _, qc := range cfg.QueueConfigurations {
			if sent[qc.Queue] {
				continue
			}
			sent[qc.Queue] = true
			if err := s.queues.SendToARN(r.Context(), qc.Queue, s.testEventBody(bucket, now, fmt.Sprintf("%016X", s.sequence.Add(1)))); err != nil {
				s.logger.Warn("s3 test event not delivered", "bucket", bucket, "queue", qc.Queue, "err", err)
			}
		}
		w.WriteHeader(http.StatusOK)
	default:
		writeError(w, r, gofakes3.ErrMethodNotAllowed)
	}
}

// objectCreated delivers the notifications of one created object. It runs
// before the write is acknowledged to the client; a delivery that fails is
// logged, as S3 drops events for a destination that went away.
func (s *Server) objectCreated(ctx context.Context, w written) {
	s.mu.RLock()
	cfg := s.notifications[w.bucket]
	s.mu.RUnlock()
	if cfg == nil {
		return
	}
	if h, ok := ctx.Value(responseHeaderKey{}).(http.Header); ok {
		w.info.requestID = h.Get("x-amz-request-id")
	}
	seq := fmt.Sprintf("%018X", s.sequence.Add(1))
	now := s.clock.Now()
	for _, qc := range cfg.QueueConfigurations {
		if !qc.matches(w.info.op, w.key) {
			continue
		}
		body := s.eventBody(w, qc.ID, seq, now)
		if err := s.queues.SendToARN(context.WithoutCancel(ctx), qc.Queue, body); err != nil {
			s.logger.Warn("s3 event not delivered", "bucket", w.bucket, "key", w.key, "queue", qc.Queue, "err", err)
		}
	}
}

func writeXML(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(buf.Bytes())
}

// writeError answers with S3's XML error document.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var resp *gofakes3.ErrorResponse
	var e gofakes3.Error
	switch {
	case errors.As(err, &resp):
	case errors.As(err, &e):
		resp = &gofakes3.ErrorResponse{Code: e.ErrorCode(), Message: err.Error()}
	default:
		resp = &gofakes3.ErrorResponse{Code: gofakes3.ErrInternal, Message: err.Error()}
	}
	WriteError(w, r, resp.Code.Status(), string(resp.Code), resp.Message)
}

// WriteError answers with S3's XML error document for the given status and
// code. The router uses it for signature errors.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	doc := gofakes3.ErrorResponse{Code: gofakes3.ErrorCode(code), Message: message, RequestID: w.Header().Get("x-amz-request-id")}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	_ = xml.NewEncoder(&buf).Encode(&doc)
	if r.Method != http.MethodHead {
		w.Header().Set("Content-Type", "application/xml")
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
