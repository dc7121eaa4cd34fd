package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
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
