package nixstore_test

import (
	"reflect"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

// TestClosureByScan: a closure read by scanning the DB is the one read
// path by path, in the same order, with the same records; Closure takes
// the scan for a closure that is most of a store of more than scanMin
// paths and gives the same answer either way.
func TestClosureByScan(t *testing.T) {
	s := nixtest.NewStore(t)
	paths := s.Synthetic(t, 6000, 100)
	top, middle := paths[len(paths)-1], paths[2950] // middle: about 30 layers of 100 paths below it
	st := open(t, s)
	for _, root := range []string{top, middle} {
		restore := nixstore.WalkOnly()
		walked, err := st.Closure(t.Context(), []string{root})
		restore()
		if err != nil {
			t.Fatal(err)
		}
		scanned, err := st.ClosureByScan(t.Context(), []string{root})
		if err != nil {
			t.Fatal(err)
		}
		chosen, err := st.Closure(t.Context(), []string{root})
		if err != nil {
			t.Fatal(err)
		}
		if want := len(s.Closure(t, root)); len(walked) != want {
			t.Fatalf("closure of %s walked: %d paths, nix-store -qR %d", root, len(walked), want)
		}
		if !reflect.DeepEqual(scanned, walked) {
			t.Errorf("closure of %s: scanned (%d paths) differs from walked (%d paths)", root, len(scanned), len(walked))
		}
		if !reflect.DeepEqual(chosen, walked) {
			t.Errorf("closure of %s: Closure (%d paths) differs from walked (%d paths)", root, len(chosen), len(walked))
		}
	}
}
