package s3cache

import "testing"

func TestPartPlan(t *testing.T) {
	const (
		MiB = 1 << 20
		GiB = 1 << 30
		TiB = 1 << 40
	)
	for _, tc := range []struct {
		hint, partSize int64
		concurrency    int
		size           int64
		inFlight       int
	}{
		{0, 8 * MiB, 4, 8 * MiB, 4},          // no hint: as configured
		{-1, 8 * MiB, 4, 8 * MiB, 4},         // nonsense: likewise
		{1 * GiB, 8 * MiB, 4, 8 * MiB, 4},    // fits as configured
		{75 * GiB, 8 * MiB, 4, 8 * MiB, 4},   // 75 GiB × 1.01 + 1 MiB < 10,000 × 8 MiB
		{80 * GiB, 8 * MiB, 4, 9 * MiB, 3},   // the old limit, and the margin
		{216 * GiB, 8 * MiB, 4, 23 * MiB, 1}, // cachix #639
		{216 * GiB, 5 * MiB, 16, 23 * MiB, 3},
		{216 * GiB, 64 * MiB, 4, 64 * MiB, 4}, // never below the configured size
		{5 * TiB, 8 * MiB, 4, 530 * MiB, 1},   // S3's object limit
		{1 << 62, 8 * MiB, 4, 5 * GiB, 1},     // capped at S3's part limit
	} {
		size, inFlight := partPlan(tc.hint, tc.partSize, tc.concurrency)
		if size != tc.size || inFlight != tc.inFlight {
			t.Errorf("partPlan(%d, %d MiB, %d) = %d MiB (%d bytes), %d in flight; want %d MiB, %d",
				tc.hint, tc.partSize/MiB, tc.concurrency, size/MiB, size, inFlight, tc.size/MiB, tc.inFlight)
		}
		if tc.hint > 0 && tc.hint <= 5*TiB && size*maxParts < tc.hint+tc.hint/100 {
			t.Errorf("partPlan(%d, ...): %d parts of %d bytes leave no margin", tc.hint, maxParts, size)
		}
		if size%MiB != 0 && size != tc.partSize {
			t.Errorf("partPlan(%d, ...) = %d bytes: not whole MiB", tc.hint, size)
		}
	}
}
