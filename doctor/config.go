package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/nixconf"
)

// checkConfig reads Nix's effective configuration and checks that it
// uses the cache: substituter, key, and a user the daemon listens to.
func (d *doctor) checkConfig(ctx context.Context) {
	eff, err := nixconf.ReadEffective(ctx, d.opts.Env)
	if err != nil {
		d.add(Check{Name: CheckNixConfig, Status: Fail, Detail: "cannot read Nix's configuration: " + err.Error(),
			Fix: "check that nix is installed and in PATH, and that nix.conf parses (nix show-config)"})
		return
	}
	d.eff = &eff
	use := "nixpush use " + d.url + " --key " + d.keyArg
	configured := nixconf.HasSubstituter(eff.Substituters, d.url)
	if configured {
		d.add(Check{Name: CheckSubstituter, Status: OK, Detail: d.url + " is among Nix's substituters"})
	} else {
		d.add(Check{Name: CheckSubstituter, Status: Fail,
			Detail: d.url + " is not among Nix's substituters (" + strings.Join(eff.Substituters, " ") + ")", Fix: use})
	}
	d.checkKey(eff, use)
	if configured {
		d.checkUser(ctx, eff)
	}
}

// checkKey: the cache's key must be in trusted-public-keys, or Nix
// rejects every narinfo it serves.
func (d *doctor) checkKey(eff nixconf.Effective, use string) {
	if d.opts.Key == "" {
		d.add(Check{Name: CheckTrustedKey, Status: Warn, Detail: "no key given, so whether the cache's key is trusted is not checked",
			Fix: "give the cache's public key (--key)"})
		return
	}
	key, err := nixconf.ParseKey(d.opts.Key)
	if err != nil {
		d.add(Check{Name: CheckTrustedKey, Status: Fail, Detail: err.Error(), Fix: "give the cache's public key, NAME:BASE64 or its .pub file"})
		return
	}
	if slices.Contains(eff.TrustedPublicKeys, key.String()) {
		d.add(Check{Name: CheckTrustedKey, Status: OK, Detail: key.Name + " is in trusted-public-keys"})
		return
	}
	detail := key.Name + " is not in trusted-public-keys"
	for _, k := range trustedKeys(eff.TrustedPublicKeys) {
		if k.Name == key.Name {
			detail = "a different key named " + key.Name + " is in trusted-public-keys"
		}
	}
	d.add(Check{Name: CheckTrustedKey, Status: Fail, Detail: detail, Fix: use})
}

// checkUser: a nix-daemon uses the substituters and keys a client sends
// only from a trusted user; for anyone else it uses its own nix.conf and
// trusted-substituters.
func (d *doctor) checkUser(ctx context.Context, eff nixconf.Effective) {
	trusted, name, err := nixconf.UserTrusted(eff.TrustedUsers)
	if err != nil {
		d.add(Check{Name: CheckTrustedUser, Status: Warn, Detail: "cannot check trusted-users: " + err.Error()})
		return
	}
	if trusted {
		d.add(Check{Name: CheckTrustedUser, Status: OK, Detail: name + " is in trusted-users, so the daemon uses this user's substituters"})
		return
	}
	sys, err := nixconf.ReadEffective(ctx, nixconf.DaemonEnv(d.opts.Env))
	if err != nil {
		d.add(Check{Name: CheckTrustedUser, Status: Warn, Detail: "cannot read the system configuration: " + err.Error()})
		return
	}
	systemWide := nixconf.HasSubstituter(sys.Substituters, d.url) || nixconf.HasSubstituter(sys.TrustedSubstituters, d.url)
	keyOK := true
	if key, err := nixconf.ParseKey(d.opts.Key); err == nil {
		keyOK = slices.Contains(sys.TrustedPublicKeys, key.String())
	}
	if systemWide && keyOK {
		d.add(Check{Name: CheckTrustedUser, Status: OK, Detail: name + " is not in trusted-users, but the cache and its key are set system-wide"})
		return
	}
	d.add(Check{Name: CheckTrustedUser, Status: Fail,
		Detail: fmt.Sprintf("%s is not in trusted-users (%s) and the cache is set only in the user's configuration, which a nix-daemon ignores", name, strings.Join(eff.TrustedUsers, " ")),
		Fix:    "as root: nixpush use " + d.url + " --key " + d.keyArg + " (system nix.conf), then systemctl restart nix-daemon"})
}

// trustedKeys parses the keys Nix trusts, skipping any it could not use
// either.
func trustedKeys(keys []string) []signature.PublicKey {
	var out []signature.PublicKey
	for _, k := range keys {
		if pk, err := signature.ParsePublicKey(k); err == nil {
			out = append(out, pk)
		}
	}
	return out
}
