package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// TestPushNamedDrv is the seed's walk-through with a derivation: the .drv
// of fib(4) named on stdin is pushed with the closure of .drv files it
// names, and a fresh store gets them from the cache without instantiating.
func TestPushNamedDrv(t *testing.T) {
	s := nixtest.NewStore(t)
	sec, _, pub := nixtest.Keygen(t, "drv-test-1")
	out, _, err := s.Run(t, "nix-instantiate", "-E", nixtest.FibChain("drvpush", 4))
	if err != nil {
		t.Fatal(err)
	}
	drv := strings.TrimSpace(out)
	drvs := s.Closure(t, drv)
	if len(drvs) != 5 {
		t.Fatalf("closure of %s is %q, want 5 .drv files", drv, drvs)
	}
	cache := t.TempDir()
	r := runMain(t, drv+"\n", "push", "--store", s.Root, "--state-dir", filepath.Join(t.TempDir(), "state"),
		"--to", "file://"+cache, "--signing-key", sec)
	if r.code != 0 || !strings.Contains(r.stderr, "pushed 5 paths") {
		t.Fatalf("push of a .drv:\n%s", r)
	}
	for _, p := range drvs {
		if _, err := os.Stat(filepath.Join(cache, hashPart(p)+".narinfo")); err != nil {
			t.Errorf("%s not in the cache: %v", p, err)
		}
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	got, _, err := nixtest.Command(t, "nix", "--extra-experimental-features", "nix-command", "--store", fresh,
		"copy", "--derivation", "--from", "file://"+cache, "--option", "trusted-public-keys", pub, drv)
	if err != nil {
		t.Fatalf("nix copy --from the cache: %v\n%s", err, got)
	}
	if _, err := os.Stat(filepath.Join(fresh, drv)); err != nil {
		t.Fatalf("%s not in the fresh store after copying from the cache: %v", drv, err)
	}

	// The watcher's .drv filter still applies to what the user did not
	// name: pushing fib(4)'s output alone skips .drv files, and says why
	// when nothing is left.
	r = runMain(t, "", "push", "--store", s.Root, "--state-dir", filepath.Join(t.TempDir(), "state"),
		"--to", "file://"+t.TempDir(), "--signing-key", sec, "--exclude", "fib", drvs[0])
	if r.code != 0 || !strings.Contains(r.stderr, "nothing pushed") || !strings.Contains(r.stderr, "--exclude") {
		t.Fatalf("push of an excluded path should say why nothing was pushed:\n%s", r)
	}
}

// TestUseThenDoctor: on a machine whose Nix knows nothing of the cache,
// doctor fails; after nixpush use, a fresh store substitutes with no other
// option and doctor passes.
func TestUseThenDoctor(t *testing.T) {
	s := nixtest.NewStore(t)
	sec, _, pub := nixtest.Keygen(t, "use-test-1")
	top := s.Build(t, nixtest.FibChain("usedoc", 2))[0]
	cache := t.TempDir()
	url := "file://" + cache
	if r := runMain(t, "", "push", "--store", s.Root, "--state-dir", filepath.Join(t.TempDir(), "state"),
		"--to", url, "--signing-key", sec, top); r.code != 0 {
		t.Fatalf("push:\n%s", r)
	}
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "nix.conf"), []byte("sandbox = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NIX_CONF_DIR", conf)
	if r := runMain(t, "", "doctor", url, "--key", pub, top); r.code != 1 || !strings.Contains(r.stdout, "substituter") {
		t.Fatalf("doctor before use should fail the substituter check:\n%s", r)
	}
	if r := runMain(t, "", "use", url, "--key", pub); r.code != 0 {
		t.Fatalf("use:\n%s", r)
	}
	before, _ := os.ReadFile(filepath.Join(conf, "nix.conf"))
	if r := runMain(t, "", "use", url, "--key", pub); r.code != 0 {
		t.Fatalf("second use:\n%s", r)
	}
	if after, _ := os.ReadFile(filepath.Join(conf, "nix.conf")); string(after) != string(before) {
		t.Fatalf("a second use changed nix.conf:\n%s\nto\n%s", before, after)
	}
	if r := runMain(t, "", "doctor", url, "--key", pub, top); r.code != 0 {
		t.Fatalf("doctor after use:\n%s", r)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	// Nix as the machine runs it: nix.conf from NIX_CONF_DIR and nothing
	// else (nixtest's NIX_CONFIG would override it).
	home := t.TempDir()
	sub := exec.CommandContext(t.Context(), "nix-store", "--store", fresh, "-r", top, "--option", "max-jobs", "0")
	sub.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	out, err := sub.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "copying path") {
		t.Fatalf("fresh store after use: %v\n%s", err, out)
	}
}
