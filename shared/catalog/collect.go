package catalog

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// Collected counts what one Collect removed.
type Collected struct {
	Versions int `json:"versions"`
	Shards   int `json:"shards"`
}

// Collect removes the catalog objects of site that no kept version needs,
// and returns how many it removed.
//
// Marked (never removed) are the versions in keep, every version newer than
// the newest of keep, and every shard any of them references. Removed are
// the versions older than the newest kept one that keep does not name, and
// the shard objects no marked version references whose LastModified is
// older than grace. Choose grace longer than the longest import: a running
// import writes its shards before the version that references them, and
// those shards are young. With an empty keep only unreferenced shards are
// removed. A version in keep that does not exist is an error, and then
// nothing is removed.
//
// An import may also write again, with a fresh LastModified, a shard that
// Collect listed as old and unreferenced. Before each batch of shard
// deletions Collect marks the versions committed since it last looked, and
// a commit checks after its version exists that every shard it wrote is
// still there (Staged.Commit): between them no committed version is left
// referencing a removed shard.
//
// Collect first moves head.json up to the newest version, so that Head
// never has to probe across a removed version.
func (s *Store) Collect(ctx context.Context, site string, keep []uint64, grace time.Duration) (Collected, error) {
	var done Collected
	if err := layout.ValidateSite(site); err != nil {
		return done, fmt.Errorf("catalog: %w", err)
	}
	list, err := s.Versions(ctx, site)
	if err != nil {
		return done, fmt.Errorf("catalog %s: collect: %w", site, err)
	}
	versions := map[uint64]bool{}
	var newest uint64
	for _, v := range list {
		versions[v] = true
		newest = max(newest, v)
	}
	kept := map[uint64]bool{}
	var newestKept uint64
	for _, v := range keep {
		if v != 0 && !versions[v] {
			return done, fmt.Errorf("catalog %s: collect: keep version %d: %s: %w", site, v, layout.CatalogVersionKey(site, v), ErrNotFound)
		}
		kept[v] = true
		newestKept = max(newestKept, v)
	}

	// Mark.
	live := map[string]bool{}
	var dead []string
	for v := range versions {
		if v < newestKept && !kept[v] {
			dead = append(dead, layout.CatalogVersionKey(site, v))
			continue
		}
		if err := s.markShards(ctx, site, v, live); err != nil {
			return done, fmt.Errorf("catalog %s: collect: %w", site, err)
		}
	}
	slices.Sort(dead)
	if newest > 0 {
		if err := s.advanceHead(ctx, site, newest); err != nil {
			return done, fmt.Errorf("catalog %s: collect: %w", site, err)
		}
	}

	// Sweep: versions first, so that no remaining version ever references
	// a removed shard.
	done.Versions, err = s.deleteKeys(ctx, site, dead)
	if err != nil {
		return done, err
	}
	cutoff := s.now().Add(-grace)
	var shards []string
	err = s.list(ctx, shardKeyPrefix(site), func(key string, modified time.Time) error {
		if !live[key] && modified.Before(cutoff) {
			shards = append(shards, key)
		}
		return nil
	})
	if err != nil {
		return done, fmt.Errorf("catalog %s: collect: %w", site, err)
	}
	for len(shards) > 0 {
		// Versions committed meanwhile may reference shards their import
		// wrote again after the listing: mark them before deleting.
		seen := newest
		for {
			ok, err := s.versionExists(ctx, site, seen+1)
			if err != nil {
				return done, fmt.Errorf("catalog %s: collect: %w", site, err)
			}
			if !ok {
				break
			}
			seen++
			if err := s.markShards(ctx, site, seen, live); err != nil {
				return done, fmt.Errorf("catalog %s: collect: %w", site, err)
			}
		}
		newest = seen
		batch := shards[:min(len(shards), deleteBatch)]
		shards = shards[len(batch):]
		batch = slices.DeleteFunc(slices.Clone(batch), func(k string) bool { return live[k] })
		n, err := s.deleteKeys(ctx, site, batch)
		done.Shards += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// markShards adds the shard keys version v references to live.
func (s *Store) markShards(ctx context.Context, site string, v uint64, live map[string]bool) error {
	ver, err := s.Load(ctx, site, v)
	if err != nil {
		return err
	}
	for _, r := range ver.Shards {
		if r.Key != "" {
			live[r.Key] = true
		}
	}
	return nil
}

// Versions lists the catalog versions of site that exist, oldest first.
func (s *Store) Versions(ctx context.Context, site string) ([]uint64, error) {
	if err := layout.ValidateSite(site); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var vs []uint64
	err := s.list(ctx, layout.CatalogVersionPrefix(site), func(key string, _ time.Time) error {
		if _, v, err := layout.ParseCatalogVersionKey(key); err == nil {
			vs = append(vs, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(vs)
	return vs, nil
}

// deleteBatch is the DeleteObjects limit.
const deleteBatch = 1000

// deleteKeys deletes objects in batches of deleteBatch.
func (s *Store) deleteKeys(ctx context.Context, site string, keys []string) (int, error) {
	deleted := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), deleteBatch)]
		keys = keys[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return deleted, fmt.Errorf("catalog %s: collect: delete %s and %d more: %w", site, batch[0], len(batch)-1, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return deleted + len(batch) - len(out.Errors), fmt.Errorf("catalog %s: collect: delete %s: %s %s",
				site, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
		deleted += len(batch)
	}
	return deleted, nil
}
