package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"nixpush/cache"
	"nixpush/cache/httpcache"
	"nixpush/cache/location"
	"nixpush/cache/s3cache"
	"nixpush/memo"
	"nixpush/pipeline"
	"nixpush/uploader"
)

// pipelineFlags are the flags of every command that pushes (push,
// watch-store, watch-exec): where paths come from and go, how they are
// packed and filtered, how the queue drains, and logging.
type pipelineFlags struct {
	to            []string
	store         string
	signingKeys   []string
	compression   string
	level         string
	jobs          int
	includeDrv    bool
	exclude       []string
	upstreamKeys  []string
	noUpstream    bool
	priority      int
	narListing    bool
	noLogs        bool
	memoTTL       time.Duration
	recheck       bool
	allowUnsigned bool
	network       networkFlags
	drain         drainFlags
	log           logFlags
}

func (p *pipelineFlags) add(fs *pflag.FlagSet, defaultAttempts int, defaultLogLevel string) {
	p.addCache(fs)
	fs.IntVar(&p.priority, "priority", 40, "Priority written to a new cache's nix-cache-info")
	fs.DurationVar(&p.memoTTL, "memo-ttl", memo.DefaultTTL, "trust for this long that a path seen in the cache (or written there) is still there, and ask the cache only about the others (0: ask about every path every time)")
	fs.BoolVar(&p.recheck, "recheck", false, "ask the cache about every path of the closure, ignoring what earlier runs saw there")
	setGroup(fs, groupCache, "priority", "memo-ttl", "recheck")
	p.addSigning(fs)
	fs.BoolVar(&p.includeDrv, "include-drv", false, "push .drv files too")
	fs.StringArrayVar(&p.exclude, "exclude", nil, "skip paths whose name (after the hash) matches REGEX (repeatable)")
	fs.StringArrayVar(&p.upstreamKeys, "upstream-key", []string{"cache.nixos.org-1"}, "skip paths signed by this key: an upstream cache has them (repeatable)")
	fs.BoolVar(&p.noUpstream, "no-upstream-filter", false, "push paths signed by upstream keys too")
	setGroup(fs, groupFiltering, "include-drv", "exclude", "upstream-key", "no-upstream-filter")
	p.network.add(fs)
	fs.IntVarP(&p.jobs, "jobs", "j", 1, "NARs of 4 MiB or more uploaded at once, each compressed on every core and holding up to ~42 MiB (smaller ones go up to 64 at once beside them)")
	setGroup(fs, groupNetwork, "jobs")
	p.drain.add(fs, defaultAttempts)
	p.log.add(fs, defaultLogLevel)
}

// addRepair adds the flags of a command that pushes only to repair
// (verify --repair): where and how NARs are written, and signed. What it
// repairs is pushed whatever the filters say, into a cache that exists,
// asking the cache about every path, one large NAR at a time.
func (p *pipelineFlags) addRepair(fs *pflag.FlagSet, defaultLogLevel string) {
	p.addCache(fs)
	p.addSigning(fs)
	p.network.add(fs)
	addStateDirFlag(fs, &p.drain.stateDir)
	p.jobs, p.memoTTL, p.drain.maxAttempts, p.drain.shutdownTimeout = 1, memo.DefaultTTL, 3, 30*time.Second
	p.log.add(fs, defaultLogLevel)
}

// addCache adds where paths come from and go, and how they are packed.
func (p *pipelineFlags) addCache(fs *pflag.FlagSet) {
	fs.StringArrayVar(&p.to, "to", nil, "cache URL, as for nix copy --to (file:///dir?compression=zstd&secret-key=FILE); repeat it for several caches")
	fs.StringVar(&p.store, "store", "/", "root of the local Nix store, as Nix's --store ROOT")
	fs.StringVar(&p.compression, "compression", "", "zstd (default), xz, br (brotli) or none")
	fs.StringVar(&p.level, "compression-level", "", "compression level as Nix means it: zstd -131072 to 22 (default 1; 0 is zstd's default, 3), xz 0-9 (default 6), br 0-11 (default 11)")
	fs.BoolVar(&p.narListing, "nar-listing", false, "write <hash>.ls file listings, as Nix's write-nar-listing=1 (also in the URL)")
	fs.BoolVar(&p.noLogs, "no-logs", false, "do not upload the build logs of pushed outputs (log/<drv>)")
	setGroup(fs, groupCache, "to", "store", "compression", "compression-level", "nar-listing", "no-logs")
}

func (p *pipelineFlags) addSigning(fs *pflag.FlagSet) {
	fs.StringArrayVar(&p.signingKeys, "signing-key", nil, "secret key file to sign narinfos with (repeatable)")
	fs.BoolVar(&p.allowUnsigned, "allow-unsigned", false, "push without a signing key into a cache whose narinfos are signed (clients trusting its key will not use those paths)")
	setGroup(fs, groupSigning, "signing-key", "allow-unsigned")
}

// compressions are --compression's values, for completion.
var compressions = []string{"zstd", "xz", "br", "none"}

// filter builds the path filter from the flags.
func (p *pipelineFlags) filter() (uploader.Filter, error) {
	f := uploader.Filter{IncludeDrv: p.includeDrv}
	for _, e := range p.exclude {
		re, err := regexp.Compile(e)
		if err != nil {
			return f, usageError("--exclude %q: %v", e, err)
		}
		f.Exclude = append(f.Exclude, re)
	}
	if !p.noUpstream {
		f.UpstreamKeys = p.upstreamKeys
	}
	return f, nil
}

// config checks every flag of every --to cache, writing nothing, and
// turns them into the pipeline's Config: a bad second URL leaves the
// first cache untouched.
func (p *pipelineFlags) config(log *zap.Logger) (pipeline.Config, error) {
	if len(p.to) == 0 {
		return pipeline.Config{}, usageError("--to is required (e.g. --to file:///srv/cache)")
	}
	filter, err := p.filter()
	if err != nil {
		return pipeline.Config{}, err
	}
	cfg := pipeline.Config{
		StoreRoot: p.store, StateDir: p.drain.stateDir, Network: p.network.options(),
		Jobs: p.jobs, Filter: filter, Logs: !p.noLogs, MemoTTL: p.memoTTL, Recheck: p.recheck, AllowUnsigned: p.allowUnsigned,
		MaxAttempts: p.drain.maxAttempts, ShutdownTimeout: p.drain.shutdownTimeout, Log: log,
	}
	seen := map[string]bool{}
	for _, to := range p.to {
		c, err := p.cacheConfig(to)
		if err != nil {
			return pipeline.Config{}, err
		}
		if seen[c.URL.Identity()] {
			return pipeline.Config{}, usageError("--to names the cache %s twice", c.URL.Identity())
		}
		seen[c.URL.Identity()] = true
		cfg.Caches = append(cfg.Caches, c)
	}
	return cfg, nil
}

// cacheConfig reads one --to URL: its settings override the flags'.
func (p *pipelineFlags) cacheConfig(to string) (pipeline.CacheConfig, error) {
	u, err := cacheURLFlag(to)
	if err != nil {
		return pipeline.CacheConfig{}, err
	}
	method, level := u.Setting("compression"), u.Setting("compression-level")
	if p.compression != "" {
		method = p.compression
	}
	if p.level != "" {
		level = p.level
	}
	comp, err := uploader.ParseCompression(method, level, u.Setting("parallel-compression"))
	if err != nil {
		return pipeline.CacheConfig{}, usageError("%w", err)
	}
	keyFiles := slices.Clone(p.signingKeys)
	if k := u.Setting("secret-key"); k != "" {
		keyFiles = append(keyFiles, k)
	}
	if ks := u.Setting("secret-keys"); ks != "" {
		keyFiles = append(keyFiles, strings.Split(ks, ",")...)
	}
	var keys []signature.SecretKey
	for _, file := range keyFiles {
		k, err := uploader.LoadSigningKey(file)
		if err != nil {
			return pipeline.CacheConfig{}, usageError("%w", err)
		}
		keys = append(keys, k)
	}
	priority := p.priority
	if s := u.Setting("priority"); s != "" {
		if priority, err = strconv.Atoi(s); err != nil { // checked by location.Parse
			return pipeline.CacheConfig{}, usageError("priority=%q is not a number", s)
		}
	}
	return pipeline.CacheConfig{
		URL: u, Compression: comp, Keys: keys, Priority: priority,
		WantMassQuery: u.Setting("want-mass-query") == "" || isTrue(u.Setting("want-mass-query")),
		Listing:       p.narListing || isTrue(u.Setting("write-nar-listing")),
		DebugInfo:     isTrue(u.Setting("index-debug-info")),
	}, nil
}

// isTrue reads a boolean Nix store setting as Nix does ("1" or "true").
func isTrue(v string) bool { return v == "1" || v == "true" }

// networkFlags configure the network backends. The bearer token itself is
// never a flag (it would show in ps): it comes from --token-file or the
// environment variable NIXPUSH_TOKEN. Where an S3 bucket is (region,
// endpoint, scheme, profile) is in the URL, as for Nix.
type networkFlags struct {
	tokenFile, caCert, netrcFile string
	timeout                      time.Duration
	partSizeMiB                  int64
	partConcurrency              int
}

func (n *networkFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&n.tokenFile, "token-file", "", "file holding a bearer token for an http(s) cache (else $NIXPUSH_TOKEN)")
	fs.StringVar(&n.caCert, "ca-cert", "", "PEM file of CA certificates to trust for an https cache, besides the system's")
	fs.StringVar(&n.netrcFile, "netrc-file", "", "netrc file with basic auth for an http(s) cache (default ~/.netrc if present)")
	fs.DurationVar(&n.timeout, "http-timeout", httpcache.DefaultTimeout, "stalled-transfer timeout of http(s):// and s3:// caches: no progress for this long fails a request, to be retried (never bounds a whole upload)")
	fs.Int64Var(&n.partSizeMiB, "part-size", s3cache.DefaultPartSize>>20, "s3:// multipart upload part size in MiB (min 5); smaller NARs go up in one PUT")
	fs.IntVar(&n.partConcurrency, "part-concurrency", s3cache.DefaultConcurrency, "s3:// parts of one NAR in flight; each upload buffers up to part size × this")
	setGroup(fs, groupNetwork, "token-file", "ca-cert", "netrc-file", "http-timeout", "part-size", "part-concurrency")
}

func (n *networkFlags) options() location.Options {
	return location.Options{
		TokenFile: n.tokenFile, Token: os.Getenv("NIXPUSH_TOKEN"), NetrcFile: n.netrcFile,
		CACert: n.caCert, Timeout: n.timeout,
		PartSize: n.partSizeMiB << 20, Concurrency: n.partConcurrency,
	}
}

// openCache opens the cache u names with these settings, for a command
// that reads or deletes (verify, gc, pin): it creates nothing, and a URL
// with no nix-cache-info is no cache. cache.Close releases it.
func (n *networkFlags) openCache(ctx context.Context, u *location.URL) (cache.Cache, error) {
	o := n.options()
	o.Existing = true
	c, err := u.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := cache.RequireCacheInfo(ctx, c); err != nil {
		cache.Close(c)
		return nil, err
	}
	return c, nil
}

// drainFlags configure the queue → cache half of the pipeline.
type drainFlags struct {
	stateDir        string
	maxAttempts     int
	shutdownTimeout time.Duration
}

func (d *drainFlags) add(fs *pflag.FlagSet, defaultAttempts int) {
	addStateDirFlag(fs, &d.stateDir)
	fs.IntVar(&d.maxAttempts, "max-attempts", defaultAttempts, "transient failures before a path is marked failed")
	fs.DurationVar(&d.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long uploads in flight may finish")
	setGroup(fs, groupQueue, "max-attempts", "shutdown-timeout")
}

func addStateDirFlag(fs *pflag.FlagSet, dir *string) {
	fs.StringVar(dir, "state-dir", pipeline.DefaultStateDir(), "directory holding the queues (env NIXPUSH_STATE_DIR)")
	setGroup(fs, groupQueue, "state-dir")
}

// cacheURLFlags parses the --to values of a command that reads or
// deletes: at least one, each cache once.
func cacheURLFlags(to []string) ([]*location.URL, error) {
	if len(to) == 0 {
		return nil, usageError("--to is required (e.g. --to file:///srv/cache)")
	}
	var urls []*location.URL
	seen := map[string]bool{}
	for _, t := range to {
		u, err := cacheURLFlag(t)
		if err != nil {
			return nil, err
		}
		if seen[u.Identity()] {
			return nil, usageError("--to names the cache %s twice", u.Identity())
		}
		seen[u.Identity()] = true
		urls = append(urls, u)
	}
	return urls, nil
}

// cacheURLFlag parses a --to value; an empty one is a usage error.
func cacheURLFlag(to string) (*location.URL, error) {
	if to == "" {
		return nil, usageError("--to is required (e.g. --to file:///srv/cache)")
	}
	u, err := location.Parse(to)
	if err != nil {
		return nil, usageError("%w", err)
	}
	return u, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// plural counts things in English: "1 path", "2 paths".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
