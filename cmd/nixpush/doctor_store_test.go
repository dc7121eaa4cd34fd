package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/doctor"
	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestDoctorStore: doctor --store ROOT checks paths of a chroot store,
// named by their files under ROOT or by a ./result-like link, and
// compares each narinfo with the local store: the same build passes, a
// cache holding another build of the path fails, naming both hashes. On
// file:// and over HTTP (nginx). Not parallel: NIX_CONF_DIR.
func TestDoctorStore(t *testing.T) {
	// An impure output: two stores build the same path with other bytes.
	expr := nixtest.Derivations("doctor-store", `
  impure = mk "impure" "cat /proc/sys/kernel/random/uuid > $out/id";`, "impure")
	mine, other := nixtest.NewStore(t), nixtest.NewStore(t)
	out := mine.Build(t, expr)[0]
	if got := other.Build(t, expr)[0]; got != out {
		t.Fatalf("the two stores built %s and %s", out, got)
	}
	sec, _, pub := nixtest.Keygen(t, "doctor-store-1")
	srv := servertest.StartNginx(t, "")
	for name, url := range map[string]string{"file": "file://" + t.TempDir(), "nginx": srv.URL()} {
		// The cache holds the other store's build.
		if r := runMain(t, "", "push", "--store", other.Root, "--state-dir", t.TempDir(), "--to", url, "--signing-key", sec, out); r.code != 0 {
			t.Fatalf("%s: push: %s", name, r)
		}
		conf := t.TempDir()
		writeFile(t, filepath.Join(conf, "nix.conf"), []byte("substituters = "+url+"\ntrusted-public-keys = "+pub+"\n"), 0o644)
		t.Setenv("NIX_CONF_DIR", conf)
		link := filepath.Join(t.TempDir(), "result")
		if err := os.Symlink(out, link); err != nil {
			t.Fatal(err)
		}
		for store, want := range map[*nixtest.Store]doctor.Status{other: doctor.OK, mine: doctor.Fail} {
			for _, arg := range []string{store.Real(out), link} {
				r := runMain(t, "", "doctor", url, "--key", pub, "--store", store.Root, "--json", arg)
				var rep doctor.Report
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("%s: doctor --json: %v\n%s", name, err, r)
				}
				var local *doctor.Check
				for i, ch := range rep.Checks {
					if ch.Name == doctor.CheckLocal && ch.Path == out {
						local = &rep.Checks[i]
					}
					if ch.Status == doctor.Fail && ch.Name != doctor.CheckLocal {
						t.Errorf("%s: doctor %s: check %s failed: %s", name, arg, ch.Name, ch.Detail)
					}
				}
				if local == nil || local.Status != want || (want == doctor.Fail && !strings.Contains(local.Detail, "another build")) {
					t.Errorf("%s: doctor --store %s %s: local-store check %+v, want %s\n%s", name, store.Root, arg, local, want, r)
				}
			}
		}
		// Real Nix agrees: the other store's build substitutes.
		if o, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), url, pub, out); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, o)
		}
	}
}
