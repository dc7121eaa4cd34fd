package gc

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"nixpush/cache"
)

// node is what gc keeps of one narinfo: enough to walk the reference
// graph and find the NAR, never the narinfo's text.
type node struct {
	hash     string // hash part of the store path: the narinfo key without ".narinfo"
	path     string
	refs     []string // hash parts of the references, itself excluded
	url      string   // NAR key, cleaned
	deriver  string   // base name of the .drv, if known
	modTime  time.Time
	size     int64 // bytes of the narinfo object
	fileSize int64 // bytes of the NAR object, as the narinfo says
}

// listed is a narinfo object as List reports it.
type listed struct {
	hash    string
	modTime time.Time
	size    int64
}

// listNarInfos lists the narinfos at the cache's top level.
func listNarInfos(ctx context.Context, c cache.Cache) (map[string]listed, error) {
	out := map[string]listed{}
	err := c.List(ctx, "", func(o cache.Object) error {
		if hash, ok := strings.CutSuffix(o.Key, ".narinfo"); ok && !strings.Contains(hash, "/") {
			out[hash] = listed{hash: hash, modTime: o.ModTime, size: o.Size}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list narinfos of %s: %w", c, err)
	}
	return out, nil
}

// readNodes reads and parses the listed narinfos, jobs at a time. Those
// gone since the listing are skipped; those that do not parse are
// returned by key in unreadable.
func readNodes(ctx context.Context, c cache.Cache, objs []listed, jobs int) (nodes map[string]*node, unreadable []string, err error) {
	nodes = make(map[string]*node, len(objs))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, o := range objs {
		g.Go(func() error {
			key := o.hash + ".narinfo"
			ni, err := cache.ReadNarInfo(gctx, c, key)
			var perr *cache.ParseError
			switch {
			case errors.Is(err, cache.ErrNotFound):
				return nil
			case errors.As(err, &perr):
				mu.Lock()
				unreadable = append(unreadable, key)
				mu.Unlock()
				return nil
			case err != nil:
				return err
			}
			// Strings are copied out of the narinfo's text: a substring
			// would keep the whole text alive, kilobytes per node.
			n := &node{hash: o.hash, path: strings.Clone(ni.StorePath), url: strings.Clone(path.Clean(ni.URL)),
				modTime: o.modTime, size: o.size, fileSize: int64(ni.FileSize)}
			if ni.Deriver != "" {
				n.deriver = strings.Clone(path.Base(ni.Deriver))
			}
			n.refs = make([]string, 0, len(ni.References))
			for _, ref := range ni.References {
				if h := hashOf(ref); h != o.hash {
					n.refs = append(n.refs, strings.Clone(h))
				}
			}
			mu.Lock()
			nodes[o.hash] = n
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return nodes, unreadable, nil
}

// hashOf is the hash part of a store path or base name.
func hashOf(p string) string {
	return strings.TrimSuffix(cache.NarInfoKeyOfRef(p), ".narinfo")
}

// closure adds to keep every node reachable from hash through nodes'
// references (references with no narinfo are skipped: verify reports
// them), and returns the NAR bytes of the nodes it added.
func closure(nodes map[string]*node, keep map[string]bool, hash string) (added int64) {
	stack := []string{hash}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := nodes[h]
		if n == nil || keep[h] {
			continue
		}
		keep[h] = true
		added += n.fileSize
		stack = append(stack, n.refs...)
	}
	return added
}

// extra is the NAR bytes closure would add to keep, without adding them.
func extra(nodes map[string]*node, keep map[string]bool, hash string) int64 {
	visited := map[string]bool{}
	stack := []string{hash}
	var added int64
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := nodes[h]
		if n == nil || keep[h] || visited[h] {
			continue
		}
		visited[h] = true
		added += n.fileSize
		stack = append(stack, n.refs...)
	}
	return added
}

// depths gives each node of set its height in the reference graph
// restricted to set: 0 when it references nothing in set, else one more
// than its highest reference. Referrers are higher than their references.
func depths(nodes map[string]*node, set map[string]bool) map[string]int {
	d := map[string]int{}
	var visit func(h string, onPath map[string]bool) int
	visit = func(h string, onPath map[string]bool) int {
		if v, ok := d[h]; ok {
			return v
		}
		onPath[h] = true
		best := 0
		for _, r := range nodes[h].refs {
			if set[r] && !onPath[r] { // a cycle cannot be in a valid store; do not loop on a forged one
				best = max(best, visit(r, onPath)+1)
			}
		}
		delete(onPath, h)
		d[h] = best
		return best
	}
	for h := range set {
		visit(h, map[string]bool{})
	}
	return d
}
