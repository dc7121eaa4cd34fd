package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// watchStore is a `nixpush watch-store` daemon the bench started. It
// reads the daemon's JSON log as it comes, so a suite can wait for a
// message ("watching") instead of sleeping.
type watchStore struct {
	Pid  int
	cmd  *exec.Cmd
	mu   sync.Mutex
	seen map[string]time.Time // log message → when the bench first read it
	tail []string             // the last log lines, for error messages
	// Problems are the daemon's warn and error lines: a benchmark that
	// looks fine while the daemon complains is worth a note.
	Problems []string
	changed  chan struct{} // closed and replaced on every new line
	exited   chan struct{} // closed once the process is waited for
	waitErr  error
}

// daemonDirs are where one daemon reads from and writes to.
type daemonDirs struct {
	Root  string // the private store (--store)
	Cache string // the file:// cache dir
	State string // --state-dir
	Home  string // HOME and XDG dirs
	URL   string // the cache URL, if not Cache with zstd
}

// watchStoreTimeout bounds the wait for the daemon's first "watching".
const watchStoreTimeout = time.Minute

// startWatchStore starts the daemon on d and returns once it has logged
// "watching", with the time the bench read that line.
func startWatchStore(ctx context.Context, bin, secKey string, d daemonDirs) (*watchStore, time.Time, error) {
	url := d.URL
	if url == "" {
		url = "file://" + d.Cache + "?compression=zstd"
	}
	cmd := exec.CommandContext(ctx, bin, "watch-store",
		"--store", d.Root,
		"--to", url,
		"--signing-key", secKey,
		"--state-dir", d.State,
		"--log-format", "json")
	cmd.Env = cleanEnv(d.Home)
	// If the bench is interrupted the daemon stops as a service would.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 45 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("start watch-store: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, time.Time{}, fmt.Errorf("start watch-store: %w", err)
	}
	w := &watchStore{Pid: cmd.Process.Pid, cmd: cmd, seen: map[string]time.Time{},
		changed: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			w.record(sc.Text(), time.Now())
		}
		w.waitErr = cmd.Wait() // after the last read of the pipe, as Wait requires
		close(w.exited)
	}()
	at, err := w.waitLog(ctx, "watching", watchStoreTimeout)
	if err != nil {
		w.Stop()
		return nil, time.Time{}, err
	}
	return w, at, nil
}

// record notes one log line.
func (w *watchStore) record(line string, at time.Time) {
	var entry struct{ Level, Msg string }
	_ = json.Unmarshal([]byte(line), &entry) // a non-JSON line only goes to the tail
	w.mu.Lock()
	defer w.mu.Unlock()
	if entry.Msg != "" {
		if _, ok := w.seen[entry.Msg]; !ok {
			w.seen[entry.Msg] = at
		}
	}
	if entry.Level == "warn" || entry.Level == "error" {
		w.Problems = append(w.Problems, line)
	}
	w.tail = append(w.tail, line)
	if len(w.tail) > 20 {
		w.tail = w.tail[1:]
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitLog waits until the daemon has logged msg, and returns when the
// bench read that line.
func (w *watchStore) waitLog(ctx context.Context, msg string, timeout time.Duration) (time.Time, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		at, ok := w.seen[msg]
		changed := w.changed
		w.mu.Unlock()
		if ok {
			return at, nil
		}
		select {
		case <-changed:
		case <-w.exited:
			if at, ok := w.seenAt(msg); ok {
				return at, nil
			}
			return time.Time{}, fmt.Errorf("watch-store exited (%v) before logging %q:\n%s", w.waitErr, msg, w.logTail())
		case <-timer.C:
			return time.Time{}, fmt.Errorf("watch-store did not log %q within %s:\n%s", msg, timeout, w.logTail())
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (w *watchStore) seenAt(msg string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.seen[msg]
	return at, ok
}

func (w *watchStore) logTail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}

// Stats reads the daemon's /proc figures.
func (w *watchStore) Stats() (procStats, error) { return readProcStats(w.Pid) }

// Stop sends SIGTERM, as systemd would, and waits for a clean exit; a
// daemon still running after the wait is killed and reported.
func (w *watchStore) Stop() error {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(45 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
		return errors.New("watch-store did not stop within 45 s of SIGTERM")
	}
	if w.waitErr != nil {
		return fmt.Errorf("watch-store exited with %v:\n%s", w.waitErr, w.logTail())
	}
	return nil
}
