package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/retry"
)

// A cache verified while pushers and gc work on it changes under the
// reader: a listing is a series of pages, and an object written (or
// deleted) while they are read may be missing from it, though every
// moment's cache is whole. So what the listing alone says is missing is
// asked about before it is reported: a narinfo's NAR (checkNAR) and a
// reference. A problem stands only if it holds when asked; the cost is a
// request per suspected problem, none for a whole cache.

// gone reports whether a narinfo is no longer in the cache.
func (v *verifier) gone(ctx context.Context, key string) (bool, error) {
	var ok bool
	err := retry.Reads.Do(ctx, func() (err error) {
		ok, err = v.cache.Exists(ctx, key)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("check %s: %w", key, err)
	}
	return !ok, nil
}

// confirmMissing drops the missing references of a whole-cache verify
// that are there now (written after the page that would have listed
// them) or whose only referrer is gone (a gc deletes referrers first).
func (v *verifier) confirmMissing(ctx context.Context) error {
	if !v.listed || len(v.missing) == 0 {
		return nil
	}
	keys := slices.Collect(maps.Keys(v.missing))
	drop := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.opts.Jobs)
	for i, key := range keys {
		m := v.missing[key]
		g.Go(func() error {
			gone, err := v.gone(gctx, key)
			if err != nil || !gone {
				drop[i] = err == nil
				return err
			}
			if m.referrers == 1 && m.referrer != "" {
				drop[i], err = v.gone(gctx, cache.NarInfoKey(m.referrer))
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, key := range keys {
		if drop[i] {
			delete(v.missing, key)
		}
	}
	return nil
}
