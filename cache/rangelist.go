package cache

import "context"

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

// RangeListerOf is the ordered listing of c's backend, if it has one;
// through the retrying wrapper (WithRetry) its pages are retried as c's
// other reads are.
func RangeListerOf(c Cache) (RangeLister, bool) {
	lister, ok := find[RangeLister](c)
	if !ok {
		return nil, false
	}
	if r, ok := c.(*retrying); ok {
		return retriedLister{r, lister}, true
	}
	return lister, true
}

// retriedLister is a backend's RangeLister behind the retrying wrapper.
type retriedLister struct {
	r      *retrying
	lister RangeLister
}

func (l retriedLister) ListAfter(ctx context.Context, after string, max int) (keys []string, reached string, err error) {
	err = l.r.do(ctx, func() (err error) {
		keys, reached, err = l.lister.ListAfter(ctx, after, max)
		return err
	})
	return keys, reached, err
}
