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
