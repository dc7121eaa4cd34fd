package pipeline

import (
	"context"
	"time"

	"nixpush/drainer"
	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/uploader"
)

// PushResult is what a push did in one cache.
type PushResult struct {
	Plan  uploader.Plan   // what the closure needed
	Stats *uploader.Stats // what was uploaded
	// Total is how many queue items the push drained (0: nothing to do).
	Total int
	// Unfinished are the items that did not end up done or skipped.
	Unfinished []queue.Item
}

// PushOptions say how much a push drains and how it shows progress.
type PushOptions struct {
	// DrainAll drains the whole queue (push --drain), not only the
	// closure's items.
	DrainAll bool
	// Started, when set, is called once the number of items to drain is
	// known, with the NAR bytes they hold when the plan knows them (0 for
	// DrainAll), and returns the function that ends the progress display.
	Started func(total int, narBytes int64) (stop func())
}

// Push enqueues what the cache lacks of a closure (what the memo trusts:
// uploader.Uploader.Plan), drains exactly those items (or, with
// DrainAll, the whole queue) and reports: the core of push, shared by
// verify --repair. Items a push cut short leaves pending are finished by
// the next watch-store or push --drain.
func (l *Lane) Push(ctx context.Context, closure []*nixstore.PathInfo, o PushOptions) (PushResult, error) {
	res := PushResult{Stats: &l.Uploader.Stats}
	if len(closure) > 0 {
		var err error
		if res.Plan, err = l.Uploader.Plan(ctx, closure); err != nil {
			return res, err
		}
	}
	var mine []string
	var narBytes int64
	for _, info := range res.Plan.Upload {
		mine = append(mine, info.Path)
		narBytes += int64(info.NarSize)
	}
	for _, info := range res.Plan.Realisations {
		mine = append(mine, info.Path)
	}
	if len(mine) == 0 && !o.DrainAll {
		return res, nil // all there: nothing to queue or drain
	}
	// Rows that a killed push left uploading go back to pending, so the
	// whole queue (push --drain, status) sees them.
	if _, err := l.Queue.RecoverOrphans(ctx); err != nil {
		return res, err
	}
	items, err := l.Queue.NewScope(ctx)
	if err != nil {
		return res, err
	}
	defer l.Queue.CloseScope(context.WithoutCancel(ctx), items) //nolint:errcheck // a dead process's scope goes at the next RecoverOrphans
	if _, err := l.Queue.RequeueIn(ctx, items, mine); err != nil {
		return res, err
	}
	scope := drainer.Scope{Items: items, UntilEmpty: true}
	res.Total = len(mine)
	if o.DrainAll {
		st, err := l.Queue.Status(ctx, time.Now())
		if err != nil {
			return res, err
		}
		res.Total = st.Counts[queue.Pending] + st.Counts[queue.Uploading]
		scope.Items, mine, narBytes = queue.Everything, nil, 0
	}
	if res.Total == 0 {
		return res, nil
	}
	stop := func() {}
	if o.Started != nil {
		stop = o.Started(res.Total, narBytes)
	}
	err = l.Drainer.Run(ctx, scope)
	stop()
	if err != nil {
		return res, err
	}
	res.Unfinished, err = UnfinishedItems(l.Queue, mine, o.DrainAll)
	return res, err
}

// UnfinishedItems lists the items of the given paths that did not end up
// done or skipped; with wholeQueue, the problems of the whole queue.
func UnfinishedItems(q *queue.Queue, paths []string, wholeQueue bool) ([]queue.Item, error) {
	ctx := context.Background()
	if wholeQueue {
		st, err := q.Status(ctx, time.Now())
		if err != nil {
			return nil, err
		}
		return append(st.RecentFailures, st.PendingErrors...), nil
	}
	if len(paths) == 0 {
		return nil, nil
	}
	items, err := q.Get(ctx, paths)
	if err != nil {
		return nil, err
	}
	var out []queue.Item
	for _, p := range paths {
		if it, ok := items[p]; ok && it.State != queue.Done && it.State != queue.Skipped {
			out = append(out, it)
		}
	}
	return out, nil
}

// ResolveClosure maps arguments (store paths, ./result links) to store
// paths and reads their closure: a non-store path or a path the DB does
// not know is an error.
func ResolveClosure(ctx context.Context, store *nixstore.Store, args []string) ([]*nixstore.PathInfo, error) {
	if len(args) == 0 {
		return nil, nil
	}
	roots, err := ResolvePaths(store, args)
	if err != nil {
		return nil, err
	}
	return store.Closure(ctx, roots)
}

// ResolvePaths maps arguments (store paths, ./result links) to store
// paths through the local store.
func ResolvePaths(store *nixstore.Store, args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, a := range args {
		p, err := store.Resolve(a)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
