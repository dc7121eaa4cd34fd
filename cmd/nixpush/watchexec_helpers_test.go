package main

// Helpers for the watch-exec and enqueue tests: a rig (private store,
// cache, key, state dir) and ways to read what nixpush left in the queue
// without going through nixpush's own queue package.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	_ "github.com/mattn/go-sqlite3"

	"nixpush/internal/nixtest"
)

// wxRunTimeout bounds one nixpush run, so a hang fails the test instead of
// the whole test binary timing out.
const wxRunTimeout = 45 * time.Second

// wxRig is one test's store, cache, signing key and state dir.
type wxRig struct {
	t        *testing.T
	store    *nixtest.Store
	cache    string // directory
	url      string // file:///...
	sec, pub string // secret key file, public key
	keyName  string
	state    string
}

func newWXRig(t *testing.T, keyName string) *wxRig {
	t.Helper()
	sec, _, pub := nixtest.Keygen(t, keyName)
	cache := filepath.Join(t.TempDir(), "cache")
	return &wxRig{
		t: t, store: nixtest.NewStore(t), cache: cache, url: "file://" + cache,
		sec: sec, pub: pub, keyName: keyName, state: filepath.Join(t.TempDir(), "state"),
	}
}

// wxEnv is Nix's test environment without anything a post-build-hook or a
// user's shell could have left that changes what enqueue does.
func wxEnv(t *testing.T, extra ...string) []string {
	var env []string
	for _, kv := range nixtest.Env(t) {
		name, _, _ := strings.Cut(kv, "=")
		if name != "OUT_PATHS" && name != "DRV_PATH" && name != "NIXPUSH_STATE_DIR" {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// wxCommand is an exec.Cmd for nixpush ARGS that cannot outlive the test
// by more than wxRunTimeout.
func wxCommand(t *testing.T, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(t.Context(), wxRunTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, nixpushBin, args...)
	cmd.Env = wxEnv(t)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// wxRun runs cmd with stdin and returns its output and exit code; a
// nixpush that did not exit on its own (killed by the timeout) fails the test.
func wxRun(t *testing.T, cmd *exec.Cmd, stdin string) result {
	t.Helper()
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
		t.Fatalf("run %q: %v\n%s", cmd.Args, err, r)
	}
	return r
}

// watchExecArgs is the nixpush command line for watch-exec in this rig.
func (r *wxRig) watchExecArgs(flags []string, argv ...string) []string {
	args := []string{"watch-exec", "--store", r.store.Root, "--to", r.url,
		"--signing-key", r.sec, "--state-dir", r.state}
	args = append(args, flags...)
	return append(append(args, "--"), argv...)
}

// watchExec runs nixpush watch-exec FLAGS -- ARGV and returns what it did.
func (r *wxRig) watchExec(stdin string, flags []string, argv ...string) result {
	r.t.Helper()
	return wxRun(r.t, wxCommand(r.t, r.watchExecArgs(flags, argv...)...), stdin)
}

// drain runs nixpush push --drain for the rig's cache.
func (r *wxRig) drain() result {
	r.t.Helper()
	return wxRun(r.t, wxCommand(r.t, "push", "--drain", "--store", r.store.Root,
		"--state-dir", r.state, "--to", r.url, "--signing-key", r.sec), "")
}

// nixBuildArgv is the command line of a nix-build of expr in the rig's store.
func (r *wxRig) nixBuildArgv(expr string, extra ...string) []string {
	argv := []string{"nix-build", "--store", r.store.Root, "--no-out-link"}
	return append(append(argv, extra...), "-E", expr)
}

// wantPushed checks that the cache holds exactly the narinfos of paths,
// signed by the rig's key, and that real Nix substitutes them all into a
// fresh store, byte for byte as built.
func (r *wxRig) wantPushed(paths []string) {
	t := r.t
	t.Helper()
	infos := checkCache(t, r.cache)
	want := slices.Sorted(slices.Values(paths))
	if got := sortedKeys(infos); !slices.Equal(got, want) {
		t.Fatalf("narinfos in the cache:\n%q\nwant:\n%q", got, want)
	}
	for _, p := range paths {
		if sigs := infos[p].sigs; len(sigs) != 1 || !strings.HasPrefix(sigs[0], r.keyName+":") {
			t.Errorf("%s: Sig %q, want one by %s", p, sigs, r.keyName)
		}
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	out, err := nixtest.Substitute(t, fresh, r.url, r.pub, paths...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, r.url, paths)
	sameNARs(t, r.store, fresh, paths)
}

// wxExpr is an attrset { dep; fib; top; }: FibChain(prefix, n) and
// WithReference(prefix), so a build yields independent outputs, build-time
// only dependencies and a run-time reference. nix-build prints dep, fib-n, top.
func wxExpr(prefix string, n int) string {
	return fmt.Sprintf("let r = %s; in { fib = (%s); inherit (r) dep top; }",
		nixtest.WithReference(prefix), nixtest.FibChain(prefix, n))
}

// wxBuiltOutputs returns every output (not .drv) in the build closures of
// the derivations that produced printed, i.e. everything a nix-build of
// them made valid: for wxExpr(p, n) the n+1 fib outputs, dep and top.
func wxBuiltOutputs(t *testing.T, s *nixtest.Store, printed []string) []string {
	t.Helper()
	var drvs []string
	for _, p := range printed {
		drvs = append(drvs, deriver(t, s, p))
	}
	out, _, err := s.Run(t, "nix-store", append([]string{"-qR", "--include-outputs"}, drvs...)...)
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, p := range strings.Fields(out) {
		if !strings.HasSuffix(p, ".drv") {
			outs = append(outs, p)
		}
	}
	slices.Sort(outs)
	return outs
}

// wxQueueStates reads path → state from the one queue file in stateDir,
// with plain SQL on a read-only connection: what is recorded on disk, not
// what nixpush's queue package says about it.
func wxQueueStates(t *testing.T, stateDir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(stateDir, "*.queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("queue files in %s: %q, want exactly one", stateDir, files)
	}
	db, err := sql.Open("sqlite3", "file:"+files[0]+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT path, state FROM items`)
	if err != nil {
		t.Fatalf("read queue %s: %v", files[0], err)
	}
	defer rows.Close()
	states := map[string]string{}
	for rows.Next() {
		var p, st string
		if err := rows.Scan(&p, &st); err != nil {
			t.Fatal(err)
		}
		states[p] = st
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return states
}

// wantQueue checks that the queue holds exactly paths, all in state.
func wantQueue(t *testing.T, stateDir string, paths []string, state string) {
	t.Helper()
	got := wxQueueStates(t, stateDir)
	if keys := sortedKeys(got); !slices.Equal(keys, slices.Sorted(slices.Values(paths))) {
		t.Errorf("queue holds %q\nwant %q", keys, slices.Sorted(slices.Values(paths)))
	}
	for _, p := range paths {
		if got[p] != state {
			t.Errorf("queue: %s is %q, want %q", p, got[p], state)
		}
	}
}

// wxStatus is the part of `nixpush status --json` the tests read.
type wxStatus struct {
	Pending   int `json:"pending"`
	Uploading int `json:"uploading"`
	Done      int `json:"done"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	Queues    []struct {
		Cache    string `json:"cache"`
		Retrying []struct {
			Path     string `json:"path"`
			Error    string `json:"error"`
			Attempts int    `json:"attempts"`
		} `json:"retrying"`
	} `json:"queues"`
}

// status runs nixpush status --json on the rig's state dir.
func (r *wxRig) status() wxStatus {
	r.t.Helper()
	res := wxRun(r.t, wxCommand(r.t, "status", "--state-dir", r.state, "--json"), "")
	if res.code != 0 {
		r.t.Fatalf("nixpush status --json: %s", res)
	}
	var st wxStatus
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		r.t.Fatalf("status --json printed no JSON: %v\n%s", err, res)
	}
	return st
}

// wxWaitForFile waits, on file events, until file holds want; it fails the
// test if the process exits first or nothing happens for a minute.
func wxWaitForFile(t *testing.T, file, want string, exited <-chan error, out fmt.Stringer) {
	t.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(file)); err != nil {
		t.Fatal(err)
	}
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		// Look after every event, and once after the watch is set up, so
		// a write before the watch is not missed.
		if b, err := os.ReadFile(file); err == nil && string(b) == want {
			return
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			t.Fatal(err)
		case err := <-exited:
			t.Fatalf("exited (%v) before %s said %q:\n%s", err, file, want, out)
		case <-deadline.C:
			t.Fatalf("%s did not say %q within a minute:\n%s", file, want, out)
		}
	}
}

// wxWaitForContent waits, on file events, until file exists with some
// content (written by rename, so complete), and returns it.
func wxWaitForContent(t *testing.T, file string, exited <-chan error, out fmt.Stringer) string {
	t.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(file)); err != nil {
		t.Fatal(err)
	}
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
			return string(b)
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			t.Fatal(err)
		case err := <-exited:
			t.Fatalf("exited (%v) before %s was written:\n%s", err, file, out)
		case <-deadline.C:
			t.Fatalf("%s was not written within a minute:\n%s", file, out)
		}
	}
}

// wxWaitForNARWrite waits, on file events, until something is written
// under the file:// cache's nar/ directory: a NAR upload is under way. (The
// backend writes unnamed O_TMPFILE files where it can, so there may be no
// name to look for; inotify still reports the writes.)
func wxWaitForNARWrite(t *testing.T, cache string, exited <-chan error, out fmt.Stringer) {
	t.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(cache); err != nil {
		t.Fatal(err)
	}
	narDir := filepath.Join(cache, "nar")
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		// Watch nar/ once it exists. A NAR worth waiting for is written
		// in many chunks, so writes before the watch do not matter.
		if err := w.Add(narDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case ev := <-w.Events:
			if ev.Has(fsnotify.Write) && filepath.Dir(ev.Name) == narDir {
				return
			}
		case err := <-w.Errors:
			t.Fatal(err)
		case err := <-exited:
			t.Fatalf("exited (%v) before it wrote a NAR to %s:\n%s", err, narDir, out)
		case <-deadline.C:
			t.Fatalf("no NAR was written to %s within a minute:\n%s", narDir, out)
		}
	}
}

// wxWaitGone waits until process pid has been reaped by its parent. There
// is no event for that a non-parent can wait on, so /proc is polled, with
// a deadline.
func wxWaitGone(t *testing.T, pid string, exited <-chan error, out fmt.Stringer) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			return
		}
		select {
		case <-tick.C:
		case err := <-exited:
			t.Fatalf("exited (%v) while waiting for its child %s to be reaped:\n%s", err, pid, out)
		case <-deadline.C:
			t.Fatalf("process %s still there after 30 s:\n%s", pid, out)
		}
	}
}

// wxBuffer collects a process's output while the test reads it, and
// tells a waiting test when more arrived.
type wxBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (b *wxBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{}, 1)
	}
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return b.b.Write(p)
}

func (b *wxBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor waits until cond holds for the output so far; it fails the test
// if the process exits first or a minute passes.
func (b *wxBuffer) waitFor(t *testing.T, what string, cond func(string) bool, exited <-chan error) {
	t.Helper()
	b.mu.Lock()
	if b.changed == nil {
		b.changed = make(chan struct{}, 1)
	}
	changed := b.changed
	b.mu.Unlock()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for !cond(b.String()) {
		select {
		case <-changed:
		case err := <-exited:
			t.Fatalf("exited (%v) before the output showed %s:\n%s", err, what, b)
		case <-deadline.C:
			t.Fatalf("the output did not show %s within a minute:\n%s", what, b)
		}
	}
}

// wxExitCode is the exit status of a finished command as a shell shows it.
func wxExitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode(), nil
	}
	return -1, err
}
