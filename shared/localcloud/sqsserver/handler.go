package sqsserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

const (
	jsonContentType = "application/x-amz-json-1.0"
	targetPrefix    = "AmazonSQS."
	// maxRequestBody bounds a request: a 1 MiB batch may grow several times
	// when JSON escapes its characters or base64 encodes binary attributes.
	maxRequestBody = 16 << 20
)

// actionFunc handles one SQS action: it decodes body and writes the JSON
// result to w.
type actionFunc func(s *Server, r *http.Request, body []byte, w *jsonWriter) *apiError

// actionFor returns the handler of an action, or nil.
func actionFor(name string) actionFunc {
	switch name {
	case "SendMessage":
		return (*Server).sendMessage
	case "SendMessageBatch":
		return (*Server).sendMessageBatch
	case "ReceiveMessage":
		return (*Server).receiveMessage
	case "DeleteMessage":
		return (*Server).deleteMessage
	case "DeleteMessageBatch":
		return (*Server).deleteMessageBatch
	case "ChangeMessageVisibility":
		return (*Server).changeMessageVisibility
	case "ChangeMessageVisibilityBatch":
		return (*Server).changeMessageVisibilityBatch
	case "CreateQueue":
		return (*Server).createQueue
	case "GetQueueUrl":
		return (*Server).getQueueURL
	case "ListQueues":
		return (*Server).listQueues
	case "DeleteQueue":
		return (*Server).deleteQueue
	case "GetQueueAttributes":
		return (*Server).getQueueAttributes
	case "SetQueueAttributes":
		return (*Server).setQueueAttributes
	case "PurgeQueue":
		return (*Server).purgeQueue
	case "ListQueueTags":
		return (*Server).listQueueTags
	case "TagQueue":
		return (*Server).tagQueue
	case "UntagQueue":
		return (*Server).untagQueue
	case "ListDeadLetterSourceQueues":
		return (*Server).listDeadLetterSourceQueues
	case "AddPermission", "RemovePermission", "StartMessageMoveTask",
		"CancelMessageMoveTask", "ListMessageMoveTasks":
		return unsupported
	}
	return nil
}

func unsupported(_ *Server, r *http.Request, _ []byte, _ *jsonWriter) *apiError {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	return newError(codeUnsupportedOperation, "%s is not supported by the local SQS.", action)
}

// ServeHTTP serves one AWS JSON 1.0 request: POST with
// "X-Amz-Target: AmazonSQS.<Action>". Queue URLs in responses are built from
// the request's Host as http://<host>/<account>/<name>.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.closed.Load() {
		s.writeError(w, r, newError(codeServiceUnavailable, "The local SQS has been shut down."))
		return
	}
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok || r.Method != http.MethodPost {
		s.writeError(w, r, newError(codeUnknownOperation, "Could not find operation %s.", r.Header.Get("X-Amz-Target")))
		return
	}
	fn := actionFor(action)
	if fn == nil {
		s.writeError(w, r, newError(codeUnknownOperation, "Could not find operation %s.", action))
		return
	}
	buf := s.getBodyBuffer()
	defer s.putBodyBuffer(buf)
	if r.ContentLength > 0 && r.ContentLength <= maxRequestBody {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxRequestBody)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeError(w, r, newError(codeInvalidParameterValue, "The request is larger than %d bytes.", maxRequestBody))
			return
		}
		s.writeError(w, r, newError(codeSerialization, "Could not read the request body: %v", err))
		return
	}
	jw := s.bufs.get()
	defer s.bufs.put(jw)
	if aerr := s.call(fn, r, buf.Bytes(), jw); aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("x-amzn-RequestId", newMessageID())
	h.Set("Content-Length", strconv.Itoa(len(jw.b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(jw.b)
}

// call runs an action, turning a panic into an InternalFailure so one bad
// request cannot take the process down.
func (s *Server) call(fn actionFunc, r *http.Request, body []byte, jw *jsonWriter) (aerr *apiError) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("sqs: handler panic", "target", r.Header.Get("X-Amz-Target"), "panic", p)
			aerr = newError(codeInternal, "We encountered an internal error. Please try again.")
		}
	}()
	return fn(s, r, body, jw)
}

func (s *Server) getBodyBuffer() *bytes.Buffer {
	if b, ok := s.bodies.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (s *Server) putBodyBuffer(b *bytes.Buffer) {
	if b.Cap() > 4<<20 {
		return
	}
	s.bodies.Put(b)
}

// writeError writes e the way SQS does for the JSON protocol. Clients that
// declare x-amzn-query-mode get the status of the error's model; others get
// 400 for every client error, as SQS answers them.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	spec := errorSpecFor(e.code)
	status := spec.status
	if status > 400 && status < 500 && !strings.EqualFold(r.Header.Get("X-Amzn-Query-Mode"), "true") {
		status = http.StatusBadRequest
	}
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("x-amzn-RequestId", newMessageID())
	if spec.queryCode != "" {
		fault := ";Sender"
		if spec.receiver {
			fault = ";Receiver"
		}
		h.Set("x-amzn-query-error", spec.queryCode+fault)
	}
	var jw jsonWriter
	jw.open()
	jw.strField("__type", spec.wireType)
	jw.strField("message", e.message)
	jw.close()
	h.Set("Content-Length", strconv.Itoa(len(jw.b)))
	w.WriteHeader(status)
	_, _ = w.Write(jw.b)
	if spec.status >= 500 {
		s.log.Warn("sqs: request failed", "code", e.code, "message", e.message)
	}
}

// decode unmarshals a request body; an empty body is an empty request.
func decode(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return newError(codeSerialization, "Invalid type for field %s: %v", typeErr.Field, err)
		}
		return newError(codeSerialization, "The request body is not valid JSON: %v", err)
	}
	return nil
}

// queueFor resolves a request's QueueUrl.
func (s *Server) queueFor(url *string) (*queue, *apiError) {
	if url == nil || *url == "" {
		return nil, errMissing("QueueUrl")
	}
	q := s.queueByURL(*url)
	if q == nil {
		return nil, errQueueDoesNotExist()
	}
	return q, nil
}

// queueURL is the URL of q as seen by the client of r.
func queueURL(r *http.Request, q *queue) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/" + q.account + "/" + q.name
}

// writeEmpty writes the empty result "{}".
func writeEmpty(w *jsonWriter) {
	w.open()
	w.close()
}
