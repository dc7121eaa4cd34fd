package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"nixpush/cache"
)

// deleteBatch bounds the keys of one Delete call.
const deleteBatch = 1000

// deleteKeys deletes hash parts or keys (with suffix appended) in batches.
func deleteKeys(ctx context.Context, c cache.Cache, names []string, suffix string) error {
	for chunk := range slices.Chunk(names, deleteBatch) {
		keys := make([]string, len(chunk))
		for i, n := range chunk {
			keys[i] = n + suffix
		}
		if err := c.Delete(ctx, keys); err != nil {
			return err
		}
	}
	return nil
}

// readTexts reads the narinfos of hash parts, jobs at a time; those
// already gone are left out.
func readTexts(ctx context.Context, c cache.Cache, hashes []string, jobs int) (map[string][]byte, error) {
	texts := map[string][]byte{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, h := range hashes {
		g.Go(func() error {
			text, err := cache.ReadSmall(gctx, c, h+".narinfo", cache.MaxNarInfoSize)
			if errors.Is(err, cache.ErrNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read narinfo before deleting it: %w", err)
			}
			mu.Lock()
			texts[h] = text
			mu.Unlock()
			return nil
		})
	}
	return texts, g.Wait()
}

// newSince lists the narinfos again and reads those new or rewritten
// since the listing before; it makes the new listing the latest.
func (g *collector) newSince(ctx context.Context) (map[string]*node, error) {
	now, err := listNarInfos(ctx, g.cache)
	if err != nil {
		return nil, err
	}
	var fresh []listed
	for h, o := range now {
		if before, ok := g.seen[h]; !ok || !before.modTime.Equal(o.modTime) {
			fresh = append(fresh, o)
		}
	}
	g.seen = now
	nodes, _, err := readNodes(ctx, g.cache, fresh, g.opts.Jobs)
	return nodes, err
}

// restore puts back deleted narinfos that narinfos written since the
// first listing name, references first (see the package comment).
func (g *collector) restore(ctx context.Context) error {
	fresh, err := g.newSince(ctx)
	if err != nil {
		return err
	}
	maps.Copy(g.nodes, fresh)
	need := map[string]bool{}
	for h := range fresh {
		closure(g.nodes, need, h)
	}
	back := map[string]bool{}
	for h := range g.doomed {
		if _, present := g.seen[h]; present {
			delete(g.doomed, h) // pushed again by someone else: not ours to delete
			g.result.Bytes -= g.first[h].size
		} else if need[h] && g.texts[h] != nil {
			back[h] = true
		}
	}
	d := depths(g.nodes, back)
	order := slices.Collect(maps.Keys(back))
	slices.SortFunc(order, func(a, b string) int { return d[a] - d[b] })
	for _, h := range order {
		if err := g.cache.Put(ctx, h+".narinfo", strings.NewReader(string(g.texts[h])), cache.TypeNarInfo); err != nil {
			return fmt.Errorf("put back narinfo %s: %w", h, err)
		}
		delete(g.doomed, h)
		g.result.Bytes -= g.first[h].size
		g.result.Restored = append(g.result.Restored, g.nodes[h].path)
	}
	slices.Sort(g.result.Restored)
	g.result.Paths = slices.DeleteFunc(g.result.Paths, func(p string) bool { return !g.doomed[hashOf(p)] })
	return nil
}

// collectNARs lists the NARs (after every narinfo listing) and dooms
// those no remaining narinfo points to, unless written within the grace
// period.
func (g *collector) collectNARs(ctx context.Context) error {
	referenced := map[string]bool{}
	for h, n := range g.nodes {
		if !g.doomed[h] {
			referenced[n.url] = true
		}
	}
	var keys []string
	err := g.cache.List(ctx, "nar/", func(o cache.Object) error {
		if !referenced[o.Key] && o.ModTime.Before(g.fresh) {
			keys = append(keys, o.Key)
			g.result.Bytes += o.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list NARs of %s: %w", g.cache, err)
	}
	slices.Sort(keys)
	g.result.NARs = keys
	if !g.opts.Delete {
		return nil
	}
	if err := deleteKeys(ctx, g.cache, keys, ""); err != nil {
		return fmt.Errorf("delete NARs: %w", err)
	}
	g.gone = map[string]bool{}
	for _, k := range keys {
		g.gone[k] = true
	}
	return nil
}

// findDamaged looks for narinfos written since the NARs were listed whose
// NAR gc deleted (see the package comment).
func (g *collector) findDamaged(ctx context.Context) error {
	fresh, err := g.newSince(ctx)
	if err != nil {
		return err
	}
	for _, n := range fresh {
		if g.gone[n.url] {
			g.result.Damaged = append(g.result.Damaged, n.path)
		}
	}
	slices.Sort(g.result.Damaged)
	return nil
}

// collectExtras dooms build logs no kept narinfo's Deriver names and
// realisations whose output path is not kept; both keep the grace period.
// A realisation that cannot be read is kept: gc deletes only what it
// understands.
func (g *collector) collectExtras(ctx context.Context) error {
	derivers := map[string]bool{}
	for h, n := range g.nodes {
		if !g.doomed[h] && n.deriver != "" {
			derivers[n.deriver] = true
		}
	}
	var logs, realisations []string
	err := g.cache.List(ctx, "log/", func(o cache.Object) error {
		if !derivers[strings.TrimPrefix(o.Key, "log/")] && o.ModTime.Before(g.fresh) {
			logs = append(logs, o.Key)
			g.result.Bytes += o.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list logs of %s: %w", g.cache, err)
	}
	// Realisations in both formats (cache/buildtrace.go): each names its
	// output as outPath.
	var candidates []cache.Object
	for _, prefix := range []string{"realisations/", cache.BuildTracePrefix} {
		err = g.cache.List(ctx, prefix, func(o cache.Object) error {
			if o.ModTime.Before(g.fresh) && strings.HasSuffix(o.Key, ".doi") {
				candidates = append(candidates, o)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list realisations of %s: %w", g.cache, err)
		}
	}
	var mu sync.Mutex
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(g.opts.Jobs)
	for _, o := range candidates {
		eg.Go(func() error {
			b, err := cache.ReadSmall(gctx, g.cache, o.Key, 1<<20)
			if errors.Is(err, cache.ErrNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read realisation: %w", err)
			}
			var r struct {
				OutPath string `json:"outPath"`
			}
			if json.Unmarshal(b, &r) != nil || r.OutPath == "" {
				return nil
			}
			h := hashOf(r.OutPath)
			if _, present := g.seen[h]; present && !g.doomed[h] {
				return nil
			}
			mu.Lock()
			realisations = append(realisations, o.Key)
			g.result.Bytes += o.Size
			mu.Unlock()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	slices.Sort(logs)
	slices.Sort(realisations)
	g.result.Logs, g.result.Realisations = logs, realisations
	if !g.opts.Delete {
		return nil
	}
	if err := deleteKeys(ctx, g.cache, append(logs, realisations...), ""); err != nil {
		return fmt.Errorf("delete logs and realisations: %w", err)
	}
	return nil
}
