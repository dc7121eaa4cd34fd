package s3cache_test

import (
	"fmt"
	"testing"

	"nixpush/cache"
	"nixpush/cache/cachetest"
	"nixpush/cache/s3cache"
	"nixpush/internal/servertest"
)

// TestConformance runs the suite against versitygw; each subtest gets an
// empty cache under its own key prefix of one bucket. The suite's 40 MB
// object is above the default part size, so it goes up in parts.
func TestConformance(t *testing.T) {
	s := servertest.StartVersitygw(t)
	cachetest.Secrets = []string{s.SecretKey}
	t.Cleanup(func() { cachetest.Secrets = nil })
	n := 0
	cachetest.Run(t, func(t *testing.T) cache.Cache {
		n++
		c, err := s3cache.New(t.Context(), s.URL(fmt.Sprintf("conformance/%d", n)), s3cache.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
