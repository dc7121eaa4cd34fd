// Package servertest runs the real servers that nixpush's tests, the
// benchmarks (tools/bench) and the fault suite (tools/faults) push to or
// through: nginx with WebDAV, versitygw (S3) and toxiproxy, each on
// 127.0.0.1. One Server type starts, waits for, stops, freezes and thaws
// any of them, so all three callers get the same process handling; the
// kinds (Nginx, Versitygw, Toxiproxy) add only their command line and
// what a caller needs to reach them.
//
// Nothing here needs a *testing.T: Start returns an error, for the
// programs. Tests use MustStart and the Start* shorthands, which fail the
// test (never skip it) when a server is missing, so a machine without
// nginx or versitygw cannot make the suite pass silently; only toxiproxy,
// which is no apt package, has RequireToxiproxy to skip.
package servertest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds the wait for a server to answer after it started.
const startTimeout = 20 * time.Second

// stopTimeout is how long a server may take to end after SIGTERM before
// its process group is killed (nginx's master waits for its workers).
const stopTimeout = 10 * time.Second

// portTries is how many fresh ports a first start tries: a port free
// when picked may be taken by another process before the server binds it.
const portTries = 5

// Server is one helper server process on 127.0.0.1, in a process group of
// its own: a signal to the caller (Ctrl-C in a terminal) does not reach
// it, its CPU (workers included) can be told apart from the caller's, and
// Stop, Freeze and Thaw reach every process it forked.
type Server struct {
	Name string   // "nginx", "versitygw", "toxiproxy": names it in errors and logs
	Dir  string   // its files: its output log and whatever its kind keeps there
	Addr string   // 127.0.0.1:PORT, set by the first Start and kept, so a restart serves the same port
	Env  []string // added to the environment it inherits, e.g. VGW_KEEP_ALIVE=true

	// launch returns the command line (and environment beyond Env) that
	// serves on port; it runs before every start, so a kind may write its
	// config there.
	launch func(port int) (bin string, args, env []string, err error)
	// readyPath is the URL path that answers once the server serves, and
	// readyStatus the status it must answer (0: any answer will do).
	readyPath   string
	readyStatus int
	// logs are files the server writes besides its output, in the order
	// Log shows them (the last one is what an error's tail shows).
	logs []string

	port   int // of Addr, once started
	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when not started or stopped
	exited chan struct{} // closed when cmd has ended
}

// server lets MustStart take any kind: each embeds *Server.
func (s *Server) server() *Server { return s }

// Start starts the server and waits until it answers (Ready). The first
// start picks a free port, and another when that one is taken before the
// server binds it; after Stop, Start serves the same address again, as a
// server that went away and came back. A failed start leaves nothing
// running.
func (s *Server) Start() error {
	if s.Running() {
		return fmt.Errorf("start %s: already running on %s", s.Name, s.Addr)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s dir: %w", s.Name, err)
	}
	if s.port != 0 {
		return s.startOn(s.port)
	}
	var err error
	for range portTries {
		var port int
		if port, err = FreePort(); err != nil {
			return err
		}
		if err = s.startOn(port); err == nil {
			s.port, s.Addr = port, fmt.Sprintf("127.0.0.1:%d", port)
			return nil
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return err
}

// startOn runs the server on port and waits until it answers.
func (s *Server) startOn(port int) error {
	bin, args, env, err := s.launch(port)
	if err != nil {
		return err
	}
	out, err := os.OpenFile(s.outLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create %s log: %w", s.Name, err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), env...), s.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // the exit is seen through exited
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	if err := s.ready(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// Ready waits until the running server answers, for up to 20 s; it
// fails at once when the server exits.
func (s *Server) Ready() error {
	if s.Addr == "" {
		return fmt.Errorf("%s was never started", s.Name)
	}
	return s.ready(s.Addr)
}

func (s *Server) ready(addr string) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", s.Name)
	}
	url := "http://" + addr + s.readyPath
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if s.readyStatus == 0 || resp.StatusCode == s.readyStatus {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start (%s):\n%s", s.Name, cmd.ProcessState, tail(s.Log(), 2000))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s within %v (last: %v):\n%s", s.Name, addr, startTimeout, err, tail(s.Log(), 2000))
		}
	}
}

// Stop ends the server: thawed first (a stopped process cannot act on
// SIGTERM), then SIGTERM, then SIGKILL to its group if it lingers. It
// waits for the end; calling it again, or before Start, does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	select {
	case <-s.exited:
	default:
		_ = syscall.Kill(-pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-s.exited:
			case <-time.After(stopTimeout): // in uninterruptible sleep: nothing more to do
			}
		}
	}
	// Workers outliving their master (nginx's) would keep the port.
	if err := syscall.Kill(-pid, 0); err == nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	s.cmd = nil
}

// Freeze stops every process of the server (SIGSTOP to its group)
// without closing its socket: the kernel still accepts connections and
// buffers bytes, but nothing answers, as with a hung or swapped-out
// server. Thaw or Stop ends it.
func (s *Server) Freeze() error {
	return s.signalGroup(syscall.SIGSTOP)
}

// Thaw resumes a frozen server (SIGCONT); it does nothing to a running
// or stopped one.
func (s *Server) Thaw() { _ = s.signalGroup(syscall.SIGCONT) }

func (s *Server) signalGroup(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("%s is not running", s.Name)
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %s: %w", s.Name, err)
	}
	return nil
}

// Running reports whether the server was started, not stopped, and its
// process has not ended on its own.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Pid is the server's process id, which is also its process group's;
// 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns what the server printed, then the logs its kind writes
// (nginx's access and error logs), to explain a failure.
func (s *Server) Log() string {
	var b strings.Builder
	for _, name := range append([]string{s.outLog()}, s.logs...) {
		data, err := os.ReadFile(name)
		if err != nil || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(name), strings.TrimRight(string(data), "\n"))
	}
	return b.String()
}

// outLog is where the server's stdout and stderr go, appended across
// restarts.
func (s *Server) outLog() string { return filepath.Join(s.Dir, s.Name+".log") }

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "(no output)"
	}
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
