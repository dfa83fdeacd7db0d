// Package console is the local stack's operator page: sites with their
// catalog, halted state and destinations' backlog, uploads with their
// status timeline and line errors, queue depths and ages, alarms, and a
// button that runs the scheduled sync now. Plain server-rendered HTML with
// no external assets, so it works offline and in a headless browser.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/observe"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// Path is where the console is served.
const Path = "/_console"

// recentUploads is how many uploads a site's page shows.
const recentUploads = 50

// Queue is one queue as the console shows it.
type Queue struct {
	LogicalID       string
	Name            string
	Visible         int
	InFlight        int
	Delayed         int
	OldestAge       *time.Duration // nil when the cloud does not say
	InFlightByGroup map[string]int
	Error           string
}

// Source is where the console reads the stack.
type Source interface {
	// Sites lists every site's snapshot with its few newest uploads; more
	// says that there were more sites than listed.
	Sites(ctx context.Context) (sites []observe.Site, more bool, err error)
	// Site reads one site with its recent uploads.
	Site(ctx context.Context, id string, recent int) (observe.Site, error)
	Queues(ctx context.Context) []Queue
	// Alarms returns the alarms' states; nil when no evaluator runs.
	Alarms() []alarms.State
	// Sync runs the scheduled sync function now.
	Sync(ctx context.Context) error
	// Now is the stack's clock.
	Now() time.Time
}

//go:embed templates/*.html
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"age":       age,
	"timeline":  timeline,
	"stateIcon": stateClass,
	"path":      url.PathEscape,
	"seqs":      seqs,
}).ParseFS(files, "templates/*.html"))

// Handler serves the console under Path.
func Handler(src Source, logger *slog.Logger) http.Handler {
	h := &handler{src: src, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, h.overview)
	mux.HandleFunc("GET "+Path+"/{$}", h.overview)
	mux.HandleFunc("GET "+Path+"/sites/{site}", h.site)
	mux.HandleFunc("POST "+Path+"/sync", h.sync)
	mux.HandleFunc(Path+"/sync", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the sync runs on POST (the console's Sync now button)", http.StatusMethodNotAllowed)
	})
	mux.HandleFunc(Path+"/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return mux
}

type handler struct {
	src Source
	log *slog.Logger
}

type overviewPage struct {
	Title      string
	Now        time.Time
	Notice     string
	NoticeBad  bool
	Sites      []observe.Site
	SitesError string
	MoreSites  bool
	Queues     []Queue
	Alarms     []alarms.State
	NoAlarms   bool
	Firing     int
}

func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	p := overviewPage{Title: "overview", Now: h.src.Now().UTC(), Queues: h.src.Queues(r.Context()), Alarms: h.src.Alarms()}
	p.NoAlarms = p.Alarms == nil
	for _, a := range p.Alarms {
		if a.State == alarms.Alarming {
			p.Firing++
		}
	}
	// Firing alarms first.
	slices.SortStableFunc(p.Alarms, func(a, b alarms.State) int {
		return boolRank(a.State == alarms.Alarming) - boolRank(b.State == alarms.Alarming)
	})
	sites, more, err := h.src.Sites(r.Context())
	p.Sites, p.MoreSites = sites, more
	if err != nil {
		p.SitesError = err.Error()
	}
	switch r.URL.Query().Get("sync") {
	case "ok":
		p.Notice = "Sync ran: the sync function planned a job for every destination that is due."
	case "failed":
		p.Notice, p.NoticeBad = "Sync failed: "+r.URL.Query().Get("error"), true
	}
	h.render(w, "overview.html", p)
}

func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}

type sitePage struct {
	Title string
	Now   time.Time
	Site  observe.Site
}

func (h *handler) site(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("site")
	if err := layout.ValidateSite(id); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	s, err := h.src.Site(r.Context(), id, recentUploads)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, ErrNotFound) {
			status = http.StatusNotFound
		}
		http.Error(w, fmt.Sprintf("site %s: %v", id, err), status)
		return
	}
	h.render(w, "site.html", sitePage{Title: "site " + id, Now: h.src.Now().UTC(), Site: s})
}

func (h *handler) sync(w http.ResponseWriter, r *http.Request) {
	q := url.Values{}
	if err := h.src.Sync(r.Context()); err != nil {
		q.Set("sync", "failed")
		q.Set("error", err.Error())
	} else {
		q.Set("sync", "ok")
	}
	http.Redirect(w, r, Path+"?"+q.Encode(), http.StatusSeeOther)
}

func (h *handler) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		h.log.Error("console: render", "page", name, "err", err)
	}
}

// ErrNotFound is what a Source returns (wrapped) for a site that does not
// exist.
var ErrNotFound = errors.New("not found")

func age(d *time.Duration) string {
	if d == nil {
		return "–"
	}
	return d.Round(time.Second).String()
}

// step is one state of an upload's timeline.
type step struct {
	State uploads.State
	At    time.Time
}

// timeline orders a record's state timestamps.
func timeline(r uploads.Record) []step {
	var out []step
	for st, at := range r.Timestamps {
		out = append(out, step{st, at.UTC()})
	}
	slices.SortFunc(out, func(a, b step) int { return a.At.Compare(b.At) })
	return out
}

func stateClass(s uploads.State) string {
	switch s {
	case uploads.Imported:
		return "ok"
	case uploads.Rejected, uploads.Expired:
		return "bad"
	case uploads.Cancelled:
		return "muted"
	}
	return "busy"
}

func seqs(s []uint64) string {
	if len(s) == 0 {
		return "none"
	}
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		if i == 10 {
			return out + fmt.Sprintf("… %d more", len(s)-10)
		}
		out += fmt.Sprint(v)
	}
	return out
}
