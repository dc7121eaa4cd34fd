package uploader

import (
	"context"
	"errors"

	"nixpush/nixstore"
)

// RootResult is what a push did for one of the paths it was given.
type RootResult struct {
	Bytes int64  // compressed bytes uploaded for the path itself
	Skip  string // why nothing needed uploading (invalid, filtered), or ""
	Err   error  // why the push failed (a *PathError when the path's own), or nil
}

// Push pushes the closures of roots: it checks the roots are still valid,
// drops those the filter refuses, reads the closure once (leaving out
// what this Uploader has dealt with already, so the batches of a large
// push each read about their own paths), plans what the cache lacks and
// uploads it, however many roots share dependencies. It
// returns a result for every root; a path already in the cache is a
// result with neither Skip nor Err.
func (u *Uploader) Push(ctx context.Context, roots []string) map[string]RootResult {
	res := make(map[string]RootResult, len(roots))
	fail := func(err error) map[string]RootResult {
		for _, p := range roots {
			res[p] = RootResult{Err: err}
		}
		return res
	}
	valid, invalid, err := u.rootInfos(ctx, roots)
	if err != nil {
		return fail(err)
	}
	for _, p := range invalid {
		res[p] = RootResult{Skip: ErrGone.Error()}
	}
	var kept []string
	var keptInfos []*nixstore.PathInfo
	for _, info := range valid {
		if r := u.Filter.Check(info); r != Keep {
			res[info.Path] = RootResult{Skip: "filtered: " + r.String()}
			continue
		}
		kept = append(kept, info.Path)
		keptInfos = append(keptInfos, info)
	}
	if len(kept) == 0 {
		return res
	}
	closure, err := u.Store.ClosureOf(ctx, keptInfos, func(paths []string) map[string]bool {
		return u.dealtWith(ctx, paths)
	})
	if errors.Is(err, nixstore.ErrNotValid) && len(kept) > 1 {
		// A dependency vanished between the two queries: sort it out one
		// root at a time.
		for _, r := range kept {
			res[r] = u.Push(ctx, []string{r})[r]
		}
		return res
	}
	if err != nil {
		return fail(err)
	}
	plan, err := u.Plan(ctx, closure)
	if err != nil {
		return fail(err)
	}
	uploaded := u.Upload(ctx, plan.Upload)
	for _, info := range plan.Realisations {
		rs, err := u.Store.QueryRealisations(ctx, info.Path)
		if err == nil {
			err = putRealisations(ctx, u.Cache, rs, u.Keys)
		}
		if err != nil {
			err = &PathError{Path: info.Path, Err: err}
		}
		uploaded[info.Path] = Result{Err: err}
	}
	for _, p := range kept {
		r, ok := uploaded[p]
		switch {
		case !ok:
			res[p] = RootResult{} // already in the cache
		case errors.Is(r.Err, ErrGone):
			res[p] = RootResult{Skip: ErrGone.Error()}
		default:
			res[p] = RootResult{Bytes: int64(r.Bytes), Err: r.Err}
		}
	}
	return res
}

// rootInfos are the records of roots: those a plan of this Uploader has
// in hand, and the others read from the Nix DB (valid or not).
func (u *Uploader) rootInfos(ctx context.Context, roots []string) (valid []*nixstore.PathInfo, invalid []string, err error) {
	var ask []string
	u.mu.Lock()
	for _, r := range roots {
		if info := u.planned[r]; info != nil {
			valid = append(valid, info)
		} else {
			ask = append(ask, r)
		}
	}
	u.mu.Unlock()
	if len(ask) == 0 {
		return valid, nil, nil
	}
	read, invalid, err := u.Store.QueryValid(ctx, ask)
	return append(valid, read...), invalid, err
}
