package runner

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// ControlPrefix is where the runner's own endpoints live on the HTTP API
// port, beside the template's routes.
const ControlPrefix = "/_feedpipe/"

// controlHandler serves the runner's endpoints:
//
//	GET  /_feedpipe/health                      the stack's state
//	POST /_feedpipe/schedules/{name}/fire       fire a schedule now
//	POST /_feedpipe/clock/advance?by=90s        move the clock forward
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
