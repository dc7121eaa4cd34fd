// Package use is the engine of `nixpush use`: it configures a machine's
// Nix to substitute from a cache, editing nix.conf (and a netrc file for
// a private HTTP cache) the way a careful person would. What it reads of
// Nix's configuration comes from package nixconf, which doctor shares.
//
// Edits are idempotent and leave every line they do not change
// byte-for-byte; files are replaced atomically, and nix.conf is backed up
// before a change.
package use

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nixpush/nixconf"
)

// Options say what Use does.
type Options struct {
	// URL is the cache as Nix names a substituter (file:///srv/cache,
	// https://host/path, s3://bucket?region=...). User info in it
	// (user:password@) is never written to nix.conf, which is world
	// readable: it is only accepted as the credentials for Netrc.
	URL string
	// Key is the cache's public key, NAME:BASE64 or a file holding it.
	Key string
	// User edits the user's nix.conf ($XDG_CONFIG_HOME/nix/nix.conf)
	// instead of the system's ($NIX_CONF_DIR/nix.conf).
	User bool
	// Netrc, when set, writes the login for the URL's host into the netrc
	// file Nix reads (its netrc-file setting), for a private HTTP cache.
	Netrc *Netrc
	// Env is the environment that locates the files and runs nix
	// show-config; nil means this process's.
	Env []string
	// Now names backups; nil means time.Now.
	Now func() time.Time
}

// Netrc is a login for a private HTTP cache. An empty Login or Password
// is taken from the URL's user info (https://LOGIN:PASSWORD@host), each
// on its own: the login in the URL and the password from the environment
// is the usual way, since a password in a URL shows in shell history.
type Netrc struct {
	Login, Password string
}

// Changes says what Use did, without any secret.
type Changes struct {
	ConfFile     string   `json:"conf_file"`
	Changed      bool     `json:"changed"`          // ConfFile was rewritten
	Backup       string   `json:"backup,omitempty"` // the previous ConfFile, when it was changed
	Added        []string `json:"added,omitempty"`  // "setting += value" for each edit
	NetrcFile    string   `json:"netrc_file,omitempty"`
	NetrcChanged bool     `json:"netrc_changed,omitempty"`
	Hints        []string `json:"hints,omitempty"` // what else is needed for Nix to use the cache
}

// Write prints the changes for a person, one line each.
func (c Changes) Write(w io.Writer) {
	if !c.Changed {
		fmt.Fprintf(w, "%s already configured; nothing changed\n", c.ConfFile)
	}
	for _, a := range c.Added {
		fmt.Fprintf(w, "%s: %s\n", c.ConfFile, a)
	}
	if c.Backup != "" {
		fmt.Fprintf(w, "previous version kept as %s\n", c.Backup)
	}
	if c.NetrcFile != "" {
		state := "already holds the login"
		if c.NetrcChanged {
			state = "login written"
		}
		fmt.Fprintf(w, "%s: %s\n", c.NetrcFile, state)
	}
	for _, h := range c.Hints {
		fmt.Fprintf(w, "note: %s\n", h)
	}
}

// Run adds the cache to extra-substituters and its key to
// extra-trusted-public-keys in nix.conf (and, with Netrc, its login to the
// netrc file), then says what else is needed. Running it again changes
// nothing.
func Run(ctx context.Context, opts Options) (Changes, error) {
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	key, err := nixconf.ParseKey(opts.Key)
	if err != nil {
		return Changes{}, err
	}
	u, cacheURL, err := substituterURL(opts.URL, opts.Netrc != nil)
	if err != nil {
		return Changes{}, err
	}
	confFile, err := ConfFile(env, opts.User)
	if err != nil {
		return Changes{}, err
	}
	target, conf, mode, exists, err := readConf(confFile)
	if err != nil {
		return Changes{}, err
	}
	ch := Changes{ConfFile: confFile}
	edit := func(same func(a, b string) bool, name, value string, present ...string) {
		var changed bool
		if conf, changed = addValue(conf, same, name, value, present...); changed {
			ch.Added = append(ch.Added, name+" += "+value)
		}
	}
	edit(sameURL, "extra-substituters", cacheURL, "substituters")
	edit(sameString, "extra-trusted-public-keys", key.String(), "trusted-public-keys")

	if opts.Netrc != nil {
		netrcFile, set := lastValue(conf, "netrc-file")
		if !set {
			netrcFile = filepath.Join(filepath.Dir(confFile), "netrc")
			conf = appendLine(conf, "netrc-file = "+netrcFile)
			ch.Added = append(ch.Added, "netrc-file = "+netrcFile)
		}
		ch.NetrcFile = netrcFile
		if ch.NetrcChanged, err = writeNetrc(netrcFile, u, *opts.Netrc); err != nil {
			return ch, err
		}
	}

	if len(ch.Added) > 0 {
		if !exists {
			mode = 0o644
		} else if ch.Backup, err = backup(target, now()); err != nil {
			return ch, err
		}
		if err := writeAtomic(target, conf, mode); err != nil {
			return ch, permissionHint(err, opts.User)
		}
		ch.Changed = true
	}
	ch.Hints = hints(ctx, env, opts.User, ch.Changed || ch.NetrcChanged)
	return ch, nil
}

// ConfFile is the nix.conf Use edits: the system's ($NIX_CONF_DIR, by
// default /etc/nix) or the user's ($XDG_CONFIG_HOME, by default ~/.config,
// then nix/nix.conf), as Nix locates them.
func ConfFile(env []string, user bool) (string, error) {
	if !user {
		dir := getenv(env, "NIX_CONF_DIR")
		if dir == "" {
			dir = "/etc/nix"
		}
		return filepath.Join(dir, "nix.conf"), nil
	}
	dir := getenv(env, "XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv(env, "HOME")
		if home == "" {
			return "", errors.New("find user nix.conf: neither XDG_CONFIG_HOME nor HOME is set")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "nix", "nix.conf"), nil
}

// substituterURL checks a cache URL and returns it as nix.conf must hold
// it: without user info. Errors never show the URL's password.
func substituterURL(raw string, netrc bool) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, "", errors.New("cache URL must be a URL such as file:///srv/cache or https://cache.example/")
	}
	if u.Scheme == "file" && u.Host != "" && u.Host != "localhost" {
		return nil, "", fmt.Errorf("cache URL %s: a file URL needs three slashes (file:///dir)", u.Redacted())
	}
	if u.User != nil && !netrc {
		return nil, "", fmt.Errorf("cache URL %s holds a login, which nix.conf (world-readable) must not: use --netrc to put it in the netrc file", u.Redacted())
	}
	if netrc && u.Scheme != "http" && u.Scheme != "https" {
		return nil, "", fmt.Errorf("--netrc is for http(s) caches, not %s://", u.Scheme)
	}
	clean := *u
	clean.User = nil
	s := clean.String()
	if strings.ContainsAny(s, " \t\r\n#") {
		return nil, "", fmt.Errorf("cache URL %s has white space or '#', which nix.conf cannot hold", u.Redacted())
	}
	return u, s, nil
}

// writeNetrc puts the login for u's host into file (mode 0600, atomic).
func writeNetrc(file string, u *url.URL, login Netrc) (bool, error) {
	if u.User != nil {
		if login.Login == "" {
			login.Login = u.User.Username()
		}
		if pw, ok := u.User.Password(); ok && login.Password == "" {
			login.Password = pw
		}
	}
	switch {
	case login.Login == "":
		return false, fmt.Errorf("netrc entry for %s: no login: put it in the URL (https://LOGIN@%s/...)", u.Hostname(), u.Host)
	case login.Password == "":
		return false, fmt.Errorf("netrc entry for %s: no password: set $NIXPUSH_NETRC_PASSWORD (or put it in the URL)", u.Hostname())
	}
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read netrc file: %w", err)
	}
	text, changed, err := setNetrcEntry(string(old), u.Hostname(), login.Login, login.Password)
	if err != nil || !changed {
		return false, err
	}
	if err := writeAtomic(file, text, 0o600); err != nil {
		return false, fmt.Errorf("update netrc file: %w", err)
	}
	return true, nil
}

func permissionHint(err error, user bool) error {
	if errors.Is(err, os.ErrPermission) && !user {
		return fmt.Errorf("%w (run as root, or use --user for your own nix.conf)", err)
	}
	return err
}

// hints says what else Nix needs before it uses the cache.
func hints(ctx context.Context, env []string, user, changed bool) []string {
	var hs []string
	if changed && !user {
		hs = append(hs, "a running nix-daemon reads nix.conf only at start: systemctl restart nix-daemon")
	}
	if user {
		eff, err := nixconf.ReadEffective(ctx, env)
		if err == nil {
			var trusted bool
			var name string
			trusted, name, err = nixconf.UserTrusted(eff.TrustedUsers)
			if err == nil && !trusted {
				hs = append(hs, fmt.Sprintf("%s is not in trusted-users (%s): a nix-daemon ignores the substituters of your nix.conf; run nixpush use as root for the system nix.conf instead, or add %s to trusted-users there",
					name, strings.Join(eff.TrustedUsers, " "), name))
			}
		}
		if err != nil {
			hs = append(hs, "could not check trusted-users: "+err.Error())
		}
	}
	if changed {
		hs = append(hs, "Nix remembers a path missing from a cache for an hour (narinfo-cache-negative-ttl); one looked up before now may still build until then")
	}
	return hs
}

func getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// NixOSSnippet is the NixOS configuration that does what Use does: on
// NixOS nix.conf is generated, so it is set in configuration.nix.
func NixOSSnippet(cacheURL, key string) string {
	return fmt.Sprintf(`nix.settings = {
  extra-substituters = [ %s ];
  extra-trusted-public-keys = [ %s ];
};
`, nixString(cacheURL), nixString(key))
}

// nixString quotes s as a Nix string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `${`, `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
