// Package nixconf reads a machine's Nix configuration as Nix itself sees
// it (nix show-config, for the user and for the daemon) and the public
// keys a user gives: what `nixpush use` writes against and what `nixpush
// doctor` checks.
package nixconf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"
)

// Effective is the part of Nix's effective configuration that decides
// whether a cache is used, as `nix show-config` reports it: every config
// file, NIX_CONFIG and extra-* settings merged.
type Effective struct {
	Substituters        []string
	TrustedSubstituters []string
	TrustedPublicKeys   []string
	TrustedUsers        []string
	NetrcFile           string
}

// ReadEffective runs `nix show-config --json` with env (nil: this
// process's environment). The JSON form is read, not the text, because it
// keeps list values apart without guessing at white space. Only the
// settings above are kept: others (access-tokens) may hold secrets.
func ReadEffective(ctx context.Context, env []string) (Effective, error) {
	cmd := exec.CommandContext(ctx, "nix", "show-config", "--json", "--extra-experimental-features", "nix-command")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Effective{}, fmt.Errorf("run nix show-config: %w: %s", err, firstLine(stderr.String()))
	}
	var settings map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &settings); err != nil {
		return Effective{}, fmt.Errorf("read nix show-config output: %w", err)
	}
	var e Effective
	for name, dst := range map[string]*[]string{
		"substituters":         &e.Substituters,
		"trusted-substituters": &e.TrustedSubstituters,
		"trusted-public-keys":  &e.TrustedPublicKeys,
		"trusted-users":        &e.TrustedUsers,
	} {
		if s, ok := settings[name]; ok {
			if err := json.Unmarshal(s.Value, dst); err != nil {
				return Effective{}, fmt.Errorf("read %s from nix show-config: %w", name, err)
			}
		}
	}
	if s, ok := settings["netrc-file"]; ok {
		if err := json.Unmarshal(s.Value, &e.NetrcFile); err != nil {
			return Effective{}, fmt.Errorf("read netrc-file from nix show-config: %w", err)
		}
	}
	return e, nil
}

// DaemonEnv is env as the nix-daemon sees configuration: without the
// user's config files (NIX_USER_CONF_FILES set empty) nor NIX_CONFIG. A
// daemon started from the same NIX_CONF_DIR reads what ReadEffective then
// reports.
func DaemonEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name != "NIX_CONFIG" && name != "NIX_USER_CONF_FILES" {
			out = append(out, kv)
		}
	}
	return append(out, "NIX_USER_CONF_FILES=")
}

// HasSubstituter reports whether url is among subs, ignoring a trailing
// slash and Nix store settings in the query (?priority=...).
func HasSubstituter(subs []string, url string) bool {
	return slices.ContainsFunc(subs, func(s string) bool { return SameSubstituter(s, url) })
}

// SameSubstituter reports whether two substituter URLs name the same
// cache, as far as nix.conf is concerned: settings and a trailing slash
// aside.
func SameSubstituter(a, b string) bool { return normalizeURL(a) == normalizeURL(b) }

func normalizeURL(u string) string {
	u, _, _ = strings.Cut(u, "?")
	return strings.TrimRight(u, "/")
}

// UserTrusted reports whether the current user is in trusted-users: by
// name, through "*", or through "@group" for one of its groups. The
// nix-daemon ignores the substituters a user who is not trusted asks for,
// unless they are listed in trusted-substituters.
func UserTrusted(trustedUsers []string) (bool, string, error) {
	u, err := user.Current()
	if err != nil {
		return false, "", fmt.Errorf("look up current user: %w", err)
	}
	if slices.Contains(trustedUsers, "*") || slices.Contains(trustedUsers, u.Username) {
		return true, u.Username, nil
	}
	gids, err := u.GroupIds()
	if err != nil {
		return false, u.Username, fmt.Errorf("look up groups of %s: %w", u.Username, err)
	}
	for _, gid := range gids {
		if g, err := user.LookupGroupId(gid); err == nil && slices.Contains(trustedUsers, "@"+g.Name) {
			return true, u.Username, nil
		}
	}
	return false, u.Username, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return line
}
