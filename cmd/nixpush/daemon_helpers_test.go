package main

// Helpers for the watch-store daemon tests: they run the real nixpush
// binary (nixpushBin, built by TestMain) as a background process against a
// private store made by real Nix, and watch what it does through the cache
// directory, `nixpush status --json`, its JSON log and, read-only, the
// queue's SQLite file.

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // reads the queue file

	"nixpush/internal/nixtest"
)

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

// daemonEnv is one test's world: a Nix store, a file:// cache, a signing
// key and a state directory, shared by every daemon the test starts.
type daemonEnv struct {
	t        *testing.T
	store    *nixtest.Store
	cache    string // directory
	url      string // file://cache, as Nix names it when substituting
	to       string // the daemon's --to: url, with any settings the test adds
	sec, pub string // signing key file, public key
	stateDir string
}

func newDaemonEnv(t *testing.T, keyName string) *daemonEnv {
	t.Helper()
	e := &daemonEnv{t: t, store: nixtest.NewStore(t), stateDir: filepath.Join(t.TempDir(), "state")}
	e.sec, _, e.pub = nixtest.Keygen(t, keyName)
	e.cache = filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(e.cache, 0o755); err != nil {
		t.Fatal(err)
	}
	e.url = "file://" + e.cache
	e.to = e.url
	return e
}

// daemonProc is one running `nixpush watch-store`.
type daemonProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logFile string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startDaemon starts watch-store on the env with JSON logs on stderr (kept
// in a file) and extra flags, and waits until it logs that it watches: its
// high-water mark is set from then on. The process is SIGKILLed at cleanup
// if still running, and its log is printed if the test failed.
func (e *daemonEnv) startDaemon(name string, extra ...string) *daemonProc {
	t := e.t
	t.Helper()
	d := &daemonProc{t: t, name: name, logFile: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	logf, err := os.Create(d.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"watch-store", "--store", e.store.Root, "--to", e.to,
		"--signing-key", e.sec, "--state-dir", e.stateDir, "--log-format", "json"}, extra...)
	d.cmd = exec.Command(nixpushBin, args...)
	d.cmd.Env = nixtest.Env(t)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if d.running() {
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
		}
		if t.Failed() {
			t.Logf("log of %s (%s):\n%s", name, strings.Join(args, " "), d.log())
		}
	})
	d.waitFor(30*time.Second, name+" to log \"watching\"", func() bool { return len(d.logsWith("watching")) > 0 })
	return d
}

// running reports whether the daemon has not exited yet.
func (d *daemonProc) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// waitFor is pollUntil that also fails at once if the daemon exits.
func (d *daemonProc) waitFor(timeout time.Duration, what string, cond func() bool) {
	d.t.Helper()
	pollUntil(d.t, timeout, what, func() bool {
		if !d.running() {
			d.t.Fatalf("%s exited (%v) while waiting for %s", d.name, d.waitErr, what)
		}
		return cond()
	})
}

// kill SIGKILLs the daemon and waits until it is gone.
func (d *daemonProc) kill() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.t.Fatalf("kill %s: %v", d.name, err)
	}
	<-d.done
	var ee *exec.ExitError
	if !errors.As(d.waitErr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		d.t.Fatalf("%s was to die of SIGKILL, got %v", d.name, d.waitErr)
	}
}

// log is everything the daemon wrote so far.
func (d *daemonProc) log() string {
	b, err := os.ReadFile(d.logFile)
	if err != nil {
		d.t.Fatal(err)
	}
	return string(b)
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

func (d *daemonProc) logs() []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(d.log()))
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
func (d *daemonProc) logsWith(msg string) []logLine {
	var out []logLine
	for _, l := range d.logs() {
		if l.Msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// pushed counts the uploader's "pushed" debug lines (one per narinfo
// written) per store path; it needs --log-level debug.
func (d *daemonProc) pushed() map[string]int {
	n := map[string]int{}
	for _, l := range d.logsWith("pushed") {
		n[l.Path]++
	}
	return n
}

// statusReportJSON is `nixpush status --json`, decoded strictly.
type statusReportJSON struct {
	Pending   int               `json:"pending"`
	Uploading int               `json:"uploading"`
	Done      int               `json:"done"`
	Failed    int               `json:"failed"`
	Skipped   int               `json:"skipped"`
	Queues    []queueStatusJSON `json:"queues"`
}

type queueStatusJSON struct {
	Cache          string            `json:"cache"`
	File           string            `json:"file"`
	Pending        int               `json:"pending"`
	Uploading      int               `json:"uploading"`
	Done           int               `json:"done"`
	Failed         int               `json:"failed"`
	Skipped        int               `json:"skipped"`
	OldestPending  *time.Time        `json:"oldest_pending"`
	LastSuccess    *time.Time        `json:"last_success"`
	DoneLastHour   int               `json:"done_last_hour"`
	BytesLastHour  int64             `json:"bytes_last_hour"`
	RecentFailures []itemProblemJSON `json:"recent_failures"`
	Retrying       []itemProblemJSON `json:"retrying"`
}

type itemProblemJSON struct {
	Path        string     `json:"path"`
	Error       string     `json:"error"`
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"next_attempt"`
}

// runStatusJSON runs `nixpush status --json` and returns its stdout; it
// must exit 0.
func (e *daemonEnv) runStatusJSON() []byte {
	e.t.Helper()
	cmd := exec.Command(nixpushBin, "status", "--state-dir", e.stateDir, "--json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("nixpush status --json: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return out.Bytes()
}

// status returns `nixpush status --json`; unknown keys or a non-integer
// count fail the test.
func (e *daemonEnv) status() statusReportJSON {
	e.t.Helper()
	b := e.runStatusJSON()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r statusReportJSON
	if err := dec.Decode(&r); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, b)
	}
	return r
}

// queueRow is one row of the queue's items table.
type queueRow struct {
	State       string
	Attempts    int
	NextAttempt int64 // unix ns, 0 = due now
	LastError   string
}

// rows reads every item of every queue in the state directory, read-only.
func (e *daemonEnv) rows() map[string]queueRow {
	e.t.Helper()
	files, err := filepath.Glob(filepath.Join(e.stateDir, "*.queue.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]queueRow{}
	for _, f := range files {
		db, err := sql.Open("sqlite3", "file:"+f+"?mode=ro&_busy_timeout=10000")
		if err != nil {
			e.t.Fatal(err)
		}
		err = func() error {
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
		}()
		if err != nil {
			e.t.Fatalf("read queue %s: %v", f, err)
		}
	}
	return out
}

// allDone reports whether every path has a done row.
func (e *daemonEnv) allDone(paths []string) bool {
	rows := e.rows()
	for _, p := range paths {
		if rows[p].State != "done" {
			return false
		}
	}
	return true
}

// hasNarInfo reports whether the cache has path's narinfo.
func (e *daemonEnv) hasNarInfo(path string) bool {
	_, err := os.Stat(filepath.Join(e.cache, hashPart(path)+".narinfo"))
	return err == nil
}

// allPushed reports whether every path's narinfo is in the cache.
func (e *daemonEnv) allPushed(paths []string) bool {
	for _, p := range paths {
		if !e.hasNarInfo(p) {
			return false
		}
	}
	return true
}

// tmpFiles lists the files the cache backend left half-written in nar/.
func (e *daemonEnv) tmpFiles() []string {
	var out []string
	entries, _ := os.ReadDir(filepath.Join(e.cache, "nar"))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), cacheTmpPrefix) {
			out = append(out, en.Name())
		}
	}
	return out
}

// writingNAR reports whether the daemon has a file open in the cache's
// nar/ directory: a NAR upload under way. The file backend writes an
// unnamed O_TMPFILE (or, without it, a named temp file), so /proc is what
// shows it.
func (d *daemonProc) writingNAR(cache string) bool {
	fdDir := fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false // exited; waitFor reports that
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(target, filepath.Join(cache, "nar")+"/") {
			return true
		}
	}
	return false
}

// narFiles lists the complete NAR objects in the cache.
func (e *daemonEnv) narFiles() []string {
	var out []string
	entries, _ := os.ReadDir(filepath.Join(e.cache, "nar"))
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), cacheTmpPrefix) {
			out = append(out, "nar/"+en.Name())
		}
	}
	return out
}

// mountTinyCache makes the env's cache a tmpfs of size bytes, unmounted at
// cleanup (after the daemons are killed: cleanups run last-in first-out).
// As root, permissions cannot make a directory unwritable; a full file
// system can (ENOSPC).
func (e *daemonEnv) mountTinyCache(size int) {
	t := e.t
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", e.cache).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs on %s (the test needs root): %v\n%s", e.cache, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", e.cache).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", e.cache, err, out)
			_ = exec.Command("umount", "-l", e.cache).Run()
		}
	})
}

// fillCache writes a junk file into the cache until the file system is
// full, and returns its name.
func (e *daemonEnv) fillCache() string {
	t := e.t
	t.Helper()
	junk := filepath.Join(e.cache, "junk")
	f, err := os.Create(junk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", e.cache, err)
	}
	// Even one more byte must not fit.
	if err := os.WriteFile(filepath.Join(e.cache, "probe"), []byte("x"), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("cache not full after filling it: writing a byte gave %v", err)
	}
	_ = os.Remove(filepath.Join(e.cache, "probe"))
	return junk
}

// problemsOf returns the status entries of paths from one list.
func problemsOf(list []itemProblemJSON, paths []string) map[string]itemProblemJSON {
	out := map[string]itemProblemJSON{}
	for _, p := range list {
		if slices.Contains(paths, p.Path) {
			out[p.Path] = p
		}
	}
	return out
}
