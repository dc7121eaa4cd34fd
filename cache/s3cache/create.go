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
		case errors.Is(err, errTaken):
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

// errTaken is what errors.Is finds in a *takenError.
var errTaken = errors.New("key taken")

// takenError is a write with If-None-Match: * refused because the key
// holds an object (412), with what the refused write would have written:
// Create's caller learns whether it is the same (see existing); the probe
// needs no more than the refusal.
type takenError struct {
	key  string
	size int64
	etag string // S3's ETag of the refused bytes, without quotes
}

func (e *takenError) Error() string        { return "put " + e.key + ": " + errTaken.Error() }
func (e *takenError) Is(target error) bool { return target == errTaken }

// conditionalAnswer turns the answer to a write with If-None-Match: *
// into a *takenError (412) or cache.ErrCannotCreate (501 naming the
// header: the server does no conditional writes, which is remembered);
// other errors pass.
func (c *Cache) conditionalAnswer(key string, size int64, etag string, err error) error {
	switch {
	case httpStatus(err) == http.StatusPreconditionFailed:
		return &takenError{key: key, size: size, etag: etag}
	case httpStatus(err) == http.StatusNotImplemented && strings.Contains(strings.ToLower(err.Error()), "if-none-match"):
		c.creates.state.Store(createIgnored)
		return fmt.Errorf("put %s: %w", key, cache.ErrCannotCreate)
	}
	return err
}
