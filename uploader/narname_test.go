package uploader_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// TestNarInfoDescribesItsObject: two machines push two paths with the same
// NAR (same contents, other names) to one cache at different compression
// levels. Each narinfo's FileSize and FileHash must describe the object
// its URL names; with NARs named by NAR hash alone, the second push
// overwrote the first's object under the first's narinfo.
func TestNarInfoDescribesItsObject(t *testing.T) {
	s := nixtest.NewStore(t)
	content := strings.Repeat("the same bytes compress differently at each level; ", 20000)
	a := addFile(t, s, "same-a", content)
	b := addFile(t, s, "same-b", content)
	st := openStore(t, s)
	key, _, _, pub := keygen(t, "narname-1")
	fc, dir := newFileCache(t)
	for i, p := range []string{a, b} {
		level := []int{1, 19}[i]
		info, err := st.QueryPathInfo(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		u := uploader.New(st, fc, uploader.Compression{Method: "zstd", Level: level, HasLevel: true}, []signature.SecretKey{key}, 2, zaptest.NewLogger(t))
		if _, errs := collect(u.Upload(t.Context(), []*nixstore.PathInfo{info})); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	for _, p := range []string{a, b} {
		ni := readNarInfo(t, dir, p)
		obj, err := os.ReadFile(filepath.Join(dir, ni.URL))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		sum := sha256.Sum256(obj)
		if uint64(len(obj)) != ni.FileSize || string(sum[:]) != string(ni.FileHash.Digest()) {
			t.Errorf("%s: narinfo says FileSize %d, the object %s has %d bytes (or another hash)", p, ni.FileSize, ni.URL, len(obj))
		}
	}
	out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), "file://"+dir, pub, a, b)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestNARUploadedOncePerPush: two batches of one push plan the same
// dependency while it is missing; the first uploads it, and the second,
// starting after that upload has finished, must not upload it again (a
// 1,000-path push left 6 NAR objects no narinfo named).
func TestNARUploadedOncePerPush(t *testing.T) {
	s := nixtest.NewStore(t)
	dep := addFile(t, s, "shared-dep", "shared by every batch")
	st := openStore(t, s)
	fc, _ := newFileCache(t)
	c := newCountingCache(fc)
	key, _, _, _ := keygen(t, "once-1")
	u := uploader.New(st, c, uploader.DefaultCompression, []signature.SecretKey{key}, 2, zaptest.NewLogger(t))
	closure, err := st.Closure(t.Context(), []string{dep})
	if err != nil {
		t.Fatal(err)
	}
	first, err := u.Plan(t.Context(), closure)
	if err != nil {
		t.Fatal(err)
	}
	second, err := u.Plan(t.Context(), closure) // planned while the first has not uploaded yet
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Upload) != 1 || len(second.Upload) != 1 {
		t.Fatalf("plans upload %d and %d paths, want 1 each (a missing path is planned by each batch)", len(first.Upload), len(second.Upload))
	}
	for _, plan := range [][]*nixstore.PathInfo{first.Upload, second.Upload} {
		if _, errs := collect(u.Upload(t.Context(), plan)); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	if n := c.countPrefix("nar/"); n != 1 {
		t.Errorf("the dependency's NAR was uploaded %d times in one push, want once", n)
	}
	if n := u.Stats.Paths.Load(); n != 1 {
		t.Errorf("Stats count %d paths pushed, want 1", n)
	}
}
