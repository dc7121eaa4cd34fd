package main

// The test harness of cmd/nixpush, one of each. Here, how nixpush runs:
//   - runMain runs a command line in the test process: for every test
//     where signals and the process's exit are not the point;
//   - TestMain builds the binary once; runCmd runs it to its end, proc in
//     the background (signals, exit codes of watch-exec, SIGKILL, systemd,
//     another user).
// In harness_env_test.go, what it runs on and what the tests read back:
// testEnv (store, cache, key, state dir), readStatus into the real
// statusReport, readQueue, and mountDisk for a disk that fills up.

import (
	"bufio"
	"bytes"
	"context"
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
