package main

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap"

	"nixpush/cache"
	"nixpush/cache/location"
	"nixpush/drainer"
	"nixpush/memo"
	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/retry"
	"nixpush/uploader"
	"nixpush/watcher"
)

// pipeline is the one pipeline every pushing command runs: store →
// uploader → cache, with the cache's queue and its drainer. push,
// watch-store and watch-exec differ only in what they run on it.
type pipeline struct {
	log      *zap.Logger
	url      *location.URL
	store    *nixstore.Store
	cache    cache.Cache
	memo     *memo.File // what the cache is known to hold; nil: none
	uploader *uploader.Uploader
	queue    *queue.Queue
	drainer  *drainer.Drainer
	stateDir string
	// progressOff: several pipelines share the terminal; bars would mix.
	progressOff bool

	closers []func() error // in opening order; Close runs them in reverse
}

// openOptions say how a command uses the pipeline.
type openOptions struct {
	// daemon: a full page check of the queue at open (the daemon runs
	// for months; quick commands skip it).
	daemon bool
	// beforeWrite, when set, runs once the store is open and before
	// anything is written anywhere (cache, state dir): push checks its
	// arguments there, so a bad one fails with no side effects.
	beforeWrite func(*nixstore.Store) error
	// only, when set, limits the drainer to these paths (see
	// drainer.Drainer.Only).
	only func() []string
}

// cacheSettings are the checked settings of one cache: its URL, and the
// compression and keys its URL or the flags give.
type cacheSettings struct {
	url    *location.URL
	comp   uploader.Compression
	keys   []signature.SecretKey
	filter uploader.Filter
}

// settings checks every flag for one cache URL, writing nothing.
func (f *pipelineFlags) settings(to string) (*cacheSettings, error) {
	u, err := cacheURLFlag(to)
	if err != nil {
		return nil, err
	}
	method, level := u.Setting("compression"), u.Setting("compression-level")
	if f.compression != "" {
		method = f.compression
	}
	if f.level != "" {
		level = f.level
	}
	comp, err := uploader.ParseCompression(method, level)
	if err != nil {
		return nil, usageError("%w", err)
	}
	keyFiles := f.signingKeys
	if k := u.Setting("secret-key"); k != "" {
		keyFiles = append(keyFiles, k)
	}
	var keys []signature.SecretKey
	for _, file := range keyFiles {
		k, err := uploader.LoadSigningKey(file)
		if err != nil {
			return nil, usageError("%w", err)
		}
		keys = append(keys, k)
	}
	filter, err := f.filter()
	if err != nil {
		return nil, err
	}
	return &cacheSettings{url: u, comp: comp, keys: keys, filter: filter}, nil
}

// pipelines are the pipelines of every --to cache: each drains on its
// own, so a cache that is down never holds back another.
type pipelines []*pipeline

// openAll checks the flags of every cache before opening any, so a bad
// second URL leaves the first cache untouched; then opens each.
func (f *pipelineFlags) openAll(ctx context.Context, log *zap.Logger, o openOptions) (_ pipelines, err error) {
	if len(f.to) == 0 {
		return nil, usageError("--to is required (e.g. --to file:///srv/cache)")
	}
	var all []*cacheSettings
	seen := map[string]bool{}
	for _, to := range f.to {
		s, err := f.settings(to)
		if err != nil {
			return nil, err
		}
		if seen[s.url.Identity()] {
			return nil, usageError("--to names the cache %s twice", s.url.Identity())
		}
		seen[s.url.Identity()] = true
		all = append(all, s)
	}
	var ps pipelines
	defer func() {
		if err != nil {
			ps.Close()
		}
	}()
	for i, s := range all {
		po := o
		if i > 0 {
			po.beforeWrite = nil // the arguments were checked once
		}
		plog := log
		if len(all) > 1 {
			plog = log.With(zap.String("cache", s.url.Identity()))
		}
		p, err := f.open(ctx, plog, s, po)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// one is the single pipeline of a command that takes one cache.
func (f *pipelineFlags) one(ctx context.Context, log *zap.Logger, o openOptions) (*pipeline, error) {
	if len(f.to) > 1 {
		return nil, usageError("this command takes one cache (--to given %d times)", len(f.to))
	}
	ps, err := f.openAll(ctx, log, o)
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// Close closes every pipeline.
func (ps pipelines) Close() error {
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// open opens, for checked settings, the store, the cache and its memo
// (checking its nix-cache-info), the uploader, the queue and the drainer,
// in that order.
// On error, whatever was opened is closed again.
func (f *pipelineFlags) open(ctx context.Context, log *zap.Logger, s *cacheSettings, o openOptions) (_ *pipeline, err error) {
	u, comp, keys, filter := s.url, s.comp, s.keys, s.filter
	p := &pipeline{log: log, url: u, stateDir: f.drain.stateDir}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.store, err = nixstore.Open(f.store); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.store.Close)
	if o.beforeWrite != nil {
		if err := o.beforeWrite(p.store); err != nil {
			return nil, err
		}
	}
	var closeCache func() error
	if p.cache, closeCache, err = f.network.openCache(ctx, u); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, closeCache)
	priority := f.priority
	if s := u.Setting("priority"); s != "" {
		priority = atoiOr(s, priority) // checked by location.Parse
	}
	p.memo = f.openMemo(log, u.Identity())
	if p.memo != nil {
		p.closers = append(p.closers, p.memo.Close)
	}
	if err := p.checkCacheInfo(ctx, f.recheck, priority); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		log.Warn("no --signing-key: narinfos are unsigned and Nix clients that require signatures will not use them")
	}
	limitHeap()
	p.uploader = uploader.New(p.store, p.cache, comp, keys, f.jobs, log)
	p.uploader.Filter = filter
	p.uploader.Listing = f.narListing || isTrue(u.Setting("write-nar-listing"))
	p.uploader.Logs = !f.noLogs
	p.uploader.Recheck = f.recheck
	if p.memo != nil {
		p.uploader.Memo = p.memo
	}
	if p.queue, err = openQueue(ctx, f.drain.stateDir, u.Identity(), o.daemon); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.queue.Close)
	p.drainer = &drainer.Drainer{
		Queue:           p.queue,
		Uploader:        p.uploader,
		MaxAttempts:     f.drain.maxAttempts,
		Only:            o.only,
		Log:             log.Named("drainer"),
		Retry:           retry.Paths,
		ShutdownTimeout: f.drain.shutdownTimeout,
	}
	return p, nil
}

// keep is the watcher's name filter: paths the uploader would refuse by
// name never reach the queue.
func (p *pipeline) keep(path string) bool {
	return p.uploader.Filter.CheckName(path) == uploader.Keep
}

// watcher returns a watcher of the pipeline's store feeding sink from mark.
func (p *pipeline) watcher(sink watcher.Sink, mark int64) *watcher.Watcher {
	return &watcher.Watcher{
		Store: p.store, Sink: sink, Mark: mark, Keep: p.keep,
		Log: p.log.Named("watcher"), Enqueued: func([]string) { p.drainer.Wake() },
	}
}

// Close closes what open opened, in reverse order.
func (p *pipeline) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}

// isTrue reads a boolean Nix store setting as Nix does ("1" or "true").
func isTrue(v string) bool { return v == "1" || v == "true" }

// ensureCacheInfo writes the cache's nix-cache-info if it is missing. The
// first request of a run may meet a reset or a server restarting: a
// transient error is retried for up to a minute, as an upload would be; a
// permanent one (another StoreDir, refused credentials) fails at once.
func ensureCacheInfo(ctx context.Context, c cache.Cache, priority int) error {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond), backoff.WithMaxElapsedTime(time.Minute))
	var last error // as returned, so a permanent error keeps its class (exit 78)
	err := backoff.Retry(func() error {
		last = cache.EnsureCacheInfo(ctx, c, priority)
		return last
	}, backoff.WithContext(b, ctx))
	if err != nil && last != nil {
		return last
	}
	return err
}
