package s3cache

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"nixpush/cache"
)

// headSize is how much of a body Put reads before it needs a part-sized
// buffer: narinfos and most NARs fit, and cost no more memory than this.
const headSize = 256 << 10

// Put streams r to the object. A body shorter than PartSize goes up in one
// PutObject; a longer one as a multipart upload with up to Concurrency
// parts in flight, so memory stays within PartSize × Concurrency whatever
// the size. A body that offers a size hint (cache.SizeHinter) may go
// up in larger parts, fewer at a time: see partPlan. S3 shows an object
// only once its PUT or its multipart upload completes, so readers see all
// of it or none. A body that is cache.Resumable keeps its multipart
// upload across a crash (see multipart.go); any other failed multipart
// upload is aborted, leaving neither object nor parts behind.
func (c *Cache) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	return c.put(ctx, key, r, contentType, false)
}

// Create is Put with If-None-Match: *, on a server that honours it (see
// CanCreate): the object is written only if its key is free, else
// cache.ErrExists.
func (c *Cache) Create(ctx context.Context, key string, r io.Reader, contentType string) error {
	ok, err := c.CanCreate(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return cache.ErrCannotCreate
	}
	return c.put(ctx, key, r, contentType, true)
}

func (c *Cache) put(ctx context.Context, key string, r io.Reader, contentType string, create bool) error {
	err := c.putAny(ctx, key, r, contentType, create)
	var taken *takenError
	if errors.As(err, &taken) {
		return c.existing(ctx, key, taken.size, taken.etag)
	}
	return err
}

func (c *Cache) putAny(ctx context.Context, key string, r io.Reader, contentType string, create bool) error {
	c.abortLeftoversSoon()
	up := &upload{c: c, key: key, contentType: contentType, create: create}
	if err := up.load(ctx, r); err != nil {
		return err
	}
	var hint int64
	if h, ok := r.(cache.SizeHinter); ok {
		hint = h.SizeHint()
	}
	size, inFlight := partPlan(hint, c.cfg.PartSize, c.cfg.Concurrency)
	if up.id != "" {
		// Continuing an upload: its parts keep the size they had.
		size, inFlight = up.partSize, max(1, int(c.cfg.PartSize*int64(c.cfg.Concurrency)/up.partSize))
		part := c.getPart(size)
		n, _, err := readPart(r, *part)
		if err != nil {
			c.putPart(part)
			return fmt.Errorf("put %s: read: %w", key, err)
		}
		return up.run(ctx, r, part, n, inFlight)
	}
	head := c.heads.Get().(*[]byte)
	defer c.heads.Put(head)
	n, eof, err := readPart(r, *head)
	if err != nil {
		return fmt.Errorf("put %s: read: %w", key, err)
	}
	if eof {
		return c.putObject(ctx, key, (*head)[:n], contentType, create)
	}
	part := c.getPart(size)
	copy(*part, (*head)[:n])
	m, eof, err := readPart(r, (*part)[n:])
	switch {
	case err != nil:
		c.putPart(part)
		return fmt.Errorf("put %s: read: %w", key, err)
	case eof:
		defer c.putPart(part)
		return c.putObject(ctx, key, (*part)[:n+m], contentType, create)
	}
	up.partSize = size
	return up.run(ctx, r, part, n+m, inFlight)
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

// putObject writes body in one request, with its MD5 so the server
// rejects bytes damaged on the way.
func (c *Cache) putObject(ctx context.Context, key string, body []byte, contentType string, create bool) error {
	sum := md5.Sum(body)
	err := c.call(ctx, func() error {
		in := &s3.PutObjectInput{
			Bucket:        aws.String(c.bucket),
			Key:           aws.String(c.key(key)),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
			ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
			ContentType:   optional(contentType),
		}
		if create {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := c.client.PutObject(ctx, in)
		return err
	})
	if create && err != nil {
		etag := hex.EncodeToString(sum[:])
		if answer := c.conditionalAnswer(key, int64(len(body)), etag, err); answer != err {
			return answer
		}
		if resetEarly(ctx, err) && key != probeKey {
			// Some servers (versitygw) refuse a conditional PUT of an
			// existing key as soon as they read its headers and close
			// the connection while the body is still coming: the client
			// sees a reset, not the 412. Whether the key is taken, the
			// object says.
			if found, size, oetag, age, herr := c.head(ctx, key); herr == nil && found {
				return existsError(key, int64(len(body)), etag, size, oetag, age)
			}
		}
	}
	if err != nil {
		return c.classify("put "+key, err)
	}
	return nil
}

// resetEarly reports a request that got no answer for a cause other than
// a stall or the caller giving up: a connection closed under it.
func resetEarly(ctx context.Context, err error) bool {
	return ctx.Err() == nil && httpStatus(err) == 0 && !errors.Is(err, ErrStalled) && !isCredentialsError(err)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
