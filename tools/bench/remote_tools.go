package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"nixpush/internal/servertest"
)

// remoteTool is one way of pushing an input to a running server. run
// does one timed push to a fresh location on the server (a new URL path
// prefix or bucket), checks that one narinfo per path arrived and sizes
// the nar/ files; server is the process whose CPU the suite reads around
// it.
type remoteTool struct {
	name   string
	server *servertest.Server
	run    func(ctx context.Context, w *workspace, in *Input) (Sample, error)
}

// runSeq numbers the fresh locations of every run on both servers.
var runSeq int

func nextRun() string { runSeq++; return fmt.Sprintf("run-%d", runSeq) }

// pushArgs is nixpush push with a fresh state dir (queue) under scratch.
func pushArgs(w *workspace, to, scratch string, in *Input) []string {
	return append([]string{"push", "--store", w.Root, "--to", to, "--signing-key", w.SecKey,
		"--state-dir", filepath.Join(scratch, "state")}, in.Paths...)
}

// timedPush runs one timed command in a fresh scratch dir (env gets its
// home), then checks and sizes the cache dir that args(scratch) filled.
//
// The cache dir stays until the suite ends and removes the server's
// whole tree: deleting a run's thousands of files was seen to slow the
// runs after it (nginx's CPU for 1,000 paths: ~0.2 s → 0.6–1 s; this
// VM's disk is ext4 mounted with discard), so cleaning up between runs
// would time the cleanup.
func timedPush(ctx context.Context, w *workspace, in *Input, cache, name string,
	args func(scratch string) []string, env func(home string) []string) (Sample, error) {
	scratch, err := w.newScratch("remote")
	if err != nil {
		return Sample{}, err
	}
	defer removeAll(scratch)
	s, _, err := measure(ctx, name, args(scratch), env(filepath.Join(scratch, "home")))
	if err != nil {
		return Sample{}, err
	}
	s.Output, err = cacheOutput(cache, len(in.Paths))
	return s, err
}

// httpNixpush: nixpush push --to http://127.0.0.1:PORT/run-N/ (zstd, its default).
func httpNixpush(bin string, n *servertest.Nginx) remoteTool {
	return remoteTool{nixpushName, n.Server, func(ctx context.Context, w *workspace, in *Input) (Sample, error) {
		run := nextRun()
		return timedPush(ctx, w, in, filepath.Join(n.CacheDir, run), bin, func(scratch string) []string {
			return pushArgs(w, n.URL()+"/"+run+"/", scratch, in)
		}, cleanEnv)
	}}
}

// httpNixCopy: nix copy --to 'http://127.0.0.1:PORT/run-N/?compression=zstd&secret-key=SEC',
// with a fresh XDG_CACHE_HOME (cleanEnv) so it cannot skip paths it remembers.
func httpNixCopy(n *servertest.Nginx) remoteTool {
	return remoteTool{nixCopyName, n.Server, func(ctx context.Context, w *workspace, in *Input) (Sample, error) {
		run := nextRun()
		return timedPush(ctx, w, in, filepath.Join(n.CacheDir, run), "nix", func(string) []string {
			return append([]string{"--store", w.Root, "copy",
				"--to", n.URL() + "/" + run + "/?compression=zstd&secret-key=" + w.SecKey}, in.Paths...)
		}, cleanEnv)
	}}
}

// s3Nixpush: nixpush push --to 's3://BUCKET/run-N?endpoint=127.0.0.1:PORT&scheme=http'.
func s3Nixpush(bin string, v *servertest.Versitygw) remoteTool {
	return remoteTool{nixpushName, v.Server, func(ctx context.Context, w *workspace, in *Input) (Sample, error) {
		run := nextRun()
		url := fmt.Sprintf("s3://%s/%s?endpoint=%s&scheme=http", v.Bucket, run, v.Addr)
		return timedPush(ctx, w, in, filepath.Join(v.BucketDir(), run), bin, func(scratch string) []string {
			return pushArgs(w, url, scratch, in)
		}, s3Env(v))
	}}
}

// s3NixCopy: nix copy to a fresh bucket per run (Nix's S3 store may not
// take a key prefix). Only used when probeNixCopyS3 found that this Nix
// can talk to S3.
func s3NixCopy(v *servertest.Versitygw) remoteTool {
	return remoteTool{nixCopyName, v.Server, func(ctx context.Context, w *workspace, in *Input) (Sample, error) {
		bucket := "nixcopy-" + nextRun()
		if err := os.Mkdir(filepath.Join(v.Root, bucket), 0o755); err != nil {
			return Sample{}, fmt.Errorf("create bucket: %w", err)
		}
		return timedPush(ctx, w, in, filepath.Join(v.Root, bucket), "nix", func(string) []string {
			return append([]string{"--store", w.Root, "copy", "--to", nixS3URL(v, bucket, w.SecKey)}, in.Paths...)
		}, s3Env(v))
	}}
}

// nixS3URL is the store URL nix copy is given for a bucket of the server.
func nixS3URL(v *servertest.Versitygw, bucket, secKey string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&scheme=http&compression=zstd&secret-key=%s", bucket, v.Addr, secKey)
}

// s3Env returns the environment of a tool pushing to the server:
// cleanEnv with the server's root keys as the only AWS credentials, no
// inherited AWS settings, profile, config file or instance metadata.
func s3Env(v *servertest.Versitygw) func(home string) []string {
	return func(home string) []string {
		var env []string
		for _, kv := range cleanEnv(home) {
			if !strings.HasPrefix(kv, "AWS_") {
				env = append(env, kv)
			}
		}
		return append(env, v.AWSEnv(home)...)
	}
}

// probeNixCopyS3 tries nix copy of one path to a bucket of the server,
// untimed. Nix can be built without S3 support (Debian's 2.8 is): then
// it answers "don't know how to open Nix store 's3://…'", which is
// returned as why.
func probeNixCopyS3(ctx context.Context, w *workspace, v *servertest.Versitygw, path string) (ok bool, why string, err error) {
	home, err := w.newScratch("probe")
	if err != nil {
		return false, "", err
	}
	defer removeAll(home)
	bucket := "nixcopy-probe"
	dir := filepath.Join(v.Root, bucket)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return false, "", fmt.Errorf("create bucket: %w", err)
	}
	defer removeAll(dir)
	_, runErr := runCmd(ctx, "", s3Env(v)(home), "nix", "--store", w.Root, "copy", "--to", nixS3URL(v, bucket, w.SecKey), path)
	if runErr != nil {
		for line := range strings.Lines(runErr.Error()) {
			if strings.Contains(line, "error:") {
				line = strings.NewReplacer(w.SecKey, "SEC", v.Addr, "127.0.0.1:PORT").Replace(line)
				return false, strings.TrimSpace(line), nil
			}
		}
		return false, strings.TrimSpace(tail(runErr.Error(), 300)), nil
	}
	if _, err := cacheOutput(dir, 1); err != nil {
		return false, "nix copy exited 0 but wrote no narinfo: " + err.Error(), nil
	}
	return true, "", nil
}
