package uploader

import (
	"context"
	"crypto/rand"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/cache"
	"nixpush/nixstore"
	"nixpush/retry"
)

// orderedBucket is a bucket in memory that lists in order, counting its
// requests: what an S3 bucket does, for the arithmetic of checkPresent.
type orderedBucket struct {
	cache.Cache // nil: only Exists and ListAfter are called
	keys        []string
	mu          sync.Mutex
	heads       int
	lists       int
}

func (b *orderedBucket) Exists(_ context.Context, key string) (bool, error) {
	b.mu.Lock()
	b.heads++
	b.mu.Unlock()
	_, ok := slices.BinarySearch(b.keys, key)
	return ok, nil
}

func (b *orderedBucket) ListAfter(_ context.Context, after string, limit int) ([]string, string, error) {
	b.mu.Lock()
	b.lists++
	b.mu.Unlock()
	i := sort.SearchStrings(b.keys, after)
	if i < len(b.keys) && b.keys[i] == after {
		i++
	}
	page := b.keys[i:min(i+limit, len(b.keys))]
	if i+limit >= len(b.keys) {
		return slices.Clone(page), "", nil
	}
	return slices.Clone(page), page[len(page)-1], nil
}

func (b *orderedBucket) String() string { return "memory" }

func randomPaths(n int) []*nixstore.PathInfo {
	infos := make([]*nixstore.PathInfo, n)
	for i := range infos {
		h := make([]byte, 20)
		rand.Read(h)
		infos[i] = &nixstore.PathInfo{Path: nixstore.StoreDir + "/" + nixbase32.EncodeToString(h) + "-p"}
	}
	return infos
}

// TestCheckPresentByListing: which paths a bucket holds is answered
// right in every case, by as few requests as the case allows: one page
// for a push into a new or small cache (a new path then costs its
// uploads alone), a page per thousand narinfos of the bucket for a push
// that is much of it, and no more than a request a path plus the first
// page when the bucket is large against the push.
func TestCheckPresentByListing(t *testing.T) {
	cases := []struct {
		name          string
		bucket, asked int // narinfos in the bucket, and paths asked about of which half are in it
		maxRequests   int
		maxPages      int // a page carries a thousand keys: not one per path where a HEAD does
	}{
		{"new cache", 0, 300, 1, 1},
		{"small cache", 400, 300, 1, 1},
		{"push that is much of the bucket", 20_000, 16_000, 50, 50}, // 20 pages hold the bucket; segments overlap (21 to 36 seen)
		{"bucket large against the push", 200_000, 40, 41, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			asked := randomPaths(tc.asked)
			in := map[string]bool{}
			b := &orderedBucket{}
			for i, info := range asked {
				if tc.bucket > 0 && i%2 == 0 {
					in[info.Path] = true
					b.keys = append(b.keys, cache.NarInfoKey(info.Path))
				}
			}
			for _, info := range randomPaths(tc.bucket - len(b.keys)) {
				b.keys = append(b.keys, cache.NarInfoKey(info.Path))
			}
			b.keys = append(b.keys, "nix-cache-info")
			slices.Sort(b.keys)

			present, err := checkPresent(t.Context(), b, asked)
			if err != nil {
				t.Fatal(err)
			}
			for i, info := range asked {
				if present[i] != in[info.Path] {
					t.Fatalf("%s: present %v, want %v", info.Path, present[i], in[info.Path])
				}
			}
			t.Logf("%d HEAD, %d LIST", b.heads, b.lists)
			if b.lists > tc.maxPages {
				t.Fatalf("%d listing pages for %d paths in a bucket of %d narinfos, want at most %d",
					b.lists, tc.asked, len(b.keys), tc.maxPages)
			}
			if got := b.heads + b.lists; got > tc.maxRequests || got == 0 {
				t.Fatalf("%d requests (%d HEAD, %d LIST) for %d paths in a bucket of %d narinfos, want 1 to %d",
					got, b.heads, b.lists, tc.asked, len(b.keys), tc.maxRequests)
			}
		})
	}
}

// A cache that cannot list in order (here behind the retrying layer, as
// every backend is) is asked path by path.
func TestCheckPresentWithoutListing(t *testing.T) {
	asked := randomPaths(50)
	b := &orderedBucket{keys: []string{cache.NarInfoKey(asked[7].Path)}}
	present, err := checkPresent(t.Context(), cache.WithRetry(struct{ cache.Cache }{b}, retry.Reads), asked)
	if err != nil {
		t.Fatal(err)
	}
	for i := range asked {
		if present[i] != (i == 7) {
			t.Fatalf("path %d: present %v", i, present[i])
		}
	}
	if b.heads != 50 || b.lists != 0 {
		t.Fatalf("%d HEAD and %d LIST, want 50 and 0", b.heads, b.lists)
	}
}
