package catalog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// Op is one operation of a delta: an upsert of Product under ID, or a
// delete of ID. Product must be a JSON object on one line; Stage keeps the
// slice until it returns (the caller passes a copy it no longer changes) and
// stores its bytes unchanged.
type Op struct {
	Delete  bool
	ID      string
	Product []byte
}

// Delta is one upload's operations. Ops streams them in line order and
// returns the error of its yield, or its own error, which aborts the Stage.
// A Full delta replaces the whole catalog at its point in the batch: every
// product it does not mention is deleted.
type Delta struct {
	Sequence uint64
	Full     bool
	Ops      func(yield func(Op) error) error
}

// Counts are what one delta did, op by op, to the catalog as its
// predecessors in the batch left it. An upsert of an absent id or of new
// bytes is Upserted, of identical bytes Unchanged; a delete of a present id
// is Deleted, of an absent one Unchanged. For a Full delta, Deleted also
// counts the products it replaced by not mentioning them.
type Counts struct {
	Upserted, Deleted, Unchanged int64
}

// Staged is a batch of deltas applied to a base version, ready to commit.
// Nothing of it is visible until Commit succeeds. Its temporary files stay
// until Commit succeeds or fails with ErrConflict, or Discard is called.
type Staged struct {
	store    *Store
	site     string
	base     Version
	counts   []Counts
	products int64
	shards   []ShardRef
	writes   []stagedWrite
	tmp      *scratch
	out      *output

	runs int // sorted runs spilled to disk while staging

	mu      sync.Mutex
	closed  bool
	version Version // set by the first Commit attempt
	doc     []byte  // its document
}

// stagedWrite is a shard object kept in the staged output file.
type stagedWrite struct {
	ref    ShardRef
	off, n int64
}

// Base is the version the batch was staged on.
func (st *Staged) Base() Version { return st.base }

// Counts returns what each delta did, in batch order.
func (st *Staged) Counts() []Counts { return slices.Clone(st.counts) }

// Products is the number of products after the whole batch.
func (st *Staged) Products() int64 { return st.products }

// Written reports the shard objects Commit will write and their total size.
func (st *Staged) Written() (objects int, size int64) {
	for _, w := range st.writes {
		size += w.n
	}
	return len(st.writes), size
}

// Stage applies deltas, in order, to base and prepares the shards that
// change. It reads only the shards of base that the deltas touch (all of
// them when a delta is Full), keeps memory bounded by spilling to the
// store's temporary directory, and makes nothing visible. The result
// equals applying every op one by one to base.
func (s *Store) Stage(ctx context.Context, site string, base Version, deltas []Delta) (*Staged, error) {
	if err := checkVersion(site, base); err != nil {
		return nil, err
	}
	base.Site = site
	cov, err := newCover(base.Shards)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: stage on version %d: %w: %v", site, base.Version, ErrCorrupt, err)
	}
	b := &stager{s: s, ctx: ctx, site: site, cov: cov, tmp: &scratch{parent: s.tempDir},
		groups: make([]group, len(cov.refs)), counts: make([]Counts, len(deltas))}
	for i, ref := range cov.refs {
		b.groups[i].byHash = ref.Count == 0
	}
	defer b.release()
	st, err := b.run(base, deltas)
	if err != nil {
		b.abort()
		return nil, err
	}
	return st, nil
}

// stager is the state of one Stage call.
type stager struct {
	s      *Store
	ctx    context.Context
	site   string
	cov    *cover
	tmp    *scratch
	groups []group // one per shard of the base
	mem    int64   // bytes of ops held in groups
	seq    uint64
	spill  *spillFile
	runs   int
	fulls  []int // indexes of the Full deltas
	counts []Counts
	out    *output
	enc    *zstd.Encoder
	spare  []byte // memory of the last released shard buffer, for reuse
	writes []stagedWrite
}

// group is the ops of one base shard: sorted runs in the spill file and the
// ops since the last spill. The ops of a shard with products are sorted by
// id, to merge with its products; those of an empty shard (a new catalog's
// root) by hash, so that they arrive shard by shard of the result.
type group struct {
	mem     []op
	runs    []run
	byHash  bool // ops sorted by compareOps, else by compareIDs
	touched bool
	upBytes int64 // NDJSON bytes of its upserts
	upCount int   // and their number
}

func (b *stager) abort() {
	if b.spill != nil {
		b.spill.remove()
	}
	if b.out != nil {
		b.out.close()
	}
	b.tmp.remove()
}

func (b *stager) run(base Version, deltas []Delta) (*Staged, error) {
	for i, d := range deltas {
		if err := b.ingest(i, d); err != nil {
			return nil, fmt.Errorf("catalog %s: stage delta %d (sequence %d): %w", b.site, i, d.Sequence, err)
		}
	}
	// Small batches stage their shards in memory: a quarter of the budget,
	// as the ops and shards being merged take the rest.
	b.out = &output{tmp: b.tmp, limit: int(b.s.memoryBudget / 4)}

	var reads []ShardRef
	for i := range b.groups {
		if ref := b.cov.refs[i]; b.groups[i].touched && ref.Key != "" {
			reads = append(reads, ref)
		}
	}
	pf := b.s.prefetch(b.ctx, b.site, reads)
	defer pf.stop()

	products := base.Products
	var shards []ShardRef
	for i := range b.groups {
		ref := b.cov.refs[i]
		if !b.groups[i].touched && len(b.fulls) == 0 {
			shards = append(shards, ref)
			continue
		}
		var old recordReader = emptyReader{}
		if b.groups[i].touched && ref.Key != "" {
			r, err := pf.open()
			if err != nil {
				return nil, err
			}
			old = r
		}
		refs, err := b.mergeGroup(i, old)
		old.close()
		if err != nil {
			return nil, err
		}
		products -= int64(ref.Count)
		for _, r := range refs {
			products += int64(r.Count)
		}
		shards = append(shards, refs...)
	}
	if b.spill != nil {
		b.spill.remove()
		b.spill = nil
	}
	if err := b.out.flush(); err != nil {
		return nil, fmt.Errorf("catalog %s: stage: %w", b.site, err)
	}
	return &Staged{store: b.s, site: b.site, base: base, counts: b.counts, products: products,
		shards: shards, writes: b.writes, tmp: b.tmp, out: b.out, runs: b.runs}, nil
}

// ingest reads one delta's ops into the groups of their shards.
func (b *stager) ingest(di int, d Delta) error {
	if d.Full {
		b.fulls = append(b.fulls, di)
	}
	if d.Ops == nil {
		return nil
	}
	line := 0
	return d.Ops(func(o Op) error {
		line++
		if line&1023 == 0 {
			if err := b.ctx.Err(); err != nil {
				return err
			}
		}
		if err := layout.ValidateProductID(o.ID); err != nil {
			return fmt.Errorf("op %d: %w", line, err)
		}
		rec := op{hash: idHash(o.ID), id: o.ID, seq: b.seq, delta: di, del: o.Delete}
		g := &b.groups[b.cov.lookup(rec.hash)]
		if !o.Delete {
			if err := checkProduct(o.Product); err != nil {
				return fmt.Errorf("op %d (id %q): %w", line, o.ID, err)
			}
			rec.product = o.Product
			g.upBytes += lineLen(o.ID, o.Product)
			g.upCount++
		}
		b.seq++
		g.mem = append(g.mem, rec)
		g.touched = true
		b.mem += rec.size()
		if b.mem > b.s.memoryBudget {
			return b.spillAll()
		}
		return nil
	})
}

// spillAll writes every group's ops in memory as one sorted run each.
func (b *stager) spillAll() error {
	if b.spill == nil {
		sf, err := newSpillFile(b.tmp)
		if err != nil {
			return err
		}
		b.spill = sf
	}
	for i := range b.groups {
		g := &b.groups[i]
		if len(g.mem) == 0 {
			continue
		}
		r, err := b.spill.writeRun(&memRun{ops: sortOps(g.mem, g.byHash)})
		if err != nil {
			return err
		}
		g.runs = append(g.runs, r)
		g.mem = nil
		b.runs++
	}
	b.mem = 0
	return nil
}

// sortKey is an op's place in a sort: sorting keys and then moving each op
// once costs a fraction of sorting the ops themselves.
type sortKey struct {
	hash uint64
	i    int
}

// sortOps returns ops sorted by compareOps (byHash) or compareIDs, in a new
// slice.
func sortOps(ops []op, byHash bool) []op {
	keys := make([]sortKey, len(ops))
	for i := range ops {
		keys[i] = sortKey{ops[i].hash, i}
	}
	if byHash {
		slices.SortFunc(keys, func(a, b sortKey) int {
			if c := cmp.Compare(a.hash, b.hash); c != 0 {
				return c
			}
			return compareIDs(&ops[a.i], &ops[b.i])
		})
	} else {
		slices.SortFunc(keys, func(a, b sortKey) int { return compareIDs(&ops[a.i], &ops[b.i]) })
	}
	out := make([]op, len(ops))
	for j, k := range keys {
		out[j] = ops[k.i]
	}
	return out
}

// groupOps returns the group's ops in its order, merging its spilled runs.
func (b *stager) groupOps(g *group) (opReader, error) {
	mem := &memRun{ops: sortOps(g.mem, g.byHash)}
	if len(g.runs) == 0 {
		return mem, nil
	}
	runs, err := b.spill.reduceRuns(g.runs, g.order())
	if err != nil {
		return nil, err
	}
	readers := make([]opReader, 0, len(runs)+1)
	for _, r := range runs {
		readers = append(readers, b.spill.open(r, 32<<10))
	}
	return newOpMerger(append(readers, mem), g.order())
}

// order is the order of the group's ops.
func (g *group) order() opOrder {
	if g.byHash {
		return compareOps
	}
	return compareIDs
}

// mergeGroup applies the group's ops to the old content of its shard and
// returns the shard's refs after the batch: the old ref if nothing changed,
// else the new shard or, past the split size, its children.
func (b *stager) mergeGroup(i int, old recordReader) ([]ShardRef, error) {
	g := &b.groups[i]
	ref, p := b.cov.refs[i], b.cov.prefixes[i]
	if !g.touched {
		// Only a full upload reaches an untouched shard: it empties it.
		if ref.Count == 0 {
			return []ShardRef{ref}, nil
		}
		b.counts[b.fulls[0]].Deleted += int64(ref.Count)
		return []ShardRef{{ID: ref.ID}}, nil
	}
	ops, err := b.groupOps(g)
	if err != nil {
		return nil, err
	}
	g.mem, g.runs = nil, nil
	if g.byHash {
		return b.build(ref, p, ops, g)
	}
	out := b.shardBuffer(int64(ref.Raw) + g.upBytes)
	changed, err := b.apply(old, ops, out)
	if err != nil || !changed {
		b.spare = out.release()
		return []ShardRef{ref}, err
	}
	return b.finalize(p, out)
}

// apply merges the old products (in id order) with the ops (in id, batch
// order), counts every op against the state the batch has reached, and
// adds the resulting products to out. It reports whether any product
// differs from the old content.
func (b *stager) apply(old recordReader, ops opReader, out *recBuffer) (changed bool, err error) {
	oldMore, err := old.next()
	if err != nil {
		return false, err
	}
	opMore, err := ops.next()
	if err != nil {
		return false, err
	}
	for n := 0; oldMore || opMore; n++ {
		if n&4095 == 0 {
			if err := b.ctx.Err(); err != nil {
				return false, err
			}
		}
		var id string
		switch {
		case !opMore:
			id = old.current().id
		case !oldMore:
			id = ops.current().id
		default:
			id = min(old.current().id, ops.current().id)
		}
		var cur, was []byte
		present, wasPresent := false, false
		if oldMore && old.current().id == id {
			cur = old.current().product
			was, present, wasPresent = cur, true, true
		}
		if cur, present, opMore, err = b.reduce(ops, opMore, id, cur, present); err != nil {
			return false, err
		}
		if present {
			if err := out.add(id, cur); err != nil {
				return false, err
			}
		}
		if present != wasPresent || (present && !bytes.Equal(cur, was)) {
			changed = true
		}
		if wasPresent {
			if oldMore, err = old.next(); err != nil {
				return false, err
			}
		}
	}
	return changed, nil
}

// reduce applies the ops of id at the head of ops (opMore: ops is not at
// its end) to the product's state before the batch, counting each op
// against the state the batch has reached, and returns the state after the
// batch and whether ops has more.
func (b *stager) reduce(ops opReader, opMore bool, id string, cur []byte, present bool) ([]byte, bool, bool, error) {
	full := 0 // the next Full delta this id has not passed yet
	for opMore && ops.current().id == id {
		o := ops.current()
		for ; full < len(b.fulls) && b.fulls[full] < o.delta; full++ {
			if present {
				b.counts[b.fulls[full]].Deleted++
				cur, present = nil, false
			}
		}
		if full < len(b.fulls) && b.fulls[full] == o.delta {
			full++
		}
		c := &b.counts[o.delta]
		switch {
		case o.del && present:
			c.Deleted++
			cur, present = nil, false
		case o.del:
			c.Unchanged++
		case present && bytes.Equal(cur, o.product):
			c.Unchanged++
		default:
			c.Upserted++
			cur, present = o.product, true
		}
		var err error
		if opMore, err = ops.next(); err != nil {
			return nil, false, false, err
		}
	}
	for ; full < len(b.fulls); full++ {
		if present {
			b.counts[b.fulls[full]].Deleted++
			cur, present = nil, false
		}
	}
	return cur, present, opMore, nil
}

// build writes the products of the group of an empty base shard from its
// ops in hash order, without buffering them whole: it picks the depth below
// p at which the group's upserts would fill shards up to the split size,
// and finalizes those leaves one by one, each sorted by id in memory (a leaf
// that turns out larger than a shard splits further, as in finalize). It
// returns ref when no product remains.
func (b *stager) build(ref ShardRef, p prefix, ops opReader, g *group) ([]ShardRef, error) {
	k := 0
	for p.depth+k < maxDepth && (g.upBytes>>k > b.s.splitBytes || int64(g.upCount)>>k > int64(b.s.splitProducts)) {
		k++
	}
	opMore, err := ops.next()
	if err != nil {
		return nil, err
	}
	var refs []ShardRef
	var leaf []record
	total := 0
	for i := uint64(0); i < 1<<k; i++ {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		leaf = leaf[:0]
		for opMore && p.childIndex(ops.current().hash, k) == i {
			id := ops.current().id
			var product []byte
			var present bool
			if product, present, opMore, err = b.reduce(ops, opMore, id, nil, false); err != nil {
				return nil, err
			}
			if present {
				leaf = append(leaf, record{id: id, product: product})
			}
		}
		slices.SortFunc(leaf, func(x, y record) int { return strings.Compare(x.id, y.id) })
		var size int64
		for _, r := range leaf {
			size += lineLen(r.id, r.product)
		}
		buf := b.shardBuffer(size)
		for _, r := range leaf {
			if err := buf.add(r.id, r.product); err != nil {
				buf.release()
				return nil, err
			}
		}
		total += len(leaf)
		sub, err := b.finalize(p.child(k, i), buf)
		if err != nil {
			return nil, err
		}
		refs = append(refs, sub...)
	}
	if opMore {
		return nil, fmt.Errorf("catalog %s: stage shard %s: %w: ops out of hash order", b.site, p, ErrCorrupt)
	}
	if total == 0 {
		return []ShardRef{ref}, nil
	}
	return refs, nil
}

// splitPassBits is the most bits one pass of a split adds (2^8 children at
// once).
const splitPassBits = 8

// finalize writes the products in buf as the shard p or, when they exceed
// the split size, as its children, as many bits deeper as it takes. It
// releases buf.
func (b *stager) finalize(p prefix, buf *recBuffer) ([]ShardRef, error) {
	defer func() {
		if mem := buf.release(); cap(mem) > cap(b.spare) {
			b.spare = mem
		}
	}()
	if buf.count == 0 {
		return []ShardRef{{ID: p.String()}}, nil
	}
	if (buf.raw <= b.s.splitBytes && buf.count <= b.s.splitProducts) || p.depth >= maxDepth {
		ref, err := b.writeShard(p, buf)
		if err != nil {
			return nil, err
		}
		return []ShardRef{ref}, nil
	}
	k := 1
	for k < splitPassBits && p.depth+k < maxDepth &&
		(buf.raw>>k > b.s.splitBytes || int64(buf.count)>>k > int64(b.s.splitProducts)) {
		k++
	}
	children := make([]*recBuffer, 1<<k)
	limit := max((b.s.memoryBudget/2)>>k, 4<<10)
	for i := range children {
		children[i] = newRecBuffer(b.tmp, limit, 8<<10)
	}
	release := func() {
		for _, c := range children {
			c.release()
		}
	}
	r, err := buf.reader()
	if err != nil {
		release()
		return nil, err
	}
	for {
		more, err := r.next()
		if err != nil {
			release()
			return nil, err
		}
		if !more {
			break
		}
		rec := r.current()
		if err := children[p.childIndex(idHash(rec.id), k)].add(rec.id, rec.product); err != nil {
			release()
			return nil, err
		}
	}
	buf.release()
	var refs []ShardRef
	for i, c := range children {
		sub, err := b.finalize(p.child(k, uint64(i)), c)
		if err != nil {
			release()
			return nil, err
		}
		refs = append(refs, sub...)
	}
	return refs, nil
}

// shardBuffer returns a buffer for one shard's products, in memory up to
// half the budget, starting with room for about hint bytes: the spare
// memory of the last shard, of an earlier Stage, or new. Growing a
// megabyte buffer by appending copies it several times over.
func (b *stager) shardBuffer(hint int64) *recBuffer {
	limit := b.s.memoryBudget / 2
	mem := b.spare
	b.spare = nil
	if mem == nil {
		if p, ok := b.s.shardBufs.Get().(*[]byte); ok {
			mem = *p
		}
	}
	if hint = min(hint, limit); int64(cap(mem)) < hint {
		// With room to spare, so that one buffer serves the next shards.
		mem = make([]byte, 0, min(hint+hint/4, limit))
	}
	return newRecBuffer(b.tmp, limit, 32<<10).withMemory(mem)
}

// release returns the stager's encoder and spare shard memory, if any, to
// the store's pools: a new encoder allocates its history and tables, which
// costs more than encoding a small shard.
func (b *stager) release() {
	if b.enc != nil {
		b.enc.Reset(nil)
		b.s.encoders.Put(b.enc)
		b.enc = nil
	}
	if b.spare != nil {
		mem := b.spare[:0]
		b.s.shardBufs.Put(&mem)
		b.spare = nil
	}
}

// encoderLevel trades compression for speed; the fastest level keeps
// staging near the cost of decoding the input.
const encoderLevel = zstd.SpeedFastest

// writeShard appends the products in buf, as one compressed shard object,
// to the staged output and names it by the hash of the object's bytes
// (hashing the compressed bytes costs a fifth of hashing the NDJSON).
func (b *stager) writeShard(p prefix, buf *recBuffer) (ShardRef, error) {
	if b.enc == nil {
		enc, ok := b.s.encoders.Get().(*zstd.Encoder)
		if !ok {
			var err error
			if enc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(encoderLevel)); err != nil {
				return ShardRef{}, fmt.Errorf("catalog %s: stage: %w", b.site, err)
			}
		}
		b.enc = enc
	}
	content, err := buf.content()
	if err != nil {
		return ShardRef{}, err
	}
	start := b.out.n
	h := sha256.New()
	b.enc.Reset(io.MultiWriter(b.out, h))
	raw, err := io.Copy(b.enc, content)
	if err == nil {
		err = b.enc.Close()
	}
	if err != nil {
		return ShardRef{}, fmt.Errorf("catalog %s: stage shard %s: %w", b.site, p, err)
	}
	if raw != buf.raw {
		return ShardRef{}, fmt.Errorf("catalog %s: stage shard %s: wrote %d bytes, expected %d", b.site, p, raw, buf.raw)
	}
	id := p.String()
	sum := hex.EncodeToString(h.Sum(nil))[:contentHashLen]
	ref := ShardRef{ID: id, Key: layout.CatalogShardKey(b.site, id, sum), Count: buf.count, Bytes: b.out.n - start, Raw: raw}
	b.writes = append(b.writes, stagedWrite{ref: ref, off: start, n: ref.Bytes})
	return ref, nil
}
