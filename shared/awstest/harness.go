// Package awstest is feedpipe's AWS conformance suite: the S3 and SQS
// behaviour the pipeline relies on, written once as subtests and run against
// every backend feedpipe uses — the embedded local cloud always, and moto
// server, LocalStack or AWS itself when FEEDPIPE_TEST_ENDPOINT names one.
//
// A backend plugs in through a Harness. Where a backend is known to differ
// from AWS it says so in Features: the subtests that depend on the missing
// behaviour are skipped, and a Divergence/<Flag> subtest proves that the
// difference is still there, so a backend that gets fixed is noticed and its
// flag dropped. Nothing is loosened for a backend; a flag is the only way to
// excuse one.
//
// Every subtest works on its own uniquely named buckets and queues and
// deletes them when it ends, so the suite can share an account with other
// work. Subtests that wait on time, or move the backend's clock, run alone;
// all others run in parallel.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Harness connects the suite to one backend.
type Harness struct {
	// Name names the backend in failure messages ("embedded", "moto", …).
	Name string
	// Endpoint is the base URL serving both S3 (path-style) and SQS, e.g.
	// "http://127.0.0.1:4566"; empty means AWS's own regional endpoints.
	Endpoint string
	// S3 is a path-style client with static credentials, as NewClients
	// builds it.
	S3 *s3.Client
	// SQS is a client for the same backend and credentials.
	SQS *sqs.Client
	// Region, AccessKey and SecretKey are what the clients sign with; the
	// suite uses them to sign raw and presigned requests itself.
	Region, AccessKey, SecretKey string
	// Features lists where the backend is known to differ from AWS.
	Features Features
	// Advance moves the backend's clock forward, firing every timer it
	// passes (visibility timeouts, delays). Nil for external backends: then
	// the suite waits in real time, with timeouts of a second, and leaves
	// out what would take minutes (the 5-minute deduplication window).
	Advance func(d time.Duration)
}

// Run runs every subtest against the backend h describes. It returns when
// all of them have finished, so the caller may release the backend right
// after it.
func Run(t *testing.T, h Harness) {
	if h.S3 == nil || h.SQS == nil {
		t.Fatalf("awstest: harness %q needs both an S3 and an SQS client", h.Name)
	}
	if h.Region == "" || h.AccessKey == "" || h.SecretKey == "" {
		t.Fatalf("awstest: harness %q needs Region, AccessKey and SecretKey", h.Name)
	}
	s := &suite{Harness: h, http: newHTTPClient()}
	s.runGroup(t, "S3", s3Tests())
	s.runGroup(t, "SQS", sqsTests())
	t.Run("Divergence", func(t *testing.T) {
		for _, d := range divergences() {
			t.Run(d.flag, func(t *testing.T) {
				if !d.set(h.Features) {
					t.Skipf("%s does not set Features.%s", h.Name, d.flag)
				}
				t.Parallel()
				d.probe(t, s)
			})
		}
	})
}

// subtest is one behaviour of AWS that feedpipe relies on.
type subtest struct {
	name string
	// serial subtests wait on time or move the clock; they run alone.
	serial bool
	run    func(t *testing.T, s *suite)
}

// runGroup runs the serial subtests of a group one by one, then the others
// in parallel: a parallel subtest only starts once the group's function has
// returned, so no clock jump lands in the middle of it.
func (s *suite) runGroup(t *testing.T, name string, tests []subtest) {
	t.Run(name, func(t *testing.T) {
		for _, st := range tests {
			t.Run(st.name, func(t *testing.T) {
				// A backend whose FIFO state is not safe under concurrent
				// clients (FIFOConcurrentReceiveRace) also misorders
				// single-receiver FIFO tests when other subtests load it at
				// the same time; its SQS subtests run one at a time so each
				// checks the behaviour it names.
				if !st.serial && !(name == "SQS" && s.Features.FIFOConcurrentReceiveRace) {
					t.Parallel()
				}
				st.run(t, s)
			})
		}
	})
}

// suite is the Harness plus what every subtest shares.
type suite struct {
	Harness
	http *http.Client // raw (curl-like) requests: presigned URLs, hand-signed requests
}

// skipIf skips the running subtest when the backend declares the divergence
// it depends on.
func (s *suite) skipIf(t *testing.T, diverges bool, flag string) {
	t.Helper()
	if diverges {
		t.Skipf("%s sets Features.%s; Divergence/%s checks that it still differs", s.Name, flag, flag)
	}
}

// elapse lets d pass on the backend's clock: by moving it, or by sleeping
// where the backend's clock cannot be moved.
func (s *suite) elapse(d time.Duration) {
	if s.Advance != nil {
		s.Advance(d)
		return
	}
	time.Sleep(d)
}

// seconds picks a duration in whole seconds: long when the clock can be
// moved (so that real time never interferes), short when the suite has to
// wait in real time.
func (s *suite) seconds(long, short int32) int32 {
	if s.Advance != nil {
		return long
	}
	return short
}

// credentials are the harness's credentials, for signing by hand.
func (s *suite) credentials() aws.Credentials {
	return aws.Credentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey, Source: "awstest"}
}

// s3Endpoint is the base URL of path-style S3 requests.
func (s *suite) s3Endpoint() string {
	if s.Endpoint != "" {
		return strings.TrimRight(s.Endpoint, "/")
	}
	return "https://s3." + s.Region + ".amazonaws.com"
}

// NewClients builds S3 (path-style) and SQS clients for an endpoint with
// static credentials. It reads no shared configuration and no environment,
// so AWS_PROFILE, AWS_CA_BUNDLE and the like in the caller's environment
// cannot change what is tested; otherwise the clients behave as ones from
// config.LoadDefaultConfig (flexible checksums when supported). An empty
// endpoint means AWS's own endpoints. The clients keep up to 64 idle
// connections to the endpoint and retry throttling and 5xx answers without
// a client-side retry quota.
func NewClients(endpoint, region, accessKey, secretKey string) (*s3.Client, *sqs.Client) {
	return newClients(endpoint, region, accessKey, secretKey, newHTTPClient())
}

func newClients(endpoint, region, accessKey, secretKey string, hc aws.HTTPClient) (*s3.Client, *sqs.Client) {
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:  hc,
		// What config.LoadDefaultConfig resolves to, and so what every
		// function sends: left unset in a literal, the S3 client would add no
		// checksum to PutObject at all.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		},
	}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), sqs.NewFromConfig(cfg)
}

// newHTTPClient is an HTTP client tuned for many concurrent requests to one
// host.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}

// Environment variables read by ExternalHarness.
const (
	EnvEndpoint  = "FEEDPIPE_TEST_ENDPOINT"          // base URL of the backend; "aws" for AWS's own endpoints
	EnvBackend   = "FEEDPIPE_TEST_BACKEND"           // moto | localstack | aws: chooses the Features preset
	EnvRegion    = "FEEDPIPE_TEST_REGION"            // default us-east-1
	EnvAccessKey = "FEEDPIPE_TEST_ACCESS_KEY_ID"     // default "test"
	EnvSecretKey = "FEEDPIPE_TEST_SECRET_ACCESS_KEY" // default "test"
)

// ExternalHarness describes the backend named by FEEDPIPE_TEST_ENDPOINT, with
// the Features preset of FEEDPIPE_TEST_BACKEND (moto, localstack or aws; aws,
// which excuses nothing, when unset). It reports false when
// FEEDPIPE_TEST_ENDPOINT is unset. External backends have no Advance.
func ExternalHarness(t testing.TB) (Harness, bool) {
	t.Helper()
	endpoint := os.Getenv(EnvEndpoint)
	if endpoint == "" {
		return Harness{}, false
	}
	backend := os.Getenv(EnvBackend)
	if backend == "" {
		backend = "aws"
	}
	features, err := FeaturesOf(backend)
	if err != nil {
		t.Fatalf("%s: %v", EnvBackend, err)
	}
	if endpoint == "aws" {
		endpoint = ""
	} else if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("%s=%q is not an http(s) base URL", EnvEndpoint, endpoint)
	}
	h := Harness{
		Name:      backend,
		Endpoint:  endpoint,
		Region:    envOr(EnvRegion, "us-east-1"),
		AccessKey: envOr(EnvAccessKey, "test"),
		SecretKey: envOr(EnvSecretKey, "test"),
		Features:  features,
	}
	h.S3, h.SQS = NewClients(h.Endpoint, h.Region, h.AccessKey, h.SecretKey)
	return h, true
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// uniqueName derives a bucket or queue name from the running subtest: "fp-",
// the subtest's last name element in lowercase letters, digits and dashes,
// and a random suffix, at most max characters long.
func uniqueName(t testing.TB, max int) string {
	name := t.Name()
	name = name[strings.LastIndex(name, "/")+1:]
	var slug strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			slug.WriteRune(r)
			dash = false
		} else if !dash && slug.Len() > 0 {
			slug.WriteByte('-')
			dash = true
		}
	}
	var b [5]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	s := strings.TrimRight(slug.String(), "-")
	if room := max - len("fp-") - 1 - len(suffix); len(s) > room {
		s = strings.TrimRight(s[:room], "-")
	}
	return fmt.Sprintf("fp-%s-%s", s, suffix)
}

// cleanupContext is the context of clean-up work, which runs after the
// test's own context has been cancelled.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
