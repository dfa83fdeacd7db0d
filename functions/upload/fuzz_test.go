package main

import (
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// FuzzParseCreate checks the create-request decoder: it never panics, every
// refusal is a 400 or a 413, and every request it accepts satisfies each
// rule of DESIGN.md "Upload API".
func FuzzParseCreate(f *testing.F) {
	for _, s := range []string{
		`{"mode":"delta","contentLength":1}`,
		`{"mode":"full","contentLength":5368709120,"sha256":"` + hex.EncodeToString(make([]byte, 32)) + `","contentEncoding":"zstd","expiresIn":3600,"allowEmpty":true,"maxFullDeleteRatio":1}`,
		`{"mode":"delta","contentLength":10,"contentEncoding":"gzip","expiresIn":1}`,
		`{"mode":"delta","contentLength":-1}`,
		`{"mode":"delta","contentLength":1,"expiresIn":9223372036854775807}`,
		`{"mode":"delta","contentLength":1e3}`,
		`{"mode":"delta","contentLength":1} x`,
		`{"mode":"delta","mode":"full","contentLength":1}`,
		`null`, ``, `[]`, `{"contentLength":null}`,
	} {
		f.Add([]byte(s), int64(1000))
	}
	f.Fuzz(func(t *testing.T, body []byte, limit int64) {
		if limit < 1 || limit > site.DefaultMaxContentLength {
			limit = site.DefaultMaxContentLength
		}
		cfg := site.Config{Site: "demo", MaxContentLength: limit}.Limits()
		in, apiErr := parseCreate(body, cfg)
		if apiErr != nil {
			if apiErr.status != http.StatusBadRequest && apiErr.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("refused with status %d", apiErr.status)
			}
			if apiErr.code == "" || apiErr.message == "" {
				t.Fatalf("refusal without code or message: %+v", apiErr)
			}
			return
		}
		if len(body) > maxBodyBytes {
			t.Errorf("accepted a body of %d bytes", len(body))
		}
		if in.Mode != string(uploads.Delta) && in.Mode != string(uploads.Full) {
			t.Errorf("accepted mode %q", in.Mode)
		}
		if in.ContentLength == nil || *in.ContentLength < 1 || *in.ContentLength > cfg.MaxContentLength {
			t.Errorf("accepted contentLength %v with limit %d", in.ContentLength, cfg.MaxContentLength)
		}
		if in.SHA256 != "" {
			if b, err := hex.DecodeString(in.SHA256); err != nil || len(b) != 32 {
				t.Errorf("accepted sha256 %q", in.SHA256)
			}
		}
		if _, err := layout.ParseEncoding(in.ContentEncoding); err != nil {
			t.Errorf("accepted contentEncoding %q", in.ContentEncoding)
		}
		if in.ExpiresIn != nil && (*in.ExpiresIn < 1 || *in.ExpiresIn > 3600) {
			t.Errorf("accepted expiresIn %d", *in.ExpiresIn)
		}
		if r := in.MaxFullDeleteRatio; r != nil && (*r < 0 || *r > 1) {
			t.Errorf("accepted maxFullDeleteRatio %v", *r)
		}
		if (in.AllowEmpty || in.MaxFullDeleteRatio != nil) && in.Mode != string(uploads.Full) {
			t.Errorf("accepted allowEmpty/maxFullDeleteRatio on a %s upload", in.Mode)
		}
	})
}
