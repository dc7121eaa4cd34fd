package verify_test

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/cache"
	"nixpush/cache/filecache"
	"nixpush/cache/verify"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// TestVerifyTenThousandPaths writes a cache of 10,000 signed narinfos (ten
// references each, one tiny NAR, written straight to files in the format the
// uploader writes: importing that many paths into a Nix store would take
// minutes) and checks that Verify finds it whole and that the heap stays
// far below the 150 MiB budget, sampled as Verify reports progress.
func TestVerifyTenThousandPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10,000 files: seconds on a busy disk")
	}
	const n = 10_000
	dir := t.TempDir()
	sec, pub, err := signature.GenerateKeypair("scale-1", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	paths := make([]string, n)
	for i := range paths {
		h := sha256.Sum256(fmt.Appendf(nil, "path %d", i))
		paths[i] = fmt.Sprintf("%s/%s-p-%d", nixstore.StoreDir, nixbase32.EncodeToString(h[:20]), i)
	}
	if err := os.Mkdir(filepath.Join(dir, "nar"), 0o755); err != nil {
		t.Fatal(err)
	}
	// One NAR object for all: writing 10,000 more files costs seconds and
	// tests nothing more (a verify without --full reads only sizes).
	nar := []byte("one NAR shared by every narinfo")
	fileHash := sha256.Sum256(nar)
	if err := os.WriteFile(filepath.Join(dir, "nar", "shared.nar"), nar, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		narHash := sha256.Sum256(fmt.Appendf(nil, "nar of %d", i))
		info := &nixstore.PathInfo{Path: p, NarHash: narHash[:], NarSize: uint64(len(nar))}
		for j := 1; j <= 10 && i-j >= 0; j++ {
			info.References = append(info.References, paths[i-j])
		}
		up := uploader.Uploaded{Key: "nar/shared.nar", Compression: uploader.Compression{Method: "zstd"},
			FileHash: fileHash, FileSize: uint64(len(nar))}
		ni, err := uploader.NewNarInfo(info, up, []signature.SecretKey{sec})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, cache.NarInfoKey(p)), []byte(ni.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := filecache.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("written in %v", time.Since(started))
	started = time.Now()
	runtime.GC()
	var before, ms runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	r, err := verify.Run(t.Context(), c, verify.Options{
		TrustedKeys: []string{pub.String()},
		Progress: func(done, _ int) {
			if done%500 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Whole() || r.NarInfos != n || r.NARs != 1 || len(r.Problems) != 0 {
		t.Fatalf("report: %d narinfos, %d NARs, problems %v", r.NarInfos, r.NARs, r.Problems[:min(5, len(r.Problems))])
	}
	t.Logf("verified in %v; heap in use: %d MiB before, peak %d MiB", time.Since(started), before.HeapInuse>>20, peak>>20)
	if peak > 150<<20 {
		t.Errorf("heap peaked at %d MiB verifying %d paths, budget 150 MiB", peak>>20, n)
	}
	if !strings.HasPrefix(r.Cache, "file://") {
		t.Errorf("report names the cache %q", r.Cache)
	}
}
