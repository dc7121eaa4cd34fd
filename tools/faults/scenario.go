package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scenario is one fault the suite injects while nixpush works.
type scenario struct {
	name  string
	fault string // what is done to nixpush, for the table
	run   func(ctx context.Context, r *run) error
}

// run is one scenario's execution: its scratch, the processes it started
// (all killed when it ends) and what it found.
type run struct {
	*world
	sc       scenario
	dir      string
	procs    []*proc
	checks   []string // what was checked, for the table
	notes    []string
	problems []string // a non-empty list fails the scenario
	monitors []*monitor
	cleanups []func() // run last-in first-out when the scenario ends
}

// outcome is one row of the table.
type outcome struct {
	Name, Fault, Checked, Notes string
	Pass                        bool
	Duration                    time.Duration
}

// scenarioDeadline bounds any one scenario; each process has its own,
// shorter deadline. longScenarios have bounds of their own.
const scenarioDeadline = 100 * time.Second

var longScenarios = map[string]time.Duration{"fleet-s3": 5 * time.Minute, "s3-resume-1gib": 6 * time.Minute}

func (w *world) runScenario(ctx context.Context, sc scenario) outcome {
	r := &run{world: w, sc: sc, dir: filepath.Join(w.Dir, "runs", sc.name)}
	began := time.Now()
	deadline := scenarioDeadline
	if d, ok := longScenarios[sc.name]; ok {
		deadline = d
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	err := os.MkdirAll(r.dir, 0o755)
	if err == nil {
		err = sc.run(ctx, r)
	}
	if err != nil {
		r.fail("%v", err)
	}
	for _, m := range r.monitors {
		if polls, problems := m.stop(); len(problems) > 0 {
			r.fail("cache inconsistent while running (%d polls): %s", polls, strings.Join(problems, "; "))
		}
	}
	for _, p := range r.procs {
		p.kill()
	}
	r.noteRetries()
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	o := outcome{Name: sc.name, Fault: sc.fault, Pass: len(r.problems) == 0, Duration: time.Since(began),
		Checked: strings.Join(r.checks, "; "), Notes: strings.Join(append(r.problems, r.notes...), "; ")}
	verdict := "pass"
	if !o.Pass {
		verdict = "FAIL"
	}
	logf("%-22s %s in %v", sc.name, verdict, o.Duration.Round(100*time.Millisecond))
	for _, p := range r.problems {
		logf("    FAIL: %s", p)
	}
	for _, c := range r.checks {
		logf("    checked: %s", c)
	}
	for _, n := range r.notes {
		logf("    note: %s", n)
	}
	return o
}

// addChain registers a fresh chain of n paths (kib KiB of input each),
// adds its closure to *closure and returns the chain's top path.
func (r *run) addChain(ctx context.Context, closure *[]string, n, kib int) (string, error) {
	top, err := r.chain(ctx, r.sc.name, n, kib)
	if err != nil {
		return "", err
	}
	c, err := r.closure(ctx, top)
	*closure = append(*closure, c...)
	return top, err
}

func (r *run) cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *run) fail(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}
func (r *run) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}
func (r *run) checked(s string) { r.checks = append(r.checks, s) }

// noteRetries notes how often the nixpush processes paused for a failing
// cache: evidence that the fault reached them.
func (r *run) noteRetries() {
	pauses := 0
	for _, p := range r.procs {
		if p.name != "verify" && p.name != "status" {
			pauses += strings.Count(p.output(), "cache failing, pausing uploads")
		}
	}
	if pauses > 0 {
		r.note("nixpush logged %d pauses for a failing cache (transient errors, retried)", pauses)
	}
}

// watch polls the cache in dir until the scenario ends.
func (r *run) watch(dir string) {
	r.monitors = append(r.monitors, startMonitor(dir))
	r.checked("cache consistent at every 200 ms poll")
}

// nixpush starts the nixpush binary; its output goes to DIR/name.log.
func (r *run) nixpush(name string, env []string, args ...string) (*proc, error) {
	home := filepath.Join(r.dir, "home-"+name)
	p, err := start(name, filepath.Join(r.dir, name+".log"), r.nixpushEnv(home, env...), r.Bin, args...)
	if err == nil {
		r.procs = append(r.procs, p)
	}
	return p, err
}

// nixpushWait runs nixpush to its end within deadline and returns its
// exit code; a hang is a problem of the scenario and an error.
func (r *run) nixpushWait(name string, deadline time.Duration, env []string, args ...string) (int, error) {
	p, err := r.nixpush(name, env, args...)
	if err != nil {
		return 0, err
	}
	code, err := p.wait(deadline)
	if err != nil {
		return code, err
	}
	return code, nil
}

// expectCode fails the scenario unless code is want, quoting the output.
func (r *run) expectCode(name string, code, want int) {
	if code != want {
		out := readLog(r.dir, name)
		r.fail("%s exited %d, want %d: %s", name, code, want, tail(out, 600))
		if strings.Contains(out, "read nix-cache-info") {
			r.note("nix-cache-info is read once as the pipeline is built (cache.EnsureCacheInfo, called from cmd/nixpush/pipeline.go) and a transient error there is not retried")
		}
	}
}

func readLog(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
	return string(b)
}

// settle checks the end state: the cache is consistent (read on disk and
// by nixpush verify), and every path of closure is in the cache or was
// skipped with a reason in a queue under stateDirs.
func (r *run) settle(ctx context.Context, cacheDir, cacheURL string, env []string, closure []string, stateDirs ...string) error {
	n, problems := checkCache(cacheDir, map[string][]byte{})
	for _, p := range problems {
		r.fail("cache inconsistent at the end: %s", p)
	}
	code, err := r.nixpushWait("verify", 60*time.Second, env, "verify", "--to", cacheURL, "--trusted-key", r.PubKey, "--store", r.Store)
	if err != nil {
		return err
	}
	r.expectCode("verify", code, 0)
	reasons, err := r.finalStates(ctx, stateDirs)
	if err != nil {
		return err
	}
	var lost, skipped []string
	for _, p := range closure {
		hash, _, _ := strings.Cut(strings.TrimPrefix(p, "/nix/store/"), "-")
		if _, err := os.Stat(filepath.Join(cacheDir, hash+".narinfo")); err == nil {
			continue
		}
		if why := reasons[p]; strings.HasPrefix(why, "skipped") {
			skipped = append(skipped, filepath.Base(p)+" ("+why+")")
			continue
		} else if why != "" {
			r.fail("%s not in the cache: %s", filepath.Base(p), why)
			continue
		}
		lost = append(lost, filepath.Base(p))
	}
	if len(lost) > 0 {
		r.fail("%d of %d paths neither in the cache nor skipped with a reason: %s", len(lost), len(closure), strings.Join(lost[:min(len(lost), 3)], ", "))
	}
	if len(skipped) > 0 {
		r.note("not in the cache, with a reason: %s", strings.Join(skipped, ", "))
	}
	r.checked(fmt.Sprintf("at the end: %d narinfos consistent, nixpush verify exit 0, all %d paths in the cache or skipped with a reason", n, len(closure)))
	return nil
}

// finalStates maps each path that a queue under stateDirs marks skipped
// or failed to "state: reason", read with nixpush status --json (counts)
// and the queue files themselves (per path).
func (r *run) finalStates(ctx context.Context, stateDirs []string) (map[string]string, error) {
	reasons := map[string]string{}
	for _, sd := range stateDirs {
		code, err := r.nixpushWait("status", 20*time.Second, nil, "status", "--json", "--state-dir", sd)
		if err != nil {
			return nil, err
		}
		var st struct{ Pending, Uploading, Failed, Skipped int }
		out := readLog(r.dir, "status")
		if code != 0 || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &st) != nil {
			r.fail("status --json on %s: exit %d: %s", sd, code, tail(out, 300))
			continue
		}
		if st.Pending+st.Uploading > 0 {
			r.note("after every nixpush process ended, status --json of %s still shows %d pending and %d uploading rows (their owners are dead; only watch-store's orphan recovery takes such rows back, push does not)",
				filepath.Base(sd), st.Pending, st.Uploading)
		}
		files, _ := filepath.Glob(filepath.Join(sd, "*.queue.db"))
		for _, f := range files {
			out, err := r.run(ctx, "", nil, "sqlite3", "-readonly", "-separator", "\t", f,
				"SELECT path, state, last_error FROM items WHERE state IN ('skipped','failed')")
			if err != nil {
				return nil, fmt.Errorf("read queue: %w", err)
			}
			for line := range strings.Lines(out) {
				f := strings.SplitN(strings.TrimRight(line, "\n"), "\t", 3)
				if len(f) == 3 && f[2] != "" {
					reasons[f[0]] = f[1] + ": " + f[2]
				}
			}
		}
	}
	return reasons, nil
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// countNarinfos is how many narinfos the cache in dir holds.
func countNarinfos(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	return len(names)
}
