package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nixpush/internal/servertest"
)

// The frozen-S3 scenarios: a server that stops answering (SIGSTOP: the
// kernel still takes connections and a few megabytes, then nothing) or a
// link that stops passing bytes, mid-upload. Every request must fail
// once --http-timeout passes without progress in either direction (the
// watch sees it between 1 and 1.25 timeouts), whatever sits in the
// socket's send queue; the daemon must turn unhealthy within
// --unhealthy-after and stop within --shutdown-timeout plus a second.

// frozenTimeout is the --http-timeout of these scenarios, and
// stallBound how long after the fault the first failure may come.
const (
	frozenTimeout = 3 * time.Second
	stallBound    = frozenTimeout*5/4 + time.Second
)

// receiving is how many bytes versitygw holds of uploads in progress:
// parts and objects being written, under the bucket's .sgwtmp.
func receiving(s3 *servertest.Versitygw) int64 {
	var n int64
	_ = filepath.WalkDir(filepath.Join(s3.BucketDir(), ".sgwtmp"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// bytesRead is how many bytes the server's process has read (rchar of
// /proc/PID/io: files and sockets alike), to freeze it when an upload is
// under way even where nothing of it shows on disk yet (a PUT into an
// unnamed temp file).
func bytesRead(s3 *servertest.Versitygw) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", s3.Pid()))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// failedAfter waits (bounded) for p to log the failure of a request and
// returns how long after since it did; ok false when it did not.
func failedAfter(p *proc, since time.Time, d time.Duration) (time.Duration, bool) {
	seen := func() bool { return strings.Contains(p.output(), "cache failing, pausing uploads") }
	if !waitFor(context.Background(), d, seen) {
		return 0, false
	}
	return time.Since(since), true
}

// checkStall fails the scenario unless p logged a failure within
// stallBound of the fault.
func (r *run) checkStall(p *proc, what string, fault time.Time) {
	took, ok := failedAfter(p, fault, 30*time.Second)
	switch {
	case !ok:
		r.fail("%s: no failure logged within 30 s of the fault (--http-timeout %v)", what, frozenTimeout)
	case took > stallBound:
		r.fail("%s: the failure came %.1f s after the fault, want at most %v", what, took.Seconds(), stallBound)
	default:
		r.checked(fmt.Sprintf("%s: failed %.1f s after the fault (--http-timeout %v)", what, took.Seconds(), frozenTimeout))
	}
}

// freezeWhen freezes the server once it holds at least n bytes of
// uploads in progress, and returns when it did.
func freezeWhen(ctx context.Context, s3 *servertest.Versitygw, n int64) (time.Time, error) {
	if !waitFor(ctx, 60*time.Second, func() bool { return receiving(s3) >= n }) {
		return time.Time{}, fmt.Errorf("the upload did not reach %d MiB on the server within 60 s", n>>20)
	}
	if err := s3.Freeze(); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// frozenS3Multipart freezes versitygw during the multipart upload of a
// 100 MiB NAR under a watch-store, thaws it, then freezes it again during
// another and stops the daemon.
func frozenS3Multipart(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	r.watch(s3.BucketDir())
	url, sd, env := s3URL(s3, s3.Addr, ""), filepath.Join(r.dir, "state"), s3Env(s3, r.dir)
	const unhealthyAfter, shutdown = 5 * time.Second, 4 * time.Second
	d, err := r.watchStore("watch-store", url, sd, env, "--http-timeout", frozenTimeout.String(),
		"--unhealthy-after", unhealthyAfter.String(), "--shutdown-timeout", shutdown.String())
	if err != nil {
		return err
	}
	first, err := r.addLarge(ctx, "frozen-a", 4, 25)
	if err != nil {
		return err
	}
	frozen, err := freezeWhen(ctx, s3, 20<<20)
	if err != nil {
		return err
	}
	r.checkStall(d.proc, "multipart upload frozen at 20 MiB", frozen)
	if waitFor(ctx, unhealthyAfter+5*time.Second, func() bool { return d.healthy() == http.StatusServiceUnavailable }) {
		took := time.Since(frozen)
		r.checked(fmt.Sprintf("/healthz 503 %.1f s into the freeze", took.Seconds()))
		if took > unhealthyAfter+time.Second {
			r.fail("/healthz turned 503 %.1f s into the freeze, want within --unhealthy-after %v", took.Seconds(), unhealthyAfter)
		}
	} else {
		r.fail("/healthz did not turn 503 within %v of the freeze", unhealthyAfter+5*time.Second)
	}
	s3.Thaw()
	if !r.inCache(ctx, s3.BucketDir(), []string{first}, 60*time.Second) {
		r.fail("the 100 MiB path not pushed within 60 s of the thaw")
	}
	second, err := r.addLarge(ctx, "frozen-b", 4, 25)
	if err != nil {
		return err
	}
	if _, err := freezeWhen(ctx, s3, 20<<20); err != nil {
		return err
	}
	d.signal(syscall.SIGTERM)
	stopped := time.Now()
	if _, err := d.wait(shutdown + 10*time.Second); err != nil {
		r.fail("SIGTERM beside a frozen server: %v", err)
	} else if took := time.Since(stopped); took > shutdown+time.Second {
		r.fail("SIGTERM beside a frozen server took %.1f s, want at most --shutdown-timeout %v + 1 s", took.Seconds(), shutdown)
	} else {
		r.checked(fmt.Sprintf("SIGTERM beside the frozen server ended watch-store in %.1f s (--shutdown-timeout %v)", took.Seconds(), shutdown))
	}
	s3.Thaw()
	code, err := r.nixpushWait("drain", 90*time.Second, env, r.pushArgs(url, sd, []string{"--drain", "--log-format", "json"})...)
	if err != nil {
		return err
	}
	r.expectCode("drain", code, 0)
	r.checkMultipartLeftovers(s3)
	return r.settle(ctx, s3.BucketDir(), url, env, []string{first, second}, sd)
}

// frozenS3Single freezes versitygw in the middle of a 160 MiB NAR going
// up in one PUT (parts of 200 MiB): its write blocks on a full send
// buffer. The body is read whole before it is sent, and loopback sends
// it in a fraction of a second, so the server is watched closely.
func frozenS3Single(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	r.watch(s3.BucketDir())
	p0, err := r.addLarge(ctx, "single", 4, 40)
	if err != nil {
		return err
	}
	url, sd, env := s3URL(s3, s3.Addr, ""), filepath.Join(r.dir, "state"), s3Env(s3, r.dir)
	before := bytesRead(s3)
	p, err := r.nixpush("push", env, r.pushArgs(url, sd, []string{"--part-size", "200", "--http-timeout", frozenTimeout.String(), "--log-format", "json"}, p0)...)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for bytesRead(s3)-before < 16<<20 {
		if time.Now().After(deadline) || p.exited() {
			return fmt.Errorf("versitygw did not read 16 MiB of the PUT within 60 s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s3.Freeze(); err != nil {
		return err
	}
	frozen := time.Now()
	r.note("frozen once versitygw had read %d MiB", (bytesRead(s3)-before)>>20)
	r.checkStall(p, "single PUT frozen midway", frozen)
	s3.Thaw()
	code, err := p.wait(60 * time.Second)
	if err != nil {
		return err
	}
	r.expectCode("push", code, 0)
	return r.settle(ctx, s3.BucketDir(), url, env, []string{p0}, sd)
}

// deadLinkS3 cuts the link (a proxy that stops passing bytes) while a
// 40 MiB NAR goes up in 5 MiB parts: the parts in flight stall, and the
// clean-up does not wait on the same dead link again.
func deadLinkS3(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	px, err := r.proxy(s3.Addr)
	if err != nil {
		return err
	}
	r.watch(s3.BucketDir())
	p0, err := r.addLarge(ctx, "dead-link", 4, 10)
	if err != nil {
		return err
	}
	url, sd, env := s3URL(s3, px.Addr, ""), filepath.Join(r.dir, "state"), s3Env(s3, r.dir)
	p, err := r.nixpush("push", env, r.pushArgs(url, sd, []string{"--part-size", "5", "--http-timeout", frozenTimeout.String(), "--log-format", "json"}, p0)...)
	if err != nil {
		return err
	}
	if !waitFor(ctx, 60*time.Second, func() bool { return receiving(s3) >= 10<<20 }) {
		return fmt.Errorf("the upload did not reach 10 MiB on the server within 60 s")
	}
	if err := px.Stall(servertest.Upstream, 0); err != nil {
		return err
	}
	dead := time.Now()
	r.checkStall(p, "parts over a link that stopped passing bytes", dead)
	if err := px.Heal(); err != nil {
		return err
	}
	code, err := p.wait(60 * time.Second)
	if err != nil {
		return err
	}
	r.expectCode("push", code, 0)
	r.checkMultipartLeftovers(s3)
	return r.settle(ctx, s3.BucketDir(), url, env, []string{p0}, sd)
}
