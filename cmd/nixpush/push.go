package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"nixpush/nixstore"
	"nixpush/uploader"
)

const pushUsage = `[flags] PATH...   (or paths on stdin, e.g. nix-store -qR ./result | nixpush push --to ...)`

func runPush(ctx context.Context, args []string) error {
	fs := newFlagSet("push", pushUsage)
	var tf targetFlags
	var lf logFlags
	tf.add(fs)
	lf.add(fs, "warn")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr
	args = fs.Args()
	if len(args) == 0 {
		if term.IsTerminal(int(os.Stdin.Fd())) {
			return &exitError{code: 2, err: errors.New("push needs store paths as arguments or on stdin")}
		}
		if args, err = readPaths(os.Stdin); err != nil {
			return err
		}
		if len(args) == 0 {
			return &exitError{code: 2, err: errors.New("no store paths on stdin")}
		}
	}

	t, err := tf.open(ctx, log)
	if err != nil {
		return err
	}
	defer t.store.Close()

	roots, err := resolveAll(ctx, t.store, args)
	if err != nil {
		return err
	}
	closure, err := t.store.Closure(ctx, roots)
	if err != nil {
		return err
	}
	plan, err := uploader.MakePlan(ctx, t.uploader.Cache, closure, t.filter)
	if err != nil {
		return err
	}
	stop := startProgress(&t.uploader.Stats, len(plan.Upload))
	errs := t.uploader.Upload(ctx, plan.Upload)
	stop()
	printSummary(&t.uploader.Stats, plan, len(errs))
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, "nixpush: failed:", e)
		}
		return &exitError{code: 1, err: fmt.Errorf("%d of %d paths failed to push", len(errs), len(plan.Upload))}
	}
	return nil
}

// readPaths reads whitespace-separated paths, as nix-store -qR prints them.
func readPaths(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		paths = append(paths, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read paths from stdin: %w", err)
	}
	return paths, nil
}

// resolveAll maps arguments to valid store paths, failing on the first bad one.
func resolveAll(ctx context.Context, store *nixstore.Store, args []string) ([]string, error) {
	roots := make([]string, 0, len(args))
	for _, a := range args {
		p, err := store.Resolve(a)
		if err != nil {
			return nil, err
		}
		roots = append(roots, p)
	}
	if _, err := store.QueryPathInfos(ctx, roots); err != nil {
		return nil, err
	}
	return roots, nil
}

func printSummary(s *uploader.Stats, plan uploader.Plan, failed int) {
	var b strings.Builder
	fmt.Fprintf(&b, "pushed %d paths, %s (%s uncompressed), skipped %d already present, %d upstream, %d filtered",
		s.Paths.Load(), mib(s.Bytes.Load()), mib(s.NARBytes.Load()), plan.Present, plan.Upstream, plan.Filtered)
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	fmt.Fprintln(os.Stderr, b.String())
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
