package nixstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

func TestQueryPathInfo(t *testing.T) {
	s := nixtest.NewStore(t)
	out := s.Build(t, nixtest.WithReference("qpi"))
	dep, top := out[0], out[1]
	tree := filepath.Join(t.TempDir(), "added")
	if err := os.WriteFile(tree, []byte("content-addressed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	added := s.Add(t, tree)
	sec, _, _ := nixtest.Keygen(t, "qpi-key")
	if _, _, err := s.Run(t, "nix", "store", "sign", "-k", sec, dep); err != nil {
		t.Fatal(err)
	}

	st := open(t, s)
	for _, p := range []string{dep, top, added} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			info, err := st.QueryPathInfo(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			if info.Path != p || info.ID <= 0 {
				t.Errorf("Path, ID = %q, %d", info.Path, info.ID)
			}
			// The DB holds base16; Nix prints nix32: both must be one digest.
			wantHash := nixQuery(t, s, "--hash", p)
			if got := "sha256:" + nixbase32.EncodeToString(info.NarHash); len(wantHash) != 1 || got != wantHash[0] {
				t.Errorf("NarHash = %s, nix-store -q --hash says %q", got, wantHash)
			}
			if want := nixQuery(t, s, "--size", p); len(want) != 1 || want[0] != strconv.FormatUint(info.NarSize, 10) {
				t.Errorf("NarSize = %d, nix-store -q --size says %q", info.NarSize, want)
			}
			wantRefs := nixQuery(t, s, "--references", p)
			slices.Sort(wantRefs)
			if !slices.Equal(info.References, wantRefs) {
				t.Errorf("References = %q, want sorted %q", info.References, wantRefs)
			}
			wantDeriver := nixQuery(t, s, "--deriver", p)[0]
			if wantDeriver == "unknown-deriver" {
				wantDeriver = ""
			}
			if info.Deriver != wantDeriver {
				t.Errorf("Deriver = %q, want %q", info.Deriver, wantDeriver)
			}
		})
	}

	infos, err := st.QueryPathInfos(t.Context(), []string{top, dep, added})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 || infos[0].Path != top || infos[1].Path != dep || infos[2].Path != added {
		t.Fatalf("QueryPathInfos returned %v, want top, dep, added in that order", infos)
	}
	topInfo, depInfo, addedInfo := infos[0], infos[1], infos[2]

	// top refers to dep (dep-path, greeting's target).
	if !slices.Contains(topInfo.References, dep) || !slices.IsSorted(topInfo.References) {
		t.Errorf("top References = %q: want dep, sorted", topInfo.References)
	}
	if len(depInfo.References) != 0 || len(addedInfo.References) != 0 {
		t.Errorf("dep/added References = %q / %q, want none", depInfo.References, addedInfo.References)
	}
	if !strings.HasSuffix(topInfo.Deriver, "-qpi-ref-top.drv") {
		t.Errorf("top Deriver = %q", topInfo.Deriver)
	}

	// nix-store --add makes a content-addressed path with an empty deriver.
	wantCA := "fixed:r:sha256:" + nixbase32.EncodeToString(addedInfo.NarHash)
	if addedInfo.CA != wantCA || addedInfo.Deriver != "" {
		t.Errorf("added CA, Deriver = %q, %q; want %q, \"\"", addedInfo.CA, addedInfo.Deriver, wantCA)
	}
	if topInfo.CA != "" {
		t.Errorf("built output has CA %q, want none", topInfo.CA)
	}

	// The signature nix store sign put into the DB.
	if len(depInfo.Sigs) != 1 || !strings.HasPrefix(depInfo.Sigs[0], "qpi-key:") ||
		!depInfo.HasSigFrom("qpi-key") || depInfo.HasSigFrom("qpi") || topInfo.HasSigFrom("qpi-key") {
		t.Errorf("dep Sigs = %q, top Sigs = %q", depInfo.Sigs, topInfo.Sigs)
	}
}

func TestQueryPathInfoNotValid(t *testing.T) {
	s := nixtest.NewStore(t)
	valid := s.Build(t, nixtest.FibChain("nv", 1))[0]
	st := open(t, s)
	bogus := "/nix/store/00000000000000000000000000000000-made-up"
	if _, err := st.QueryPathInfo(t.Context(), bogus); !errors.Is(err, nixstore.ErrNotValid) || !strings.Contains(err.Error(), bogus) {
		t.Errorf("QueryPathInfo(made-up) = %v, want ErrNotValid naming the path", err)
	}
	if _, err := st.QueryPathInfos(t.Context(), []string{valid, bogus}); !errors.Is(err, nixstore.ErrNotValid) {
		t.Errorf("QueryPathInfos(valid, made-up) = %v, want ErrNotValid", err)
	}
	if _, err := st.Closure(t.Context(), []string{valid, bogus}); !errors.Is(err, nixstore.ErrNotValid) {
		t.Errorf("Closure(valid, made-up) = %v, want ErrNotValid", err)
	}
	infos, invalid, err := st.QueryValid(t.Context(), []string{bogus, valid, bogus + "2"})
	if err != nil || len(infos) != 1 || infos[0].Path != valid || !slices.Equal(invalid, []string{bogus, bogus + "2"}) {
		t.Errorf("QueryValid(made-up, valid, made-up2) = %v, %q, %v", infos, invalid, err)
	}
}

// checkClosure checks that got is the closure Nix computes for roots, with
// no duplicates and every path after all of its references (as Nix itself
// records them, not as got claims).
func checkClosure(t *testing.T, s *nixtest.Store, got []*nixstore.PathInfo, roots ...string) {
	t.Helper()
	pos := map[string]int{}
	for i, info := range got {
		if _, dup := pos[info.Path]; dup {
			t.Errorf("closure lists %s twice", info.Path)
		}
		pos[info.Path] = i
	}
	want := s.Closure(t, roots...)
	if len(want) != len(got) {
		t.Errorf("closure has %d paths, nix-store -qR %d", len(got), len(want))
	}
	for _, p := range want {
		if _, ok := pos[p]; !ok {
			t.Errorf("closure lacks %s", p)
		}
	}
	for i, info := range got {
		for _, ref := range nixQuery(t, s, "--references", info.Path) {
			j, ok := pos[ref]
			if !ok {
				t.Errorf("closure lacks %s, a reference of %s", ref, info.Path)
			} else if j > i {
				t.Errorf("%s (#%d) comes before its reference %s (#%d)", info.Path, i, ref, j)
			}
		}
	}
}

func TestClosure(t *testing.T) {
	s := nixtest.NewStore(t)
	fib := s.Build(t, nixtest.FibChain("cl", 6))[0]
	ref := s.Build(t, nixtest.WithReference("cl"))
	dep, top := ref[0], ref[1]
	fibDrv := deriverOf(t, s, fib)
	topDrv := deriverOf(t, s, top)
	st := open(t, s)

	for _, tc := range []struct {
		name  string
		roots []string
	}{
		{"output without references", []string{fib}},
		{"output with a reference", []string{top}},
		{"reference given first", []string{dep, top}},
		{"drv chain", []string{fibDrv}},
		{"overlapping roots", []string{topDrv, top, fibDrv, dep, fib, topDrv}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.Closure(t.Context(), tc.roots)
			if err != nil {
				t.Fatal(err)
			}
			checkClosure(t, s, got, tc.roots...)
		})
	}

	// Exact answers where there is only one valid order.
	got, err := st.Closure(t.Context(), []string{top})
	if err != nil {
		t.Fatal(err)
	}
	if paths := pathsOf(got); !slices.Equal(paths, []string{dep, top}) {
		t.Errorf("Closure(top) = %q, want [dep top]", paths)
	}
	got, err = st.Closure(t.Context(), []string{fibDrv})
	if err != nil {
		t.Fatal(err)
	}
	// fib-6's .drv needs the .drvs of fib-0 ... fib-6: at least 7 paths.
	if len(got) < 7 || got[len(got)-1].Path != fibDrv {
		t.Errorf("Closure(fib-6.drv) = %q, want >= 7 paths ending in the root", pathsOf(got))
	}
}

func pathsOf(infos []*nixstore.PathInfo) []string {
	var ps []string
	for _, i := range infos {
		ps = append(ps, i.Path)
	}
	return ps
}
