// Package localcloud is feedpipe's embedded local cloud: an in-process S3
// (rclone/gofakes3 with SigV4 checks, atomic conditional writes and bucket
// notifications) and an in-process SQS (standard and FIFO, AWS JSON protocol),
// both behind one HTTP endpoint and routed by the SigV4 credential scope's
// service name, so AWS_ENDPOINT_URL works for every client.
//
// Every request must be signed (SigV4, header or presigned) with the
// configured credentials and region, as on AWS. All time — signature expiry,
// visibility timeouts, retention, event times — comes from one clock that
// tests can move forward.
package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/feedpipe/feedpipe/shared/clock"
	"github.com/feedpipe/feedpipe/shared/localcloud/s3server"
	"github.com/feedpipe/feedpipe/shared/localcloud/sigv4"
	"github.com/feedpipe/feedpipe/shared/localcloud/sqsserver"
)

// Default credentials and region of the local cloud.
const (
	DefaultAccessKey = "test"
	DefaultSecretKey = "test"
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "000000000000"
)

// HealthPath answers GET with the cloud's state, unsigned.
const HealthPath = "/_localcloud/health"

// Config configures a Cloud. The zero value listens on a random loopback port
// with the default credentials and a fresh clock.
type Config struct {
	Addr      string       // listen address; default "127.0.0.1:0"
	Region    string       // default DefaultRegion
	AccessKey string       // default DefaultAccessKey
	SecretKey string       // default DefaultSecretKey
	AccountID string       // default DefaultAccountID
	Clock     *clock.Clock // default clock.New()
	Logger    *slog.Logger // default: discard
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccessKey == "" {
		c.AccessKey = DefaultAccessKey
	}
	if c.SecretKey == "" {
		c.SecretKey = DefaultSecretKey
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Cloud is a running local cloud.
type Cloud struct {
	cfg      Config
	S3       *s3server.Server
	SQS      *sqsserver.Server
	verifier *sigv4.Verifier
	listener net.Listener
	server   *http.Server
	done     chan struct{}
	s3Reqs   atomic.Int64
	sqsReqs  atomic.Int64
}

// Requests is how many signed requests the cloud has served to S3 and to
// SQS since it started, refused ones included.
func (c *Cloud) Requests() (s3, sqs int64) { return c.s3Reqs.Load(), c.sqsReqs.Load() }

// New builds a cloud without listening; Handler serves it. Start is New plus
// a listener.
func New(cfg Config) *Cloud {
	cfg.setDefaults()
	c := &Cloud{cfg: cfg, done: make(chan struct{})}
	c.SQS = sqsserver.New(
		sqsserver.WithClock(cfg.Clock),
		sqsserver.WithRegion(cfg.Region),
		sqsserver.WithAccountID(cfg.AccountID),
		sqsserver.WithLogger(cfg.Logger.With("service", "sqs")),
	)
	c.S3 = s3server.New(c.SQS,
		s3server.WithClock(cfg.Clock),
		s3server.WithRegion(cfg.Region),
		s3server.WithLogger(cfg.Logger.With("service", "s3")),
	)
	c.verifier = sigv4.NewVerifier(cfg.Region, func(key string) (string, bool) {
		if key == cfg.AccessKey {
			return cfg.SecretKey, true
		}
		return "", false
	}, cfg.Clock)
	return c
}

// Start listens on cfg.Addr and serves S3 and SQS until ctx ends or Close is
// called.
func Start(ctx context.Context, cfg Config) (*Cloud, error) {
	c := New(cfg)
	l, err := net.Listen("tcp", c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("local cloud: listen on %s: %w", c.cfg.Addr, err)
	}
	c.listener = l
	c.server = &http.Server{Handler: c, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(c.done)
		if err := c.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.cfg.Logger.Error("local cloud stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = c.Close()
		case <-c.done:
		}
	}()
	return c, nil
}

// Endpoint is the base URL of the cloud, e.g. "http://127.0.0.1:4566".
func (c *Cloud) Endpoint() string {
	if c.listener == nil {
		return ""
	}
	return "http://" + c.listener.Addr().String()
}

// Clock is the clock shared by S3, SQS and the signature checks.
func (c *Cloud) Clock() *clock.Clock { return c.cfg.Clock }

// Region is the cloud's only region.
func (c *Cloud) Region() string { return c.cfg.Region }

// Credentials are the access key and secret the cloud accepts.
func (c *Cloud) Credentials() (accessKey, secretKey string) {
	return c.cfg.AccessKey, c.cfg.SecretKey
}

// AccountID is the account named in queue URLs and ARNs.
func (c *Cloud) AccountID() string { return c.cfg.AccountID }

// Close stops serving, ends long polls and waits for in-flight requests.
func (c *Cloud) Close() error {
	c.SQS.Close()
	if c.server == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.server.Shutdown(ctx)
	<-c.done
	return err
}

// ServeHTTP verifies the request's signature and hands it to the service its
// credential scope names.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == HealthPath && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"services": map[string]string{"s3": "running", "sqs": "running"},
			"region":   c.cfg.Region,
			"time":     c.cfg.Clock.Now().UTC().Format(time.RFC3339Nano),
		})
		return
	}
	service := "s3"
	if scope, ok := sigv4.ParseScope(r); ok {
		service = scope.Service
	} else if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.") {
		service = "sqs"
	}
	switch service {
	case "s3":
		c.s3Reqs.Add(1)
	case "sqs":
		c.sqsReqs.Add(1)
	}
	if _, err := c.verifier.Verify(r); err != nil {
		c.cfg.Logger.Debug("request refused", "service", service, "method", r.Method, "path", r.URL.Path, "code", err.Code, "reason", err.Message)
		writeAuthError(w, r, service, err)
		return
	}
	switch service {
	case "s3":
		c.S3.ServeHTTP(w, r)
	case "sqs":
		c.SQS.ServeHTTP(w, r)
	default:
		writeAuthError(w, r, service, &sigv4.Error{Status: http.StatusBadRequest, Code: "InvalidAction",
			Message: fmt.Sprintf("The local cloud serves s3 and sqs, not %q", service)})
	}
}

// writeAuthError renders a refused request in the error format of its
// service: S3's XML, or the JSON protocol's document for SQS.
func writeAuthError(w http.ResponseWriter, r *http.Request, service string, e *sigv4.Error) {
	if service == "s3" {
		s3server.WriteError(w, r, e.Status, e.Code, e.Message)
		return
	}
	code := e.Code
	switch code {
	case "InvalidAccessKeyId":
		code = "InvalidClientTokenId"
	case "AccessDenied":
		code = "MissingAuthenticationToken"
	case "RequestTimeTooSkewed":
		code = "InvalidSignatureException"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", code+";Sender")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazon.coral.service#" + code, "message": e.Message})
}
