package uploader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/nixstore"
)

// existsParallelism bounds concurrent existence checks of one plan. A
// check is a header-sized request, so what bounds a plan over a slow link
// is the number of rounds: at 128, a thousand paths take 8 round trips
// (under a second at 100 ms), a CI runner's typical few hundred take 3.
// At 64 a 300-path check from an empty state dir was just 2× nix copy at
// 50 ms, with the noise of a shared machine on either side of it. The
// backends keep 256 connections alive, two plans' worth.
const existsParallelism = 128

// listPage is how many keys a listing page asks for: S3's most.
const listPage = 1000

// checkPresent asks the cache which of the paths' narinfos it holds.
//
// One existence check (HEAD) a path is what Nix pays, and what a cache
// that cannot list in order still costs. A bucket that can answers for
// a whole range of narinfo keys in one page (cache.RangeLister), so the
// keys are asked about in order: a first page starts at the lowest.
// When it answered for all of them (a new cache, a cache the push is
// most of) that was the only request, and a new path costs its uploads
// and nothing else. When the share of the hash space the first page
// covered says a page answers for two or more of the keys, the rest are
// walked the same way, in parallel segments, each page starting at the
// first key not yet answered, so no request answers for fewer than one
// path. Otherwise the bucket is large against the push and the rest go
// by HEAD: a page's kilobytes would buy nothing.
func checkPresent(ctx context.Context, c cache.Cache, infos []*nixstore.PathInfo) ([]bool, error) {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = cache.NarInfoKey(info.Path)
	}
	lister, ok := cache.RangeListerOf(c)
	if !ok || len(keys) < 2 {
		return existEach(ctx, c, keys)
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	found, rest, err := listPresent(ctx, lister, sorted)
	if errors.Is(err, cache.ErrCannotList) {
		return existEach(ctx, c, keys)
	}
	if err != nil {
		return nil, err
	}
	there, err := existEach(ctx, c, rest)
	if err != nil {
		return nil, err
	}
	for i, key := range rest {
		found[key] = there[i]
	}
	present := make([]bool, len(keys))
	for i, key := range keys {
		present[i] = found[key]
	}
	return present, nil
}

// existEach asks for each key with Exists, many at a time.
func existEach(ctx context.Context, c cache.Cache, keys []string) ([]bool, error) {
	present := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(existsParallelism)
	for i, key := range keys {
		g.Go(func() error {
			ok, err := c.Exists(gctx, key)
			present[i] = ok
			return err
		})
	}
	return present, g.Wait()
}

// listPresent answers for sorted keys from listing pages, and returns in
// rest the keys left for HEADs when the first page showed the bucket
// too large against them (see checkPresent).
func listPresent(ctx context.Context, lister cache.RangeLister, sorted []string) (found map[string]bool, rest []string, err error) {
	found = make(map[string]bool, len(sorted))
	n, reached, err := listFrom(ctx, lister, sorted, found)
	if err != nil {
		return nil, nil, err
	}
	rest = sorted[n:]
	if len(rest) == 0 {
		return found, nil, nil
	}
	// How many keys a page answers for, expected: the first page's share
	// of the hash space, over the share the keys asked about spread on.
	perPage := float64(n)
	if spread := place(sorted[len(sorted)-1]) - place(sorted[0]); spread > 0 {
		perPage = (place(reached) - place(sorted[0])) / spread * float64(len(sorted)-1)
	}
	if perPage < 2 {
		return found, rest, nil
	}
	// Segments of about a page's worth of keys: one page each when the
	// keys are spread evenly, as hashes are.
	segments := min(existsParallelism, int(math.Ceil(float64(len(rest))/perPage)))
	size := (len(rest) + segments - 1) / segments
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for seg := range slices.Chunk(rest, size) {
		g.Go(func() error {
			mine := make(map[string]bool)
			for len(seg) > 0 {
				n, _, err := listFrom(gctx, lister, seg, mine)
				if err != nil {
					return err
				}
				seg = seg[n:]
			}
			mu.Lock()
			defer mu.Unlock()
			for key := range mine {
				found[key] = true
			}
			return nil
		})
	}
	return found, nil, g.Wait()
}

// place puts a key in [0, 1) by its first characters read as nixbase32
// digits: narinfo keys, hashes, spread evenly over it.
func place(key string) float64 {
	f, unit := 0.0, 1.0
	for _, c := range []byte(key[:min(len(key), 10)]) {
		unit /= 32
		f += float64(max(strings.IndexByte(nixbase32.Alphabet, c), 0)) * unit
	}
	return f
}

// listFrom lists one page from sorted[0], marks in found the keys of
// sorted it holds, and returns how many of sorted (from the first) the
// page answered for, at least one, and the page's reached.
func listFrom(ctx context.Context, lister cache.RangeLister, sorted []string, found map[string]bool) (int, string, error) {
	first := sorted[0]
	listed, reached, err := lister.ListAfter(ctx, first[:len(first)-1], listPage)
	if err != nil {
		return 0, "", err
	}
	for _, key := range listed {
		if _, ok := slices.BinarySearch(sorted, key); ok {
			found[key] = true
		}
	}
	if reached == "" {
		return len(sorted), "", nil
	}
	n := sort.SearchStrings(sorted, reached)
	if n < len(sorted) && sorted[n] == reached {
		n++
	}
	if n == 0 {
		// Only keys between first's stem and first itself: no such
		// narinfo names exist, but a loop must not depend on that.
		return 0, "", fmt.Errorf("a listing from %q stopped before it: %w in order", first, cache.ErrCannotList)
	}
	return n, reached, nil
}
