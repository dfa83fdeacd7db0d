// Package site is a site's configuration, sites/{site}/config.json in the
// store bucket: its token hashes, its limits and its sync destinations. It is
// written with AWS credentials (the CLI, the dev stack's seed), never through
// the public Upload API.
package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/layout"
)

// Defaults of a site's limits.
const (
	DefaultMaxContentLength   = 5 << 30 // the single-PUT maximum
	DefaultMaxOutstanding     = 100
	DefaultRatePerMinute      = 600
	DefaultMaxFullDeleteRatio = 0.5
)

// Config is a site's configuration.
type Config struct {
	Site        string   `json:"site"`
	TokenHashes []string `json:"tokenHashes"`
	// MaxContentLength bounds one upload (bytes); default 5 GiB.
	MaxContentLength int64 `json:"maxContentLength,omitempty"`
	// MaxOutstanding bounds uploads awaiting their PUT; default 100.
	MaxOutstanding int `json:"maxOutstanding,omitempty"`
	// RatePerMinute bounds upload creations; default 600.
	RatePerMinute int `json:"ratePerMinute,omitempty"`
	// Strict rejects a delta with any bad line (default: more than 1 %).
	Strict bool `json:"strict,omitempty"`
	// MaxFullDeleteRatio is the share of the catalog a full upload may
	// delete before it is held as implausible; default 0.5.
	MaxFullDeleteRatio float64       `json:"maxFullDeleteRatio,omitempty"`
	Destinations       []Destination `json:"destinations,omitempty"`
	CreatedAt          time.Time     `json:"createdAt"`
}

// Destination is where the sync pushes a site's catalog changes.
type Destination struct {
	Name string `json:"name"`
	Type string `json:"type"` // "s3" or "webhook"
	// URL is the webhook URL (https; http only to loopback on the dev stack).
	URL string `json:"url,omitempty"`
	// Bucket, Prefix and ExpectedBucketOwner address an s3 destination.
	Bucket              string `json:"bucket,omitempty"`
	Prefix              string `json:"prefix,omitempty"`
	ExpectedBucketOwner string `json:"expectedBucketOwner,omitempty"`
	// Secrets sign webhook bodies; two are active during rotation.
	Secrets []string `json:"secrets,omitempty"`
	// Fields limits the product fields sent (empty: all).
	Fields []string `json:"fields,omitempty"`
	// Schedule is the destination's own sync schedule, e.g. "rate(1 hour)";
	// empty follows the sync function's schedule.
	Schedule string `json:"schedule,omitempty"`
}

// Limits returns the config with defaults filled in.
func (c Config) Limits() Config {
	if c.MaxContentLength == 0 {
		c.MaxContentLength = DefaultMaxContentLength
	}
	if c.MaxOutstanding == 0 {
		c.MaxOutstanding = DefaultMaxOutstanding
	}
	if c.RatePerMinute == 0 {
		c.RatePerMinute = DefaultRatePerMinute
	}
	if c.MaxFullDeleteRatio == 0 {
		c.MaxFullDeleteRatio = DefaultMaxFullDeleteRatio
	}
	return c
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if err := layout.ValidateSite(c.Site); err != nil {
		errs = append(errs, err)
	}
	if len(c.TokenHashes) == 0 || len(c.TokenHashes) > apiauth.MaxActive {
		errs = append(errs, fmt.Errorf("tokenHashes: want 1-%d active tokens, got %d", apiauth.MaxActive, len(c.TokenHashes)))
	}
	for i, h := range c.TokenHashes {
		if !apiauth.ValidHash(h) {
			errs = append(errs, fmt.Errorf("tokenHashes[%d]: not a sha256:<hex> token hash", i))
		}
	}
	if c.MaxContentLength < 0 || c.MaxContentLength > DefaultMaxContentLength {
		errs = append(errs, fmt.Errorf("maxContentLength: want 0-%d bytes", int64(DefaultMaxContentLength)))
	}
	if c.MaxOutstanding < 0 || c.MaxOutstanding > 10000 {
		errs = append(errs, errors.New("maxOutstanding: want 0-10000"))
	}
	if c.RatePerMinute < 0 {
		errs = append(errs, errors.New("ratePerMinute: must not be negative"))
	}
	if c.MaxFullDeleteRatio < 0 || c.MaxFullDeleteRatio > 1 {
		errs = append(errs, errors.New("maxFullDeleteRatio: want 0-1"))
	}
	names := map[string]bool{}
	for i, d := range c.Destinations {
		if err := layout.ValidateSite(d.Name); err != nil {
			errs = append(errs, fmt.Errorf("destinations[%d].name %q: want ^[a-z0-9][a-z0-9-]{0,62}$", i, d.Name))
		}
		if names[d.Name] {
			errs = append(errs, fmt.Errorf("destinations[%d].name %q: used twice", i, d.Name))
		}
		names[d.Name] = true
		switch d.Type {
		case "webhook":
			if d.URL == "" {
				errs = append(errs, fmt.Errorf("destinations[%d]: a webhook needs a url", i))
			}
			if len(d.Secrets) == 0 || len(d.Secrets) > 2 {
				errs = append(errs, fmt.Errorf("destinations[%d]: a webhook needs 1-2 signing secrets", i))
			}
		case "s3":
			if d.Bucket == "" || d.ExpectedBucketOwner == "" {
				errs = append(errs, fmt.Errorf("destinations[%d]: an s3 destination needs bucket and expectedBucketOwner", i))
			}
		default:
			errs = append(errs, fmt.Errorf("destinations[%d].type %q: want s3 or webhook", i, d.Type))
		}
	}
	return errors.Join(errs...)
}

// ErrNotFound is returned for a site without a configuration.
var ErrNotFound = errors.New("site not found")

type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Load reads a site's configuration.
func Load(ctx context.Context, client objectAPI, bucket, name string) (Config, error) {
	c, _, err := load(ctx, client, bucket, name)
	return c, err
}

// load reads a site's configuration and its ETag.
func load(ctx context.Context, client objectAPI, bucket, name string) (Config, string, error) {
	if err := layout.ValidateSite(name); err != nil {
		return Config{}, "", fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	key := layout.SiteConfigKey(name)
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound") {
		return Config{}, "", fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Config{}, "", fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	var c Config
	if err := json.NewDecoder(out.Body).Decode(&c); err != nil {
		return Config{}, "", fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return c, aws.ToString(out.ETag), nil
}

// ErrConflict is returned when a site's configuration kept changing under
// an Update.
var ErrConflict = errors.New("site configuration changed concurrently")

// updateAttempts bounds the re-reads of an Update that loses its write.
const updateAttempts = 5

// Update reads a site's configuration, applies edit, validates the result
// and writes it back only if the configuration is still the one read
// (If-Match on its ETag). When another writer changed it first, Update
// reads it again and applies edit to the new one, so concurrent edits never
// lose one another; edit must therefore be safe to call more than once. An
// error from edit or from validation is returned as is and nothing is
// written; ErrConflict after several lost writes in a row.
func Update(ctx context.Context, client objectAPI, bucket, name string, edit func(*Config) error) (Config, error) {
	for range updateAttempts {
		c, etag, err := load(ctx, client, bucket, name)
		if err != nil {
			return Config{}, err
		}
		if err := edit(&c); err != nil {
			return Config{}, err
		}
		err = save(ctx, client, bucket, c, etag)
		if isConflict(err) {
			continue
		}
		return c, err
	}
	return Config{}, fmt.Errorf("site %s: %w", name, ErrConflict)
}

func isConflict(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		c := apiErr.ErrorCode()
		return c == "PreconditionFailed" || c == "ConditionalRequestConflict"
	}
	return false
}

// Save validates and writes a site's configuration, replacing whatever is
// there; edits of an existing site go through Update.
func Save(ctx context.Context, client objectAPI, bucket string, c Config) error {
	return save(ctx, client, bucket, c, "")
}

// save writes c; with an etag only over exactly that version of it.
func save(ctx context.Context, client objectAPI, bucket string, c Config, etag string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("site %s: %w", c.Site, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	key := layout.SiteConfigKey(c.Site)
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b), ContentType: aws.String("application/json")}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	if _, err := client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("write %s/%s: %w", bucket, key, err)
	}
	return nil
}
