package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMalformedURLsNeverLeakSecrets feeds URLs whose password breaks
// parsing to every command that takes a cache URL and checks that no
// output repeats the password.
func TestMalformedURLsNeverLeakSecrets(t *testing.T) {
	const secret = "s3cretPW"
	urls := []string{
		"https://user:" + secret + "%zz@host/",
		"https://user:" + secret + "@host:port/",
		"https://user:12#" + secret + "@host/",
		"s3://user:" + secret + "%zz@bucket/",
		"ftp://user:" + secret + "@host/",
		"https://user:" + secret + "@host/?unknown-setting=1",
		"file://user:" + secret + "@host/dir",
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	t.Setenv("NIXPUSH_CONFIG", "")
	t.Setenv("NIXPUSH_STATE_DIR", state)
	for _, u := range urls {
		cfg := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(cfg, []byte("to = \""+u+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"push", "--to", u, "/nix/store/00000000000000000000000000000000-x"},
			{"watch-store", "--to", u},
			{"watch-exec", "--to", u, "--", "true"},
			{"enqueue", "--to", u, "/nix/store/00000000000000000000000000000000-x"},
			{"status", "--to", u},
			{"retry", "--to", u, "--failed"},
			{"config", "check", "--config", cfg},
			{"config", "check", "--config", cfg, "--for", "push"},
			{"push", "--config", cfg, "/nix/store/00000000000000000000000000000000-x"},
		} {
			r := runMain(t, "", args...)
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("nixpush %s leaks the password:\n%s", strings.Join(args, " "), r)
			}
			if args[0] != "config" && r.code == 0 {
				t.Errorf("nixpush %s succeeded with a malformed URL", strings.Join(args, " "))
			}
		}
	}
}
