package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"nixpush/drainer"
	"nixpush/queue"
	"nixpush/watcher"
)

// Exec is watch-exec's run on the pipeline: every path registered above
// a mark while a command runs is queued in every cache and pushed at
// once; when the command is done, Finish waits (bounded) for the rest.
// The daemon, if one shares the queues, owns their saved marks: Exec
// writes rows only.
type Exec struct {
	p      *Pipeline
	w      *watcher.Watcher
	scopes []queue.Scope // each lane's: the command's items in its queue
	mu     sync.Mutex
	mine   []string // the paths the command registered
}

// execPoll is watch-exec's safety poll: a build is short, so look often.
const execPoll = 2 * time.Second

// StartExec prepares a run that pushes what is registered above mark.
func (p *Pipeline) StartExec(ctx context.Context, mark int64) (*Exec, error) {
	e := &Exec{p: p}
	sink := &fanout{}
	for _, l := range p.Lanes {
		scope, err := l.Queue.NewScope(ctx)
		if err != nil {
			return nil, p.errorf(l, err)
		}
		e.scopes = append(e.scopes, scope)
		sink.add(l, scopeSink{l.Queue, scope}, mark)
	}
	e.w = p.watcher(sink, mark, execPoll)
	wake := e.w.Enqueued
	e.w.Enqueued = func(paths []string) {
		e.mu.Lock()
		e.mine = append(e.mine, paths...)
		e.mu.Unlock()
		wake(paths)
	}
	return e, nil
}

// scopeSink is watch-exec's sink for one queue: rows (not the mark, which
// a daemon sharing the queue owns) added to the run's scope.
type scopeSink struct {
	q     *queue.Queue
	scope queue.Scope
}

func (s scopeSink) Add(ctx context.Context, paths []string, _ int64) error {
	_, err := s.q.EnqueueIn(ctx, s.scope, paths)
	return err
}

// paths are the command's paths so far.
func (e *Exec) paths() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.mine)
}

// Watch finds and pushes the command's paths until ctx ends (nil), or
// until a lane's drainer fails (its error).
func (e *Exec) Watch(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var failed error
	var once sync.Once
	wg.Add(1 + len(e.p.Lanes))
	go func() { defer wg.Done(); _ = e.w.Run(ctx) }()
	for i, l := range e.p.Lanes {
		go func() {
			defer wg.Done()
			if err := l.Drainer.Run(ctx, drainer.Scope{Items: e.scopes[i]}); err != nil {
				once.Do(func() { failed = e.p.errorf(l, err) })
				stop()
			}
		}()
	}
	wg.Wait()
	return failed
}

// ExecResult is what a watch-exec pushed to one cache.
type ExecResult struct {
	Lane       *Lane
	New        int          // paths the command registered
	Unfinished []queue.Item // of those, not pushed
}

// Finish queues the command's last registrations and waits for every
// cache's uploads of its paths at once, each bounded by timeout and by
// stall (no path pushed for that long). What is not pushed by then stays
// queued.
func (e *Exec) Finish(ctx context.Context, timeout, stall time.Duration) ([]ExecResult, error) {
	// Interrupted (SIGINT as the command ends), the scan is skipped, not
	// failed: the report then says what stays queued, as an interrupted
	// wait does. What the command registered after the last look is not
	// queued by this run; a daemon's scan finds it.
	if err := e.w.Scan(ctx); err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("find paths built by the command: %w", err)
	}
	results := make([]ExecResult, len(e.p.Lanes))
	errs := make([]error, len(e.p.Lanes))
	var wg sync.WaitGroup
	for i, l := range e.p.Lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.drain(ctx, l, e.scopes[i], timeout, stall)
			errs[i] = e.p.errorf(l, errs[i])
		}()
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// drain waits for one cache's uploads of the command's paths.
func (e *Exec) drain(ctx context.Context, l *Lane, scope queue.Scope, timeout, stall time.Duration) (ExecResult, error) {
	defer l.Queue.CloseScope(context.WithoutCancel(ctx), scope) //nolint:errcheck // a dead process's scope goes at the next RecoverOrphans
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go l.cancelOnStall(ctx, cancel, stall)
	if err := l.Drainer.Run(ctx, drainer.Scope{Items: scope, UntilEmpty: true}); err != nil {
		return ExecResult{Lane: l}, err
	}
	mine := e.paths()
	unfinished, err := UnfinishedItems(l.Queue, mine, false)
	return ExecResult{Lane: l, New: len(mine), Unfinished: unfinished}, err
}

// cancelOnStall cancels a drain when no path has been pushed for stall.
func (l *Lane) cancelOnStall(ctx context.Context, cancel context.CancelFunc, stall time.Duration) {
	s := &l.Uploader.Stats
	last := s.Paths.Load()
	t := time.NewTicker(stall)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.Paths.Load()
		if now == last {
			l.Log.Warn("no path pushed for a while, giving up waiting", zap.Duration("no_progress_timeout", stall))
			cancel()
			return
		}
		last = now
	}
}
