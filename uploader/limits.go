package uploader

import (
	"cmp"
	"context"
	"slices"

	"golang.org/x/sync/semaphore"

	"nixpush/nixstore"
)

// Over a link with a 50–100 ms round trip, a small path costs two round
// trips (its NAR, then its narinfo) and almost no CPU or bandwidth: only
// many of them in flight at once fill the link. A large NAR costs CPU
// (compression on every core) and memory (stage buffers, the encoder's
// windows, an S3 backend's parts). So uploads are bounded by what they
// hold, not by a count alone:
//
//   - narSlots NARs in flight at most, whatever their size;
//   - jobs (--jobs, default 1) NARs of bigNAR bytes or more at once: each
//     one's encoder already uses every core, so more would only
//     oversubscribe them on a small machine;
//   - a budget of estimated memory (narWeight): room for jobs large NARs
//     plus smallBudget for the others, so that many small NARs, a few
//     mid-sized ones, or one large one with small ones beside it are in
//     flight;
//   - narinfoSlots narinfo writes (and what goes with them) in flight, and
//     checkSlots existence checks, each sized for a 100 ms round trip.
//
// With the backends' connection pools sized to match, this keeps peak RSS
// near 100 MiB at the default --jobs whatever the mix of sizes (measured
// by the bench's wan suite).
const (
	narSlots     = 64
	smallBudget  = 24 << 20
	bigNAR       = smallNAR
	narinfoSlots = 64
	checkSlots   = 64
	logSlots     = 4 // build logs read at once: 3.6 MiB each (putBuildLog)
)

// Parts of narWeight: what a backend may buffer for one body (S3 keeps a
// body that does not fit its 256 KiB head in an 8 MiB part, and up to
// 32 MiB of parts of a large one), what the parallel encoder of a large
// NAR holds, and the per-upload stage buffers and pooled encoder state.
const (
	backendHead     = 256 << 10
	backendPart     = 8 << 20
	backendMaxHeld  = 32 << 20
	parallelEncoder = 8 << 20
	uploadOverhead  = 512 << 10
)

// bigWeight is what one large NAR in flight is counted for.
const bigWeight = backendMaxHeld + parallelEncoder + 2*bufSize

// narWeight estimates the memory held while a NAR of narSize bytes is
// uploaded; it never exceeds the budget, so any NAR can start.
func narWeight(narSize uint64) int64 {
	buffers := 2*int64(bufFor(narSize)) + uploadOverhead
	switch {
	case narSize >= bigNAR:
		return bigWeight
	case narSize > backendHead:
		return backendPart + buffers
	}
	return int64(narSize) + buffers
}

// limits are the semaphores of one Uploader.
type limits struct {
	slots    *semaphore.Weighted // NARs in flight
	bytes    *semaphore.Weighted // narWeight of NARs in flight
	big      *semaphore.Weighted // NARs of bigNAR or more in flight (--jobs)
	narinfos *semaphore.Weighted // narinfo stages in flight
	checks   *semaphore.Weighted // existence checks of references after a write
	logs     *semaphore.Weighted // build logs being read (see putBuildLog)
}

func newLimits(jobs int) limits {
	jobs = max(jobs, 1)
	return limits{
		slots:    semaphore.NewWeighted(narSlots),
		bytes:    semaphore.NewWeighted(int64(jobs)*bigWeight + smallBudget),
		big:      semaphore.NewWeighted(int64(jobs)),
		narinfos: semaphore.NewWeighted(narinfoSlots),
		checks:   semaphore.NewWeighted(checkSlots),
		logs:     semaphore.NewWeighted(logSlots),
	}
}

// acquireNAR waits until a NAR of narSize may start; release undoes it.
// Every caller takes the semaphores in the same order (big, slots,
// bytes), and a NAR that holds them waits for nothing else, so every
// waiter gets its turn.
func (l limits) acquireNAR(ctx context.Context, narSize uint64) (release func(), err error) {
	big, w := narSize >= bigNAR, narWeight(narSize)
	if big {
		if err := l.big.Acquire(ctx, 1); err != nil {
			return nil, err
		}
	}
	if err := l.slots.Acquire(ctx, 1); err != nil {
		if big {
			l.big.Release(1)
		}
		return nil, err
	}
	if err := l.bytes.Acquire(ctx, w); err != nil {
		l.slots.Release(1)
		if big {
			l.big.Release(1)
		}
		return nil, err
	}
	return func() {
		l.bytes.Release(w)
		l.slots.Release(1)
		if big {
			l.big.Release(1)
		}
	}, nil
}

// largestFirst orders the indexes of plan by NAR size, largest first:
// a large NAR started last would be the whole tail of a push. NARs do not
// wait for their references (only narinfos do), so any order is safe.
func largestFirst(plan []*nixstore.PathInfo, idx []int) {
	slices.SortStableFunc(idx, func(a, b int) int {
		return cmp.Compare(plan[b].NarSize, plan[a].NarSize)
	})
}
