package retry

import (
	"context"
	"time"
)

// Notice is one retry about to be waited for: what failed, which retry
// comes next (1 for the first), of how many at most (0: bounded by time
// or by nothing), and how long until it.
type Notice struct {
	Err   error
	Retry int
	Of    int
	In    time.Duration
}

type notifyKey struct{}

// WithNotify returns ctx carrying fn, which every retry scheduled under it
// is told of (Do's, and the drainer's of a queued path): a person at a
// terminal then sees what failed and when the next try is, instead of
// silence until the last one fails. fn must not block.
func WithNotify(ctx context.Context, fn func(Notice)) context.Context {
	return context.WithValue(ctx, notifyKey{}, fn)
}

// Announce tells ctx's listener, if any, of a retry that a caller
// schedules itself (the drainer stores a path's next attempt in the
// queue instead of waiting in Do).
func Announce(ctx context.Context, n Notice) {
	if fn, ok := ctx.Value(notifyKey{}).(func(Notice)); ok {
		fn(n)
	}
}
