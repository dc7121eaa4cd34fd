// Package pipeline is the one pipeline every pushing command runs: the
// local store, one watcher, and per cache a lane (cache, memo, uploader,
// queue, drainer). push, watch-store, watch-exec and verify --repair
// differ only in what they run on it: Lane.Push, Pipeline.WatchStore,
// Pipeline.Exec. cmd/ turns flags into a Config; nothing is changed on a
// pipeline after Open.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap"

	"nixpush/cache"
	"nixpush/cache/location"
	"nixpush/drainer"
	"nixpush/memo"
	"nixpush/metrics"
	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/retry"
	"nixpush/uploader"
)

// Config is everything a pipeline is built from.
type Config struct {
	StoreRoot string // root of the local Nix store, as Nix's --store ("/" for the system's)
	// Roots are the paths a command names (store paths, ./result links):
	// Open resolves them and reads their closure (Pipeline.Closure)
	// before it writes anything, so a bad one fails with no side effects.
	Roots    []string
	Caches   []CacheConfig // one lane each, in this order
	StateDir string        // where the queues and memos live
	Network  location.Options

	Jobs    int             // NARs of 4 MiB or more uploaded at once
	Filter  uploader.Filter // what is left out
	Logs    bool            // upload build logs of pushed outputs
	MemoTTL time.Duration   // trust a path seen in a cache this long (0: no memo)
	Recheck bool            // ask the cache about every path, ignoring earlier runs

	// AllowUnsigned lets a push without a key add unsigned narinfos to
	// a cache whose nix-cache-info says its narinfos are signed.
	AllowUnsigned bool

	MaxAttempts     int           // transient failures before a path is failed
	ShutdownTimeout time.Duration // how long uploads in flight may finish once a run is stopped
	// Abort, when closed, cuts ShutdownTimeout short: uploads in flight
	// are cancelled at once and their rows go back to pending (a second
	// Ctrl-C).
	Abort <-chan struct{}

	// Daemon makes Open check every page of each queue (the daemon runs
	// for months; quick commands skip it).
	Daemon bool
	// Metrics, when set, gets each cache's metrics (watch-store).
	Metrics *metrics.Registry
	Log     *zap.Logger
}

// CacheConfig is one cache and how paths are packed for it.
type CacheConfig struct {
	URL         *location.URL
	Compression uploader.Compression
	Keys        []signature.SecretKey // sign narinfos and realisations with these
	Listing     bool                  // write <hash>.ls listings
	DebugInfo   bool                  // write debuginfo/ objects (index-debug-info)
	Priority    int                   // written to a new nix-cache-info
	// WantMassQuery is written to a new nix-cache-info (default true:
	// without it Nix skips the cache in some bulk queries).
	WantMassQuery bool
}

// Pipeline is the store and the lanes of every cache.
type Pipeline struct {
	Store   *nixstore.Store
	Closure []*nixstore.PathInfo // of Config.Roots, dependencies first
	Lanes   []*Lane
	cfg     Config
	log     *zap.Logger
}

// Lane is one cache's half of the pipeline: each drains on its own, so a
// cache that is down never holds back another.
type Lane struct {
	URL      *location.URL
	Cache    cache.Cache
	Uploader *uploader.Uploader
	Queue    *queue.Queue
	Drainer  *drainer.Drainer
	Metrics  *metrics.Metrics // nil without Config.Metrics
	StateDir string
	Log      *zap.Logger

	memo     *memo.File // what the cache is known to hold; nil: none
	identity *cacheIdentity
	// opening yields the backend and its nix-cache-info, read in the
	// background as the lane opens; received once finishLane took it.
	opening  chan opening
	received bool
	closers  []func() error
}

// Open opens the store, then for each cache its backend and memo, and
// starts reading its nix-cache-info; while that request travels it reads
// the closure of Config.Roots and opens each cache's queue; then it acts
// on what each nix-cache-info says (cacheIdentity.settle) and builds each
// lane's uploader and drainer. On error, whatever was opened is closed
// again. Nothing is written to a cache before the roots are resolved.
func Open(ctx context.Context, cfg Config) (_ *Pipeline, err error) {
	if len(cfg.Caches) == 0 {
		return nil, errors.New("no cache to push to")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	p := &Pipeline{cfg: cfg, log: cfg.Log}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	for _, cc := range cfg.Caches {
		log := cfg.Log
		if len(cfg.Caches) > 1 {
			log = log.With(zap.String("cache", cc.URL.Identity()))
		}
		p.Lanes = append(p.Lanes, p.startLane(ctx, cc, log))
	}
	if p.Store, err = nixstore.Open(cfg.StoreRoot); err != nil {
		return nil, err
	}
	if p.Closure, err = ResolveClosure(ctx, p.Store, cfg.Roots); err != nil {
		return nil, err
	}
	if len(cfg.Keys()) == 0 {
		cfg.Log.Warn("no --signing-key: narinfos are unsigned and Nix clients that require signatures will not use them")
	}
	limitHeap()
	for i, l := range p.Lanes {
		if err := p.finishLane(ctx, l, cfg.Caches[i]); err != nil {
			return nil, p.errorf(l, err)
		}
	}
	return p, nil
}

// Keys are the signing keys of every cache.
func (c Config) Keys() []signature.SecretKey {
	var keys []signature.SecretKey
	for _, cc := range c.Caches {
		keys = append(keys, cc.Keys...)
	}
	return keys
}

// opening is a backend opened in the background, then what its
// nix-cache-info says.
type opening struct {
	cache   cache.Cache // nil: it could not be opened, for err
	err     error
	fetched chan fetched // its nix-cache-info, once read
}

// startLane opens a cache's backend and reads its nix-cache-info in the
// background (opening an S3 bucket is a request too), while Open reads
// the closure.
func (p *Pipeline) startLane(ctx context.Context, cc CacheConfig, log *zap.Logger) *Lane {
	cfg := p.cfg
	l := &Lane{URL: cc.URL, StateDir: cfg.StateDir, Log: log, opening: make(chan opening, 1)}
	bg, cancel := context.WithCancel(ctx)
	go func() {
		c, err := cc.URL.Open(bg, cfg.Network)
		o := opening{cache: c, err: err, fetched: make(chan fetched, 1)}
		l.opening <- o
		if err == nil {
			// ReadCacheInfo retries transient errors itself.
			o.fetched <- (&cacheIdentity{cache: c}).fetch(bg)
		}
	}()
	l.closers = append(l.closers, func() error {
		cancel()
		if !l.received {
			l.Cache = (<-l.opening).cache
		}
		if l.Cache != nil {
			return cache.Close(l.Cache)
		}
		return nil
	})
	return l
}

// finishLane waits for the lane's backend, opens its memo and queue
// (nothing is written to the state dir for a cache that cannot be
// opened), then waits for its nix-cache-info, acts on it, and builds the
// lane's uploader and drainer.
func (p *Pipeline) finishLane(ctx context.Context, l *Lane, cc CacheConfig) error {
	cfg := p.cfg
	var o opening
	select {
	case o = <-l.opening:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.Cache, l.received = o.cache, true
	if o.err != nil {
		return o.err
	}
	if l.memo = openMemo(l.Log, cfg.StateDir, cc.URL.Identity(), cfg.MemoTTL); l.memo != nil {
		l.closers = append(l.closers, l.memo.Close)
	}
	var err error
	if l.Queue, err = OpenQueue(ctx, cfg.StateDir, cc.URL.Identity(), cfg.Daemon); err != nil {
		return err
	}
	l.closers = append(l.closers, l.Queue.Close)
	var f fetched
	select {
	case f = <-o.fetched:
	case <-ctx.Done():
		return ctx.Err()
	}
	c := l.Cache
	var signers []string
	for _, k := range cc.Keys {
		signers = append(signers, k.ToPublicKey().Name)
	}
	l.identity = &cacheIdentity{
		cache: c, memo: l.memo, priority: cc.Priority, wantMassQuery: cc.WantMassQuery,
		signers: signers, allowUnsigned: cfg.AllowUnsigned, log: l.Log,
	}
	up := uploader.New(p.Store, c, cc.Compression, cc.Keys, cfg.Jobs, l.Log)
	up.Filter, up.Listing, up.DebugInfo, up.Logs, up.Recheck = cfg.Filter, cc.Listing, cc.DebugInfo, cfg.Logs, cfg.Recheck
	up.CheckCache = l.identity.recheck
	if reset, err := l.identity.settle(ctx, f); err != nil && !reset {
		return err
	} else if err != nil {
		l.Log.Warn("cache memo not used: asking the cache about every path", zap.Error(err))
	} else if l.memo != nil {
		up.Memo = l.memo
	}
	l.Uploader = up
	up.Journal = l.Queue
	l.abandonUploads(ctx)
	if cfg.Metrics != nil {
		l.Metrics = cfg.Metrics.ForCache(cc.URL.Identity(), l.Queue)
	}
	l.Drainer = &drainer.Drainer{
		Queue:           l.Queue,
		Uploader:        up,
		MaxAttempts:     cfg.MaxAttempts,
		Log:             l.Log.Named("drainer"),
		Retry:           retry.Paths,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Abort:           cfg.Abort,
		Metrics:         l.Metrics,
	}
	l.Metrics.WatchBytes(up.Stats.Sent.Load)
	l.Metrics.WatchProgress(func() (bool, time.Time) {
		busy, started := l.Drainer.Busy()
		return busy, later(started, time.Unix(0, up.Stats.Moved.Load()))
	})
	l.Metrics.WatchRequests(func() (metrics.Requests, bool) {
		r, ok := cache.RequestsOf(c)
		return metrics.Requests{ByKind: r.ByKind, Throttled: r.Throttled, Limit: r.Limit}, ok
	})
	return nil
}

// abandonUploads aborts the multipart uploads this cache's queue saved
// that no process will continue (their paths are done, failed or gone
// from the queue): a crash between a part and the outcome leaves them.
// A failure is logged; the state stays for the next start, and gc
// aborts what is left once it is older than its grace period.
func (l *Lane) abandonUploads(ctx context.Context) {
	saved, err := l.Queue.AbandonedUploads(ctx)
	if err != nil {
		l.Log.Warn("list abandoned uploads", zap.Error(err))
		return
	}
	for _, s := range saved {
		if err := l.Uploader.Abandon(ctx, s.Path, s.State); err != nil {
			l.Log.Warn("abort an upload no process will continue", zap.String("path", s.Path), zap.Error(err))
			return
		}
		l.Log.Info("aborted an upload no process will continue", zap.String("path", s.Path))
	}
}

// Close closes every lane, in reverse order of opening, then the store.
func (p *Pipeline) Close() error {
	var errs []error
	for i := len(p.Lanes) - 1; i >= 0; i-- {
		errs = append(errs, p.Lanes[i].close())
	}
	p.Lanes = nil
	if p.Store != nil {
		errs = append(errs, p.Store.Close())
		p.Store = nil
	}
	return errors.Join(errs...)
}

// close closes the lane's backend, memo and queue at once: none needs
// another, and the memo's and queue's last checkpoints (each a sync of
// its file) then overlap, 20–30 ms off the end of every push.
func (l *Lane) close() error {
	errs := make([]error, len(l.closers))
	var wg sync.WaitGroup
	for i, c := range l.closers {
		wg.Go(func() { errs[i] = c() })
	}
	wg.Wait()
	l.closers = nil
	return errors.Join(errs...)
}

// Label prefixes a lane's messages when there are several caches.
func (p *Pipeline) Label(l *Lane) string {
	if len(p.Lanes) < 2 {
		return ""
	}
	return l.URL.Identity()
}

// passesNameFilter is the watcher's filter: paths the uploader would refuse by
// name never reach a queue.
func (p *Pipeline) passesNameFilter(path string) bool {
	return p.cfg.Filter.CheckName(path) == uploader.Keep
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// errorf prefixes a lane's error with its cache when there are several.
func (p *Pipeline) errorf(l *Lane, err error) error {
	if err == nil || len(p.Lanes) < 2 {
		return err
	}
	return fmt.Errorf("%s: %w", l.URL.Identity(), err)
}
