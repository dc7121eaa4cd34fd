package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// TestPushBadInput: each mistake is reported on one stderr line naming
// what is wrong, with a non-zero exit, and is caught before anything is
// written: the cache directory is not even created.
func TestPushBadInput(t *testing.T) {
	t.Parallel()
	s := nixtest.NewStore(t)
	good := addDirs(t, s, smallDirs(t, "good", 1)...)[0]
	sec, _, _ := nixtest.Keygen(t, "bad-input-1")
	secBytes, err := os.ReadFile(sec)
	if err != nil {
		t.Fatal(err)
	}
	keyName, keyB64, _ := strings.Cut(strings.TrimSpace(string(secBytes)), ":")
	keys := t.TempDir()
	garbage := filepath.Join(keys, "garbage.sec")
	writeFile(t, garbage, []byte("this is not a key\n"), 0o600)
	// The real secret with one character changed into one base64 lacks.
	oneOff := filepath.Join(keys, "one-off.sec")
	writeFile(t, oneOff, []byte(keyName+":"+keyB64[:40]+"!"+keyB64[41:]+"\n"), 0o600)
	notADir := filepath.Join(t.TempDir(), "regular-file")
	writeFile(t, notADir, []byte("keep me\n"), 0o644)
	// Nix32 has 32 letters, so they make a well-formed hash part.
	invalid := "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x"
	_, noSchemeErr := os.Lstat("/no")
	// The commands run in-process, in this package's directory.
	workBefore := dirEntries(t, ".")

	for _, tc := range []struct {
		name string
		// args after "push --store ROOT"; CACHE is the cache URL of a
		// directory that does not exist yet.
		args []string
		want []string // in the error line
	}{
		{"not a store path", []string{"--to", "CACHE", "--signing-key", sec, "/etc/passwd"},
			[]string{"/etc/passwd", "not in the Nix store"}},
		{"not valid in the store", []string{"--to", "CACHE", "--signing-key", sec, invalid},
			[]string{invalid, "not a valid path"}},
		{"valid and invalid", []string{"--to", "CACHE", "--signing-key", sec, good, invalid},
			[]string{invalid, "not a valid path"}},
		{"missing key file", []string{"--to", "CACHE", "--signing-key", filepath.Join(keys, "missing.sec"), good},
			[]string{"missing.sec", "no such file"}},
		{"missing key file in URL", []string{"--to", "CACHE?secret-key=" + filepath.Join(keys, "missing.sec"), good},
			[]string{"missing.sec", "no such file"}},
		{"garbage key file", []string{"--to", "CACHE", "--signing-key", garbage, good},
			[]string{"garbage.sec", "not a Nix secret key"}},
		{"key with a bad character", []string{"--to", "CACHE", "--signing-key", oneOff, good},
			[]string{"one-off.sec", "not a Nix secret key"}},
		{"unknown compression flag", []string{"--to", "CACHE", "--compression", "lz4", "--signing-key", sec, good},
			[]string{`unknown compression "lz4"`}},
		{"unknown compression in URL", []string{"--to", "CACHE?compression=lz4", "--signing-key", sec, good},
			[]string{`unknown compression "lz4"`}},
		{"unknown URL setting", []string{"--to", "CACHE?compresion=zstd", "--signing-key", sec, good},
			[]string{`unknown setting "compresion"`}},
		{"no --to", []string{"--signing-key", sec, good},
			[]string{"--to is required"}},
		{"ftp URL", []string{"--to", "ftp://x", "--signing-key", sec, good},
			[]string{`scheme "ftp"`}},
		{"URL without scheme", []string{"--to", "/no/scheme", "--signing-key", sec, good},
			[]string{"cache URL", "no scheme"}},
		{"file URL with a host", []string{"--to", "file://host/x", "--signing-key", sec, good},
			[]string{"cache URL", "three slashes"}},
		{"cache dir below a file", []string{"--to", "file://" + notADir + "/cache", "--signing-key", sec, good},
			[]string{notADir, "not a directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cache := filepath.Join(t.TempDir(), "cache")
			args := []string{"--store", s.Root}
			for _, a := range tc.args {
				args = append(args, strings.Replace(a, "CACHE", "file://"+cache, 1))
			}
			state := t.TempDir()
			r := pushMain(t, state, "", args...)
			if r.code == 0 || r.stdout != "" {
				t.Errorf("want a non-zero exit and empty stdout, got %s", r)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.HasPrefix(lines[0], "nixpush: error: ") {
				t.Errorf("want exactly one \"nixpush: error: \" line on stderr, got:\n%s", r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			// Secrets stay out of messages: no 12 characters of the key.
			for i := 0; i+12 <= len(keyB64); i++ {
				if strings.Contains(r.stderr, keyB64[i:i+12]) {
					t.Fatalf("stderr shows part of the secret key (%q):\n%s", keyB64[i:i+12], r.stderr)
				}
			}
			for dir, what := range map[string]string{cache: "cache", state: "state"} {
				if got := dirEntries(t, dir); len(got) > 0 {
					t.Errorf("%s dir %s has %q after bad input", what, dir, got)
				}
			}
		})
	}
	t.Cleanup(func() {
		// The subtests ran in parallel; they are done by now.
		if b, err := os.ReadFile(notADir); err != nil || !bytes.Equal(b, []byte("keep me\n")) {
			t.Errorf("%s changed: %q, %v", notADir, b, err)
		}
		if got := dirEntries(t, "."); !slices.Equal(got, workBefore) {
			t.Errorf("bad input changed the working directory: %q, was %q", got, workBefore)
		}
		if _, err := os.Lstat("/no"); noSchemeErr != nil && err == nil {
			t.Errorf("--to /no/scheme created /no")
		}
	})
}

// TestPushRejectsCorruptSigningKey: a secret key file whose base64 is
// intact but whose bytes were altered (one character changed) is not a key
// Nix can verify anything by. Accepting it would fill the cache with
// narinfos no client trusts, and push would still report success.
func TestPushRejectsCorruptSigningKey(t *testing.T) {
	t.Parallel()
	s := nixtest.NewStore(t)
	// Built, so input-addressed: Nix takes a content-addressed path
	// (nix-store --add) from a cache whatever its signatures.
	p := s.Build(t, nixtest.FibChain("corrupt-key", 0))[0]
	sec, _, pub := nixtest.Keygen(t, "corrupt-key-1")
	b, err := os.ReadFile(sec)
	if err != nil {
		t.Fatal(err)
	}
	name, b64, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	for _, tc := range []struct {
		name string
		at   int // index into the base64 of the 64 bytes (seed ‖ public key)
	}{
		{"seed", 10},
		{"public half", 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := byte('A')
			if b64[tc.at] == c {
				c = 'B'
			}
			bad := filepath.Join(t.TempDir(), "corrupt.sec")
			writeFile(t, bad, []byte(name+":"+b64[:tc.at]+string(c)+b64[tc.at+1:]+"\n"), 0o600)
			cache := filepath.Join(t.TempDir(), "cache")
			url := "file://" + cache
			r := pushMain(t, t.TempDir(), "", "--store", s.Root, "--to", url, "--signing-key", bad, p)
			if r.code != 0 {
				if lines := readLines(r.stderr); len(lines) != 1 || !strings.Contains(lines[0], "corrupt.sec") ||
					slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, b64[:20]) }) {
					t.Errorf("want one error line naming the key file, got:\n%s", r.stderr)
				}
				return
			}
			out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), url, pub, p)
			t.Errorf("push accepted a corrupt signing key and exited 0 (%q); Nix trusting %s then says: %v\n%s",
				strings.TrimSpace(r.stderr), pub, err, out)
		})
	}
}

// TestPushFailureNamesPath: a path whose files no longer match the Nix DB
// cannot be pushed, and neither can what refers to it. Push exits non-zero,
// names each path with its reason, and writes neither narinfo.
func TestPushFailureNamesPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "broken-1")
	s := e.store
	ref := s.Build(t, nixtest.WithReference("broken")) // [dep, top]
	ok := s.Build(t, nixtest.FibChain("broken", 0))[0]
	greeting := filepath.Join(s.Real(ref[0]), "greeting")
	if err := os.Chmod(filepath.Dir(greeting), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(greeting, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, greeting, []byte("tampered\n"), 0o644)

	r := e.push("", ref[1], ok)
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("want a non-zero exit and empty stdout, got %s", r)
	}
	lines := readLines(r.stderr)
	for _, want := range [][]string{
		{"pushed 1 path,", "2 failed"},
		{ref[0], "NAR hash mismatch"},
		{ref[1]},
	} {
		if !slices.ContainsFunc(lines, func(l string) bool {
			return !strings.HasPrefix(l, "{") && containsAll(l, want...)
		}) {
			t.Errorf("no stderr line (other than logs) has %q:\n%s", want, r.stderr)
		}
	}
	if got := sortedKeys(checkCache(t, e.cache)); !slices.Equal(got, []string{ok}) {
		t.Errorf("narinfos in the cache: %q, want only %s", got, ok)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
