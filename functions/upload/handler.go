package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/time/rate"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/messages"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// Limits of the API.
const (
	defaultExpiresIn = 15 * time.Minute
	maxExpiresIn     = time.Hour
	maxListLimit     = 1000
	defaultListLimit = 100
	maxBodyBytes     = 64 << 10
)

// objectAPI is what the handler needs of S3.
type objectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// presigner presigns the PUT of an upload at a given time.
type presigner interface {
	PresignPut(ctx context.Context, in *s3.PutObjectInput, expires time.Duration, signedAt time.Time) (url string, headers http.Header, err error)
}

// sender sends import queue messages.
type sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// catalogView is what the API shows of a site's catalog.
type catalogView interface {
	// Summary returns the newest version, its applied sequence and product
	// count (all zero for a site without a catalog).
	Summary(ctx context.Context, site string) (version, appliedSeq uint64, products int64, err error)
	Product(ctx context.Context, site, id string) ([]byte, bool, error)
}

// Handler serves the Upload API (HTTP API, payload format 2.0).
type Handler struct {
	S3             objectAPI
	SQS            sender
	Presign        presigner
	Uploads        *uploads.Store
	Catalog        catalogView
	IncomingBucket string
	StoreBucket    string
	ImportQueueURL string
	Logger         *slog.Logger
	// Metrics receives the function's EMF metrics (none when nil).
	Metrics *metrics.Emitter

	limitersMu sync.Mutex
	limiters   map[string]*rate.Limiter
}

// apiError is an error answered as {"error":{"code","message"}}.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter int
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// Handle routes one request. Errors the client can act on are answered with
// their status; anything else is logged and answered 500 without detail.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	now := requestTime(req)
	siteName := req.PathParameters["site"]
	log := h.Logger.With("site", siteName, "route", req.RouteKey, "requestId", req.RequestContext.RequestID)
	status, body, err := h.route(ctx, req, siteName, now, log)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			log.Error("request failed", "err", err)
			ae = errorf(http.StatusInternalServerError, "internal", "the request failed; it is safe to retry")
		}
		resp := jsonResponse(ae.status, map[string]any{"error": map[string]string{"code": ae.code, "message": ae.message}})
		if ae.retryAfter > 0 {
			resp.Headers["Retry-After"] = strconv.Itoa(ae.retryAfter)
		}
		return resp, nil
	}
	return jsonResponse(status, body), nil
}

// requestTime is the time API Gateway received the request: the functions
// take "now" from their events, so the runner's clock governs them locally.
func requestTime(req events.APIGatewayV2HTTPRequest) time.Time {
	if ms := req.RequestContext.TimeEpoch; ms > 0 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Now().UTC()
}

func jsonResponse(status int, body any) events.APIGatewayV2HTTPResponse {
	b, _ := json.Marshal(body)
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(b)}
}

func (h *Handler) route(ctx context.Context, req events.APIGatewayV2HTTPRequest, siteName string, now time.Time, log *slog.Logger) (int, any, error) {
	if err := layout.ValidateSite(siteName); err != nil {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no such site")
	}
	cfg, err := h.authorize(ctx, req, siteName)
	if err != nil {
		return 0, nil, err
	}
	switch req.RouteKey {
	case "POST /v1/sites/{site}/uploads":
		return h.create(ctx, req, cfg, now, log)
	case "GET /v1/sites/{site}/uploads":
		return h.list(ctx, req, siteName)
	case "GET /v1/sites/{site}/uploads/{uploadId}":
		return h.get(ctx, siteName, req.PathParameters["uploadId"])
	case "DELETE /v1/sites/{site}/uploads/{uploadId}":
		return h.cancel(ctx, siteName, req.PathParameters["uploadId"], now, log)
	case "GET /v1/sites/{site}/catalog":
		return h.catalogSummary(ctx, siteName)
	case "GET /v1/sites/{site}/catalog/products/{id+}":
		return h.product(ctx, siteName, req.PathParameters["id"])
	default:
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no route %s", req.RouteKey)
	}
}

// authorize checks the bearer token against the site's active tokens. An
// unknown site and a wrong token get the same answer, so tokens cannot be
// used to discover sites.
func (h *Handler) authorize(ctx context.Context, req events.APIGatewayV2HTTPRequest, siteName string) (site.Config, error) {
	token, err := apiauth.BearerToken(req.Headers["authorization"])
	if err != nil {
		return site.Config{}, errorf(http.StatusUnauthorized, "unauthorized", "%v", err)
	}
	cfg, err := site.Load(ctx, h.S3, h.StoreBucket, siteName)
	if errors.Is(err, site.ErrNotFound) {
		return site.Config{}, errorf(http.StatusForbidden, "forbidden", "the token is not valid for site %s", siteName)
	}
	if err != nil {
		return site.Config{}, err
	}
	if !apiauth.Verify(token, cfg.TokenHashes) {
		return site.Config{}, errorf(http.StatusForbidden, "forbidden", "the token is not valid for site %s", siteName)
	}
	return cfg.Limits(), nil
}

// createRequest is the body of POST /v1/sites/{site}/uploads.
type createRequest struct {
	Mode               string   `json:"mode"`
	ContentLength      *int64   `json:"contentLength"`
	SHA256             string   `json:"sha256"`
	ContentEncoding    string   `json:"contentEncoding"`
	ExpiresIn          *int64   `json:"expiresIn"`
	AllowEmpty         bool     `json:"allowEmpty"`
	MaxFullDeleteRatio *float64 `json:"maxFullDeleteRatio"`
}

// createResponse is the answer to a created upload.
type createResponse struct {
	UploadID  string            `json:"uploadId"`
	Sequence  uint64            `json:"sequence"`
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

// parseCreate decodes and checks a create request; every problem is a 400
// (or 413 for a size over the site's limit).
func parseCreate(body []byte, cfg site.Config) (createRequest, *apiError) {
	var in createRequest
	if len(body) > maxBodyBytes {
		return in, errorf(http.StatusBadRequest, "bad_request", "the request body is over %d bytes", maxBodyBytes)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, errorf(http.StatusBadRequest, "bad_request", "the body must be a JSON object with mode and contentLength: %v", err)
	}
	if dec.More() {
		return in, errorf(http.StatusBadRequest, "bad_request", "the body has data after the JSON object")
	}
	var problems []string
	if in.Mode != string(uploads.Delta) && in.Mode != string(uploads.Full) {
		problems = append(problems, `mode must be "delta" or "full"`)
	}
	if in.ContentLength == nil || *in.ContentLength < 1 {
		problems = append(problems, "contentLength must be the exact size of the file in bytes, at least 1")
	}
	if in.SHA256 != "" {
		if b, err := hex.DecodeString(in.SHA256); err != nil || len(b) != 32 {
			problems = append(problems, "sha256 must be 64 hex digits")
		}
	}
	if _, err := layout.ParseEncoding(in.ContentEncoding); err != nil {
		problems = append(problems, "contentEncoding must be identity, gzip or zstd")
	}
	if in.ExpiresIn != nil && (*in.ExpiresIn < 1 || *in.ExpiresIn > int64(maxExpiresIn/time.Second)) {
		problems = append(problems, "expiresIn must be 1-3600 seconds")
	}
	if in.MaxFullDeleteRatio != nil && (*in.MaxFullDeleteRatio < 0 || *in.MaxFullDeleteRatio > 1) {
		problems = append(problems, "maxFullDeleteRatio must be 0-1")
	}
	if (in.AllowEmpty || in.MaxFullDeleteRatio != nil) && in.Mode != string(uploads.Full) {
		problems = append(problems, "allowEmpty and maxFullDeleteRatio apply to full uploads only")
	}
	if len(problems) > 0 {
		return in, errorf(http.StatusBadRequest, "bad_request", "%s", strings.Join(problems, "; "))
	}
	if *in.ContentLength > cfg.MaxContentLength {
		return in, errorf(http.StatusRequestEntityTooLarge, "too_large", "contentLength %d is over the site's limit of %d bytes", *in.ContentLength, cfg.MaxContentLength)
	}
	return in, nil
}

func requestBody(req events.APIGatewayV2HTTPRequest) ([]byte, error) {
	if req.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(req.Body)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "bad_request", "the body is not valid base64")
		}
		return b, nil
	}
	return []byte(req.Body), nil
}

func (h *Handler) create(ctx context.Context, req events.APIGatewayV2HTTPRequest, cfg site.Config, now time.Time, log *slog.Logger) (int, any, error) {
	body, err := requestBody(req)
	if err != nil {
		return 0, nil, err
	}
	in, apiErr := parseCreate(body, cfg)
	if apiErr != nil {
		return 0, nil, apiErr
	}
	idemKey := req.Headers["idempotency-key"]
	if len(idemKey) > 255 {
		return 0, nil, errorf(http.StatusBadRequest, "bad_request", "Idempotency-Key is over 255 characters")
	}
	fingerprint := in.fingerprint()
	if idemKey != "" {
		if prev, ok, err := h.idempotent(ctx, cfg.Site, idemKey); err != nil {
			return 0, nil, err
		} else if ok {
			return prev.replay(fingerprint)
		}
	}
	if !h.allow(cfg) {
		return 0, nil, &apiError{status: http.StatusTooManyRequests, code: "rate_limited", retryAfter: 1,
			message: fmt.Sprintf("site %s may create %d uploads per minute", cfg.Site, cfg.RatePerMinute)}
	}
	if n, err := h.outstanding(ctx, cfg.Site); err != nil {
		return 0, nil, err
	} else if n >= cfg.MaxOutstanding {
		return 0, nil, &apiError{status: http.StatusTooManyRequests, code: "too_many_outstanding", retryAfter: 30,
			message: fmt.Sprintf("site %s has %d uploads awaiting their PUT (limit %d): upload or cancel them first", cfg.Site, n, cfg.MaxOutstanding)}
	}
	expiresIn := defaultExpiresIn
	if in.ExpiresIn != nil {
		expiresIn = time.Duration(*in.ExpiresIn) * time.Second
	}
	enc, _ := layout.ParseEncoding(in.ContentEncoding)
	rec := uploads.Record{
		Site: cfg.Site, Mode: uploads.Mode(in.Mode), ContentLength: *in.ContentLength, SHA256: strings.ToLower(in.SHA256),
		ContentEncoding: string(enc), AllowEmpty: in.AllowEmpty, MaxFullDeleteRatio: in.MaxFullDeleteRatio,
		ExpiresAt: now.Add(expiresIn), State: uploads.AwaitingUpload,
		Timestamps: map[uploads.State]time.Time{uploads.AwaitingUpload: now},
	}
	rec, err = h.Uploads.Allocate(ctx, rec, layout.NewUploadID)
	if err != nil {
		return 0, nil, err
	}
	log = log.With("sequence", rec.Sequence, "uploadId", rec.UploadID)
	// The resolver's work list: written after allocation, so a crash here
	// leaves at worst an upload that expires without being planned; the
	// resolver re-checks every site it sees.
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.PendingKey(cfg.Site)), Body: strings.NewReader("{}")}); err != nil {
		return 0, nil, fmt.Errorf("mark %s pending: %w", cfg.Site, err)
	}
	resp, err := h.presign(ctx, rec, expiresIn, now)
	if err != nil {
		return 0, nil, err
	}
	if idemKey != "" {
		winner, err := h.remember(ctx, cfg.Site, idemKey, idempotencyRecord{Request: fingerprint, Response: resp})
		if err != nil {
			return 0, nil, err
		}
		if winner.Response.UploadID != resp.UploadID {
			// A concurrent request with the same key won; this allocation is
			// cancelled so the sequence resolves at once.
			h.cancelLoser(ctx, rec, now, log)
			return winner.replay(fingerprint)
		}
	}
	log.Info("upload created", "mode", rec.Mode, "contentLength", rec.ContentLength, "expiresAt", rec.ExpiresAt)
	h.Metrics.Emit(map[string]string{metrics.DimSite: rec.Site}, metrics.CountOf(metrics.UploadsCreated, 1),
		metrics.Value{Name: metrics.BytesDeclared, Unit: metrics.Bytes, Value: float64(rec.ContentLength)})
	return http.StatusCreated, resp, nil
}

func (h *Handler) presign(ctx context.Context, rec uploads.Record, expiresIn time.Duration, now time.Time) (createResponse, error) {
	key := layout.Incoming{Site: rec.Site, Sequence: rec.Sequence, UploadID: rec.UploadID}.Key()
	in := &s3.PutObjectInput{
		Bucket: aws.String(h.IncomingBucket), Key: aws.String(key),
		ContentLength: aws.Int64(rec.ContentLength), IfNoneMatch: aws.String("*"),
	}
	if rec.SHA256 != "" {
		sum, _ := hex.DecodeString(rec.SHA256)
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sum))
	}
	url, signed, err := h.Presign.PresignPut(ctx, in, expiresIn, now)
	if err != nil {
		return createResponse{}, fmt.Errorf("presign %s/%s: %w", h.IncomingBucket, key, err)
	}
	headers := map[string]string{}
	for k, v := range signed {
		if strings.EqualFold(k, "Host") {
			continue
		}
		headers[k] = strings.Join(v, ",")
	}
	return createResponse{UploadID: rec.UploadID, Sequence: rec.Sequence, URL: url, Method: http.MethodPut, Headers: headers, ExpiresAt: rec.ExpiresAt}, nil
}

// idempotencyRecord is what a POST with an Idempotency-Key stored: the
// fingerprint of its request and the response it got.
type idempotencyRecord struct {
	Request  string         `json:"request"`
	Response createResponse `json:"response"`
}

// replay answers a POST whose Idempotency-Key is taken: the stored response
// when the request is the same, 422 when the key is reused for another one
// (the IETF Idempotency-Key draft's answer), so a client bug that reuses
// keys fails loudly instead of silently dropping an upload.
func (r idempotencyRecord) replay(fingerprint string) (int, any, error) {
	if r.Request != fingerprint {
		return 0, nil, errorf(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"the Idempotency-Key was used for another request (upload %s, sequence %d): use a new key for a new upload", r.Response.UploadID, r.Response.Sequence)
	}
	return http.StatusCreated, r.Response, nil
}

// fingerprint identifies a create request by its meaning, not its bytes:
// the same fields in another order or with other spacing are the same
// request.
func (in createRequest) fingerprint() string {
	b, _ := json.Marshal(in)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// idempotent returns what a POST with the same Idempotency-Key stored.
func (h *Handler) idempotent(ctx context.Context, siteName, key string) (idempotencyRecord, bool, error) {
	out, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.IdempotencyKey(siteName, key))})
	if uploads.IsNotFound(err) {
		return idempotencyRecord{}, false, nil
	}
	if err != nil {
		return idempotencyRecord{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	defer out.Body.Close()
	var prev idempotencyRecord
	if err := json.NewDecoder(out.Body).Decode(&prev); err != nil {
		return idempotencyRecord{}, false, fmt.Errorf("decode idempotency key: %w", err)
	}
	return prev, true, nil
}

// remember stores rec under the Idempotency-Key unless a concurrent request
// stored one first, and returns the one that counts.
func (h *Handler) remember(ctx context.Context, siteName, key string, rec idempotencyRecord) (idempotencyRecord, error) {
	b, _ := json.Marshal(rec)
	_, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.StoreBucket), Key: aws.String(layout.IdempotencyKey(siteName, key)),
		Body: bytes.NewReader(b), IfNoneMatch: aws.String("*")})
	if uploads.IsPreconditionFailed(err) {
		prev, ok, err := h.idempotent(ctx, siteName, key)
		if err != nil || !ok {
			return idempotencyRecord{}, fmt.Errorf("idempotency key taken but unreadable: %v", err)
		}
		return prev, nil
	}
	if err != nil {
		return idempotencyRecord{}, fmt.Errorf("write idempotency key: %w", err)
	}
	return rec, nil
}

func (h *Handler) cancelLoser(ctx context.Context, rec uploads.Record, now time.Time, log *slog.Logger) {
	_, err := h.Uploads.Update(ctx, rec.Site, rec.Sequence, func(r *uploads.Record) error {
		if r.State != uploads.AwaitingUpload {
			return uploads.ErrUnchanged
		}
		r.Message = "a concurrent request with the same Idempotency-Key created the upload"
		return r.Move(uploads.Cancelled, now)
	})
	if err != nil {
		log.Warn("could not cancel a duplicate allocation; it will expire", "err", err)
		return
	}
	h.wake(ctx, rec.Site, "cancelled", log)
}

// allow applies the per-site creation rate. The limiter lives in this
// function instance: with several instances the effective rate is higher,
// which the maxOutstanding limit bounds.
func (h *Handler) allow(cfg site.Config) bool {
	h.limitersMu.Lock()
	defer h.limitersMu.Unlock()
	if h.limiters == nil {
		h.limiters = map[string]*rate.Limiter{}
	}
	l := h.limiters[cfg.Site]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(float64(cfg.RatePerMinute)/60), max(1, cfg.RatePerMinute/6))
		h.limiters[cfg.Site] = l
	}
	return l.Allow()
}

// outstanding counts the site's uploads still awaiting their PUT, among the
// sequences after the catalog's applied one.
func (h *Handler) outstanding(ctx context.Context, siteName string) (int, error) {
	_, applied, _, err := h.Catalog.Summary(ctx, siteName)
	if err != nil {
		return 0, err
	}
	n := 0
	err = h.eachAfter(ctx, siteName, applied, func(r uploads.Record) {
		if r.State == uploads.AwaitingUpload {
			n++
		}
	})
	return n, err
}

// eachAfter calls fn for every record of the site after sequence after, in
// order: the sequences the catalog has not applied yet.
func (h *Handler) eachAfter(ctx context.Context, siteName string, after uint64, fn func(uploads.Record)) error {
	for {
		recs, more, err := h.Uploads.List(ctx, siteName, after, maxListLimit)
		if err != nil {
			return err
		}
		for _, r := range recs {
			fn(r)
			after = r.Sequence
		}
		if !more {
			return nil
		}
	}
}

// status is the record as the API shows it.
type status struct {
	uploads.Record
	SiteHalted       bool   `json:"siteHalted,omitempty"`
	SiteHaltedReason string `json:"siteHaltedReason,omitempty"`
}

// show reconciles a record with the catalog (a sequence at or below the
// applied one is never shown as pending: it is imported, in a version at
// least as new as version) and the site's state.
func (h *Handler) show(rec uploads.Record, version, applied uint64, state site.State) status {
	if rec.Sequence <= applied && (rec.State == uploads.Queued || rec.State == uploads.Importing) {
		rec.State = uploads.Imported
		if rec.CatalogVersion == 0 {
			rec.CatalogVersion = version
		}
	}
	return status{Record: rec, SiteHalted: state.Halted, SiteHaltedReason: state.Reason}
}

func (h *Handler) get(ctx context.Context, siteName, uploadID string) (int, any, error) {
	seq, err := layout.ParseUploadID(uploadID)
	if err != nil {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no upload %q", uploadID)
	}
	rec, _, err := h.Uploads.Get(ctx, siteName, seq)
	if errors.Is(err, uploads.ErrNotFound) || (err == nil && rec.UploadID != uploadID) {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no upload %q", uploadID)
	}
	if err != nil {
		return 0, nil, err
	}
	version, applied, _, err := h.Catalog.Summary(ctx, siteName)
	if err != nil {
		return 0, nil, err
	}
	state, err := site.LoadState(ctx, h.S3, h.StoreBucket, siteName)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, h.show(rec, version, applied, state), nil
}

func (h *Handler) list(ctx context.Context, req events.APIGatewayV2HTTPRequest, siteName string) (int, any, error) {
	var after uint64
	limit := defaultListLimit
	if v := req.QueryStringParameters["after"]; v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "bad_request", "after must be a sequence number")
		}
		after = n
	}
	if v := req.QueryStringParameters["limit"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return 0, nil, errorf(http.StatusBadRequest, "bad_request", "limit must be 1-%d", maxListLimit)
		}
		limit = n
	}
	recs, more, err := h.Uploads.List(ctx, siteName, after, limit)
	if err != nil {
		return 0, nil, err
	}
	version, applied, _, err := h.Catalog.Summary(ctx, siteName)
	if err != nil {
		return 0, nil, err
	}
	state, err := site.LoadState(ctx, h.S3, h.StoreBucket, siteName)
	if err != nil {
		return 0, nil, err
	}
	out := struct {
		Uploads []status `json:"uploads"`
		Next    string   `json:"next,omitempty"`
	}{Uploads: []status{}}
	for _, r := range recs {
		out.Uploads = append(out.Uploads, h.show(r, version, applied, state))
	}
	if more && len(recs) > 0 {
		out.Next = strconv.FormatUint(recs[len(recs)-1].Sequence, 10)
	}
	return http.StatusOK, out, nil
}

func (h *Handler) cancel(ctx context.Context, siteName, uploadID string, now time.Time, log *slog.Logger) (int, any, error) {
	seq, err := layout.ParseUploadID(uploadID)
	if err != nil {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no upload %q", uploadID)
	}
	var conflict uploads.State
	rec, err := h.Uploads.Update(ctx, siteName, seq, func(r *uploads.Record) error {
		if r.UploadID != uploadID {
			return errorf(http.StatusNotFound, "not_found", "no upload %q", uploadID)
		}
		if r.State == uploads.Cancelled {
			return uploads.ErrUnchanged
		}
		if r.State != uploads.AwaitingUpload {
			conflict = r.State
			return uploads.ErrUnchanged
		}
		return r.Move(uploads.Cancelled, now)
	})
	if errors.Is(err, uploads.ErrNotFound) {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no upload %q", uploadID)
	}
	if err != nil {
		return 0, nil, err
	}
	if conflict != "" {
		return 0, nil, errorf(http.StatusConflict, "conflict", "upload %s is %s; only an upload awaiting its PUT can be cancelled", uploadID, conflict)
	}
	h.wake(ctx, siteName, "cancelled", log.With("sequence", seq, "uploadId", uploadID))
	return http.StatusOK, status{Record: rec}, nil
}

// wake asks the importer to look at the site again. A failed wake is logged:
// the next delta or the resolver's next run wakes the site too.
func (h *Handler) wake(ctx context.Context, siteName, reason string, log *slog.Logger) {
	if err := messages.Send(ctx, h.SQS, h.ImportQueueURL, messages.Import{Kind: messages.KindWake, Site: siteName, Reason: reason}); err != nil {
		log.Warn("wake not sent", "err", err)
	}
}

func (h *Handler) catalogSummary(ctx context.Context, siteName string) (int, any, error) {
	version, applied, products, err := h.Catalog.Summary(ctx, siteName)
	if err != nil {
		return 0, nil, err
	}
	state, err := site.LoadState(ctx, h.S3, h.StoreBucket, siteName)
	if err != nil {
		return 0, nil, err
	}
	waiting := []uint64{}
	err = h.eachAfter(ctx, siteName, applied, func(r uploads.Record) {
		switch r.State {
		case uploads.Received, uploads.Queued, uploads.Importing:
			waiting = append(waiting, r.Sequence)
		}
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{
		"site": siteName, "version": version, "appliedSeq": applied, "products": products,
		"waitingSequences": waiting, "halted": state.Halted, "haltedReason": state.Reason,
	}, nil
}

func (h *Handler) product(ctx context.Context, siteName, id string) (int, any, error) {
	if err := layout.ValidateProductID(id); err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "bad_request", "%v", err)
	}
	p, ok, err := h.Catalog.Product(ctx, siteName, id)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no product %q in the catalog of %s", id, siteName)
	}
	return http.StatusOK, map[string]any{"id": id, "product": json.RawMessage(p)}, nil
}
