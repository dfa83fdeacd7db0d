// Package observe reads what an operator wants to see of feedpipe's sites
// straight from the store bucket: each site's catalog head, halted state,
// waiting and recent uploads, and how far each destination is behind. The
// console, `feedpipe site show` and `feedpipe top` show it.
package observe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/catalog"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/site"
	"github.com/feedpipe/feedpipe/shared/syncjob"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

// MaxSites bounds how many sites one listing reads.
const MaxSites = 200

// scanLimit bounds how many upload records one site's snapshot reads.
const scanLimit = 2000

// Site is one site as an operator sees it.
type Site struct {
	Site         string        `json:"site"`
	Version      uint64        `json:"version"`
	AppliedSeq   uint64        `json:"appliedSeq"`
	Products     int64         `json:"products"`
	Halted       bool          `json:"halted"`
	HaltedReason string        `json:"haltedReason,omitempty"`
	Waiting      []uint64      `json:"waitingSequences"`
	Destinations []Destination `json:"destinations"`
	// Recent holds the newest uploads, newest first.
	Recent []uploads.Record `json:"recentUploads"`
	// Truncated says that more records existed than the snapshot read.
	Truncated bool `json:"truncated,omitempty"`
}

// Destination is a sync destination and how far it is behind.
type Destination struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Target string `json:"target"`
	// AckedVersion is the catalog version the destination has in full; 0
	// when it has acknowledged none yet.
	AckedVersion uint64    `json:"ackedVersion"`
	AckedAt      time.Time `json:"ackedAt,omitzero"`
	Backlog      uint64    `json:"backlog"` // versions behind the head
}

// Reader reads snapshots from one store bucket.
type Reader struct {
	S3     *s3.Client
	Bucket string
}

// Sites lists the site ids in the store bucket, sorted, at most MaxSites;
// more reports whether there were more.
func (r Reader) Sites(ctx context.Context) (ids []string, more bool, err error) {
	p := s3.NewListObjectsV2Paginator(r.S3, &s3.ListObjectsV2Input{Bucket: aws.String(r.Bucket), Prefix: aws.String(layout.SiteConfigPrefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("list sites in %s: %w", r.Bucket, err)
		}
		for _, cp := range page.CommonPrefixes {
			id := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), layout.SiteConfigPrefix), "/")
			if layout.ValidateSite(id) != nil {
				continue
			}
			if len(ids) == MaxSites {
				return ids, true, nil
			}
			ids = append(ids, id)
		}
	}
	return ids, false, nil
}

// Site reads one site's snapshot with its recent newest uploads.
func (r Reader) Site(ctx context.Context, id string, recent int) (Site, error) {
	cfg, err := site.Load(ctx, r.S3, r.Bucket, id)
	if err != nil {
		return Site{}, err
	}
	head, err := catalog.New(r.S3, r.Bucket).Head(ctx, id)
	if err != nil {
		return Site{}, err
	}
	state, err := site.LoadState(ctx, r.S3, r.Bucket, id)
	if err != nil {
		return Site{}, err
	}
	out := Site{Site: id, Version: head.Version, AppliedSeq: head.AppliedSeq, Products: head.Products,
		Halted: state.Halted, HaltedReason: state.Reason, Waiting: []uint64{}, Destinations: []Destination{}}

	jobs := syncjob.Store{S3: r.S3, Bucket: r.Bucket}
	for _, d := range cfg.Destinations {
		ack, err := jobs.Ack(ctx, id, d.Name)
		if err != nil {
			return Site{}, err
		}
		target := d.URL
		if d.Type == "s3" {
			target = "s3://" + d.Bucket + "/" + d.Prefix
		}
		dest := Destination{Name: d.Name, Type: d.Type, Target: target, AckedVersion: ack.Version, AckedAt: ack.AckedAt}
		if head.Version > ack.Version {
			dest.Backlog = head.Version - ack.Version
		}
		out.Destinations = append(out.Destinations, dest)
	}

	// The records from a little before the applied sequence onwards: the
	// recent ones and every one still waiting to apply.
	store := uploads.NewStore(r.S3, r.Bucket)
	after := uint64(0)
	if head.AppliedSeq > uint64(recent) {
		after = head.AppliedSeq - uint64(recent)
	}
	var recs []uploads.Record
	for read := 0; ; {
		page, more, err := store.List(ctx, id, after, 500)
		if err != nil {
			return Site{}, err
		}
		recs = append(recs, page...)
		read += len(page)
		if !more || len(page) == 0 {
			break
		}
		if read >= scanLimit {
			out.Truncated = true
			break
		}
		after = page[len(page)-1].Sequence
	}
	for _, rec := range recs {
		if rec.Sequence > head.AppliedSeq {
			switch rec.State {
			case uploads.Received, uploads.Queued, uploads.Importing:
				out.Waiting = append(out.Waiting, rec.Sequence)
			}
		}
	}
	slices.Reverse(recs)
	out.Recent = recs[:min(recent, len(recs))]
	return out, nil
}

// All reads every listed site's snapshot. A site that cannot be read is
// reported in errs and left out; the rest are still shown.
func (r Reader) All(ctx context.Context, recent int) (sites []Site, more bool, errs error) {
	ids, more, err := r.Sites(ctx)
	if err != nil {
		return nil, false, err
	}
	var problems []error
	for _, id := range ids {
		s, err := r.Site(ctx, id, recent)
		if err != nil {
			problems = append(problems, fmt.Errorf("site %s: %w", id, err))
			continue
		}
		sites = append(sites, s)
	}
	return sites, more, errors.Join(problems...)
}
