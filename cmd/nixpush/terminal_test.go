package main

// nixpush as a person sees it: the real binary on a real pseudo-terminal,
// its output read as the terminal gets it, with the time of every byte.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// term is a nixpush process that is a terminal's foreground job: its
// stdin, stdout and stderr are the terminal, and Ctrl-C typed there
// reaches it as SIGINT, as in a shell.
type ptyProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	tty   *os.File // the terminal's master side
	start time.Time
	mu    sync.Mutex
	out   []byte
	marks []mark // after each read: the output's length, and when
	done  chan struct{}
	err   error
}

type mark struct {
	n  int
	at time.Duration // since start
}

func startTerm(t *testing.T, args ...string) *ptyProc {
	t.Helper()
	tm := &ptyProc{t: t, done: make(chan struct{})}
	tm.cmd = exec.Command(nixpushBin, args...)
	tm.cmd.Env = append(procEnv(t), "TERM=xterm")
	var err error
	tm.start = time.Now()
	if tm.tty, err = pty.StartWithSize(tm.cmd, &pty.Winsize{Rows: 40, Cols: 250}); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tm.tty.Read(buf)
			tm.mu.Lock()
			tm.out = append(tm.out, buf[:n]...)
			tm.marks = append(tm.marks, mark{len(tm.out), time.Since(tm.start)})
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { tm.err = tm.cmd.Wait(); close(tm.done) }()
	t.Cleanup(func() {
		select {
		case <-tm.done:
		default:
			_ = tm.cmd.Process.Kill()
			<-tm.done
		}
		tm.tty.Close()
		if t.Failed() {
			out := tm.screen()
			t.Logf("terminal output (the last 3000 bytes):\n%q", out[max(0, len(out)-3000):])
		}
	})
	return tm
}

func (tm *ptyProc) screen() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return string(tm.out)
}

// waitFor waits until the output, from byte from on, matches re; it
// returns the submatches, where the match ends, and when the terminal got
// its last byte (since the start).
func (tm *ptyProc) waitFor(timeout time.Duration, what string, from int, re *regexp.Regexp) ([]string, int, time.Duration) {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tm.mu.Lock()
		if loc := re.FindSubmatchIndex(tm.out[from:]); loc != nil {
			end := from + loc[1]
			var when time.Duration
			for _, m := range tm.marks {
				if m.n >= end {
					when = m.at
					break
				}
			}
			subs := make([]string, len(loc)/2)
			for i := range subs {
				if loc[2*i] >= 0 {
					subs[i] = string(tm.out[from+loc[2*i] : from+loc[2*i+1]])
				}
			}
			tm.mu.Unlock()
			return subs, end, when
		}
		tm.mu.Unlock()
		if time.Now().After(deadline) {
			tm.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-tm.done:
			tm.t.Fatalf("nixpush exited (%v) while waiting for %s", tm.err, what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ctrlC types Ctrl-C and returns when (since the start).
func (tm *ptyProc) ctrlC() time.Duration {
	tm.t.Helper()
	at := time.Since(tm.start)
	if _, err := tm.tty.Write([]byte{3}); err != nil {
		tm.t.Fatal(err)
	}
	return at
}

// answersCtrlC types Ctrl-C and waits for the answer re matches, from
// from on: it must come within 200 ms (a person is waiting). It returns
// the match and where it ends, as waitFor.
func (tm *ptyProc) answersCtrlC(from int, re *regexp.Regexp) ([]string, int) {
	tm.t.Helper()
	pressed := tm.ctrlC()
	m, pos, at := tm.waitFor(5*time.Second, "the answer to Ctrl-C", from, re)
	if at-pressed > 200*time.Millisecond {
		tm.t.Errorf("Ctrl-C answered after %s, want within 200 ms", at-pressed)
	}
	return m, pos
}

// exitsOnSecondCtrlC types Ctrl-C again: nixpush must end within 1 s
// with exit code 130.
func (tm *ptyProc) exitsOnSecondCtrlC() {
	tm.t.Helper()
	pressed := tm.ctrlC()
	code, ended := tm.exited(5 * time.Second)
	if ended-pressed > time.Second {
		tm.t.Errorf("the second Ctrl-C took %s to end nixpush, want within 1 s", ended-pressed)
	}
	if code != 130 {
		tm.t.Errorf("exit %d after the second Ctrl-C, want 130", code)
	}
}

// exited waits at most timeout for the process to end and returns its
// exit code and when it ended.
func (tm *ptyProc) exited(timeout time.Duration) (int, time.Duration) {
	tm.t.Helper()
	select {
	case <-tm.done:
	case <-time.After(timeout):
		tm.t.Fatalf("nixpush still running %s after it was told to stop", timeout)
	}
	at := time.Since(tm.start)
	if tm.err == nil {
		return 0, at
	}
	if ee, ok := tm.err.(*exec.ExitError); ok && ee.Exited() {
		return ee.ExitCode(), at
	}
	tm.t.Fatalf("nixpush ended with %v", tm.err)
	return -1, at
}

// randomTree writes a directory name of mib files of 1 MiB of random
// bytes from seed: a NAR that xz takes seconds over.
func randomTree(t *testing.T, name string, seed byte, mib int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	rnd := rand.NewChaCha8([32]byte{seed})
	for i := range mib {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), randomBytes(rnd, 1<<20), 0o644)
	}
	return dir
}

// statusLine matches the push's status line with the NAR bytes read.
var statusLine = regexp.MustCompile(`pushing \d+ of 1 path · ([0-9.]+) MiB of ([0-9.]+) MiB read, ([0-9.]+) MiB sent`)

// TestPushOnTerminal: a push of one large NAR on a terminal shows its bytes
// moving within 2 s of the status line's first draw; the first Ctrl-C is
// answered within 200 ms, saying what the stop waits for, for how long,
// and that a second Ctrl-C aborts; the second aborts within 1 s, leaving
// the path pending in the queue (not uploading, no object in the cache),
// and the summary says what status says. Every line is printed on a
// cleared line, never into the status line.
func TestPushOnTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "terminal-1")
	e.to = e.url + "?compression=xz" // slow enough to be interrupted
	big := addDirs(t, e.store, randomTree(t, "terminal-big", 23, 24))[0]

	tm := startTerm(t, "push", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.to,
		"--signing-key", e.sec, "--shutdown-timeout", "60s", big)
	first, pos, drawn := tm.waitFor(30*time.Second, "the status line", 0, statusLine)
	if total, _ := strconv.ParseFloat(first[2], 64); total < 23 {
		t.Errorf("status line total %s MiB, want the NAR's 24 MiB", first[2])
	}
	// Bytes read show within 2 s of the first draw, and then grow.
	var firstRead float64
	for {
		m, end, at := tm.waitFor(30*time.Second, "the bytes read to move", pos, statusLine)
		pos = end
		read, _ := strconv.ParseFloat(m[1], 64)
		if firstRead == 0 && read > 0 {
			firstRead = read
			if at-drawn > 2*time.Second {
				t.Errorf("the status line showed bytes read %s after its first draw, want within 2 s", at-drawn)
			}
		} else if firstRead > 0 && read > firstRead {
			break
		}
		if at-drawn > 20*time.Second {
			t.Fatalf("bytes read still %s MiB %s after the first draw", m[1], at-drawn)
		}
	}

	ack, pos := tm.answersCtrlC(pos, regexp.MustCompile(`(\r\x1b\[K)?nixpush: stopping: waiting up to 1m0s for 1 upload in flight to finish \(terminal-big \d+%\)[^\n]*press Ctrl-C again to abort now`))
	if ack[1] == "" && strings.Contains(tm.screen(), "MiB sent") {
		t.Errorf("the answer to Ctrl-C was printed into the status line, not on a cleared line")
	}
	tm.exitsOnSecondCtrlC()
	out := tm.screen()[pos:]
	for _, want := range []string{"nixpush: aborting", "0 paths", "1 pending", "pending " + big + ": not pushed yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("after the second Ctrl-C, the terminal lacks %q", want)
		}
	}
	if strings.Count(out, "push --drain") != 1 {
		t.Errorf("the advice is printed %d times, want once", strings.Count(out, "push --drain"))
	}
	if r := e.rows()[big]; r.State != "pending" {
		t.Errorf("queue row of %s after the abort: %+v, want pending", big, r)
	}
	if st := e.status(); st.Pending != 1 || st.Uploading != 0 || st.Failed != 0 {
		t.Errorf("status after the abort: %d pending, %d uploading, %d failed; the summary said 1 pending", st.Pending, st.Uploading, st.Failed)
	}
	if nars, tmp := e.narFiles(); len(nars)+len(tmp) > 0 {
		t.Errorf("the aborted upload left %q %q in the cache", nars, tmp)
	}
	// Every line nixpush printed began on a cleared line or a fresh one.
	for _, line := range regexp.MustCompile(`[^\n]*nixpush: [a-z]+`).FindAllString(tm.screen(), -1) {
		if i := strings.LastIndex(line, "MiB sent"); i >= 0 && !strings.Contains(line[i:], "\r\x1b[K") {
			t.Errorf("a line was printed into the status line: %q", line)
		}
	}
}

// TestRetriesShowOnTerminal: an unreachable cache is not a minute of
// silence: each retry says what failed and when the next try is.
func TestRetriesShowOnTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "terminal-retry-1")
	top := fibOutputs(t, e.store, "terminal-retry", 2)[0]
	tm := startTerm(t, "push", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", "http://"+svcFreeAddr(t)+"/cache",
		"--signing-key", e.sec, top)
	m, _, at := tm.waitFor(20*time.Second, "a retry notice", 0, regexp.MustCompile(`nixpush: cache unreachable \(connection refused\); retry 2 of (\d+) in [0-9.]+m?s\r?\n`))
	if n, _ := strconv.Atoi(m[1]); n < 2 {
		t.Errorf("retry 2 of %s", m[1])
	}
	if at > 5*time.Second {
		t.Errorf("the second retry was announced %s after the start", at)
	}
	tm.ctrlC()
	if code, _ := tm.exited(10 * time.Second); code == 0 {
		t.Errorf("push to an unreachable cache exited 0")
	}
}

// TestBytesMetricMovesDuringUpload: nixpush_bytes_pushed_total counts the
// bytes of a large NAR as they go, not when its upload ends.
func TestBytesMetricMovesDuringUpload(t *testing.T) {
	t.Parallel()
	store := newEnv(t, "bytes-metric-1").store
	cache := filepath.Join(t.TempDir(), "cache")
	p, addr := startMetricsDaemon(t, store, cache, "--compression", "xz")
	big := addDirs(t, store, randomTree(t, "bytes-metric-big", 31, 16))[0]
	narinfo := filepath.Join(cache, hashPart(big)+".narinfo")
	var sent float64
	p.waitFor(60*time.Second, "nixpush_bytes_pushed_total to move before the path is pushed", func() bool {
		_, statErr := os.Stat(narinfo) // before the scrape: a narinfo then was there before it
		m, err := svcScrape(addr)
		if err != nil {
			return false
		}
		sent = m["nixpush_bytes_pushed_total"]
		if statErr == nil {
			t.Fatalf("the path was pushed before the metric moved (it reads %v)", sent)
		}
		return sent > 0
	})
}

// TestWatchExecCtrlCOnTerminal: once the command has exited and
// watch-exec waits for its uploads, Ctrl-C on the terminal is answered
// within 200 ms, saying what stops and that a second Ctrl-C exits; the
// second exits at once with 130.
func TestWatchExecCtrlCOnTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "terminal-wx")
	e.to = e.url + "?compression=xz" // slow enough to be interrupted
	dir := randomTree(t, "wx-terminal-big", 29, 24)
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := fmt.Sprintf(`nix-store --store %s --add %s >/dev/null || exit 1; echo $$ > %s.tmp && mv %s.tmp %s`,
		shQuote(e.store.Root), shQuote(dir), pidFile, pidFile, pidFile)
	tm := startTerm(t, e.watchExecArgs([]string{"--shutdown-timeout", "60s", "--drain-timeout", "5m"}, "sh", "-c", script)...)
	// The command is done once it has been reaped: the next Ctrl-C is
	// nixpush's own (no event tells a non-parent that a process was
	// reaped: /proc does).
	deadline := time.Now().Add(time.Minute)
	for {
		pid, _ := os.ReadFile(pidFile) // written by rename, so complete
		if len(pid) > 0 {
			if _, err := os.Stat("/proc/" + strings.TrimSpace(string(pid))); os.IsNotExist(err) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the command did not end within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tm.answersCtrlC(0, regexp.MustCompile(`nixpush: stopping the wait for uploads[^\n]*press Ctrl-C again to exit now`))
	tm.exitsOnSecondCtrlC()
}
