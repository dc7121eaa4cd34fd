package s3cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"nixpush/retry"
)

// maxAbortGrace bounds how long the parts in flight and the clean-up of
// a failed multipart upload that cannot be continued outlive the
// caller's context: a shutdown waits no longer than its own timeout and
// this. (A continued upload needs no clean-up: see upload.)
const maxAbortGrace = time.Second

// abortRetry bounds the clean-up of a failed multipart upload. S3 may
// keep a part that was still arriving when the abort came, so an abort
// is checked, and repeated if the upload is still there.
var abortRetry = retry.Policy{Initial: 200 * time.Millisecond, Attempts: 3}

// graceContext is detached from ctx, so that parts in flight finish and
// a failed upload is cleaned up after ctx is cancelled, but it ends
// min(Timeout, maxAbortGrace) after ctx does.
func (c *Cache) graceContext(ctx context.Context) (context.Context, context.CancelFunc) {
	grace := min(c.cfg.Timeout, maxAbortGrace)
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-gctx.Done():
		}
	})
	return gctx, func() { stop(); cancel() }
}

// abort removes a failed multipart upload and its parts, and returns
// cause. ctx is the upload's graceContext: a cancelled Put still cleans
// up, but does not hold up a shutdown. The whole clean-up takes at most
// Timeout: a server that made no progress for that long is not coming
// back within this Put.
func (c *Cache) abort(ctx context.Context, key, uploadID string, cause error) error {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	err := c.abortRetried(actx, key, uploadID)
	if err == nil {
		return cause
	}
	if actx.Err() == nil {
		// The server answered but the upload stayed (or it refused):
		// try again before the next Put and at Close. One that made no
		// progress for Timeout is not retried by every later Put.
		c.leftovers.add(key, uploadID)
	}
	return abortFailed(cause, c.reword(err))
}

// abandon aborts an upload that can never finish, within Timeout (a part
// an earlier process was still sending may make the first abort fail);
// if that fails it is kept for abortLeftovers.
func (c *Cache) abandon(ctx context.Context, key, uploadID string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	if err := c.abortRetried(actx, key, uploadID); err != nil {
		c.leftovers.add(key, uploadID)
	}
}

// abortRetried is abortChecked on abortRetry's schedule, but not again
// after a stall: a server that made no progress for Timeout is not
// coming back within this call.
func (c *Cache) abortRetried(ctx context.Context, key, uploadID string) error {
	var stalled error
	err := abortRetry.Do(ctx, func() error {
		err := c.abortChecked(ctx, key, uploadID)
		if errors.Is(err, ErrStalled) {
			stalled = err
			return retry.Permanent(err)
		}
		return err
	})
	if stalled != nil {
		return stalled
	}
	return err
}

// abortChecked aborts an upload and checks that nothing remains of it.
func (c *Cache) abortChecked(ctx context.Context, key, uploadID string) error {
	err := c.call(ctx, func() error {
		_, err := c.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket:   aws.String(c.bucket),
			Key:      aws.String(c.key(key)),
			UploadId: aws.String(uploadID),
		})
		return err
	})
	if err != nil && !isGone(err) {
		return err
	}
	_, err = c.uploadGone(ctx, key, uploadID)
	return err
}

// leftovers are multipart uploads whose abort failed (the server was down
// when the upload failed): their parts would stay on the server, billed,
// until a lifecycle rule removes them. They are aborted again before the
// next Put and at Close, once the server answers again.
type leftovers struct {
	mu      sync.Mutex
	uploads []leftover
	busy    bool // an abortLeftovers runs in the background
}

type leftover struct{ key, id string }

func (l *leftovers) add(key, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uploads = append(l.uploads, leftover{key, id})
}

func (l *leftovers) take() []leftover {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.uploads
	l.uploads = nil
	return u
}

// abortLeftoversSoon starts abortLeftovers in the background, unless it
// runs already or there is nothing to do: a Put does not wait for it (on
// a server still frozen it would stall first).
func (c *Cache) abortLeftoversSoon() {
	c.leftovers.mu.Lock()
	start := !c.leftovers.busy && len(c.leftovers.uploads) > 0
	c.leftovers.busy = c.leftovers.busy || start
	c.leftovers.mu.Unlock()
	if !start {
		return
	}
	go func() {
		c.abortLeftovers(context.Background())
		c.leftovers.mu.Lock()
		c.leftovers.busy = false
		c.leftovers.mu.Unlock()
	}()
}

// abortLeftovers tries once more to abort each leftover upload, within
// Timeout; those still there are kept for the next try.
func (c *Cache) abortLeftovers(ctx context.Context) {
	for _, u := range c.leftovers.take() {
		actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		err := c.abortChecked(actx, u.key, u.id)
		cancel()
		if err != nil {
			c.leftovers.add(u.key, u.id)
		}
	}
}

// closeGrace bounds Close's last try at leftovers: a process stopping
// beside a frozen server must not wait a whole Timeout for it (gc aborts
// what is left, once it is old).
const closeGrace = time.Second

// Close aborts leftover multipart uploads one last time.
func (c *Cache) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), min(c.cfg.Timeout, closeGrace))
	defer cancel()
	c.abortLeftovers(ctx)
	if n := len(c.leftovers.take()); n > 0 {
		return fmt.Errorf("%d failed multipart uploads could not be aborted: their parts stay until nixpush gc or a lifecycle rule removes them", n)
	}
	return nil
}

func abortFailed(cause, err error) error {
	return fmt.Errorf("%w (and aborting the multipart upload failed, its parts stay until it is tried again, nixpush gc or a lifecycle rule removes them: %v)", cause, err)
}

// listParts is every part the server holds of an upload, by number.
func (c *Cache) listParts(ctx context.Context, key, uploadID string) (map[int32]types.Part, error) {
	parts := map[int32]types.Part{}
	var marker *string
	for {
		var out *s3.ListPartsOutput
		err := c.call(ctx, func() (err error) {
			out, err = c.client.ListParts(ctx, &s3.ListPartsInput{
				Bucket:           aws.String(c.bucket),
				Key:              aws.String(c.key(key)),
				UploadId:         aws.String(uploadID),
				PartNumberMarker: marker,
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range out.Parts {
			parts[aws.ToInt32(p.PartNumber)] = p
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextPartNumberMarker) == "" {
			return parts, nil
		}
		marker = out.NextPartNumberMarker
	}
}

// uploadGone checks that nothing remains of an aborted upload: neither
// parts (a part that was still arriving when the abort came may land
// after it) nor the upload in the bucket's list of uploads in progress.
func (c *Cache) uploadGone(ctx context.Context, key, uploadID string) (bool, error) {
	err := c.call(ctx, func() error {
		_, err := c.client.ListParts(ctx, &s3.ListPartsInput{
			Bucket:   aws.String(c.bucket),
			Key:      aws.String(c.key(key)),
			UploadId: aws.String(uploadID),
			MaxParts: aws.Int32(1),
		})
		return err
	})
	switch {
	case err == nil:
		return false, errors.New("upload still there after the abort")
	case !isGone(err) && httpStatus(err) != http.StatusNotFound:
		return false, err
	}
	var out *s3.ListMultipartUploadsOutput
	err = c.call(ctx, func() (err error) {
		out, err = c.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
			Bucket: aws.String(c.bucket),
			Prefix: aws.String(c.key(key)),
		})
		return err
	})
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(out.Uploads, func(u types.MultipartUpload) bool {
		return aws.ToString(u.UploadId) == uploadID
	}) {
		return false, errors.New("upload still listed after the abort")
	}
	return true, nil
}
