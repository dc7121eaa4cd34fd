package main

import (
	"os"
	"path/filepath"
	"testing"

	"nixpush/internal/nixtest"
)

// TestPushMemoNeverHidesAMissingRoot pushes a closure {dep, top}, deletes
// narinfos behind nixpush's back and pushes again, checking the memo's
// documented trust (uploader.Uploader.PlanRoots): a path named on the
// command line is always asked for; a dependency the memo knows is not,
// unless --recheck, or its entry has outlived --memo-ttl. After each
// re-push that should repair the cache, real Nix substitutes the closure.
func TestPushMemoNeverHidesAMissingRoot(t *testing.T) {
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

	// The root is asked for and found missing: pushed again.
	remove(top)
	wantSuccess(t, e.push("", top), 1, 1, 0, 0)
	e.wantPushed(closure)

	// A dependency the memo knows is trusted: nothing is pushed.
	remove(dep)
	wantSuccess(t, e.push("", top), 0, 2, 0, 0)
	if e.hasNarInfo(dep) {
		t.Fatal("the dependency came back without being pushed")
	}
	// Named itself, it is a root: asked for, pushed.
	wantSuccess(t, e.push("", dep), 1, 0, 0, 0)
	e.wantPushed(closure)

	// --recheck asks about every path.
	remove(dep)
	wantSuccess(t, e.push("", "--recheck", top), 1, 1, 0, 0)
	e.wantPushed(closure)

	// So does an entry older than --memo-ttl.
	remove(dep)
	wantSuccess(t, e.push("", "--memo-ttl", "1ms", top), 1, 1, 0, 0)
	e.wantPushed(closure)
}
