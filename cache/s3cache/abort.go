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
// a failed multipart upload outlive the caller's context: a shutdown
// waits no longer.
const maxAbortGrace = 5 * time.Second

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
func (c *Cache) abort(ctx context.Context, key string, uploadID *string, cause error) error {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	err := abortRetry.Do(actx, func() error {
		_, err := c.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   aws.String(c.bucket),
			Key:      aws.String(c.key(key)),
			UploadId: uploadID,
		})
		if err != nil && errorCode(err) != "NoSuchUpload" {
			return err
		}
		_, err = c.uploadGone(actx, key, uploadID)
		return err
	})
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

// leftovers are multipart uploads whose abort failed (the server was down
// when the upload failed): their parts would stay on the server, billed,
// until a lifecycle rule removes them. They are aborted again before the
// next Put and at Close, once the server answers again.
type leftovers struct {
	mu      sync.Mutex
	uploads []leftover
}

type leftover struct {
	key string
	id  *string
}

func (l *leftovers) add(key string, id *string) {
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

// abortLeftovers tries once more to abort each leftover upload, within
// Timeout; those still there are kept for the next try.
func (c *Cache) abortLeftovers(ctx context.Context) {
	for _, u := range c.leftovers.take() {
		actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		_, err := c.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(c.bucket), Key: aws.String(c.key(u.key)), UploadId: u.id,
		})
		gone := err == nil || errorCode(err) == "NoSuchUpload"
		if gone {
			gone, _ = c.uploadGone(actx, u.key, u.id)
		}
		cancel()
		if !gone {
			c.leftovers.add(u.key, u.id)
		}
	}
}

// Close aborts leftover multipart uploads one last time.
func (c *Cache) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	c.abortLeftovers(ctx)
	if n := len(c.leftovers.take()); n > 0 {
		return fmt.Errorf("%d failed multipart uploads could not be aborted: their parts stay until a lifecycle rule removes them", n)
	}
	return nil
}

func abortFailed(cause, err error) error {
	return fmt.Errorf("%w (and aborting the multipart upload failed, its parts stay until a lifecycle rule removes them: %v)", cause, err)
}

// uploadGone checks that nothing remains of an aborted upload: neither
// parts (a part that was still arriving when the abort came may land
// after it) nor the upload in the bucket's list of uploads in progress.
func (c *Cache) uploadGone(ctx context.Context, key string, uploadID *string) (bool, error) {
	_, err := c.client.ListParts(ctx, &s3.ListPartsInput{
		Bucket:   aws.String(c.bucket),
		Key:      aws.String(c.key(key)),
		UploadId: uploadID,
		MaxParts: aws.Int32(1),
	})
	switch {
	case err == nil:
		return false, errors.New("upload still there after the abort")
	case errorCode(err) != "NoSuchUpload" && httpStatus(err) != http.StatusNotFound:
		return false, err
	}
	out, err := c.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(c.bucket),
		Prefix: aws.String(c.key(key)),
	})
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(out.Uploads, func(u types.MultipartUpload) bool {
		return aws.ToString(u.UploadId) == aws.ToString(uploadID)
	}) {
		return false, errors.New("upload still listed after the abort")
	}
	return true, nil
}
