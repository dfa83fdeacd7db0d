package s3server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/rclone/gofakes3"
)

// maxChunkedBody bounds an aws-chunked body decoded in memory (S3's
// single-PUT limit).
const maxChunkedBody = 5 << 30

// isStreaming reports whether a request body is aws-chunked encoded, as the
// SDKs send uploads with flexible checksums by default.
func isStreaming(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-")
}

// decodeChunked turns an aws-chunked request into a plain one: the decoded
// body with its Content-Length, and the trailing checksum headers
// (x-amz-checksum-*) moved into the request headers, so the checksum is
// verified against the body and stored with the object as S3 does.
// gofakes3 decodes the chunks but ignores trailers.
func decodeChunked(r *http.Request) (*http.Request, error) {
	br := bufio.NewReader(io.LimitReader(r.Body, maxChunkedBody+1<<20))
	var body bytes.Buffer
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, gofakes3.ErrorMessagef(gofakes3.ErrIncompleteBody, "aws-chunked body: %v", err)
		}
		sizeHex, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
		if err != nil || size < 0 {
			return nil, gofakes3.ErrorMessagef(gofakes3.ErrInvalidRequest, "aws-chunked body: bad chunk size %q", sizeHex)
		}
		if size == 0 {
			break
		}
		if int64(body.Len())+size > maxChunkedBody {
			return nil, gofakes3.ErrEntityTooLarge
		}
		if _, err := io.CopyN(&body, br, size); err != nil {
			return nil, gofakes3.ErrorMessagef(gofakes3.ErrIncompleteBody, "aws-chunked body: %v", err)
		}
		if crlf, err := readLine(br); err != nil || crlf != "" {
			return nil, gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, "aws-chunked body: chunk not followed by CRLF")
		}
	}
	// Trailer headers, up to an empty line or the end of the body.
	trailers := http.Header{}
	for {
		line, err := readLine(br)
		if err == io.EOF || line == "" {
			break
		}
		if err != nil {
			return nil, gofakes3.ErrorMessagef(gofakes3.ErrIncompleteBody, "aws-chunked trailer: %v", err)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, gofakes3.ErrorMessagef(gofakes3.ErrInvalidRequest, "aws-chunked trailer: bad line %q", line)
		}
		trailers.Set(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	if want := r.Header.Get("X-Amz-Decoded-Content-Length"); want != "" && want != strconv.Itoa(body.Len()) {
		return nil, gofakes3.ErrorMessagef(gofakes3.ErrIncompleteBody, "The decoded body has %d bytes, x-amz-decoded-content-length says %s", body.Len(), want)
	}
	declared := map[string]bool{}
	for _, name := range strings.Split(r.Header.Get("X-Amz-Trailer"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			declared[textproto.CanonicalMIMEHeaderKey(name)] = true
		}
	}
	out := r.Clone(r.Context())
	out.Header.Del("X-Amz-Decoded-Content-Length")
	out.Header.Del("X-Amz-Trailer")
	out.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	var encodings []string
	for _, e := range strings.Split(r.Header.Get("Content-Encoding"), ",") {
		if e = strings.TrimSpace(e); e != "" && e != "aws-chunked" {
			encodings = append(encodings, e)
		}
	}
	out.Header.Del("Content-Encoding")
	if len(encodings) > 0 {
		out.Header.Set("Content-Encoding", strings.Join(encodings, ","))
	}
	for k, v := range trailers {
		if !strings.HasPrefix(k, "X-Amz-Checksum-") {
			continue
		}
		if !declared[k] {
			return nil, gofakes3.ErrorMessagef(gofakes3.ErrInvalidRequest, "The trailer %s was not declared in x-amz-trailer", k)
		}
		out.Header[k] = v
	}
	out.Body = io.NopCloser(bytes.NewReader(body.Bytes()))
	out.ContentLength = int64(body.Len())
	out.Header.Set("Content-Length", strconv.Itoa(body.Len()))
	out.TransferEncoding = nil
	return out, nil
}

// readLine reads one CRLF- (or LF-) terminated line without its ending.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			return "", fmt.Errorf("unexpected end of body")
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
