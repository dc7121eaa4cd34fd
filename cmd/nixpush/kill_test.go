package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"nixpush/internal/nixtest"
)

// cacheTmpPrefix names the temp files of the file:// backend where it
// cannot write unnamed (O_TMPFILE) ones.
const cacheTmpPrefix = ".nixpush-tmp-"

// partialNARSize is more than any NAR in the test but the big one
// compresses to, so a file in progress this large is the big path's.
const partialNARSize = 64 << 10

// TestPushKilledMidway kills a push with SIGKILL while it writes a large
// NAR (xz: slow, so there is time), checks that the cache it leaves is
// consistent, and that the next push finishes the job.
func TestPushKilledMidway(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "kill-test-1")
	s, cache := e.store, e.cache
	small := addDirs(t, s, smallDirs(t, "small", 30)...)
	ref := s.Build(t, nixtest.WithReference("kill"))
	bigDir := filepath.Join(t.TempDir(), "big")
	rnd := rand.NewChaCha8([32]byte{42})
	for i := range 3 {
		writeFile(t, filepath.Join(bigDir, fmt.Sprintf("f%d", i)), randomBytes(rnd, 16<<20), 0o644)
	}
	// big-user refers to big, so its narinfo has to wait for big's.
	bigUser := s.Build(t, fmt.Sprintf(`let big = builtins.path { path = %s; name = "kill-big"; }; in
derivation { name = "kill-big-user"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo ${big} > $out" ]; }`, strconv.Quote(bigDir)))[0]
	roots := append(slices.Clone(small), ref[1], bigUser)
	all := s.Closure(t, roots...)
	big := ""
	for _, p := range all {
		if strings.HasSuffix(p, "-kill-big") {
			big = p
		}
	}
	if big == "" || len(all) != len(small)+4 {
		t.Fatalf("closure %q: want the small paths, dep, top, big and big-user", all)
	}

	p := startProc(t, "push", procEnv(t), append([]string{"push", "--store", s.Root, "--state-dir", e.stateDir,
		"--to", e.url, "--signing-key", e.sec, "--compression", "xz"}, roots...)...)
	p.waitFor(2*time.Minute, fmt.Sprintf("a NAR of %d bytes in progress", partialNARSize), func() bool {
		return p.narInProgress(cache) >= partialNARSize
	})
	p.kill()

	// What a crash leaves: only narinfos whose NARs and references are
	// complete.
	before := checkCache(t, cache)
	files := snapshot(t, cache)
	if _, ok := before[big]; ok {
		t.Fatalf("the big path was pushed before the kill: the test did not interrupt anything")
	}
	if _, ok := before[bigUser]; ok {
		t.Errorf("narinfo of %s is in the cache before that of its reference %s", bigUser, big)
	}
	t.Logf("killed with %d of %d narinfos written", len(before), len(all))

	// The next push (same state dir: the killed one's queue rows are
	// there) pushes exactly the rest. It uses zstd because xz takes about
	// a minute for the big path on a loaded 2-core machine.
	r := e.push("", append([]string{"--compression", "zstd"}, roots...)...)
	wantSuccess(t, r, len(all)-len(before), len(before), 0, 0)
	after := checkCache(t, cache)
	if got := sortedKeys(after); !slices.Equal(got, sortedCopy(all)) {
		t.Fatalf("narinfos after the second push: %q\nwant %q", got, sortedCopy(all))
	}
	now := snapshot(t, cache)
	for _, ni := range before {
		if now[ni.file] != files[ni.file] {
			t.Errorf("%s: rewritten by the second push", ni.file)
		}
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	subst, err := nixtest.Substitute(t, fresh, e.url, e.pub, roots...)
	if err != nil {
		t.Fatalf("%v\n%s", err, subst)
	}
	wantSubstituted(t, subst, e.url, all)
}
