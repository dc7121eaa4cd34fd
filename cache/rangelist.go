package cache

import (
	"context"
	"fmt"
)

// RangeLister is a Cache that lists its top-level keys in order from a
// point, a page at a time (S3's ListObjectsV2 with StartAfter). A page
// answers for every narinfo in its range, so asking about many paths in
// a bucket that holds few others costs a request per page, not per path.
type RangeLister interface {
	// ListAfter returns the top-level keys (those without "/") greater
	// than after, in ascending byte order, about max of them at most.
	// reached is the greatest key the page accounts for when more keys
	// follow it, "" when the listing went to the end: every top-level
	// key in (after, reached] is in keys.
	ListAfter(ctx context.Context, after string, max int) (keys []string, reached string, err error)
}

// ListAfter is RangeLister's, retried like List; a backend that cannot
// list in order answers with an error wrapping ErrCannotList.
func (r *retrying) ListAfter(ctx context.Context, after string, max int) (keys []string, reached string, err error) {
	rl, ok := r.Cache.(RangeLister)
	if !ok {
		return nil, "", fmt.Errorf("%s: %w in order", r.Cache, ErrCannotList)
	}
	err = r.do(ctx, func() (err error) {
		keys, reached, err = rl.ListAfter(ctx, after, max)
		return err
	})
	return keys, reached, err
}
