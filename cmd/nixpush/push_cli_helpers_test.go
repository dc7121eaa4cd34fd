package main

// Helpers for the CLI-level tests: they run the real nixpush binary, built
// once in TestMain, against private stores made by real Nix
// (internal/nixtest), and check the cache it writes the way Nix reads it.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"nixpush/internal/nixtest"
)

// nixpushBin is the binary under test, built by TestMain.
var nixpushBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nixpush-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	nixpushBin = filepath.Join(dir, "nixpush")
	args := []string{"build", "-o", nixpushBin}
	// A race-enabled test run tests a race-enabled binary: the uploader and
	// drainer are where the concurrency is.
	if testBuiltWithRace() {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build nixpush:", err)
		return 1
	}
	return m.Run()
}

func testBuiltWithRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// cli runs nixpush for one test. Every push gets the test's own state dir:
// push keeps a queue per cache there, and the default for root is
// /var/lib/nixpush, which a test must never touch.
type cli struct {
	t        *testing.T
	stateDir string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, stateDir: filepath.Join(t.TempDir(), "state")}
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// pushCmd is the command line of "nixpush push ARGS" in dir.
func (c *cli) pushCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(c.t.Context(), nixpushBin,
		append([]string{"push", "--state-dir", c.stateDir}, args...)...)
	cmd.Env = nixtest.Env(c.t)
	cmd.Dir = dir
	return cmd
}

// push runs "nixpush push ARGS" in dir with stdin, and returns what it did.
func (c *cli) push(dir, stdin string, args ...string) result {
	c.t.Helper()
	cmd := c.pushCmd(dir, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		c.t.Fatalf("run nixpush push %q: %v\n%s", args, err, r)
	}
	return r
}

// summary is the one line push prints on stderr when it is done.
type summary struct {
	pushed                      int
	mib, narMiB                 string // as printed, "%.1f"
	present, upstream, filtered int
}

var summaryRE = regexp.MustCompile(`^pushed (\d+) paths, (\d+\.\d) MiB \((\d+\.\d) MiB uncompressed\), ` +
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

// narInfo is what the checks need from a narinfo file.
type narInfo struct {
	file        string // name in the cache
	storePath   string
	url         string
	compression string
	fileHash    string
	fileSize    int64
	narHash     string
	narSize     int64
	references  []string // basenames
	sigs        []string
}

func parseNarInfo(file string, b []byte) (narInfo, error) {
	ni := narInfo{file: file, compression: "bzip2"}
	seen := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		if !ok {
			if line == "References:\n" { // no references, no trailing blank
				seen["References"] = true
				continue
			}
			return ni, fmt.Errorf("line %q is not Key: value", line)
		}
		seen[k] = true
		var err error
		switch k {
		case "StorePath":
			ni.storePath = v
		case "URL":
			ni.url = v
		case "Compression":
			ni.compression = v
		case "FileHash":
			ni.fileHash = v
		case "FileSize":
			ni.fileSize, err = strconv.ParseInt(v, 10, 64)
		case "NarHash":
			ni.narHash = v
		case "NarSize":
			ni.narSize, err = strconv.ParseInt(v, 10, 64)
		case "References":
			ni.references = strings.Fields(v)
		case "Sig":
			ni.sigs = append(ni.sigs, v)
		}
		if err != nil {
			return ni, fmt.Errorf("%s: %w", k, err)
		}
	}
	if !bytes.HasSuffix(b, []byte("\n")) {
		return ni, errors.New("last line does not end in a newline")
	}
	for _, k := range []string{"StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References"} {
		if !seen[k] {
			return ni, fmt.Errorf("no %s", k)
		}
	}
	return ni, nil
}

// checkCache checks what makes a cache usable at any instant, even right
// after the pusher was killed: every narinfo names a NAR file that is
// complete (size and sha256 as the narinfo says), and every reference of a
// path has its narinfo too (references go first). It returns the narinfos
// by store path.
func checkCache(t *testing.T, cacheDir string) map[string]narInfo {
	t.Helper()
	info, err := os.ReadFile(filepath.Join(cacheDir, "nix-cache-info"))
	if err != nil || !strings.Contains(string(info), "StoreDir: /nix/store\n") {
		t.Errorf("nix-cache-info: %q, %v", info, err)
	}
	files, err := filepath.Glob(filepath.Join(cacheDir, "*.narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	infos := map[string]narInfo{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ni, err := parseNarInfo(filepath.Base(f), b)
		if err != nil {
			t.Errorf("%s: %v\n%s", f, err, b)
			continue
		}
		if want := hashPart(ni.storePath) + ".narinfo"; filepath.Base(f) != want {
			t.Errorf("%s holds the narinfo of %s, which belongs in %s", f, ni.storePath, want)
		}
		if ni.narSize <= 0 || !strings.HasPrefix(ni.narHash, "sha256:") || len(ni.narHash) != len("sha256:")+52 {
			t.Errorf("%s: NarHash %q, NarSize %d", f, ni.narHash, ni.narSize)
		}
		if ext := map[string]string{"zstd": ".nar.zst", "xz": ".nar.xz", "none": ".nar"}[ni.compression]; ext == "" || !strings.HasSuffix(ni.url, ext) {
			t.Errorf("%s: URL %s does not fit Compression %s", f, ni.url, ni.compression)
		}
		nar, err := os.ReadFile(filepath.Join(cacheDir, filepath.FromSlash(ni.url)))
		if err != nil {
			t.Errorf("%s: URL %s: %v", f, ni.url, err)
			continue
		}
		sum := sha256.Sum256(nar)
		if int64(len(nar)) != ni.fileSize || "sha256:"+nix32(sum[:]) != ni.fileHash {
			t.Errorf("%s: %s is %d bytes with sha256:%s; narinfo says %d bytes, %s",
				f, ni.url, len(nar), nix32(sum[:]), ni.fileSize, ni.fileHash)
		}
		infos[ni.storePath] = ni
	}
	for p, ni := range infos {
		for _, ref := range ni.references {
			if "/nix/store/"+ref == p {
				continue
			}
			if _, err := os.Stat(filepath.Join(cacheDir, hashPart(ref)+".narinfo")); err != nil {
				t.Errorf("narinfo of %s is in the cache but its reference %s is not: %v", p, ref, err)
			}
		}
	}
	return infos
}

// hashPart is the 32-character hash of a store path or basename.
func hashPart(p string) string {
	h, _, _ := strings.Cut(filepath.Base(p), "-")
	return h
}

// nix32 is Nix's base32 (printHash32), written here from the format notes
// rather than taken from the code under test.
func nix32(b []byte) string {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	n := (len(b)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		c := b[j] >> k
		if j+1 < len(b) {
			c |= b[j+1] << (8 - k)
		}
		out = append(out, alphabet[c&0x1f])
	}
	return string(out)
}

func TestNix32MatchesNix(t *testing.T) {
	sum := sha256.Sum256([]byte("nixpush"))
	out, _, err := nixtest.Command(t, "nix", "hash", "to-base32", fmt.Sprintf("sha256:%x", sum))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nix32(sum[:]), strings.TrimSpace(out); got != want {
		t.Errorf("nix32 = %s, nix says %s", got, want)
	}
}

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

// fileState identifies one version of a file: a rewrite, even with the
// same bytes, changes the inode (rename into place) or the mtime.
type fileState struct {
	size  int64
	mtime int64
	ino   uint64
}

// snapshot records every file under dir.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	for _, rel := range dirEntries(t, dir) {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[rel] = fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: st.Ino}
	}
	return m
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
