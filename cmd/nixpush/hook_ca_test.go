package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestEnqueueHookCA: with ca-derivations, Nix 2.8 runs the
// post-build-hook with an empty $OUT_PATHS for floating CA derivations
// (and for the resolved derivation it builds in their place); enqueue
// finds their outputs through the Nix DB's realisations, the build
// succeeds, and push --drain pushes what was queued, realisations
// included, so a fresh store with ca-derivations substitutes. A hook
// that cannot find its outputs says why and never fails the build. On
// file:// and over HTTP (nginx).
func TestEnqueueHookCA(t *testing.T) {
	for _, backend := range []string{"file", "nginx"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "hook-ca-1")
			if backend == "nginx" {
				srv := servertest.StartNginx(t, "")
				e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
			}
			dir := t.TempDir()
			hook, log := filepath.Join(dir, "hook.sh"), filepath.Join(dir, "hook.log")
			writeFile(t, hook, []byte(fmt.Sprintf(`#!/bin/sh
%s enqueue --store %s --state-dir %s --to %s 2>>%s
rc=$?
echo "$DRV_PATH [$OUT_PATHS] $rc" >> %s
exit $rc
`, shQuote(nixpushBin), shQuote(e.store.Root), shQuote(e.stateDir), shQuote(e.url), shQuote(log), shQuote(log))), 0o755)
			build := exec.CommandContext(t.Context(), "nix-build", e.nixBuildArgv(nixtest.CAChain,
				"--option", "experimental-features", nixtest.CAFeatures, "--option", "post-build-hook", hook)[1:]...)
			build.Env = procEnv(t)
			res := runCmd(t, build, "")
			hookLog, _ := os.ReadFile(log)
			if res.code != 0 {
				t.Fatalf("nix-build with the hook: %s\nhook log:\n%s", res, hookLog)
			}
			if strings.Contains(string(hookLog), "nothing queued") || !strings.Contains(string(hookLog), "[] 0") {
				t.Errorf("the hook did not queue every output (or never ran with an empty $OUT_PATHS):\n%s", hookLog)
			}
			outs := strings.Fields(res.stdout) // a, b
			wantQueue(t, e.stateDir, outs, "pending")
			if r := e.push("", "--drain"); r.code != 0 {
				t.Fatalf("push --drain: %s", r)
			}
			substituteCA(t, e, "("+nixtest.CAChain+").b", outs[1])

			// A derivation the DB does not know: the hook says so, exit 0.
			cmd := binCmd(t, "enqueue", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.url)
			cmd.Env = append(cmd.Env, "DRV_PATH=/nix/store/2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-wx.drv", "OUT_PATHS=")
			if r := runCmd(t, cmd, ""); r.code != 0 || !strings.Contains(r.stderr, "nothing queued") ||
				!strings.Contains(r.stderr, "2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-wx.drv") {
				t.Errorf("enqueue as a hook for an unknown derivation: want exit 0 and the reason on stderr, got %s", r)
			}
		})
	}
}
