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
// Collect first moves head.json up to the newest version, so that Head
// never has to probe across a removed version.
func (s *Store) Collect(ctx context.Context, site string, keep []uint64, grace time.Duration) (removed int, err error) {
	if err := layout.ValidateSite(site); err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	versions := map[uint64]bool{}
	var newest uint64
	err = s.list(ctx, layout.CatalogVersionPrefix(site), func(key string, _ time.Time) error {
		if _, v, err := layout.ParseCatalogVersionKey(key); err == nil {
			versions[v] = true
			newest = max(newest, v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("catalog %s: collect: %w", site, err)
	}
	kept := map[uint64]bool{}
	var newestKept uint64
	for _, v := range keep {
		if v != 0 && !versions[v] {
			return 0, fmt.Errorf("catalog %s: collect: keep version %d: %s: %w", site, v, layout.CatalogVersionKey(site, v), ErrNotFound)
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
		ver, err := s.Load(ctx, site, v)
		if err != nil {
			return 0, fmt.Errorf("catalog %s: collect: %w", site, err)
		}
		for _, r := range ver.Shards {
			if r.Key != "" {
				live[r.Key] = true
			}
		}
	}
	slices.Sort(dead)
	if newest > 0 {
		if err := s.advanceHead(ctx, site, newest); err != nil {
			return 0, fmt.Errorf("catalog %s: collect: %w", site, err)
		}
	}

	// Sweep: versions first, so that no remaining version ever references
	// a removed shard.
	n, err := s.deleteKeys(ctx, site, dead)
	removed += n
	if err != nil {
		return removed, err
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
		return removed, fmt.Errorf("catalog %s: collect: %w", site, err)
	}
	n, err = s.deleteKeys(ctx, site, shards)
	return removed + n, err
}

// deleteKeys deletes objects in batches of 1000 (the DeleteObjects limit).
func (s *Store) deleteKeys(ctx context.Context, site string, keys []string) (int, error) {
	deleted := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
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
