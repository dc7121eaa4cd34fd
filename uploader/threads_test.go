package uploader

import (
	"bytes"
	"crypto/rand"
	"runtime"
	"testing"
)

// TestOutputIndependentOfCores: a large NAR compresses to the same bytes
// whatever the number of cores, one included (NewWriter then still runs
// two threads: a single one would take another encoder), so machines of
// any size write the same object under one content name.
func TestOutputIndependentOfCores(t *testing.T) {
	data := make([]byte, 10<<20)
	if _, err := rand.Read(data[:4<<20]); err != nil {
		t.Fatal(err)
	}
	for i := 4 << 20; i < len(data); i++ {
		data[i] = byte(i / 777)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []Compression{DefaultCompression, {Method: "xz", Level: 1, HasLevel: true, Parallel: true}} {
		var outs [][]byte
		for _, cores := range []int{1, 2, 4} {
			runtime.GOMAXPROCS(cores)
			var b bytes.Buffer
			w, err := c.NewWriter(&b, uint64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			outs = append(outs, b.Bytes())
		}
		for i, o := range outs[1:] {
			if !bytes.Equal(o, outs[0]) {
				t.Errorf("%s: %d cores give other bytes than 1 (%d vs %d)", c.Method, []int{2, 4}[i], len(o), len(outs[0]))
			}
		}
	}
}
