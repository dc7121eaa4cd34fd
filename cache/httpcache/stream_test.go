package httpcache_test

import (
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/httpcache"
)

// TestPutStreamsInBoundedMemory PUTs 200 MB and checks that the process
// allocated a small fraction of it: the body is streamed, never buffered
// whole (client and test server share this process, so both count). Not
// parallel: other tests' allocations would count too.
func TestPutStreamsInBoundedMemory(t *testing.T) {
	const size = 200 << 20
	const limit = 32 << 20
	type seen struct {
		n         int64
		crc       uint32
		chunked   bool
		length    int64
		typ       string
		readError error
	}
	saw := make(chan seen, 1)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		h := crc32.NewIEEE()
		n, err := io.Copy(h, r.Body)
		saw <- seen{n, h.Sum32(), len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked", r.ContentLength, r.Header.Get("Content-Type"), err}
		w.WriteHeader(http.StatusCreated)
	})
	c := newCache(t, srv.URL, httpcache.Config{})
	want := crc32.NewIEEE()
	io.Copy(want, &patternReader{n: size})

	// Sample the heap while the upload runs, to catch a peak that is
	// freed again before the end.
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := c.Put(t.Context(), "nar/big.nar", &patternReader{n: size}, cache.TypeNAR)
	runtime.ReadMemStats(&after)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	s := <-saw
	if s.readError != nil || s.n != size || s.crc != want.Sum32() {
		t.Errorf("server got %d bytes (crc match %v, error %v), want %d", s.n, s.crc == want.Sum32(), s.readError, size)
	}
	if !s.chunked || s.length != -1 || s.typ != cache.TypeNAR {
		t.Errorf("request: chunked %v, Content-Length %d, Content-Type %q; want chunked, unknown length, %s", s.chunked, s.length, s.typ, cache.TypeNAR)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	heapGrowth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("PUT of %d MiB: %.1f MiB allocated in all, heap in use grew by at most %.1f MiB",
		size>>20, float64(alloc)/(1<<20), float64(heapGrowth)/(1<<20))
	if alloc > limit || heapGrowth > limit {
		t.Errorf("PUT of %d MiB allocated %d MiB, heap grew %d MiB; want both under %d MiB",
			size>>20, alloc>>20, heapGrowth>>20, limit>>20)
	}
}
