package awstest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// httpStatus is the HTTP status of the response an SDK error came with, or
// 0 when the request got no response.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// errorCode is the API error code of err, or "" when err is no API error.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// wantAPIError reports an error unless err is an API error answered with
// HTTP status and one of codes.
func wantAPIError(t *testing.T, err error, status int, codes ...string) {
	t.Helper()
	wantCode(t, err, status, func(code string) string { return code }, codes)
}

// wantSQSError is wantAPIError for SQS, where the SDK reports the legacy
// query-protocol code (AWS.SimpleQueueService.NonExistentQueue) when the
// backend sends one beside the JSON error type (QueueDoesNotExist): either
// spelling of the code is accepted.
func wantSQSError(t *testing.T, err error, status int, codes ...string) {
	t.Helper()
	wantCode(t, err, status, sqsCode, codes)
}

func wantCode(t *testing.T, err error, status int, canon func(string) string, codes []string) {
	t.Helper()
	want := fmt.Sprintf("HTTP %d %s", status, strings.Join(codes, " or "))
	if err == nil {
		t.Errorf("request succeeded, want %s", want)
		return
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Errorf("got %v, want %s", err, want)
		return
	}
	got := httpStatus(err)
	if got != status || !slices.Contains(codes, canon(ae.ErrorCode())) {
		t.Errorf("got HTTP %d %s (%q), want %s", got, ae.ErrorCode(), ae.ErrorMessage(), want)
	}
}

// sqsCode maps the legacy query-protocol error codes of SQS to the names of
// the JSON protocol's error types.
func sqsCode(code string) string {
	switch code {
	case "AWS.SimpleQueueService.NonExistentQueue":
		return "QueueDoesNotExist"
	case "QueueAlreadyExists":
		return "QueueNameExists"
	}
	return strings.TrimPrefix(code, "AWS.SimpleQueueService.")
}

// rawResponse is the answer to a request made without the SDK.
type rawResponse struct {
	Status  int
	Header  http.Header
	Body    []byte
	Code    string // S3 error code from an XML error body
	Message string // S3 error message
}

func (r rawResponse) String() string {
	if r.Code != "" {
		return fmt.Sprintf("HTTP %d %s (%q)", r.Status, r.Code, r.Message)
	}
	return fmt.Sprintf("HTTP %d", r.Status)
}

// do sends a request the way curl would: the given headers (Host and
// Content-Length are taken from the URL and the body) and no retries.
func (s *suite) do(ctx context.Context, t *testing.T, method, url string, header http.Header, body []byte) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, vs := range header {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length":
		default:
			req.Header[http.CanonicalHeaderKey(k)] = vs
		}
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read response: %v", method, url, err)
	}
	r := rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
	if resp.StatusCode >= 300 {
		var e struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		if xml.Unmarshal(data, &e) == nil {
			r.Code, r.Message = e.Code, e.Message
		}
	}
	return r
}

// wantRaw reports an error unless r has the given status and, when code is
// not empty, that S3 error code.
func wantRaw(t *testing.T, what string, r rawResponse, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && r.Code != code) {
		want := fmt.Sprintf("HTTP %d", status)
		if code != "" {
			want += " " + code
		}
		t.Errorf("%s: got %s, want %s", what, r, want)
	}
}
