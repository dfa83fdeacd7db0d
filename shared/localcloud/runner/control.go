package runner

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/feedpipe/feedpipe/shared/localcloud/console"
	"github.com/feedpipe/feedpipe/shared/observe"
)

// ControlPrefix is where the runner's own endpoints live on the HTTP API
// port, beside the template's routes.
const ControlPrefix = "/_feedpipe/"

// controlHandler serves the runner's endpoints:
//
//	GET  /_feedpipe/health                      the stack's state
//	POST /_feedpipe/schedules/{name}/fire       fire a schedule now
//	POST /_feedpipe/clock/advance?by=90s        move the clock forward
//	GET  /_feedpipe/alarms                      every alarm's state
//	GET  /_feedpipe/queues                      every queue's depth and age
//	POST /_feedpipe/functions/{id}/mappings?enabled=false
//	                                            disable (or enable) a function's SQS mappings
func (r *Runner) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_feedpipe/health", func(w http.ResponseWriter, req *http.Request) {
		var fns []string
		for _, f := range r.functions {
			fns = append(fns, f.logicalID)
		}
		var schedules []map[string]any
		for _, s := range r.schedules {
			schedules = append(schedules, map[string]any{"name": s.Name, "function": s.Function, "expression": s.Expression.String(), "enabled": s.Enabled, "fired": r.scheduler.fired(s.Name)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "running", "functions": fns, "schedules": schedules, "time": r.cfg.Clock.Now().UTC().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("POST /_feedpipe/schedules/{name}/fire", func(w http.ResponseWriter, req *http.Request) {
		if err := r.FireSchedule(req.Context(), req.PathValue("name")); err != nil {
			status := http.StatusBadGateway
			if strings.HasPrefix(err.Error(), "no schedule") {
				status = http.StatusNotFound
			}
			writeJSON(w, status, map[string]any{"error": map[string]string{"code": "ScheduleFailed", "message": err.Error()}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"fired": req.PathValue("name")})
	})
	mux.HandleFunc("POST /_feedpipe/clock/advance", func(w http.ResponseWriter, req *http.Request) {
		d, err := time.ParseDuration(req.URL.Query().Get("by"))
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "BadRequest", "message": "by must be a positive duration such as 90s"}})
			return
		}
		r.cfg.Clock.Advance(d)
		writeJSON(w, http.StatusOK, map[string]any{"time": r.cfg.Clock.Now().UTC().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("GET /_feedpipe/alarms", func(w http.ResponseWriter, req *http.Request) {
		type alarmDoc struct {
			Name        string    `json:"name"`
			State       string    `json:"state"`
			Reason      string    `json:"reason"`
			Description string    `json:"description,omitempty"`
			Metric      string    `json:"metric"`
			Since       time.Time `json:"since"`
		}
		out := []alarmDoc{}
		for _, s := range r.Alarms() {
			out = append(out, alarmDoc{Name: s.Name, State: s.State, Reason: s.Reason, Description: s.Description, Metric: s.Metric, Since: s.Since.UTC()})
		}
		writeJSON(w, http.StatusOK, map[string]any{"alarms": out})
	})
	mux.HandleFunc("GET /_feedpipe/queues", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"queues": r.Queues(req.Context())})
	})
	mux.HandleFunc("POST /_feedpipe/functions/{id}/mappings", func(w http.ResponseWriter, req *http.Request) {
		enabled, err := strconv.ParseBool(req.URL.Query().Get("enabled"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "BadRequest", "message": "enabled must be true or false"}})
			return
		}
		if err := r.SetMappingsEnabled(req.PathValue("id"), enabled); err != nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "NoSuchMapping", "message": err.Error()}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"function": req.PathValue("id"), "enabled": enabled})
	})
	ui := console.Handler(consoleSource{r: r, reader: observe.Reader{S3: r.s3, Bucket: r.buckets[r.cfg.ConsoleStore]}}, r.cfg.Logger)
	mux.Handle(console.Path, ui)
	mux.Handle(console.Path+"/", ui)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeGatewayError(w, http.StatusNotFound, "Not Found")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
