package s3cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/retry"
)

// headSize is how much of a body Put reads before it needs a part-sized
// buffer: narinfos and most NARs fit, and cost no more memory than this.
const headSize = 256 << 10

// Put streams r to the object. A body shorter than PartSize goes up in one
// PutObject; a longer one as a multipart upload with up to Concurrency
// parts in flight, so memory stays within PartSize × Concurrency whatever
// the size. A body that offers a size hint (cache.SizeHinter) may go
// up in larger parts, fewer at a time: see partPlan. S3 shows an object only once its PUT or its multipart upload
// completes, so readers see all of it or none; a failed multipart upload
// is aborted, leaving neither object nor parts behind.
func (c *Cache) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	c.abortLeftovers(ctx)
	head := c.heads.Get().(*[]byte)
	defer c.heads.Put(head)
	n, eof, err := readPart(r, *head)
	if err != nil {
		return fmt.Errorf("put %s: read: %w", key, err)
	}
	if eof {
		return c.putObject(ctx, key, (*head)[:n], contentType)
	}
	var hint int64
	if h, ok := r.(cache.SizeHinter); ok {
		hint = h.SizeHint()
	}
	size, inFlight := partPlan(hint, c.cfg.PartSize, c.cfg.Concurrency)
	part := c.getPart(size)
	copy(*part, (*head)[:n])
	m, eof, err := readPart(r, (*part)[n:])
	switch {
	case err != nil:
		c.putPart(part)
		return fmt.Errorf("put %s: read: %w", key, err)
	case eof:
		defer c.putPart(part)
		return c.putObject(ctx, key, (*part)[:n+m], contentType)
	}
	return c.putMultipart(ctx, key, contentType, r, part, inFlight)
}

// readPart fills buf from r. eof reports that r ended (n may be anything
// up to len(buf)); err is r's failure, never io.EOF.
func readPart(r io.Reader, buf []byte) (n int, eof bool, err error) {
	n, err = io.ReadFull(r, buf)
	switch err {
	case nil:
		return n, false, nil
	case io.EOF, io.ErrUnexpectedEOF:
		return n, true, nil
	}
	return n, false, err
}

func (c *Cache) putObject(ctx context.Context, key string, body []byte, contentType string) error {
	_, err := c.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(c.bucket),
		Key:           aws.String(c.key(key)),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   optional(contentType),
	})
	if err != nil {
		return c.classify("put "+key, err)
	}
	return nil
}

// putMultipart uploads first (a full part) and the rest of r as a
// multipart upload in parts of first's size. Buffers circulate through
// free: a part is read only once an earlier one has been sent, so at most
// inFlight buffers exist.
func (c *Cache) putMultipart(ctx context.Context, key, contentType string, r io.Reader, first *[]byte, inFlight int) error {
	created, err := c.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(c.bucket),
		Key:         aws.String(c.key(key)),
		ContentType: optional(contentType),
	})
	if err != nil {
		c.putPart(first)
		return c.classify("put "+key, err)
	}
	uploadID := created.UploadId

	// Parts run neither on a context cancelled at the first failure nor
	// on ctx, but on one that outlives ctx by a short grace: a part cut
	// off mid-request can land on the server after the abort and stay
	// there. The parts in flight finish (boundedly) before the abort
	// instead, and the abort runs within the same grace.
	pctx, cancel := c.graceContext(ctx)
	defer cancel()
	var (
		g        errgroup.Group
		mu       sync.Mutex
		sent     []types.CompletedPart
		failed   = make(chan struct{}) // closed at the first failed part
		failOnce sync.Once
	)
	size := int64(len(*first))
	free := make(chan *[]byte, inFlight) // nil: not allocated yet
	for range inFlight - 1 {
		free <- nil
	}
	send := func(num int32, buf *[]byte, n int) {
		g.Go(func() error {
			defer func() { free <- buf }()
			out, err := c.client.UploadPart(pctx, &s3.UploadPartInput{
				Bucket:        aws.String(c.bucket),
				Key:           aws.String(c.key(key)),
				UploadId:      uploadID,
				PartNumber:    aws.Int32(num),
				Body:          bytes.NewReader((*buf)[:n]),
				ContentLength: aws.Int64(int64(n)),
			})
			if err != nil {
				failOnce.Do(func() { close(failed) })
				return c.classify(fmt.Sprintf("put %s: part %d", key, num), err)
			}
			mu.Lock()
			sent = append(sent, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
			mu.Unlock()
			return nil
		})
	}

	send(1, first, len(*first))
	readErr := func() error {
		for num := int32(2); ; num++ {
			var buf *[]byte
			select {
			case buf = <-free:
			case <-failed:
				return nil // g.Wait reports it
			case <-ctx.Done():
				return nil
			}
			if ctx.Err() != nil || isClosed(failed) {
				free <- buf
				return nil
			}
			if buf == nil {
				buf = c.getPart(size)
			}
			n, eof, err := readPart(r, *buf)
			switch {
			case err != nil:
				free <- buf
				return fmt.Errorf("put %s: read: %w", key, err)
			case n == 0: // r ended on a part boundary
				free <- buf
			case int64(num) > maxParts:
				free <- buf
				return retry.Permanent(fmt.Errorf("put %s: larger than %d parts of %d bytes: raise the part size", key, maxParts, size))
			default:
				send(num, buf, n)
			}
			if eof {
				return nil
			}
		}
	}()
	partErr := g.Wait()
	for range len(free) {
		if b := <-free; b != nil {
			c.putPart(b)
		}
	}

	switch {
	case readErr != nil:
		err = readErr
	case ctx.Err() != nil:
		// Parts that failed after ctx ended (cut short by the grace)
		// failed because of it.
		err = fmt.Errorf("put %s: %w", key, ctx.Err())
	default:
		err = partErr
	}
	if err == nil {
		slices.SortFunc(sent, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
		_, err = c.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(c.bucket),
			Key:             aws.String(c.key(key)),
			UploadId:        uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: sent},
		})
		if err == nil {
			return nil
		}
		err = c.classify("put "+key+": complete multipart upload", err)
	}
	return c.abort(pctx, key, uploadID, err)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
