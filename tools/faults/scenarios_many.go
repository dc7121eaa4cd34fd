package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// pusherSettings are four machines' settings: what they compress with
// differs, so the same NAR makes different objects.
var pusherSettings = [][]string{
	{"--compression", "zstd", "--compression-level", "1"},
	{"--compression", "zstd", "--compression-level", "9"},
	{"--compression", "xz", "--compression-level", "1"},
	{"--compression", "none"},
}

// fourPushers runs four pushes of the same closure at once, each as its
// own machine (own state dir) with its own settings, to one cache.
func fourPushers(ctx context.Context, r *run, cacheDir string, url string, env []string) error {
	top, err := r.chain(ctx, r.sc.name, 15, 64)
	if err != nil {
		return err
	}
	big, err := r.addLarge(ctx, "shared", 1, 6)
	if err != nil {
		return err
	}
	closure, err := r.closure(ctx, top, big)
	if err != nil {
		return err
	}
	r.watch(cacheDir)
	var procs []*proc
	var stateDirs []string
	for i, settings := range pusherSettings {
		sd := filepath.Join(r.dir, fmt.Sprintf("state-%d", i))
		stateDirs = append(stateDirs, sd)
		p, err := r.nixpush(fmt.Sprintf("push-%d", i), env, r.pushArgs(url, sd, append([]string{"--jobs", "2"}, settings...), top, big)...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	deadline := time.Now().Add(90 * time.Second)
	for i, p := range procs {
		code, err := p.wait(time.Until(deadline))
		if err != nil {
			r.fail("%v", err)
			continue
		}
		r.expectCode(fmt.Sprintf("push-%d", i), code, 0)
	}
	r.checked("4 pushes (zstd 1, zstd 9, xz 1, none) at once, each exit 0")
	return r.settle(ctx, cacheDir, url, env, closure, stateDirs...)
}

func fourPushersFile(ctx context.Context, r *run) error {
	cache, url, err := r.fileCache("")
	if err != nil {
		return err
	}
	return fourPushers(ctx, r, cache, url, nil)
}

func fourPushersS3(ctx context.Context, r *run) error {
	s3, err := r.s3()
	if err != nil {
		return err
	}
	return fourPushers(ctx, r, s3.BucketDir(), s3URL(s3, s3.Addr, ""), s3Env(s3, r.dir))
}

// scenarios is the suite, in the order it runs.
func scenarios() []scenario {
	return []scenario{
		{"latency-spikes", "nginx through toxiproxy: round trip 100 ms, raised to 3 s (above --http-timeout 2s) for 3 s in every 6 s from the first narinfo on", latencySpikes},
		{"bandwidth-collapse", "nginx through toxiproxy: every connection throttled to 1 KB/s for 6 s in every 12 s, twice, while 24 MiB of NARs go up; --http-timeout 3s", bandwidthCollapse},
		{"connection-resets", "nginx through toxiproxy: uploads cut after 64 KB and connections reset after 200 ms, on and off every 1.5 s from the first narinfo on", connectionResets},
		{"resets-at-start", "nginx through toxiproxy: the first second of a push reset as in connection-resets, then a healthy network", resetsAtStart},
		{"frozen-server", "versitygw SIGSTOPped under a watch-store (--http-timeout 2s, --unhealthy-after 4s), thawed; frozen again and SIGTERM (--shutdown-timeout 4s)", frozenServer},
		{"frozen-s3-multipart", "versitygw SIGSTOPped 20 MiB into the multipart upload of a 100 MiB NAR under a watch-store (--http-timeout 3s, --unhealthy-after 5s), thawed; frozen again mid-upload and SIGTERM (--shutdown-timeout 4s); push --drain finishes", frozenS3Multipart},
		{"frozen-s3-single", "versitygw SIGSTOPped once it has read 16 MiB of a 160 MiB NAR going up in one PUT (--part-size 200, --http-timeout 3s), thawed", frozenS3Single},
		{"dead-link-s3", "a proxy stops passing bytes 10 MiB into a 40 MiB NAR going up to versitygw in 5 MiB parts (--http-timeout 3s), healed", deadLinkS3},
		{"s3-restart-multipart", "versitygw restarted while a 24 MiB NAR goes up in 5 MiB parts at 1 MB/s per connection", s3RestartMultipart},
		{"state-dir-full", "4 MiB tmpfs state dir of a watch-store pushing to nginx at 300 KB/s filled to ENOSPC for 4 s with uploads in flight, new paths registered and a push started", stateDirFull},
		{"queue-locked", "sqlite3 holds the queue's write lock (BEGIN IMMEDIATE) for 15 s under watch-store and a push", queueLocked},
		{"sigkill-push", "push to nginx at 200 ms round trip SIGKILLed 3 times at random points (after a random 1–10 more narinfos, plus 0–200 ms), then run to the end", sigkillPush},
		{"sigkill-watch-store", "watch-store pushing to nginx at 100 ms round trip SIGKILLed 3 times at random points while paths are registered, restarted each time", sigkillWatchStore},
		{"gc-mid-upload", "nix-store --delete of an unreferenced 16 MiB path (16 files) as soon as push has one of its files open (xz -1 keeps the dump slow)", gcMidUpload},
		{"four-pushers-file", "4 machines (own state dirs; zstd 1, zstd 9, xz 1, none) push the same closure to one file:// dir at once", fourPushersFile},
		{"four-pushers-s3", "the same 4 machines push to one versitygw bucket at once", fourPushersS3},
		{"fleet-s3", "20 machines (processes, own state dirs) push closures sharing a 40-path chain and a 6 MiB path (8 leaves and 2 MiB of their own each) to one versitygw bucket behind a proxy answering 5 % of requests 503 SlowDown and all 429 Retry-After: 1 for 300 ms in every 5 s; gc --delete every 10 s collects an old generation; verify every 5 s", fleetS3},
		{"s3-resume-1gib", "push of a 1 GiB incompressible NAR to versitygw SIGKILLed 5 times at random points, then run to the end", s3Resume},
	}
}
