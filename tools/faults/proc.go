package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is a process the suite started, with its stderr kept in a file so
// that a hang can be explained by what it printed (and, for nixpush, by
// the goroutine dump a Go program writes on SIGQUIT).
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string // stdout and stderr
	done   chan struct{}
	killed bool // ended by the suite (SIGKILL), not by itself
}

// errHang marks a process that did not end within its deadline.
var errHang = errors.New("hang")

// start runs name with args, env and its output in logFile; Setpgid so
// that no signal of ours reaches the suite and a kill takes its children.
func start(name, logFile string, env []string, bin string, args ...string) (*proc, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// code is the exit code (-1 when a signal ended it); only after done.
func (p *proc) code() int { return p.cmd.ProcessState.ExitCode() }

// wait waits up to d for the process to end and returns its exit code.
// A process still running then is a hang: it gets SIGQUIT (a Go program
// prints every goroutine's stack, i.e. what was stuck), then SIGKILL, and
// the error carries the end of its output.
func (p *proc) wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.code(), nil
	case <-time.After(d):
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
	}
	p.kill()
	return -1, fmt.Errorf("%w: %s still running after %v; stuck in:\n%s", errHang, p.name, d, stuckIn(p.output()))
}

// signal sends sig to the process alone.
func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// kill SIGKILLs the process group and waits for it (bounded: a process in
// uninterruptible sleep is reported, not waited on forever).
func (p *proc) kill() {
	if p.exited() {
		return
	}
	p.killed = true
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		logf("warning: %s (pid %d) did not die within 10s of SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// output is what the process printed.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// stuckIn shortens a Go goroutine dump to the frames that name nixpush
// code, which say where it waits; other output is returned as its tail.
func stuckIn(out string) string {
	i := strings.Index(out, "goroutine ")
	if i < 0 {
		return tail(out, 1500)
	}
	var keep []string
	for _, line := range strings.Split(out[i:], "\n") {
		if strings.HasPrefix(line, "goroutine ") || (strings.HasPrefix(line, "nixpush/") && !strings.Contains(line, "(...)")) {
			keep = append(keep, line)
		}
	}
	return tail(strings.Join(keep, "\n"), 3000)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
