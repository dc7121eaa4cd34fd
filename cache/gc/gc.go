// Package gc collects garbage in a binary cache that has no server of
// its own (a directory, an S3 bucket, a WebDAV share): it keeps the
// closures of what the user says to keep and deletes the rest, safely
// beside pushers writing to the same cache.
//
// # Why a push racing gc stays whole
//
// A pusher (nixpush's uploader, like Nix's) pushing a path Y checks which
// paths of Y's closure the cache has (time tc), writes Y's NAR (tn), then
// Y's narinfo (ty), references' narinfos before referrers': tc < tn < ty.
// Collect runs in phases: S = start; L1 lists narinfos and decides; D
// deletes narinfos, referrers before references; L2 lists narinfos again;
// Ln lists NARs and deletes unreferenced ones; L3 lists narinfos a last
// time. S < L1 < D < L2 < Ln < L3.
//
// Narinfos. Suppose gc deletes X's narinfo (at dx in D) and Y names X.
//   - Y listed in L1: a narinfo written within the grace period, or after
//     S, is a root, so Y and all it names (X) are kept. An older Y was
//     kept (then X was too) or deleted before X (referrers go first).
//   - Y written between L1 and L2: L2 finds it; gc puts back every
//     deleted narinfo in its closure (it read their text before deleting)
//     before deleting any NAR, so X returns with its NAR.
//   - Y written after L2, so after dx: if the pusher checked X after dx
//     (tc > dx), it saw X missing and pushed X before Y. If it checked
//     before (tc < dx < L2 < ty), the push spans gc's whole deletion
//     phase; gc cannot see it. The pusher closes this window by checking,
//     after writing Y's narinfo, that Y's references are still there and
//     pushing any that are not (see the report to the lead: uploader
//     change); that check comes after ty > dx and sees the deletion.
//
// NARs. A NAR is deleted only when no narinfo listed in L2 (or put back)
// points to it and its ModTime is older than the grace period; NARs are
// listed after L2. A pusher writes Y's NAR before Y's narinfo:
//   - ty < L2: L2 saw Y, so its NAR is kept.
//   - ty > L2 and the NAR was written before Ln: its ModTime is tn, and
//     gc deletes it only if tn is older than the grace period, that is if
//     the push took longer than the grace period from NAR to narinfo.
//   - the NAR is written between Ln and its deletion: only possible when
//     the same content already lay there as an orphan (NARs are named by
//     content, uploader.ContentNARKey) with an old ModTime. A pusher that
//     finds its NAR's name taken names that object only if it was written
//     within 30 s (uploader's reuseSlack) of the pusher's own upload:
//     with a grace period longer than a push plus that, such an object
//     is never old enough for gc, and an older one makes the pusher write
//     a NAR of its own. Where the server cannot refuse an existing name
//     (no conditional writes), NARs get names of their own. L3 still looks
//     for narinfos new since L2 whose NAR gc deleted and reports them in
//     Result.Damaged.
package gc

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"nixpush/cache"
)

// Options say what to keep.
type Options struct {
	// KeepDays keeps the closures of narinfos written within this many
	// days (0: age keeps nothing beyond the grace period).
	KeepDays int
	// Keep keeps the closures of these store paths.
	Keep []string
	// MaxSize, when > 0, keeps of the narinfos within KeepDays only the
	// newest whose closures fit in this many NAR bytes, together with
	// what Keep, pins and the grace period keep (which are kept even
	// when they alone exceed MaxSize).
	MaxSize int64
	// Grace protects what pushers are writing now: a narinfo or NAR
	// written within it is kept (DefaultGrace is the flags' default).
	// Whatever is written after gc started is kept too, even with 0.
	Grace time.Duration
	// Delete deletes; without it Collect only reports what would go.
	Delete bool
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
	// Jobs bounds reads in flight (default 64).
	Jobs int
}

// Result is what went, or with a dry run what would go.
type Result struct {
	Deleted      bool     `json:"deleted"`       // false for a dry run
	Roots        int      `json:"roots"`         // narinfos kept for themselves
	KeptPaths    int      `json:"kept_paths"`    // narinfos kept (roots and their closures)
	KeptBytes    int64    `json:"kept_bytes"`    // NAR bytes of those
	Paths        []string `json:"paths"`         // store paths whose narinfos go (put back ones excluded)
	NARs         []string `json:"nars"`          // NAR objects that go
	Logs         []string `json:"logs"`          // build logs that go
	Realisations []string `json:"realisations"`  // realisations that go
	Bytes        int64    `json:"bytes"`         // bytes of every object that goes
	MissingRoots []string `json:"missing_roots"` // Keep paths and pins not in the cache
	Unreadable   []string `json:"unreadable"`    // narinfos that do not parse: left alone (verify reports them; their NARs are unknown to gc)
	Restored     []string `json:"restored"`      // narinfos put back: a push during gc needed them
	Damaged      []string `json:"damaged"`       // pushed during gc, NAR deleted: push again
	Uploads      []string `json:"uploads"`       // multipart uploads aborted ("KEY (upload ID)"): idle beyond the grace period
}

// DefaultGrace is the grace period users get unless they say otherwise:
// longer than any push takes to write a NAR and its narinfo.
const DefaultGrace = time.Hour

// Collect deletes (opts.Delete) or lists what is not in the closure of a
// root. See the package comment for why it is safe beside pushers.
func Collect(ctx context.Context, c cache.Cache, opts Options) (Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Grace < 0 {
		return Result{}, fmt.Errorf("gc grace period %v is negative", opts.Grace)
	}
	if opts.Jobs < 1 {
		opts.Jobs = 64
	}
	g := &collector{cache: c, opts: opts, start: opts.Now()}
	g.fresh = g.start.Add(-opts.Grace)
	if err := g.decide(ctx); err != nil {
		return Result{}, err
	}
	if opts.Delete {
		if err := g.deleteNarInfos(ctx); err != nil {
			return g.result, err
		}
		if err := g.restore(ctx); err != nil {
			return g.result, err
		}
	}
	if err := g.collectNARs(ctx); err != nil {
		return g.result, err
	}
	if err := g.collectExtras(ctx); err != nil {
		return g.result, err
	}
	if err := g.abortUploads(ctx); err != nil {
		return g.result, err
	}
	if opts.Delete {
		if err := g.findDamaged(ctx); err != nil {
			return g.result, err
		}
	}
	g.result.Deleted = opts.Delete
	return g.result, nil
}

type collector struct {
	cache  cache.Cache
	opts   Options
	start  time.Time
	fresh  time.Time // written after this: within the grace period
	result Result

	first  map[string]listed // L1
	nodes  map[string]*node  // parsed narinfos, by hash part
	keep   map[string]bool   // kept narinfos, by hash part
	doomed map[string]bool   // narinfos to delete, by hash part
	texts  map[string][]byte // doomed narinfos as read just before deleting them
	seen   map[string]listed // the latest listing: narinfos present, by hash part
	gone   map[string]bool   // NAR keys deleted
}

// decide lists and reads every narinfo, marks the closures of the roots
// and dooms the rest.
func (g *collector) decide(ctx context.Context) error {
	var err error
	if g.first, err = listNarInfos(ctx, g.cache); err != nil {
		return err
	}
	g.seen = g.first
	objs := make([]listed, 0, len(g.first))
	for _, o := range g.first {
		objs = append(objs, o)
	}
	g.nodes, g.result.Unreadable, err = readNodes(ctx, g.cache, objs, g.opts.Jobs)
	if err != nil {
		return err
	}
	slices.Sort(g.result.Unreadable)
	pins, err := Pins(ctx, g.cache)
	if err != nil {
		return err
	}
	g.keep = map[string]bool{}
	roots := map[string]bool{}
	explicit := slices.Clone(g.opts.Keep)
	for _, p := range pins {
		explicit = append(explicit, p)
	}
	for _, p := range explicit {
		h := hashOf(p)
		if g.nodes[h] == nil {
			g.result.MissingRoots = append(g.result.MissingRoots, cache.StorePathOfRef(p))
			continue
		}
		roots[h] = true
		g.result.KeptBytes += closure(g.nodes, g.keep, h)
	}
	var aged []*node
	keepAfter := g.start.AddDate(0, 0, -g.opts.KeepDays)
	for h, n := range g.nodes {
		switch {
		case !n.modTime.Before(g.fresh):
			roots[h] = true
			g.result.KeptBytes += closure(g.nodes, g.keep, h)
		case g.opts.KeepDays > 0 && !n.modTime.Before(keepAfter):
			aged = append(aged, n)
		}
	}
	// Newest first: with MaxSize, the newest closures that fit stay.
	slices.SortFunc(aged, func(a, b *node) int { return b.modTime.Compare(a.modTime) })
	for _, n := range aged {
		if g.opts.MaxSize > 0 {
			if g.result.KeptBytes+extra(g.nodes, g.keep, n.hash) > g.opts.MaxSize {
				break
			}
		}
		roots[n.hash] = true
		g.result.KeptBytes += closure(g.nodes, g.keep, n.hash)
	}
	g.result.Roots = len(roots)
	g.result.KeptPaths = len(g.keep)
	g.doomed = map[string]bool{}
	for h, n := range g.nodes {
		if !g.keep[h] {
			g.doomed[h] = true
			g.result.Paths = append(g.result.Paths, n.path)
			g.result.Bytes += g.first[h].size
		}
	}
	slices.Sort(g.result.Paths)
	slices.Sort(g.result.MissingRoots)
	return nil
}

// deleteNarInfos deletes the doomed narinfos, referrers before their
// references, so that at every moment each narinfo left names only
// narinfos still there. It reads each one first, to put it back if a push
// during gc turns out to need it.
func (g *collector) deleteNarInfos(ctx context.Context) error {
	g.texts = map[string][]byte{}
	d := depths(g.nodes, g.doomed)
	byDepth := map[int][]string{}
	top := 0
	for h := range g.doomed {
		byDepth[d[h]] = append(byDepth[d[h]], h)
		top = max(top, d[h])
	}
	for level := top; level >= 0; level-- {
		keys := byDepth[level]
		texts, err := readTexts(ctx, g.cache, keys, g.opts.Jobs)
		if err != nil {
			return err
		}
		maps.Copy(g.texts, texts)
		if err := deleteKeys(ctx, g.cache, keys, ".narinfo"); err != nil {
			return fmt.Errorf("delete narinfos: %w", err)
		}
	}
	return nil
}
