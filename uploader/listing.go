package uploader

import (
	"bytes"
	"context"
	"fmt"

	"nixpush/cache"
)

// PutListing uploads the listing that nixstore.Store.DumpNARWithListing
// wrote while dumping storePath's NAR. Nix writes it after the NAR and
// before the narinfo, so a listing is there whenever its narinfo is.
func PutListing(ctx context.Context, c cache.Cache, storePath string, listing []byte) error {
	if err := c.Put(ctx, cache.ListingKey(storePath), bytes.NewReader(listing), cache.TypeListing); err != nil {
		return fmt.Errorf("upload listing of %s: %w", storePath, err)
	}
	return nil
}
