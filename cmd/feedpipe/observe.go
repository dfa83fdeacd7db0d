package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/feedpipe/feedpipe/shared/localcloud/runner"
	"github.com/feedpipe/feedpipe/shared/observe"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// siteShowCmd shows one site in detail, read from the store bucket.
type siteShowCmd struct {
	Site     string `arg:"" help:"Site id."`
	Recent   int    `default:"10" help:"How many of the newest uploads to show (1-100)."`
	awsFlags `embed:""`
}

func (c *siteShowCmd) Run(ctx context.Context, s *streams) error {
	if c.Recent < 1 || c.Recent > 100 {
		return usagef("--recent %d: want 1 to 100", c.Recent)
	}
	cl, err := c.clients(ctx)
	if err != nil {
		return err
	}
	if _, err := c.loadSite(ctx, cl, c.Site); err != nil {
		return err
	}
	snap, err := observe.Reader{S3: cl.S3, Bucket: c.StoreBucket}.Site(ctx, c.Site, c.Recent)
	if err != nil {
		return c.awsHint(err)
	}
	if c.JSON {
		writeJSON(s.Out, snap)
		return nil
	}
	printSite(s.Out, snap)
	return nil
}

// printSite prints a site's snapshot for people.
func printSite(w io.Writer, snap observe.Site) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "site\t%s\n", snap.Site)
	fmt.Fprintf(tw, "catalog\tversion %d, applied sequence %d, %d products\n", snap.Version, snap.AppliedSeq, snap.Products)
	if snap.Halted {
		fmt.Fprintf(tw, "state\tHALTED: %s\n", snap.HaltedReason)
	} else {
		fmt.Fprintf(tw, "state\timporting\n")
	}
	fmt.Fprintf(tw, "waiting\t%s\n", sequences(snap.Waiting))
	tw.Flush()
	if len(snap.Destinations) == 0 {
		fmt.Fprintf(w, "destinations: none (feedpipe site add-destination adds one)\n")
	} else {
		fmt.Fprintf(w, "destinations:\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  NAME\tTYPE\tTARGET\tACKED VERSION\tBACKLOG\tLAST PUSH\n")
		for _, d := range snap.Destinations {
			last := "never"
			if !d.AckedAt.IsZero() {
				last = d.AckedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", d.Name, d.Type, d.Target, d.AckedVersion, d.Backlog, last)
		}
		tw.Flush()
	}
	if len(snap.Recent) == 0 {
		fmt.Fprintf(w, "recent uploads: none\n")
	} else {
		fmt.Fprintf(w, "recent uploads (newest first):\n")
		printUploads(w, snap.Recent, true)
	}
	if snap.Truncated {
		fmt.Fprintf(w, "(more uploads wait than one snapshot reads; feedpipe list shows them all)\n")
	}
	if snap.Halted {
		fmt.Fprintf(w, "hint: after fixing the cause run feedpipe redrive --site %s\n", snap.Site)
	}
}

// printUploads prints upload records as a table; with errors, each
// record's first line errors follow it.
func printUploads(w io.Writer, recs []uploads.Record, errors bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SEQ\tMODE\tSTATE\tLINES\tUPSERTED\tDELETED\tREJECTED\tSINCE\n")
	for _, r := range recs {
		state := string(r.State)
		if r.Reason != "" {
			state += " (" + r.Reason + ")"
		}
		lines, up, del, rej := "-", "-", "-", "-"
		if c := r.Counts; c != nil {
			lines, up, del, rej = fmt.Sprint(c.Lines), fmt.Sprint(c.Upserted), fmt.Sprint(c.Deleted), fmt.Sprint(c.Rejected)
		}
		since := ""
		if at, ok := r.Timestamps[r.State]; ok {
			since = at.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Sequence, r.Mode, state, lines, up, del, rej, since)
		if !errors {
			continue
		}
		for i, e := range r.Errors {
			if i == 3 {
				fmt.Fprintf(tw, "  \t  … %d more line errors (feedpipe status shows them)\n", len(r.Errors)-3)
				break
			}
			fmt.Fprintf(tw, "  \t  line %d: %s: %s\n", e.Line, e.Code, e.Reason)
		}
	}
	tw.Flush()
}

func sequences(seqs []uint64) string {
	if len(seqs) == 0 {
		return "none"
	}
	parts := make([]string, len(seqs))
	for i, s := range seqs {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, ", ")
}

// topCmd shows the running stack: queues, alarms, sites and recent
// uploads, refreshed until interrupted.
type topCmd struct {
	API      string        `default:"http://127.0.0.1:3000" env:"FEEDPIPE_API" help:"The running stack's HTTP API (queues and alarms come from its /_feedpipe/ endpoints)."`
	Once     bool          `help:"Print once and exit (the default when stdout is not a terminal)."`
	Interval time.Duration `default:"2s" help:"Refresh interval on a terminal."`
	awsFlags `embed:""`
}

// topView is what one refresh of top shows.
type topView struct {
	Time       time.Time            `json:"time"`
	Queues     []runner.QueueStatus `json:"queues"`
	QueuesNote string               `json:"queuesNote,omitempty"`
	Alarms     []alarmRow           `json:"alarms"`
	AlarmsNote string               `json:"alarmsNote,omitempty"`
	Sites      []observe.Site       `json:"sites"`
	SitesNote  string               `json:"sitesNote,omitempty"`
}

type alarmRow struct {
	Name   string    `json:"name"`
	State  string    `json:"state"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

func (c *topCmd) Run(ctx context.Context, s *streams) error {
	if c.Interval < 100*time.Millisecond {
		return usagef("--interval %v: want at least 100ms", c.Interval)
	}
	cl, err := c.clients(ctx)
	if err != nil {
		return err
	}
	reader := observe.Reader{S3: cl.S3, Bucket: c.StoreBucket}
	live := !c.Once && !c.JSON && isTerminal(s.Out)
	for {
		v := c.view(ctx, reader)
		if c.JSON {
			writeJSON(s.Out, v)
			return nil
		}
		if live {
			fmt.Fprint(s.Out, "\x1b[H\x1b[2J") // home, clear screen
		}
		printTop(s.Out, v)
		if !live {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Interval):
		}
	}
}

// view gathers one refresh. A section that cannot be read says why and
// the others are still shown.
func (c *topCmd) view(ctx context.Context, reader observe.Reader) topView {
	v := topView{Time: time.Now().UTC(), Queues: []runner.QueueStatus{}, Alarms: []alarmRow{}, Sites: []observe.Site{}}
	var q struct {
		Queues []runner.QueueStatus `json:"queues"`
	}
	if err := getControl(ctx, c.API, "queues", &q); err != nil {
		v.QueuesNote = err.Error()
	} else {
		v.Queues = q.Queues
	}
	var a struct {
		Alarms []alarmRow `json:"alarms"`
	}
	if err := getControl(ctx, c.API, "alarms", &a); err != nil {
		v.AlarmsNote = err.Error()
	} else {
		v.Alarms = a.Alarms
	}
	sites, more, err := reader.All(ctx, 5)
	v.Sites = append(v.Sites, sites...)
	if err != nil {
		v.SitesNote = c.awsHint(err).Error()
	} else if more {
		v.SitesNote = fmt.Sprintf("showing the first %d sites", observe.MaxSites)
	}
	return v
}

// errNotAvailable marks a control endpoint the running stack does not have.
var errNotAvailable = errors.New("not available from this stack")

// getControl reads one of the runner's JSON endpoints.
func getControl(ctx context.Context, api, path string, out any) error {
	body, status, err := controlRequest(ctx, http.MethodGet, api, path, nil)
	if err != nil {
		return err
	}
	if status == http.StatusNotFound {
		return errNotAvailable
	}
	if status != http.StatusOK {
		return controlError(status, body)
	}
	return json.Unmarshal(body, out)
}

// printTop prints one refresh for people.
func printTop(w io.Writer, v topView) {
	fmt.Fprintf(w, "feedpipe top — %s\n\nqueues:\n", v.Time.Format(time.RFC3339))
	if v.QueuesNote != "" {
		fmt.Fprintf(w, "  %s\n", v.QueuesNote)
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  QUEUE\tVISIBLE\tIN FLIGHT\tDELAYED\tOLDEST\tIN FLIGHT BY GROUP\n")
		for _, q := range v.Queues {
			age := "-"
			if q.OldestAgeSeconds != nil {
				age = (time.Duration(*q.OldestAgeSeconds * float64(time.Second))).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%s\n", q.LogicalID, q.Visible, q.InFlight, q.Delayed, age, groups(q.InFlightByGroup))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nalarms:\n")
	if v.AlarmsNote != "" {
		fmt.Fprintf(w, "  %s\n", v.AlarmsNote)
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range v.Alarms {
			reason := ""
			if a.State == "ALARM" {
				reason = a.Reason
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.State, a.Name, reason)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nsites:\n")
	if len(v.Sites) == 0 && v.SitesNote == "" {
		fmt.Fprintf(w, "  none\n")
	}
	if len(v.Sites) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  SITE\tVERSION\tAPPLIED\tPRODUCTS\tWAITING\tSTATE\tDESTINATIONS (backlog)\n")
		for _, s := range v.Sites {
			state := "importing"
			if s.Halted {
				state = "HALTED: " + s.HaltedReason
			}
			var dests []string
			for _, d := range s.Destinations {
				last := "never pushed"
				if !d.AckedAt.IsZero() {
					last = "pushed " + d.AckedAt.UTC().Format("15:04:05")
				}
				dests = append(dests, fmt.Sprintf("%s (%d behind, %s)", d.Name, d.Backlog, last))
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Site, s.Version, s.AppliedSeq, s.Products, sequences(s.Waiting), state, strings.Join(dests, ", "))
		}
		tw.Flush()
	}
	if v.SitesNote != "" {
		fmt.Fprintf(w, "  %s\n", v.SitesNote)
	}
	for _, s := range v.Sites {
		if len(s.Recent) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nrecent uploads of %s:\n", s.Site)
		printUploads(w, s.Recent, false)
	}
}

func groups(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
