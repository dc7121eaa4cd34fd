// Command nixpush pushes Nix store paths to binary caches. See README.md
// for the picture of the program. Each command is a value built in its
// own file (newPushCommand, ...): its flags exist before it runs, so the
// config file, completion and help read them; run() executes one.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"

	"nixpush/queue"
	"nixpush/retry"
)

func main() {
	stop := startCPUProfile()
	code := run(context.Background(), os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(code)
}

// stdio is where a command reads and writes: the process's own streams,
// or buffers when a test runs a command in-process.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// run executes one command line and returns the exit status; errors are
// printed as one line on the error stream.
func run(ctx context.Context, args []string, s stdio) int {
	s.err = newConsole(s.err)
	root := newRootCommand(s)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	return exitCode(err, s.err, logFormatOf(cmd))
}

// logFormatOf is the --log-format a command ran with ("" when it has none).
func logFormatOf(cmd *cobra.Command) string {
	if cmd == nil {
		return ""
	}
	if f := cmd.Flags().Lookup("log-format"); f != nil {
		return f.Value.String()
	}
	return ""
}

// exitError carries a specific exit code up to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake on the command line: exit 2, which the systemd
// unit does not restart.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// Exit codes other than a wrapped command's. The systemd unit restarts
// the daemon on failure except after exitUsage and exitPermanent: a
// restart cannot fix a wrong flag, a bad key, a damaged or newer queue, a
// cache URL naming a file, refused credentials.
const (
	exitFailure   = 1
	exitUsage     = 2
	exitPermanent = 78 // sysexits' EX_CONFIG
)

// exitCode prints err as one line and picks the exit status.
func exitCode(err error, w io.Writer, logFormat string) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			sayError(w, logFormat, ee.err)
		}
		return ee.code
	}
	sayError(w, logFormat, err)
	// cobra's own errors: unknown commands and bad arguments.
	if strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "arg(s)") {
		return exitUsage
	}
	if isPermanent(err) {
		return exitPermanent
	}
	return exitFailure
}

// sayError prints a command's error as its last line: JSON when the logs
// are (a reader of the stream parses every line), else one human line,
// under systemd with the priority `journalctl -p err` finds.
func sayError(w io.Writer, logFormat string, err error) {
	if logFormat == "json" {
		if log, lerr := (&logFlags{format: "json", level: "error"}).logger(w); lerr == nil {
			log.Error(oneLine(err.Error()))
			_ = log.Sync()
			return
		}
	}
	prefix := "nixpush: error:"
	if toJournal(w) {
		prefix = journalPriority(zapcore.ErrorLevel) + prefix
	}
	fmt.Fprintln(w, prefix, oneLine(err.Error()))
}

// isPermanent reports errors no retry or restart can fix: classified so
// where they arose (retry.Permanent), or a queue file nixpush must not
// or cannot write.
func isPermanent(err error) bool {
	return retry.IsPermanent(err) || errors.Is(err, queue.ErrCorrupt) ||
		errors.Is(err, queue.ErrNewerSchema) || errors.Is(err, queue.ErrReadOnly)
}

// withSignals makes the first SIGINT or SIGTERM cancel the command's
// context, so work in flight can finish or be put back, and says at once
// what the stop waits for and for how long; a second signal aborts: the
// uploads in flight are cancelled and their rows go back to pending
// (interrupt.abort, which the pipeline's Config.Abort takes), and if even
// that hangs the process exits soon after. watch-exec does not use it: it
// forwards signals to its child instead.
func withSignals(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		in := &interrupt{abort: make(chan struct{})}
		ch := make(chan os.Signal, 3)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(ch)
		returned := make(chan struct{})
		defer close(returned)
		go in.handle(ch, cancel, returned, cmd.ErrOrStderr())
		cmd.SetContext(announceRetries(context.WithValue(ctx, interruptKey{}, in), cmd.ErrOrStderr()))
		return run(cmd, args)
	}
}

// abortGrace bounds how long an abort (the second signal) may take to
// put the rows back before the process exits regardless.
const abortGrace = 3 * time.Second

// interrupt is what a command under withSignals tells the signal handler
// and learns from it.
type interrupt struct {
	mu      sync.Mutex
	waiting func() string // what a stop waits for, once the command knows
	abort   chan struct{} // closed at the second signal
}

type interruptKey struct{}

// interruptOf is the interrupt of a command run under withSignals (a
// fresh one otherwise, which no signal reaches).
func interruptOf(ctx context.Context) *interrupt {
	if in, ok := ctx.Value(interruptKey{}).(*interrupt); ok {
		return in
	}
	return &interrupt{abort: make(chan struct{})}
}

// waitingFor tells the handler what a stop would wait for: fn says it in
// a few words ("up to 30s for 2 uploads in flight (foo 34%)").
func (in *interrupt) waitingFor(fn func() string) {
	in.mu.Lock()
	in.waiting = fn
	in.mu.Unlock()
}

func (in *interrupt) handle(ch <-chan os.Signal, cancel func(), returned <-chan struct{}, w io.Writer) {
	select {
	case <-ch:
	case <-returned:
		return
	}
	cancel()
	// A person at a terminal is answered at once; elsewhere (systemd,
	// a pipe) the logs say what happens.
	say := func(msg string) {
		if isTerminal(w) {
			fmt.Fprintln(w, msg)
		}
	}
	in.mu.Lock()
	waiting := in.waiting
	in.mu.Unlock()
	msg := "nixpush: stopping"
	if waiting != nil {
		if s := waiting(); s != "" {
			msg += ": waiting " + s
		}
	}
	say(msg + "; press Ctrl-C again to abort now")
	select {
	case <-ch:
	case <-returned:
		return
	}
	say("nixpush: aborting: uploads in flight are cancelled; their paths stay queued")
	close(in.abort)
	select {
	case <-ch:
	case <-returned:
		return
	case <-time.After(abortGrace):
	}
	say("nixpush: exiting now")
	os.Exit(130)
}

// startCPUProfile writes a CPU profile to $NIXPUSH_CPUPROFILE, for
// finding where a benchmark's time goes.
func startCPUProfile() (stop func()) {
	file := os.Getenv("NIXPUSH_CPUPROFILE")
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nixpush: cpu profile:", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// quoteInput shows user input in a message safely: input with control
// or invalid bytes (a NUL from a bad script) is shown quoted and escaped.
func quoteInput(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
