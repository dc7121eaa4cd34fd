// Command bench measures nixpush against nix copy and the machine's own
// limit on real Nix, and with -write records the figures in
// docs/benchmarks.md. Run it from the repository root: go run ./bench.
//
// Work is split into suites (-suite); each sets up what it needs in the
// cached work dir, runs its tools interleaved and returns a report.
package main

import (
	"context"
	"errors"
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

// suite is one family of measurements.
type suite struct {
	name, summary string
	run           func(ctx context.Context, b *bench) (*report, error)
}

// suites lists every suite in the order -suite all runs them. Later ones
// (daemon detection latency, the queue at scale, HTTP and S3 backends)
// go here, each in its own suite_*.go.
var suites = []suite{
	{"copy", "one push of a large tree and of 1,000 small paths to file://: nixpush vs nix copy vs dump|zstd", runCopySuite},
}

// bench is what every suite gets: the options and the shared setup.
type bench struct {
	runs int
	work *workspace
	bin  string // the nixpush binary built for this run
}

func main() {
	runs := flag.Int("runs", 3, "timed runs per tool and input (median and min are reported)")
	workDir := flag.String("work", "/tmp/nixpush-bench", "work dir caching the store and inputs between runs")
	write := flag.Bool("write", false, "also rewrite docs/benchmarks.md with the results")
	suiteList := flag.String("suite", "copy", "comma-separated suites to run, or all:\n"+suiteHelp())
	flag.Parse()
	if flag.NArg() > 0 || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	selected, err := selectSuites(*suiteList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, selected, *runs, *workDir, *write); err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, selected []suite, runs int, workDir string, write bool) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	p := &page{
		Command: strings.Join(append([]string{"go run ./bench"}, os.Args[1:]...), " "),
		Date:    time.Now(),
		Machine: describeMachine(ctx, root),
		Runs:    runs,
	}
	logf("building nixpush")
	bin, err := buildNixpush(ctx, root)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))
	w, err := openWorkspace(ctx, workDir)
	if err != nil {
		return err
	}
	b := &bench{runs: runs, work: w, bin: bin}
	for _, s := range selected {
		logf("suite %s", s.name)
		r, err := s.run(ctx, b)
		if err != nil {
			return fmt.Errorf("suite %s: %w", s.name, err)
		}
		p.Reports = append(p.Reports, r)
	}
	text := p.markdown()
	fmt.Print(text)
	if write {
		doc := filepath.Join(root, "docs", "benchmarks.md")
		if err := writeDoc(doc, text); err != nil {
			return err
		}
		logf("wrote %s", doc)
	}
	return nil
}

func selectSuites(list string) ([]suite, error) {
	if list == "all" {
		return suites, nil
	}
	var out []suite
	for name := range strings.SplitSeq(list, ",") {
		i := slices.IndexFunc(suites, func(s suite) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown suite %q (have: %s)", name, suiteNames())
		}
		out = append(out, suites[i])
	}
	if len(out) == 0 {
		return nil, errors.New("no suite selected")
	}
	return out, nil
}

func suiteNames() string {
	var names []string
	for _, s := range suites {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

func suiteHelp() string {
	var b strings.Builder
	for _, s := range suites {
		fmt.Fprintf(&b, "  %s: %s\n", s.name, s.summary)
	}
	return b.String()
}

// logf reports progress on stderr; stdout carries only the Markdown.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
