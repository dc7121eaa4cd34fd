// Command bench measures nixpush against nix copy and the machine's own
// limit on real Nix, and with -write records the figures in
// docs/benchmarks.md. Run it from the repository root: go run ./tools/bench.
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

// suites lists every suite in the order -suite all runs them, each in
// its own suite_*.go.
var suites = []suite{
	{"copy", "one push of a large tree and of 1,000 small paths to file://: nixpush vs nix copy vs dump|zstd", runCopySuite},
	{"daemon", "watch-store detection latency: nix-store --add returns → row in the queue → narinfo in the cache", runDaemonSuite},
	{"queue", "the queue at scale: enqueue 100,000 paths, then nixpush status --json on them", runQueueSuite},
	{"idle", "watch-store with nothing to do: CPU share and memory over -idle-seconds", runIdleSuite},
	{"watchexec", "watch-exec -- nix-build vs nix-build alone vs nix-build then nix copy", runWatchExecSuite},
	{"remote", "push to nginx over HTTP (nixpush vs nix copy) and to versitygw over S3: the 1,000 small paths and the large tree", runRemoteSuite},
	{"wan", "push through toxiproxy (round trip -rtt, 100 Mbit/s for big inputs) to nginx and versitygw: nixpush vs nix copy", runWanSuite},
	{"verify", "nixpush verify of a 10,000-path cache on versitygw through toxiproxy (round trip -rtt), and with one NAR deleted", runVerifySuite},
	{"scale", "synthetic stores of -scale-sizes paths: first push, re-push, daemon catch-up and new paths, verify, gc; nixpush vs nix copy", runScaleSuite},
	{"requests", "requests per path of push (new, present with and without a state dir), verify and gc, counted by a proxy, beside nix copy's", runRequestsSuite},
	{"fleet", "20 machines (processes) on one versitygw bucket behind a throttling proxy, gc and verify beside: makespan with and without throttling", runFleetSuite},
}

// bench is what every suite gets: the options and the shared setup.
type bench struct {
	runs        int
	idleSeconds int
	work        *workspace
	bin         string // the nixpush binary built for this run
	// wan suite
	rtts         []time.Duration
	wanWorkloads []string
	wanRuns      int
	// scale suite
	scaleSizes   []int
	scaleTimeout time.Duration
	scaleRuns    int
	scaleLabel   string
}

func main() {
	runs := flag.Int("runs", 3, "timed runs per tool and input (median and min are reported)")
	workDir := flag.String("work", "/tmp/nixpush-bench", "work dir caching the store and inputs between runs")
	write := flag.Bool("write", false, "also rewrite docs/benchmarks.md with the results")
	suiteList := flag.String("suite", "copy", "comma-separated suites to run, or all:\n"+suiteHelp())
	idleSeconds := flag.Int("idle-seconds", 60, "idle suite: how long to watch the idle daemon")
	prebuilt := flag.String("nixpush", "", "measure this nixpush binary instead of building ./cmd/nixpush")
	rttList := flag.String("rtt", "50", "wan and verify suites: comma-separated round trips in ms, e.g. 20,50,100 (each adds ~8 minutes at 50 ms, more at 100)")
	wanList := flag.String("wan-workloads", strings.Join(wanDefaultWorkloads, ","), "wan suite: comma-separated workloads among "+strings.Join(wanWorkloads, ", "))
	wanRuns := flag.Int("wan-runs", 1, "wan suite: timed runs per tool and workload (nix copy of 1,000 paths takes minutes)")
	scaleList := flag.String("scale-sizes", "1000,20000,100000", "scale suite: comma-separated store sizes (1000000 takes about an hour)")
	scaleTimeout := flag.Duration("scale-timeout", 10*time.Minute, "scale suite: stop a run after this long and report what it wrote")
	scaleRuns := flag.Int("scale-runs", 5, "scale suite: first pushes per tool and size, the sizes taking turns, each into a fresh cache (the medians are reported; a 20,000-path push lasts seconds, and one run can fall into a burst of the machine's noise)")
	scaleLabel := flag.String("scale-label", "this tree", "scale suite: what the measured nixpush is (the report's title: before and after are two sections)")
	flag.Parse()
	if flag.NArg() > 0 || *runs < 1 || *idleSeconds < 1 || *wanRuns < 1 {
		flag.Usage()
		os.Exit(2)
	}
	selected, err := selectSuites(*suiteList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	b := &bench{runs: *runs, idleSeconds: *idleSeconds, bin: *prebuilt, wanRuns: *wanRuns,
		scaleTimeout: *scaleTimeout, scaleRuns: max(*scaleRuns, 1), scaleLabel: *scaleLabel}
	if b.rtts, err = parseRTTs(*rttList); err == nil {
		b.wanWorkloads, err = parseWorkloads(*wanList)
	}
	if err == nil {
		b.scaleSizes, err = parseSizes(*scaleList)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, selected, b, *workDir, *write); err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		os.Exit(1)
	}
}

// run runs the selected suites with b's options, filling in b's
// workspace and binary.
func run(ctx context.Context, selected []suite, b *bench, workDir string, write bool) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	command := strings.Join(append([]string{"go run ./tools/bench"}, os.Args[1:]...), " ")
	machine := describeMachine(ctx, root)
	p := &page{}
	switch {
	case b.bin != "":
		// A given binary (-nixpush) need not match the tree: say so.
		if b.bin, err = filepath.Abs(b.bin); err != nil {
			return err
		}
		machine.Revision = "binary " + b.bin + " (-nixpush), tree " + machine.Revision
	default:
		logf("building nixpush")
		bin, err := buildNixpush(ctx, root)
		if err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Dir(bin))
		b.bin = bin
	}
	w, err := openWorkspace(ctx, workDir)
	if err != nil {
		return err
	}
	b.work = w
	for _, s := range selected {
		logf("suite %s", s.name)
		date, loadStart := time.Now(), loadAverage()
		r, err := s.run(ctx, b)
		if err != nil {
			return fmt.Errorf("suite %s: %w", s.name, err)
		}
		r.Command, r.Date, r.Machine, r.LoadStart, r.LoadEnd = command, date, machine, loadStart, loadAverage()
		p.Reports = append(p.Reports, r)
	}
	fmt.Print(p.markdown())
	if write {
		doc := filepath.Join(root, "docs", "benchmarks.md")
		if err := updateDoc(doc, p.Reports); err != nil {
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
