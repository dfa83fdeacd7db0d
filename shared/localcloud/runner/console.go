package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/localcloud/console"
	"github.com/feedpipe/feedpipe/shared/observe"
	"github.com/feedpipe/feedpipe/shared/site"
)

// consoleSource shows the running stack to the console.
type consoleSource struct {
	r      *Runner
	reader observe.Reader
}

func (c consoleSource) Sites(ctx context.Context) ([]observe.Site, bool, error) {
	if c.reader.Bucket == "" {
		return nil, false, fmt.Errorf("the template has no bucket %s to read sites from", c.r.cfg.ConsoleStore)
	}
	return c.reader.All(ctx, 5)
}

func (c consoleSource) Site(ctx context.Context, id string, recent int) (observe.Site, error) {
	s, err := c.reader.Site(ctx, id, recent)
	if errors.Is(err, site.ErrNotFound) {
		return s, fmt.Errorf("%w: %v", console.ErrNotFound, err)
	}
	return s, err
}

func (c consoleSource) Queues(ctx context.Context) []console.Queue {
	var out []console.Queue
	for _, q := range c.r.Queues(ctx) {
		cq := console.Queue{LogicalID: q.LogicalID, Name: q.Name, Visible: q.Visible, InFlight: q.InFlight, Delayed: q.Delayed, InFlightByGroup: q.InFlightByGroup, Error: q.Error}
		if q.OldestAgeSeconds != nil {
			d := time.Duration(*q.OldestAgeSeconds * float64(time.Second))
			cq.OldestAge = &d
		}
		out = append(out, cq)
	}
	return out
}

func (c consoleSource) Alarms() []alarms.State { return c.r.Alarms() }

func (c consoleSource) Sync(ctx context.Context) error {
	return c.r.FireSchedule(ctx, c.r.cfg.ConsoleSync)
}

func (c consoleSource) Now() time.Time { return c.r.cfg.Clock.Now() }
