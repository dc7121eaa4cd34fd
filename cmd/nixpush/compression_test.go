package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// debugPath adds to s a path like Nix's own test of index-debug-info
// (tests/functional/binary-cache.sh): a debug file under
// lib/debug/.build-id, beside 300 KB of compressible text.
func debugPath(t *testing.T, s *nixtest.Store, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	member := filepath.Join(dir, "lib/debug/.build-id/02/623eda209c26a59b1a8638ff7752f6b945c26b.debug")
	if err := os.MkdirAll(filepath.Dir(member), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, member, []byte("foo\n"), 0o644)
	words := []string{"nix", "store", "path", "closure", "derivation", "narinfo", "\n"}
	r := rand.New(rand.NewPCG(1, 2))
	var text strings.Builder
	for range 60000 {
		text.WriteString(words[r.IntN(len(words))] + " ")
	}
	writeFile(t, filepath.Join(dir, "text"), []byte(text.String()), 0o644)
	return s.Add(t, dir)
}

// narInfoField reads one field of the narinfo of p in cache dir.
func narInfoField(t *testing.T, dir, p, field string) string {
	t.Helper()
	for _, line := range readLines(mustRead(t, filepath.Join(dir, hashPart(p)+".narinfo"))) {
		if v, ok := strings.CutPrefix(line, field+": "); ok {
			return v
		}
	}
	t.Fatalf("the narinfo of %s in %s has no %s", p, dir, field)
	return ""
}

// TestCompressionLikeNix: compression settings mean what they mean in
// Nix. xz at any level and br compress a NAR to the very bytes nix copy
// writes with the same settings (same FileHash); xz level 0 is a level
// (not "unset"); zstd level 0 is zstd's default, 3; index-debug-info
// writes Nix's debuginfo objects. Real Nix substitutes every one, from
// file:// and over HTTP (nginx).
func TestCompressionLikeNix(t *testing.T) {
	e := newEnv(t, "compression-1")
	p := debugPath(t, e.store, "compressible")
	push := func(to string) {
		t.Helper()
		if r := runMain(t, "", "push", "--store", e.store.Root, "--state-dir", t.TempDir(), "--to", to, "--signing-key", e.sec, p); r.code != 0 {
			t.Fatalf("push --to %s:\n%s", to, r)
		}
	}
	sizes := map[string]string{}
	for _, settings := range []string{"xz&compression-level=0", "xz&compression-level=5", "xz&compression-level=9", "xz",
		"br", "zstd&compression-level=0", "zstd&compression-level=3", "zstd&compression-level=19"} {
		ours, nix := t.TempDir(), t.TempDir()
		push("file://" + ours + "?compression=" + settings)
		if _, _, err := e.store.Run(t, "nix", "copy", "--to", "file://"+nix+"?compression="+settings, p); err != nil {
			t.Fatal(err)
		}
		sizes[settings] = narInfoField(t, ours, p, "FileSize")
		want, got := narInfoField(t, nix, p, "FileHash"), narInfoField(t, ours, p, "FileHash")
		if !strings.HasPrefix(settings, "zstd") && got != want {
			t.Errorf("compression=%s: FileHash %s (%s bytes), nix copy's %s (%s bytes)", settings, got, sizes[settings],
				want, narInfoField(t, nix, p, "FileSize"))
		}
		for _, f := range []string{"Compression", "NarHash"} {
			if got, want := narInfoField(t, ours, p, f), narInfoField(t, nix, p, f); got != want {
				t.Errorf("compression=%s: %s %q, nix copy's %q", settings, f, got, want)
			}
		}
		if ext := filepath.Ext(narInfoField(t, nix, p, "URL")); filepath.Ext(narInfoField(t, ours, p, "URL")) != ext {
			t.Errorf("compression=%s: URL %s, nix copy names it *%s", settings, narInfoField(t, ours, p, "URL"), ext)
		}
		fresh := filepath.Join(t.TempDir(), "fresh")
		if out, err := nixtest.Substitute(t, fresh, "file://"+ours, e.pub, p); err != nil {
			t.Errorf("compression=%s: %v\n%s", settings, err, out)
		}
	}
	if sizes["xz&compression-level=0"] == sizes["xz&compression-level=5"] {
		t.Errorf("xz levels 0 and 5 give the same size %s", sizes["xz&compression-level=0"])
	}
	if sizes["zstd&compression-level=0"] != sizes["zstd&compression-level=3"] || sizes["zstd&compression-level=19"] == sizes["zstd&compression-level=3"] {
		t.Errorf("zstd sizes: level 0 %s, 3 %s, 19 %s: want 0 = 3 (zstd's default) and 19 another", sizes["zstd&compression-level=0"],
			sizes["zstd&compression-level=3"], sizes["zstd&compression-level=19"])
	}

	// index-debug-info, br and parallel xz over HTTP; the debuginfo
	// object is Nix's but for the NAR's name, which is the narinfo's URL.
	srv := servertest.StartNginx(t, "")
	for _, settings := range []string{"br&index-debug-info=1", "xz&parallel-compression=true&index-debug-info=true"} {
		prefix := fmt.Sprintf("run-%d", len(settings))
		push(srv.URL() + "/" + prefix + "?compression=" + settings)
		dir := filepath.Join(srv.CacheDir, prefix)
		var doc struct{ Archive, Member string }
		text := mustRead(t, filepath.Join(dir, "debuginfo/02623eda209c26a59b1a8638ff7752f6b945c26b.debug"))
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"archive":"../%s","member":"lib/debug/.build-id/02/623eda209c26a59b1a8638ff7752f6b945c26b.debug"}`, narInfoField(t, dir, p, "URL"))
		if text != want {
			t.Errorf("%s: debuginfo\n%s\nwant (as Nix's tests/functional/binary-cache.sh)\n%s", settings, text, want)
		}
		fresh := filepath.Join(t.TempDir(), "fresh")
		if out, err := nixtest.Substitute(t, fresh, srv.URL()+"/"+prefix, e.pub, p); err != nil {
			t.Errorf("%s over HTTP: %v\n%s", settings, err, out)
		}
	}
}

// TestUnsupportedURLSettings: every setting of a cache URL either works
// or is refused with one line naming it, before anything is written.
func TestUnsupportedURLSettings(t *testing.T) {
	e := newEnv(t, "settings-1")
	p := addDirs(t, e.store, smallDirs(t, "settings", 1)...)[0]
	for _, tc := range []struct{ query, want string }{
		{"trusted=1", `setting "trusted" is not supported`},
		{"narinfo-compression=br", `setting "narinfo-compression" is not supported`},
		{"log-compression=br", `setting "log-compression" is not supported`},
		{"multipart-upload=true", `setting "multipart-upload" is not supported`},
		{"compression=gzip", `unknown compression "gzip"`},
		{"compression=none&compression-level=3", "compression-level means nothing with compression=none"},
		{"compression=br&parallel-compression=1", "parallel-compression is not supported with compression=br"},
		{"compression=xz&compression-level=10", "xz compression level 10 is out of range"},
		{"index-debug-info=yes", `index-debug-info "yes" is not a boolean`},
		{"store=/other/store", "only from and for /nix/store"},
		{"bogus=1", `unknown setting "bogus"`},
	} {
		r := runMain(t, "", "push", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.url+"?"+tc.query, p)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || len(readLines(r.stderr)) != 1 {
			t.Errorf("?%s: want exit 2 and one line saying %q, got %s", tc.query, tc.want, r)
		}
	}
	if entries := dirEntries(t, e.cache); len(entries) != 0 {
		t.Errorf("refused pushes wrote %q", entries)
	}
}
