package nixtest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestFibChain(t *testing.T) {
	s := NewStore(t)
	top := s.Build(t, FibChain("x", 5))
	if len(top) != 1 || !strings.HasSuffix(top[0], "-x-fib-5") {
		t.Fatalf("FibChain(x, 5) built %q, want one .../*-x-fib-5", top)
	}
	want := []int{0, 1, 1, 2, 3, 5}
	for k, fib := range want {
		// Already built as dependencies of fib-5: nix-build just prints them.
		out := s.Build(t, FibChain("x", k))
		if len(out) != 1 || !strings.HasPrefix(out[0], "/nix/store/") ||
			!strings.HasSuffix(out[0], "-x-fib-"+strconv.Itoa(k)) {
			t.Fatalf("FibChain(x, %d) built %q", k, out)
		}
		b, err := os.ReadFile(filepath.Join(s.Real(out[0]), "fib.txt"))
		if err != nil {
			t.Fatalf("fib(%d) output: %v", k, err)
		}
		if got := string(b); got != strconv.Itoa(fib) {
			t.Errorf("fib(%d) = %q, want %d", k, got, fib)
		}
	}
	if c := s.Closure(t, top[0]); !slices.Equal(c, top) {
		t.Errorf("closure of fib-5 = %q, want only itself", c)
	}
	if _, err := os.Stat(s.DB()); err != nil {
		t.Errorf("store DB: %v", err)
	}
}

func TestWithReference(t *testing.T) {
	s := NewStore(t)
	out := s.Build(t, WithReference("r"))
	if len(out) != 2 || !strings.HasSuffix(out[0], "-r-ref-dep") || !strings.HasSuffix(out[1], "-r-ref-top") {
		t.Fatalf("WithReference built %q, want [dep top]", out)
	}
	dep, top := out[0], out[1]
	// Ask Nix itself, not our reading of the expression.
	stdout, _, err := s.Run(t, "nix-store", "-qR", top)
	if err != nil {
		t.Fatal(err)
	}
	closure := strings.Fields(stdout)
	if len(closure) != 2 || !slices.Contains(closure, dep) || !slices.Contains(closure, top) {
		t.Errorf("closure of %s = %q, want {dep, top}", top, closure)
	}
	if got := s.Closure(t, dep); !slices.Equal(got, []string{dep}) {
		t.Errorf("closure of dep = %q, want only itself", got)
	}
	b, err := os.ReadFile(filepath.Join(s.Real(top), "dep-path"))
	if err != nil || strings.TrimSpace(string(b)) != dep {
		t.Errorf("dep-path = %q, %v; want %s", b, err, dep)
	}
	if only := s.Build(t, "("+WithReference("r")+").top"); !slices.Equal(only, []string{top}) {
		t.Errorf(".top built %q, want [%s]", only, top)
	}
}

func TestAddDump(t *testing.T) {
	s := NewStore(t)
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := s.Add(t, dir)
	if !strings.HasPrefix(p, "/nix/store/") || !strings.HasSuffix(p, "-tree") {
		t.Fatalf("Add returned %q", p)
	}
	nar := s.Dump(t, p)
	// A NAR starts with the length-prefixed string "nix-archive-1".
	if len(nar) < 21 || string(nar[8:21]) != "nix-archive-1" {
		t.Fatalf("Dump(%s) is not a NAR: %q", p, nar[:min(len(nar), 32)])
	}
	// The NAR hash Nix recorded must be the hash of what Dump returns.
	dbHash, _, err := s.Run(t, "nix-store", "-q", "--hash", p)
	if err != nil {
		t.Fatal(err)
	}
	b16, _, err := Command(t, "nix", "hash", "to-base16", strings.TrimSpace(dbHash))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(nar)
	if got := hex.EncodeToString(sum[:]); got != strings.TrimSpace(b16) {
		t.Errorf("sha256 of Dump = %s, Nix says %s", got, b16)
	}
}

// TestSubstitute pushes with Nix's own "nix copy" and checks that Substitute
// accepts the right key and rejects a wrong one.
func TestSubstitute(t *testing.T) {
	s := NewStore(t)
	out := s.Build(t, WithReference("sub"))
	sec, _, pub := Keygen(t, "test-key-1")
	if !strings.HasPrefix(pub, "test-key-1:") {
		t.Fatalf("public key = %q", pub)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	url := "file://" + cache
	if _, _, err := s.Run(t, "nix", "copy", "--to", url+"?compression=zstd&secret-key="+sec, out[1]); err != nil {
		t.Fatal(err)
	}

	got, err := Substitute(t, filepath.Join(t.TempDir(), "fresh"), url, pub, out[1])
	if err != nil {
		t.Fatalf("Substitute: %v\n%s", err, got)
	}
	for _, p := range out {
		if !strings.Contains(got, "copying path '"+p+"' from '"+url) {
			t.Errorf("Substitute output lacks copying %s:\n%s", p, got)
		}
	}

	_, _, otherPub := Keygen(t, "test-key-2")
	got, err = Substitute(t, filepath.Join(t.TempDir(), "fresh2"), url, otherPub, out[1])
	if err == nil || !strings.Contains(got, "not signed by") {
		t.Errorf("Substitute trusting another key: err = %v, want a \"not signed by\" error:\n%s", err, got)
	}
}

func TestNixString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x", `"x"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"${x}", `"\${x}"`},
		{"$x", `"$x"`},
		{"a\nb", `"a\nb"`},
	} {
		if got := nixString(tc.in); got != tc.want {
			t.Errorf("nixString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestEnvIsolated(t *testing.T) {
	t.Setenv("NIX_CONFIG", "substituters = https://cache.nixos.org")
	env := Env(t)
	var cfg []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "NIX_CONFIG=") {
			cfg = append(cfg, kv)
		}
	}
	if len(cfg) != 1 || !strings.Contains(cfg[0], "substituters =\n") {
		t.Errorf("NIX_CONFIG entries = %q", cfg)
	}
	if a, b := envValue(Env(t), "XDG_CACHE_HOME"), envValue(env, "XDG_CACHE_HOME"); a == "" || a == b {
		t.Errorf("XDG_CACHE_HOME not fresh per call: %q, %q", a, b)
	}
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
