package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestCopyLog: a push skips the paths a cache has, and their logs; a
// log missing from the cache is uploaded by nixpush copy-log (Nix's nix
// store copy-log), which leaves the logs the cache has alone, and real
// Nix reads it back with nix log. On file:// and over HTTP (nginx).
func TestCopyLog(t *testing.T) {
	for _, backend := range []string{"file", "nginx"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "copy-log-1")
			if backend == "nginx" {
				srv := servertest.StartNginx(t, "")
				e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
			}
			outs := e.store.Build(t, nixtest.Derivations("copylog-"+backend, `
  a = mk "a" "echo building a, the log line; echo a > $out/a";
  b = mk "b" "echo building b; echo b > $out/b";
  c = mk "c" "echo building c; echo c > $out/c";`, "{ inherit a b c; }"))
			top := outs[0]
			wantSuccess(t, e.push("", outs...), len(outs), 0, 0, 0)
			logFile := filepath.Join(e.cache, "log", filepath.Base(deriver(t, e.store, top)))
			if err := os.Remove(logFile); err != nil {
				t.Fatal(err)
			}
			wantSuccess(t, e.push("", "--recheck", top), 0, 1, 0, 0)
			if fileExists(logFile) {
				t.Fatal("a push of a present path uploaded its log")
			}

			copyLog := func(args ...string) result {
				return runMain(t, strings.Join(outs, "\n"), append([]string{"copy-log", "--store", e.store.Root, "--to", e.to}, args...)...)
			}
			if r := copyLog(top); r.code != 0 || !strings.Contains(r.stderr, "copied 1 build logs, 0 already in the cache") {
				t.Fatalf("copy-log: %s", r)
			}
			want, _, err := e.store.Run(t, "nix", "log", top)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := nixtest.Command(t, "nix", "log", "--store", e.url, top)
			if err != nil || got != want || !strings.Contains(got, "building a, the log line") {
				t.Errorf("nix log from the cache: %q (%v), the local store's %q", got, err, want)
			}
			// From stdin, every output: all there now, nothing uploaded.
			if r := copyLog(); r.code != 0 || !strings.Contains(r.stderr, "copied 0 build logs, 3 already in the cache") {
				t.Errorf("copy-log of logs the cache has: %s", r)
			}
		})
	}
}
