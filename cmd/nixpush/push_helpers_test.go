package main

// Helpers for the push tests: what push prints, what Nix substitutes, and
// store paths to push. push_cachecheck_test.go checks the caches it writes.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// summary is the one line push prints on stderr when it is done.
type summary struct {
	pushed                      int
	mib, narMiB                 string // as printed, "%.1f"
	present, upstream, filtered int
}

var summaryRE = regexp.MustCompile(`^pushed (\d+) paths?, (\d+\.\d) MiB \((\d+\.\d) MiB uncompressed\), ` +
	`skipped (\d+) already present, (\d+) upstream, (\d+) filtered$`)

// wantSuccess checks that a push exited 0, printed nothing on stdout and
// exactly its summary line on stderr, and that the counts are as given.
func wantSuccess(t *testing.T, r result, pushed, present, upstream, filtered int) summary {
	t.Helper()
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("push: want exit 0 and empty stdout, got %s", r)
	}
	line, ok := strings.CutSuffix(r.stderr, "\n")
	m := summaryRE.FindStringSubmatch(line)
	if !ok || m == nil {
		t.Fatalf("push: stderr is not exactly the summary line:\n%s", r.stderr)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	s := summary{pushed: n(1), mib: m[2], narMiB: m[3], present: n(4), upstream: n(5), filtered: n(6)}
	want := summary{pushed: pushed, mib: s.mib, narMiB: s.narMiB, present: present, upstream: upstream, filtered: filtered}
	if s != want {
		t.Errorf("summary %q: want pushed %d, present %d, upstream %d, filtered %d", line, pushed, present, upstream, filtered)
	}
	return s
}

// wantSizes checks the summary's sizes against the narinfos written.
func wantSizes(t *testing.T, s summary, written []narInfo) {
	t.Helper()
	var file, nar int64
	for _, ni := range written {
		file += ni.fileSize
		nar += ni.narSize
	}
	if got, want := s.mib+" "+s.narMiB, mib1(file)+" "+mib1(nar); got != want {
		t.Errorf("summary sizes %s MiB compressed, %s MiB uncompressed; narinfos add up to %s", s.mib, s.narMiB, want)
	}
}

func mib1(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

// wantSubstituted checks Substitute's output: Nix copied every path from
// the cache (and built nothing).
func wantSubstituted(t *testing.T, out, cacheURL string, paths []string) {
	t.Helper()
	for _, p := range paths {
		if !strings.Contains(out, "copying path '"+p+"' from '"+cacheURL) {
			t.Errorf("Nix did not copy %s from %s:\n%s", p, cacheURL, out)
		}
	}
	if strings.Contains(out, "building '") {
		t.Errorf("Nix built something instead of substituting:\n%s", out)
	}
}

// sameNARs checks that paths in the store at freshRoot serialise exactly
// as in the original store.
func sameNARs(t *testing.T, orig *nixtest.Store, freshRoot string, paths []string) {
	t.Helper()
	fresh := &nixtest.Store{Root: freshRoot}
	for _, p := range paths {
		if !bytes.Equal(orig.Dump(t, p), fresh.Dump(t, p)) {
			t.Errorf("%s substituted from the cache differs from the original", p)
		}
	}
}

// addDirs adds directories to the store in one nix-store call.
func addDirs(t *testing.T, s *nixtest.Store, dirs ...string) []string {
	t.Helper()
	out, _, err := s.Run(t, "nix-store", append([]string{"--add"}, dirs...)...)
	if err != nil {
		t.Fatal(err)
	}
	paths := strings.Fields(out)
	if len(paths) != len(dirs) {
		t.Fatalf("nix-store --add %d dirs printed %q", len(dirs), paths)
	}
	return paths
}

// smallDirs makes n small directories named prefix-<i> with distinct
// contents, for adding to a store.
func smallDirs(t *testing.T, prefix string, n int) []string {
	t.Helper()
	base := t.TempDir()
	var dirs []string
	for i := range n {
		d := filepath.Join(base, fmt.Sprintf("%s-%d", prefix, i))
		writeFile(t, filepath.Join(d, "data"), []byte(fmt.Sprintf("%s %d\n", prefix, i)), 0o644)
		dirs = append(dirs, d)
	}
	return dirs
}

// fibOutputs builds FibChain(prefix, n) and returns all n+1 outputs.
func fibOutputs(t *testing.T, s *nixtest.Store, prefix string, n int) []string {
	t.Helper()
	top := s.Build(t, nixtest.FibChain(prefix, n))
	drv, _, err := s.Run(t, "nix-store", "-qd", top[0])
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := s.Run(t, "nix-store", "-qR", "--include-outputs", strings.TrimSpace(drv))
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, p := range strings.Fields(all) {
		if !strings.HasSuffix(p, ".drv") {
			outs = append(outs, p)
		}
	}
	if len(outs) != n+1 {
		t.Fatalf("FibChain(%s, %d) has outputs %q, want %d", prefix, n, outs, n+1)
	}
	return outs
}

// deriver returns the .drv a path was built from.
func deriver(t *testing.T, s *nixtest.Store, p string) string {
	t.Helper()
	out, _, err := s.Run(t, "nix-store", "-qd", p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
}

// randomBytes returns n bytes from r that zstd and xz cannot shrink.
func randomBytes(r *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// dirEntries lists the names under dir (recursively, relative), or nil
// when dir does not exist.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// readLines returns the non-empty lines of s.
func readLines(s string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pushMain runs `nixpush push --state-dir stateDir ARGS` in-process.
func pushMain(t *testing.T, stateDir, stdin string, args ...string) result {
	t.Helper()
	return runMain(t, stdin, append([]string{"push", "--state-dir", stateDir}, args...)...)
}
