package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"nixpush/internal/servertest"
)

// wanDest is one location in a cache that a tool pushes to: the URL the
// tool is given (through the proxy) and the directory on the server's
// disk where its narinfos land, for the check after each run.
type wanDest struct {
	url string
	dir string
}

// wanTool pushes to one server through its proxy. fresh returns a new,
// empty location; push pushes in there with the given state dir (nixpush)
// and a fresh home (so Nix's narinfo cache is empty on every run: a
// fresh URL and a fresh XDG_CACHE_HOME, whichever it keys on).
type wanTool struct {
	name   string
	server *servertest.Server
	fresh  func() (wanDest, error)
	push   func(ctx context.Context, w *workspace, in *Input, d wanDest, stateDir string) (Sample, error)
}

// wanPush is one timed push; the cache must hold one narinfo per path
// of in afterwards. The scratch home goes; the cache stays until the
// suite ends (see timedPush for why).
func wanPush(ctx context.Context, w *workspace, in *Input, d wanDest, name string, args []string,
	env func(home string) []string) (Sample, error) {
	home, err := w.newScratch("wan-home")
	if err != nil {
		return Sample{}, err
	}
	defer removeAll(home)
	s, _, err := measure(ctx, name, args, env(home))
	if err != nil {
		return Sample{}, err
	}
	s.Output, err = cacheOutput(d.dir, len(in.Paths))
	return s, err
}

func nixpushArgs(w *workspace, url, stateDir string, in *Input) []string {
	return append([]string{"push", "--store", w.Root, "--to", url, "--signing-key", w.SecKey,
		"--state-dir", stateDir}, in.Paths...)
}

// wanHTTPNixpush: nixpush push --to http://PROXY/run-N/ (its defaults).
func wanHTTPNixpush(bin string, n *servertest.Nginx, p *servertest.Proxy) wanTool {
	return wanTool{name: nixpushName, server: n.Server,
		fresh: func() (wanDest, error) {
			run := nextRun()
			return wanDest{url: "http://" + p.Addr + "/" + run + "/", dir: filepath.Join(n.CacheDir, run)}, nil
		},
		push: func(ctx context.Context, w *workspace, in *Input, d wanDest, state string) (Sample, error) {
			return wanPush(ctx, w, in, d, bin, nixpushArgs(w, d.url, state, in), cleanEnv)
		}}
}

// wanHTTPNixCopy: nix copy --to 'http://PROXY/run-N/?compression=zstd&secret-key=SEC'.
func wanHTTPNixCopy(n *servertest.Nginx, p *servertest.Proxy) wanTool {
	return wanTool{name: nixCopyName, server: n.Server,
		fresh: func() (wanDest, error) {
			run := nextRun()
			return wanDest{url: "http://" + p.Addr + "/" + run + "/", dir: filepath.Join(n.CacheDir, run)}, nil
		},
		push: func(ctx context.Context, w *workspace, in *Input, d wanDest, _ string) (Sample, error) {
			args := append([]string{"--store", w.Root, "copy", "--to", d.url + "?compression=zstd&secret-key=" + w.SecKey}, in.Paths...)
			return wanPush(ctx, w, in, d, "nix", args, cleanEnv)
		}}
}

// wanS3Nixpush: nixpush push --to 's3://BUCKET/run-N?endpoint=PROXY&scheme=http'.
func wanS3Nixpush(bin string, v *servertest.Versitygw, p *servertest.Proxy) wanTool {
	return wanTool{name: nixpushName, server: v.Server,
		fresh: func() (wanDest, error) {
			run := nextRun()
			return wanDest{url: fmt.Sprintf("s3://%s/%s?endpoint=%s&scheme=http", v.Bucket, run, p.Addr),
				dir: filepath.Join(v.BucketDir(), run)}, nil
		},
		push: func(ctx context.Context, w *workspace, in *Input, d wanDest, state string) (Sample, error) {
			return wanPush(ctx, w, in, d, bin, nixpushArgs(w, d.url, state, in), s3Env(v))
		}}
}

// wanS3NixCopy: nix copy to a fresh bucket per location, through the
// proxy; only used where probeNixCopyS3 found this Nix speaks S3.
func wanS3NixCopy(v *servertest.Versitygw, p *servertest.Proxy) wanTool {
	return wanTool{name: nixCopyName, server: v.Server,
		fresh: func() (wanDest, error) {
			bucket := "nixcopy-" + nextRun()
			if err := os.Mkdir(filepath.Join(v.Root, bucket), 0o755); err != nil {
				return wanDest{}, fmt.Errorf("create bucket: %w", err)
			}
			return wanDest{url: bucket, dir: filepath.Join(v.Root, bucket)}, nil
		},
		push: func(ctx context.Context, w *workspace, in *Input, d wanDest, _ string) (Sample, error) {
			url := fmt.Sprintf("s3://%s?endpoint=%s&scheme=http&compression=zstd&secret-key=%s", d.url, p.Addr, w.SecKey)
			return wanPush(ctx, w, in, d, "nix", append([]string{"--store", w.Root, "copy", "--to", url}, in.Paths...), s3Env(v))
		}}
}
