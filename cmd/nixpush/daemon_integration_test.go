package main

// Integration tests of `nixpush watch-store`, the daemon: real Nix builds
// into a private store while the real binary runs in the background, and
// the tests watch the cache, `status --json`, the daemon's log and its
// queue file (harness_test.go). Daemons are killed at cleanup.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"nixpush/internal/nixtest"
)

// TestDaemonPushesNewPaths: paths built while the daemon runs, and their
// closures, reach the cache and substitute with the public key; paths
// valid before its first start are not pushed (no --backfill).
func TestDaemonPushesNewPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-new-1")
	early := fibOutputs(t, e.store, "early", 2)

	e.startDaemon("daemon")
	late := fibOutputs(t, e.store, "late", 6)
	// Only top is asked for; dep comes in as its reference.
	top := e.store.Build(t, "("+nixtest.WithReference("late")+").top")[0]
	dep := e.store.Closure(t, top)
	all := slices.Concat(late, dep)
	if len(dep) != 2 {
		t.Fatalf("closure of top = %q, want {dep, top}", dep)
	}

	pollUntil(t, 30*time.Second, "every new path's narinfo", func() bool { return e.allPushed(all) })
	pollUntil(t, 10*time.Second, "every new path's row to be done", func() bool { return e.allDone(all) })
	infos := checkCache(t, e.cache)
	if got := sortedKeys(infos); !slices.Equal(got, sortedCopy(all)) {
		t.Errorf("narinfos in the cache: %q\nwant exactly the paths built after the start: %q", got, sortedCopy(all))
	}
	// The paths built before the start never even reach the queue.
	rows := e.rows()
	if got := sortedKeys(rows); !slices.Equal(got, sortedCopy(all)) {
		t.Errorf("queue rows: %q\nwant exactly %q", got, sortedCopy(all))
	}
	for _, p := range early {
		if e.hasNarInfo(p) {
			t.Errorf("%s was valid before the daemon first started, but it was pushed", p)
		}
	}
	for _, p := range all {
		if sigs := infos[p].sigs; len(sigs) != 1 || !strings.HasPrefix(sigs[0], "daemon-new-1:") {
			t.Errorf("%s: Sig %q, want one by daemon-new-1", p, sigs)
		}
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	out, err := nixtest.Substitute(t, fresh, e.url, e.pub, append(slices.Clone(late), top)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, e.url, all)
	sameNARs(t, e.store, fresh, all)
}

// TestDaemonResumesAfterSIGKILL: what is built while the daemon is dead is
// pushed when it comes back (the high-water mark is in the queue file),
// and what it pushed before is not pushed again.
func TestDaemonResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-resume-1")
	d1 := e.startDaemon("first", "--log-level", "debug")
	before := fibOutputs(t, e.store, "before", 2)
	d1.waitFor(30*time.Second, "the first paths to be pushed", func() bool { return e.allPushed(before) && e.allDone(before) })
	d1.kill()

	down := fibOutputs(t, e.store, "down", 3)
	down = append(down, e.store.Build(t, nixtest.WithReference("down"))...)
	for _, p := range down {
		if e.hasNarInfo(p) {
			t.Fatalf("%s pushed while no daemon ran", p)
		}
	}

	d2 := e.startDaemon("second", "--log-level", "debug")
	d2.waitFor(30*time.Second, "the paths built while the daemon was down", func() bool {
		return e.allPushed(down) && e.allDone(down)
	})
	all := slices.Concat(before, down)
	if got := sortedKeys(checkCache(t, e.cache)); !slices.Equal(got, sortedCopy(all)) {
		t.Errorf("narinfos: %q\nwant %q", got, sortedCopy(all))
	}
	if got := sortedKeys(e.rows()); !slices.Equal(got, sortedCopy(all)) {
		t.Errorf("queue rows: %q\nwant %q", got, sortedCopy(all))
	}
	for p, n := range d2.pushed() {
		if !slices.Contains(down, p) || n != 1 {
			t.Errorf("the restarted daemon pushed %s %d times; want each path built while it was down once, nothing else", p, n)
		}
	}
	if got := len(d2.pushed()); got != len(down) {
		t.Errorf("the restarted daemon pushed %d paths, want %d", got, len(down))
	}
}

// TestDaemonSIGKILLDuringLargeUpload kills the daemon while it writes a
// large NAR and checks that the restarted daemon pushes the path exactly
// once and leaves a consistent cache. xz is slow, so the kill lands
// mid-upload. The path is 2 MiB rather than the ~150 MiB one would like:
// nixpush's pure-Go xz manages ~0.3-1.5 MB/s on random data here (150 MiB
// took 8 minutes), and the restart has to compress it again.
func TestDaemonSIGKILLDuringLargeUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-kill-1")
	e.to = e.url + "?compression=xz"
	bigDir := filepath.Join(t.TempDir(), "daemon-big")
	rnd := rand.NewChaCha8([32]byte{7})
	for i := range 2 {
		writeFile(t, filepath.Join(bigDir, fmt.Sprintf("f%d", i)), randomBytes(rnd, 1<<20), 0o644)
	}

	d1 := e.startDaemon("first", "--log-level", "debug")
	big := addDirs(t, e.store, bigDir)[0]
	d1.waitFor(60*time.Second, "the daemon to write the big NAR", func() bool { return d1.narInProgress(e.cache) >= 0 })
	d1.kill()
	if e.hasNarInfo(big) {
		t.Fatalf("%s was pushed before the kill: the test interrupted nothing", big)
	}
	if r := e.rows()[big]; r.State != "uploading" {
		t.Fatalf("row of %s after the kill: %+v, want uploading", big, r)
	}

	d2 := e.startDaemon("second", "--log-level", "debug")
	d2.waitFor(90*time.Second, "the big path to be pushed after the restart", func() bool {
		return e.hasNarInfo(big) && e.allDone([]string{big})
	})
	// The killed attempt counts once, and its error is cleared by success.
	if r := e.rows()[big]; r.State != "done" || r.Attempts != 1 || r.LastError != "" {
		t.Errorf("row of %s: %+v, want done after 1 interrupted attempt, no error", big, r)
	}
	if l := d2.logsWith("requeued uploads interrupted by a crash"); len(l) != 1 || l[0].Count != 1 {
		t.Errorf("restart log lines about requeued uploads: %v, want one with count 1", l)
	}
	if n := d1.pushed()[big]; n != 0 {
		t.Errorf("the killed daemon logged %d pushes of %s", n, big)
	}
	if n := d2.pushed()[big]; n != 1 {
		t.Errorf("the restarted daemon pushed %s %d times, want 1", big, n)
	}
	infos := checkCache(t, e.cache)
	if got := sortedKeys(infos); !slices.Equal(got, []string{big}) {
		t.Errorf("narinfos: %q, want only %s", got, big)
	}
	nars, tmp := e.narFiles()
	if len(nars) != 1 || nars[0] != infos[big].url {
		t.Errorf("NAR objects in the cache: %q, want exactly %s", nars, infos[big].url)
	}
	// Unnamed temp files vanish with the process; named ones are the
	// fallback where O_TMPFILE is unsupported, not on this file system.
	if len(tmp) != 0 {
		t.Errorf("temp files left in the cache: %q", tmp)
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	out, err := nixtest.Substitute(t, fresh, e.url, e.pub, big)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, e.url, []string{big})
}

// TestDaemonCacheFullThenFixed: with the cache's file system full, new
// paths wait as pending with growing attempts and a future next attempt,
// status says why, the daemon keeps running and logs about one line per
// backoff interval; once space is freed the queue drains without a restart.
func TestDaemonCacheFullThenFixed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-full-1")
	fill := mountDisk(t, e.cache, 200<<10)
	d := e.startDaemon("daemon")
	if _, err := os.Stat(filepath.Join(e.cache, "nix-cache-info")); err != nil {
		t.Fatalf("daemon started without writing nix-cache-info: %v", err)
	}
	junk := fill()

	start := time.Now()
	paths := fibOutputs(t, e.store, "full", 7)
	var st statusReport
	d.waitFor(30*time.Second, "every path to be retried twice", func() bool {
		st = e.status()
		retrying := problemsOf(st.Queues[0].Retrying, paths)
		if st.Pending != len(paths) || len(retrying) != len(paths) {
			return false
		}
		for _, p := range retrying {
			if p.Attempts < 2 {
				return false
			}
		}
		return true
	})
	now := time.Now()
	elapsed := now.Sub(start)
	totalAttempts, maxAttempts, future := 0, 0, 0
	for _, p := range st.Queues[0].Retrying {
		totalAttempts += p.Attempts
		maxAttempts = max(maxAttempts, p.Attempts)
		if !strings.Contains(p.Error, "no space left on device") {
			t.Errorf("retrying %s: error %q does not say the disk is full", p.Path, p.Error)
		}
		if p.NextAttempt == nil {
			t.Errorf("retrying %s has no next attempt", p.Path)
		} else if p.NextAttempt.After(now.Add(-time.Second)) {
			future++
		}
	}
	if future == 0 {
		t.Errorf("no retrying path has its next attempt ahead: %+v", st.Queues[0].Retrying)
	}
	if st.Done != 0 || st.Failed != 0 || st.Uploading != 0 {
		t.Errorf("status while the cache is full: %+v, want all pending", st)
	}
	// One line per backoff interval (the first is ~2 s, none is under 1 s),
	// not one per path per try.
	var problems []string
	for _, l := range d.logs() {
		if l.Level == "error" || l.Level == "warn" || l.Level == "" {
			problems = append(problems, l.raw)
		}
	}
	if len(problems) == 0 {
		t.Errorf("the daemon logged nothing while every upload failed")
	}
	if limit := 1 + int(elapsed/time.Second); len(problems) > limit || len(problems) >= totalAttempts {
		t.Errorf("%d warning/error lines in %s for %d failed tries (at most %d of a path): want about one per backoff interval, at most %d:\n%s",
			len(problems), elapsed.Round(time.Millisecond), totalAttempts, maxAttempts, limit, strings.Join(problems, "\n"))
	}
	t.Logf("%s: %d failed tries, %d problem lines", elapsed.Round(time.Millisecond), totalAttempts, len(problems))

	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	d.waitFor(30*time.Second, "the queue to drain once space is free", func() bool {
		st = e.status()
		return st.Pending == 0 && st.Uploading == 0 && st.Done == len(paths)
	})
	if st.Failed != 0 || len(st.Queues[0].Retrying) != 0 {
		t.Errorf("status after recovery: %+v", st)
	}
	if got := sortedKeys(checkCache(t, e.cache)); !slices.Equal(got, sortedCopy(paths)) {
		t.Errorf("narinfos after recovery: %q\nwant %q", got, sortedCopy(paths))
	}
	if n := len(d.logsWith("cache recovered")); n != 1 {
		t.Errorf("%d \"cache recovered\" lines, want 1", n)
	}
}

// TestDaemonSkipsGarbageCollectedPath: a queued path deleted from the
// store before its upload ends skipped, with the reason, and the daemon
// carries on.
func TestDaemonSkipsGarbageCollectedPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-gc-1")
	fill := mountDisk(t, e.cache, 200<<10)
	d := e.startDaemon("daemon")
	junk := fill()

	gone := e.store.Build(t, nixtest.FibChain("gone", 0))[0]
	d.waitFor(30*time.Second, "the path to wait for a retry", func() bool {
		r := e.rows()[gone]
		return r.State == "pending" && r.Attempts >= 1
	})
	if _, _, err := e.store.Run(t, "nix-store", "--delete", gone); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	d.waitFor(30*time.Second, "the deleted path's row to settle", func() bool {
		s := e.rows()[gone].State
		return s != "pending" && s != "uploading"
	})
	r := e.rows()[gone]
	if r.State != "skipped" || !strings.Contains(r.LastError, "no longer valid") || !strings.Contains(r.LastError, "garbage-collected") {
		t.Errorf("row of the deleted path: %+v, want skipped as no longer valid (garbage-collected)", r)
	}
	if e.hasNarInfo(gone) {
		t.Errorf("the deleted path %s was pushed", gone)
	}
	if st := e.status(); st.Skipped != 1 || st.Failed != 0 || st.Pending != 0 {
		t.Errorf("status: %+v, want 1 skipped, nothing pending or failed", st)
	}

	later := e.store.Build(t, nixtest.FibChain("later", 0))[0]
	d.waitFor(30*time.Second, "a path built afterwards to be pushed", func() bool {
		return e.hasNarInfo(later) && e.allDone([]string{later})
	})
	checkCache(t, e.cache)
}

// TestDaemonTwoDaemonsShareQueue: two daemons on one state dir and cache
// push everything, and no path twice.
func TestDaemonTwoDaemonsShareQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-two-1")
	a := e.startDaemon("a", "--log-level", "debug")
	b := e.startDaemon("b", "--log-level", "debug")
	paths := fibOutputs(t, e.store, "two", 19)
	pollUntil(t, 30*time.Second, "all 20 paths to be pushed", func() bool {
		return e.allPushed(paths) && e.allDone(paths)
	})
	for _, d := range []*proc{a, b} {
		if !d.running() {
			t.Errorf("daemon %s exited: %v", d.name, d.waitErr)
		}
	}
	pa, pb := a.pushed(), b.pushed()
	for _, p := range paths {
		if n := pa[p] + pb[p]; n != 1 {
			t.Errorf("%s pushed %d times (a %d, b %d), want once", p, n, pa[p], pb[p])
		}
	}
	for p, r := range e.rows() {
		if r.State != "done" || r.Attempts != 0 || r.LastError != "" {
			t.Errorf("row of %s: %+v, want done at the first attempt", p, r)
		}
	}
	if st := e.status(); st.Done != len(paths) || len(st.Queues) != 1 {
		t.Errorf("status: %+v, want one queue with %d done", st, len(paths))
	}
	if got := sortedKeys(checkCache(t, e.cache)); !slices.Equal(got, sortedCopy(paths)) {
		t.Errorf("narinfos: %q\nwant %q", got, sortedCopy(paths))
	}
	t.Logf("daemon a pushed %d paths, b %d", len(pa), len(pb))
}

// TestDaemonSIGTERMWithUploadsInFlight: SIGTERM during an upload ends the
// daemon with status 0 within --shutdown-timeout; what it did not finish
// is pending, not uploading or lost, and the next start finishes it.
func TestDaemonSIGTERMWithUploadsInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-term-1")
	e.to = e.url + "?compression=xz"
	bigDir := filepath.Join(t.TempDir(), "daemon-term-big")
	rnd := rand.NewChaCha8([32]byte{9})
	for i := range 4 {
		writeFile(t, filepath.Join(bigDir, fmt.Sprintf("f%d", i)), randomBytes(rnd, 2<<20), 0o644)
	}
	const shutdownTimeout = time.Second

	d1 := e.startDaemon("first", "--shutdown-timeout", shutdownTimeout.String())
	big := addDirs(t, e.store, bigDir)[0]
	d1.waitFor(60*time.Second, "the big upload to start", func() bool { return d1.narInProgress(e.cache) >= 0 })
	termAt := time.Now()
	d1.signal(syscall.SIGTERM)
	select {
	case <-d1.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon still running 60 s after SIGTERM (--shutdown-timeout %s)", shutdownTimeout)
	}
	took := time.Since(termAt)
	if d1.waitErr != nil {
		t.Errorf("daemon exited with %v after SIGTERM, want status 0", d1.waitErr)
	}
	// Slack for the process to start its exit after the timeout fires.
	if took > shutdownTimeout+2*time.Second {
		t.Errorf("daemon took %s to exit after SIGTERM, want about --shutdown-timeout %s", took.Round(time.Millisecond), shutdownTimeout)
	}
	r := e.rows()[big]
	if e.hasNarInfo(big) {
		t.Errorf("the upload finished before the daemon exited (row %+v): it was not cut short", r)
	} else if r.State != "pending" || r.Attempts != 0 {
		t.Errorf("row of the unfinished path after SIGTERM: %+v, want pending with no attempt counted", r)
	}

	// zstd for the restart: the same queue (settings are not part of the
	// cache's identity), and seconds instead of xz's much longer time.
	e.to = e.url + "?compression=zstd"
	d2 := e.startDaemon("second")
	d2.waitFor(30*time.Second, "the restart to push the path", func() bool {
		return e.hasNarInfo(big) && e.allDone([]string{big})
	})
	checkCache(t, e.cache)
}

// TestDaemonStatusWhileRunning: status, text and --json, answers while the
// daemon holds the queue open, and the JSON counts are integers.
func TestDaemonStatusWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "daemon-status-1")
	d := e.startDaemon("daemon")
	p := e.store.Build(t, nixtest.FibChain("status", 0))[0]
	d.waitFor(30*time.Second, "status to show the path done", func() bool { return e.status().Done == 1 })

	raw := statusJSON(t, e.stateDir)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("status --json: %v\n%s", err, raw)
	}
	isInt := func(where string, v any) {
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			t.Errorf("status --json: %s = %#v, want an integer", where, v)
		}
	}
	counts := []string{"pending", "uploading", "done", "failed", "skipped"}
	for _, k := range counts {
		isInt(k, m[k])
	}
	queues, ok := m["queues"].([]any)
	if !ok || len(queues) != 1 {
		t.Fatalf("status --json: queues = %#v, want one queue", m["queues"])
	}
	q, _ := queues[0].(map[string]any)
	for _, k := range append(counts, "done_last_hour", "bytes_last_hour") {
		isInt("queues[0]."+k, q[k])
	}
	for _, k := range []string{"recent_failures", "retrying"} {
		if _, ok := q[k].([]any); !ok {
			t.Errorf("status --json: queues[0].%s = %#v, want an array", k, q[k])
		}
	}
	st := e.status()
	if st.Done != 1 || st.Pending+st.Uploading+st.Failed+st.Skipped != 0 || st.Queues[0].Cache != e.url {
		t.Errorf("status: %+v, want 1 done for %s", st, e.url)
	}

	out := runMain(t, "", "status", "--state-dir", e.stateDir)
	if out.code != 0 {
		t.Fatalf("nixpush status: %s", out)
	}
	if !strings.Contains(out.stdout, e.url) || !strings.Contains(out.stdout, "0 pending, 0 uploading, 1 done") {
		t.Errorf("nixpush status printed:\n%s", out.stdout)
	}
	if !d.running() {
		t.Errorf("daemon exited: %v", d.waitErr)
	}
	if !e.hasNarInfo(p) {
		t.Errorf("%s done but has no narinfo", p)
	}
}
