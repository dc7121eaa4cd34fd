package nixstore_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

// logExpr builds derivations whose logs differ: lines on stdout and
// stderr with bytes that are not UTF-8, and nothing at all.
const logExpr = `let mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; " + script + "; echo > $out") ];
  };
in {
  loud = mk "log-loud" "echo to stdout; printf 'to stderr \\377\\n' >&2; seq 1 2000";
  silent = mk "log-silent" "true";
}`

// readLog reads the whole build log of drv from st.
func readLog(t *testing.T, st *nixstore.Store, drv string) ([]byte, error) {
	t.Helper()
	r, err := st.OpenBuildLog(drv)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// TestOpenBuildLogMatchesCopyLog compares OpenBuildLog with what
// `nix store copy-log --to file://` uploads, for logs Nix compressed, one it
// did not, and one moved to the older flat layout.
func TestOpenBuildLogMatchesCopyLog(t *testing.T) {
	s := nixtest.NewStore(t)
	var drvs []string
	for _, out := range s.Build(t, logExpr) {
		drvs = append(drvs, deriverOf(t, s, out))
	}
	plainOut, _, err := s.Run(t, "nix-build", "--no-out-link", "--option", "compress-build-log", "false",
		"-E", strings.Replace(logExpr, "log-", "plain-log-", -1), "-A", "loud")
	if err != nil {
		t.Fatal(err)
	}
	drvs = append(drvs, deriverOf(t, s, strings.TrimSpace(plainOut)))

	// Move the silent log to drvs/<basename>.bz2, where old Nix put logs.
	st := open(t, s)
	silent := filepath.Base(drvs[1])
	if err := os.Rename(filepath.Join(st.LogDir(), "drvs", silent[:2], silent[2:]+".bz2"),
		filepath.Join(st.LogDir(), "drvs", silent+".bz2")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(st.LogDir(), "drvs", filepath.Base(drvs[2])[:2], filepath.Base(drvs[2])[2:])); err != nil {
		t.Fatalf("compress-build-log=false did not leave a plain log: %v", err)
	}

	cache := t.TempDir()
	if _, _, err := s.Run(t, "nix", append([]string{"store", "copy-log", "--to", "file://" + cache}, drvs...)...); err != nil {
		t.Fatal(err)
	}
	for _, drv := range drvs {
		t.Run(filepath.Base(drv), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(cache, "log", filepath.Base(drv)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readLog(t, st, drv)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("log of %s:\n got  %q\n want %q", drv, got, want)
			}
		})
	}
	if got, _ := readLog(t, st, drvs[0]); !bytes.Contains(got, []byte("to stderr \xff\n")) {
		t.Errorf("the loud log lacks its stderr line: %q", got)
	}
}

func TestOpenBuildLogMissingOrDamaged(t *testing.T) {
	s := nixtest.NewStore(t)
	st := open(t, s)
	drv := "/nix/store/00000000000000000000000000000000-x.drv"
	if _, err := readLog(t, st, drv); !errors.Is(err, nixstore.ErrNoBuildLog) {
		t.Fatalf("no log: err = %v, want ErrNoBuildLog", err)
	}
	if _, err := st.OpenBuildLog("/nix/store/00000000000000000000000000000000-x"); err == nil ||
		errors.Is(err, nixstore.ErrNoBuildLog) {
		t.Errorf("an output path instead of a .drv: err = %v, want a usage error", err)
	}

	// A .bz2 that is not bzip2 is skipped, as Nix skips it.
	dir := filepath.Join(st.LogDir(), "drvs", "00")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bz := filepath.Join(dir, "000000000000000000000000000000-x.drv.bz2")
	if err := os.WriteFile(bz, []byte("plain text, not bzip2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readLog(t, st, drv); !errors.Is(err, nixstore.ErrNoBuildLog) {
		t.Fatalf("non-bzip2 .bz2: err = %v, want ErrNoBuildLog", err)
	}
	// A bzip2 stream cut short fails while reading.
	if err := os.WriteFile(bz, []byte("BZh91AY&SY\x00\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readLog(t, st, drv); !errors.Is(err, nixstore.ErrCorruptBuildLog) {
		t.Fatalf("truncated bzip2: err = %v, want ErrCorruptBuildLog", err)
	}
}
