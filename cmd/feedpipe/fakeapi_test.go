package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// fakeToken is the token of site shop on the fake API.
const fakeToken = "fp_goodtoken"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeAPI is an httptest fake of the Upload API (site shop) plus a fake
// presigned PUT target that checks the signed headers like S3 would.
type fakeAPI struct {
	t   *testing.T
	api *httptest.Server
	s3  *httptest.Server

	mu      sync.Mutex
	uploads map[string]*fakeUpload
	order   []string
	posts   int
	puts    int
}

type fakeUpload struct {
	rec   uploads.Record
	body  []byte
	polls int
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, uploads: map[string]*fakeUpload{}}
	f.s3 = httptest.NewServer(http.HandlerFunc(f.put))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sites/{site}/uploads", f.auth(f.create))
	mux.HandleFunc("GET /v1/sites/{site}/uploads", f.auth(f.list))
	mux.HandleFunc("GET /v1/sites/{site}/uploads/{id}", f.auth(f.get))
	mux.HandleFunc("GET /v1/sites/{site}/catalog", f.auth(f.catalog))
	mux.HandleFunc("GET /v1/sites/{site}/catalog/products/{id...}", f.auth(f.product))
	f.api = httptest.NewServer(mux)
	t.Cleanup(f.api.Close)
	t.Cleanup(f.s3.Close)
	return f
}

// args are the flags every Upload API command needs against the fake.
func (f *fakeAPI) args(extra ...string) []string {
	return append(extra, "--api", f.api.URL, "--token", fakeToken, "--site", "shop")
}

func apiErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeOK(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case !ok || token == "" || token == "unauth":
			apiErr(w, http.StatusUnauthorized, "unauthorized", "want Authorization: Bearer <site token>")
		case token != fakeToken || r.PathValue("site") != "shop":
			apiErr(w, http.StatusForbidden, "forbidden", "the token is not valid for site "+r.PathValue("site"))
		default:
			next(w, r)
		}
	}
}

func (f *fakeAPI) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Mode            string `json:"mode"`
		ContentLength   int64  `json:"contentLength"`
		SHA256          string `json:"sha256"`
		ContentEncoding string `json:"contentEncoding"`
		ExpiresIn       int64  `json:"expiresIn"`
		AllowEmpty      bool   `json:"allowEmpty"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		apiErr(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if r.Header.Get("Idempotency-Key") == "" {
		f.t.Error("POST without Idempotency-Key")
	}
	if b, err := hex.DecodeString(in.SHA256); err != nil || len(b) != 32 {
		apiErr(w, http.StatusBadRequest, "bad_request", "sha256 must be 64 hex digits")
		return
	}
	if in.ContentLength > 50<<20 {
		apiErr(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("contentLength %d is over the site's limit of %d bytes", in.ContentLength, 50<<20))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts++
	seq := uint64(len(f.order) + 1)
	id := fmt.Sprintf("%020d-fake%d", seq, seq)
	sum, _ := hex.DecodeString(in.SHA256)
	f.uploads[id] = &fakeUpload{rec: uploads.Record{
		Site: "shop", Sequence: seq, UploadID: id, Mode: uploads.Mode(in.Mode), ContentLength: in.ContentLength,
		SHA256: in.SHA256, ContentEncoding: in.ContentEncoding, AllowEmpty: in.AllowEmpty,
		ExpiresAt: t0.Add(time.Duration(in.ExpiresIn) * time.Second), State: uploads.AwaitingUpload,
		Timestamps: map[uploads.State]time.Time{uploads.AwaitingUpload: t0},
	}}
	f.order = append(f.order, id)
	writeOK(w, http.StatusCreated, map[string]any{
		"uploadId": id, "sequence": seq, "method": "PUT", "expiresAt": t0.Add(time.Duration(in.ExpiresIn) * time.Second),
		"url": f.s3.URL + "/incoming/shop/" + id + "?X-Amz-Signature=fake",
		"headers": map[string]string{
			"Content-Length":        strconv.FormatInt(in.ContentLength, 10),
			"If-None-Match":         "*",
			"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(sum),
		},
	})
}

// put is the presigned PUT target: it checks the signed headers.
func (f *fakeAPI) put(w http.ResponseWriter, r *http.Request) {
	s3err := func(status int, code, msg string) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
	}
	id := strings.TrimPrefix(r.URL.Path, "/incoming/shop/")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	u := f.uploads[id]
	if r.Method != http.MethodPut || u == nil || r.URL.Query().Get("X-Amz-Signature") != "fake" {
		s3err(http.StatusForbidden, "SignatureDoesNotMatch", "bad request")
		return
	}
	body, _ := io.ReadAll(r.Body)
	sum := sha256.Sum256(body)
	switch {
	case u.body != nil:
		s3err(http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
	case r.ContentLength != u.rec.ContentLength || int64(len(body)) != u.rec.ContentLength:
		s3err(http.StatusForbidden, "SignatureDoesNotMatch", "Content-Length is not the signed one")
	case r.Header.Get("If-None-Match") != "*":
		s3err(http.StatusForbidden, "SignatureDoesNotMatch", "If-None-Match is signed")
	case r.Header.Get("X-Amz-Checksum-Sha256") != base64.StdEncoding.EncodeToString(sum[:]):
		s3err(http.StatusBadRequest, "BadDigest", "The SHA256 you specified did not match the calculated checksum.")
	default:
		u.body = body
		w.WriteHeader(http.StatusOK)
	}
}

// advance moves an upload along: received, importing, then its result.
func (f *fakeAPI) advance(u *fakeUpload) {
	if u.body == nil {
		return
	}
	u.polls++
	r := &u.rec
	switch {
	case u.polls == 1:
		r.State = uploads.Received
	case u.polls == 2:
		r.State = uploads.Importing
	case r.State == uploads.Importing:
		f.apply(u)
	}
}

// apply imports the body like the importer would: counts and line errors.
func (f *fakeAPI) apply(u *fakeUpload) {
	var rd io.Reader = bytes.NewReader(u.body)
	switch u.rec.ContentEncoding {
	case "gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = zr
	case "zstd":
		zr, err := zstd.NewReader(rd)
		if err != nil {
			f.t.Fatal(err)
		}
		defer zr.Close()
		rd = zr
	}
	c := uploads.Counts{}
	var errs []uploads.LineError
	sc := bufio.NewScanner(rd)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		c.Lines++
		var op struct{ Op, ID string }
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			c.Rejected++
			errs = append(errs, uploads.LineError{Line: int(c.Lines), Code: "bad_json", Reason: "not a JSON object"})
			continue
		}
		switch {
		case op.ID == "":
			c.Rejected++
			errs = append(errs, uploads.LineError{Line: int(c.Lines), Code: "missing_id", Reason: "the line has no id"})
		case op.Op == "upsert":
			c.Upserted++
		case op.Op == "delete":
			c.Deleted++
		default:
			c.Rejected++
			errs = append(errs, uploads.LineError{Line: int(c.Lines), Code: "unknown_op", Reason: fmt.Sprintf("unknown op %q", op.Op)})
		}
	}
	r := &u.rec
	r.Counts, r.Errors = &c, errs
	if c.Rejected*100 > c.Lines {
		r.State, r.Reason = uploads.Rejected, "error_budget"
		r.Message = fmt.Sprintf("%d of %d lines are invalid (budget 1%%)", c.Rejected, c.Lines)
		r.Timestamps[uploads.Rejected] = t0.Add(time.Minute)
		return
	}
	r.State, r.CatalogVersion = uploads.Imported, r.Sequence+1
	r.Timestamps[uploads.Imported] = t0.Add(time.Minute)
}

func (f *fakeAPI) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.uploads[r.PathValue("id")]
	if u == nil {
		apiErr(w, http.StatusNotFound, "not_found", fmt.Sprintf("no upload %q", r.PathValue("id")))
		return
	}
	f.advance(u)
	writeOK(w, http.StatusOK, u.rec)
}

func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("after") != "1" || r.URL.Query().Get("limit") != "2" {
		apiErr(w, http.StatusBadRequest, "bad_request", "the test lists with --after 1 --limit 2")
		return
	}
	recs := []uploads.Record{
		{Site: "shop", Sequence: 2, UploadID: "00000000000000000002-aaaa", Mode: uploads.Delta, ContentLength: 120, ContentEncoding: "gzip",
			State: uploads.Imported, Counts: &uploads.Counts{Lines: 10, Upserted: 9, Deleted: 1}, CatalogVersion: 2,
			Timestamps: map[uploads.State]time.Time{uploads.AwaitingUpload: t0, uploads.Imported: t0.Add(time.Minute)}},
		{Site: "shop", Sequence: 3, UploadID: "00000000000000000003-bbbb", Mode: uploads.Full, ContentLength: 5000, ContentEncoding: "identity",
			State: uploads.Rejected, Reason: "implausible_full", Counts: &uploads.Counts{Lines: 3, Upserted: 3},
			Timestamps: map[uploads.State]time.Time{uploads.AwaitingUpload: t0.Add(time.Hour), uploads.Rejected: t0.Add(61 * time.Minute)}},
	}
	writeOK(w, http.StatusOK, map[string]any{"uploads": recs, "next": "3"})
}

func (f *fakeAPI) catalog(w http.ResponseWriter, r *http.Request) {
	writeOK(w, http.StatusOK, map[string]any{"site": "shop", "version": 7, "appliedSeq": 12, "products": 1234,
		"waitingSequences": []uint64{14, 15}, "halted": true, "haltedReason": "import of sequence 13 failed 10 times: SlowDown"})
}

func (f *fakeAPI) product(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := layout.ValidateProductID(id); err != nil {
		apiErr(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if id != "shoes/red 42" {
		apiErr(w, http.StatusNotFound, "not_found", fmt.Sprintf("no product %q in the catalog of shop", id))
		return
	}
	writeOK(w, http.StatusOK, map[string]any{"id": id, "product": map[string]any{"title": "Red shoes", "price": 42.5, "sizes": []int{40, 41, 42}}})
}
