package main

// What the pipeline sets up for pushing over slow links (issue 9): the
// cache's memo of present paths and the process's soft heap limit. Kept
// apart from pipeline.go, which calls both from open.

import (
	"os"
	"runtime/debug"
	"strings"

	"go.uber.org/zap"

	"nixpush/uploader/memo"
)

// openMemo gives the uploader the cache's memo of present paths, beside
// its queue; without one (--memo-ttl 0, or a file that cannot be opened)
// every run asks the cache about every path, as before.
func (p *pipeline) openMemo(f *pipelineFlags, identity string) {
	p.uploader.Recheck = f.recheck
	if f.memoTTL <= 0 {
		return
	}
	file := strings.TrimSuffix(queueFile(f.drain.stateDir, identity), queueFileSuffix) + memo.FileSuffix
	m, err := memo.Open(file, f.memoTTL)
	if err != nil {
		p.log.Warn("cache memo unavailable: asking the cache about every path", zap.Error(err))
		return
	}
	p.uploader.Memo = m
	p.closers = append(p.closers, m.Close)
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
