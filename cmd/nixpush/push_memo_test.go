package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestPushMemoNeverHidesAMissingPath pushes a closure {dep, top}, deletes
// narinfos behind nixpush's back and pushes again, checking the memo's
// documented trust (uploader.Uploader.Plan): every path the memo knows,
// the one named on the command line included, is taken as present until
// --recheck, verify --repair, a gc on this machine, or its entry outlives
// --memo-ttl. After each
// re-push that should repair the cache, real Nix substitutes the closure.
func TestPushMemoNeverHidesAMissingPath(t *testing.T) {
	e := newEnv(t, "memo-key")
	out := e.store.Build(t, nixtest.WithReference("memo"))
	dep, top := out[0], out[1]
	closure := []string{dep, top}
	remove := func(p string) {
		t.Helper()
		if err := os.Remove(filepath.Join(e.cache, hashPart(p)+".narinfo")); err != nil {
			t.Fatal(err)
		}
	}
	wantSuccess(t, e.push("", top), 2, 0, 0, 0)

	// The memo knows both: nothing is asked, nothing pushed, the deleted
	// root stays missing (the documented trade-off).
	remove(top)
	wantSuccess(t, e.push("", top), 0, 2, 0, 0)
	if e.hasNarInfo(top) {
		t.Fatal("the root came back without being pushed")
	}
	// --recheck asks about every path.
	wantSuccess(t, e.push("", "--recheck", top), 1, 1, 0, 0)
	e.wantPushed(closure)

	// So does an entry older than --memo-ttl.
	remove(dep)
	wantSuccess(t, e.push("", top), 0, 2, 0, 0)
	wantSuccess(t, e.push("", "--memo-ttl", "1ms", top), 1, 1, 0, 0)
	e.wantPushed(closure)

	// verify --repair pushes what it finds missing, whatever the memo says
	// (of paths and of the nix-cache-info).
	remove(dep)
	if err := os.Remove(filepath.Join(e.cache, "nix-cache-info")); err != nil {
		t.Fatal(err)
	}
	r := runMain(t, "", "verify", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.to,
		"--signing-key", e.sec, "--trusted-key", e.pub, "--repair")
	if r.code != 0 {
		t.Fatalf("verify --repair exited %d:\n%s", r.code, r.stderr)
	}
	if !fileExists(filepath.Join(e.cache, "nix-cache-info")) {
		t.Fatal("verify --repair left the cache without its nix-cache-info")
	}
	e.wantPushed(closure)

	// gc on this machine forgets what it deletes: the next push puts it back.
	r = runMain(t, "", "gc", "--to", e.to, "--state-dir", e.stateDir, "--keep-days", "0", "--grace", "1ms", "--delete")
	if r.code != 0 || e.hasNarInfo(top) {
		t.Fatalf("gc --delete exited %d, top's narinfo there: %v\n%s", r.code, e.hasNarInfo(top), r.stderr)
	}
	wantSuccess(t, e.push("", top), 2, 0, 0, 0)
	e.wantPushed(closure)
}

// TestPushMemoAsksOnce: a re-run whose closure the memo knows sends the
// cache one request, for its nix-cache-info (which says whether it is
// still the cache the memo describes), and nothing else. With --recheck
// it asks about every path again.
func TestPushMemoAsksOnce(t *testing.T) {
	e := newEnv(t, "memo-quiet")
	srv := servertest.StartNginx(t, "")
	e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
	out := e.store.Build(t, nixtest.WithReference("quiet"))
	wantSuccess(t, e.push("", out[1]), 2, 0, 0, 0)

	accessLog := filepath.Join(srv.Dir, "access.log")
	before := len(readLines(mustRead(t, accessLog)))
	wantSuccess(t, e.push("", out[1]), 0, 2, 0, 0)
	requests := readLines(mustRead(t, accessLog))[before:]
	if len(requests) != 1 || !strings.Contains(requests[0], "GET /nix-cache-info ") {
		t.Errorf("a re-run the memo knows sent %d requests, want one GET of nix-cache-info:\n%s", len(requests), strings.Join(requests, "\n"))
	}
	wantSuccess(t, e.push("", "--recheck", out[1]), 0, 2, 0, 0)
	e.wantPushed(out)
}
