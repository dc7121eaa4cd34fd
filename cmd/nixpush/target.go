package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"nixpush/nixstore"
	"nixpush/uploader"
	"nixpush/uploader/filecache"
	"nixpush/uploader/httpcache"
	"nixpush/uploader/s3cache"
)

// targetFlags are the flags every pushing command shares: where paths come
// from, where they go, and how they are packed and filtered.
type targetFlags struct {
	to           string
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
	http         httpFlags
	s3           s3Flags
}

func (t *targetFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&t.to, "to", "", "cache URL, as for nix copy --to (file:///dir?compression=zstd&secret-key=FILE)")
	fs.StringVar(&t.store, "store", "/", "root of the local Nix store, as Nix's --store ROOT")
	fs.StringArrayVar(&t.signingKeys, "signing-key", nil, "secret key file to sign narinfos with (repeatable)")
	fs.StringVar(&t.compression, "compression", "", "zstd (default), xz or none")
	fs.StringVar(&t.level, "compression-level", "", "compression level (zstd 1-22, xz 0-9)")
	fs.IntVarP(&t.jobs, "jobs", "j", runtime.NumCPU(), "NARs uploaded at once")
	fs.BoolVar(&t.includeDrv, "include-drv", false, "push .drv files too")
	fs.StringArrayVar(&t.exclude, "exclude", nil, "skip paths whose name (after the hash) matches REGEX (repeatable)")
	fs.StringArrayVar(&t.upstreamKeys, "upstream-key", []string{"cache.nixos.org-1"}, "skip paths signed by this key: an upstream cache has them (repeatable)")
	fs.BoolVar(&t.noUpstream, "no-upstream-filter", false, "push paths signed by upstream keys too")
	fs.IntVar(&t.priority, "priority", 40, "Priority written to a new cache's nix-cache-info")
	t.http.add(fs)
	t.s3.add(fs)
}

// nixURLParams are the store settings Nix accepts in a binary cache URL
// that nixpush has no use for; a pasted URL carrying them still works.
var nixURLParams = map[string]bool{
	"parallel-compression": true, "write-nar-listing": true, "index-debug-info": true,
	"want-mass-query": true, "priority": true, "trusted": true, "log-compression": true,
	"ls-compression": true, "narinfo-compression": true, "multipart-upload": true,
	"buffer-size": true, "path-info-cache-size": true,
}

// target is everything a push needs, opened and checked.
type target struct {
	store    *nixstore.Store
	uploader *uploader.Uploader
	filter   uploader.Filter
	identity string // the cache URL without settings or secrets: names its queue
}

// open validates every flag before anything is written, so bad input
// fails with one line and no side effects.
func (t *targetFlags) open(ctx context.Context, log *zap.Logger) (*target, error) {
	if t.to == "" {
		return nil, &exitError{code: 2, err: fmt.Errorf("--to is required (e.g. --to file:///srv/cache)")}
	}
	u, err := url.Parse(t.to)
	if err != nil {
		return nil, fmt.Errorf("cache URL: %w", err)
	}
	q := u.Query()
	method, level, keyFiles := q.Get("compression"), q.Get("compression-level"), t.signingKeys
	if t.compression != "" {
		method = t.compression
	}
	if t.level != "" {
		level = t.level
	}
	if k := q.Get("secret-key"); k != "" {
		keyFiles = append(keyFiles, k)
	}
	for k := range q {
		if k != "compression" && k != "compression-level" && k != "secret-key" && !nixURLParams[k] &&
			!(u.Scheme == "s3" && slices.Contains(s3cache.URLParams, k)) {
			return nil, fmt.Errorf("cache URL: unknown setting %q", k)
		}
	}
	comp, err := uploader.ParseCompression(method, level)
	if err != nil {
		return nil, err
	}
	var keys []signature.SecretKey
	for _, f := range keyFiles {
		k, err := uploader.LoadSigningKey(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	filter := uploader.Filter{IncludeDrv: t.includeDrv}
	for _, e := range t.exclude {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("--exclude %q: %w", e, err)
		}
		filter.Exclude = append(filter.Exclude, re)
	}
	if !t.noUpstream {
		filter.UpstreamKeys = t.upstreamKeys
	}
	if p := q.Get("priority"); p != "" {
		if t.priority, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("cache URL: priority %q is not a number", p)
		}
	}

	cache, err := openCache(ctx, u, t.http, t.s3)
	if err != nil {
		return nil, err
	}
	store, err := nixstore.Open(t.store)
	if err != nil {
		return nil, err
	}
	if err := uploader.EnsureCacheInfo(ctx, cache, t.priority); err != nil {
		store.Close()
		return nil, err
	}
	if len(keys) == 0 {
		log.Warn("no --signing-key: narinfos are unsigned and Nix clients that require signatures will not use them")
	}
	return &target{
		store:    store,
		uploader: uploader.New(store, cache, comp, keys, t.jobs, log),
		filter:   filter,
		identity: cacheIdentity(u),
	}, nil
}

// httpFlags configure the http(s):// backend. The bearer token itself is
// never a flag (it would show in ps): it comes from --token-file or the
// environment variable NIXPUSH_TOKEN.
type httpFlags struct {
	tokenFile, caCert, netrcFile string
	timeout                      time.Duration
}

func (h *httpFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&h.tokenFile, "token-file", "", "file holding a bearer token for an http(s) cache (else $NIXPUSH_TOKEN)")
	fs.StringVar(&h.caCert, "ca-cert", "", "PEM file of CA certificates to trust for an https cache, besides the system's")
	fs.StringVar(&h.netrcFile, "netrc-file", "", "netrc file with basic auth for an http(s) cache (default ~/.netrc if present)")
	fs.DurationVar(&h.timeout, "http-timeout", httpcache.DefaultTimeout, "http(s) connect, TLS, response header and stalled-write timeout (never a whole upload)")
}

// s3Flags tune the s3:// backend's multipart uploads. Where the bucket is
// (region, endpoint, scheme, profile) is in the URL, as for Nix.
type s3Flags struct {
	partSizeMiB int64
	concurrency int
}

func (s *s3Flags) add(fs *pflag.FlagSet) {
	fs.Int64Var(&s.partSizeMiB, "part-size", s3cache.DefaultPartSize>>20, "s3:// multipart upload part size in MiB (min 5); smaller NARs go up in one PUT")
	fs.IntVar(&s.concurrency, "part-concurrency", s3cache.DefaultConcurrency, "s3:// parts of one NAR in flight; each upload buffers up to part size × this")
}

// openCache picks the backend for a URL's scheme.
func openCache(ctx context.Context, u *url.URL, h httpFlags, s s3Flags) (uploader.Cache, error) {
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("cache URL file://%s%s: a file URL needs three slashes (file:///dir)", u.Host, u.Path)
		}
		return filecache.New(u.Path)
	case "http", "https":
		return httpcache.New(u, httpcache.Config{
			TokenFile: h.tokenFile,
			Token:     os.Getenv("NIXPUSH_TOKEN"),
			NetrcFile: h.netrcFile,
			CACert:    h.caCert,
			Timeout:   h.timeout,
		})
	case "s3":
		return s3cache.New(ctx, u, s3cache.Config{PartSize: s.partSizeMiB << 20, Concurrency: s.concurrency})
	case "":
		return nil, fmt.Errorf("cache URL %q has no scheme (want file:///dir or http(s)://host/path)", u.Redacted())
	}
	return nil, fmt.Errorf("cache URL scheme %q is not supported (want file://, http:// or https://)", u.Scheme)
}
