package verify_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"nixpush/cache"
	"nixpush/cache/verify"
	"nixpush/internal/nixtest"
	"nixpush/internal/pushtest"
)

// staleListing lists a cache as a listing whose pages were read before
// some objects were written: the hidden keys are not in it.
type staleListing struct {
	cache.Cache
	hidden map[string]bool
}

func (c staleListing) List(ctx context.Context, prefix string, fn func(cache.Object) error) error {
	return c.Cache.List(ctx, prefix, func(o cache.Object) error {
		if c.hidden[o.Key] {
			return nil
		}
		return fn(o)
	})
}

// TestVerifyWhilePushing: objects a listing missed because they were
// written while it was read (a NAR, a reference's narinfo) are asked
// for before they are called missing: a cache that is whole at every
// moment is reported whole, however the listing's pages fall; a NAR that
// is really gone is still reported.
func TestVerifyWhilePushing(t *testing.T) {
	f := pushtest.New(t)
	top := f.Nix.Build(t, nixtest.WithReference("confirm"))[0]
	f.Push(t, f.Key, top)
	closure, err := f.Store.Closure(t.Context(), []string{top})
	if err != nil {
		t.Fatal(err)
	}
	hidden := map[string]bool{}
	for _, info := range closure {
		if info.Path != top {
			hidden[cache.NarInfoKey(info.Path)] = true // the reference's narinfo
		}
		hidden[strings.TrimPrefix(f.NARFile(t, info.Path), f.Dir+"/")] = true // and every NAR
	}
	r := runVerify(t, staleListing{Cache: f.Cache, hidden: hidden}, verify.Options{TrustedKeys: []string{f.Pub}})
	if !r.Whole() {
		t.Errorf("a whole cache read through a stale listing: %+v", r.Problems)
	}
	if err := os.Remove(f.NARFile(t, top)); err != nil {
		t.Fatal(err)
	}
	r = runVerify(t, staleListing{Cache: f.Cache, hidden: hidden}, verify.Options{TrustedKeys: []string{f.Pub}})
	if r.Whole() {
		t.Error("a NAR really gone was not reported")
	}
}
