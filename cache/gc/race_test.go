package gc_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/gc"
	"nixpush/internal/pushtest"
)

// hookCache runs a hook after each Delete: the moment a pusher racing gc
// can write.
type hookCache struct {
	cache.Cache
	once        sync.Once
	afterDelete func(keys []string)
}

func (c *hookCache) Delete(ctx context.Context, keys []string) error {
	err := c.Cache.Delete(ctx, keys)
	c.afterDelete(keys)
	return err
}

// TestCollectRestoresWhatARacingPushNeeds: a pusher that checked the
// cache before gc deleted a's closure writes a's narinfo again right after
// gc deleted it (and before gc deletes only-a, which a references). gc's
// second listing sees the new narinfo, puts only-a back, and keeps both
// NARs: the cache stays whole and a substitutes.
func TestCollectRestoresWhatARacingPushNeeds(t *testing.T) {
	f := pushtest.New(t)
	out := f.Nix.Build(t, sharing)
	p := closures{a: out[0], b: out[1], onlyA: out[2], shared: out[3]}
	pushAThenB(t, f, p, 10*24*time.Hour)
	aText, err := os.ReadFile(f.NarInfoFile(p.a))
	if err != nil {
		t.Fatal(err)
	}
	racer := &hookCache{Cache: f.Cache}
	racer.afterDelete = func(keys []string) {
		if !slices.Contains(keys, cache.NarInfoKey(p.a)) {
			return
		}
		racer.once.Do(func() {
			if err := os.WriteFile(f.NarInfoFile(p.a), aText, 0o644); err != nil {
				t.Error(err)
			}
		})
	}
	later := time.Now().Add(2 * time.Hour)
	r, err := gc.Collect(t.Context(), racer, gc.Options{KeepDays: 7, Delete: true, Grace: gc.DefaultGrace, Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Restored, []string{p.onlyA}) || len(r.Paths) != 0 {
		t.Errorf("restored %q, deleted %q; want only-a restored and nothing deleted", r.Restored, r.Paths)
	}
	if slices.Contains(r.NARs, narKey(t, f, p.a)) || slices.Contains(r.NARs, narKey(t, f, p.onlyA)) {
		t.Errorf("gc deleted NARs the racing push needs: %q", r.NARs)
	}
	whole(t, f)
	f.Substitute(t, p.a, p.b)
}
