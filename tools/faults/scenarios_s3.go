package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"nixpush/internal/servertest"
)

// daemon is a watch-store this scenario runs, with /healthz.
type daemon struct {
	*proc
	health string // http://127.0.0.1:PORT/healthz
}

// watchStore starts watch-store and waits (bounded) for /healthz to
// answer 200: it is watching.
func (r *run) watchStore(name, url, stateDir string, env []string, extra ...string) (*daemon, error) {
	port, err := servertest.FreePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"watch-store", "--to", url, "--store", r.Store, "--signing-key", r.SecKey,
		"--state-dir", stateDir, "--metrics-addr", fmt.Sprint(port), "--log-format", "json"}, extra...)
	p, err := r.nixpush(name, env, args...)
	if err != nil {
		return nil, err
	}
	d := &daemon{proc: p, health: fmt.Sprintf("http://127.0.0.1:%d/healthz", port)}
	if !waitFor(context.Background(), 20*time.Second, func() bool { return d.healthy() == http.StatusOK || p.exited() }) || p.exited() {
		return nil, fmt.Errorf("%s did not become healthy: %s", name, tail(p.output(), 800))
	}
	return d, nil
}

// healthy is the status of /healthz, 0 when it does not answer in 2 s.
func (d *daemon) healthy() int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(d.health)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stopDaemon sends SIGTERM and expects an exit within bound.
func (r *run) stopDaemon(d *daemon, bound time.Duration) {
	d.signal(syscall.SIGTERM)
	began := time.Now()
	code, err := d.wait(bound)
	if err != nil {
		r.fail("SIGTERM: %v", err)
		return
	}
	r.checked(fmt.Sprintf("SIGTERM ended %s in %.1f s (bound %v)", d.name, time.Since(began).Seconds(), bound))
	if code != 0 {
		r.note("%s exited %d after SIGTERM", d.name, code)
	}
}

// inCache waits (bounded) until every path of closure has a narinfo.
func (r *run) inCache(ctx context.Context, cacheDir string, closure []string, d time.Duration) bool {
	return waitFor(ctx, d, func() bool {
		for _, p := range closure {
			hash, _, _ := strings.Cut(strings.TrimPrefix(p, "/nix/store/"), "-")
			if _, err := os.Stat(filepath.Join(cacheDir, hash+".narinfo")); err != nil {
				return false
			}
		}
		return true
	})
}

// frozenServer SIGSTOPs versitygw while a daemon uploads to it: uploads
// must time out (--http-timeout) and be retried, /healthz must turn 503,
// and SIGTERM must end the daemon within --shutdown-timeout even while
// the server is still frozen.
func frozenServer(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	r.watch(s3.BucketDir())
	url, sd, env := s3URL(s3, s3.Addr, ""), filepath.Join(r.dir, "state"), s3Env(s3, r.dir)
	d, err := r.watchStore("watch-store", url, sd, env, "--http-timeout", "2s",
		"--unhealthy-after", "4s", "--shutdown-timeout", "4s")
	if err != nil {
		return err
	}
	var closure []string
	if _, err := r.addChain(ctx, &closure, 6, 256); err != nil {
		return err
	}
	waitFor(ctx, 15*time.Second, func() bool { return countNarinfos(s3.BucketDir()) >= 1 })
	if err := s3.Freeze(); err != nil {
		return err
	}
	if _, err := r.addChain(ctx, &closure, 6, 256); err != nil {
		return err
	}
	frozenAt := time.Now()
	if waitFor(ctx, 20*time.Second, func() bool { return d.healthy() == http.StatusServiceUnavailable }) {
		r.checked(fmt.Sprintf("/healthz 503 %.1f s into the freeze", time.Since(frozenAt).Seconds()))
	} else {
		r.fail("/healthz did not turn 503 within 20 s of the freeze (status %d)", d.healthy())
	}
	s3.Thaw()
	if r.inCache(ctx, s3.BucketDir(), closure, 40*time.Second) {
		r.checked(fmt.Sprintf("all pushed %.1f s after the thaw", time.Since(frozenAt).Seconds()))
	} else {
		r.fail("not every path pushed within 40 s of the thaw")
	}
	if d.exited() {
		r.fail("watch-store exited during the freeze: %s", tail(d.output(), 500))
	}
	// Frozen again, with work in flight: shutdown must still be bounded.
	if _, err := r.addChain(ctx, &closure, 3, 512); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let the daemon claim the new paths
	if err := s3.Freeze(); err != nil {
		return err
	}
	r.stopDaemon(d, 4*time.Second+10*time.Second)
	s3.Thaw()
	code, err := r.nixpushWait("drain", 60*time.Second, env, r.pushArgs(url, sd, []string{"--drain"})...)
	if err != nil {
		return err
	}
	r.expectCode("drain", code, 0)
	return r.settle(ctx, s3.BucketDir(), url, env, closure, sd)
}

// s3RestartMultipart restarts versitygw while a 24 MiB NAR goes up in
// 5 MiB parts, slowed to 1 MB/s per connection so the restart lands
// mid-upload.
func s3RestartMultipart(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	px, err := r.proxy(s3.Addr)
	if err != nil {
		return err
	}
	big, err := r.addLarge(ctx, "big", 1, 24)
	if err != nil {
		return err
	}
	r.watch(s3.BucketDir())
	url, sd, env := s3URL(s3, px.Addr, ""), filepath.Join(r.dir, "state"), s3Env(s3, r.dir)
	if err := px.Bandwidth(1 << 20); err != nil {
		return err
	}
	p, err := r.nixpush("push", env, r.pushArgs(url, sd, []string{"--part-size", "5", "--http-timeout", "3s", "--max-attempts", "6"}, big)...)
	if err != nil {
		return err
	}
	time.Sleep(2500 * time.Millisecond) // into the second part of each of the first parts in flight
	s3.Stop()
	time.Sleep(time.Second)
	if err := s3.Start(); err != nil {
		return fmt.Errorf("restart versitygw: %w", err)
	}
	r.note("versitygw restarted 2.5 s into the upload")
	code, err := p.wait(90 * time.Second)
	if err != nil {
		return err
	}
	r.expectCode("push", code, 0)
	r.checked("push exits 0")
	if err := px.Heal(); err != nil {
		return err
	}
	r.checkMultipartLeftovers(s3)
	return r.settle(ctx, s3.BucketDir(), url, env, []string{big}, sd)
}

// checkMultipartLeftovers fails the scenario when multipart uploads are
// left open on the server once push has ended: their parts take space
// until someone aborts them (versitygw keeps each upload as a directory
// of parts under BUCKET/.sgwtmp/multipart/KEYHASH/UPLOADID).
func (r *run) checkMultipartLeftovers(s3 *servertest.Versitygw) {
	uploads, _ := filepath.Glob(filepath.Join(s3.BucketDir(), ".sgwtmp", "multipart", "*", "*"))
	var parts int
	var bytes int64
	for _, u := range uploads {
		entries, _ := os.ReadDir(u)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
				parts++
				bytes += fi.Size()
			}
		}
	}
	r.checked("no multipart upload left open on the server")
	if len(uploads) > 0 {
		r.fail("%d multipart upload(s) left open on the server with %d parts (%.1f MiB): the abort after the failed part ran while the server was down and was not tried again",
			len(uploads), parts, float64(bytes)/(1<<20))
	}
}
