package uploader

import (
	"context"
	"regexp"
	"strings"
	"time"

	"nixpush/cache"
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
	Upload  []*nixstore.PathInfo // missing from the cache, references first
	Present int                  // already in the cache
	// Realisations are present paths whose realisations the cache lacks
	// (in either format): only those are written.
	Realisations []*nixstore.PathInfo
	Filtered     int // .drv or excluded
	Upstream     int // available from an upstream cache
}

// Merge adds the counts and uploads of another plan, as of a later part
// of the same closure.
func (p Plan) Merge(o Plan) Plan {
	p.Upload = append(p.Upload, o.Upload...)
	p.Realisations = append(p.Realisations, o.Realisations...)
	p.Present += o.Present
	p.Filtered += o.Filtered
	p.Upstream += o.Upstream
	return p
}

// add counts the present paths of kept and lists the others to upload.
func (p Plan) add(kept []*nixstore.PathInfo, present []bool) Plan {
	for i, info := range kept {
		if present[i] {
			p.Present++
		} else {
			p.Upload = append(p.Upload, info)
		}
	}
	return p
}

// MakePlan filters a closure (in dependency order) and checks, once per
// path and many at a time, which narinfos the cache already has.
func MakePlan(ctx context.Context, c cache.Cache, closure []*nixstore.PathInfo, f Filter) (Plan, error) {
	p, kept := filterClosure(closure, f)
	present, err := checkPresent(ctx, c, kept)
	if err != nil {
		return p, err
	}
	return p.add(kept, present), nil
}

// filterClosure counts what the filter leaves out and returns the rest.
func filterClosure(closure []*nixstore.PathInfo, f Filter) (Plan, []*nixstore.PathInfo) {
	var p Plan
	var kept []*nixstore.PathInfo
	for _, info := range closure {
		switch f.Check(info) {
		case Keep:
			kept = append(kept, info)
		case Upstream:
			p.Upstream++
		default:
			p.Filtered++
		}
	}
	return p, kept
}

// missingTTL is how long a path this Uploader found missing is taken as
// missing without asking again: push plans, queues what is missing, and
// its drainer plans the same paths again moments later. Taking a path as
// missing is always safe: at worst it is uploaded twice.
const missingTTL = time.Minute

// Plan is MakePlan that asks the cache only about what it does not know.
// What it trusts without asking:
//
//   - Any path the memo knows (unless its entry has expired, or is older
//     than the Uploader under Recheck) is taken as present, the paths a
//     user names included: a re-run on this machine asks the cache
//     nothing. The memo learns a path when it is written or found there,
//     and forgets it at once when it is found missing (here, or by the
//     reference check after a narinfo is written) or its upload fails,
//     so what it trusts is only what was seen within the TTL. A narinfo
//     deleted behind nixpush's back (another machine's gc, an S3
//     lifecycle rule) is therefore pushed again once its entry expires,
//     or at once under Recheck (push --recheck, verify --repair).
//   - A path this Uploader found missing less than missingTTL ago is
//     uploaded without asking again.
//   - Nothing is inferred top-down within the closure Plan is given: a
//     path found present does not vouch for the rest of it, because a
//     cache pruned by age deletes old dependencies of recent narinfos,
//     and a push must repair that. (Which closure a queued batch plans
//     is Push's choice: it stops at paths dealt with or known, see
//     dealtWith.)
//
// What it learns is remembered (present) or forgotten (missing) at once.
func (u *Uploader) Plan(ctx context.Context, closure []*nixstore.PathInfo) (Plan, error) {
	p, kept := filterClosure(closure, u.Filter)
	if err := u.checkCache(ctx); err != nil {
		return p, err
	}
	paths := make([]string, len(kept))
	for i, info := range kept {
		paths[i] = info.Path
	}
	known := u.knownPresent(ctx, paths)
	present := make([]bool, len(kept))
	var asked []*nixstore.PathInfo
	var askedAt []int // index in kept of each asked path
	now := time.Now()
	u.mu.Lock()
	for i, info := range kept {
		switch {
		case known[info.Path]:
			present[i] = true
		case now.Sub(u.missing[info.Path]) < missingTTL:
			// missing: uploaded without asking
		default:
			asked = append(asked, info)
			askedAt = append(askedAt, i)
		}
	}
	u.mu.Unlock()
	found, err := checkPresent(ctx, u.Cache, asked)
	if err != nil {
		return p, err
	}
	var seen, gone []string
	for j, info := range asked {
		present[askedAt[j]] = found[j]
		if found[j] {
			seen = append(seen, info.Path)
		} else {
			gone = append(gone, info.Path)
		}
	}
	u.remember(seen...)
	u.Forget(gone...)
	u.noteMissing(gone, now)
	u.flushMemo(ctx)
	var there []*nixstore.PathInfo
	for i, info := range kept {
		if present[i] {
			there = append(there, info)
		}
	}
	if p.Realisations, err = u.missingRealisations(ctx, there); err != nil {
		return p, err
	}
	p = p.add(kept, present)
	u.mu.Lock()
	for _, info := range p.Upload {
		u.planned[info.Path] = info
	}
	u.mu.Unlock()
	return p, nil
}

// noteMissing records paths found missing at now, dropping old records.
func (u *Uploader) noteMissing(paths []string, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	// Old records are dropped once a TTL, not at every plan: a push of
	// 100,000 paths plans hundreds of times with as many records.
	if now.Sub(u.missingSwept) >= missingTTL {
		u.missingSwept = now
		for p, t := range u.missing {
			if now.Sub(t) >= missingTTL {
				delete(u.missing, p)
			}
		}
	}
	for _, p := range paths {
		u.missing[p] = now
	}
}
