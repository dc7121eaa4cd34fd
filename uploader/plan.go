package uploader

import (
	"context"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"nixpush/nixstore"
)

// Filter decides which store paths are worth pushing at all.
type Filter struct {
	IncludeDrv   bool             // push .drv files too
	Exclude      []*regexp.Regexp // matched against the name after the hash
	UpstreamKeys []string         // skip paths signed by these keys: an upstream cache has them
}

// Reason a path is left out of a push.
type Reason int

func (r Reason) String() string {
	return [...]string{"kept", "a .drv file (use --include-drv)", "excluded by --exclude", "signed by an upstream key"}[r]
}

const (
	Keep     Reason = iota
	Drv             // a .drv file, and IncludeDrv is off
	Excluded        // matched an Exclude pattern
	Upstream        // signed by an upstream key
)

// CheckName applies the filters that need only the path's name, so a
// watcher can drop paths before they reach the queue.
func (f Filter) CheckName(path string) Reason {
	name := storeName(path)
	if !f.IncludeDrv && strings.HasSuffix(name, ".drv") {
		return Drv
	}
	for _, re := range f.Exclude {
		if re.MatchString(name) {
			return Excluded
		}
	}
	return Keep
}

// Check returns why a path is left out, or Keep.
func (f Filter) Check(info *nixstore.PathInfo) Reason {
	if r := f.CheckName(info.Path); r != Keep {
		return r
	}
	for _, k := range f.UpstreamKeys {
		if info.HasSigFrom(k) {
			return Upstream
		}
	}
	return Keep
}

// storeName is "hello-2.12" for /nix/store/<hash>-hello-2.12.
func storeName(p string) string {
	base := p[strings.LastIndexByte(p, '/')+1:]
	_, name, _ := strings.Cut(base, "-")
	return name
}

// Plan is what one push has to do.
type Plan struct {
	Upload   []*nixstore.PathInfo // missing from the cache, references first
	Present  int                  // already in the cache
	Filtered int                  // .drv or excluded
	Upstream int                  // available from an upstream cache
}

// existsParallelism bounds concurrent existence checks: enough to hide an
// HTTP round trip, few enough not to hammer a server.
const existsParallelism = 16

// MakePlan filters a closure (in dependency order) and checks, once per
// path and many at a time, which narinfos the cache already has.
func MakePlan(ctx context.Context, cache Cache, closure []*nixstore.PathInfo, f Filter) (Plan, error) {
	var p Plan
	var candidates []*nixstore.PathInfo
	for _, info := range closure {
		switch f.Check(info) {
		case Keep:
			candidates = append(candidates, info)
		case Upstream:
			p.Upstream++
		default:
			p.Filtered++
		}
	}
	present := make([]bool, len(candidates))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(existsParallelism)
	for i, info := range candidates {
		g.Go(func() error {
			ok, err := cache.Exists(gctx, NarInfoKey(info.Path))
			present[i] = ok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return p, err
	}
	for i, info := range candidates {
		if present[i] {
			p.Present++
		} else {
			p.Upload = append(p.Upload, info)
		}
	}
	return p, nil
}

// knownLimit bounds the memory of paths known to be in the cache, and
// knownTTL how long that knowledge is trusted (a cache may be pruned behind
// our back); past either the set starts afresh, which only costs checks.
const (
	knownLimit = 200_000
	knownTTL   = time.Hour
)

// Plan is MakePlan that skips the existence check for paths this Uploader
// has already seen in the cache or written there: a daemon pushing many
// paths with shared dependencies checks each dependency once.
func (u *Uploader) Plan(ctx context.Context, closure []*nixstore.PathInfo) (Plan, error) {
	f := u.Filter
	var unknown []*nixstore.PathInfo
	known := 0
	u.mu.Lock()
	for _, info := range closure {
		if u.known[info.Path] && f.Check(info) == Keep {
			known++
		} else {
			unknown = append(unknown, info)
		}
	}
	u.mu.Unlock()
	p, err := MakePlan(ctx, u.Cache, unknown, f)
	if err != nil {
		return p, err
	}
	p.Present += known
	u.mu.Lock()
	defer u.mu.Unlock()
	missing := map[string]bool{}
	for _, info := range p.Upload {
		missing[info.Path] = true
	}
	for _, info := range unknown {
		if !missing[info.Path] && f.Check(info) == Keep {
			u.remember(info.Path)
		}
	}
	return p, nil
}

// remember records a path as present in the cache; u.mu must be held.
func (u *Uploader) remember(path string) {
	if len(u.known) >= knownLimit || time.Since(u.knownSince) > knownTTL {
		u.known = map[string]bool{}
		u.knownSince = time.Now()
	}
	u.known[path] = true
}
