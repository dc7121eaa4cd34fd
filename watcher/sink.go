package watcher

import (
	"context"
	"fmt"
	"strconv"
)

// MarkKey is the queue meta key holding the last ValidPaths id seen, so
// paths registered while nixpush was stopped are found at the next start.
const MarkKey = "watcher.nixdb-mark"

// Queue is the part of the persistent queue the sinks use (a
// *queue.Queue).
type Queue interface {
	Enqueue(ctx context.Context, paths []string) (int, error)
	EnqueueWithMeta(ctx context.Context, paths []string, key, value string) (int, error)
	GetMeta(ctx context.Context, key string) (string, bool, error)
	SetMeta(ctx context.Context, key, value string) error
}

// SavingMark returns the sink of the daemon: rows and mark commit in one
// transaction, so a restart resumes exactly where the last batch ended.
func SavingMark(q Queue) Sink { return savingSink{q} }

type savingSink struct{ q Queue }

func (s savingSink) Add(ctx context.Context, paths []string, mark int64) error {
	_, err := s.q.EnqueueWithMeta(ctx, paths, MarkKey, strconv.FormatInt(mark, 10))
	return err
}

// RowsOnly returns the sink of watch-exec: rows only, the mark stays in
// memory, since a daemon sharing the queue owns the saved mark.
func RowsOnly(q Queue) Sink { return rowsSink{q} }

type rowsSink struct{ q Queue }

func (s rowsSink) Add(ctx context.Context, paths []string, _ int64) error {
	if len(paths) == 0 {
		return nil
	}
	_, err := s.q.Enqueue(ctx, paths)
	return err
}

// SavedMark is the mark a daemon resumes from: the one saved in the queue,
// or on first start now (current, so only paths registered from now on
// are pushed) or 0 with backfill (the whole store), saved at once.
func SavedMark(ctx context.Context, q Queue, current func(context.Context) (int64, error), backfill bool) (int64, error) {
	v, ok, err := q.GetMeta(ctx, MarkKey)
	if err != nil {
		return 0, err
	}
	if ok {
		mark, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("queue meta %s = %q is not a number", MarkKey, v)
		}
		return mark, nil
	}
	var mark int64
	if !backfill {
		if mark, err = current(ctx); err != nil {
			return 0, err
		}
	}
	return mark, q.SetMeta(ctx, MarkKey, strconv.FormatInt(mark, 10))
}
