package main

// One test's world and what the tests read back from it (see
// harness_test.go for how nixpush runs): testEnv, readStatus into the
// type status prints, readQueue with plain SQL, and mountDisk, the one
// way to make a cache's disk full.

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // reads the queue file

	"nixpush/internal/fulldisk"
	"nixpush/internal/nixtest"
)

// testEnv is one test's world: a Nix store, a file:// cache, a signing
// key and a state directory, shared by every command the test runs.
type testEnv struct {
	t        *testing.T
	store    *nixtest.Store
	cache    string // directory
	url      string // file://cache, as Nix names it when substituting
	to       string // --to: url, with any settings the test adds
	keyName  string
	sec, pub string // signing key file, public key
	stateDir string
}

func newEnv(t *testing.T, keyName string) *testEnv {
	t.Helper()
	e := &testEnv{t: t, store: nixtest.NewStore(t), keyName: keyName, stateDir: filepath.Join(t.TempDir(), "state")}
	e.sec, _, e.pub = nixtest.Keygen(t, keyName)
	e.cache = filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(e.cache, 0o755); err != nil {
		t.Fatal(err)
	}
	e.url = "file://" + e.cache
	e.to = e.url
	return e
}

// push runs `nixpush push` in-process on the env's store, state dir,
// cache and key, with more flags and paths in args.
func (e *testEnv) push(stdin string, args ...string) result {
	e.t.Helper()
	return runMain(e.t, stdin, append([]string{"push", "--store", e.store.Root, "--state-dir", e.stateDir,
		"--to", e.to, "--signing-key", e.sec}, args...)...)
}

// watchExecArgs is the nixpush command line for watch-exec in this env.
func (e *testEnv) watchExecArgs(flags []string, argv ...string) []string {
	args := []string{"watch-exec", "--store", e.store.Root, "--to", e.to, "--signing-key", e.sec, "--state-dir", e.stateDir}
	return append(append(append(args, flags...), "--"), argv...)
}

// watchExec runs the binary's watch-exec FLAGS -- ARGV to its end.
func (e *testEnv) watchExec(stdin string, flags []string, argv ...string) result {
	e.t.Helper()
	return runCmd(e.t, binCmd(e.t, e.watchExecArgs(flags, argv...)...), stdin)
}

// nixBuildArgv is the command line of a nix-build of expr in the store.
func (e *testEnv) nixBuildArgv(expr string, extra ...string) []string {
	argv := []string{"nix-build", "--store", e.store.Root, "--no-out-link"}
	return append(append(argv, extra...), "-E", expr)
}

// startDaemon starts watch-store on the env with JSON logs and extra
// flags, and waits until it logs that it watches: its high-water mark is
// set from then on.
func (e *testEnv) startDaemon(name string, extra ...string) *proc {
	e.t.Helper()
	d := startProc(e.t, name, procEnv(e.t), append([]string{"watch-store", "--store", e.store.Root, "--to", e.to,
		"--signing-key", e.sec, "--state-dir", e.stateDir, "--log-format", "json"}, extra...)...)
	d.waitFor(30*time.Second, name+" to log \"watching\"", func() bool { return len(d.logsWith("watching")) > 0 })
	return d
}

// status is readStatus of the env's state dir.
func (e *testEnv) status() statusReport {
	e.t.Helper()
	return readStatus(e.t, e.stateDir)
}

// rows is readQueue of the env's state dir.
func (e *testEnv) rows() map[string]queueRow {
	e.t.Helper()
	return readQueue(e.t, e.stateDir)
}

// allDone reports whether every path has a done row.
func (e *testEnv) allDone(paths []string) bool {
	rows := e.rows()
	return !slices.ContainsFunc(paths, func(p string) bool { return rows[p].State != "done" })
}

// hasNarInfo reports whether the cache has path's narinfo.
func (e *testEnv) hasNarInfo(path string) bool {
	_, err := os.Stat(filepath.Join(e.cache, hashPart(path)+".narinfo"))
	return err == nil
}

// allPushed reports whether every path's narinfo is in the cache.
func (e *testEnv) allPushed(paths []string) bool {
	return !slices.ContainsFunc(paths, func(p string) bool { return !e.hasNarInfo(p) })
}

// narFiles lists the complete NAR objects in the cache, and tmpFiles the
// files the backend left half-written in nar/.
func (e *testEnv) narFiles() (nars, tmpFiles []string) {
	entries, _ := os.ReadDir(filepath.Join(e.cache, "nar"))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), cacheTmpPrefix) {
			tmpFiles = append(tmpFiles, en.Name())
		} else {
			nars = append(nars, "nar/"+en.Name())
		}
	}
	return nars, tmpFiles
}

// wantPushed checks that the cache holds exactly the narinfos of paths,
// signed by the env's key, and that real Nix substitutes them all into a
// fresh store, byte for byte as built.
func (e *testEnv) wantPushed(paths []string) {
	t := e.t
	t.Helper()
	infos := checkCache(t, e.cache)
	if got := sortedKeys(infos); !slices.Equal(got, sortedCopy(paths)) {
		t.Fatalf("narinfos in the cache:\n%q\nwant:\n%q", got, sortedCopy(paths))
	}
	for _, p := range paths {
		if sigs := infos[p].sigs; len(sigs) != 1 || !strings.HasPrefix(sigs[0], e.keyName+":") {
			t.Errorf("%s: Sig %q, want one by %s", p, sigs, e.keyName)
		}
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	out, err := nixtest.Substitute(t, fresh, e.url, e.pub, paths...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, e.url, paths)
	sameNARs(t, e.store, fresh, paths)
}

// readStatus runs `nixpush status --json` in-process on stateDir and
// decodes it into the type status prints; unknown keys or a non-integer
// count fail the test.
func readStatus(t *testing.T, stateDir string) statusReport {
	t.Helper()
	b := statusJSON(t, stateDir)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r statusReport
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("status --json: %v\n%s", err, b)
	}
	return r
}

// statusJSON is the output of `nixpush status --json`, which must exit 0.
func statusJSON(t *testing.T, stateDir string) []byte {
	t.Helper()
	r := runMain(t, "", "status", "--state-dir", stateDir, "--json")
	if r.code != 0 {
		t.Fatalf("nixpush status --json: %s", r)
	}
	return []byte(r.stdout)
}

// problemsOf returns the status entries of paths from one list.
func problemsOf(list []itemProblem, paths []string) map[string]itemProblem {
	out := map[string]itemProblem{}
	for _, p := range list {
		if slices.Contains(paths, p.Path) {
			out[p.Path] = p
		}
	}
	return out
}

// queueRow is one row of the queue's items table.
type queueRow struct {
	State       string
	Attempts    int
	NextAttempt int64 // unix ns, 0 = due now
	LastError   string
}

// readQueue reads every item of every queue file in stateDir with plain
// SQL on a read-only connection: what is recorded on disk, not what
// nixpush's queue package says about it.
func readQueue(t *testing.T, stateDir string) map[string]queueRow {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(stateDir, "*.queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]queueRow{}
	for _, f := range files {
		if err := readQueueFile(f, out); err != nil {
			t.Fatalf("read queue %s: %v", f, err)
		}
	}
	return out
}

func readQueueFile(file string, out map[string]queueRow) error {
	db, err := sql.Open("sqlite3", "file:"+file+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return err
	}
	defer db.Close()
	rs, err := db.Query(`SELECT path, state, attempts, next_attempt, last_error FROM items`)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var p string
		var r queueRow
		if err := rs.Scan(&p, &r.State, &r.Attempts, &r.NextAttempt, &r.LastError); err != nil {
			return err
		}
		if _, dup := out[p]; dup {
			return fmt.Errorf("%s has two rows", p)
		}
		out[p] = r
	}
	return rs.Err()
}

// wantQueue checks that stateDir has one queue file holding exactly
// paths, all in state.
func wantQueue(t *testing.T, stateDir string, paths []string, state string) {
	t.Helper()
	if files, _ := filepath.Glob(filepath.Join(stateDir, "*.queue.db")); len(files) != 1 {
		t.Fatalf("queue files in %s: %q, want exactly one", stateDir, files)
	}
	got := readQueue(t, stateDir)
	if keys := sortedKeys(got); !slices.Equal(keys, sortedCopy(paths)) {
		t.Errorf("queue holds %q\nwant %q", keys, sortedCopy(paths))
	}
	for _, p := range paths {
		if got[p].State != state {
			t.Errorf("queue: %s is %q, want %q", p, got[p].State, state)
		}
	}
}

// cacheInfo is a file:// cache's nix-cache-info, for a cache made full
// before nixpush could write it.
const cacheInfo = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"

// mountDisk mounts a tmpfs of size bytes on dir, unmounted at cleanup
// (after the processes started later are killed: cleanups run last-in
// first-out). As root, permissions cannot make a directory unwritable; a
// full file system can (ENOSPC, which nixpush retries). fill writes a junk
// file until the disk is full and returns its name: remove it to make room.
func mountDisk(t *testing.T, dir string, size int) (fill func() (junk string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs: it must run as root (make test does)")
	}
	fulldisk.MountAt(t, dir, size)
	return func() string {
		t.Helper()
		return fulldisk.Fill(t, dir)
	}
}

// fullCache makes dir a full disk holding only nix-cache-info and junk,
// and returns the junk file: every upload then fails with ENOSPC.
func fullCache(t *testing.T, dir string) (junk string) {
	t.Helper()
	fill := mountDisk(t, dir, 512<<10)
	writeFile(t, filepath.Join(dir, "nix-cache-info"), []byte(cacheInfo), 0o644)
	return fill()
}
