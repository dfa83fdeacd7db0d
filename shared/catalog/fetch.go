package catalog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// maxPrefetchBytes is the largest shard read ahead into memory; a larger one
// is opened ahead and streamed.
const maxPrefetchBytes = 16 << 20

// prefetcher reads shard objects ahead of a consumer that opens them in
// order, at most Store.concurrency at a time, so that a stage or diff over
// many shards does not wait for one request after another.
type prefetcher struct {
	s      *Store
	site   string
	refs   []ShardRef
	ctx    context.Context
	cancel context.CancelFunc
	slots  []chan fetched
	sem    chan struct{}
	wg     sync.WaitGroup
	next   int
}

type fetched struct {
	body   []byte
	stream io.ReadCloser
	err    error
}

// prefetch starts reading refs (all with a Key) in order.
func (s *Store) prefetch(ctx context.Context, site string, refs []ShardRef) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{s: s, site: site, refs: refs, ctx: ctx, cancel: cancel,
		slots: make([]chan fetched, len(refs)), sem: make(chan struct{}, s.concurrency)}
	for i := range p.slots {
		p.slots[i] = make(chan fetched, 1)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := range refs {
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.slots[i] <- p.fetch(refs[i])
			}()
		}
	}()
	return p
}

func (p *prefetcher) fetch(ref ShardRef) fetched {
	out, err := p.s.client.GetObject(p.ctx, &s3.GetObjectInput{Bucket: &p.s.bucket, Key: &ref.Key})
	if isNotFound(err) {
		return fetched{err: fmt.Errorf("catalog %s: read shard %s: %w", p.site, ref.Key, ErrNotFound)}
	}
	if err != nil {
		return fetched{err: fmt.Errorf("catalog %s: read shard %s: %w", p.site, ref.Key, err)}
	}
	if ref.Bytes > maxPrefetchBytes {
		return fetched{stream: out.Body}
	}
	defer out.Body.Close()
	buf := bytes.NewBuffer(make([]byte, 0, ref.Bytes+bytes.MinRead))
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return fetched{err: fmt.Errorf("catalog %s: read shard %s: %w", p.site, ref.Key, err)}
	}
	return fetched{body: buf.Bytes()}
}

// open returns a reader of the next shard in order. Taking it lets the
// prefetcher start one more read, so a consumer may hold several open.
func (p *prefetcher) open() (*shardReader, error) {
	i := p.next
	p.next++
	var f fetched
	select {
	case f = <-p.slots[i]:
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
	<-p.sem
	if f.err != nil {
		return nil, f.err
	}
	body := f.stream
	if body == nil {
		body = io.NopCloser(bytes.NewReader(f.body))
	}
	return p.s.newShardReader(p.site, p.refs[i], body)
}

// stop ends reading ahead and frees what was read but not opened.
func (p *prefetcher) stop() {
	p.cancel()
	p.wg.Wait()
	for _, c := range p.slots {
		select {
		case f := <-c:
			if f.stream != nil {
				f.stream.Close()
			}
		default:
		}
	}
}
