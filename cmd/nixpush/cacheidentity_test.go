package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestPushNoticesAWipedCache: a cache wiped, or wiped and made again by
// someone else under the same URL, is noticed by the next push at
// default settings (the memo on) and filled again; real Nix then
// substitutes the closure from it, reading a nix-cache-info that carries
// nixpush's own keys. On file:// and over HTTP (nginx).
func TestPushNoticesAWipedCache(t *testing.T) {
	for _, backend := range []string{"file", "nginx"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "wiped-1")
			if backend == "nginx" {
				srv := servertest.StartNginx(t, "")
				e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
			}
			out := e.store.Build(t, nixtest.WithReference("wiped-"+backend))
			wipe := func() {
				t.Helper()
				entries, err := os.ReadDir(e.cache)
				if err != nil {
					t.Fatal(err)
				}
				for _, en := range entries {
					if err := os.RemoveAll(filepath.Join(e.cache, en.Name())); err != nil {
						t.Fatal(err)
					}
				}
			}
			wantSuccess(t, e.push("", out[1]), 2, 0, 0, 0)

			wipe()
			wantSuccess(t, e.push("", out[1]), 2, 0, 0, 0)
			info := mustRead(t, filepath.Join(e.cache, "nix-cache-info"))
			if !strings.Contains(info, "StoreDir: /nix/store\n") || !strings.Contains(info, "NixpushCacheId: ") {
				t.Errorf("nix-cache-info after the wipe:\n%s", info)
			}
			e.wantPushed(out)

			// Made again by Nix: a nix-cache-info of its own, no ID.
			wipe()
			other := addDirs(t, e.store, smallDirs(t, "wiped-other-"+backend, 1)...)
			if _, _, err := e.store.Run(t, "nix", "copy", "--to", e.url+"?compression=none", other[0]); err != nil {
				t.Fatal(err)
			}
			if info := mustRead(t, filepath.Join(e.cache, "nix-cache-info")); strings.Contains(info, "Nixpush") {
				t.Fatalf("Nix wrote %q", info)
			}
			wantSuccess(t, e.push("", out[1]), 2, 0, 0, 0)
			for _, p := range out {
				if !e.hasNarInfo(p) {
					t.Errorf("%s not pushed again into the cache Nix made", p)
				}
			}
			fresh := filepath.Join(t.TempDir(), "fresh")
			if o, err := nixtest.Substitute(t, fresh, e.url, e.pub, out[1]); err != nil {
				t.Fatalf("%v\n%s", err, o)
			}
			// A re-run now trusts the memo again: nothing to push.
			wantSuccess(t, e.push("", out[1]), 0, 2, 0, 0)
		})
	}
}
