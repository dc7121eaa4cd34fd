package nixstore_test

import (
	"reflect"
	"slices"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

// TestClosureByID: Closure (the graph by id, then the records) gives the
// closure a walk by path gives (ClosureOf leaving nothing out), in the
// same order, with the same records, whether it reads by lookups, by
// scanning, or as it chooses. mixed references paths registered in two
// runs, so the order of their ids is not the order of their names.
func TestClosureByID(t *testing.T) {
	s := nixtest.NewStore(t)
	paths := s.Synthetic(t, 6000, 100)
	top, middle := paths[len(paths)-1], paths[2950] // middle: about 30 layers of 100 paths below it
	later := nixtest.SyntheticLayout("u", 10, 0, nil)
	mixed := nixtest.SyntheticLayout("m", 1, 0, []string{paths[0], paths[1], paths[2], paths[3], later[0].Path, later[1].Path, later[2].Path, later[3].Path})
	for _, run := range [][]nixtest.SyntheticPath{later, mixed} {
		if err := nixtest.WriteSynthetic(t.Context(), s.Root, run, nixtest.Env(t)); err != nil {
			t.Fatal(err)
		}
	}
	st := open(t, s)
	nothing := func([]string) map[string]bool { return nil }
	for _, root := range []string{top, middle, mixed[0].Path} {
		infos, err := st.QueryPathInfos(t.Context(), []string{root})
		if err != nil {
			t.Fatal(err)
		}
		walked, err := st.ClosureOf(t.Context(), infos, nothing)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(s.Closure(t, root)); len(walked) != want {
			t.Fatalf("closure of %s walked by path: %d paths, nix-store -qR %d", root, len(walked), want)
		}
		for _, mode := range []struct {
			name  string
			force func() func()
		}{
			{"by lookups", nixstore.LookupOnly},
			{"by scanning", nixstore.ScanOnly},
			{"as chosen", func() func() { return func() {} }},
		} {
			restore := mode.force()
			got, err := st.Closure(t.Context(), []string{root})
			restore()
			if err != nil {
				t.Fatal(err)
			}
			for _, info := range got {
				if !slices.IsSorted(info.References) {
					t.Fatalf("closure of %s read %s: references of %s not sorted: %v", root, mode.name, info.Path, info.References)
				}
			}
			if !reflect.DeepEqual(got, walked) {
				t.Errorf("closure of %s read %s (%d paths) differs from walked by path (%d paths)", root, mode.name, len(got), len(walked))
			}
		}
	}
}
