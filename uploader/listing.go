package uploader

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
)

// TypeListing is the content type Nix 2.8 gives a <hash>.ls listing.
const TypeListing = "application/json"

// ListingKey names the NAR listing of a store path as Nix does with
// write-nar-listing=1: "<hash part>.ls", next to its narinfo.
func ListingKey(storePath string) string {
	hashPart, _, _ := strings.Cut(path.Base(storePath), "-")
	return hashPart + ".ls"
}

// PutListing uploads the listing that nixstore.Store.DumpNARWithListing
// wrote while dumping storePath's NAR. Nix writes it after the NAR and
// before the narinfo, so a listing is there whenever its narinfo is.
func PutListing(ctx context.Context, c Cache, storePath string, listing []byte) error {
	if err := c.Put(ctx, ListingKey(storePath), bytes.NewReader(listing), TypeListing); err != nil {
		return fmt.Errorf("upload listing of %s: %w", storePath, err)
	}
	return nil
}
