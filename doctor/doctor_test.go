package doctor

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/use"
)

// machine is a client configured by use.Run, and caches to ask about.
type machine struct {
	env      []string
	dep, top string
	pub      string // trusted, signs good
	otherPub string // not trusted, signs otherKey
	good     string // file:// URL: closure of top signed by pub
	otherKey string // closure of top signed by otherPub only
	noDep    string // as good, without dep's narinfo
	shortNAR string // as good, top's NAR truncated
	unlisted string // as good, not configured
}

// newMachine builds {dep, top} with real Nix, pushes them with nix copy
// and configures a private NIX_CONF_DIR to use most of the caches.
func newMachine(t *testing.T) *machine {
	t.Helper()
	s := nixtest.NewStore(t)
	built := s.Build(t, nixtest.WithReference("doc"))
	m := &machine{dep: built[0], top: built[1]}
	sec, _, pub := nixtest.Keygen(t, "doctor-test-1")
	otherSec, _, otherPub := nixtest.Keygen(t, "doctor-other-1")
	m.pub, m.otherPub = pub, otherPub
	push := func(secret string) string {
		dir := t.TempDir()
		if _, _, err := s.Run(t, "nix", "copy", "--to", "file://"+dir+"?secret-key="+secret, m.top); err != nil {
			t.Fatal(err)
		}
		// nix copy writes StoreDir alone; nixpush also says
		// WantMassQuery, which doctor warns about when missing.
		info := "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
		if err := os.WriteFile(filepath.Join(dir, "nix-cache-info"), []byte(info), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	good := push(sec)
	m.good, m.otherKey = "file://"+good, "file://"+push(otherSec)
	m.noDep, m.shortNAR, m.unlisted = "file://"+clone(t, good), "file://"+clone(t, good), "file://"+clone(t, good)
	if err := os.Remove(filepath.Join(strings.TrimPrefix(m.noDep, "file://"), cache.NarInfoKey(m.dep))); err != nil {
		t.Fatal(err)
	}
	truncateNAR(t, strings.TrimPrefix(m.shortNAR, "file://"), m.top)

	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "nix.conf"), []byte("sandbox = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kv := range nixtest.Env(t) {
		if !strings.HasPrefix(kv, "NIX_CONFIG=") {
			m.env = append(m.env, kv)
		}
	}
	m.env = append(m.env, "NIX_CONF_DIR="+confDir)
	for _, u := range []string{m.good, m.otherKey, m.noDep, m.shortNAR} {
		if _, err := use.Run(t.Context(), use.Options{URL: u, Key: pub, Env: m.env}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func clone(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "cache")
	if out, err := exec.Command("cp", "-a", dir, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return to
}

func truncateNAR(t *testing.T, dir, path string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, cache.NarInfoKey(path)))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if nar, ok := strings.CutPrefix(line, "URL: "); ok {
			if err := os.Truncate(filepath.Join(dir, nar), 10); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no URL in the narinfo of %s", path)
}

func TestDoctor(t *testing.T) {
	m := newMachine(t)
	missing := "/nix/store/00000000000000000000000000000000-never-pushed"
	tests := []struct {
		name       string
		opts       Options
		wantFailed []string
	}{
		{"correctly configured", Options{URL: m.good, Key: m.pub, Paths: []string{m.top, m.dep}}, nil},
		{"cache unreachable: missing directory", Options{URL: "file:///nonexistent/cache", Key: m.pub, Paths: []string{m.top}},
			[]string{CheckCacheReachable, CheckSubstituter}},
		{"cache unreachable: no server", Options{URL: "http://127.0.0.1:1/cache", Key: m.pub, Paths: []string{m.top}},
			[]string{CheckCacheReachable, CheckSubstituter}},
		{"substituter not configured", Options{URL: m.unlisted, Key: m.pub, Paths: []string{m.top}}, []string{CheckSubstituter}},
		{"key not trusted", Options{URL: m.good, Key: m.otherPub}, []string{CheckTrustedKey}},
		{"path not in the cache", Options{URL: m.good, Key: m.pub, Paths: []string{missing}}, []string{CheckNarInfo}},
		{"narinfo signed by another key", Options{URL: m.otherKey, Key: m.pub, Paths: []string{m.top}}, []string{CheckSignature}},
		{"a reference missing", Options{URL: m.noDep, Key: m.pub, Paths: []string{m.top}}, []string{CheckReferences}},
		{"NAR cut short", Options{URL: m.shortNAR, Key: m.pub, Paths: []string{m.top}}, []string{CheckNAR}},
		{"user not trusted, cache in the user's nix.conf only", Options{URL: m.good, Key: m.pub, Env: untrusted(t, m, true)}, []string{CheckTrustedUser}},
		{"user not trusted, cache system-wide", Options{URL: m.good, Key: m.pub, Env: untrusted(t, m, false)}, nil},
		{"not a store path", Options{URL: m.good, Key: m.pub, Paths: []string{"/etc/hostname"}}, []string{CheckPath}},
	}
	t.Run("passing report", func(t *testing.T) { testPassingReport(t, m) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Env == nil {
				tt.opts.Env = m.env
			}
			r := Run(t.Context(), tt.opts)
			var text bytes.Buffer
			r.Write(&text)
			if got := r.Failed(); !slices.Equal(got, tt.wantFailed) || r.OK() != (len(tt.wantFailed) == 0) {
				t.Errorf("failed checks %q (OK %v), want %q:\n%s", got, r.OK(), tt.wantFailed, text.String())
			}
			if tt.opts.Paths == nil && !slices.ContainsFunc(r.Checks, func(c Check) bool { return c.Name == CheckTrustedUser }) {
				t.Errorf("no %s check:\n%s", CheckTrustedUser, text.String())
			}
			for _, c := range r.Checks {
				if c.Status != OK && c.Fix == "" {
					t.Errorf("check %s (%s) has no fix", c.Name, c.Status)
				}
			}
			if len(text.String()) == 0 || strings.Count(text.String(), "\n") != len(r.Checks) {
				t.Errorf("report is not one line per check:\n%s", text.String())
			}
		})
	}
}

// untrusted is the environment of a machine whose nix.conf trusts
// another user than this one, with the good cache configured by Use in
// the user's nix.conf or the system's.
func untrusted(t *testing.T, m *machine, user bool) []string {
	confDir, xdg := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "nix.conf"), []byte("trusted-users = nobody-else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(slices.Clone(m.env), "NIX_CONF_DIR="+confDir, "XDG_CONFIG_HOME="+xdg)
	if _, err := use.Run(t.Context(), use.Options{URL: m.good, Key: m.pub, User: user, Env: env}); err != nil {
		t.Fatal(err)
	}
	return env
}

// testPassingReport checks a passing report in full: every check, in
// order, ./result resolved, and its JSON form.
func testPassingReport(t *testing.T, m *machine) {
	link := filepath.Join(t.TempDir(), "result")
	if err := os.Symlink(m.top, link); err != nil {
		t.Fatal(err)
	}
	r := Run(t.Context(), Options{URL: m.good, Key: m.pub, Paths: []string{link}, Env: m.env})
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
		if c.Status != OK {
			t.Errorf("check %s: %s %s", c.Name, c.Status, c.Detail)
		}
		if c.Path != "" && c.Path != m.top {
			t.Errorf("check %s is about %s, want %s (./result resolved)", c.Name, c.Path, m.top)
		}
	}
	want := []string{CheckCacheReachable, CheckCacheInfo, CheckSubstituter, CheckTrustedKey, CheckTrustedUser,
		CheckNarInfo, CheckSignature, CheckReferences, CheckNAR}
	if !slices.Equal(names, want) {
		t.Errorf("checks %q, want %q", names, want)
	}
	b, err := json.Marshal(r)
	if err != nil || !bytes.Contains(b, []byte(`"name":"signature"`)) || !bytes.Contains(b, []byte(`"status":"ok"`)) {
		t.Errorf("JSON report: %s, %v", b, err)
	}
}
