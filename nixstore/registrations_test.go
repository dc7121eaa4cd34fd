package nixstore_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

// allValid lists every valid path of s, as Nix sees them.
func allValid(t *testing.T, s *nixtest.Store) []string {
	t.Helper()
	out, _, err := s.Run(t, "nix", "path-info", "--all")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out)
}

func maxID(t *testing.T, st *nixstore.Store) int64 {
	t.Helper()
	id, err := st.MaxID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRegistrations(t *testing.T) {
	s := nixtest.NewStore(t)
	st := open(t, s)
	if id := maxID(t, st); id != 0 {
		t.Errorf("MaxID of an empty store = %d, want 0", id)
	}
	if regs, err := st.RegisteredAfter(t.Context(), 0, 10); err != nil || len(regs) != 0 {
		t.Errorf("RegisteredAfter(0) in an empty store = %v, %v", regs, err)
	}

	s.Build(t, nixtest.FibChain("reg", 2))
	mark := maxID(t, st)
	before := allValid(t, s)
	if mark < int64(len(before)) {
		t.Errorf("MaxID = %d after registering %d paths", mark, len(before))
	}

	newOut := s.Build(t, nixtest.WithReference("reg"))
	added := slices.DeleteFunc(allValid(t, s), func(p string) bool { return slices.Contains(before, p) })
	// Two .drv files and two outputs.
	if len(added) != 4 {
		t.Fatalf("building WithReference added %q, want 4 paths", added)
	}
	newMark := maxID(t, st)
	if newMark < mark+int64(len(added)) {
		t.Errorf("MaxID went from %d to %d after %d registrations", mark, newMark, len(added))
	}

	regs, err := st.RegisteredAfter(t.Context(), mark, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, r := range regs {
		if r.ID <= mark || (i > 0 && r.ID <= regs[i-1].ID) {
			t.Errorf("registration %d has id %d: want ids above %d, ascending", i, r.ID, mark)
		}
		got = append(got, r.Path)
	}
	if len(regs) > 0 && regs[len(regs)-1].ID != newMark {
		t.Errorf("last registration id %d, MaxID %d", regs[len(regs)-1].ID, newMark)
	}
	slices.Sort(got)
	slices.Sort(added)
	if !slices.Equal(got, added) {
		t.Errorf("RegisteredAfter(%d) = %q, want the new paths %q", mark, got, added)
	}
	// A dependency is registered before its referrer.
	if i, j := slices.IndexFunc(regs, func(r nixstore.Registration) bool { return r.Path == newOut[0] }),
		slices.IndexFunc(regs, func(r nixstore.Registration) bool { return r.Path == newOut[1] }); i < 0 || j < 0 || i > j {
		t.Errorf("dep at %d, top at %d in %v", i, j, regs)
	}

	limited, err := st.RegisteredAfter(t.Context(), mark, 2)
	if err != nil || len(limited) != 2 || limited[0] != regs[0] || limited[1] != regs[1] {
		t.Errorf("RegisteredAfter(%d, limit 2) = %v, %v; want %v", mark, limited, err, regs[:2])
	}
	if rest, err := st.RegisteredAfter(t.Context(), newMark, 100); err != nil || len(rest) != 0 {
		t.Errorf("RegisteredAfter(MaxID) = %v, %v; want nothing", rest, err)
	}

	// MaxID follows the autoincrement sequence, not max(id): deleting the
	// newest path must not move the high-water mark backwards.
	newest := regs[len(regs)-1].Path
	if _, _, err := s.Run(t, "nix-store", "--delete", newest); err != nil {
		t.Fatal(err)
	}
	if _, err := st.QueryPathInfo(t.Context(), newest); !errors.Is(err, nixstore.ErrNotValid) {
		t.Fatalf("%s still valid after nix-store --delete", newest)
	}
	if id := maxID(t, st); id != newMark {
		t.Errorf("MaxID after deleting the newest path = %d, want still %d", id, newMark)
	}
	rest, err := st.RegisteredAfter(t.Context(), mark, 100)
	if err != nil || len(rest) != len(regs)-1 || slices.ContainsFunc(rest, func(r nixstore.Registration) bool { return r.Path == newest }) {
		t.Errorf("RegisteredAfter(%d) after deleting %s = %v, %v", mark, newest, rest, err)
	}
}
