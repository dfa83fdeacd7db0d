package runner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// HTTP API limits, as API Gateway applies them.
const (
	maxHTTPAPIBody         = 10 << 20
	httpIntegrationTimeout = 30 * time.Second
)

// Route is one HttpApi event of a function: METHOD (or ANY) and a path with
// {param} segments and an optional greedy {param+} last segment.
type Route struct {
	Method   string
	Path     string
	Function string
	segments []string
}

// RouteKey is the route as API Gateway names it, e.g. "GET /v1/items/{id}".
func (r *Route) RouteKey() string { return r.Method + " " + r.Path }

// httpAPI serves the routes of an HTTP API with payload format 2.0.
type httpAPI struct {
	routes  []*Route
	invoke  func(ctx context.Context, function string, payload []byte) (invocationResult, error)
	clock   *clock.Clock
	account string
	logger  *slog.Logger
	timeout time.Duration
	// extra handles paths the API has no route for (the runner's own
	// endpoints); nil answers 404.
	extra http.Handler
}

func newHTTPAPI(routes []*Route, invoke func(ctx context.Context, function string, payload []byte) (invocationResult, error), c *clock.Clock, account string, logger *slog.Logger) *httpAPI {
	for _, r := range routes {
		r.segments = strings.Split(strings.Trim(r.Path, "/"), "/")
	}
	// More specific routes first: literal segments beat parameters, which
	// beat a greedy parameter; an exact method beats ANY.
	sort.SliceStable(routes, func(i, j int) bool { return routeRank(routes[i]) > routeRank(routes[j]) })
	return &httpAPI{routes: routes, invoke: invoke, clock: c, account: account, logger: logger, timeout: httpIntegrationTimeout}
}

func routeRank(r *Route) int {
	rank := 0
	for _, s := range r.segments {
		switch {
		case strings.HasSuffix(s, "+}"):
			rank += 1
		case strings.HasPrefix(s, "{"):
			rank += 100
		default:
			rank += 10000
		}
	}
	rank *= 2
	if r.Method != "ANY" {
		rank++
	}
	return rank
}

// match finds the route for a method and a raw (escaped) path, with its path
// parameters decoded.
func (a *httpAPI) match(method, rawPath string) (*Route, map[string]string) {
	parts := strings.Split(strings.Trim(rawPath, "/"), "/")
	for _, r := range a.routes {
		if r.Method != "ANY" && r.Method != method {
			continue
		}
		if params, ok := matchSegments(r.segments, parts); ok {
			return r, params
		}
	}
	return nil, nil
}

func matchSegments(route, parts []string) (map[string]string, bool) {
	params := map[string]string{}
	for i, seg := range route {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "+}") {
			if i >= len(parts) || strings.Join(parts[i:], "") == "" {
				return nil, false
			}
			v, err := url.PathUnescape(strings.Join(parts[i:], "/"))
			if err != nil {
				return nil, false
			}
			params[seg[1:len(seg)-2]] = v
			return params, true
		}
		if i >= len(parts) {
			return nil, false
		}
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			if parts[i] == "" {
				return nil, false
			}
			v, err := url.PathUnescape(parts[i])
			if err != nil {
				return nil, false
			}
			params[seg[1:len(seg)-1]] = v
			continue
		}
		if seg != parts[i] {
			return nil, false
		}
	}
	return params, len(route) == len(parts)
}

func writeGatewayError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
}

func (a *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	requestID := newID()
	w.Header().Set("Apigw-Requestid", requestID)
	rawPath := r.URL.EscapedPath()
	route, params := a.match(r.Method, rawPath)
	if route == nil {
		if a.extra != nil {
			a.extra.ServeHTTP(w, r)
			return
		}
		writeGatewayError(w, http.StatusNotFound, "Not Found")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHTTPAPIBody+1))
	if err != nil {
		writeGatewayError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(body) > maxHTTPAPIBody {
		writeGatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	ev := a.request(r, route, params, rawPath, body, requestID)
	payload, err := json.Marshal(ev)
	if err != nil {
		writeGatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	res, err := a.invoke(ctx, route.Function, payload)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		writeGatewayError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	case err != nil:
		a.logger.Warn("http api: invocation failed", "route", route.RouteKey(), "function", route.Function, "err", err)
		writeGatewayError(w, http.StatusBadGateway, "Internal Server Error")
		return
	case res.FunctionError != "":
		a.logger.Warn("http api: function failed", "route", route.RouteKey(), "function", route.Function, "error", res.FunctionError)
		writeGatewayError(w, http.StatusBadGateway, "Internal Server Error")
		return
	}
	a.respond(w, res.Payload, route)
}

// request builds the payload format 2.0 event as API Gateway does: header
// names lower-cased and repeated values comma-joined, cookies in their own
// list, binary bodies base64-encoded.
func (a *httpAPI) request(r *http.Request, route *Route, params map[string]string, rawPath string, body []byte, requestID string) events.APIGatewayV2HTTPRequest {
	now := a.clock.Now()
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		if name == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[name] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	if r.ContentLength >= 0 && len(body) > 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}
	var query map[string]string
	if r.URL.RawQuery != "" {
		query = map[string]string{}
		for k, vs := range r.URL.Query() {
			query[k] = strings.Join(vs, ",")
		}
	}
	sourceIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: route.RouteKey(), RawPath: rawPath, RawQueryString: r.URL.RawQuery,
		Cookies: cookies, Headers: headers, QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: route.RouteKey(), AccountID: a.account, Stage: "$default", RequestID: requestID,
			APIID: "local", DomainName: r.Host, DomainPrefix: strings.Split(r.Host, ".")[0],
			Time: now.UTC().Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: rawPath, Protocol: r.Proto, SourceIP: sourceIP, UserAgent: r.UserAgent(),
			},
		},
	}
	if len(params) > 0 {
		ev.PathParameters = params
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type"), body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

func isText(contentType string, body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return contentType == ""
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "application/xml" || strings.HasSuffix(mt, "+xml") || mt == "application/x-www-form-urlencoded" ||
		mt == "application/javascript" || mt == "application/x-ndjson"
}

// respond maps the function's answer as payload format 2.0 does: an object
// with statusCode is a response (headers, cookies, base64 body); anything
// else is a 200 JSON body.
func (a *httpAPI) respond(w http.ResponseWriter, payload []byte, route *Route) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(payload, &probe); err != nil || probe["statusCode"] == nil {
		if !json.Valid(payload) {
			a.logger.Warn("http api: function answered with invalid JSON", "route", route.RouteKey())
			writeGatewayError(w, http.StatusBadGateway, "Internal Server Error")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(payload)
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(payload, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
		a.logger.Warn("http api: malformed function response", "route", route.RouteKey(), "err", err)
		writeGatewayError(w, http.StatusBadGateway, "Internal Server Error")
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			a.logger.Warn("http api: response body is not valid base64", "route", route.RouteKey())
			writeGatewayError(w, http.StatusBadGateway, "Internal Server Error")
			return
		}
		body = b
	}
	if w.Header().Get("Content-Type") == "" && len(body) > 0 {
		w.Header().Set("Content-Type", http.DetectContentType(body))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, bytes.NewReader(body))
}
