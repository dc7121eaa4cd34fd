package uploader

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/nixstore"
)

// LogsCopied is what CopyLogs did.
type LogsCopied struct {
	Copied  int      // logs uploaded
	Present int      // already in the cache, left as they were
	NoLog   []string // derivations this store has no log of
}

// copyLogJobs bounds the requests of CopyLogs in flight: each is a round
// trip, so a hundred logs over a slow link cost a few of them, not a
// hundred.
const copyLogJobs = 64

// CopyLogs uploads the build logs of drvs to log/<drv> as `nix store
// copy-log` does, for outputs a push skipped because they were in the
// cache already: one round of existence checks, then the missing logs
// (every log with force), many at a time. A derivation without a log
// here is listed, not an error.
func CopyLogs(ctx context.Context, c cache.Cache, store *nixstore.Store, drvs []string, force bool) (LogsCopied, error) {
	var res LogsCopied
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copyLogJobs)
	slots := newLimits(1).logs
	for _, drv := range drvs {
		g.Go(func() error {
			if !force {
				ok, err := c.Exists(gctx, cache.BuildLogKey(drv))
				if err != nil {
					return fmt.Errorf("look up the log of %s: %w", drv, err)
				}
				if ok {
					mu.Lock()
					res.Present++
					mu.Unlock()
					return nil
				}
			}
			copied, err := putBuildLog(gctx, c, store, drv, slots)
			if err != nil && !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("copy the log of %s: %w", drv, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if copied {
				res.Copied++
			} else if err == nil {
				res.NoLog = append(res.NoLog, drv)
			}
			return err
		})
	}
	err := g.Wait()
	return res, err
}
