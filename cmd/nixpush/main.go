// Command nixpush pushes Nix store paths to binary caches. See README.md
// for the picture of the program; each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/pflag"
)

// exitError carries a specific exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
	// ownSignals: the command handles SIGINT/SIGTERM itself (watch-exec
	// forwards them to its child) instead of having them cancel ctx.
	ownSignals bool
}

// commands is filled in init: the config file's vocabulary is read from
// the commands' own flags, which refers back to this table.
var commands []command

func init() {
	commands = []command{
		{"push", "push store paths and their closures to a cache", runPush, false},
		{"watch-store", "push every path that becomes valid, forever (the daemon)", runWatchStore, false},
		{"status", "show what is queued, in flight, done and failed", runStatus, false},
		{"retry", "requeue failed paths (--failed) or the given paths", runRetry, false},
		{"watch-exec", "run a command, push what it builds, wait, exit with its code", runWatchExec, true},
		{"enqueue", "record paths ($OUT_PATHS) in the queue and return at once (post-build-hook)", runEnqueue, false},
		{"keygen", "write a signing key pair in Nix's format", runKeygen, false},
		{"config", "config check: validate the config file and print the effective settings", runConfig, false},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nixpush COMMAND [flags] [args]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun nixpush COMMAND --help for a command's flags.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	for _, c := range commands {
		if c.name == name {
			stop := startCPUProfile()
			ctx := context.Background()
			if !c.ownSignals {
				ctx = signalContext()
			}
			code := exitCode(c.run(ctx, os.Args[2:]))
			stop()
			os.Exit(code)
		}
	}
	fmt.Fprintf(os.Stderr, "nixpush: unknown command %q\n", name)
	usage()
	os.Exit(2)
}

// signalContext is cancelled by the first SIGINT or SIGTERM, so work in
// flight can finish or be put back; a second signal exits at once.
func signalContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "nixpush: second signal, exiting now")
		os.Exit(130)
	}()
	return ctx
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

// exitCode prints err as one line on stderr and picks the exit status.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "nixpush: error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "nixpush: error:", err)
	return 1
}

// newFlagSet returns a flag set that reports errors instead of exiting,
// with the --config flag every command shares.
func newFlagSet(name, usageLine string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: nixpush %s %s\n\nflags:\n%s", name, usageLine, fs.FlagUsages())
	}
	fs.SortFlags = false
	fs.String(configFlag, "", "config file (default $NIXPUSH_CONFIG, else "+defaultConfigFile+" if it exists)")
	return fs
}

// parseFlags parses args, then fills the flags not given on the command
// line from the config file. Errors are usage errors (exit 2).
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if collectFlags != nil {
		collectFlags(fs)
		return errFlagsCollected
	}
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	if err := applyConfig(fs); err != nil {
		return &exitError{code: 2, err: err}
	}
	return nil
}
