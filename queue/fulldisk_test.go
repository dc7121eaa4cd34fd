package queue

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"nixpush/internal/fulldisk"
)

// Outcomes that cannot be recorded (the state dir's disk is full) are
// recorded by calling Settle again once there is room: nothing is applied
// twice, nothing is lost, no row stays stranded in uploading.
func TestSettleRetriedAfterDiskFull(t *testing.T) {
	ctx := context.Background()
	q, dir := openOnTmpfs(t)
	mustEnqueue(t, q, storePaths("p", 50)...)
	claimed := mustClaim(t, q, t0)
	var outcomes []Outcome
	for i, it := range claimed {
		o := Outcome{Path: it.Path, State: Done, Bytes: int64(i)}
		if i%2 == 1 {
			o = Outcome{Path: it.Path, State: Failed, Reason: "403", Attempt: true}
		}
		outcomes = append(outcomes, o)
	}

	junk := fillForWrites(t, q, dir)
	if n, err := q.Settle(ctx, outcomes, t0); err == nil {
		t.Fatalf("Settle on a full disk = %d, nil; want an error", n)
	} else {
		t.Log(err)
	}
	if st := mustStatus(t, q); st.Counts[Uploading] != len(claimed) {
		t.Fatalf("after a failed Settle: %v, want all %d still uploading", st.Counts, len(claimed))
	}
	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Settle(ctx, outcomes, t0); err != nil || n != len(outcomes) {
		t.Fatalf("Settle once there is room = %d, %v; want %d, nil", n, err, len(outcomes))
	}
	// Had the first call landed after all, the retry would be dropped:
	if n, err := q.Settle(ctx, outcomes, t0); err != nil || n != 0 {
		t.Errorf("Settle again = %d, %v; want 0, nil", n, err)
	}
	st := mustStatus(t, q)
	if st.Counts[Done] != 25 || st.Counts[Failed] != 25 || st.Counts[Uploading] != 0 {
		t.Errorf("counts = %v, want 25 done, 25 failed", st.Counts)
	}
	if it := mustGet(t, q, outcomes[1].Path); it.Attempts != 1 {
		t.Errorf("failed row counted %d attempts, want 1", it.Attempts)
	}
}

func TestReleaseClaimsAfterDiskFull(t *testing.T) {
	ctx := context.Background()
	q, dir := openOnTmpfs(t)
	mustEnqueue(t, q, storePaths("p", 30)...)
	mine := mustClaim(t, q, t0)[:20]
	if _, err := q.Settle(ctx, []Outcome{{Path: mine[0].Path, State: Done}}, t0); err != nil {
		t.Fatal(err)
	}
	others := mine[len(mine)-5:] // claimed by another live process
	for _, it := range others {
		setOwner(t, q, it.Path, os.Getppid(), "")
	}

	junk := fillForWrites(t, q, dir)
	if n, err := q.ReleaseClaims(ctx); err == nil {
		t.Fatalf("ReleaseClaims on a full disk = %d, nil; want an error", n)
	}
	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	n, err := q.ReleaseClaims(ctx)
	if want := 30 - 1 - len(others); err != nil || n != want {
		t.Fatalf("ReleaseClaims = %d, %v; want %d, nil", n, err, want)
	}
	st := mustStatus(t, q)
	if st.Counts[Uploading] != len(others) || st.Counts[Done] != 1 {
		t.Errorf("counts = %v; want only the other process's %d rows uploading", st.Counts, len(others))
	}
	if it := mustGet(t, q, mine[1].Path); it.State != Pending || it.Attempts != 0 || it.Owner != 0 {
		t.Errorf("released row = %+v, want pending, untried, no owner", it)
	}
	if n, err := q.ReleaseClaims(ctx); err != nil || n != 0 {
		t.Errorf("ReleaseClaims again = %d, %v; want 0, nil", n, err)
	}
}

// openOnTmpfs opens a queue on a small tmpfs of its own.
func openOnTmpfs(t *testing.T) (*Queue, string) {
	dir := fulldisk.Mount(t, 2<<20)
	q, err := Open(filepath.Join(dir, "queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() }) // before the unmount
	return q, dir
}

// fillForWrites fills q's file system. The -wal is emptied first, else a
// commit could reuse room it already has and not need the disk at all.
func fillForWrites(t *testing.T, q *Queue, dir string) string {
	t.Helper()
	if _, err := q.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	return fulldisk.Fill(t, dir)
}
