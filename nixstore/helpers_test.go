package nixstore_test

import (
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

// open opens the nixstore view of a private test store.
func open(t *testing.T, s *nixtest.Store) *nixstore.Store {
	t.Helper()
	st, err := nixstore.Open(s.Root)
	if err != nil {
		t.Fatalf("open store %s: %v", s.Root, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// nixQuery runs nix-store -q with args against s and returns the fields of
// its output.
func nixQuery(t *testing.T, s *nixtest.Store, args ...string) []string {
	t.Helper()
	out, _, err := s.Run(t, "nix-store", append([]string{"-q"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out)
}

// deriverOf asks Nix for the .drv an output was built from.
func deriverOf(t *testing.T, s *nixtest.Store, out string) string {
	t.Helper()
	d := nixQuery(t, s, "--deriver", out)
	if len(d) != 1 || !strings.HasSuffix(d[0], ".drv") {
		t.Fatalf("deriver of %s = %q", out, d)
	}
	return d[0]
}
