package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
)

// child is the command watch-exec wraps. Its stdin, stdout and stderr are
// ours, untouched; SIGINT, SIGTERM and SIGHUP sent to nixpush are passed
// on to it while it runs; and if nixpush dies, even by SIGKILL, the kernel
// sends it SIGTERM, so it is never left running on its own.
type child struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error     // from Wait, once done is closed
	stderr io.Writer // nixpush's own (the console)
}

// exitCodeChildNotFound is the shell's code for a command that cannot run.
const exitCodeChildNotFound = 127

// startChild starts the command. Signals are relayed from the moment it
// starts: while it runs they are forwarded to it; once it has exited the
// first one calls afterExit and a second exits nixpush at once. One
// handler for both phases leaves no moment where a signal is lost or
// takes its default action.
func startChild(argv []string, s stdio, afterExit func()) (*child, error) {
	c := &child{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{}), stderr: s.err}
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = s.in, s.out, s.err
	if con := consoleOf(s.err); con != nil {
		c.cmd.Stderr = con.w // the command's own stderr, untouched
	}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not
		// the process: keep this goroutine on its thread until the child
		// is reaped.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		signal.Stop(sigs)
		return nil, &exitError{code: exitCodeChildNotFound, err: fmt.Errorf("start %s: %w", argv[0], err)}
	}
	go c.relaySignals(sigs, afterExit)
	return c, nil
}

func (c *child) relaySignals(sigs <-chan os.Signal, afterExit func()) {
	own := 0
	for s := range sigs {
		select {
		case <-c.done:
		default:
			// Signal fails with ErrProcessDone when the child was reaped
			// meanwhile: then the signal is ours after all.
			if err := c.cmd.Process.Signal(s); !errors.Is(err, os.ErrProcessDone) {
				continue
			}
		}
		if own++; own == 1 {
			// A person at a terminal is answered at once; elsewhere the
			// summary says what stays queued.
			if isTerminal(c.stderr) {
				fmt.Fprintln(c.stderr, "nixpush: stopping the wait for uploads (what is not pushed stays queued); press Ctrl-C again to exit now")
			}
			afterExit()
			continue
		}
		fmt.Fprintln(c.stderr, "nixpush: second signal, exiting now")
		os.Exit(130)
	}
}

// kill ends the child when nixpush itself has failed.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done
}

// exitCode is the child's status as a shell reports it: its exit code, or
// 128+N when killed by signal N.
func (c *child) exitCode() int {
	var ee *exec.ExitError
	if c.err != nil && !errors.As(c.err, &ee) {
		return 1
	}
	ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// exitAs is the command's exit as nixpush's own: its code, nothing to say.
func (c *child) exitAs() error {
	<-c.done
	if code := c.exitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}
