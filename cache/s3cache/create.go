package s3cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"nixpush/cache"
)

// probeKey is the object CanCreate writes to learn whether the server
// honours If-None-Match: under nixpush/, which Nix never reads and gc
// never deletes.
const probeKey = "nixpush/conditional-write-probe"

// createSupport is what the server was found to do with If-None-Match: *
// on a PUT. AWS (since 2024), R2, MinIO and versitygw refuse the write
// with 412 when the key exists; Garage ignores the header and
// overwrites, and some servers answer 501. Nothing in a server's answers
// says which it is until a write meets an existing key, so CanCreate asks
// once per process by writing probeKey twice.
type createSupport struct {
	probe sync.Mutex   // one probe at a time
	state atomic.Int32 // createUnknown, createHonoured, createIgnored
}

const (
	createUnknown int32 = iota
	createHonoured
	createIgnored
)

// CanCreate reports whether Create is honoured. The first call writes
// the probe object with If-None-Match: * (one request, or two the first
// time in a bucket: a 412 on either proves support, a second 200 proves
// the header ignored); its answer is kept for the life of the Cache.
func (c *Cache) CanCreate(ctx context.Context) (bool, error) {
	if st := c.creates.state.Load(); st != createUnknown {
		return st == createHonoured, nil
	}
	c.creates.probe.Lock()
	defer c.creates.probe.Unlock()
	body := []byte("nixpush writes this object with If-None-Match: * to learn whether the server honours it.\n")
	for range 2 {
		if st := c.creates.state.Load(); st != createUnknown {
			return st == createHonoured, nil
		}
		err := c.putObject(ctx, probeKey, body, "text/plain", true)
		switch {
		case errors.Is(err, cache.ErrExists):
			c.creates.state.Store(createHonoured)
			return true, nil
		case errors.Is(err, cache.ErrCannotCreate):
			return false, nil // putObject recorded it
		case err != nil:
			return false, fmt.Errorf("learn whether %s honours conditional writes: %w", c, err)
		}
	}
	c.creates.state.Store(createIgnored)
	return false, nil
}

// conditionalAnswer turns the answer to a write with If-None-Match: *
// into a *cache.ExistsError (412: the key is taken; see existing) or
// cache.ErrCannotCreate (501 naming the header: the server does no
// conditional writes, which is remembered); other errors pass.
func (c *Cache) conditionalAnswer(ctx context.Context, key string, size int64, etag string, err error) error {
	switch {
	case httpStatus(err) == http.StatusPreconditionFailed:
		return c.existing(ctx, key, size, etag)
	case httpStatus(err) == http.StatusNotImplemented && strings.Contains(strings.ToLower(err.Error()), "if-none-match"):
		c.creates.state.Store(createIgnored)
		return fmt.Errorf("put %s: %w", key, cache.ErrCannotCreate)
	}
	return err
}
