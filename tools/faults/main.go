// Command faults runs nixpush against real caches (file://, nginx,
// versitygw) while breaking things around it: the network (toxiproxy),
// the servers (SIGSTOP, restarts), the state dir (full disk, a lock held
// by another process), nixpush itself (SIGKILL), the store (GC of a path
// being uploaded) and other pushers on the same cache. Each scenario
// checks that the cache stays consistent while it runs and at the end,
// that no path is lost and that no process hangs. With -write the table
// goes to docs/reliability.md. make faults runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "faults: "+format+"\n", args...)
}

func main() {
	write := flag.Bool("write", false, "write the table to docs/reliability.md")
	only := flag.String("run", "", "run only the scenarios whose name contains one of these comma-separated words")
	keep := flag.Bool("keep", false, "keep the scratch directory (logs of every process)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runSuite(ctx, *write, *only, *keep); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
}

// suiteDeadline is the whole suite's budget: about 8 minutes on a 2-core
// machine, half of it the fleet and the 1 GiB resume.
const suiteDeadline = 20 * time.Minute

func runSuite(ctx context.Context, write bool, only string, keep bool) error {
	ctx, cancel := context.WithTimeout(ctx, suiteDeadline)
	defer cancel()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "nixpush")); err != nil {
		return fmt.Errorf("run from the nixpush repository (go run ./tools/faults): %w", err)
	}
	dir, err := os.MkdirTemp("", "nixpush-faults-")
	if err != nil {
		return fmt.Errorf("create scratch dir: %w", err)
	}
	if keep {
		logf("scratch (kept): %s", dir)
	} else {
		defer removeAll(dir)
	}
	began := time.Now()
	w, err := newWorld(ctx, root, dir)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	defer w.close()
	var outcomes []outcome
	for _, sc := range scenarios() {
		if only != "" && !slices.ContainsFunc(strings.Split(only, ","), func(s string) bool { return strings.Contains(sc.name, s) }) {
			continue
		}
		if ctx.Err() != nil {
			outcomes = append(outcomes, outcome{Name: sc.name, Fault: sc.fault, Notes: "not run: the suite ran out of time"})
			continue
		}
		outcomes = append(outcomes, w.runScenario(ctx, sc))
	}
	total := time.Since(began)
	failed := 0
	for _, o := range outcomes {
		if !o.Pass {
			failed++
		}
	}
	logf("%d scenarios, %d failed, %v in all", len(outcomes), failed, total.Round(time.Second))
	if write {
		name := filepath.Join(root, "docs", "reliability.md")
		if err := os.WriteFile(name, []byte(report(outcomes, total, only)), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		logf("wrote %s", name)
	}
	if failed > 0 && !keep {
		logf("the processes' logs are removed; go run ./tools/faults -keep -run NAME keeps them")
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios failed", failed, len(outcomes))
	}
	return nil
}

// removeAll removes a tree even where Nix left read-only directories.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}
