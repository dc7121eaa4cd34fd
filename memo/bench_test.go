package memo_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"nixpush/memo"
)

// benchPaths are n store paths with random hash parts, as a push's are.
func benchPaths(n int) []string {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz" // nixbase32
	r := rand.New(rand.NewPCG(1, 2))
	paths := make([]string, n)
	for i := range paths {
		var h [32]byte
		for j := range h {
			h[j] = alphabet[r.IntN(len(alphabet))]
		}
		paths[i] = fmt.Sprintf("/nix/store/%s-p%d", h[:], i)
	}
	return paths
}

// BenchmarkMemory is what a push of 100,000 paths asks of the memory
// memo (ns a path): Remember each path once, in batches as uploads
// finish, and Has for each reference of each path. GC is one collection
// with the full memo live, what every collection of such a push pays
// for it.
func BenchmarkMemory(b *testing.B) {
	b.Run("remember+has", func(b *testing.B) {
		paths := benchPaths(100_000)
		for b.Loop() {
			m := memo.NewMemory(time.Hour)
			for start := 0; start < len(paths); start += 256 {
				m.Remember(paths[start:min(start+256, len(paths))])
			}
			for range 3 { // references a path
				for _, p := range paths {
					if !m.Has(p) {
						b.Fatal("remembered path not known")
					}
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(paths)), "ns/path")
	})
	b.Run("gc", func(b *testing.B) {
		m := memo.NewMemory(time.Hour)
		m.Remember(benchPaths(100_000)) // only the memo keeps them
		for b.Loop() {
			runtime.GC()
		}
		runtime.KeepAlive(m)
	})
}
