// Package location is the one place a user's cache URL is understood: it
// parses `--to` once into a URL that knows which cache it names (its
// identity, which names the cache's queue), how to show it without
// secrets, which Nix store settings it carries, and how to open the
// backend for its scheme. No error from this package repeats the URL's
// user info or a secret setting.
package location

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"nixpush/cache"
	"nixpush/retry"
)

// URL is a parsed cache URL.
type URL struct {
	u      *url.URL
	scheme *scheme
}

// scheme is one entry of the registry: what a scheme's URLs may say and
// how to open them.
type scheme struct {
	names []string
	// params are the query settings the backend reads itself.
	params []string
	// check validates the parts of the URL the backend needs.
	check func(u *url.URL) error
	// identity adds to scheme://host/path what makes two URLs of this
	// scheme different caches (an S3 endpoint).
	identity func(u *url.URL) string
	open     func(ctx context.Context, u *url.URL, o Options) (cache.Cache, error)
}

// Options are the backend settings that come from flags, not the URL.
type Options struct {
	// HTTP: bearer token (file wins over the token itself), netrc file
	// for basic auth, extra CA certificates.
	TokenFile, Token, NetrcFile, CACert string
	// Timeout is the stalled-transfer timeout of every network backend:
	// no progress for this long fails the request (transiently).
	Timeout time.Duration
	// S3 multipart tuning.
	PartSize    int64
	Concurrency int
	// Existing opens a cache for a command that only reads it, or deletes
	// from it (verify, gc, pin): nothing is created, not even a file://
	// cache's directory.
	Existing bool
}

// nixSettings are the settings of Nix's binary cache stores that nixpush
// reads, and the values each takes. Every other setting is an error:
// refused (refusedSettings) or unknown. A URL pasted from a Nix config
// either works as it says or fails saying what nixpush does not do.
var nixSettings = map[string]settingKind{
	"compression":          anyValue, // checked by uploader.ParseCompression
	"compression-level":    number,
	"parallel-compression": boolean,
	"secret-key":           anyValue,
	"secret-keys":          anyValue, // Nix 2.29+: comma-separated key files
	"write-nar-listing":    boolean,
	"index-debug-info":     boolean,
	"priority":             number, // written to a new nix-cache-info
	"want-mass-query":      boolean,
	"store":                storeDir,
}

type settingKind int

const (
	anyValue settingKind = iota
	number
	boolean
	storeDir
)

// refusedSettings are settings Nix accepts that nixpush does not do, and
// why: an error names them rather than ignoring them.
var refusedSettings = map[string]string{
	"trusted":                  "it tells a Nix client reading the cache to skip signature checks",
	"path-info-cache-size":     "it sizes a Nix client's in-memory cache",
	"local-nar-cache":          "it is where a Nix client keeps NARs it read",
	"system-features":          "it is for build machines",
	"narinfo-compression":      "nixpush writes narinfos uncompressed",
	"ls-compression":           "nixpush writes .ls listings uncompressed",
	"log-compression":          "nixpush writes build logs uncompressed",
	"multipart-upload":         "nixpush uploads every NAR of --part-size or more in parts",
	"buffer-size":              "the part size of multipart uploads is --part-size",
	"multipart-chunk-size":     "the part size of multipart uploads is --part-size",
	"multipart-threshold":      "NARs of --part-size or more go up in parts",
	"storage-class":            "nixpush uses the bucket's default storage class",
	"addressing-style":         "nixpush addresses buckets by path when endpoint is set, by host otherwise",
	"tls-certificate":          "nixpush has no TLS client certificates; --ca-cert adds CAs to trust",
	"tls-private-key":          "nixpush has no TLS client certificates",
	"retry-attempts":           "nixpush retries on its own policy (--max-attempts for paths)",
	"retry-delay":              "nixpush retries on its own policy",
	"retry-max-delay":          "nixpush retries on its own policy",
	"retry-delay-rate-limited": "nixpush retries on its own policy, honouring Retry-After",
}

// checkSetting validates one setting's value.
func checkSetting(name, value string) error {
	switch nixSettings[name] {
	case number:
		if _, err := strconv.Atoi(value); err != nil {
			return fmt.Errorf("cache URL: %s %q is not a number", name, value)
		}
	case boolean:
		switch value {
		case "0", "1", "true", "false":
		default:
			return fmt.Errorf("cache URL: %s %q is not a boolean (want true or false)", name, value)
		}
	case storeDir:
		if value != "/nix/store" {
			return fmt.Errorf("cache URL: store %q: nixpush pushes only from and for /nix/store", value)
		}
	}
	return nil
}

// secretSettings are never shown: they name secrets (a key file's path is
// not secret, but it says where the secret is, and Nix treats it so).
var secretSettings = []string{"secret-key", "secret-keys"}

// Parse reads a cache URL. Errors describe the problem without repeating
// the URL, which may carry a password.
func Parse(s string) (*URL, error) {
	if s == "" {
		return nil, errors.New("cache URL is empty (e.g. --to file:///srv/cache)")
	}
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("cache URL is malformed: %v", scrub(err.Error(), s))
	}
	if u.Fragment != "" || strings.HasSuffix(s, "#") {
		return nil, errors.New("cache URL has a '#': a password holding '#', '/' or '@' must be percent-encoded (%23, %2F, %40)")
	}
	if u.Scheme == "" {
		return nil, errors.New("cache URL has no scheme (want file:///dir, http(s)://host/path or s3://bucket)")
	}
	sc := lookup(u.Scheme)
	if sc == nil {
		return nil, fmt.Errorf("cache URL scheme %q is not supported (want file://, http://, https:// or s3://)", u.Scheme)
	}
	for k, vs := range u.Query() {
		_, known := nixSettings[k]
		switch why, refused := refusedSettings[k]; {
		case refused:
			return nil, fmt.Errorf("cache URL: setting %q is not supported by nixpush (%s)", k, why)
		case !known && !slices.Contains(sc.params, k):
			return nil, fmt.Errorf("cache URL: unknown setting %q", k)
		case len(vs) > 1:
			return nil, fmt.Errorf("cache URL: setting %q is given %d times", k, len(vs))
		}
		if known && !slices.Contains(secretSettings, k) {
			if err := checkSetting(k, vs[0]); err != nil {
				return nil, err
			}
		}
	}
	c := &URL{u: u, scheme: sc}
	if err := sc.check(u); err != nil {
		return nil, err
	}
	return c, nil
}

// Scheme is the URL's scheme: file, http, https or s3.
func (c *URL) Scheme() string { return c.u.Scheme }

// Dir is the directory a file:// URL names; "" for other schemes.
func (c *URL) Dir() string {
	if c.u.Scheme != "file" {
		return ""
	}
	return c.u.Path
}

// Setting is the value of a Nix store setting given in the URL, or "".
func (c *URL) Setting(name string) string { return c.u.Query().Get(name) }

// Identity is the URL without credentials and without the settings that
// do not change which cache it is (compression, keys): two URLs with the
// same identity share one queue.
func (c *URL) Identity() string {
	b := url.URL{Scheme: c.u.Scheme, Host: c.u.Host, Path: c.u.Path, RawPath: c.u.RawPath}
	id := b.String()
	if c.scheme.identity != nil {
		id += c.scheme.identity(c.u)
	}
	return strings.TrimSuffix(id, "/")
}

// Redacted is the URL as given, with the password and secret settings
// replaced by "xxxxx": safe for logs and `config check`.
func (c *URL) Redacted() string {
	r := *c.u
	if r.User != nil {
		if _, has := r.User.Password(); has {
			r.User = url.UserPassword(r.User.Username(), "xxxxx")
		}
	}
	q := r.Query()
	for _, k := range secretSettings {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	r.RawQuery = q.Encode()
	s, _ := url.PathUnescape(r.String())
	return s
}

// String is the redacted form, so a URL printed by mistake leaks nothing.
func (c *URL) String() string { return c.Redacted() }

// Open returns the backend for the URL. A bad configuration is a
// permanent error; an unreachable server may be a transient one.
func (c *URL) Open(ctx context.Context, o Options) (cache.Cache, error) {
	return c.scheme.open(ctx, c.u, o)
}

// Redact hides the password of a string that should be a URL, also of one
// that does not parse (or parses wrongly because the password holds '#',
// '/' or a bad escape): everything between "://" and the last '@' goes
// when it holds a ':'. For values that may or may not be URLs.
func Redact(v string) string {
	if c, err := Parse(v); err == nil && c.u.User != nil {
		return c.Redacted()
	}
	scheme, rest, ok := strings.Cut(v, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 || !strings.Contains(rest[:at], ":") {
		return v
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// scrub removes from a parser's message any quoted piece of the input,
// which is where url.Parse puts the URL or its bad part.
func scrub(msg, input string) string {
	if input != "" && strings.Contains(msg, input) {
		msg = strings.ReplaceAll(msg, input, "…")
	}
	// url.Parse quotes the offending part ("invalid URL escape \"%zz\"",
	// "invalid port \":x\" after host"); the part may be a password's.
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	return msg
}

func permanent(format string, args ...any) error {
	return retry.Permanent(fmt.Errorf(format, args...))
}
