package filecache_test

import (
	"testing"

	"nixpush/cache"
	"nixpush/cache/cachetest"
	"nixpush/cache/filecache"
)

func TestConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Cache {
		c, err := filecache.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
