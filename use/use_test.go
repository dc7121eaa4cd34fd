package use

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nixpush/internal/nixtest"
)

// confEnv is the environment of a machine whose only Nix configuration is
// confDir: nixtest's private HOME and XDG dirs, without its NIX_CONFIG.
func confEnv(t *testing.T, confDir string) []string {
	var env []string
	for _, kv := range nixtest.Env(t) {
		if !strings.HasPrefix(kv, "NIX_CONFIG=") {
			env = append(env, kv)
		}
	}
	return append(env, "NIX_CONF_DIR="+confDir)
}

func writeFile(t *testing.T, file, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUseSubstitutes is the acceptance test: a machine configured by Use
// alone substitutes a closure pushed to the cache.
func TestUseSubstitutes(t *testing.T) {
	s := nixtest.NewStore(t)
	built := s.Build(t, nixtest.WithReference("use"))
	dep, top := built[0], built[1]
	sec, pubFile, pub := nixtest.Keygen(t, "use-test-1")
	cache := t.TempDir()
	if _, _, err := s.Run(t, "nix", "copy", "--to", "file://"+cache+"?secret-key="+sec, top); err != nil {
		t.Fatal(err)
	}

	confDir := t.TempDir()
	writeFile(t, filepath.Join(confDir, "nix.conf"), "sandbox = false\n", 0o644)
	env := confEnv(t, confDir)
	ch, err := Run(t.Context(), Options{URL: "file://" + cache, Key: pubFile, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	conf := readFile(t, filepath.Join(confDir, "nix.conf"))
	want := "sandbox = false\nextra-substituters = file://" + cache + "\nextra-trusted-public-keys = " + pub + "\n"
	if conf != want || !ch.Changed || ch.Backup == "" || readFile(t, ch.Backup) != "sandbox = false\n" {
		t.Fatalf("after Use: nix.conf = %q, changes %+v; want %q and a backup of the old file", conf, ch, want)
	}

	again, err := Run(t.Context(), Options{URL: "file://" + cache + "/", Key: pub, Env: env, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(confDir, "nix.conf")); got != conf || again.Changed || again.Backup != "" {
		t.Fatalf("second Use changed nix.conf to %q (changes %+v)", got, again)
	}
	if baks, _ := filepath.Glob(filepath.Join(confDir, "nix.conf.bak*")); len(baks) != 1 {
		t.Errorf("backups after two runs: %q, want one", baks)
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	cmd := exec.CommandContext(t.Context(), "nix-store", "--store", fresh, "-r", top, "--option", "max-jobs", "0")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", fresh).Run() })
	if err != nil {
		t.Fatalf("substitute with the configured nix.conf: %v\n%s", err, out)
	}
	for _, p := range []string{dep, top} {
		if !bytes.Contains(out, []byte("copying path '"+p+"' from 'file://"+cache)) {
			t.Errorf("%s was not substituted from the cache:\n%s", p, out)
		}
	}
}

func TestUseKeepsLinesModeAndComments(t *testing.T) {
	t.Parallel()
	confDir := t.TempDir()
	file := filepath.Join(confDir, "nix.conf")
	old := "# managed by hand\n\nextra-substituters = https://other.example/ # team\n\tmax-jobs = 4   \ntrusted-public-keys = a:b"
	writeFile(t, file, old, 0o640)
	const pub = "cache-1:1Bdw4SVI8tnOjrbujiC4jBtu4fhTdWXTxxC96DpTvRs="
	ch, err := Run(t.Context(), Options{URL: "https://cache.example/x?priority=30", Key: pub, Env: []string{"NIX_CONF_DIR=" + confDir}})
	if err != nil {
		t.Fatal(err)
	}
	want := "# managed by hand\n\nextra-substituters = https://other.example/ https://cache.example/x?priority=30 # team\n\tmax-jobs = 4   \ntrusted-public-keys = a:b\nextra-trusted-public-keys = " + pub + "\n"
	if got := readFile(t, file); got != want {
		t.Errorf("nix.conf = %q, want %q", got, want)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after Use: %v, %v; want 0640 kept", fi.Mode(), err)
	}
	if readFile(t, ch.Backup) != old {
		t.Errorf("backup %s does not hold the old file", ch.Backup)
	}
	if len(ch.Hints) == 0 || !strings.Contains(ch.Hints[0], "systemctl restart nix-daemon") {
		t.Errorf("hints %q do not say to restart the daemon", ch.Hints)
	}
}

func TestUseNetrc(t *testing.T) {
	t.Parallel()
	confDir := t.TempDir()
	writeFile(t, filepath.Join(confDir, "netrc"), "machine other login o password op\n", 0o644)
	const pub = "cache-1:1Bdw4SVI8tnOjrbujiC4jBtu4fhTdWXTxxC96DpTvRs="
	opts := Options{URL: "https://alice:s3cret@cache.example/", Key: pub, Env: []string{"NIX_CONF_DIR=" + confDir}, Netrc: &Netrc{}}
	ch, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	netrcFile := filepath.Join(confDir, "netrc")
	wantConf := "extra-substituters = https://cache.example/\nextra-trusted-public-keys = " + pub + "\nnetrc-file = " + netrcFile + "\n"
	if got := readFile(t, filepath.Join(confDir, "nix.conf")); got != wantConf {
		t.Errorf("nix.conf = %q, want %q", got, wantConf)
	}
	if got := readFile(t, netrcFile); got != "machine other login o password op\nmachine cache.example login alice password s3cret\n" {
		t.Errorf("netrc = %q", got)
	}
	if fi, _ := os.Stat(netrcFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("netrc mode %v, want 0600", fi.Mode())
	}
	var shown bytes.Buffer
	ch.Write(&shown)
	if !ch.NetrcChanged || strings.Contains(shown.String(), "s3cret") || strings.Contains(shown.String(), "alice:") {
		t.Errorf("changes %+v, shown as %q: want the netrc changed and no password shown", ch, shown.String())
	}
	if again, err := Run(t.Context(), opts); err != nil || again.Changed || again.NetrcChanged {
		t.Errorf("second Use: %+v, %v; want no change", again, err)
	}
	_, err = Run(t.Context(), Options{URL: "https://alice:s3cret@cache.example/", Key: pub, Env: opts.Env})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a password in the URL without --netrc: err = %v, want an error without it", err)
	}
}

// TestUseUserUntrusted edits the user's nix.conf and, with real Nix
// reading trusted-users, warns that the daemon would ignore it.
func TestUseUserUntrusted(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	confDir, xdg := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(confDir, "nix.conf"), "trusted-users = nobody-else\n", 0o644)
	env := append(confEnv(t, confDir), "XDG_CONFIG_HOME="+xdg)
	const pub = "cache-1:1Bdw4SVI8tnOjrbujiC4jBtu4fhTdWXTxxC96DpTvRs="
	ch, err := Run(t.Context(), Options{URL: "file:///srv/cache", Key: pub, User: true, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if ch.ConfFile != filepath.Join(xdg, "nix", "nix.conf") || readFile(t, ch.ConfFile) == "" {
		t.Errorf("user mode edited %s", ch.ConfFile)
	}
	if !strings.Contains(strings.Join(ch.Hints, "\n"), "not in trusted-users (nobody-else)") {
		t.Errorf("hints %q do not warn about trusted-users", ch.Hints)
	}
	if strings.Contains(strings.Join(ch.Hints, "\n"), "restart") {
		t.Errorf("hints %q ask for a daemon restart for a user nix.conf", ch.Hints)
	}
}

// TestUseNetrcLoginFromURLPasswordFromEnv: as the help says, the login may
// come from the URL (https://bob@host) and the password from
// $NIXPUSH_NETRC_PASSWORD (Netrc.Password); a missing one is named.
func TestUseNetrcLoginFromURLPasswordFromEnv(t *testing.T) {
	t.Parallel()
	confDir := t.TempDir()
	const pub = "cache-1:1Bdw4SVI8tnOjrbujiC4jBtu4fhTdWXTxxC96DpTvRs="
	env := []string{"NIX_CONF_DIR=" + confDir}
	if _, err := Run(t.Context(), Options{URL: "https://bob@cache.example/", Key: pub, Env: env, Netrc: &Netrc{Password: "from-env"}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(confDir, "netrc")); got != "machine cache.example login bob password from-env\n" {
		t.Errorf("netrc = %q", got)
	}
	_, err := Run(t.Context(), Options{URL: "https://bob@cache.example/", Key: pub, Env: env, Netrc: &Netrc{}})
	if err == nil || !strings.Contains(err.Error(), "NIXPUSH_NETRC_PASSWORD") {
		t.Errorf("no password anywhere: %v, want an error naming $NIXPUSH_NETRC_PASSWORD", err)
	}
	_, err = Run(t.Context(), Options{URL: "https://cache.example/", Key: pub, Env: env, Netrc: &Netrc{Password: "pw"}})
	if err == nil || !strings.Contains(err.Error(), "https://LOGIN@cache.example") {
		t.Errorf("no login: %v, want an error saying where the login goes", err)
	}
}
