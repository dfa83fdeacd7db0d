package lambdaruntime

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Runtime API headers.
const (
	headerRequestID       = "Lambda-Runtime-Aws-Request-Id"
	headerDeadlineMS      = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID         = "Lambda-Runtime-Trace-Id"
	headerClientContext   = "Lambda-Runtime-Client-Context"
	headerCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	headerErrorType       = "Lambda-Runtime-Function-Error-Type"
	trailerErrorBody      = "Lambda-Runtime-Function-Error-Body"
)

// routes serves the Runtime API of one instance; the listener is the
// instance's own, so every request is from that instance's runtime.
func (inst *instance) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", inst.handleNext)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", inst.handleResponse)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", inst.handleError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", inst.handleInitError)
	return mux
}

// handleNext blocks until an invocation is delivered to this instance.
func (inst *instance) handleNext(w http.ResponseWriter, r *http.Request) {
	fn := inst.fn
	inv, err := fn.next(r.Context().Done(), inst)
	switch {
	case errors.Is(err, errBusy):
		writeAPIError(w, http.StatusForbidden, "InvalidStateTransition",
			"State transition from Running to Ready failed for runtime: the current invocation has no response")
		return
	case err != nil:
		// The instance is out of service and about to be stopped; as on
		// Lambda, its runtime is never told so, it just gets no more work.
		<-r.Context().Done()
		return
	}
	h := w.Header()
	h.Set(headerRequestID, inv.id)
	h.Set(headerDeadlineMS, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set(headerFunctionARN, fn.arn)
	h.Set(headerTraceID, inv.meta.TraceID)
	if inv.meta.ClientContext != "" {
		h.Set(headerClientContext, inv.meta.ClientContext)
	}
	if inv.meta.CognitoIdentity != "" {
		h.Set(headerCognitoIdentity, inv.meta.CognitoIdentity)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(inv.payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload)
}

// handleResponse accepts the result of the current invocation.
func (inst *instance) handleResponse(w http.ResponseWriter, r *http.Request) {
	fn := inst.fn
	id := r.PathValue("id")
	if !fn.isCurrent(inst, id) {
		writeInvalidRequestID(w)
		return
	}
	body, tooLarge, err := readLimited(r.Body, MaxResponsePayload)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequest", "reading the response: "+err.Error())
		return
	}
	var res Result
	switch {
	case r.Trailer.Get(headerErrorType) != "":
		// aws-lambda-go reports a response that failed while streaming
		// in trailers.
		b, _ := base64.StdEncoding.DecodeString(r.Trailer.Get(trailerErrorBody))
		res = errorPosted(b, r.Trailer.Get(headerErrorType))
	case tooLarge:
		res = tooLargeResult()
	default:
		res = Result{Payload: body}
	}
	if !fn.complete(inst, id, res, false) {
		writeInvalidRequestID(w)
		return
	}
	if tooLarge {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", MaxResponsePayload))
		return
	}
	writeAccepted(w)
	inst.maybeSampleMemory()
}

// handleError accepts a function error for the current invocation.
func (inst *instance) handleError(w http.ResponseWriter, r *http.Request) {
	fn := inst.fn
	id := r.PathValue("id")
	if !fn.isCurrent(inst, id) {
		writeInvalidRequestID(w)
		return
	}
	body, tooLarge, err := readLimited(r.Body, MaxResponsePayload)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequest", "reading the error: "+err.Error())
		return
	}
	res := errorPosted(body, r.Header.Get(headerErrorType))
	if tooLarge {
		res = tooLargeResult()
	}
	if !fn.complete(inst, id, res, false) {
		writeInvalidRequestID(w)
		return
	}
	writeAccepted(w)
	inst.maybeSampleMemory()
}

// handleInitError fails the invocation that is waiting for this instance
// and replaces the instance.
func (inst *instance) handleInitError(w http.ResponseWriter, r *http.Request) {
	body, _, err := readLimited(r.Body, MaxResponsePayload)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequest", "reading the error: "+err.Error())
		return
	}
	res := errorPosted(body, r.Header.Get(headerErrorType))
	if !inst.fn.initError(inst, res) {
		writeAPIError(w, http.StatusForbidden, "InvalidStateTransition",
			"State transition from Ready to InitError failed for runtime")
		return
	}
	writeAccepted(w)
	inst.signal(syscall.SIGKILL)
}

// maybeSampleMemory samples the peak RSS after an invocation, at most once a
// second per instance (VmHWM is a high-water mark, so nothing is missed).
func (inst *instance) maybeSampleMemory() {
	now := inst.fn.rt.clock.Now().UnixNano()
	last := inst.lastSample.Load()
	if last != 0 && time.Duration(now-last) < time.Second {
		return
	}
	if inst.lastSample.CompareAndSwap(last, now) {
		inst.fn.sampleMemory(inst)
	}
}

// errorPosted is the Result for an error document a runtime posted: the
// document itself is the payload (as Lambda returns it) and FuncError its
// parsed form, with errorType from the header when the body has none.
func errorPosted(body []byte, headerType string) Result {
	fe := &FunctionError{}
	if json.Valid(body) && json.Unmarshal(body, fe) == nil {
		if fe.ErrorType == "" {
			fe.ErrorType = headerType
		}
	} else {
		fe = &FunctionError{ErrorType: headerType, ErrorMessage: string(body)}
		body = nil
	}
	if fe.ErrorType == "" {
		fe.ErrorType = "Runtime.Unknown"
	}
	if body == nil {
		return errorResult(fe)
	}
	return Result{Payload: body, FuncError: fe}
}

// readLimited reads r whole but keeps at most limit bytes; tooLarge reports
// that r held more.
func readLimited(r io.Reader, limit int) (body []byte, tooLarge bool, err error) {
	body, err = io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, false, err
	}
	if len(body) > limit {
		_, err = io.Copy(io.Discard, r)
		return nil, true, err
	}
	return body, false, nil
}

func writeInvalidRequestID(w http.ResponseWriter) {
	writeAPIError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
}

// writeAPIError writes an error in the Runtime API's JSON shape.
func writeAPIError(w http.ResponseWriter, status int, errorType, message string) {
	b, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{message, errorType})
	writeJSON(w, status, b)
}

func writeAccepted(w http.ResponseWriter) {
	writeJSON(w, http.StatusAccepted, []byte(`{"status":"OK"}`))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_ = http.NewResponseController(w).Flush()
}
