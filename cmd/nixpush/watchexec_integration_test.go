package main

// Integration tests of watch-exec (run a command, push what it builds,
// exit with its code) and enqueue (the post-build-hook), with real Nix
// building into private stores and real Nix substituting from the cache.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"nixpush/internal/nixtest"
)

// TestWatchExecPushesWhatCommandBuilds wraps a nix-build: when watch-exec
// returns, everything the build made valid is in the cache, signed, and
// substitutable; what was built before the command started is not.
func TestWatchExecPushesWhatCommandBuilds(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-1")
	before := wxBuiltOutputs(t, r.store, r.store.Build(t, wxExpr("wxbefore", 2)))

	res := r.watchExec("", nil, r.nixBuildArgv(wxExpr("wx", 5))...)
	if res.code != 0 {
		t.Fatalf("watch-exec nix-build: %s", res)
	}
	printed := strings.Fields(res.stdout) // nix-build's own stdout, passed through
	if len(printed) != 3 {
		t.Fatalf("nix-build printed %q, want dep, fib-5 and top", printed)
	}
	built := wxBuiltOutputs(t, r.store, printed)
	if len(built) != 6+2 {
		t.Fatalf("the build made %q, want fib-0..5, dep and top", built)
	}
	summary := regexp.MustCompile(fmt.Sprintf(`(?m)^nixpush: pushed %d paths, \d+\.\d MiB, of %d new; 0 not pushed$`,
		len(built), len(built)))
	if !summary.MatchString(res.stderr) {
		t.Errorf("stderr has no summary saying all %d new paths were pushed:\n%s", len(built), res.stderr)
	}
	for _, p := range before {
		if _, err := os.Stat(filepath.Join(r.cache, hashPart(p)+".narinfo")); err == nil {
			t.Errorf("%s was built before the command started, yet pushed", p)
		}
	}
	r.wantPushed(built)
	// Nothing from before even reached the queue.
	wantQueue(t, r.stateDir, built, "done")
}

// TestWatchExecExitCodes: watch-exec exits as a shell reports its command.
func TestWatchExecExitCodes(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-codes")
	notExec := filepath.Join(t.TempDir(), "not-executable")
	writeFile(t, notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644)
	missing := filepath.Join(t.TempDir(), "no-such-command")
	for _, tc := range []struct {
		name string
		argv []string
		code int
	}{
		{"exit 0", []string{"sh", "-c", "exit 0"}, 0},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		{"exit 255", []string{"sh", "-c", "exit 255"}, 255},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"missing binary", []string{missing}, 127},
		{"missing binary in PATH", []string{"nixpush-test-no-such-command"}, 127},
		{"not executable", []string{notExec}, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCmd(t, binCmd(t, r.watchExecArgs(nil, tc.argv...)...), "")
			if res.code != tc.code || res.stdout != "" {
				t.Errorf("watch-exec -- %q: want exit %d and empty stdout, got %s", tc.argv, tc.code, res)
			}
			if tc.code == 127 && !strings.Contains(res.stderr, tc.argv[0]) {
				t.Errorf("watch-exec -- %q: stderr does not name the command:\n%s", tc.argv, res.stderr)
			}
		})
	}
}

// TestWatchExecForwardsSignals sends a signal to the nixpush process alone
// (not its process group): the child gets it, handles it, and nixpush
// exits with the child's code.
func TestWatchExecForwardsSignals(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-signals")
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
		code int
	}{
		{syscall.SIGINT, "INT", 7},
		{syscall.SIGTERM, "TERM", 8},
		{syscall.SIGHUP, "HUP", 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
			script := fmt.Sprintf(`trap 'echo got-%s > %s; exit %d' %s; echo ready > %s; while :; do sleep 0.05; done`,
				tc.name, got, tc.code, tc.name, ready)
			p := startProc(t, "watch-exec", procEnv(t), r.watchExecArgs(nil, "sh", "-c", script)...)
			p.waitFor(time.Minute, "the command to be ready", fileHolds(ready, "ready\n"))
			p.signal(tc.sig)
			if code := p.wait(time.Minute); code != tc.code {
				t.Errorf("after SIG%s nixpush ended with %d; want exit %d (the child's)", tc.name, code, tc.code)
			}
			if b, err := os.ReadFile(got); string(b) != "got-"+tc.name+"\n" {
				t.Errorf("the child's trap did not run: %s: %q, %v", got, b, err)
			}
		})
	}
}

// TestWatchExecKilledTakesChildAlong: when nixpush dies of SIGKILL, the
// kernel sends its child SIGTERM, so the command is never left running.
func TestWatchExecKilledTakesChildAlong(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-sigkill")
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	script := fmt.Sprintf(`trap 'echo got-TERM > %s; exit 1' TERM; echo ready > %s; while :; do sleep 0.05; done`, got, ready)
	p := startProc(t, "watch-exec", procEnv(t), r.watchExecArgs(nil, "sh", "-c", script)...)
	p.waitFor(time.Minute, "the command to be ready", fileHolds(ready, "ready\n"))
	p.kill()
	pollUntil(t, time.Minute, "the command to get SIGTERM", fileHolds(got, "got-TERM\n"))
}

// TestWatchExecSIGINTDuringDrain: once the command has exited, the first
// SIGINT is nixpush's own: it stops waiting for uploads (the cache's disk
// is full, --drain-timeout is an hour), leaves the paths queued, and exits
// with the command's code.
func TestWatchExecSIGINTDuringDrain(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-int-drain")
	fullCache(t, r.cache)
	built := filepath.Join(t.TempDir(), "built")
	argv := append([]string{"sh", "-c", fmt.Sprintf(`"$@" || exit 1; echo built > %s; exit 0`, built), "sh"},
		r.nixBuildArgv(wxExpr("wxintdrain", 1))...)
	p := startProc(t, "watch-exec", procEnv(t), r.watchExecArgs([]string{"--drain-timeout", "1h", "--max-attempts", "100"}, argv...)...)
	p.waitFor(time.Minute, "the build to end", fileHolds(built, "built\n"))
	// The drainer logs each pause of the outage, and pauses last a second
	// or more: of two more pause logs after the command's last act, the
	// second comes from the wait after the command, not from during it.
	const pauseLog = "cache failing, pausing uploads"
	n := strings.Count(p.stderr.String(), pauseLog)
	p.waitFor(time.Minute, "two more outage pauses", func() bool { return strings.Count(p.stderr.String(), pauseLog) >= n+2 })
	signalled := time.Now()
	p.signal(syscall.SIGINT)
	code := p.wait(time.Minute)
	if took := time.Since(signalled); took > 15*time.Second {
		t.Errorf("nixpush took %s to stop waiting after SIGINT", took)
	}
	if code != 0 {
		t.Fatalf("after SIGINT in the wait for uploads nixpush ended with %d; want 0, the command's code", code)
	}
	paths := wxBuiltOutputs(t, r.store, strings.Fields(p.stdout.String()))
	if len(paths) != 1+2 { // fib 1 needs no fib 0
		t.Fatalf("the build made %q, want fib-1, dep and top", paths)
	}
	if !strings.Contains(p.stderr.String(), "they stay queued in "+r.stateDir) {
		t.Errorf("stderr does not say the paths stay queued:\n%s", &p.stderr)
	}
	wantQueue(t, r.stateDir, paths, "pending")
}

// TestWatchExecSIGINTWhileUploadInFlight sends SIGINT right after the
// command has exited while an upload it started is still running (xz on
// incompressible data is slow). The wait for uploads has begun, so the
// signal must stop it like any SIGINT in the wait: exit with the
// command's code, the path left queued (--shutdown-timeout 0: in-flight
// uploads are abandoned at once).
func TestWatchExecSIGINTWhileUploadInFlight(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-int-inflight")
	dir := t.TempDir()
	big := filepath.Join(dir, "wx-inflight")
	writeFile(t, filepath.Join(big, "data"), randomBytes(rand.NewChaCha8([32]byte{7}), 4<<20), 0o644)
	marker, fifo := filepath.Join(dir, "pid"), filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The command adds the path, says its pid, and exits when told.
	script := fmt.Sprintf(`nix-store --store %s --add %s || exit 1; echo $$ > %s.tmp && mv %s.tmp %s; read x < %s`,
		shQuote(r.store.Root), shQuote(big), marker, marker, marker, fifo)
	flags := []string{"--compression", "xz", "--shutdown-timeout", "0", "--drain-timeout", "1m"}
	p := startProc(t, "watch-exec", procEnv(t), r.watchExecArgs(flags, "sh", "-c", script)...)
	var pid []byte // the command's, once it has added the path
	p.waitFor(time.Minute, "the command to add the path", func() bool {
		pid, _ = os.ReadFile(marker) // written by rename, so complete
		return len(pid) > 0
	})
	path := strings.TrimSpace(p.stdout.String())
	p.waitFor(time.Minute, "the NAR upload to start", func() bool { return p.narInProgress(r.cache) >= 0 })
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No event tells a non-parent that a process was reaped: /proc does.
	p.waitFor(30*time.Second, "the command to be reaped", func() bool {
		_, err := os.Stat("/proc/" + strings.TrimSpace(string(pid)))
		return errors.Is(err, os.ErrNotExist)
	})
	p.signal(syscall.SIGINT)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("SIGINT while the last upload ran: nixpush ended with %d; want exit 0 (the command's), "+
			"the upload abandoned and the path left queued", code)
	}
	if !strings.Contains(p.stderr.String(), "they stay queued in "+r.stateDir) {
		t.Errorf("SIGINT did not stop the wait: stderr does not say %s stays queued:\n%s", path, &p.stderr)
	}
	wantQueue(t, r.stateDir, []string{path}, "pending")
}

// TestWatchExecStdioPassThrough runs the same command with and without
// watch-exec: stdout is byte for byte the same, stdin reaches the child,
// and nixpush's own messages go to stderr only.
func TestWatchExecStdioPassThrough(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-stdio")
	const stdin = "line from stdin\n"
	script := `cat; seq 1 20000; printf '\000\001\377'; echo child-stderr >&2`

	direct := exec.CommandContext(t.Context(), "sh", "-c", script)
	direct.Env = procEnv(t)
	plain := runCmd(t, direct, stdin)
	if plain.code != 0 || plain.stderr != "child-stderr\n" ||
		!strings.HasPrefix(plain.stdout, stdin+"1\n2\n") || !strings.HasSuffix(plain.stdout, "20000\n\x00\x01\xff") {
		t.Fatalf("the command on its own: %s", plain)
	}

	res := r.watchExec(stdin, nil, "sh", "-c", script)
	if res.code != 0 {
		t.Fatalf("watch-exec: %s", res)
	}
	if res.stdout != plain.stdout {
		t.Errorf("stdout through watch-exec (%d bytes) differs from the command's own (%d bytes); first difference at byte %d",
			len(res.stdout), len(plain.stdout), firstDiff(res.stdout, plain.stdout))
	}
	if !strings.Contains(res.stderr, "child-stderr\n") {
		t.Errorf("the child's stderr did not come through:\n%s", res.stderr)
	}
	// nixpush did say something, and said it on stderr.
	if !strings.Contains(res.stderr, "nixpush: pushed 0 paths") {
		t.Errorf("no nixpush summary on stderr:\n%s", res.stderr)
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestWatchExecCacheFull builds while the cache's disk is full: watch-exec
// waits --drain-timeout, then exits with the command's code (or 86 with
// --fail-on-push-error when the command succeeded), the built paths stay
// queued, and push --drain pushes them once there is space again.
func TestWatchExecCacheFull(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-full")
	junk := fullCache(t, r.cache)
	// Enough attempts that the outage cannot fail a path within the test:
	// what is checked is that it stays queued, not the give-up policy.
	flags := []string{"--drain-timeout", "3s", "--max-attempts", "100"}
	// One after another: watch-exec pushes every path that becomes valid
	// while its command runs, whoever built it.
	var all []string
	for _, tc := range []struct {
		name   string
		prefix string
		flags  []string
		exit   int // of the child
		code   int // of nixpush
	}{
		{"plain", "wxfulla", nil, 0, 0},
		{"fail-on-push-error", "wxfullb", []string{"--fail-on-push-error"}, 0, exitCodePushFailed},
		{"fail-on-push-error, command failed", "wxfullc", []string{"--fail-on-push-error"}, 5, 5},
	} {
		argv := append([]string{"sh", "-c", fmt.Sprintf(`"$@" || exit 1; exit %d`, tc.exit), "sh"},
			r.nixBuildArgv(wxExpr(tc.prefix, 2))...)
		start := time.Now()
		res := r.watchExec("", append(slices.Clone(flags), tc.flags...), argv...)
		took := time.Since(start)
		t.Logf("%s: watch-exec took %s", tc.name, took)
		if res.code != tc.code {
			t.Fatalf("%s: watch-exec exit %d, want %d:\n%s", tc.name, res.code, tc.code, res)
		}
		if took > 20*time.Second {
			t.Errorf("%s: watch-exec took %s with --drain-timeout 3s", tc.name, took)
		}
		built := wxBuiltOutputs(t, r.store, strings.Fields(res.stdout))
		if len(built) != 3+2 {
			t.Fatalf("%s: the build made %q, want fib-0..2, dep and top", tc.name, built)
		}
		if !strings.Contains(res.stderr, fmt.Sprintf("of %d new; %d not pushed", len(built), len(built))) {
			t.Errorf("%s: stderr does not say all %d paths were not pushed:\n%s", tc.name, len(built), res.stderr)
		}
		for _, p := range built {
			if !strings.Contains(res.stderr, " "+p+":") {
				t.Errorf("%s: stderr does not list unpushed %s:\n%s", tc.name, p, res.stderr)
			}
		}
		all = append(all, built...)
	}
	if narinfos, _ := filepath.Glob(filepath.Join(r.cache, "*.narinfo")); len(narinfos) != 0 {
		t.Fatalf("narinfos written to a full disk: %q", narinfos)
	}
	wantQueue(t, r.stateDir, all, "pending")
	st := r.status()
	if st.Pending != len(all) || st.Uploading+st.Done+st.Failed+st.Skipped != 0 {
		t.Errorf("status --json: %+v, want %d pending and nothing else", st, len(all))
	}
	enospc := false
	for _, q := range st.Queues {
		for _, it := range q.Retrying {
			enospc = enospc || strings.Contains(it.Error, "no space left on device")
		}
	}
	if !enospc {
		t.Errorf("status --json names no path retrying after ENOSPC: %+v", st)
	}

	// Space again: push --drain finishes what watch-exec left.
	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if res := r.push("", "--drain"); res.code != 0 {
		t.Fatalf("push --drain: %s", res)
	}
	t.Logf("push --drain took %s (it waits out the retry delays)", time.Since(start))
	r.wantPushed(all)
	wantQueue(t, r.stateDir, all, "done")
}

// TestWatchExecFailOnPushErrorOwnPathsOnly: --fail-on-push-error is about
// what the command built. A command that builds nothing has nothing
// unpushed, whatever other runs left failed in the cache's queue.
func TestWatchExecFailOnPushErrorOwnPathsOnly(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "watch-exec-own-only")
	other := r.store.Build(t, nixtest.WithReference("wxother"))
	fullCache(t, r.cache)
	// An earlier push fails on the full disk and gives up at once.
	push := r.push("", "--max-attempts", "1", other[1])
	if push.code != 1 {
		t.Fatalf("push to a full disk: want exit 1, got %s", push)
	}
	wantQueue(t, r.stateDir, other, "failed")

	res := r.watchExec("", []string{"--fail-on-push-error", "--drain-timeout", "3s"}, "sh", "-c", "exit 0")
	if res.code != 0 || !strings.Contains(res.stderr, "of 0 new; 0 not pushed") {
		t.Errorf("watch-exec --fail-on-push-error -- sh -c 'exit 0' (builds nothing) with %d failed paths of an earlier push "+
			"in the queue: want exit 0 and \"of 0 new; 0 not pushed\", got %s", len(other), res)
	}
	for _, p := range other {
		if strings.Contains(res.stderr, p) {
			t.Errorf("watch-exec reports %s, which its command did not build, as not pushed", p)
		}
	}
}

// TestEnqueuePostBuildHook runs nixpush enqueue as Nix's post-build-hook:
// Nix 2.8 gives it an empty $OUT_PATHS, so it finds the outputs of
// $DRV_PATH in the Nix DB. The outputs wait in the queue (nothing is
// pushed by the hook) until push --drain pushes them.
func TestEnqueuePostBuildHook(t *testing.T) {
	t.Parallel()
	r := newEnv(t, "enqueue-hook")
	dir := t.TempDir()
	hook, log := filepath.Join(dir, "hook.sh"), filepath.Join(dir, "hook.log")
	// One line per run: DRV_PATH, [OUT_PATHS], enqueue's exit code, its time in ns.
	writeFile(t, hook, []byte(fmt.Sprintf(`#!/bin/sh
start=$(date +%%s%%N)
%s enqueue --store %s --state-dir %s --to %s
rc=$?
echo "$DRV_PATH [$OUT_PATHS] $rc $(( $(date +%%s%%N) - start ))" >> %s
exit $rc
`, shQuote(nixpushBin), shQuote(r.store.Root), shQuote(r.stateDir), shQuote(r.url), shQuote(log))), 0o755)

	build := exec.CommandContext(t.Context(), "nix-build",
		r.nixBuildArgv(wxExpr("wxhook", 3), "--option", "post-build-hook", hook)[1:]...)
	build.Env = procEnv(t)
	res := runCmd(t, build, "")
	if res.code != 0 {
		t.Fatalf("nix-build with the hook: %s", res)
	}
	built := wxBuiltOutputs(t, r.store, strings.Fields(res.stdout))
	if len(built) != 4+2 {
		t.Fatalf("the build made %q, want fib-0..3, dep and top", built)
	}

	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("the hook never ran: %v", err)
	}
	var hookDrvs, wantDrvs []string
	for _, line := range readLines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 || f[len(f)-2] != "0" {
			t.Errorf("hook run %q: enqueue failed", line)
			continue
		}
		hookDrvs = append(hookDrvs, f[0])
		t.Logf("enqueue for %s took %s ns", f[0], f[len(f)-1])
	}
	for _, p := range built {
		wantDrvs = append(wantDrvs, deriver(t, r.store, p))
	}
	slices.Sort(hookDrvs)
	slices.Sort(wantDrvs)
	if !slices.Equal(hookDrvs, wantDrvs) {
		t.Errorf("the hook ran for %q\nwant once per derivation built: %q", hookDrvs, wantDrvs)
	}

	// Queued, not pushed.
	wantQueue(t, r.stateDir, built, "pending")
	if narinfos, _ := filepath.Glob(filepath.Join(r.cache, "*.narinfo")); len(narinfos) != 0 {
		t.Errorf("enqueue pushed: %q", narinfos)
	}
	if res := r.push("", "--drain"); res.code != 0 {
		t.Fatalf("push --drain: %s", res)
	}
	r.wantPushed(built)
	wantQueue(t, r.stateDir, built, "done")
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestEnqueueInput: enqueue records the paths it is given (arguments,
// $OUT_PATHS) and, given none or a bad one, fails having written nothing.
// Not parallel: $OUT_PATHS and $DRV_PATH are set in the test process.
func TestEnqueueInput(t *testing.T) {
	s := nixtest.NewStore(t)
	// Paths are checked by form only, so they need not exist.
	p1 := "/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-wx-one"
	p2 := "/nix/store/1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-wx-two"
	url := "file://" + filepath.Join(t.TempDir(), "cache")
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int      // -1: any failure
		want []string // queued, on success
	}{
		{"arguments", []string{"--to", url, p1, p2}, nil, 0, []string{p1, p2}},
		{"OUT_PATHS", []string{"--to", url}, []string{"OUT_PATHS=" + p1 + " " + p2}, 0, []string{p1, p2}},
		{"no paths", []string{"--to", url}, nil, 2, nil},
		{"empty OUT_PATHS", []string{"--to", url}, []string{"OUT_PATHS= "}, 2, nil},
		{"no --to", []string{p1}, nil, 2, nil},
		{"not a store path", []string{"--to", url, "/tmp/not-a-store-path"}, nil, -1, nil},
		{"bad path after a good one", []string{"--to", url, p1, "/etc/passwd"}, nil, -1, nil},
		{"bad path in OUT_PATHS", []string{"--to", url}, []string{"OUT_PATHS=" + p1 + " /etc/passwd"}, -1, nil},
		{"relative", []string{"--to", url, strings.TrimPrefix(p1, "/")}, nil, -1, nil},
		{"store dir", []string{"--to", url, "/nix/store"}, nil, -1, nil},
		{"file inside a store path", []string{"--to", url, p1 + "/bin/sh"}, nil, -1, nil},
		{"bad hash", []string{"--to", url, "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-wx"}, nil, -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			for _, kv := range tc.env {
				name, value, _ := strings.Cut(kv, "=")
				t.Setenv(name, value)
			}
			res := runMain(t, "", append([]string{"enqueue", "--store", s.Root, "--state-dir", state}, tc.args...)...)
			if tc.code == 0 {
				if res.code != 0 || res.stdout != "" || res.stderr != "" {
					t.Fatalf("enqueue: want exit 0 and no output, got %s", res)
				}
				wantQueue(t, state, tc.want, "pending")
				return
			}
			if res.code == 0 || (tc.code > 0 && res.code != tc.code) || res.stdout != "" ||
				!strings.HasPrefix(res.stderr, "nixpush: error: ") && !strings.Contains(res.stderr, "\nnixpush: error: ") {
				t.Errorf("enqueue: want exit %d (-1: any failure), an error on stderr and nothing on stdout, got %s", tc.code, res)
			}
			if files := dirEntries(t, state); len(files) != 0 {
				t.Errorf("a failed enqueue wrote %q", files)
			}
		})
	}
}

// wxExpr is an attrset { dep; fib; top; }: FibChain(prefix, n) and
// WithReference(prefix), so a build yields independent outputs, build-time
// only dependencies and a run-time reference. nix-build prints dep, fib-n, top.
func wxExpr(prefix string, n int) string {
	return fmt.Sprintf("let r = %s; in { fib = (%s); inherit (r) dep top; }",
		nixtest.WithReference(prefix), nixtest.FibChain(prefix, n))
}

// wxBuiltOutputs returns every output (not .drv) in the build closures of
// the derivations that produced printed, i.e. everything a nix-build of
// them made valid: for wxExpr(p, n) the n+1 fib outputs, dep and top.
func wxBuiltOutputs(t *testing.T, s *nixtest.Store, printed []string) []string {
	t.Helper()
	var drvs []string
	for _, p := range printed {
		drvs = append(drvs, deriver(t, s, p))
	}
	out, _, err := s.Run(t, "nix-store", append([]string{"-qR", "--include-outputs"}, drvs...)...)
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, p := range strings.Fields(out) {
		if !strings.HasSuffix(p, ".drv") {
			outs = append(outs, p)
		}
	}
	slices.Sort(outs)
	return outs
}

// fileHolds is a condition for waitFor: file exists and holds want.
func fileHolds(file, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(file)
		return err == nil && string(b) == want
	}
}
