package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nixpush/internal/nixtest"
)

// TestGCBesidePush: 20 rounds of a push racing gc --delete on one cache.
// Each round's new path refers to a dependency whose objects are old, so
// gc wants it gone unless it sees the new narinfo first. After every round
// verify finds the cache whole and the new closure substitutes: the push
// either saw the deletion (and uploaded the dependency again) or gc kept
// what the new narinfo names.
func TestGCBesidePush(t *testing.T) {
	s := nixtest.NewStore(t)
	sec, _, pub := nixtest.Keygen(t, "gcrace-1")
	const rounds = 20
	expr := nixtest.Derivations("gcrace", `
  dep = mk "dep" "echo shared > $out/data";`, `builtins.genList (i: mk "top-${toString i}" "echo ${dep} > $out/dep-path") `+fmt.Sprint(rounds))
	tops := s.Build(t, expr)
	dir := t.TempDir()
	url := "file://" + dir
	// A cache from the start: gc refuses a directory without nix-cache-info
	// (round 0's gc may run before the first push wrote one).
	writeFile(t, filepath.Join(dir, "nix-cache-info"), []byte(cacheInfo), 0o644)
	state := filepath.Join(t.TempDir(), "state")
	push := func(p string) result {
		return runMain(t, "", "push", "--store", s.Root, "--state-dir", state, "--to", url, "--signing-key", sec, p)
	}
	age := func() {
		old := time.Now().Add(-60 * 24 * time.Hour)
		_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				_ = os.Chtimes(p, old, old)
			}
			return nil
		})
	}
	var reuploaded int
	for i, top := range tops {
		age() // everything pushed so far is past --keep-days
		var wg sync.WaitGroup
		var pr, gr result
		wg.Add(2)
		go func() { defer wg.Done(); pr = push(top) }()
		go func() {
			defer wg.Done()
			// Start gc at another point of the push each round, so the
			// rounds cover gc before, during and after the push's plan.
			time.Sleep(time.Duration(i%10) * 5 * time.Millisecond)
			gr = runMain(t, "", "gc", "--to", url, "--keep-days", "30", "--delete")
		}()
		wg.Wait()
		if pr.code != 0 || gr.code != 0 {
			t.Fatalf("round %d: push:\n%s\ngc:\n%s", i, pr, gr)
		}
		if strings.Contains(pr.stderr, "pushed 2 paths") {
			reuploaded++
		}
		r := runMain(t, "", "verify", "--to", url, "--trusted-key", pub)
		if r.code != 0 {
			t.Fatalf("round %d: verify after push and gc:\n%s\npush:\n%s\ngc:\n%s", i, r, pr, gr)
		}
		out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), url, pub, top)
		if err != nil {
			t.Fatalf("round %d: substitute: %v\n%s", i, err, out)
		}
	}
	t.Logf("%d rounds: dependency uploaded again by the push in %d", rounds, reuploaded)
}
