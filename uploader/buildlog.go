package uploader

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/cenkalti/backoff/v4"

	"nixpush/nixstore"
)

// TypeBuildLog is the content type `nix store copy-log` gives a log.
const TypeBuildLog = "text/plain; charset=utf-8"

// BuildLogKey names a derivation's build log as Nix does:
// "log/<drv basename>", e.g. "log/iq8q…-hello.drv".
func BuildLogKey(drvPath string) string {
	return "log/" + path.Base(drvPath)
}

// PutBuildLog uploads the build log of drvPath (a pushed path's Deriver)
// as `nix store copy-log --to` does: the plain text, uncompressed, under
// BuildLogKey. It reports false, and no error, when the local store has
// no log for it (substituted, built elsewhere, or the log was deleted):
// that is normal. A damaged bzip2 log is a permanent error.
func PutBuildLog(ctx context.Context, c Cache, store *nixstore.Store, drvPath string) (bool, error) {
	r, err := store.OpenBuildLog(drvPath)
	if errors.Is(err, nixstore.ErrNoBuildLog) {
		return false, nil
	}
	if err != nil {
		return false, backoff.Permanent(err)
	}
	defer r.Close()
	if err := c.Put(ctx, BuildLogKey(drvPath), r, TypeBuildLog); err != nil {
		err = fmt.Errorf("upload build log of %s: %w", drvPath, err)
		if errors.Is(err, nixstore.ErrCorruptBuildLog) {
			err = backoff.Permanent(err)
		}
		return false, err
	}
	return true, nil
}
