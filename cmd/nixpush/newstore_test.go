package main

import (
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// TestWatchExecCreatesStore: watch-exec wraps a nix-build whose --store
// does not exist yet (a fresh CI runner). nixpush waits for the Nix DB
// the command creates and pushes everything registered in it (before:
// "open nix db: stat …/db.sqlite: no such file").
func TestWatchExecCreatesStore(t *testing.T) {
	e := newEnv(t, "newstore-1")
	root := filepath.Join(t.TempDir(), "new-root")
	expr := nixtest.FibChain("newstore", 2)
	r := runCmd(t, binCmd(t, "watch-exec", "--store", root, "--to", e.to, "--signing-key", e.sec,
		"--state-dir", e.stateDir, "--", "nix-build", "--store", root, "--no-out-link", "-E", expr), "")
	if r.code != 0 {
		t.Fatalf("watch-exec of a command creating its store:\n%s", r)
	}
	outs := strings.Fields(r.stdout)
	if len(outs) != 1 {
		t.Fatalf("nix-build printed %q", r.stdout)
	}
	if !e.allPushed(outs) {
		t.Fatalf("%s not pushed:\n%s", outs[0], r)
	}
	out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), e.url, e.pub, outs...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
