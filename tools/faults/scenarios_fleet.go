package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nixpush/cache"
	"nixpush/internal/fleet"
	"nixpush/internal/servertest"
)

// fleetS3 is 20 machines (separate processes and state dirs) pushing
// closures that share most of their dependencies to one bucket behind a
// throttling proxy, with gc --delete every 10 s collecting an old
// generation and verify reading the bucket every 5 s.
func fleetS3(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	const machines = 20
	closures, err := fleet.Build(ctx, r.baseEnv, r.Store, r.dir, fmt.Sprintf("fleet-%d", r.seqNext()), machines, 40, 8)
	if err != nil {
		return err
	}
	old, err := r.chain(ctx, "fleet-old", 10, 16)
	if err != nil {
		return err
	}
	cfg := fleet.Config{Bin: r.Bin, Store: r.Store, SecKey: r.SecKey, PubKey: r.PubKey, Env: s3Env(s3, r.dir),
		Dir: filepath.Join(r.dir, "fleet"), Server: s3, Closures: closures, Throttling: fleet.BusyS3,
		GCEvery: 10 * time.Second, VerifyEvery: 5 * time.Second, Deadline: 3 * time.Minute}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	if err := fleet.Seed(ctx, cfg, []string{old}, 72*time.Hour); err != nil {
		return err
	}
	r.watch(s3.BucketDir())
	res, err := fleet.Run(ctx, cfg)
	if err != nil {
		return err
	}
	paths := closures.Paths()
	r.note("makespan %.1f s; throttled answers %v; %d requests reached the server; gc ran %d times and deleted %d objects; verify ran %d times",
		res.Makespan.Seconds(), res.Refused, cache.Requests{ByKind: res.Wire}.Total(), res.GCRuns, res.Deleted, res.Verifies)
	if len(res.Failed) > 0 {
		r.fail("%d of %d pushes failed: %s", len(res.Failed), machines, strings.Join(res.Failed[:min(3, len(res.Failed))], "; "))
	} else {
		r.checked(fmt.Sprintf("all %d pushes exit 0", machines))
	}
	objects, err := narObjectsOf(s3.BucketDir(), paths)
	if err != nil {
		return err
	}
	ratio := float64(objects) / float64(len(paths))
	r.checked(fmt.Sprintf("%d NAR objects for %d narinfos (%.2f a path)", objects, len(paths), ratio))
	if ratio > 1.1 {
		r.fail("%.2f NAR objects a path, want at most 1.1", ratio)
	}
	if res.Refused["503"]+res.Refused["429"] == 0 {
		r.fail("the proxy throttled nothing")
	}
	if res.Attempts > 0 {
		r.fail("%d queue rows spent an attempt (a throttled answer must spend none)", res.Attempts)
	} else {
		r.checked(fmt.Sprintf("no attempt spent on %d throttled answers", res.Refused["503"]+res.Refused["429"]))
	}
	if len(res.GCFailed) > 0 || res.GCRuns == 0 || res.Deleted == 0 {
		r.fail("gc: %d runs, %d objects deleted, failures: %v", res.GCRuns, res.Deleted, res.GCFailed)
	}
	if len(res.Problems) > 0 {
		r.fail("verify during the run reported %d inconsistencies: %s", len(res.Problems), strings.Join(res.Problems[:min(3, len(res.Problems))], "; "))
	} else {
		r.checked(fmt.Sprintf("%d verify runs during the pushes found no inconsistency", res.Verifies))
	}
	problems, err := fleet.VerifyFull(ctx, cfg)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		r.fail("verify --full at the end: %s", strings.Join(problems[:min(3, len(problems))], "; "))
	} else {
		r.checked("verify --full at the end: no inconsistency")
	}
	var roots []string
	for i := range machines {
		roots = append(roots, closures.Roots(i)...)
	}
	if out, err := r.substitute(ctx, "file://"+s3.BucketDir(), roots...); err != nil {
		r.fail("Nix cannot substitute the pushed closures: %v: %s", err, tail(out, 500))
	} else {
		r.checked(fmt.Sprintf("Nix substitutes all %d closures (%d paths) into a fresh store", machines, len(paths)))
	}
	return nil
}

// narObjectsOf counts the NAR objects whose name is one of paths' NARs,
// read from their narinfos in the bucket's directory.
func narObjectsOf(dir string, paths []string) (int, error) {
	prefixes := map[string]bool{}
	for _, p := range paths {
		fields, err := readNarinfo(filepath.Join(dir, cache.NarInfoKey(p)))
		if err != nil {
			return 0, fmt.Errorf("narinfo of %s: %w", p, err)
		}
		url := fields["URL"]
		prefixes[url[:strings.LastIndexByte(url, '-')]] = true
	}
	names, _ := filepath.Glob(filepath.Join(dir, "nar", "*"))
	n := 0
	for _, name := range names {
		key := "nar/" + filepath.Base(name)
		if i := strings.LastIndexByte(key, '-'); i > 0 && prefixes[key[:i]] {
			n++
		}
	}
	return n, nil
}

// substitute has real Nix fetch paths from url into a fresh store.
func (r *run) substitute(ctx context.Context, url string, paths ...string) (string, error) {
	fresh := filepath.Join(r.dir, "fresh-store")
	args := append([]string{"--store", fresh, "-r"}, paths...)
	args = append(args, "--option", "substituters", url, "--option", "trusted-public-keys", r.PubKey)
	return r.nix(ctx, "nix-store", args...)
}

// seqNext is a number no other call of this suite returns: unique
// names for what a scenario builds.
func (w *world) seqNext() int {
	w.seq++
	return w.seq
}

// s3Resume SIGKILLs a push 5 times at random points while a 1 GiB
// incompressible NAR goes up to versitygw (through a proxy that counts
// the bytes), then lets it finish: the upload continues from the parts
// on the server each time, so the bytes sent over all runs stay within
// 1.2 times the NAR's compressed size.
func s3Resume(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	px, err := servertest.StartS3Proxy(s3.Addr)
	if err != nil {
		return err
	}
	r.cleanup(px.Close)
	big, err := r.addLarge(ctx, "resume", 16, 64)
	if err != nil {
		return err
	}
	r.watch(s3.BucketDir())
	url, sd, env := s3URL(s3, px.Addr, ""), filepath.Join(r.dir, "state"), s3Env(s3, r.dir)
	args := r.pushArgs(url, sd, []string{"--log-format", "json"}, big)
	const size, kills = 1 << 30, 5
	var points []string
	for k := range kills {
		// The k-th kill comes once the bytes sent over all runs pass a
		// random point in the k-th fifth of 5–95 % of the NAR.
		at := int64(size) * int64(5+k*18+rand.IntN(18)) / 100
		p, err := r.nixpush(fmt.Sprintf("push-%d", k), env, args...)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(90 * time.Second)
		for px.BytesSent() < at && !p.exited() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if p.exited() || !time.Now().Before(deadline) {
			return fmt.Errorf("push-%d did not send %d MiB in all within 90 s (exit %v)", k, at>>20, p.exited())
		}
		p.kill()
		points = append(points, fmt.Sprintf("%d MiB", px.BytesSent()>>20))
	}
	r.note("SIGKILLed at %s sent in all", strings.Join(points, ", "))
	code, err := r.nixpushWait("push-last", 3*time.Minute, env, args...)
	if err != nil {
		return err
	}
	r.expectCode("push-last", code, 0)
	fields, err := readNarinfo(filepath.Join(s3.BucketDir(), cache.NarInfoKey(big)))
	if err != nil {
		return fmt.Errorf("the NAR's narinfo: %w", err)
	}
	var fileSize int64
	fmt.Sscan(fields["FileSize"], &fileSize)
	ratio := float64(px.BytesSent()) / float64(fileSize)
	r.checked(fmt.Sprintf("%d kills, then push exits 0; %d MiB sent over all runs for a %d MiB NAR (%.2f×)", kills, px.BytesSent()>>20, fileSize>>20, ratio))
	if ratio > 1.2 {
		r.fail("%.2f times the NAR's size sent over all runs, want at most 1.2", ratio)
	}
	r.checkMultipartLeftovers(s3)
	if out, err := r.substitute(ctx, "file://"+s3.BucketDir(), big); err != nil {
		r.fail("Nix cannot substitute the NAR: %v: %s", err, tail(out, 500))
	} else {
		r.checked("Nix substitutes it")
	}
	return r.settle(ctx, s3.BucketDir(), url, env, []string{big}, sd)
}
