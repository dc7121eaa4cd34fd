package uploader

import (
	"bytes"
	"context"
	"fmt"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/cache"
	"nixpush/nixstore"
)

// PutRealisations uploads every realisation the Nix DB records for a pushed
// store path, signed with keys, and returns how many there were (none for
// a path that is not a content-addressed derivation output). Call it after
// the path's narinfo is in the cache: a client that finds a realisation
// fetches the narinfo of its output next. The dependent realisations'
// outputs are references of storePath, so they were pushed first.
func PutRealisations(ctx context.Context, c cache.Cache, store *nixstore.Store, storePath string, keys []signature.SecretKey) (int, error) {
	rs, err := store.QueryRealisations(ctx, storePath)
	if err != nil {
		return 0, err
	}
	for i, r := range rs {
		doc, err := cache.RealisationDoc(r, keys)
		if err != nil {
			return i, err
		}
		if err := c.Put(ctx, cache.RealisationKey(r), bytes.NewReader(doc), cache.TypeRealisation); err != nil {
			return i, fmt.Errorf("upload realisation %s: %w", r.ID, err)
		}
	}
	return len(rs), nil
}
