package main

// What the pipeline sets up for pushing over slow links (issue 9): the
// cache's memo (the paths it holds, and that its nix-cache-info is right)
// and the process's soft heap limit. Kept apart from pipeline.go, which
// calls them from open.

import (
	"context"
	"errors"
	"os"
	"runtime/debug"
	"strings"

	"go.uber.org/zap"

	"nixpush/memo"
)

// openMemo opens the cache's memo of present paths, beside its queue;
// without one (--memo-ttl 0, or a file that cannot be opened) every run
// asks the cache about every path, as before.
func (f *pipelineFlags) openMemo(log *zap.Logger, identity string) *memo.File {
	if f.memoTTL <= 0 {
		return nil
	}
	m, err := memo.Open(memoFile(f.drain.stateDir, identity), f.memoTTL)
	if err != nil {
		log.Warn("cache memo unavailable: asking the cache about every path", zap.Error(err))
		return nil
	}
	return m
}

// memoFile is the memo's file, beside the cache's queue.
func memoFile(stateDir, identity string) string {
	return strings.TrimSuffix(queueFile(stateDir, identity), queueFileSuffix) + memo.FileSuffix
}

// forgetCollected drops the paths gc deleted from the cache's memo in
// stateDir, if it has one, so that this machine's next push asks about
// them again (other machines' memos forget them when their entries
// expire: --memo-ttl).
func forgetCollected(ctx context.Context, stateDir, identity string, paths []string) error {
	file := memoFile(stateDir, identity)
	if _, err := os.Stat(file); err != nil || len(paths) == 0 {
		return nil // no memo: nothing to forget
	}
	m, err := memo.Open(file, memo.DefaultTTL)
	if err != nil {
		return err
	}
	return errors.Join(m.Forget(ctx, paths), m.Close())
}

// checkCacheInfo makes sure the cache has the right nix-cache-info
// (ensureCacheInfo), unless the memo saw it right within its TTL: a
// re-run whose paths the memo all knows then asks the cache nothing at
// all. The trust is the memo's for paths (uploader.Uploader.Plan), and
// --recheck lifts it the same way.
func (p *pipeline) checkCacheInfo(ctx context.Context, recheck bool, priority int) error {
	if p.memo != nil && !recheck && p.memo.CacheInfoKnown(ctx) {
		return nil
	}
	if err := ensureCacheInfo(ctx, p.cache, priority); err != nil {
		return err
	}
	if p.memo != nil {
		p.memo.RememberCacheInfo() // written with the paths' entries
	}
	return nil
}

// heapLimit is the soft memory limit of a pushing process. The uploader
// bounds what it holds (limits.go: about 70 MiB at the default --jobs),
// but between collections Go lets the heap grow to twice what is live,
// and a push makes much short-lived garbage (Go's bzip2 reader allocates
// 3.6 MiB per build log): without a limit, peak RSS is twice the bound.
// Soft: above it the collector only works harder. 100 MiB kept RSS at
// 107 MiB pushing the bench's closure at 50 ms but doubled its CPU (the
// live data of 64 uploads in flight is near that), hence some room.
const heapLimit = 120 << 20

// limitHeap sets heapLimit, unless GOMEMLIMIT says otherwise.
func limitHeap() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(heapLimit)
	}
}
