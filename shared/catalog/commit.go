package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// Commit makes the batch visible as version base+1 with the given
// appliedSeq (at least the base's). It first writes every shard the batch
// changed, then creates the version document with If-None-Match: *, then
// writes again any of those shards a concurrent Collect removed, then
// moves head.json forward (best effort: Head does not depend on it).
//
// If another commit created version base+1 first, Commit returns an error
// wrapping ErrConflict and nothing of this batch is visible: read the head
// again and stage the batch anew. Other errors leave the batch staged;
// Commit may be called again, or Discard. A successful Commit or a conflict
// removes the temporary files.
func (st *Staged) Commit(ctx context.Context, appliedSeq uint64) (Version, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	next := st.base.Version + 1
	if st.closed {
		return Version{}, fmt.Errorf("catalog %s: commit version %d: %w", st.site, next, ErrClosed)
	}
	if appliedSeq < st.base.AppliedSeq {
		return Version{}, fmt.Errorf("catalog %s: commit version %d: appliedSeq %d is below the base's %d", st.site, next, appliedSeq, st.base.AppliedSeq)
	}
	if err := st.upload(ctx); err != nil {
		return Version{}, err
	}
	s := st.store
	if st.doc == nil {
		// Fixed at the first attempt, so that a retry writes the same bytes
		// and recognizes its own earlier write.
		st.version = Version{
			Site:       st.site,
			Version:    next,
			AppliedSeq: appliedSeq,
			Parent:     st.base.Version,
			CreatedAt:  s.now().UTC(),
			Products:   st.products,
			Shards:     st.shards,
		}
		doc, err := json.Marshal(versionDoc{Format: docFormat, ShardHash: shardHashName, Version: st.version})
		if err != nil {
			return Version{}, fmt.Errorf("catalog %s: commit version %d: %w", st.site, next, err)
		}
		st.doc = doc
	}
	if st.version.AppliedSeq != appliedSeq {
		return Version{}, fmt.Errorf("catalog %s: commit version %d: retried with appliedSeq %d, first attempt had %d", st.site, next, appliedSeq, st.version.AppliedSeq)
	}
	v, body := st.version, st.doc
	key := layout.CatalogVersionKey(st.site, next)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json"),
		IfNoneMatch: aws.String("*"),
	})
	if isPreconditionFailed(err) {
		// A retried request may find the document its first attempt wrote.
		if same, rerr := s.sameObject(ctx, key, body); rerr == nil && same {
			err = nil
		} else {
			st.release()
			return Version{}, fmt.Errorf("catalog %s: commit version %d: %s: %w", st.site, next, key, ErrConflict)
		}
	}
	if err != nil {
		return Version{}, fmt.Errorf("catalog %s: commit version %d: write %s: %w", st.site, next, key, err)
	}
	if err := st.restore(ctx); err != nil {
		// The version exists; calling Commit again writes the shards again
		// and recognizes the version as its own.
		return Version{}, fmt.Errorf("catalog %s: commit version %d: %w", st.site, next, err)
	}
	st.release()
	_ = s.advanceHead(ctx, st.site, next) // a hint; Head probes past it
	return v, nil
}

// upload writes the batch's shard objects, several at once. Each is written
// even if an object with its key exists: it may be about to be collected.
func (st *Staged) upload(ctx context.Context) error {
	return st.each(ctx, st.writes, st.put)
}

func (st *Staged) put(ctx context.Context, w stagedWrite) error {
	s := st.store
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: aws.String(w.ref.Key),
		Body:          io.NewSectionReader(st.out, w.off, w.n),
		ContentLength: aws.Int64(w.n), ContentType: aws.String("application/zstd"),
	})
	if err != nil {
		return fmt.Errorf("catalog %s: write shard %s: %w", st.site, w.ref.Key, err)
	}
	return nil
}

// restore writes again every shard of the batch that is gone: a Collect
// that listed an older copy of the same key as unreferenced may have
// removed it after upload wrote it, before the version existed.
func (st *Staged) restore(ctx context.Context) error {
	return st.each(ctx, st.writes, func(ctx context.Context, w stagedWrite) error {
		_, err := st.store.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &st.store.bucket, Key: aws.String(w.ref.Key)})
		if isNotFound(err) {
			return st.put(ctx, w)
		}
		if err != nil {
			return fmt.Errorf("catalog %s: check shard %s: %w", st.site, w.ref.Key, err)
		}
		return nil
	})
}

// each runs fn for every write, the store's concurrency at once, and
// returns the first error (the rest are cancelled).
func (st *Staged) each(ctx context.Context, writes []stagedWrite, fn func(context.Context, stagedWrite) error) error {
	s := st.store
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan stagedWrite)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range min(s.concurrency, len(writes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				if err := fn(ctx, w); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
	for _, w := range writes {
		select {
		case jobs <- w:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("catalog %s: write shards: %w", st.site, ctx.Err())
	}
	return first
}

// sameObject reports whether the object at key holds exactly body.
func (s *Store) sameObject(ctx context.Context, key string, body []byte) (bool, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return false, err
	}
	defer out.Body.Close()
	got, err := io.ReadAll(io.LimitReader(out.Body, int64(len(body))+1))
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, body), nil
}

// Discard removes the batch's temporary files. It is safe to call more than
// once and after Commit; nothing of a discarded batch is ever visible.
func (st *Staged) Discard() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.release()
}

func (st *Staged) release() error {
	if st.closed {
		return nil
	}
	st.closed = true
	err := st.out.close()
	if rerr := st.tmp.remove(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("catalog %s: discard staged batch in %s: %w", st.site, st.tmp.dir, err)
	}
	return nil
}
