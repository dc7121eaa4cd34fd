package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestUnsignedIntoSignedCache: a cache whose narinfos nixpush signs says
// so in its nix-cache-info; a push without a key into it is refused
// before anything is written, naming the flag, unless --allow-unsigned;
// verify --repair without a key refuses too (by --trusted-key, or the
// signed narinfos it read), and with one restores what real Nix then
// substitutes. On file:// and over HTTP (nginx).
func TestUnsignedIntoSignedCache(t *testing.T) {
	for _, backend := range []string{"file", "nginx"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "signed-1")
			if backend == "nginx" {
				srv := servertest.StartNginx(t, "")
				e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
			}
			paths := addDirs(t, e.store, smallDirs(t, "signed-"+backend, 3)...)
			wantSuccess(t, e.push("", paths[0]), 1, 0, 0, 0)
			if info := mustRead(t, filepath.Join(e.cache, "nix-cache-info")); !strings.Contains(info, "NixpushSignedBy: signed-1\n") {
				t.Fatalf("nix-cache-info does not say who signs:\n%s", info)
			}
			unsigned := func(args ...string) result {
				return runMain(t, "", append([]string{"push", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.to}, args...)...)
			}
			before := snapshot(t, e.cache)
			r := unsigned(paths[1])
			if r.code == 0 || !strings.Contains(r.stderr, "--signing-key") || !strings.Contains(r.stderr, "--allow-unsigned") || strings.Count(r.stderr, "error:") != 1 {
				t.Fatalf("an unsigned push into a signed cache: want a failure naming --signing-key and --allow-unsigned in one error line, got %s", r)
			}
			if after := snapshot(t, e.cache); len(after) != len(before) {
				t.Errorf("the refused push wrote into the cache: %d objects before, %d after", len(before), len(after))
			}
			if r := unsigned("--allow-unsigned", paths[1]); r.code != 0 || !e.hasNarInfo(paths[1]) {
				t.Fatalf("push --allow-unsigned: %s", r)
			}
			if err := os.Remove(filepath.Join(e.cache, hashPart(paths[1])+".narinfo")); err != nil {
				t.Fatal(err)
			}

			// verify --repair: refused without a key, before deleting
			// or writing anything.
			wantSuccess(t, e.push("", paths[2]), 1, 0, 0, 0)
			if err := os.Remove(filepath.Join(e.cache, hashPart(paths[2])+".narinfo")); err != nil {
				t.Fatal(err)
			}
			before = snapshot(t, e.cache)
			for _, extra := range [][]string{{"--trusted-key", e.pub}, nil} {
				args := append([]string{"verify", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.to, "--repair"}, extra...)
				r := runMain(t, "", append(args, paths...)...)
				if r.code != 2 || !strings.Contains(r.stderr, "--signing-key") {
					t.Errorf("verify --repair %q without a key: want exit 2 naming --signing-key, got %s", extra, r)
				}
			}
			if after := snapshot(t, e.cache); len(after) != len(before) {
				t.Errorf("the refused repair changed the cache: %d objects before, %d after", len(before), len(after))
			}
			r = runMain(t, "", append([]string{"verify", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.to,
				"--trusted-key", e.pub, "--signing-key", e.sec, "--repair"}, paths...)...)
			if r.code != 0 {
				t.Fatalf("verify --repair with a key: %s", r)
			}
			fresh := filepath.Join(t.TempDir(), "fresh")
			if out, err := nixtest.Substitute(t, fresh, e.url, e.pub, paths...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}
