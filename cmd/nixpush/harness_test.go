package main

// The test harness of cmd/nixpush, one of each:
//   - runMain runs a command line in the test process: for every test
//     where signals and the process's exit are not the point;
//   - TestMain builds the binary once, and proc runs it in the background
//     (signals, exit codes of watch-exec, SIGKILL, systemd, another user);
//   - testEnv is one test's world: a Nix store made by real Nix
//     (internal/nixtest), a file:// cache, a signing key, a state dir;
//   - readStatus reads `status --json` into the real statusReport,
//     readQueue reads the queue file with plain SQL, mountDisk makes a
//     cache whose disk can be filled until ENOSPC.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // reads the queue file

	"nixpush/internal/nixtest"
)

// nixpushBin is the binary under test, built by TestMain.
var nixpushBin string

// machineEnv is what the machine or a user's shell may set that changes
// what nixpush does: no run, in-process or not, may see it.
var machineEnv = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
	"NIXPUSH_CONFIG", "NIXPUSH_STATE_DIR", "NIXPUSH_TOKEN", "STATE_DIRECTORY", "CREDENTIALS_DIRECTORY",
	"OUT_PATHS", "DRV_PATH"}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	for _, name := range machineEnv {
		os.Unsetenv(name)
	}
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

// result is what one nixpush run did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runMain runs one nixpush command line in the test process, as main
// does, with stdin and buffers for stdout and stderr. Give it --state-dir:
// the process's environment is shared by parallel tests.
func runMain(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// procEnv is Nix's test environment (nixtest.Env) for a nixpush process,
// without machineEnv, plus extra.
func procEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range nixtest.Env(t) {
		if name, _, _ := strings.Cut(kv, "="); !slices.Contains(machineEnv, name) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runTimeout bounds one nixpush process run to its end, so a hang fails
// the test instead of the whole test binary timing out.
const runTimeout = 45 * time.Second

// binCmd is the nixpush binary with args under procEnv, killed if it
// outlives runTimeout.
func binCmd(t *testing.T, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, nixpushBin, args...)
	cmd.Env = procEnv(t)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runCmd runs cmd to its end with stdin and returns what it did; a process
// that did not exit on its own fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd, stdin string) result {
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

// pollEvery is how often a waiting test looks at its condition again.
const pollEvery = 50 * time.Millisecond

// pollUntil waits until cond holds, looking every pollEvery, and fails the
// test if it does not within timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pollEvery)
	}
}

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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return func() string {
		t.Helper()
		junk := filepath.Join(dir, "junk")
		f, err := os.Create(junk)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		chunk := make([]byte, 4096)
		for err == nil {
			_, err = f.Write(chunk)
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("fill %s: %v, want ENOSPC", dir, err)
		}
		// Even one more byte must not fit.
		probe := filepath.Join(dir, "probe")
		if err := os.WriteFile(probe, []byte("x"), 0o644); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("%s not full after filling it: writing a byte gave %v", dir, err)
		}
		_ = os.Remove(probe)
		return junk
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

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is one nixpush process running in the background.
type proc struct {
	t              *testing.T
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{} // closed when the process has exited
	waitErr        error         // set before done is closed
}

// startProc starts the binary with args under env. At cleanup a process
// still running is SIGKILLed, and its output is printed if the test failed.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(nixpushBin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s (nixpush %s):\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), &p.stdout, &p.stderr)
		}
	})
	return p
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitFor is pollUntil that also fails at once if the process exits.
func (p *proc) waitFor(timeout time.Duration, what string, cond func() bool) {
	p.t.Helper()
	pollUntil(p.t, timeout, what, func() bool {
		if !p.running() {
			p.t.Fatalf("%s exited (%v) while waiting for %s", p.name, p.waitErr, what)
		}
		return cond()
	})
}

// signal sends sig to the process (not its group).
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.name, err)
	}
}

// wait waits at most timeout for the process to exit and returns its exit
// code as a shell shows it; death by a signal fails the test.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running %s after it was told to stop", p.name, timeout)
	}
	var ee *exec.ExitError
	switch {
	case p.waitErr == nil:
		return 0
	case errors.As(p.waitErr, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	p.t.Fatalf("%s ended with %v", p.name, p.waitErr)
	return -1
}

// kill SIGKILLs the process and waits until it is gone.
func (p *proc) kill() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	<-p.done
	var ee *exec.ExitError
	if !errors.As(p.waitErr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		p.t.Fatalf("%s was to die of SIGKILL, got %v", p.name, p.waitErr)
	}
}

// logLine is one JSON log line; raw keeps the text of lines that are not
// JSON (the last-words line of a failing command).
type logLine struct {
	Level  string `json:"level"`
	Logger string `json:"logger"`
	Msg    string `json:"msg"`
	Path   string `json:"path"`
	Error  string `json:"error"`
	Count  int    `json:"count"`
	raw    string
}

// logs is the process's stderr so far, line by line.
func (p *proc) logs() []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			l = logLine{}
		}
		l.raw = sc.Text()
		out = append(out, l)
	}
	return out
}

// logsWith returns the lines whose message is msg.
func (p *proc) logsWith(msg string) []logLine {
	var out []logLine
	for _, l := range p.logs() {
		if l.Msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// pushed counts the uploader's "pushed" debug lines (one per narinfo
// written) per store path; it needs --log-level debug.
func (p *proc) pushed() map[string]int {
	n := map[string]int{}
	for _, l := range p.logsWith("pushed") {
		n[l.Path]++
	}
	return n
}

// narInProgress is the size of the largest file the process has open in
// the cache's nar/ directory, or -1 when it has none: a NAR upload under
// way. The file backend writes an unnamed O_TMPFILE (or, without it, a
// named temp file), so /proc is what shows it.
func (p *proc) narInProgress(cache string) int64 {
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	fds, _ := os.ReadDir(fdDir) // none once exited; waitFor reports that
	size := int64(-1)
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err != nil || !strings.HasPrefix(target, filepath.Join(cache, "nar")+"/") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(fdDir, fd.Name())); err == nil {
			size = max(size, fi.Size())
		}
	}
	return size
}
