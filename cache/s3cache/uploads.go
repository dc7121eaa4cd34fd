package s3cache

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"nixpush/cache"
)

var (
	_ cache.Uploads   = (*Cache)(nil)
	_ cache.Abandoner = (*Cache)(nil)
	_ cache.Creator   = (*Cache)(nil)
	_ cache.Counted   = (*Cache)(nil)
)

// ListUploads lists the multipart uploads in progress under the cache's
// prefix, a thousand a page.
func (c *Cache) ListUploads(ctx context.Context, fn func(cache.Upload) error) error {
	strip := ""
	if c.prefix != "" {
		strip = c.prefix + "/"
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(c.bucket), Prefix: aws.String(strip)}
	for {
		var out *s3.ListMultipartUploadsOutput
		err := c.call(ctx, func() (err error) {
			out, err = c.client.ListMultipartUploads(ctx, in)
			return err
		})
		if err != nil {
			return c.classify("list multipart uploads", err)
		}
		for _, u := range out.Uploads {
			key, ok := strings.CutPrefix(aws.ToString(u.Key), strip)
			if !ok {
				continue
			}
			if err := fn(cache.Upload{Key: key, ID: aws.ToString(u.UploadId), Started: aws.ToTime(u.Initiated)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// UploadChanged is when the upload last received a part, or its start.
func (c *Cache) UploadChanged(ctx context.Context, u cache.Upload) (time.Time, error) {
	parts, err := c.listParts(ctx, u.Key, u.ID)
	if err != nil {
		return time.Time{}, c.classify("list the parts of an upload of "+u.Key, err)
	}
	changed := u.Started
	for _, p := range parts {
		if t := aws.ToTime(p.LastModified); t.After(changed) {
			changed = t
		}
	}
	return changed, nil
}

// AbortUpload aborts an upload and checks it is gone.
func (c *Cache) AbortUpload(ctx context.Context, u cache.Upload) error {
	if err := c.abortRetried(ctx, u.Key, u.ID); err != nil {
		return c.classify("abort an upload of "+u.Key, err)
	}
	return nil
}

// Abandon aborts the upload a Resumable body saved the state of.
func (c *Cache) Abandon(ctx context.Context, state []byte) error {
	var st uploadState
	if err := json.Unmarshal(state, &st); err != nil || st.UploadID == "" {
		return nil // nothing this backend started
	}
	if err := c.abortRetried(ctx, st.Key, st.UploadID); err != nil {
		return c.classify(fmt.Sprintf("abort the upload of %s", st.Key), err)
	}
	return nil
}
