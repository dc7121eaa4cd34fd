package pipeline

// What a lane sets up for pushing over slow links: the cache's memo (the
// paths it holds; identity.go keeps it true to the cache) and the
// process's soft heap limit.

import (
	"context"
	"errors"
	"os"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"nixpush/memo"
)

// openMemo opens the cache's memo of present paths, beside its queue;
// without one (ttl 0, or a file that cannot be opened) every run asks the
// cache about every path.
func openMemo(log *zap.Logger, stateDir, identity string, ttl time.Duration) *memo.File {
	if ttl <= 0 {
		return nil
	}
	m, err := memo.Open(MemoFile(stateDir, identity), ttl)
	if err != nil {
		log.Warn("cache memo unavailable: asking the cache about every path", zap.Error(err))
		return nil
	}
	return m
}

// ForgetCollected drops the paths gc deleted from the cache's memo in
// stateDir, if it has one, so that this machine's next push asks about
// them again (other machines' memos forget them when their entries
// expire: --memo-ttl).
func ForgetCollected(ctx context.Context, stateDir, identity string, paths []string) error {
	file := MemoFile(stateDir, identity)
	if _, err := os.Stat(file); err != nil || len(paths) == 0 {
		return nil // no memo: nothing to forget
	}
	m, err := memo.Open(file, memo.DefaultTTL)
	if err != nil {
		return err
	}
	return errors.Join(m.Forget(ctx, paths), m.Close())
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
