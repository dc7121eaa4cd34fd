// Package uploader turns store paths into cache objects: it plans which
// paths a cache lacks, streams each NAR through compression to the cache,
// and writes signed narinfos, references before referrers. Cache backends
// live in one package per URL scheme beneath this one.
package uploader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap"

	"nixpush/cache"
	"nixpush/memo"
	"nixpush/nixstore"
)

// Uploader pushes store paths from one store to one cache. It is safe for
// concurrent use: every upload in flight is shared, so two pushes whose
// closures overlap never upload the same path twice.
type Uploader struct {
	Store       *nixstore.Store
	Cache       cache.Cache
	Compression Compression
	Keys        []signature.SecretKey
	Filter      Filter // what Push and Plan leave out
	Listing     bool   // write <hash>.ls listings (Nix's write-nar-listing)
	Logs        bool   // upload build logs of pushed outputs (log/<drv>)
	DebugInfo   bool   // write debuginfo/<build ID>.debug objects (Nix's index-debug-info)
	Log         *zap.Logger
	// Memo remembers which paths the cache holds, so a plan asks the
	// cache only about the others (see Plan). New sets one that lives as
	// long as the Uploader; the commands give a persistent one.
	Memo memo.Memo
	// Recheck ignores what Memo knew before this Uploader was made: every
	// path is asked for once (what it finds is remembered again).
	Recheck bool
	// MemoTTL is how long a path this Uploader saw in the cache is trusted
	// to stay there (0: memo.DefaultTTL).
	MemoTTL time.Duration
	// Journal keeps uploads in progress across processes (the queue); nil:
	// an upload cut short starts over.
	Journal Journal
	// CheckCache, when set, is called as a plan starts, to learn whether
	// the cache is still the one Memo describes. It reports reset when
	// it is not (the cache was wiped, or made again): Memo was reset,
	// and the Uploader forgets what it saw itself; reset with an error
	// means Memo could not be reset and is not used any more.
	CheckCache func(ctx context.Context) (reset bool, err error)

	limits   limits
	created  time.Time
	mu       sync.Mutex
	inflight map[string]*flight
	missing  map[string]time.Time // paths found missing lately; see Plan
	// missingSwept is when records older than missingTTL last left missing.
	missingSwept time.Time
	// planned are the paths Plan found to upload, until uploaded: a
	// queued path's batch takes its record from here instead of reading
	// the Nix DB again (a path deleted meanwhile fails its NAR: ErrGone).
	planned map[string]*nixstore.PathInfo
	// seen are the paths this Uploader found in the cache or wrote there
	// (within MemoTTL): a push does not walk or plan them again, however
	// many batches share them.
	seen     *memo.Memory
	seenOnce sync.Once
	// wrote are the paths this Uploader wrote within refTrust: a referrer
	// written after them does not ask the cache for them again (see
	// checkReferences).
	wrote *memo.Memory
	// memoBroken: Memo failed to forget a path and is not trusted since.
	memoBroken bool
	transfers  transfers
	Stats      Stats
}

// Stats counts what an Uploader has done; read it while uploads run to
// show progress. Paths, NARBytes and Bytes count finished paths; Read and
// Sent move with the bytes, as they are dumped and handed to the cache
// (an upload that fails and is tried again counts again).
type Stats struct {
	Paths    atomic.Int64 // narinfos written
	NARBytes atomic.Int64 // uncompressed NAR bytes of those paths
	Bytes    atomic.Int64 // compressed bytes written
	Read     atomic.Int64 // uncompressed NAR bytes dumped from the store so far
	Sent     atomic.Int64 // compressed NAR bytes handed to the cache so far
	// Moved is when a NAR byte last went to the cache (unix ns): uploads
	// in flight that stop moving bytes are stalled.
	Moved atomic.Int64
}

// flight is one path's upload, shared by everyone who needs it.
type flight struct {
	done  chan struct{}
	bytes uint64 // compressed NAR size, once done without error
	err   error
}

// New returns an Uploader that uploads at most jobs NARs of 4 MiB or more
// at a time (each compressed on every core, each holding up to ~42 MiB),
// and up to 64 smaller ones beside them within a memory budget (see
// limits.go); set Filter and Memo before the first push.
func New(store *nixstore.Store, c cache.Cache, comp Compression, keys []signature.SecretKey, jobs int, log *zap.Logger) *Uploader {
	return &Uploader{
		Store: store, Cache: c, Compression: comp, Keys: keys, Log: log.Named("uploader"),
		Memo:     memo.NewMemory(memo.DefaultTTL),
		limits:   newLimits(jobs),
		created:  time.Now(),
		inflight: map[string]*flight{},
		missing:  map[string]time.Time{},
		planned:  map[string]*nixstore.PathInfo{},
		wrote:    memo.NewMemory(refTrust),
	}
}

// PathError is the failure of one path.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// Result is what became of one path of a plan.
type Result struct {
	Bytes uint64 // compressed NAR bytes written for it
	Err   error  // a *PathError, or nil
}

// Upload pushes every path of a plan (references first, as MakePlan orders
// them), streaming several NARs at once. A path's narinfo is written only
// after its NAR and the narinfos of all its references are in the cache;
// a path whose reference failed fails too. It returns a Result per path.
func (u *Uploader) Upload(ctx context.Context, plan []*nixstore.PathInfo) map[string]Result {
	flights := u.start(ctx, plan)
	results := make(map[string]Result, len(plan))
	for i, f := range flights {
		<-f.done
		r := Result{Bytes: f.bytes}
		if f.err != nil {
			r.Err = &PathError{Path: plan[i].Path, Err: f.err}
		}
		results[plan[i].Path] = r
	}
	u.flushMemo(ctx)
	return results
}

// dependency is the flight of one reference of a path.
type dependency struct {
	path string
	f    *flight
}

// start joins the uploads of the plan's paths already in flight and begins
// the others. Every flight of the plan is registered before any reference
// is looked up, all under one lock, and each new upload keeps the flights
// of its references from then on: a reference that fails and leaves the
// in-flight map before its referrer's NAR is written still fails the
// referrer (looking the reference up later would find nothing and let the
// referrer's narinfo out).
func (u *Uploader) start(ctx context.Context, plan []*nixstore.PathInfo) []*flight {
	u.mu.Lock()
	flights := make([]*flight, len(plan))
	var fresh []int
	for i, info := range plan {
		f, ok := u.inflight[info.Path]
		switch {
		case ok:
		case u.seenPaths().Has(info.Path):
			// Written by another batch since this one was planned: the
			// cache has it, so it is not uploaded a second time (nor kept
			// as planned).
			delete(u.planned, info.Path)
			f = &flight{done: make(chan struct{})}
			close(f.done)
		default:
			f = &flight{done: make(chan struct{})}
			u.inflight[info.Path] = f
			fresh = append(fresh, i)
		}
		flights[i] = f
	}
	deps := make(map[int][]dependency, len(fresh))
	for _, i := range fresh {
		// References not in flight were in the cache already or are
		// filtered out.
		for _, ref := range plan[i].References {
			if d := u.inflight[ref]; d != nil && ref != plan[i].Path {
				deps[i] = append(deps[i], dependency{ref, d})
			}
		}
	}
	u.mu.Unlock()
	// Launchers take the upload slots in order, largest NAR first; each
	// NAR then goes up on its own and only its narinfo waits for the
	// narinfos of its references. Large NARs have a launcher of their
	// own: waiting for a --jobs slot, they hold up no small one.
	var large, small []int
	for _, i := range fresh {
		if plan[i].NarSize >= bigNAR {
			large = append(large, i)
		} else {
			small = append(small, i)
		}
	}
	for _, idx := range [][]int{large, small} {
		largestFirst(plan, idx)
		go func() {
			for _, i := range idx {
				release, err := u.limits.acquireNAR(ctx, plan[i].NarSize)
				go u.run(ctx, plan[i], flights[i], deps[i], release, err)
			}
		}()
	}
	return flights
}

// run uploads one path holding its NAR slot (or fails with the error of
// waiting for one) and settles its flight.
func (u *Uploader) run(ctx context.Context, info *nixstore.PathInfo, f *flight, deps []dependency, release func(), err error) {
	if err == nil {
		f.bytes, f.err = u.uploadPath(ctx, info, deps, release)
	} else {
		f.err = err
	}
	if f.err != nil && ctx.Err() == nil {
		// Whatever the memo said, the path may well be missing now. (A
		// cancelled push found nothing out: the plan already forgot
		// what it found missing.)
		u.Forget(info.Path)
	}
	u.mu.Lock()
	delete(u.inflight, info.Path)
	delete(u.planned, info.Path)
	u.mu.Unlock()
	close(f.done)
}

func (u *Uploader) uploadPath(ctx context.Context, info *nixstore.PathInfo, deps []dependency, release func()) (uint64, error) {
	// The build log needs nothing but must be in before the narinfo: it
	// goes up beside the NAR, off the narinfo's critical path.
	waitLog := u.startLog(ctx, info)
	nar, err := u.putNAR(ctx, info)
	release()
	if err != nil {
		// Nothing of a failed path is written after it has failed.
		waitLog(true)
		return 0, err
	}
	if err := waitLog(false); err != nil {
		return 0, err
	}
	// Wait for references being uploaded by this or another push.
	for _, d := range deps {
		select {
		case <-d.f.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if d.f.err != nil {
			return 0, fmt.Errorf("reference %s failed: %w", d.path, d.f.err)
		}
	}
	if err := u.limits.narinfos.Acquire(ctx, 1); err != nil {
		return 0, err
	}
	defer u.limits.narinfos.Release(1)
	if err := u.putExtras(ctx, info, nar); err != nil {
		return 0, err
	}
	ni, err := NewNarInfo(info, nar, u.Keys)
	if err != nil {
		return 0, err
	}
	if err := u.Cache.Put(ctx, cache.NarInfoKey(info.Path), strings.NewReader(ni.String()), cache.TypeNarInfo); err != nil {
		return 0, err
	}
	if err := u.checkReferences(ctx, info, deps); err != nil {
		return 0, err
	}
	// Realisations name the output path: they follow its narinfo.
	if _, err := PutRealisations(ctx, u.Cache, u.Store, info.Path, u.Keys); err != nil {
		return 0, err
	}
	u.remember(info.Path)
	u.wrote.Remember([]string{info.Path})
	u.Stats.Paths.Add(1)
	u.Stats.NARBytes.Add(int64(info.NarSize))
	u.Stats.Bytes.Add(int64(nar.FileSize))
	u.Log.Debug("pushed", zap.String("path", info.Path), zap.Uint64("bytes", nar.FileSize))
	return nar.FileSize, nil
}

// putExtras writes what Nix writes with a NAR before its narinfo: the
// .ls listing and the debuginfo index.
func (u *Uploader) putExtras(ctx context.Context, info *nixstore.PathInfo, nar Uploaded) error {
	if u.Listing {
		if err := PutListing(ctx, u.Cache, info.Path, nar.Listing); err != nil {
			return err
		}
	}
	if u.DebugInfo {
		return u.putDebugInfo(ctx, info, nar.Key)
	}
	return nil
}

// startLog starts uploading the build log of the path's derivation, if
// there is one to upload (no goroutine, no context otherwise: most paths
// of a large push have none); wait returns its error, cancelling it first
// when abandon is set.
func (u *Uploader) startLog(ctx context.Context, info *nixstore.PathInfo) (wait func(abandon bool) error) {
	if !u.Logs || info.Deriver == "" {
		return func(bool) error { return nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- u.putLog(ctx, info) }()
	return func(abandon bool) error {
		if abandon {
			cancel()
		}
		err := <-done
		cancel()
		return err
	}
}

// putLog uploads the build log of the path's derivation. A missing log
// is no error; a damaged one is logged and skipped, never failing the
// path.
func (u *Uploader) putLog(ctx context.Context, info *nixstore.PathInfo) error {
	if _, err := putBuildLog(ctx, u.Cache, u.Store, info.Deriver, u.limits.logs); err != nil {
		if errors.Is(err, nixstore.ErrCorruptBuildLog) {
			u.Log.Warn("build log not uploaded", zap.String("drv", info.Deriver), zap.Error(err))
			return nil
		}
		return err
	}
	return nil
}

// ErrGone means the path stopped being valid (garbage-collected) before it
// could be uploaded: nothing to push, nothing to retry.
var ErrGone = errors.New("no longer valid in the Nix store (garbage-collected?)")

// explain turns a failed NAR upload of a path that has since been deleted
// into ErrGone: the DB, not the error from reading half-deleted files,
// says what happened.
func (u *Uploader) explain(ctx context.Context, info *nixstore.PathInfo, err error) error {
	if _, qerr := u.Store.QueryPathInfo(ctx, info.Path); errors.Is(qerr, nixstore.ErrNotValid) {
		return ErrGone
	}
	return err
}
