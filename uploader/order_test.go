package uploader_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/uploader"
)

// dagExpr is one derivation with n outputs o0..o(n-1): output i refers to
// outputs i-1 and i/2 at run time (a DAG of depth n-1), holds a few bytes,
// and every 25th holds 5 MiB of random data (a NAR the uploader compresses
// on every core and counts as large).
func dagExpr(prefix string, n int) string {
	var outputs []string
	for i := range n {
		outputs = append(outputs, fmt.Sprintf("%q", fmt.Sprint("o", i)))
	}
	script := fmt.Sprintf(`export PATH=/usr/bin:/bin; i=0
while [ $i -lt %d ]; do
  eval "d=\$o$i"; mkdir $d; echo $i > $d/n
  if [ $i -gt 0 ]; then j=$((i-1)); k=$((i/2)); eval "echo \$o$j \$o$k" > $d/refs; fi
  if [ $((i %% 25)) -eq 24 ]; then head -c 5242880 /dev/urandom > $d/big; fi
  i=$((i+1))
done`, n)
	// nix-build prints the first output of a derivation; a list of all
	// of them makes it print each.
	return fmt.Sprintf(`let d = derivation { name = %q; system = builtins.currentSystem; builder = "/bin/sh";
  outputs = [ %s ]; args = [ "-c" %q ]; }; in map (o: d.${o}) d.outputs`, prefix, strings.Join(outputs, " "), script)
}

// orderCheckingCache fails the test when a narinfo is written before the
// narinfos of its references or its own NAR are in the cache. NAR Puts
// are held a random moment, so completion order differs from start order.
type orderCheckingCache struct {
	cache.Cache
	t *testing.T

	mu       sync.Mutex
	narinfos int
	inFlight int // NAR Puts in flight
	peak     int
}

func (c *orderCheckingCache) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if !strings.HasSuffix(key, ".narinfo") {
		c.mu.Lock()
		c.inFlight++
		c.peak = max(c.peak, c.inFlight)
		c.mu.Unlock()
		defer func() { c.mu.Lock(); c.inFlight--; c.mu.Unlock() }()
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // jitter, not a wait
		return c.Cache.Put(ctx, key, r, contentType)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ni, err := narinfo.Parse(bytes.NewReader(body))
	if err != nil {
		c.t.Errorf("%s: %v", key, err)
		return err
	}
	must := []string{ni.URL}
	for _, ref := range ni.References {
		if ref != path.Base(ni.StorePath) {
			must = append(must, cache.NarInfoKey(ref))
		}
	}
	for _, k := range must {
		if ok, err := c.Cache.Exists(ctx, k); err != nil || !ok {
			c.t.Errorf("narinfo of %s written while %s is not in the cache (%v)", ni.StorePath, k, err)
		}
	}
	c.mu.Lock()
	c.narinfos++
	c.mu.Unlock()
	return c.Cache.Put(ctx, key, bytes.NewReader(body), contentType)
}

// TestNarInfoAfterReferencesUnderConcurrency pushes a 100-path DAG with the
// default limits (64 NARs and 64 narinfos in flight), every path a root
// as in a drainer's batch, and checks every narinfo against the cache
// when it is written.
func TestNarInfoAfterReferencesUnderConcurrency(t *testing.T) {
	const n = 100
	s := nixtest.NewStore(t)
	outs := s.Build(t, dagExpr("dag", n))
	if len(outs) != n {
		t.Fatalf("built %d outputs, want %d", len(outs), n)
	}
	key, _, _, _ := keygen(t, "order-key")
	fc, _ := newFileCache(t)
	c := &orderCheckingCache{Cache: fc, t: t}
	u := uploader.New(openStore(t, s), c, uploader.DefaultCompression, []signature.SecretKey{key}, 2, zaptest.NewLogger(t))
	res := u.Push(t.Context(), outs)
	for p, r := range res {
		if r.Err != nil || r.Skip != "" {
			t.Errorf("%s: %+v", p, r)
		}
	}
	if c.narinfos != n {
		t.Errorf("%d narinfos written, want %d", c.narinfos, n)
	}
	// Many NARs at once: the small ones do not go two at a time.
	if c.peak < 16 {
		t.Errorf("at most %d NAR uploads were in flight at once, want many", c.peak)
	}
}
