package uploader

import (
	"bytes"
	"context"
	"fmt"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/nixstore"
)

// RealisationObject is one object a realisation is served as.
type RealisationObject struct {
	Key string
	Doc func(keys []signature.SecretKey) ([]byte, error)
}

// RealisationObjects are the objects a realisation is served as: the
// realisations/<id>.doi Nix 2.4–2.34 read, and, when its resolved
// derivation is known, the build-trace-v2/<drv>/<output>.doi of Nix 2.35
// and later (see cache/buildtrace.go).
func RealisationObjects(r nixstore.Realisation) []RealisationObject {
	objs := []RealisationObject{{cache.RealisationKey(r), func(k []signature.SecretKey) ([]byte, error) { return cache.RealisationDoc(r, k) }}}
	if key := cache.BuildTraceKey(r); key != "" {
		objs = append(objs, RealisationObject{key, func(k []signature.SecretKey) ([]byte, error) { return cache.BuildTraceDoc(r, k) }})
	}
	return objs
}

// PutRealisations uploads every realisation the Nix DB records for a pushed
// store path, in both formats, signed with keys, and returns how many
// there were (none for a path that is not a content-addressed derivation
// output). Call it after the path's narinfo is in the cache: a client
// that finds a realisation fetches the narinfo of its output next. The
// dependent realisations' outputs are references of storePath, so they
// were pushed first.
func PutRealisations(ctx context.Context, c cache.Cache, store *nixstore.Store, storePath string, keys []signature.SecretKey) (int, error) {
	rs, err := store.QueryRealisations(ctx, storePath)
	if err != nil {
		return 0, err
	}
	return len(rs), putRealisations(ctx, c, rs, keys)
}

func putRealisations(ctx context.Context, c cache.Cache, rs []nixstore.Realisation, keys []signature.SecretKey) error {
	for _, r := range rs {
		for _, o := range RealisationObjects(r) {
			doc, err := o.Doc(keys)
			if err != nil {
				return err
			}
			if err := c.Put(ctx, o.Key, bytes.NewReader(doc), cache.TypeRealisation); err != nil {
				return fmt.Errorf("upload realisation %s: %w", o.Key, err)
			}
		}
	}
	return nil
}

// missingRealisations returns which of the present paths have a
// realisation in the Nix DB that the cache lacks in either format. They
// are not in the memo: a store using ca-derivations pays one round of
// existence checks for its CA outputs on every push, and a realisation
// deleted from the cache is written again by the next push. A store
// without ca-derivations pays nothing.
func (u *Uploader) missingRealisations(ctx context.Context, present []*nixstore.PathInfo) ([]*nixstore.PathInfo, error) {
	paths := make([]string, len(present))
	for i, info := range present {
		paths[i] = info.Path
	}
	rs, err := u.Store.QueryRealisationsOf(ctx, paths)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	var keys []string
	var owner []int
	for i, info := range present {
		for _, r := range rs[info.Path] {
			for _, o := range RealisationObjects(r) {
				keys = append(keys, o.Key)
				owner = append(owner, i)
			}
		}
	}
	found := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(existsParallelism)
	for i, key := range keys {
		g.Go(func() error {
			ok, err := u.Cache.Exists(gctx, key)
			found[i] = ok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("check realisations: %w", err)
	}
	var out []*nixstore.PathInfo
	for i := range keys {
		if !found[i] && (len(out) == 0 || out[len(out)-1] != present[owner[i]]) {
			out = append(out, present[owner[i]])
		}
	}
	return out, nil
}
