package uploader_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// push plans and uploads the closure of roots, failing the test on any
// error, and returns the closure.
func push(t *testing.T, u *uploader.Uploader, roots ...string) []*nixstore.PathInfo {
	t.Helper()
	closure, err := u.Store.Closure(t.Context(), roots)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := uploader.MakePlan(t.Context(), u.Cache, closure, uploader.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Present != 0 || len(plan.Upload) != len(closure) {
		t.Fatalf("plan for an empty cache: %d to upload, %d present; closure has %d", len(plan.Upload), plan.Present, len(closure))
	}
	bytes, errs := collect(u.Upload(t.Context(), plan.Upload))
	if len(errs) != 0 {
		t.Fatalf("Upload: %v", errs)
	}
	if bytes != u.Stats.Bytes.Load() || bytes <= 0 {
		t.Errorf("Upload wrote %d bytes, Stats.Bytes = %d", bytes, u.Stats.Bytes.Load())
	}
	return closure
}

func readNarInfo(t *testing.T, dir, storePath string) *narinfo.NarInfo {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, cache.NarInfoKey(storePath)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ni, err := narinfo.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

func TestUploadSubstitute(t *testing.T) {
	s := nixtest.NewStore(t)
	out := s.Build(t, nixtest.WithReference("e2e"))
	fib := s.Build(t, nixtest.FibChain("e2e", 3))[0]
	added := addFile(t, s, "e2e-tree", "added\n")
	roots := []string{out[1], fib, added}
	key, _, pub, pubString := keygen(t, "e2e-key")
	_, _, _, otherPub := keygen(t, "e2e-other")
	st := openStore(t, s)

	for _, method := range []string{"zstd", "xz", "none"} {
		t.Run(method, func(t *testing.T) {
			cc, dir := newFileCache(t)
			if _, err := cache.EnsureCacheInfo(t.Context(), cc, 41); err != nil {
				t.Fatal(err)
			}
			c := uploader.Compression{Method: method}
			u := uploader.New(st, cc, c, []signature.SecretKey{key}, 2, zaptest.NewLogger(t))
			closure := push(t, u, roots...)
			if len(closure) != 4 {
				t.Fatalf("closure of %q has %d paths, want 4", roots, len(closure))
			}
			if n := u.Stats.Paths.Load(); n != 4 {
				t.Errorf("Stats.Paths = %d, want 4", n)
			}

			var fileSizes int64
			for _, info := range closure {
				ni := readNarInfo(t, dir, info.Path)
				fileSizes += int64(ni.FileSize)
				if ni.Compression != method || !strings.HasPrefix(ni.URL, cache.NARKeyPrefix(info)+"-") || ni.NarSize != info.NarSize {
					t.Errorf("%s: Compression %q URL %q NarSize %d", info.Path, ni.Compression, ni.URL, ni.NarSize)
				}
				if !pub.Verify(ni.Fingerprint(), ni.Signatures[len(ni.Signatures)-1]) {
					t.Errorf("%s: signature does not verify", info.Path)
				}
				fi, err := os.Stat(filepath.Join(dir, ni.URL))
				if err != nil || uint64(fi.Size()) != ni.FileSize {
					t.Errorf("%s: NAR file %v, narinfo FileSize %d", info.Path, err, ni.FileSize)
				}
			}
			if n := u.Stats.Bytes.Load(); n != fileSizes {
				t.Errorf("Stats.Bytes = %d, narinfo FileSizes add up to %d", n, fileSizes)
			}
			for _, f := range cacheFiles(t, dir) {
				if strings.Contains(f, "tmp") {
					t.Errorf("temp file left in the cache: %s", f)
				}
			}

			// Pushing again finds everything present.
			plan, err := uploader.MakePlan(t.Context(), cc, closure, uploader.Filter{})
			if err != nil || plan.Present != 4 || len(plan.Upload) != 0 {
				t.Errorf("second plan: %+v, %v; want all 4 present", plan, err)
			}

			url := "file://" + dir
			got, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), url, pubString, roots...)
			if err != nil {
				t.Fatalf("Substitute: %v\n%s", err, got)
			}
			for _, info := range closure {
				if !strings.Contains(got, "copying path '"+info.Path+"' from '"+url) {
					t.Errorf("Substitute did not copy %s:\n%s", info.Path, got)
				}
			}

			// Trusting another key, Nix refuses the input-addressed paths
			// but takes the content-addressed one: its CA line proves it.
			got, err = nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh-other"), url, otherPub, roots...)
			if err == nil || !strings.Contains(got, "not signed by") {
				t.Errorf("Substitute trusting another key: err = %v, want \"not signed by\":\n%s", err, got)
			}
			for _, info := range closure {
				copied := strings.Contains(got, "copying path '"+info.Path+"'")
				if copied != (info.CA != "") {
					t.Errorf("trusting another key, %s (CA %q) copied: %v\n%s", info.Path, info.CA, copied, got)
				}
			}
		})
	}
}

// corrupt changes the first byte of a file in the store, keeping its size.
func corrupt(t *testing.T, file string) {
	t.Helper()
	corruptAt(t, file, 0)
}

// corruptAt flips a bit of the byte at off, as a failing disk or a stray
// write would, after making the read-only store file writable.
func corruptAt(t *testing.T, file string, off int64) {
	t.Helper()
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestUploadCorrupted(t *testing.T) {
	s := nixtest.NewStore(t)
	out := s.Build(t, nixtest.WithReference("bad"))
	dep, top := out[0], out[1]
	corrupt(t, filepath.Join(s.Real(dep), "greeting"))
	key, _, _, _ := keygen(t, "bad-key")
	st := openStore(t, s)
	closure, err := st.Closure(t.Context(), []string{top})
	if err != nil {
		t.Fatal(err)
	}
	if len(closure) != 2 || closure[0].Path != dep || closure[1].Path != top {
		t.Fatalf("closure of top = %v", closure)
	}
	depInfo := closure[0]
	c := uploader.DefaultCompression

	// check checks the outcome of uploading [dep top]: both fail, for the
	// right reason, and the cache has no trace of dep and no narinfo.
	check := func(t *testing.T, u *uploader.Uploader, dir string, bytes int64, errs []error) {
		t.Helper()
		if bytes != 0 {
			t.Errorf("Upload reports %d bytes written, want 0", bytes)
		}
		if len(errs) != 2 {
			t.Fatalf("Upload of [dep top] with dep corrupted: %d errors %v, want 2", len(errs), errs)
		}
		byPath := map[string]*uploader.PathError{}
		for _, err := range errs {
			var pe *uploader.PathError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PathError", err)
			}
			byPath[pe.Path] = pe
		}
		depErr, topErr := byPath[dep], byPath[top]
		if depErr == nil || topErr == nil {
			t.Fatalf("errors for %v, want dep and top", errs)
		}
		var perm *backoff.PermanentError
		if !errors.Is(depErr, uploader.ErrHashMismatch) || !errors.As(depErr, &perm) || !strings.Contains(depErr.Error(), dep) {
			t.Errorf("dep error = %v, want a permanent ErrHashMismatch naming %s", depErr, dep)
		}
		if !errors.Is(topErr, uploader.ErrHashMismatch) || !strings.Contains(topErr.Error(), dep) {
			t.Errorf("top error = %v, want its reference's failure", topErr)
		}
		files := cacheFiles(t, dir)
		for _, f := range files {
			if strings.HasSuffix(f, ".narinfo") || strings.Contains(f, "tmp") || strings.HasPrefix(f, cache.NARKeyPrefix(depInfo)) {
				t.Errorf("cache holds %s after the failed upload (all files: %q)", f, files)
			}
		}
		if !slices.Contains(files, "nix-cache-info") {
			t.Errorf("cache files = %q", files)
		}
		if n := u.Stats.Paths.Load(); n != 0 {
			t.Errorf("Stats.Paths = %d, want 0", n)
		}
	}
	newCache := func(t *testing.T) (*countingCache, string) {
		fc, dir := newFileCache(t)
		if _, err := cache.EnsureCacheInfo(t.Context(), fc, 40); err != nil {
			t.Fatal(err)
		}
		return newCountingCache(fc), dir
	}

	for _, jobs := range []int{1, 4} {
		t.Run(fmt.Sprint("jobs=", jobs), func(t *testing.T) {
			cc, dir := newCache(t)
			u := uploader.New(st, cc, c, []signature.SecretKey{key}, jobs, zaptest.NewLogger(t))
			bytes, errs := collect(u.Upload(t.Context(), closure))
			check(t, u, dir, bytes, errs)
		})
	}

	// The reference fails and its upload is over before the referrer's
	// NAR is written: the referrer must still see the failure.
	t.Run("reference over first", func(t *testing.T) {
		cc, dir := newCache(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		topKey, depKey := cache.NARKeyPrefix(closure[1]), cache.NARKeyPrefix(depInfo)
		releaseTop, depFailed := make(chan struct{}), make(chan struct{})
		var once sync.Once
		cc.before = func(ctx context.Context, key string) error {
			if narPrefix(key) == topKey {
				select {
				case <-releaseTop:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		cc.after = func(key string, err error) {
			if narPrefix(key) == depKey && err != nil {
				once.Do(func() { close(depFailed) })
			}
		}
		u := uploader.New(st, cc, c, []signature.SecretKey{key}, 2, zaptest.NewLogger(t))
		type result struct {
			bytes int64
			errs  []error
		}
		results := make(chan result, 1)
		go func() {
			bytes, errs := collect(u.Upload(ctx, closure))
			results <- result{bytes, errs}
		}()
		select {
		case <-depFailed:
		case <-ctx.Done():
			t.Fatal("dep's NAR upload did not fail")
		}
		// This joins dep's upload or, if it is over, retries it: either
		// way, when it returns, the first upload of dep is finished.
		if _, errs := collect(u.Upload(ctx, closure[:1])); len(errs) != 1 || !errors.Is(errs[0], uploader.ErrHashMismatch) {
			t.Errorf("second Upload of dep: %v", errs)
		}
		close(releaseTop)
		r := <-results
		check(t, u, dir, r.bytes, r.errs)
	})
}

// TestUploadConcurrent runs two overlapping pushes at once on one
// Uploader: the shared paths must be uploaded by one of them only.
func TestUploadConcurrent(t *testing.T) {
	s := nixtest.NewStore(t)
	out := s.Build(t, nixtest.WithReference("cc"))
	dep, top := out[0], out[1]
	var own [4]string
	for i := range own {
		own[i] = addFile(t, s, "cc-"+string(rune('a'+i)), "content "+string(rune('a'+i)))
	}
	key, _, _, _ := keygen(t, "cc-key")
	st := openStore(t, s)
	infos := map[string]*nixstore.PathInfo{}
	for _, p := range append([]string{dep, top}, own[:]...) {
		info, err := st.QueryPathInfo(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		infos[p] = info
	}
	planOf := func(paths ...string) []*nixstore.PathInfo {
		var plan []*nixstore.PathInfo
		for _, p := range paths {
			plan = append(plan, infos[p])
		}
		return plan
	}
	planA := planOf(own[0], own[1], dep, top)
	planB := planOf(dep, top, own[2], own[3])

	fc, dir := newFileCache(t)
	cc := newCountingCache(fc)
	arrived, release := make(chan string, 16), make(chan struct{})
	cc.before = func(ctx context.Context, key string) error {
		if !strings.HasPrefix(key, "nar/") {
			return nil
		}
		arrived <- key
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := uploader.DefaultCompression
	// Enough jobs for every NAR to be in Put at once.
	u := uploader.New(st, cc, c, []signature.SecretKey{key}, 8, zaptest.NewLogger(t))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	results := make(chan []error, 2)
	upload := func(plan []*nixstore.PathInfo) {
		_, errs := collect(u.Upload(ctx, plan))
		results <- errs
	}
	go upload(planA)
	// Hold every NAR until A has started all of its own, so dep and top
	// are in flight when B asks for them.
	want := map[string]bool{}
	for _, info := range planA {
		want[cache.NARKeyPrefix(info)] = true
	}
	waitArrivals := func() {
		for len(want) > 0 {
			select {
			case k := <-arrived:
				delete(want, narPrefix(k))
			case <-ctx.Done():
				t.Fatalf("NAR uploads still missing: %v", want)
			}
		}
	}
	waitArrivals()
	go upload(planB)
	// B's own paths come after dep and top in its plan: once they are in
	// Put, B has joined (or restarted) dep and top.
	for _, p := range own[2:] {
		want[cache.NARKeyPrefix(infos[p])] = true
	}
	waitArrivals()
	close(release)

	for range 2 {
		if errs := <-results; len(errs) != 0 {
			t.Errorf("Upload: %v", errs)
		}
	}
	for p, info := range infos {
		if n := cc.countPrefix(cache.NARKeyPrefix(info)); n != 1 {
			t.Errorf("NAR of %s written %d times, want once", p, n)
		}
		if n := cc.count(cache.NarInfoKey(p)); n != 1 {
			t.Errorf("narinfo of %s written %d times, want once", p, n)
		}
		if _, err := os.Stat(filepath.Join(dir, cache.NarInfoKey(p))); err != nil {
			t.Error(err)
		}
	}
	if n := u.Stats.Paths.Load(); n != 6 {
		t.Errorf("Stats.Paths = %d, want 6", n)
	}
}

func TestEnsureCacheInfo(t *testing.T) {
	c, dir := newFileCache(t)
	file := filepath.Join(dir, "nix-cache-info")
	if _, err := cache.EnsureCacheInfo(t.Context(), c, 41); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if want := "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\nNixpushCacheId: "; err != nil || !strings.HasPrefix(string(b), want) {
		t.Fatalf("nix-cache-info = %q, %v; want %q and an ID", b, err, want)
	}

	for _, tc := range []struct {
		name, content string
		ok            bool
	}{
		{"ours", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n", true},
		{"as Nix writes it", "StoreDir: /nix/store\n", true},
		{"other fields and spacing", "Priority: 10\nStoreDir:   /nix/store  \nFoo: bar\n", true},
		{"no StoreDir", "WantMassQuery: 1\n", true},
		{"other store", "StoreDir: /other/store\nWantMassQuery: 1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := cache.EnsureCacheInfo(t.Context(), c, 30)
			var perm *backoff.PermanentError
			switch {
			case tc.ok && err != nil:
				t.Errorf("EnsureCacheInfo: %v", err)
			case !tc.ok && (err == nil || !errors.As(err, &perm) || !strings.Contains(err.Error(), "/other/store")):
				t.Errorf("EnsureCacheInfo = %v, want a permanent error naming /other/store", err)
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != tc.content {
				t.Errorf("nix-cache-info changed to %q, %v", b, err)
			}
		})
	}
}

// addBigTree adds a directory holding one large, compressible file.
func addBigTree(t *testing.T, s *nixtest.Store, name string, seed uint64, size int) string {
	t.Helper()
	words := []string{"nix", "store", "path", "narinfo", "closure", "reference", "/nix/store/", "\n"}
	r := rand.New(rand.NewPCG(seed, seed))
	var b bytes.Buffer
	for b.Len() < size {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(byte(r.IntN(256)))
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return s.Add(t, dir)
}

// TestUploadLargeNAR pushes NARs of several megabytes (the parallel zstd
// encoder, many pipe writes) and corrupts one near its end, so the
// mismatch shows only after most of its NAR has reached the cache.
func TestUploadLargeNAR(t *testing.T) {
	s := nixtest.NewStore(t)
	good := addBigTree(t, s, "big-good", 1, 6<<20)
	bad := addBigTree(t, s, "big-bad", 2, 6<<20)
	bigFile := filepath.Join(s.Real(bad), "big")
	fi, err := os.Stat(bigFile)
	if err != nil {
		t.Fatal(err)
	}
	corruptAt(t, bigFile, fi.Size()-1)
	key, _, _, pubString := keygen(t, "big-key")
	st := openStore(t, s)
	infos, err := st.QueryPathInfos(t.Context(), []string{good, bad})
	if err != nil {
		t.Fatal(err)
	}
	cc, dir := newFileCache(t)
	if _, err := cache.EnsureCacheInfo(t.Context(), cc, 40); err != nil {
		t.Fatal(err)
	}
	c := uploader.Compression{Method: "zstd"}
	u := uploader.New(st, cc, c, []signature.SecretKey{key}, 2, zaptest.NewLogger(t))
	results := u.Upload(t.Context(), infos)
	if r := results[good]; r.Err != nil || r.Bytes == 0 || r.Bytes >= infos[0].NarSize {
		t.Errorf("good: %+v (NAR %d bytes)", r, infos[0].NarSize)
	}
	if r := results[bad]; !errors.Is(r.Err, uploader.ErrHashMismatch) {
		t.Errorf("bad: %+v, want ErrHashMismatch", r)
	}
	want := []string{cache.NARKeyPrefix(infos[0]), cache.NarInfoKey(good), "nix-cache-info"}
	slices.Sort(want)
	got := cacheFiles(t, dir)
	for i, f := range got {
		got[i] = narPrefix(f)
	}
	if !slices.Equal(got, want) {
		t.Errorf("cache files %q, want %q", got, want)
	}
	url := "file://" + dir
	out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), url, pubString, good)
	if err != nil || !strings.Contains(out, "copying path '"+good+"'") {
		t.Errorf("Substitute: %v\n%s", err, out)
	}
}
