package catalog

import (
	"bytes"
	"context"
	"fmt"
	"sort"
)

// Change is one difference between two versions: the product as it is in
// the newer version, or a nil Product when the id was deleted.
type Change struct {
	ID      string
	Product []byte
}

// diffTask is a range of the hash space where one version has a single
// shard (coarse) and the other one or more (fine).
type diffTask struct {
	coarse       ShardRef
	fine         []ShardRef
	finePrefixes []prefix
	coarseIsFrom bool
}

// Diff calls yield with every product that differs between from and to, so
// that applying the changes to from gives to. It compares shard by shard:
// ranges whose shard key is the same in both versions are skipped without
// reading. Changes come in id order within each shard of to (or of from,
// where from is split finer), shards in hash order. An error from yield
// stops the diff and is returned. The Products yielded are the caller's.
func (s *Store) Diff(ctx context.Context, site string, from, to Version, yield func(Change) error) error {
	if err := checkVersion(site, from); err != nil {
		return err
	}
	if err := checkVersion(site, to); err != nil {
		return err
	}
	fc, err := newCover(from.Shards)
	if err != nil {
		return fmt.Errorf("catalog %s: diff: version %d: %w: %v", site, from.Version, ErrCorrupt, err)
	}
	tc, err := newCover(to.Shards)
	if err != nil {
		return fmt.Errorf("catalog %s: diff: version %d: %w: %v", site, to.Version, ErrCorrupt, err)
	}
	tasks, err := diffTasks(fc, tc)
	if err != nil {
		return fmt.Errorf("catalog %s: diff %d..%d: %w: %v", site, from.Version, to.Version, ErrCorrupt, err)
	}
	var reads []ShardRef
	for _, t := range tasks {
		if t.coarse.Key != "" {
			reads = append(reads, t.coarse)
		}
		for _, f := range t.fine {
			if f.Key != "" {
				reads = append(reads, f)
			}
		}
	}
	pf := s.prefetch(ctx, site, reads)
	defer pf.stop()
	d := &differ{s: s, pf: pf, yield: yield}
	for _, t := range tasks {
		if err := d.run(t); err != nil {
			return err
		}
	}
	return nil
}

// diffTasks walks the two covers together and keeps the ranges whose
// shards differ.
func diffTasks(fc, tc *cover) ([]diffTask, error) {
	var tasks []diffTask
	i, j := 0, 0
	for i < len(fc.refs) && j < len(tc.refs) {
		fp, tp := fc.prefixes[i], tc.prefixes[j]
		if fp.start() != tp.start() {
			return nil, fmt.Errorf("shards %s and %s are not aligned", fc.refs[i].ID, tc.refs[j].ID)
		}
		switch {
		case fp == tp:
			if fc.refs[i].Key != tc.refs[j].Key {
				tasks = append(tasks, diffTask{coarse: fc.refs[i], fine: tc.refs[j : j+1], finePrefixes: tc.prefixes[j : j+1], coarseIsFrom: true})
			}
			i++
			j++
		case fp.depth < tp.depth:
			k := j
			for k < len(tc.refs) && tc.prefixes[k].end() <= fp.end() {
				k++
			}
			tasks = append(tasks, diffTask{coarse: fc.refs[i], fine: tc.refs[j:k], finePrefixes: tc.prefixes[j:k], coarseIsFrom: true})
			i, j = i+1, k
		default:
			k := i
			for k < len(fc.refs) && fc.prefixes[k].end() <= tp.end() {
				k++
			}
			tasks = append(tasks, diffTask{coarse: tc.refs[j], fine: fc.refs[i:k], finePrefixes: fc.prefixes[i:k], coarseIsFrom: false})
			i, j = k, j+1
		}
	}
	if i != len(fc.refs) || j != len(tc.refs) {
		return nil, fmt.Errorf("shards do not cover the same hash space")
	}
	return tasks, nil
}

type differ struct {
	s     *Store
	pf    *prefetcher
	yield func(Change) error
}

func (d *differ) open(ref ShardRef) (recordReader, error) {
	if ref.Key == "" {
		return emptyReader{}, nil
	}
	return d.pf.open()
}

// run diffs one task. With one fine shard it merges the two shards; with
// several it first sorts the coarse shard's products into buckets, one per
// fine shard, so that at most two streams are open at a time.
func (d *differ) run(t diffTask) error {
	if len(t.fine) == 1 {
		a, err := d.open(t.coarse)
		if err != nil {
			return err
		}
		defer a.close()
		b, err := d.open(t.fine[0])
		if err != nil {
			return err
		}
		defer b.close()
		return d.pair(a, b, t.coarseIsFrom)
	}
	buckets := make([]*recBuffer, len(t.fine))
	limit := max(d.s.memoryBudget/int64(len(t.fine)), 4<<10)
	for i := range buckets {
		buckets[i] = newRecBuffer(&scratch{dir: d.s.tempDir, shared: true}, limit, 8<<10)
	}
	defer func() {
		for _, b := range buckets {
			b.release()
		}
	}()
	if t.coarse.Key != "" {
		r, err := d.pf.open()
		if err != nil {
			return err
		}
		err = func() error {
			defer r.close()
			for {
				more, err := r.next()
				if err != nil || !more {
					return err
				}
				rec := r.current()
				pos := hashPos(idHash(rec.id))
				k := sort.Search(len(t.finePrefixes), func(i int) bool { return t.finePrefixes[i].start() > pos }) - 1
				if err := buckets[k].add(rec.id, rec.product); err != nil {
					return err
				}
			}
		}()
		if err != nil {
			return err
		}
	}
	for i, f := range t.fine {
		a, err := buckets[i].reader()
		if err != nil {
			return err
		}
		b, err := d.open(f)
		if err != nil {
			return err
		}
		err = d.pair(a, b, t.coarseIsFrom)
		b.close()
		buckets[i].release()
		if err != nil {
			return err
		}
	}
	return nil
}

// pair yields the differences of two id-ordered streams; coarse is the
// "from" side when coarseIsFrom.
func (d *differ) pair(coarse, fine recordReader, coarseIsFrom bool) error {
	from, to := coarse, fine
	if !coarseIsFrom {
		from, to = fine, coarse
	}
	fm, err := from.next()
	if err != nil {
		return err
	}
	tm, err := to.next()
	if err != nil {
		return err
	}
	for fm || tm {
		var f, t record
		if fm {
			f = from.current()
		}
		if tm {
			t = to.current()
		}
		switch {
		case tm && (!fm || t.id < f.id):
			if err := d.yield(Change{ID: t.id, Product: bytes.Clone(t.product)}); err != nil {
				return err
			}
			tm, err = to.next()
		case fm && (!tm || f.id < t.id):
			if err := d.yield(Change{ID: f.id}); err != nil {
				return err
			}
			fm, err = from.next()
		default:
			if !bytes.Equal(f.product, t.product) {
				if err := d.yield(Change{ID: t.id, Product: bytes.Clone(t.product)}); err != nil {
					return err
				}
			}
			if fm, err = from.next(); err == nil {
				tm, err = to.next()
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
