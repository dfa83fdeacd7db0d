package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/feedpipe/feedpipe/shared/uploads"
)

// uploadStatus is an upload record as the API shows it.
type uploadStatus struct {
	uploads.Record
	SiteHalted       bool   `json:"siteHalted,omitempty"`
	SiteHaltedReason string `json:"siteHaltedReason,omitempty"`
}

// terminal reports whether the upload's state is final.
func terminal(s uploads.State) bool {
	switch s {
	case uploads.Imported, uploads.Rejected, uploads.Expired, uploads.Cancelled:
		return true
	}
	return false
}

// maxShownErrors bounds the line errors printed in human output.
const maxShownErrors = 10

// printStatus prints an upload record for people.
func printStatus(w io.Writer, st uploadStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	r := st.Record
	fmt.Fprintf(tw, "upload\t%s\n", r.UploadID)
	fmt.Fprintf(tw, "sequence\t%d\n", r.Sequence)
	enc := r.ContentEncoding
	if enc == "" {
		enc = "identity"
	}
	fmt.Fprintf(tw, "mode\t%s, %d bytes, %s\n", r.Mode, r.ContentLength, enc)
	state := string(r.State)
	if r.Reason != "" {
		state += " (" + r.Reason + ")"
	}
	fmt.Fprintf(tw, "state\t%s\n", state)
	if r.Message != "" {
		fmt.Fprintf(tw, "message\t%s\n", r.Message)
	}
	if r.CatalogVersion > 0 {
		fmt.Fprintf(tw, "catalog version\t%d\n", r.CatalogVersion)
	}
	if c := r.Counts; c != nil {
		fmt.Fprintf(tw, "lines\t%d: %d upserted, %d deleted, %d unchanged, %d rejected\n", c.Lines, c.Upserted, c.Deleted, c.Unchanged, c.Rejected)
	}
	if r.LateUpload != nil {
		fmt.Fprintf(tw, "late upload\t%s at %s: the file arrived after the upload expired and was not applied\n", r.LateUpload.Reason, r.LateUpload.At.Format(time.RFC3339))
	}
	if st.SiteHalted {
		fmt.Fprintf(tw, "site halted\t%s\n", st.SiteHaltedReason)
	}
	tw.Flush()
	if len(r.Errors) > 0 {
		n := len(r.Errors)
		if r.Counts != nil && r.Counts.Rejected > int64(n) {
			fmt.Fprintf(w, "line errors (first %d of %d):\n", min(n, maxShownErrors), r.Counts.Rejected)
		} else {
			fmt.Fprintf(w, "line errors:\n")
		}
		for i, e := range r.Errors {
			if i == maxShownErrors {
				fmt.Fprintf(w, "  … %d more (--json shows them)\n", n-maxShownErrors)
				break
			}
			fmt.Fprintf(w, "  line %d: %s: %s\n", e.Line, e.Code, e.Reason)
		}
	}
	if st.SiteHalted {
		fmt.Fprintf(w, "hint: the site is halted and imports nothing until it is resumed; after fixing the cause run feedpipe redrive --site %s\n", r.Site)
	}
}

// statusCmd shows an upload.
type statusCmd struct {
	UploadID string `arg:"" name:"upload-id" help:"The upload's id (as printed by feedpipe upload or list)."`
	apiFlags `embed:""`
}

func (c *statusCmd) Run(ctx context.Context, s *streams) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	cl.notFound = fmt.Sprintf("check the upload id and --site: feedpipe list --site %s shows the site's uploads", c.Site)
	var st uploadStatus
	raw, err := cl.do(ctx, http.MethodGet, cl.sitePath("uploads", url.PathEscape(c.UploadID)), nil, nil, &st)
	if err != nil {
		return err
	}
	if c.JSON {
		indentJSON(s.Out, raw)
		return nil
	}
	printStatus(s.Out, st)
	return nil
}

// listCmd lists uploads.
type listCmd struct {
	After    uint64 `help:"List uploads after this sequence."`
	Limit    int    `help:"At most this many uploads (1-1000; the API's default is 100)."`
	apiFlags `embed:""`
}

func (c *listCmd) Run(ctx context.Context, s *streams) error {
	if c.Limit < 0 || c.Limit > 1000 {
		return usagef("--limit %d: want 1-1000", c.Limit)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if c.After > 0 {
		q.Set("after", strconv.FormatUint(c.After, 10))
	}
	if c.Limit > 0 {
		q.Set("limit", strconv.Itoa(c.Limit))
	}
	path := cl.sitePath("uploads")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Uploads []uploadStatus `json:"uploads"`
		Next    string         `json:"next"`
	}
	raw, err := cl.do(ctx, http.MethodGet, path, nil, nil, &out)
	if err != nil {
		return err
	}
	if c.JSON {
		indentJSON(s.Out, raw)
		return nil
	}
	if len(out.Uploads) == 0 {
		fmt.Fprintf(s.Out, "no uploads on site %s", c.Site)
		if c.After > 0 {
			fmt.Fprintf(s.Out, " after sequence %d", c.After)
		}
		fmt.Fprintln(s.Out)
		return nil
	}
	tw := tabwriter.NewWriter(s.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tUPLOAD ID\tMODE\tSTATE\tLINES\tREJECTED\tCREATED")
	for _, u := range out.Uploads {
		lines, rejected := "-", "-"
		if u.Counts != nil {
			lines, rejected = strconv.FormatInt(u.Counts.Lines, 10), strconv.FormatInt(u.Counts.Rejected, 10)
		}
		created := "-"
		if t, ok := u.Timestamps[uploads.AwaitingUpload]; ok {
			created = t.UTC().Format(time.RFC3339)
		}
		state := string(u.State)
		if u.Reason != "" {
			state += " (" + u.Reason + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Sequence, u.UploadID, u.Mode, state, lines, rejected, created)
	}
	tw.Flush()
	if out.Next != "" {
		fmt.Fprintf(s.Out, "more: feedpipe list --site %s --after %s\n", c.Site, out.Next)
	}
	return nil
}

// catalogCmd shows the catalog summary.
type catalogCmd struct {
	apiFlags `embed:""`
}

func (c *catalogCmd) Run(ctx context.Context, s *streams) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var out struct {
		Site             string   `json:"site"`
		Version          uint64   `json:"version"`
		AppliedSeq       uint64   `json:"appliedSeq"`
		Products         int64    `json:"products"`
		WaitingSequences []uint64 `json:"waitingSequences"`
		Halted           bool     `json:"halted"`
		HaltedReason     string   `json:"haltedReason"`
	}
	raw, err := cl.do(ctx, http.MethodGet, cl.sitePath("catalog"), nil, nil, &out)
	if err != nil {
		return err
	}
	if c.JSON {
		indentJSON(s.Out, raw)
		return nil
	}
	tw := tabwriter.NewWriter(s.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "site\t%s\n", c.Site)
	fmt.Fprintf(tw, "version\t%d\n", out.Version)
	fmt.Fprintf(tw, "applied sequence\t%d\n", out.AppliedSeq)
	fmt.Fprintf(tw, "products\t%d\n", out.Products)
	waiting := "none"
	if len(out.WaitingSequences) > 0 {
		ws := make([]string, len(out.WaitingSequences))
		for i, n := range out.WaitingSequences {
			ws[i] = strconv.FormatUint(n, 10)
		}
		waiting = strings.Join(ws, ", ")
	}
	fmt.Fprintf(tw, "waiting sequences\t%s\n", waiting)
	halted := "no"
	if out.Halted {
		halted = "yes: " + out.HaltedReason
	}
	fmt.Fprintf(tw, "halted\t%s\n", halted)
	tw.Flush()
	if out.Halted {
		fmt.Fprintf(s.Out, "hint: after fixing the cause run feedpipe redrive --site %s\n", c.Site)
	}
	return nil
}

// getCmd shows a product.
type getCmd struct {
	ProductID string `arg:"" name:"product-id" help:"The product's id."`
	apiFlags  `embed:""`
}

func (c *getCmd) Run(ctx context.Context, s *streams) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	cl.notFound = fmt.Sprintf("the product is not in the newest catalog version of %s (an upload may still be waiting: feedpipe catalog --site %s)", c.Site, c.Site)
	var out struct {
		ID      string          `json:"id"`
		Product json.RawMessage `json:"product"`
	}
	raw, err := cl.do(ctx, http.MethodGet, cl.sitePath("catalog", "products", url.PathEscape(c.ProductID)), nil, nil, &out)
	if err != nil {
		return err
	}
	if c.JSON {
		indentJSON(s.Out, raw)
		return nil
	}
	indentJSON(s.Out, out.Product)
	return nil
}
