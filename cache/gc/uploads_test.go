package gc_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/filecache"
	"nixpush/cache/gc"
)

// withUploads is a cache with multipart uploads in progress, as an S3
// bucket has them.
type withUploads struct {
	cache.Cache
	uploads []cache.Upload
	changed map[string]time.Time
	aborted []string
}

func (c *withUploads) ListUploads(_ context.Context, fn func(cache.Upload) error) error {
	for _, u := range c.uploads {
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

func (c *withUploads) UploadChanged(_ context.Context, u cache.Upload) (time.Time, error) {
	return c.changed[u.ID], nil
}

func (c *withUploads) AbortUpload(_ context.Context, u cache.Upload) error {
	c.aborted = append(c.aborted, u.ID)
	return nil
}

// TestAbortIdleUploads: gc aborts the multipart uploads that began and
// last received a part before its grace period, and only with --delete;
// an old upload still receiving parts, or a new one, is someone's.
func TestAbortIdleUploads(t *testing.T) {
	fc, err := filecache.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := &withUploads{Cache: fc,
		uploads: []cache.Upload{
			{Key: "nar/idle.nar.zst", ID: "idle", Started: now.Add(-3 * time.Hour)},
			{Key: "nar/busy.nar.zst", ID: "busy", Started: now.Add(-3 * time.Hour)},
			{Key: "nar/new.nar.zst", ID: "new", Started: now.Add(-5 * time.Minute)},
		},
		changed: map[string]time.Time{
			"idle": now.Add(-2 * time.Hour), "busy": now.Add(-10 * time.Minute), "new": now.Add(-time.Minute),
		},
	}
	dry, err := gc.Collect(t.Context(), c, gc.Options{Grace: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.Uploads, []string{"nar/idle.nar.zst (upload idle)"}) || len(c.aborted) > 0 {
		t.Errorf("dry run: would abort %q, aborted %q; want the idle upload, nothing aborted", dry.Uploads, c.aborted)
	}
	res, err := gc.Collect(t.Context(), c, gc.Options{Grace: time.Hour, Delete: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.aborted, []string{"idle"}) || len(res.Uploads) != 1 {
		t.Errorf("aborted %q (reported %q), want only the idle upload", c.aborted, res.Uploads)
	}
}
