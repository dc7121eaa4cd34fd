package httpcache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/sync/errgroup"
)

// List is in propfind.go.

// deletesInFlight bounds concurrent DELETEs: enough to hide a WAN round
// trip per key, no more connections than the transport keeps idle.
const deletesInFlight = 16

// Delete sends one DELETE per key, deletesInFlight at a time; 404 and 410
// mean the object is already gone. The first failure stops the rest and
// is returned: deleting again is harmless, so a caller simply retries.
func (c *Cache) Delete(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if err := checkDeleteKey(key); err != nil {
			return permanent(fmt.Errorf("delete from %s: %w", c.name, err))
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(deletesInFlight)
	for _, key := range keys {
		if ctx.Err() != nil {
			break // a delete failed: stop sending more
		}
		g.Go(func() error { return c.deleteOne(ctx, key) })
	}
	return g.Wait()
}

// keyURL is the URL of a key taken literally, "%" included. (objectURL
// reads a key as an escaped path: "a%20b" becomes "a b", and a key with a
// stray "%" becomes the cache's base URL, which DELETE must never reach.)
func (c *Cache) keyURL(key string) *url.URL {
	u := *c.base
	u.Path = c.base.Path + "/" + key
	u.RawPath = ""
	if c.base.RawPath != "" {
		segs := strings.Split(key, "/")
		for i, s := range segs {
			segs[i] = url.PathEscape(s)
		}
		u.RawPath = c.base.RawPath + "/" + strings.Join(segs, "/")
	}
	return &u
}

// checkDeleteKey refuses keys that would name a collection rather than
// one object: a DELETE of "", "nar/" or "nar/.." would remove a whole
// directory of the cache on a WebDAV server.
func checkDeleteKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("key %q does not name an object", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("key %q does not name an object", key)
		}
	}
	return nil
}

func (c *Cache) deleteOne(ctx context.Context, key string) error {
	req, err := c.newRequest(ctx, http.MethodDelete, key, nil)
	if err != nil {
		return err
	}
	req.URL = c.keyURL(key)
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer discard(resp)
	switch code := resp.StatusCode; {
	case code/100 == 2, code == http.StatusNotFound, code == http.StatusGone:
		return nil
	}
	err = c.statusError(req, resp)
	var se *StatusError
	if !errors.As(err, &se) || se.Hint != "" {
		return err
	}
	switch se.Code {
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		// statusError takes 501 for a passing failure: not to a DELETE.
		se.Hint = "the server does not delete here: enable DELETE (nginx: dav_methods PUT DELETE) or check the cache URL"
		return permanent(se)
	case http.StatusForbidden:
		se.Hint = "the server refuses to delete: " + c.auth.refused(false)
	}
	return err
}
