package uploader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/semaphore"

	"nixpush/cache"
	"nixpush/nixstore"
	"nixpush/retry"
)

// PutBuildLog uploads the build log of drvPath (a pushed path's Deriver)
// as `nix store copy-log --to` does: the plain text, uncompressed, under
// BuildLogKey. It reports false, and no error, when the local store has
// no log for it (substituted, built elsewhere, or the log was deleted):
// that is normal. A damaged bzip2 log is a permanent error.
func PutBuildLog(ctx context.Context, c cache.Cache, store *nixstore.Store, drvPath string) (bool, error) {
	return putBuildLog(ctx, c, store, drvPath, nil)
}

// heldLog is the size up to which a build log is read whole before it is
// uploaded: most logs are a few KiB, and reading them first lets their
// reader go before the upload's round trip.
const heldLog = 1 << 20

// putBuildLog is PutBuildLog holding slot while a log is being read. Go's
// bzip2 reader allocates 3.6 MiB whatever the log's size, so a push with
// 64 uploads in flight must not read 64 logs at once; a log that fits in
// heldLog is read whole and uploaded after the slot is given back.
func putBuildLog(ctx context.Context, c cache.Cache, store *nixstore.Store, drvPath string, slot *semaphore.Weighted) (bool, error) {
	release := func() {}
	if slot != nil {
		if err := slot.Acquire(ctx, 1); err != nil {
			return false, err
		}
		var once sync.Once
		release = func() { once.Do(func() { slot.Release(1) }) }
	}
	defer release()
	r, err := store.OpenBuildLog(drvPath)
	if errors.Is(err, nixstore.ErrNoBuildLog) {
		return false, nil
	}
	if err != nil {
		return false, retry.Permanent(err)
	}
	defer r.Close()
	head, err := io.ReadAll(io.LimitReader(r, heldLog+1))
	if err != nil {
		return false, logError(drvPath, err)
	}
	var body io.Reader = bytes.NewReader(head)
	if len(head) <= heldLog {
		r.Close()
		release()
	} else {
		body = io.MultiReader(body, r)
	}
	if err := c.Put(ctx, cache.BuildLogKey(drvPath), body, cache.TypeBuildLog); err != nil {
		return false, logError(drvPath, err)
	}
	return true, nil
}

func logError(drvPath string, err error) error {
	err = fmt.Errorf("upload build log of %s: %w", drvPath, err)
	if errors.Is(err, nixstore.ErrCorruptBuildLog) {
		err = retry.Permanent(err)
	}
	return err
}
