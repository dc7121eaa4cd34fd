package s3cache

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/internal/servertest"
)

// neighbours are two caches in one bucket under the prefixes "team" and
// "team2": one's prefix is the start of the other's.
func neighbours(t *testing.T) (team, team2 *Cache) {
	s := servertest.StartVersitygw(t)
	var err error
	if team, err = New(t.Context(), s.URL("team"), Config{}); err != nil {
		t.Fatal(err)
	}
	if team2, err = New(t.Context(), s.URL("team2"), Config{}); err != nil {
		t.Fatal(err)
	}
	return team, team2
}

// TestListDeleteManyPages: more keys than one ListObjectsV2 page and one
// DeleteObjects batch hold, in a cache under a prefix that is also the
// start of another's ("team" and "team2"), which must stay untouched.
func TestListDeleteManyPages(t *testing.T) {
	ctx := t.Context()
	c, other := neighbours(t)
	if err := other.Put(ctx, "nar/kept.nar", strings.NewReader("nar/kept.nar"), cache.TypeNAR); err != nil {
		t.Fatal(err)
	}
	const n = deleteBatch + 7
	keys := make([]string, n)
	var g errgroup.Group
	g.SetLimit(16)
	for i := range keys {
		keys[i] = fmt.Sprintf("nar/%04d.nar", i)
		g.Go(func() error {
			return c.Put(ctx, keys[i], strings.NewReader(keys[i]), cache.TypeNAR)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	count := func(c *Cache, prefix string) int {
		t.Helper()
		seen := map[string]bool{}
		err := c.List(ctx, prefix, func(o cache.Object) error {
			if seen[o.Key] || o.Size != int64(len(o.Key)) {
				return fmt.Errorf("object %+v listed twice or with the wrong size", o)
			}
			seen[o.Key] = true
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return len(seen)
	}
	if got := count(c, ""); got != n {
		t.Fatalf("List: %d objects, want %d", got, n)
	}
	if got := count(c, "nar/100"); got != 7 { // nar/1000.nar to nar/1006.nar
		t.Fatalf("List(nar/100): %d objects, want 7", got)
	}
	if err := c.Delete(ctx, keys); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := count(c, ""); got != 0 {
		t.Fatalf("after Delete, List: %d objects, want 0", got)
	}
	if got := count(other, ""); got != 1 {
		t.Fatalf("the cache under team2: %d objects, want its 1", got)
	}
}

// TestListDeleteRefused: wrong credentials and a missing bucket are
// permanent errors for List and Delete too, and show no secret.
func TestListDeleteRefused(t *testing.T) {
	s := servertest.StartVersitygw(t)
	ctx := t.Context()
	missing, err := open(ctx, s.URL(""), Config{})
	if err != nil {
		t.Fatal(err)
	}
	missing.bucket = "no-such-bucket"
	errList := missing.List(ctx, "", func(cache.Object) error { return nil })
	errDelete := missing.Delete(ctx, []string{"x.narinfo"})
	for _, err := range []error{errList, errDelete} {
		if !isPermanent(err) || !strings.Contains(fmt.Sprint(err), "does not exist") {
			t.Errorf("missing bucket: %v; want a permanent error saying the bucket does not exist", err)
		}
	}

	const wrongSecret = "wrongSECRETwrongSECRETwrong0123456789"
	t.Setenv("AWS_SECRET_ACCESS_KEY", wrongSecret)
	c, err := open(ctx, s.URL(""), Config{})
	if err != nil {
		t.Fatal(err)
	}
	errList = c.List(ctx, "", func(cache.Object) error { return nil })
	errDelete = c.Delete(ctx, []string{"x.narinfo"})
	for _, err := range []error{errList, errDelete} {
		switch {
		case !isPermanent(err) || !strings.Contains(fmt.Sprint(err), "check AWS credentials"):
			t.Errorf("wrong secret: %v; want a permanent error saying to check the credentials", err)
		case strings.Contains(err.Error(), wrongSecret) || strings.Contains(err.Error(), s.SecretKey):
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

// TestDeleteErrors: per-key failures in a DeleteObjects answer.
func TestDeleteErrors(t *testing.T) {
	c := &Cache{bucket: "b", prefix: "p"}
	fail := func(key, code string) types.Error {
		return types.Error{Key: aws.String("p/" + key), Code: aws.String(code), Message: aws.String("msg " + code)}
	}
	tests := []struct {
		name      string
		failed    []types.Error
		want      []string // in the message; nil: no error
		permanent bool
	}{
		{"none", nil, nil, false},
		{"only missing keys", []types.Error{fail("a", "NoSuchKey")}, nil, false},
		{"access denied", []types.Error{fail("a", "AccessDenied"), fail("b", "AccessDenied")},
			[]string{"s3://b/p", "a: AccessDenied (msg AccessDenied)", "b: AccessDenied", "check AWS credentials"}, true},
		{"server trouble", []types.Error{fail("a", "AccessDenied"), fail("b", "InternalError")},
			[]string{"b: InternalError"}, false},
		{"many", []types.Error{fail("a", "InternalError"), fail("b", "InternalError"), fail("c", "NoSuchKey"),
			fail("d", "SlowDown"), fail("e", "SlowDown"), fail("f", "SlowDown")},
			[]string{"a: InternalError", "b: InternalError", "d: SlowDown", "and 2 more"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.deleteErrors(tt.failed)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("deleteErrors = %v, want nil", err)
				}
				return
			}
			if err == nil || isPermanent(err) != tt.permanent {
				t.Fatalf("deleteErrors = %v; want an error, permanent %v", err, tt.permanent)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("deleteErrors = %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestListAfterPages walks a cache's top-level keys a page at a time from
// a point: in order, after the key given, NARs beneath rolled up (never
// returned), nothing from a neighbouring prefix ("team2" beside "team"),
// and reached saying how far a page went until the last says "".
func TestListAfterPages(t *testing.T) {
	ctx := t.Context()
	c, other := neighbours(t)
	var want []string
	var g errgroup.Group
	g.SetLimit(16)
	for i := range 25 {
		key := fmt.Sprintf("%02d.narinfo", i)
		want = append(want, key)
		nar := fmt.Sprintf("nar/%02d.nar", i)
		g.Go(func() error { return c.Put(ctx, key, strings.NewReader(key), cache.TypeNarInfo) })
		g.Go(func() error { return c.Put(ctx, nar, strings.NewReader(nar), cache.TypeNAR) })
	}
	g.Go(func() error { return other.Put(ctx, "30.narinfo", strings.NewReader("x"), cache.TypeNarInfo) })
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	var got []string
	after, pages := "05.narinfo", 0
	for {
		keys, reached, err := c.ListAfter(ctx, after, 7)
		if err != nil {
			t.Fatalf("ListAfter(%q): %v", after, err)
		}
		pages++
		got = append(got, keys...)
		if reached == "" {
			break
		}
		if reached <= after || (len(keys) > 0 && reached < keys[len(keys)-1]) {
			t.Fatalf("ListAfter(%q) reached %q with keys %q", after, reached, keys)
		}
		after = reached
	}
	if !slices.Equal(got, want[6:]) {
		t.Fatalf("listed %q, want %q", got, want[6:])
	}
	if pages < 3 {
		t.Fatalf("%d pages of at most 7 for 19 narinfos and a prefix", pages)
	}
}
