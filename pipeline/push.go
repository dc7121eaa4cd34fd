package pipeline

import (
	"context"
	"slices"
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
//
// The closure is planned and enqueued a part at a time (dependencies
// first), and the first parts upload while the rest is planned: planning
// 100,000 paths takes seconds that would otherwise pass with no upload.
func (l *Lane) Push(ctx context.Context, closure []*nixstore.PathInfo, o PushOptions) (PushResult, error) {
	res := PushResult{Stats: &l.Uploader.Stats}
	if o.DrainAll {
		// Rows that a killed push left uploading go back to pending, so
		// the whole queue (push --drain, status) sees them.
		if _, err := l.Queue.RecoverOrphans(ctx); err != nil {
			return res, err
		}
		return l.drainAll(ctx, closure, o)
	}
	var (
		items    queue.Scope
		mine     []string
		narBytes int64
		drained  chan error
	)
	complete := make(chan struct{})
	drainCtx, stopDrain := context.WithCancel(ctx)
	defer stopDrain()
	fail := func(err error) (PushResult, error) {
		// What is queued stays queued; the uploads in flight finish.
		close(complete)
		stopDrain()
		if drained != nil {
			<-drained
		}
		return res, err
	}
	for start, size := 0, firstPart; start < len(closure); start, size = start+size, planPart {
		part := closure[start:min(start+size, len(closure))]
		plan, err := l.Uploader.Plan(ctx, part)
		if err != nil {
			return fail(err)
		}
		res.Plan = res.Plan.Merge(plan)
		todo := append(paths(plan.Upload), paths(plan.Realisations)...)
		if len(todo) == 0 {
			continue
		}
		if drained == nil {
			// The queue is touched at the first part with work: a re-run
			// that finds everything in the cache writes nothing there.
			if _, err := l.Queue.RecoverOrphans(ctx); err != nil {
				return fail(err)
			}
			if items, err = l.Queue.NewScope(ctx); err != nil {
				return fail(err)
			}
			defer l.Queue.CloseScope(context.WithoutCancel(ctx), items) //nolint:errcheck // a dead process's scope goes at the next RecoverOrphans
		}
		if _, err := l.Queue.RequeueIn(ctx, items, todo); err != nil {
			return fail(err)
		}
		mine = append(mine, todo...)
		for _, info := range plan.Upload {
			narBytes += int64(info.NarSize)
		}
		if drained == nil {
			drained = make(chan error, 1)
			scope := drainer.Scope{Items: items, UntilEmpty: true, Complete: complete}
			go func() { drained <- l.Drainer.Run(drainCtx, scope) }()
		}
		l.Drainer.Wake()
	}
	close(complete)
	res.Total = len(mine)
	if drained == nil {
		return res, nil // nothing to upload
	}
	stop := func() {}
	if o.Started != nil {
		stop = o.Started(res.Total, narBytes)
	}
	err := <-drained
	stop()
	if err != nil {
		return res, err
	}
	res.Unfinished, err = UnfinishedItems(l.Queue, mine, false)
	return res, err
}

// planPart is how many paths of a closure are planned and enqueued at a
// time: enough that the existence checks of a part fill their slots, few
// enough that uploads start within a fraction of a second. The first part
// is one drainer batch: planning and enqueueing 2,048 paths took 50–100
// ms in which nothing was uploaded.
const (
	planPart  = 2048
	firstPart = 256
)

// drainAll is push --drain: the whole queue, and the closure, if any,
// with it.
func (l *Lane) drainAll(ctx context.Context, closure []*nixstore.PathInfo, o PushOptions) (PushResult, error) {
	res := PushResult{Stats: &l.Uploader.Stats}
	if len(closure) > 0 {
		var err error
		if res.Plan, err = l.Uploader.Plan(ctx, closure); err != nil {
			return res, err
		}
		if _, err := l.Queue.Requeue(ctx, append(paths(res.Plan.Upload), paths(res.Plan.Realisations)...)); err != nil {
			return res, err
		}
	}
	st, err := l.Queue.Status(ctx, time.Now())
	if err != nil {
		return res, err
	}
	res.Total = st.Counts[queue.Pending] + st.Counts[queue.Uploading]
	if res.Total == 0 {
		return res, nil
	}
	stop := func() {}
	if o.Started != nil {
		stop = o.Started(res.Total, 0)
	}
	err = l.Drainer.Run(ctx, drainer.Scope{Items: queue.Everything, UntilEmpty: true})
	stop()
	if err != nil {
		return res, err
	}
	res.Unfinished, err = UnfinishedItems(l.Queue, nil, true)
	return res, err
}

func paths(infos []*nixstore.PathInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Path
	}
	return out
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
	items, err := q.Unfinished(ctx, paths)
	if err != nil {
		return nil, err
	}
	// In the order of paths: a summary names them as the run met them.
	order := make(map[string]int, len(items))
	for _, it := range items {
		order[it.Path] = 0
	}
	for i, p := range paths {
		if _, ok := order[p]; ok {
			order[p] = i
		}
	}
	slices.SortFunc(items, func(a, b queue.Item) int { return order[a.Path] - order[b.Path] })
	return items, nil
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
