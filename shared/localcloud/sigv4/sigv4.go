// Package sigv4 checks AWS Signature Version 4 on requests to the local
// cloud, both header-signed requests and presigned URLs (query
// authentication), the way AWS does: the canonical request is rebuilt from
// exactly the headers the client says it signed and signed again with
// aws-sdk-go-v2's own signer, so any header, query parameter, path, body hash
// or Content-Length that differs from what was signed makes the signature
// differ. Time comes from an injected clock, so presigned-URL expiry follows
// the local cloud's clock.
//
// Not checked, as in other emulators: the per-chunk signatures of
// aws-chunked streaming uploads (the seed signature over the headers is
// checked) and session tokens.
package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/feedpipe/feedpipe/shared/clock"
)

const (
	algorithm  = "AWS4-HMAC-SHA256"
	timeFormat = "20060102T150405Z"

	// maxPresignExpires is the longest a presigned URL can be valid for.
	maxPresignExpires = 7 * 24 * time.Hour
	// maxSkew is how far a header-signed request's time may be from the
	// server's, as on AWS.
	maxSkew = 15 * time.Minute

	unsignedPayload = "UNSIGNED-PAYLOAD"
	emptySHA256     = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// Error is a refused request, with the HTTP status and the error code AWS
// answers with. The caller renders it in its service's error format.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Scope is what a request claims about itself in its credential scope.
type Scope struct {
	AccessKey string
	Date      string // yyyymmdd
	Region    string
	Service   string
	Presigned bool
}

// ParseScope reads the credential scope from the Authorization header or,
// for a presigned URL, from X-Amz-Credential. ok is false for an unsigned
// request or one whose scope cannot be parsed.
func ParseScope(r *http.Request) (Scope, bool) {
	var cred string
	presigned := false
	if auth := r.Header.Get("Authorization"); auth != "" {
		fields, ok := parseAuthorization(auth)
		if !ok {
			return Scope{}, false
		}
		cred = fields.credential
	} else if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
		cred, presigned = c, true
	} else {
		return Scope{}, false
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return Scope{}, false
	}
	return Scope{AccessKey: parts[0], Date: parts[1], Region: parts[2], Service: parts[3], Presigned: presigned}, true
}

type authFields struct {
	credential, signedHeaders, signature string
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
// Signature=…".
func parseAuthorization(h string) (authFields, bool) {
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return authFields{}, false
	}
	var f authFields
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return authFields{}, false
		}
		switch k {
		case "Credential":
			f.credential = v
		case "SignedHeaders":
			f.signedHeaders = v
		case "Signature":
			f.signature = v
		}
	}
	if f.credential == "" || f.signedHeaders == "" || f.signature == "" {
		return authFields{}, false
	}
	return f, true
}

// Verifier checks signatures against a set of static credentials.
type Verifier struct {
	Region string
	// Secret returns the secret key of an access key, false if unknown.
	Secret func(accessKey string) (string, bool)
	Clock  *clock.Clock

	signer *v4.Signer
}

// NewVerifier returns a verifier for one region.
func NewVerifier(region string, secret func(accessKey string) (string, bool), c *clock.Clock) *Verifier {
	return &Verifier{Region: region, Secret: secret, Clock: c, signer: v4.NewSigner()}
}

// Verify checks r's signature. For services other than S3 whose requests do
// not carry X-Amz-Content-Sha256, the body is read to hash it and replaced by
// an equal in-memory body, so the caller can still read it.
func (v *Verifier) Verify(r *http.Request) (Scope, *Error) {
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS ") || r.URL.Query().Get("AWSAccessKeyId") != "" {
		// As S3 answers in regions that accept only Signature Version 4.
		return Scope{}, errorf(http.StatusBadRequest, "InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256. (AWS CLI v1: aws configure set default.s3.signature_version s3v4)")
	}
	scope, ok := ParseScope(r)
	if !ok {
		if r.Header.Get("Authorization") == "" && r.URL.Query().Get("X-Amz-Signature") == "" {
			return Scope{}, errorf(http.StatusForbidden, "AccessDenied", "Anonymous access is not allowed: sign the request with SigV4")
		}
		return Scope{}, errorf(http.StatusBadRequest, "AuthorizationHeaderMalformed", "The authorization header or query parameters are malformed")
	}
	secret, ok := v.Secret(scope.AccessKey)
	if !ok {
		return scope, errorf(http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
	}
	if scope.Region != v.Region {
		return scope, errorf(http.StatusBadRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed; the region '%s' is wrong; expecting '%s'", scope.Region, v.Region)
	}
	if scope.Presigned {
		return scope, v.verifyPresigned(r, scope, secret)
	}
	return scope, v.verifyHeader(r, scope, secret)
}

func (v *Verifier) verifyHeader(r *http.Request, scope Scope, secret string) *Error {
	fields, _ := parseAuthorization(r.Header.Get("Authorization"))
	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse(timeFormat, amzDate)
	if err != nil {
		return errorf(http.StatusForbidden, "AccessDenied", "AWS authentication requires a valid X-Amz-Date header")
	}
	if skew := v.Clock.Now().Sub(signedAt); skew > maxSkew || skew < -maxSkew {
		return errorf(http.StatusForbidden, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")
	}
	if signedAt.Format("20060102") != scope.Date {
		return errorf(http.StatusForbidden, "SignatureDoesNotMatch", "The credential scope date does not match X-Amz-Date")
	}
	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	if payloadHash == "" {
		if scope.Service == "s3" {
			return errorf(http.StatusBadRequest, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
		}
		h, err := hashBody(r)
		if err != nil {
			return errorf(http.StatusBadRequest, "IncompleteBody", "reading the request body: %v", err)
		}
		payloadHash = h
	}

	req, e := canonicalClone(r, fields.signedHeaders, false)
	if e != nil {
		return e
	}
	creds := aws.Credentials{AccessKeyID: scope.AccessKey, SecretAccessKey: secret}
	err = v.signer.SignHTTP(r.Context(), creds, req, payloadHash, scope.Service, scope.Region, signedAt, signerOptions(scope.Service))
	if err != nil {
		return errorf(http.StatusInternalServerError, "InternalError", "signing: %v", err)
	}
	got, _ := parseAuthorization(req.Header.Get("Authorization"))
	if got.signedHeaders != fields.signedHeaders || !equal(got.signature, fields.signature) {
		return errorf(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	}
	return nil
}

func (v *Verifier) verifyPresigned(r *http.Request, scope Scope, secret string) *Error {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != algorithm {
		return errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Amz-Algorithm only supports \"%s\"", algorithm)
	}
	signedAt, err := time.Parse(timeFormat, q.Get("X-Amz-Date"))
	if err != nil {
		return errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
	}
	expires, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || expires < 1 {
		return errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number greater than 0")
	}
	if time.Duration(expires)*time.Second > maxPresignExpires {
		return errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	now := v.Clock.Now()
	if signedAt.Sub(now) > maxSkew {
		return errorf(http.StatusForbidden, "AccessDenied", "Request is not valid yet")
	}
	// S3 checks expiry when the request starts; a long PUT may finish later.
	if now.After(signedAt.Add(time.Duration(expires) * time.Second)) {
		return errorf(http.StatusForbidden, "AccessDenied", "Request has expired")
	}
	if signedAt.Format("20060102") != scope.Date {
		return errorf(http.StatusForbidden, "SignatureDoesNotMatch", "The credential scope date does not match X-Amz-Date")
	}
	signedHeaders := q.Get("X-Amz-SignedHeaders")
	req, e := canonicalClone(r, signedHeaders, true)
	if e != nil {
		return e
	}
	creds := aws.Credentials{AccessKeyID: scope.AccessKey, SecretAccessKey: secret, SessionToken: q.Get("X-Amz-Security-Token")}
	payloadHash := unsignedPayload
	if scope.Service != "s3" {
		payloadHash = emptySHA256
	}
	signedURL, _, err := v.signer.PresignHTTP(r.Context(), creds, req, payloadHash, scope.Service, scope.Region, signedAt, signerOptions(scope.Service), func(o *v4.SignerOptions) {
		o.DisableHeaderHoisting = true
	})
	if err != nil {
		return errorf(http.StatusInternalServerError, "InternalError", "presigning: %v", err)
	}
	u, err := url.Parse(signedURL)
	if err != nil {
		return errorf(http.StatusInternalServerError, "InternalError", "presigned URL: %v", err)
	}
	gq := u.Query()
	if gq.Get("X-Amz-SignedHeaders") != signedHeaders || !equal(gq.Get("X-Amz-Signature"), q.Get("X-Amz-Signature")) {
		return errorf(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	}
	return nil
}

func signerOptions(service string) func(*v4.SignerOptions) {
	return func(o *v4.SignerOptions) {
		// S3 signs the path as sent; other services escape it once more.
		o.DisableURIPathEscaping = service == "s3"
	}
}

// canonicalClone builds the request the client signed: same method, path as
// sent, query (without the signature for a presigned URL), and only the
// headers named in signedHeaders, with Content-Length taken from the request
// actually received.
func canonicalClone(r *http.Request, signedHeaders string, presigned bool) (*http.Request, *Error) {
	path := r.URL.EscapedPath()
	if r.RequestURI != "" && !strings.HasPrefix(r.RequestURI, "http") {
		path, _, _ = strings.Cut(r.RequestURI, "?")
	}
	q := r.URL.Query()
	if presigned {
		for _, k := range []string{"X-Amz-Signature", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Security-Token"} {
			q.Del(k)
		}
	}
	u := &url.URL{Scheme: "http", Host: r.Host, Opaque: "//" + r.Host + path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, "http://"+r.Host+"/", nil)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "InvalidRequest", "bad request: %v", err)
	}
	req.URL = u
	req.Host = r.Host
	req.Header = http.Header{}
	for _, name := range strings.Split(signedHeaders, ";") {
		switch name {
		case "host":
		case "content-length":
			req.ContentLength = r.ContentLength
			if r.ContentLength < 0 {
				return nil, errorf(http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
			}
		default:
			vals, ok := r.Header[http.CanonicalHeaderKey(name)]
			if !ok {
				if name == "transfer-encoding" && len(r.TransferEncoding) > 0 {
					vals = r.TransferEncoding
				} else {
					return nil, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "A signed header is missing from the request: %s", name)
				}
			}
			req.Header[http.CanonicalHeaderKey(name)] = vals
		}
	}
	if !presigned {
		// The signer sets these itself from its arguments.
		req.Header.Del("Authorization")
		req.Header.Del("X-Amz-Date")
	}
	return req, nil
}

// hashBody returns the hex SHA-256 of r's body and replaces the body with an
// in-memory copy.
func hashBody(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return emptySHA256, nil
	}
	b, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return "", err
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
