package uploader

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Transfer is one NAR on its way to the cache, for a progress display:
// how much of it has been read from the store so far.
type Transfer struct {
	Path    string
	NarSize uint64 // uncompressed, from the Nix DB
	Read    int64  // uncompressed bytes dumped so far
}

// transfers are the NARs in flight; their byte counts move as the bytes
// do, so a display never sits at 0 % through a long upload.
type transfers struct {
	mu sync.Mutex
	m  map[string]*transfer
}

type transfer struct {
	narSize uint64
	read    atomic.Int64
}

func (t *transfers) start(path string, narSize uint64) *transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*transfer{}
	}
	tr := &transfer{narSize: narSize}
	t.m[path] = tr
	return tr
}

func (t *transfers) end(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, path)
}

// InFlight lists the NARs being uploaded now, largest first.
func (u *Uploader) InFlight() []Transfer {
	u.transfers.mu.Lock()
	out := make([]Transfer, 0, len(u.transfers.m))
	for p, tr := range u.transfers.m {
		out = append(out, Transfer{Path: p, NarSize: tr.narSize, Read: tr.read.Load()})
	}
	u.transfers.mu.Unlock()
	slices.SortFunc(out, func(a, b Transfer) int {
		if a.NarSize != b.NarSize {
			return int(int64(b.NarSize) - int64(a.NarSize))
		}
		return compareStrings(a.Path, b.Path)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
