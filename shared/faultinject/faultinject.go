// Package faultinject fails chosen S3 and SQS calls on their way to an
// endpoint, the way a crashed function would leave them: the call either
// never reached the service, or reached it and its caller never learnt the
// answer. An Injector is an http.Handler put in front of the real endpoint
// (the embedded cloud), so it works for any client, in process or not.
//
// Every call is named by a call site label (service, operation and the kind
// of key or message it touches, see Label). The injector records the labels
// it has seen and the ones it has crashed, so a test can require that every
// call site it reached was crashed at least once.
//
// A crash is answered as a non-retryable client error (HTTP 400, code
// InjectedCrash), so SDK retries do not hide it.
package faultinject

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// Mode says whether a crashed call reaches the service.
type Mode int

const (
	// Before fails the call without forwarding it.
	Before Mode = iota
	// After forwards the call, then fails it: its effect happened.
	After
)

func (m Mode) String() string {
	if m == After {
		return "after"
	}
	return "before"
}

// Code is the error code of an injected crash.
const Code = "InjectedCrash"

// Plan arms one crash: the Nth call (1-based) whose label has the prefix
// Label ("" matches every call) fails in Mode.
type Plan struct {
	Nth   int
	Label string
	Mode  Mode
}

// Injector forwards calls to Next and fails the call its armed Plan picks.
// It is safe for concurrent use.
type Injector struct {
	next http.Handler

	mu      sync.Mutex
	plan    *Plan
	count   int
	fired   string
	seen    map[string]int
	crashed map[string]int
}

// New returns an injector in front of next, with nothing armed.
func New(next http.Handler) *Injector {
	return &Injector{next: next, seen: map[string]int{}, crashed: map[string]int{}}
}

// Arm replaces the armed plan. A plan fires at most once.
func (in *Injector) Arm(p Plan) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.plan, in.count, in.fired = &p, 0, ""
}

// Disarm removes the armed plan and returns the label of the call it
// crashed, or "" when it did not fire.
func (in *Injector) Disarm() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	fired := in.fired
	in.plan, in.count, in.fired = nil, 0, ""
	return fired
}

// Seen returns how often each label was called.
func (in *Injector) Seen() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return maps.Clone(in.seen)
}

// Crashed returns how often each label was crashed.
func (in *Injector) Crashed() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return maps.Clone(in.crashed)
}

// Uncrashed returns the labels seen but never crashed.
func (in *Injector) Uncrashed() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for l := range in.seen {
		if in.crashed[l] == 0 {
			out = append(out, l)
		}
	}
	return out
}

// ServeHTTP forwards the call, or crashes it when the armed plan says so.
func (in *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	label := Label(r)
	in.mu.Lock()
	in.seen[label]++
	crash, mode := false, Before
	if p := in.plan; p != nil && in.fired == "" && strings.HasPrefix(label, p.Label) {
		in.count++
		if in.count == p.Nth {
			crash, mode = true, p.Mode
			in.fired = label
			in.crashed[label]++
		}
	}
	in.mu.Unlock()
	if !crash {
		in.next.ServeHTTP(w, r)
		return
	}
	if mode == After {
		in.next.ServeHTTP(httptest.NewRecorder(), r)
	}
	writeCrash(w, r)
}

func writeCrash(w http.ResponseWriter, r *http.Request) {
	msg := "injected crash at " + Label(r)
	if isSQS(r) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", Code+";Sender")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazon.coral.service#" + Code, "message": msg})
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+Code+`</Code><Message>`+msg+`</Message></Error>`)
}

func isSQS(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.") ||
		strings.Contains(r.Header.Get("Authorization"), "/sqs/aws4_request")
}

// Label names the call site of a request: "sqs <Action>[ <kind>]" for SQS
// (the kind of an import message: delta or wake), "s3 <OP> <key class>"
// for S3 with path-style addressing, where OP is GET, GET-range, HEAD, PUT,
// PUT-if-match, PUT-if-none-match, COPY, DELETE or LIST and the key class
// is the kind of object (see keyClass). A request's body is left intact.
func Label(r *http.Request) string {
	if isSQS(r) {
		action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
		if action == "SendMessage" && r.Body != nil {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var in struct{ MessageBody string }
			var m struct{ Kind string }
			if json.Unmarshal(body, &in) == nil && json.Unmarshal([]byte(in.MessageBody), &m) == nil && m.Kind != "" {
				return "sqs SendMessage " + m.Kind
			}
		}
		return "sqs " + action
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	key := ""
	if i := strings.IndexByte(path, '/'); i >= 0 {
		key, _ = url.PathUnescape(path[i+1:])
	}
	op := r.Method
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && key == "" && q.Get("list-type") == "2":
		return "s3 LIST " + keyClass(q.Get("prefix"))
	case r.Method == http.MethodGet && r.Header.Get("Range") != "":
		op = "GET-range"
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		op = "COPY"
	case r.Method == http.MethodPut && r.Header.Get("If-Match") != "":
		op = "PUT-if-match"
	case r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "":
		op = "PUT-if-none-match"
	}
	return "s3 " + op + " " + keyClass(key)
}

// keyClass is the kind of object a feedpipe key names (see shared/layout).
func keyClass(key string) string {
	parts := strings.Split(key, "/")
	switch parts[0] {
	case "catalog":
		if len(parts) >= 3 {
			switch {
			case parts[2] == "versions":
				return "catalog/versions"
			case parts[2] == "shards":
				return "catalog/shards"
			case strings.HasSuffix(key, "/head.json"):
				return "catalog/head"
			}
		}
		return "catalog"
	case "sites":
		if len(parts) >= 3 {
			return "sites/" + parts[len(parts)-1]
		}
		return "sites"
	case "sync":
		if len(parts) >= 2 {
			return "sync/" + parts[1]
		}
		return "sync"
	case "":
		return "(bucket)"
	}
	return parts[0]
}
