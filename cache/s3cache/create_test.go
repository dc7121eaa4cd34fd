package s3cache_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/servertest"
)

// TestCreate: on a server that honours If-None-Match (versitygw, as AWS,
// R2 and MinIO), Create writes an object only where none is: a second
// Create, single PUT or multipart, fails with ErrExists, leaves the first
// object as it was and no upload behind, and says whether the object
// holds the same bytes (by its ETag); of racing Creates exactly one
// wins.
func TestCreate(t *testing.T) {
	s := servertest.StartVersitygw(t)
	c := newCache(t, s, "", s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 2})
	ctx := t.Context()
	if ok, err := c.CanCreate(ctx); err != nil || !ok {
		t.Fatalf("CanCreate on versitygw = %v, %v", ok, err)
	}
	small, big := []byte("first"), incompressible(12<<20, 3)
	for key, body := range map[string][]byte{"nar/small.nar": small, "nar/big.nar": big} {
		if err := c.Create(ctx, key, bytes.NewReader(body), cache.TypeNAR); err != nil {
			t.Fatalf("Create %s: %v", key, err)
		}
		other := append(bytes.Clone(body), 'x')
		var exists *cache.ExistsError
		if err := c.Create(ctx, key, bytes.NewReader(other), cache.TypeNAR); !errors.As(err, &exists) || exists.Identical {
			t.Errorf("second Create %s with other bytes = %v, want an ExistsError, not Identical", key, err)
		}
		if !bytes.Equal(readObject(t, c, key), body) {
			t.Errorf("%s was overwritten by a refused Create", key)
		}
		err := c.Create(ctx, key, bytes.NewReader(body), cache.TypeNAR)
		if !errors.As(err, &exists) || !exists.Identical || exists.Age < 0 || exists.Age > time.Minute {
			t.Errorf("Create %s with the same bytes = %v, want an ExistsError, Identical, just written", key, err)
		}
	}
	if n := uploadsInProgress(t, s); n != 0 {
		t.Errorf("%d uploads left after a refused multipart Create", n)
	}
	// versitygw refuses a conditional PUT as soon as it has read its
	// headers and closes the connection while a large body is still
	// coming: the client sees a reset, not the 412, but Create still
	// says the key is taken.
	single := newCache(t, s, "", s3cache.Config{PartSize: 16 << 20})
	mid := incompressible(6<<20, 5)
	for i := range 4 {
		err := single.Create(ctx, "nar/mid.nar", bytes.NewReader(mid), cache.TypeNAR)
		var exists *cache.ExistsError
		if i == 0 && err != nil || i > 0 && (!errors.As(err, &exists) || !exists.Identical) {
			t.Errorf("Create of 6 MiB in one PUT, try %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := range 6 {
		wg.Go(func() {
			err := c.Create(ctx, "nar/race.nar", strings.NewReader(strings.Repeat("r", 1000+i)), cache.TypeNAR)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, cache.ErrExists):
				lost++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won != 1 || lost != 5 {
		t.Errorf("6 racing Creates: %d won, %d refused; want 1 and 5", won, lost)
	}
}

// TestCreateIgnored: a server that ignores If-None-Match (Garage) is
// found out by CanCreate's probe, so nothing relies on it there.
func TestCreateIgnored(t *testing.T) {
	var mu sync.Mutex
	puts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPut {
			puts++
		}
		w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	u, _ := url.Parse("s3://bucket?endpoint=" + url.QueryEscape(srv.URL))
	c, err := s3cache.New(t.Context(), u, s3cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.CanCreate(t.Context()); err != nil || ok {
		t.Errorf("CanCreate on a server ignoring If-None-Match = %v, %v", ok, err)
	}
	if err := c.Create(t.Context(), "nar/x.nar", strings.NewReader("x"), cache.TypeNAR); !errors.Is(err, cache.ErrCannotCreate) {
		t.Errorf("Create = %v, want ErrCannotCreate", err)
	}
	if puts != 2 {
		t.Errorf("%d PUTs: the probe takes two, then nothing", puts)
	}
}
