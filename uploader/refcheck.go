package uploader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/nixstore"
)

// ErrReferenceGone means a reference found in the cache when the push was
// planned was gone once the referrer's narinfo was written: a gc deleted
// it meanwhile. The error is transient: the retry plans again, sees the
// reference missing and uploads it first.
var ErrReferenceGone = errors.New("a reference vanished from the cache after it was checked (a gc running?)")

// refTrust is how long a narinfo this Uploader wrote is trusted to be in
// the cache when a referrer is written after it: far inside gc's grace
// period (an hour unless told otherwise).
const refTrust = 30 * time.Second

// checkReferences runs after a path's narinfo is written and makes a push
// that raced a gc either see the deletion or leave a narinfo with
// everything it names. References uploaded by this push (deps), or by
// this Uploader less than refTrust ago (the earlier batches of a large
// push), were written moments ago, inside every gc's grace period, so
// they are safe; the others were only seen present earlier, and gc may
// have deleted them since: each is asked for again. This is the pusher's
// half of the argument in package cache/gc; the other half is gc's grace
// period and its put-back of deleted narinfos that a newer narinfo names.
func (u *Uploader) checkReferences(ctx context.Context, info *nixstore.PathInfo, deps []dependency) error {
	uploaded := map[string]bool{info.Path: true}
	for _, d := range deps {
		uploaded[d.path] = true
	}
	var check []string
	for _, ref := range info.References {
		if !uploaded[ref] && !u.wrote.Has(ref) {
			check = append(check, ref)
		}
	}
	if len(check) == 0 {
		return nil
	}
	missing := make([]bool, len(check))
	// The checks of every narinfo being written share one bound.
	g, gctx := errgroup.WithContext(ctx)
	for i, ref := range check {
		if err := u.limits.checks.Acquire(gctx, 1); err != nil {
			break // g.Wait returns why
		}
		g.Go(func() error {
			defer u.limits.checks.Release(1)
			ok, err := u.Cache.Exists(gctx, cache.NarInfoKey(ref))
			missing[i] = !ok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("check references: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, ref := range check {
		if missing[i] {
			u.Forget(ref)
			return fmt.Errorf("%w: %s", ErrReferenceGone, ref)
		}
	}
	return nil
}
