package main

// End-to-end tests of the http(s):// backend: the nixpush binary pushes
// to a real nginx (WebDAV PUT) and real Nix substitutes over HTTP.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestPushHTTPSubstitutes pushes build outputs (one with a runtime
// reference) to nginx and has Nix substitute every one of them from
// http://127.0.0.1:PORT, trusting only the signing key.
func TestPushHTTPSubstitutes(t *testing.T) {
	t.Parallel()
	s := nixtest.NewStore(t)
	fib := fibOutputs(t, s, "http", 5)
	ref := s.Build(t, nixtest.WithReference("http")) // [dep, top]
	sec, _, pub := nixtest.Keygen(t, "http-push-1")
	ng := servertest.StartNginx(t, "")
	base, cacheDir := ng.URL(), ng.CacheDir

	args := append([]string{"--store", s.Root, "--to", base + "/?compression=zstd", "--signing-key", sec, ref[1]}, fib...)
	r := pushMain(t, t.TempDir(), "", args...)
	all := append(slices.Clone(fib), ref...) // dep comes in as top's reference
	wantSuccess(t, r, len(all), 0, 0, 0)
	// nginx stored the objects as files: check them as Nix reads them.
	infos := checkCache(t, cacheDir)
	if got := sortedKeys(infos); !slices.Equal(got, sortedCopy(all)) {
		t.Fatalf("narinfos on the server: %q\nwant %q", got, sortedCopy(all))
	}
	for _, p := range all {
		if len(infos[p].sigs) != 1 || !strings.HasPrefix(infos[p].sigs[0], "http-push-1:") {
			t.Errorf("%s: Sig %q, want one by http-push-1", p, infos[p].sigs)
		}
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	out, err := nixtest.Substitute(t, fresh, base, pub, append(slices.Clone(fib), ref[1])...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, base, all)
	sameNARs(t, s, fresh, all)

	// Everything is there now: a second push finds it all with HEAD.
	r = pushMain(t, t.TempDir(), "", args...)
	wantSuccess(t, r, 0, len(all), 0, 0)
}

// TestPushHTTPToken pushes to an nginx that wants a bearer token: a wrong
// one fails at once with a message saying what to fix and not showing the
// token; the right one, from --token-file or NIXPUSH_TOKEN, works.
func TestPushHTTPToken(t *testing.T) {
	t.Parallel()
	const token, wrong = "e2e-right-token-4f1c", "e2e-wrong-token-77aa"
	s := nixtest.NewStore(t)
	paths := addDirs(t, s, smallDirs(t, "http-token", 2)...)
	sec, _, _ := nixtest.Keygen(t, "http-token-1")
	ng := servertest.StartNginx(t, servertest.Bearer(token))
	base, cacheDir := ng.URL(), ng.CacheDir
	dir := t.TempDir()
	wrongFile, tokenFile := filepath.Join(dir, "wrong"), filepath.Join(dir, "token")
	writeFile(t, wrongFile, []byte(wrong+"\n"), 0o600)
	writeFile(t, tokenFile, []byte(token+"\n"), 0o600)
	state := t.TempDir()
	common := []string{"--store", s.Root, "--to", base, "--signing-key", sec}

	r := pushMain(t, state, "", append(slices.Clone(common), "--token-file", wrongFile, paths[0])...)
	if r.code != exitPermanent || r.stdout != "" {
		t.Fatalf("push with a wrong token: want exit %d (credentials refused when the cache is opened, as the README's table says) and empty stdout, got %s", exitPermanent, r)
	}
	if !strings.Contains(r.stderr, "401 Unauthorized") || !strings.Contains(r.stderr, wrongFile+" (--token-file)") {
		t.Errorf("push with a wrong token should name the 401 and the token file:\n%s", r.stderr)
	}
	t.Logf("push with a wrong token says:\n%s", r.stderr)
	if strings.Contains(r.stderr, wrong) || strings.Contains(r.stderr, token) {
		t.Errorf("push output shows a token:\n%s", r.stderr)
	}
	if entries := dirEntries(t, cacheDir); len(entries) != 0 {
		t.Errorf("a refused push left %q on the server", entries)
	}

	r = pushMain(t, state, "", append(slices.Clone(common), "--token-file", tokenFile, paths[0])...)
	wantSuccess(t, r, 1, 0, 0, 0)

	// NIXPUSH_TOKEN, for when a file is inconvenient: in a process of its
	// own, as the environment of this one is shared by parallel tests.
	cmd := binCmd(t, append([]string{"push", "--state-dir", state}, append(slices.Clone(common), paths[1])...)...)
	cmd.Env = append(cmd.Env, "NIXPUSH_TOKEN="+token)
	if r := runCmd(t, cmd, ""); r.code != 0 {
		t.Fatalf("push with NIXPUSH_TOKEN: %s", r)
	}
	if got := sortedKeys(checkCache(t, cacheDir)); !slices.Equal(got, sortedCopy(paths)) {
		t.Errorf("narinfos on the server: %q, want %q", got, sortedCopy(paths))
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "nix-cache-info")); err != nil {
		t.Errorf("nix-cache-info: %v", err)
	}
}

// TestDaemonHTTPServerRestart: the cache server goes away while the daemon
// runs; what is built meanwhile waits in the queue with the error, and is
// pushed, without restarting the daemon, once the server is back.
func TestDaemonHTTPServerRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "http-restart-1")
	srv := servertest.StartNginx(t, "")
	e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
	d := e.startDaemon("daemon")

	before := fibOutputs(t, e.store, "http-up", 3)
	d.waitFor(30*time.Second, "paths built while the server is up to be pushed", func() bool { return e.allPushed(before) })

	srv.Stop()
	during := fibOutputs(t, e.store, "http-down", 3)
	d.waitFor(30*time.Second, "the paths built while the server is down to wait with an error", func() bool {
		st := e.status()
		return st.Pending >= len(during) && len(st.Queues) == 1 && len(st.Queues[0].Retrying) > 0
	})
	if st := e.status(); !strings.Contains(st.Queues[0].Retrying[0].Error, "refused") {
		t.Errorf("retrying error %q does not say the connection was refused", st.Queues[0].Retrying[0].Error)
	}
	if e.allPushed(during) {
		t.Fatal("paths were pushed while the server was down")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	d.waitFor(60*time.Second, "the queue to drain once the server is back", func() bool {
		return e.allDone(during) && e.allPushed(during)
	})
	checkCache(t, e.cache)
	fresh := filepath.Join(t.TempDir(), "fresh")
	out, err := nixtest.Substitute(t, fresh, e.url, e.pub, during...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, e.url, during)
	if n := len(d.logsWith("cache recovered")); n != 1 {
		t.Errorf("%d \"cache recovered\" lines, want 1", n)
	}
}
