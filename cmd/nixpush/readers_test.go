package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadersCreateNothing: verify, gc and pin --list on a directory that
// does not exist, or that holds no nix-cache-info, say it is not a binary
// cache, exit non-zero, and leave the file system as it was.
func TestReadersCreateNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing, empty := filepath.Join(dir, "no", "such", "dir"), filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	for _, cache := range []string{missing, empty} {
		for _, args := range [][]string{
			{"verify", "--state-dir", state, "--to", "file://" + cache},
			{"gc", "--state-dir", state, "--to", "file://" + cache},
			{"gc", "--state-dir", state, "--to", "file://" + cache, "--delete"},
			{"pin", "--to", "file://" + cache, "--list"},
		} {
			r := runMain(t, "", args...)
			if r.code == 0 || !strings.Contains(r.stderr, "not a binary cache (no nix-cache-info)") {
				t.Errorf("nixpush %s: want non-zero, \"not a binary cache (no nix-cache-info)\":\n%s", strings.Join(args, " "), r)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !os.IsNotExist(err) {
		t.Errorf("a reader created %s (%v)", filepath.Join(dir, "no"), err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) > 0 {
		t.Errorf("a reader wrote into %s: %v", empty, entries)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("a reader created the state dir %s (%v)", state, err)
	}
}

// TestKeygenRefusesNamesNixCannotTrust: a key name with white space (or
// ':' or '#') could never be listed in nix.conf: refused, nothing written.
func TestKeygenRefusesNamesNixCannotTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"bad name", "tab\tname", "a:b", "hash#1"} {
		r := runMain(t, "", "keygen", name, filepath.Join(dir, "k.sec"), filepath.Join(dir, "k.pub"))
		if r.code != exitUsage || !strings.Contains(r.stderr, "key name") {
			t.Errorf("keygen %q: want refused:\n%s", name, r)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("refused keygens wrote %v", entries)
	}
	if r := runMain(t, "", "keygen", "cache.example.org-1", filepath.Join(dir, "k.sec"), filepath.Join(dir, "k.pub")); r.code != 0 {
		t.Errorf("keygen of a good name: %s", r)
	}
}
