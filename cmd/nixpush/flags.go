package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/spf13/pflag"

	"nixpush/cache"
	"nixpush/cache/httpcache"
	"nixpush/cache/location"
	"nixpush/cache/s3cache"
	"nixpush/memo"
	"nixpush/uploader"
)

// pipelineFlags are the flags of every command that pushes (push,
// watch-store, watch-exec): where paths come from and go, how they are
// packed and filtered, how the queue drains, and logging.
type pipelineFlags struct {
	to           []string
	store        string
	signingKeys  []string
	compression  string
	level        string
	jobs         int
	includeDrv   bool
	exclude      []string
	upstreamKeys []string
	noUpstream   bool
	priority     int
	narListing   bool
	noLogs       bool
	memoTTL      time.Duration
	recheck      bool
	network      networkFlags
	drain        drainFlags
	log          logFlags
}

func (p *pipelineFlags) add(fs *pflag.FlagSet, defaultAttempts int, defaultLogLevel string) {
	fs.StringArrayVar(&p.to, "to", nil, "cache URL, as for nix copy --to (file:///dir?compression=zstd&secret-key=FILE); repeat it to push to several caches")
	fs.StringVar(&p.store, "store", "/", "root of the local Nix store, as Nix's --store ROOT")
	fs.StringArrayVar(&p.signingKeys, "signing-key", nil, "secret key file to sign narinfos with (repeatable)")
	fs.StringVar(&p.compression, "compression", "", "zstd (default), xz or none")
	fs.StringVar(&p.level, "compression-level", "", "compression level (zstd 1-22, xz 0-9)")
	fs.IntVarP(&p.jobs, "jobs", "j", 1, "NARs of 4 MiB or more uploaded at once, each compressed on every core and holding up to ~42 MiB (smaller ones go up to 64 at once beside them)")
	fs.BoolVar(&p.includeDrv, "include-drv", false, "push .drv files too")
	fs.StringArrayVar(&p.exclude, "exclude", nil, "skip paths whose name (after the hash) matches REGEX (repeatable)")
	fs.StringArrayVar(&p.upstreamKeys, "upstream-key", []string{"cache.nixos.org-1"}, "skip paths signed by this key: an upstream cache has them (repeatable)")
	fs.BoolVar(&p.noUpstream, "no-upstream-filter", false, "push paths signed by upstream keys too")
	fs.IntVar(&p.priority, "priority", 40, "Priority written to a new cache's nix-cache-info")
	fs.BoolVar(&p.narListing, "nar-listing", false, "write <hash>.ls file listings, as Nix's write-nar-listing=1 (also in the URL)")
	fs.BoolVar(&p.noLogs, "no-logs", false, "do not upload the build logs of pushed outputs (log/<drv>)")
	fs.DurationVar(&p.memoTTL, "memo-ttl", memo.DefaultTTL, "trust for this long that a path seen in the cache (or written there) is still there, and ask the cache only about the others (0: ask about every path every time)")
	fs.BoolVar(&p.recheck, "recheck", false, "ask the cache about every path of the closure, ignoring what earlier runs saw there")
	p.network.add(fs)
	p.drain.add(fs, defaultAttempts)
	p.log.add(fs, defaultLogLevel)
}

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
}

func (n *networkFlags) options() location.Options {
	return location.Options{
		TokenFile: n.tokenFile, Token: os.Getenv("NIXPUSH_TOKEN"), NetrcFile: n.netrcFile,
		CACert: n.caCert, Timeout: n.timeout,
		PartSize: n.partSizeMiB << 20, Concurrency: n.partConcurrency,
	}
}

// openCache opens the cache u names with these settings. closeCache
// releases what the backend holds; it does nothing for one that holds
// nothing.
func (n *networkFlags) openCache(ctx context.Context, u *location.URL) (cc cache.Cache, closeCache func() error, err error) {
	if cc, err = u.Open(ctx, n.options()); err != nil {
		return nil, nil, err
	}
	if c, ok := cc.(io.Closer); ok {
		return cc, c.Close, nil
	}
	return cc, func() error { return nil }, nil
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
}

func addStateDirFlag(fs *pflag.FlagSet, dir *string) {
	fs.StringVar(dir, "state-dir", defaultStateDir(), "directory holding the queues (env NIXPUSH_STATE_DIR)")
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
