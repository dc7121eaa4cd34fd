package uploader

import (
	"cmp"
	"slices"
	"strings"
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
		return cmp.Or(cmp.Compare(b.NarSize, a.NarSize), strings.Compare(a.Path, b.Path))
	})
	return out
}
