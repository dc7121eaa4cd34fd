package gc

import (
	"context"
	"fmt"
	"slices"

	"nixpush/cache"
)

// abortUploads aborts the multipart uploads no pusher owns: those that
// began and last received a part before the grace period. S3 keeps (and
// bills) the parts of an upload until it is completed or aborted; a
// pusher killed mid-upload leaves one, which its queue continues when it
// starts again (and aborts itself when it no longer needs it), but a
// machine that never comes back leaves it for good.
//
// Ownership is read from the bucket, not from queues: gc cannot see
// other machines' queues, but it sees that a pusher working on an upload
// sends it a part at least every few minutes, and an upload idle for
// longer than the grace period (an hour by default, longer than any part
// takes) is continued by no one now. If its owner comes back later, it
// finds the upload gone and starts the NAR over: a cost, never damage.
func (g *collector) abortUploads(ctx context.Context) error {
	ups, ok := cache.UploadsOf(g.cache)
	if !ok {
		return nil
	}
	var stale []cache.Upload
	err := ups.ListUploads(ctx, func(u cache.Upload) error {
		if u.Started.Before(g.fresh) {
			stale = append(stale, u)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list multipart uploads of %s: %w", g.cache, err)
	}
	for _, u := range stale {
		changed, err := ups.UploadChanged(ctx, u)
		if err != nil {
			return err
		}
		if !changed.Before(g.fresh) {
			continue
		}
		g.result.Uploads = append(g.result.Uploads, fmt.Sprintf("%s (upload %s)", u.Key, u.ID))
		if g.opts.Delete {
			if err := ups.AbortUpload(ctx, u); err != nil {
				return err
			}
		}
	}
	slices.Sort(g.result.Uploads)
	return nil
}
