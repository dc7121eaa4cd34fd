package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOutcomes(t *testing.T) {
	ctx := context.Background()
	next := t0.Add(5 * time.Minute)
	tests := []struct {
		name    string
		outcome func(q *Queue) error
		want    Item // Path, EnqueuedAt ignored
	}{
		{"complete", func(q *Queue) error { return q.Complete(ctx, "/p", 1234, t0) },
			Item{State: Done, Bytes: 1234, FinishedAt: t0}},
		{"skip", func(q *Queue) error { return q.Skip(ctx, "/p", "garbage-collected", t0) },
			Item{State: Skipped, LastError: "garbage-collected", FinishedAt: t0}},
		{"fail", func(q *Queue) error { return q.Fail(ctx, "/p", "403 forbidden", t0) },
			Item{State: Failed, Attempts: 1, LastError: "403 forbidden", FinishedAt: t0}},
		{"retry", func(q *Queue) error { return q.Retry(ctx, "/p", "503", next) },
			Item{State: Pending, Attempts: 1, LastError: "503", NextAttempt: next}},
		{"unclaim", func(q *Queue) error { return q.Unclaim(ctx, "/p") },
			Item{State: Pending}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := openTest(t)
			mustEnqueue(t, q, "/p")

			// Not yet claimed: every outcome is refused.
			if err := tt.outcome(q); !errors.Is(err, ErrNotClaimed) {
				t.Fatalf("outcome on pending row: err = %v, want ErrNotClaimed", err)
			}
			claimed := mustClaim(t, q, t0)
			if len(claimed) != 1 || claimed[0].State != Uploading || claimed[0].Owner != os.Getpid() {
				t.Fatalf("Claim = %+v", claimed)
			}
			if err := tt.outcome(q); err != nil {
				t.Fatalf("outcome: %v", err)
			}
			got := mustGet(t, q, "/p")
			got.Path, got.EnqueuedAt = "", time.Time{}
			if !itemsEqual(got, tt.want) {
				t.Errorf("row = %+v\nwant  %+v", got, tt.want)
			}
			// Applied once: a second outcome finds the row no longer uploading.
			if err := tt.outcome(q); !errors.Is(err, ErrNotClaimed) {
				t.Errorf("repeated outcome: err = %v, want ErrNotClaimed", err)
			}
		})
	}
}

func TestOutcomeRefusedForOtherOwner(t *testing.T) {
	q, _ := openTest(t)
	mustEnqueue(t, q, "/p")
	mustClaim(t, q, t0)
	setOwner(t, q, "/p", os.Getppid(), "other") // another live process's upload
	if err := q.Complete(context.Background(), "/p", 1, t0); !errors.Is(err, ErrNotClaimed) {
		t.Fatalf("Complete of another owner's row: err = %v, want ErrNotClaimed", err)
	}
}

func itemsEqual(a, b Item) bool {
	return a.Path == b.Path && a.State == b.State && a.Attempts == b.Attempts &&
		a.NextAttempt.Equal(b.NextAttempt) && a.LastError == b.LastError &&
		a.EnqueuedAt.Equal(b.EnqueuedAt) && a.FinishedAt.Equal(b.FinishedAt) &&
		a.Bytes == b.Bytes && a.Owner == b.Owner
}

func TestClaimOrderAndLimit(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	paths := storePaths("o", 10)
	mustEnqueue(t, q, paths...)
	var got []string
	for {
		items, err := q.Claim(ctx, 3, t0, Everything)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		if len(items) > 3 {
			t.Fatalf("Claim(3) returned %d items", len(items))
		}
		for _, it := range items {
			got = append(got, it.Path)
		}
	}
	if !slices.Equal(got, paths) {
		t.Errorf("claim order = %v, want insertion order %v", got, paths)
	}
}

// TestClaimInScope: a scope's claims take only its items, oldest first;
// an item settled done, skipped or failed leaves the scope, a transient
// failure keeps it there; the scope is done once none is left pending
// or uploading, whatever other items the queue holds.
func TestClaimInScope(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	paths := storePaths("o", 2*500+20)
	mustEnqueue(t, q, paths...)
	scope, err := q.NewScope(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Mine are given out of order, with a duplicate and a path that had
	// no row (RequeueIn adds it, last).
	mine := []string{paths[2*500+5], paths[7], paths[500+1], paths[7], "/nix/store/not-queued"}
	if _, err := q.RequeueIn(ctx, scope, mine); err != nil {
		t.Fatal(err)
	}
	items, err := q.Claim(ctx, 2, t0, scope)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pathsOf(items), []string{paths[7], paths[500+1]}; !slices.Equal(got, want) {
		t.Errorf("Claim(scope) = %v, want the oldest two of mine %v", got, want)
	}
	if done, err := q.ScopeDone(ctx, scope); err != nil || done {
		t.Fatalf("ScopeDone with items uploading = %v, %v", done, err)
	}
	if _, err := q.Settle(ctx, []Outcome{
		{Path: paths[7], State: Done},
		{Path: paths[500+1], State: Pending, Reason: "flaky", Next: t0.Add(time.Hour), Attempt: true},
	}, t0); err != nil {
		t.Fatal(err)
	}
	items, err = q.Claim(ctx, 10, t0, scope)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pathsOf(items), []string{paths[2*500+5], "/nix/store/not-queued"}; !slices.Equal(got, want) {
		t.Errorf("second Claim(scope) = %v, want %v (the retried one is not due)", got, want)
	}
	if _, err := q.Settle(ctx, []Outcome{{Path: paths[2*500+5], State: Failed}, {Path: "/nix/store/not-queued", State: Skipped}}, t0); err != nil {
		t.Fatal(err)
	}
	if done, err := q.ScopeDone(ctx, scope); err != nil || done {
		t.Fatalf("ScopeDone with an item waiting for its retry = %v, %v", done, err)
	}
	items, err = q.Claim(ctx, 10, t0.Add(2*time.Hour), scope)
	if err != nil || len(items) != 1 {
		t.Fatalf("Claim once the retry is due = %v, %v", pathsOf(items), err)
	}
	if _, err := q.Settle(ctx, []Outcome{{Path: items[0].Path, State: Done}}, t0); err != nil {
		t.Fatal(err)
	}
	if done, err := q.ScopeDone(ctx, scope); err != nil || !done {
		t.Fatalf("ScopeDone after all settled = %v, %v", done, err)
	}
	if first, _ := q.Claim(ctx, 1, t0, Everything); len(first) != 1 || first[0].Path != paths[0] {
		t.Errorf("Claim(Everything) = %+v, want %s", first, paths[0])
	}
	if err := q.CloseScope(ctx, scope); err != nil {
		t.Fatal(err)
	}
}

// TestSettleByID: an outcome with its item's ID settles that row, one
// without an ID is found by path, and one whose ID names another path's
// row is dropped without touching that row.
func TestSettleByID(t *testing.T) {
	q, _ := openTest(t)
	ctx := t.Context()
	paths := storePaths("byid", 3)
	scope, err := q.NewScope(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.RequeueIn(ctx, scope, paths); err != nil {
		t.Fatal(err)
	}
	items, err := q.Claim(ctx, 3, t0, scope)
	if err != nil || len(items) != 3 {
		t.Fatalf("Claim = %v, %v", pathsOf(items), err)
	}
	a, b, c := items[0], items[1], items[2]
	n, err := q.Settle(ctx, []Outcome{
		{Path: a.Path, ID: a.ID, State: Done},
		{Path: b.Path, ID: c.ID, State: Done}, // not b's row, nor c's path
		{Path: c.Path, State: Skipped, Reason: "gone"},
	}, t0)
	if err != nil || n != 2 {
		t.Fatalf("Settle = %d, %v; want 2 applied", n, err)
	}
	for path, want := range map[string]State{a.Path: Done, b.Path: Uploading, c.Path: Skipped} {
		if got := mustGet(t, q, path).State; got != want {
			t.Errorf("%s is %s, want %s", path, got, want)
		}
	}
	if done, err := q.ScopeDone(ctx, scope); err != nil || done {
		t.Fatalf("ScopeDone with %s uploading = %v, %v", b.Path, done, err)
	}
	if n, err := q.Settle(ctx, []Outcome{{Path: b.Path, ID: b.ID, State: Done}}, t0); err != nil || n != 1 {
		t.Fatalf("Settle of %s by its ID = %d, %v", b.Path, n, err)
	}
	if done, err := q.ScopeDone(ctx, scope); err != nil || !done {
		t.Fatalf("ScopeDone after all settled = %v, %v", done, err)
	}
}

// TestScopedClaimWalksTheScope: the claim of a scope walks the scope's
// rows in order and stops after n, whatever statistics SQLite has; with
// none, its planner walked every pending item of the queue and sorted
// them (8 ms a claim at 100,000 items: quadratic over a push).
func TestScopedClaimWalksTheScope(t *testing.T) {
	q, _ := openTest(t)
	plan := queryPlan(t, q.r, scopedClaim, 1, 0, 256)
	if len(plan) != 2 || !strings.HasPrefix(plan[0], "SEARCH s USING PRIMARY KEY") || !strings.Contains(plan[1], "INTEGER PRIMARY KEY") {
		t.Errorf("scoped claim plan %q; want the scope walked by its key, each item by its id, no sort", plan)
	}
}

// TestScopeOfDeadProcessGoes: RecoverOrphans drops the scopes of
// processes that have exited.
func TestScopeOfDeadProcessGoes(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	scope, err := q.NewScope(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.RequeueIn(ctx, scope, storePaths("d", 3)); err != nil {
		t.Fatal(err)
	}
	var n int
	count := func() int {
		t.Helper()
		if err := q.r.QueryRow(`SELECT count(*) FROM scope_items`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := q.RecoverOrphans(ctx); err != nil || count() != 3 {
		t.Fatalf("a live process's scope: %d items after RecoverOrphans (%v), want 3", n, err)
	}
	if _, err := q.w.Exec(`UPDATE scopes SET owner = ?`, deadPid(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.RecoverOrphans(ctx); err != nil || count() != 0 {
		t.Fatalf("a dead process's scope: %d items after RecoverOrphans (%v), want 0", n, err)
	}
}

func pathsOf(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Path
	}
	return out
}

func TestClaimWaitsForNextAttempt(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	mustEnqueue(t, q, "/p")
	mustClaim(t, q, t0)
	due := t0.Add(time.Minute)
	if err := q.Retry(ctx, "/p", "503", due); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		now  time.Time
		want int
	}{
		{t0, 0},
		{due.Add(-time.Nanosecond), 0},
		{due, 1},
	}
	for _, tt := range tests {
		items, err := q.Claim(ctx, 1, tt.now, Everything)
		if err != nil || len(items) != tt.want {
			t.Fatalf("Claim at %v = %d items, %v; want %d", tt.now.Sub(t0), len(items), err, tt.want)
		}
	}
}

// TestClaimConcurrent claims from many goroutines on each of two handles
// of one file — two handles are two connections with their own locks, as
// two processes would have — and checks every path is handed out once.
func TestClaimConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	var handles []*Queue
	for range 2 {
		q, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		handles = append(handles, q)
	}
	paths := storePaths("c", 2000)
	mustEnqueue(t, handles[0], paths...)

	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
		errs = make(chan error, 16)
	)
	for i := range 16 {
		q := handles[i%2]
		wg.Go(func() {
			for {
				items, err := q.Claim(ctx, 1+i%5, t0, Everything)
				if err != nil {
					errs <- err
					return
				}
				if len(items) == 0 {
					return // nothing ever returns to pending here
				}
				mu.Lock()
				for _, it := range items {
					seen[it.Path]++
				}
				mu.Unlock()
				for _, it := range items {
					if err := q.Complete(ctx, it.Path, 1, t0); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != len(paths) {
		t.Errorf("claimed %d distinct paths, want %d", len(seen), len(paths))
	}
	for p, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times", p, n)
		}
	}
	st, err := handles[1].Status(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts[Done] != len(paths) {
		t.Errorf("done = %d, want %d", st.Counts[Done], len(paths))
	}
}

func TestRecoverOrphans(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	dead := deadPid(t)
	mustEnqueue(t, q, "/dead", "/reused", "/mine", "/other-live", "/pending")
	claimed := mustClaim(t, q, t0)
	if len(claimed) != 5 {
		t.Fatalf("claimed %d", len(claimed))
	}
	if err := q.Unclaim(ctx, "/pending"); err != nil {
		t.Fatal(err)
	}
	setOwner(t, q, "/dead", dead, "")
	// Our pid, but recorded by an earlier incarnation (e.g. before a reboot).
	setOwner(t, q, "/reused", os.Getpid(), "old-boot/1")
	// A live process other than us: our parent, with its real token.
	setOwner(t, q, "/other-live", os.Getppid(), processToken(os.Getppid()))

	n, err := q.RecoverOrphans(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RecoverOrphans = %d, %v; want 2, nil", n, err)
	}
	got, err := q.Get(ctx, []string{"/dead", "/reused", "/mine", "/other-live", "/pending"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dead", "/reused"} {
		it := got[p]
		if it.State != Pending || it.Owner != 0 || it.Attempts != 1 || !strings.Contains(it.LastError, "interrupted") {
			t.Errorf("%s = %+v, want recovered", p, it)
		}
	}
	for _, p := range []string{"/mine", "/other-live"} {
		if got[p].State != Uploading {
			t.Errorf("%s = %s, want still uploading", p, got[p].State)
		}
	}
	if it := got["/pending"]; it.Attempts != 0 || it.LastError != "" {
		t.Errorf("/pending touched: %+v", it)
	}
	if n, err := q.RecoverOrphans(ctx); err != nil || n != 0 {
		t.Errorf("second RecoverOrphans = %d, %v; want 0, nil", n, err)
	}
}

func TestOwnerAlive(t *testing.T) {
	self := os.Getpid()
	tests := []struct {
		name  string
		pid   int
		token string
		want  bool
	}{
		{"self with token", self, processToken(self), true},
		{"self without token", self, "", true},
		{"self, stale token", self, "old-boot/1", false},
		{"dead pid", deadPid(t), "", false},
		{"pid 0 is not an owner", 0, "", false},
		{"negative pid is not an owner", -1, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ownerAlive(tt.pid, tt.token); got != tt.want {
				t.Errorf("ownerAlive(%d, %q) = %v, want %v", tt.pid, tt.token, got, tt.want)
			}
		})
	}
}
