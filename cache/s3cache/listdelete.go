package s3cache

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"nixpush/cache"
	"nixpush/retry"
)

// List pages through ListObjectsV2 under the cache's key prefix, 1000
// keys a page, calling fn for each object of a page before asking for
// the next.
func (c *Cache) List(ctx context.Context, prefix string, fn func(cache.Object) error) error {
	strip := ""
	if c.prefix != "" {
		strip = c.prefix + "/"
	}
	pages := s3.NewListObjectsV2Paginator(c.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(c.bucket),
		Prefix: aws.String(c.key(prefix)),
	})
	for pages.HasMorePages() {
		var page *s3.ListObjectsV2Output
		err := c.call(ctx, func() (err error) {
			page, err = pages.NextPage(ctx)
			return err
		})
		if err != nil {
			return c.classify("list "+c.key(prefix), err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), strip)
			if !ok {
				return fmt.Errorf("list %s: the server returned key %q outside the prefix", c, aws.ToString(o.Key))
			}
			err := fn(cache.Object{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// ListAfter lists one page of the top-level keys after the given one:
// ListObjectsV2 with StartAfter and the delimiter "/", so the NARs, logs
// and listings beneath roll up into a prefix each.
func (c *Cache) ListAfter(ctx context.Context, after string, limit int) (keys []string, reached string, err error) {
	strip := c.key("")
	var page *s3.ListObjectsV2Output
	err = c.call(ctx, func() (err error) {
		page, err = c.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket:     aws.String(c.bucket),
			Prefix:     aws.String(strip),
			Delimiter:  aws.String("/"),
			StartAfter: aws.String(c.key(after)),
			MaxKeys:    aws.Int32(int32(limit)),
		})
		return err
	})
	if err != nil {
		return nil, "", c.classify("list "+strip, err)
	}
	for _, o := range page.Contents {
		key, ok := strings.CutPrefix(aws.ToString(o.Key), strip)
		if !ok {
			return nil, "", fmt.Errorf("list %s: the server returned key %q outside the prefix", c, aws.ToString(o.Key))
		}
		keys = append(keys, key)
		reached = max(reached, key)
	}
	if !aws.ToBool(page.IsTruncated) {
		return keys, "", nil
	}
	for _, p := range page.CommonPrefixes {
		reached = max(reached, strings.TrimPrefix(aws.ToString(p.Prefix), strip))
	}
	if reached == "" {
		return nil, "", fmt.Errorf("list %s: the server said more keys follow an empty page", c)
	}
	return keys, reached, nil
}

// deleteBatch is the most keys one DeleteObjects request takes.
const deleteBatch = 1000

// Delete removes keys with DeleteObjects, a batch of up to 1000 at a time.
// S3 does not report keys that were already missing. Keys that fail
// (each batch's answer lists them) make an error naming a few of them;
// it is permanent only when every failure is a refusal of access.
func (c *Cache) Delete(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), deleteBatch)
		if err := c.deleteBatch(ctx, keys[:n]); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (c *Cache) deleteBatch(ctx context.Context, keys []string) error {
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, key := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(c.key(key))}
	}
	var out *s3.DeleteObjectsOutput
	err := c.call(ctx, func() (err error) {
		out, err = c.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(c.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		return err
	})
	if err != nil {
		return c.classify(fmt.Sprintf("delete %d objects", len(keys)), err)
	}
	return c.deleteErrors(out.Errors)
}

// deleteErrors turns the per-key failures of a DeleteObjects answer into
// one error, or nil when there are none (or only already-missing keys).
func (c *Cache) deleteErrors(failed []types.Error) error {
	var msgs []string
	permanent, n := true, 0
	for _, e := range failed {
		code := aws.ToString(e.Code)
		if code == "NoSuchKey" {
			continue
		}
		n++
		permanent = permanent && authCodes[code]
		if len(msgs) < 3 {
			msgs = append(msgs, fmt.Sprintf("%s: %s (%s)", strings.TrimPrefix(aws.ToString(e.Key), c.prefix+"/"), code, aws.ToString(e.Message)))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	more := ""
	if n > len(msgs) {
		more = fmt.Sprintf(" and %d more", n-len(msgs))
	}
	err := fmt.Errorf("delete from %s: %s%s", c, strings.Join(msgs, "; "), more)
	if permanent {
		return retry.Permanent(fmt.Errorf("%w: access denied: check AWS credentials / profile and the bucket policy", err))
	}
	return err
}
