package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
	"nixpush/nixstore"
)

// TestPushCAChain: push uploads the realisations of content-addressed
// outputs, so a fresh store with ca-derivations building the same
// expression substitutes instead of building; verify checks realisations
// (their output's narinfo, their signatures).
func TestPushCAChain(t *testing.T) {
	e := newEnv(t, "ca-push-1")
	out, _, err := e.store.Run(t, "nix-build", "--no-out-link", "--option", "experimental-features", nixtest.CAFeatures,
		"-E", "("+nixtest.CAChain+").b")
	if err != nil {
		t.Fatal(err)
	}
	b := strings.TrimSpace(out)
	if r := e.push("", b); r.code != 0 {
		t.Fatalf("push:\n%s", r)
	}
	docs, _ := filepath.Glob(filepath.Join(e.cache, "realisations", "*.doi"))
	if len(docs) < 2 {
		t.Fatalf("realisations in the cache: %q, want a and b's", docs)
	}
	fresh := &nixtest.Store{Root: filepath.Join(t.TempDir(), "fresh")}
	_, stderr, err := fresh.Run(t, "nix-build", "--no-out-link", "--option", "experimental-features", nixtest.CAFeatures,
		"--option", "substituters", e.url, "--option", "trusted-public-keys", e.pub, "-E", "("+nixtest.CAChain+").b")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "building '") || !strings.Contains(stderr, "copying path '"+b+"' from") {
		t.Fatalf("the fresh store did not substitute %s:\n%s", b, stderr)
	}

	verify := func(key string) result {
		return runMain(t, "", "verify", "--to", e.url, "--trusted-key", key)
	}
	if r := verify(e.pub); r.code != 0 {
		t.Fatalf("verify of a pushed CA chain:\n%s", r)
	}
	_, _, other := nixtest.Keygen(t, "someone-else-1")
	if r := verify(other); r.code != 1 || !strings.Contains(r.stdout, "bad-realisation") {
		t.Errorf("verify trusting another key should report the realisations:\n%s", r)
	}
	// A realisation naming an output the cache lacks.
	text, err := os.ReadFile(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(text), `"outPath":"`, `"outPath":"00000000000000000000000000000000-`, 1)
	if err := os.WriteFile(docs[0], []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := verify(e.pub); r.code != 1 || !strings.Contains(r.stdout, "output's narinfo is missing") {
		t.Errorf("verify of a realisation naming a missing output:\n%s", r)
	}
}

// TestPushLogsAndListings: a push of built outputs uploads their build
// logs as nix store copy-log does, and with --nar-listing the .ls listing
// Nix writes with write-nar-listing=1, byte for byte.
func TestPushLogsAndListings(t *testing.T) {
	e := newEnv(t, "extras-1")
	outs := fibOutputs(t, e.store, "extras", 3)
	if r := e.push("", append([]string{"--nar-listing"}, outs...)...); r.code != 0 {
		t.Fatalf("push:\n%s", r)
	}
	ref := t.TempDir()
	if _, _, err := e.store.Run(t, "nix", "copy", "--to", "file://"+ref+"?write-nar-listing=1&compression=none", outs[len(outs)-1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Run(t, "nix", "store", "copy-log", "--to", "file://"+ref, outs[len(outs)-1]); err != nil {
		t.Fatal(err)
	}
	top := outs[len(outs)-1]
	for _, obj := range []string{hashPart(top) + ".ls", "log/" + filepath.Base(deriver(t, e.store, top))} {
		want, err := os.ReadFile(filepath.Join(ref, obj))
		if err != nil {
			t.Fatalf("Nix wrote no %s: %v", obj, err)
		}
		got, err := os.ReadFile(filepath.Join(e.cache, obj))
		if err != nil {
			t.Fatalf("nixpush wrote no %s: %v", obj, err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from Nix's:\nnixpush %q\nNix     %q", obj, got, want)
		}
	}
	// Nix lists the pushed tree from the cache. (Nix 2.8 fetches the NAR
	// for this and does not read the .ls: compared byte for byte above.)
	ls, _, err := nixtest.Command(t, "nix", "--extra-experimental-features", "nix-command",
		"store", "ls", "--store", e.url, "-lR", top)
	if err != nil || !strings.Contains(ls, "fib.txt") {
		t.Errorf("nix store ls of the pushed path: %v\n%s", err, ls)
	}
	// --no-logs: none.
	other := t.TempDir()
	if r := runMain(t, "", "push", "--store", e.store.Root, "--state-dir", t.TempDir(), "--to", "file://"+other,
		"--signing-key", e.sec, "--no-logs", top); r.code != 0 {
		t.Fatalf("push --no-logs:\n%s", r)
	}
	if logs, _ := filepath.Glob(filepath.Join(other, "log", "*")); len(logs) != 0 {
		t.Errorf("push --no-logs uploaded %q", logs)
	}
}

// TestPushCARealisationsBothFormats: a push of CA outputs writes each
// realisation as Nix 2.4–2.34 read it (realisations/) and, for the
// resolved derivation, as Nix 2.35 reads it (build-trace-v2/), signed by
// the cache's key; a realisation deleted from the cache is written again
// by the next push at default settings, and reported and restored by
// verify (--repair); then a fresh store with ca-derivations substitutes.
// On file:// and over HTTP (nginx).
func TestPushCARealisationsBothFormats(t *testing.T) {
	for _, backend := range []string{"file", "nginx"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "ca-formats-1")
			if backend == "nginx" {
				srv := servertest.StartNginx(t, "")
				e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
			}
			expr := "(" + nixtest.CAChain + ").b"
			out, _, err := e.store.Run(t, "nix-build", "--no-out-link", "--option", "experimental-features", nixtest.CAFeatures, "-E", expr)
			if err != nil {
				t.Fatal(err)
			}
			b := strings.TrimSpace(out)
			if r := e.push("", b); r.code != 0 {
				t.Fatalf("push:\n%s", r)
			}
			objects := realisationObjects(t, e)
			traces := 0
			for key, outPath := range objects {
				drv, output, ok := cache.ParseBuildTraceKey(key)
				if !ok {
					continue
				}
				traces++
				if got := deriver(t, e.store, outPath); filepath.Base(got) != drv {
					t.Errorf("%s: the build trace names %s, the output's deriver (its resolved derivation) is %s", key, drv, got)
				}
				_, sigs, err := cache.ParseBuildTraceDoc([]byte(mustRead(t, filepath.Join(e.cache, key))))
				fp, _ := cache.BuildTraceFingerprint(drv, output, outPath)
				pub, _ := signature.ParsePublicKey(e.pub)
				if err != nil || len(sigs) != 1 || !pub.Verify(fp, sigs[0]) {
					t.Errorf("%s: signatures %v (%v), want one by %s over %s", key, sigs, err, e.keyName, fp)
				}
			}
			if traces != 2 || len(objects) != 5 {
				t.Fatalf("realisation objects %v: want a's and b's build trace entries and 3 realisations/ (b has two)", objects)
			}
			removeRealisationsOf := func(p string) {
				t.Helper()
				for key, outPath := range objects {
					if outPath == p {
						if err := os.Remove(filepath.Join(e.cache, key)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}

			removeRealisationsOf(b)
			if r := e.push("", b); r.code != 0 {
				t.Fatalf("push again:\n%s", r)
			}
			if got := realisationObjects(t, e); len(got) != len(objects) {
				t.Fatalf("after a second push: %v, want %v back", got, objects)
			}
			substituteCA(t, e, expr, b)

			a := strings.TrimSpace(mustRun(t, e.store, "nix-build", "--no-out-link", "--option", "experimental-features", nixtest.CAFeatures, "-E", "("+nixtest.CAChain+").a"))
			removeRealisationsOf(a)
			r := runMain(t, "", "verify", "--store", e.store.Root, "--to", e.to, "--trusted-key", e.pub)
			if r.code != 1 || strings.Count(r.stdout, "missing-realisation ") != 2 {
				t.Fatalf("verify of a cache lacking a's realisations: want exit 1 and two missing-realisation:\n%s", r)
			}
			r = runMain(t, "", "verify", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", e.to, "--trusted-key", e.pub,
				"--signing-key", e.sec, "--repair")
			if r.code != 0 {
				t.Fatalf("verify --repair:\n%s", r)
			}
			if got := realisationObjects(t, e); len(got) != len(objects) {
				t.Fatalf("after verify --repair: %v, want %v back", got, objects)
			}
			substituteCA(t, e, expr, b)
		})
	}
}

// realisationObjects maps the cache's realisation objects (both formats)
// to the output path each names.
func realisationObjects(t *testing.T, e *testEnv) map[string]string {
	t.Helper()
	objects := map[string]string{}
	for _, pattern := range []string{"realisations/*.doi", "build-trace-v2/*/*.doi"} {
		files, _ := filepath.Glob(filepath.Join(e.cache, pattern))
		for _, f := range files {
			var doc struct{ OutPath string }
			if err := json.Unmarshal([]byte(mustRead(t, f)), &doc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			key, _ := filepath.Rel(e.cache, f)
			objects[key] = nixstore.StoreDir + "/" + doc.OutPath
		}
	}
	return objects
}

// substituteCA builds expr in a fresh store with ca-derivations and only
// the env's cache as substituter, and wants out substituted, not built.
func substituteCA(t *testing.T, e *testEnv, expr, out string) {
	t.Helper()
	fresh := &nixtest.Store{Root: filepath.Join(t.TempDir(), "fresh")}
	_, stderr, err := fresh.Run(t, "nix-build", "--no-out-link", "--option", "experimental-features", nixtest.CAFeatures,
		"--option", "substituters", e.url, "--option", "trusted-public-keys", e.pub, "-E", expr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "building '") || !strings.Contains(stderr, "copying path '"+out+"' from") {
		t.Fatalf("the fresh store did not substitute %s:\n%s", out, stderr)
	}
}

// mustRun runs a Nix command on s and returns its stdout.
func mustRun(t *testing.T, s *nixtest.Store, name string, args ...string) string {
	t.Helper()
	out, _, err := s.Run(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
