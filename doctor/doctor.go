// Package doctor answers, from a client machine, "why does Nix build this
// instead of substituting it from the cache?": it checks the cache, Nix's
// effective configuration and the given paths, and says for each check
// what to fix.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"nixpush/cache"
	"nixpush/cache/location"
	"nixpush/nixconf"
	"nixpush/nixstore"
)

// Options say what Run checks.
type Options struct {
	// URL is the cache as given to nixpush use (a substituter URL).
	URL string
	// Open configures the backend Run opens for URL; a zero Timeout
	// means DefaultHTTPTimeout.
	Open location.Options
	// Key is the cache's public key (NAME:BASE64 or a file); empty skips
	// the trusted-key check with a warning.
	Key string
	// Paths are store paths, or symlinks to them like ./result, to look
	// up in the cache; none means ./result when it exists.
	Paths []string
	// Env runs nix show-config; nil means this process's environment.
	Env []string
	// Store, when set, is the root of the local store the paths are in
	// (as Nix's --store ROOT): arguments resolve through it (a chroot
	// store's ROOT/nix/store/... too), and each path's narinfo is
	// compared with what that store records.
	Store string
}

// DefaultHTTPTimeout bounds each request to an http(s) cache: a doctor
// should answer quickly when a server does not.
const DefaultHTTPTimeout = 15 * time.Second

// Status is a check's outcome.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // could not check, or works but could be better; not a failure
	Fail Status = "fail"
)

// Check names, stable for --json readers.
const (
	CheckCacheReachable = "cache-reachable"
	CheckCacheInfo      = "cache-info"
	CheckNixConfig      = "nix-config"
	CheckSubstituter    = "substituter"
	CheckTrustedKey     = "trusted-key"
	CheckTrustedUser    = "trusted-user"
	CheckPath           = "path"
	CheckNarInfo        = "narinfo"
	CheckSignature      = "signature"
	CheckReferences     = "references"
	CheckNAR            = "nar"
	CheckLocal          = "local-store"
)

// Check is one finding: what was checked, how it went, and what to do.
type Check struct {
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"` // the store path, for per-path checks
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Report is every check Run made, in order.
type Report struct {
	URL    string  `json:"url"` // without credentials
	Checks []Check `json:"checks"`
}

// OK reports whether no check failed: `nixpush doctor` exits 0 then, 1
// otherwise.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return false
		}
	}
	return true
}

// Failed returns the names of the failed checks, in order.
func (r Report) Failed() []string {
	var names []string
	for _, c := range r.Checks {
		if c.Status == Fail {
			names = append(names, c.Name)
		}
	}
	return names
}

// Write prints one line per check: status, name, detail, and the fix.
func (r Report) Write(w io.Writer) {
	for _, c := range r.Checks {
		line := fmt.Sprintf("%-4s  %-15s %s", c.Status, c.Name, c.Detail)
		if c.Fix != "" && c.Status != OK {
			line += "; fix: " + c.Fix
		}
		fmt.Fprintln(w, line)
	}
}

// doctor holds what the checks share.
type doctor struct {
	opts   Options
	url    string // opts.URL without user info, as nix.conf holds it
	report *Report
	cache  cache.Cache
	eff    *nixconf.Effective // nil when nix show-config failed
	keyArg string             // opts.Key as the user wrote it, for fixes
	local  *nixstore.Store    // Options.Store, open while the paths are checked
}

func (d *doctor) add(c Check) { d.report.Checks = append(d.report.Checks, c) }

// Run makes every check it can and returns them all; a check that cannot
// run because an earlier one failed is left out.
func Run(ctx context.Context, opts Options) Report {
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	d := &doctor{opts: opts, url: cleanURL(opts.URL), report: &Report{URL: cleanURL(opts.URL)}, keyArg: opts.Key}
	if d.keyArg == "" {
		d.keyArg = "KEY"
	}
	reachable := d.checkCache(ctx)
	d.checkConfig(ctx)
	if reachable {
		d.checkPaths(ctx)
	}
	return *d.report
}

// cleanURL drops the user info from a URL: it never appears in a report,
// and nix.conf holds substituters without it.
func cleanURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

// checkCache opens the cache and reads its nix-cache-info.
func (d *doctor) checkCache(ctx context.Context) bool {
	c, err := d.open(ctx)
	if err == nil {
		var r io.ReadCloser
		if r, err = c.Get(ctx, "nix-cache-info"); err == nil {
			defer r.Close()
			d.cache = c
			d.add(Check{Name: CheckCacheReachable, Status: OK, Detail: d.url + " answers"})
			d.checkCacheInfo(r)
			return true
		}
		if errors.Is(err, cache.ErrNotFound) {
			d.cache = c
			d.add(Check{Name: CheckCacheReachable, Status: OK, Detail: d.url + " answers"})
			d.add(Check{Name: CheckCacheInfo, Status: Fail, Detail: "the cache has no nix-cache-info, so Nix does not take it for a binary cache",
				Fix: "check the URL; nixpush push --to " + d.url + " creates it"})
			return true
		}
	}
	d.add(Check{Name: CheckCacheReachable, Status: Fail, Detail: "cannot read nix-cache-info: " + err.Error(),
		Fix: "check the URL, that the server is up and reachable from here, and the credentials (netrc) for a private cache"})
	return false
}

// open opens the cache through the one URL type, except that a missing
// file:// directory is reported, not created as filecache.New would.
func (d *doctor) open(ctx context.Context) (cache.Cache, error) {
	u, err := location.Parse(d.opts.URL)
	if err != nil {
		return nil, err
	}
	if dir := u.Dir(); dir != "" {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("open cache directory: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", dir)
		}
	}
	o := d.opts.Open
	if o.Timeout == 0 {
		o.Timeout = DefaultHTTPTimeout
	}
	return u.Open(ctx, o)
}

// checkCacheInfo validates nix-cache-info as Nix reads it.
func (d *doctor) checkCacheInfo(r io.Reader) {
	info, err := parseCacheInfo(r)
	switch {
	case err != nil:
		d.add(Check{Name: CheckCacheInfo, Status: Fail, Detail: "cannot read nix-cache-info: " + err.Error(), Fix: "check the server serves the cache's files as they are"})
	case info.storeDir != nixstore.StoreDir:
		d.add(Check{Name: CheckCacheInfo, Status: Fail,
			Detail: fmt.Sprintf("the cache is for store %s, this machine's is %s: Nix ignores every path in it", info.storeDir, nixstore.StoreDir),
			Fix:    "use a cache made for " + nixstore.StoreDir})
	case !info.wantMassQuery:
		d.add(Check{Name: CheckCacheInfo, Status: Warn, Detail: "nix-cache-info lacks WantMassQuery: 1, so some Nix queries skip this cache",
			Fix: "add the line WantMassQuery: 1 to nix-cache-info"})
	default:
		d.add(Check{Name: CheckCacheInfo, Status: OK, Detail: "StoreDir " + info.storeDir + ", priority " + info.priority})
	}
}

type cacheInfo struct {
	storeDir, priority string
	wantMassQuery      bool
}

func parseCacheInfo(r io.Reader) (cacheInfo, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return cacheInfo{}, err
	}
	// Nix assumes its own store dir and priority 50 when a key is absent.
	info := cacheInfo{storeDir: nixstore.StoreDir, priority: "50"}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "StoreDir":
			info.storeDir = v
		case "WantMassQuery":
			info.wantMassQuery = v == "1"
		case "Priority":
			info.priority = v
		} // unknown keys are ignored, as Nix does
	}
	return info, nil
}
