package main

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// sampleToken is the token in events/upload/*.json (sam local invoke users
// replace it with their FEEDPIPE_DEMO_TOKEN).
const sampleToken = "fp_sampletokenreplacewithfeedpipedemotoken"

// TestSampleEvents keeps events/upload/ working: each sample decodes into
// the handler's event type, strictly, and is answered by the route it names.
func TestSampleEvents(t *testing.T) {
	e := newEnv(t)
	if err := site.Save(t.Context(), e.s3, storeBucket, site.Config{Site: "demo", TokenHashes: []string{apiauth.Hash(sampleToken)}}); err != nil {
		t.Fatal(err)
	}
	// The upload the get sample asks for.
	if _, err := e.h.Uploads.Allocate(t.Context(), uploads.Record{Site: "demo", Mode: uploads.Delta, ContentLength: 42, ContentEncoding: "identity", State: uploads.AwaitingUpload},
		func(uint64) string { return "1-aaaaaaaaaaaaaaaaaaaaaaaaaa" }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, routeKey string
		status         int
		check          func(t *testing.T, body string)
	}{
		{"create-upload.json", "POST /v1/sites/{site}/uploads", 201, func(t *testing.T, body string) {
			var c createResponse
			if err := json.Unmarshal([]byte(body), &c); err != nil || c.Sequence != 2 || c.URL == "" {
				t.Errorf("created %s", body)
			}
		}},
		{"get-upload.json", "GET /v1/sites/{site}/uploads/{uploadId}", 200, func(t *testing.T, body string) {
			var s status
			if err := json.Unmarshal([]byte(body), &s); err != nil || s.UploadID != "1-aaaaaaaaaaaaaaaaaaaaaaaaaa" || s.State != uploads.AwaitingUpload {
				t.Errorf("status %s", body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("../../events/upload/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			var req events.APIGatewayV2HTTPRequest
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				t.Fatalf("%s is not an HTTP API payload 2.0 event: %v", tt.file, err)
			}
			if req.Version != "2.0" || req.RouteKey != tt.routeKey || req.RequestContext.RouteKey != tt.routeKey || req.RequestContext.TimeEpoch == 0 {
				t.Errorf("%s: version %q route %q, want 2.0 %q with a timeEpoch", tt.file, req.Version, req.RouteKey, tt.routeKey)
			}
			for k := range req.Headers {
				if k != toLower(k) {
					t.Errorf("%s: header %q is not lower-case as API Gateway sends it", tt.file, k)
				}
			}
			// The sample's time is fixed; the cloud checks signatures against
			// its own clock, so answer as of now.
			req.RequestContext.TimeEpoch = e.cloud.Clock().Now().UnixMilli()
			resp, err := e.h.Handle(t.Context(), req)
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("%s: %d %s %v, want %d", tt.file, resp.StatusCode, resp.Body, err, tt.status)
			}
			tt.check(t, resp.Body)
		})
	}
}
