package queue

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestEnqueue(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	tests := []struct {
		name  string
		paths []string
		want  int
	}{
		{"new paths", []string{"/a", "/b"}, 2},
		{"again is a no-op", []string{"/a", "/b"}, 0},
		{"duplicates within one call", []string{"/c", "/c", "/a"}, 1},
		{"nothing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := q.Enqueue(ctx, tt.paths)
			if err != nil || got != tt.want {
				t.Fatalf("Enqueue = %d, %v; want %d, nil", got, err, tt.want)
			}
		})
	}
	if _, err := q.Enqueue(ctx, []string{"/d", ""}); err == nil {
		t.Error("Enqueue accepted an empty path")
	}
	if got, _ := q.Get(ctx, []string{"/d"}); len(got) != 0 {
		t.Error("a failed Enqueue added rows")
	}
}

func TestEnqueueLeavesExistingRowsAlone(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	mustEnqueue(t, q, "/a")
	mustClaim(t, q, t0)
	if err := q.Complete(ctx, "/a", 7, t0); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Enqueue(ctx, []string{"/a"}); err != nil || n != 0 {
		t.Fatalf("Enqueue = %d, %v; want 0, nil", n, err)
	}
	if a := mustGet(t, q, "/a"); a.State != Done || a.Bytes != 7 {
		t.Errorf("/a = %+v, want done row untouched", a)
	}
}

func TestRequeue(t *testing.T) {
	ctx := context.Background()
	dead := deadPid(t)
	tests := []struct {
		name      string
		setup     func(t *testing.T, q *Queue) // leaves /p in some state
		want      int
		wantState State
	}{
		{"missing row is added", func(t *testing.T, q *Queue) {}, 1, Pending},
		{"clean pending is unchanged", func(t *testing.T, q *Queue) { mustEnqueue(t, q, "/p") }, 0, Pending},
		{"pending in backoff", func(t *testing.T, q *Queue) {
			mustEnqueue(t, q, "/p")
			mustClaim(t, q, t0)
			if err := q.Retry(ctx, "/p", "503", t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, 1, Pending},
		{"done", func(t *testing.T, q *Queue) { finish(t, q, Done) }, 1, Pending},
		{"failed", func(t *testing.T, q *Queue) { finish(t, q, Failed) }, 1, Pending},
		{"skipped", func(t *testing.T, q *Queue) { finish(t, q, Skipped) }, 1, Pending},
		{"uploading by this live process", func(t *testing.T, q *Queue) {
			mustEnqueue(t, q, "/p")
			mustClaim(t, q, t0)
		}, 0, Uploading},
		{"uploading by a dead process", func(t *testing.T, q *Queue) {
			mustEnqueue(t, q, "/p")
			mustClaim(t, q, t0)
			setOwner(t, q, "/p", dead, "")
		}, 1, Pending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := openTest(t)
			tt.setup(t, q)
			before := time.Now()
			got, err := q.Requeue(ctx, []string{"/p"})
			if err != nil || got != tt.want {
				t.Fatalf("Requeue = %d, %v; want %d, nil", got, err, tt.want)
			}
			p := mustGet(t, q, "/p")
			if p.State != tt.wantState {
				t.Fatalf("state = %s, want %s", p.State, tt.wantState)
			}
			if p.State != Pending {
				return
			}
			if p.Attempts != 0 || !p.NextAttempt.IsZero() || p.LastError != "" ||
				!p.FinishedAt.IsZero() || p.Bytes != 0 || p.Owner != 0 {
				t.Errorf("requeued row not reset: %+v", p)
			}
			if tt.name == "done" && p.EnqueuedAt.Before(before) {
				t.Errorf("finished row not enqueued anew: %v < %v", p.EnqueuedAt, before)
			}
		})
	}
}

// finish claims /p and gives it a final state.
func finish(t *testing.T, q *Queue, s State) {
	t.Helper()
	ctx := context.Background()
	mustEnqueue(t, q, "/p")
	mustClaim(t, q, t0)
	var err error
	switch s {
	case Done:
		err = q.Complete(ctx, "/p", 100, t0)
	case Failed:
		err = q.Fail(ctx, "/p", "403", t0)
	case Skipped:
		err = q.Skip(ctx, "/p", "gone", t0)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestRetryFailed(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	mustEnqueue(t, q, "/f1", "/f2", "/d", "/p")
	mustClaim(t, q, t0)
	for _, step := range []struct {
		path string
		fn   func(string) error
	}{
		{"/f1", func(p string) error { return q.Fail(ctx, p, "403", t0) }},
		{"/f2", func(p string) error { return q.Fail(ctx, p, "bad key", t0) }},
		{"/d", func(p string) error { return q.Complete(ctx, p, 1, t0) }},
		{"/p", func(p string) error { return q.Retry(ctx, p, "503", t0.Add(time.Minute)) }},
	} {
		if err := step.fn(step.path); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.RetryFailed(ctx); err != nil || n != 2 {
		t.Fatalf("RetryFailed = %d, %v; want 2, nil", n, err)
	}
	got, err := q.Get(ctx, []string{"/f1", "/f2", "/d", "/p"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/f1", "/f2"} {
		if it := got[p]; it.State != Pending || it.Attempts != 0 || it.LastError != "" || !it.FinishedAt.IsZero() {
			t.Errorf("%s = %+v, want clean pending", p, it)
		}
	}
	if got["/d"].State != Done || got["/p"].Attempts != 1 {
		t.Errorf("RetryFailed touched other rows: %+v %+v", got["/d"], got["/p"])
	}
	if n, err := q.RetryFailed(ctx); err != nil || n != 0 {
		t.Errorf("second RetryFailed = %d, %v; want 0, nil", n, err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	paths := storePaths("p", pruneBatch+10) // more than one batch
	mustEnqueue(t, q, paths...)
	mustEnqueue(t, q, "/new", "/failed", "/skipped-old", "/pending")
	if _, err := q.Claim(ctx, len(paths)+4, t0, Everything); err != nil {
		t.Fatal(err)
	}
	old, recent := t0.Add(-48*time.Hour), t0
	// The bulk is finished in one statement; Complete is covered elsewhere.
	if _, err := q.w.Exec(`UPDATE items SET state = 'done', finished_at = ?
		WHERE path LIKE '/nix/store/%'`, nanos(old)); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, "/new", 1, recent); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, "/failed", "403", old); err != nil {
		t.Fatal(err)
	}
	if err := q.Skip(ctx, "/skipped-old", "gone", old); err != nil {
		t.Fatal(err)
	}
	if err := q.Unclaim(ctx, "/pending"); err != nil {
		t.Fatal(err)
	}

	n, err := q.Prune(ctx, t0.Add(-24*time.Hour))
	if err != nil || n != len(paths)+1 {
		t.Fatalf("Prune = %d, %v; want %d, nil", n, err, len(paths)+1)
	}
	got, err := q.Get(ctx, append([]string{"/new", "/failed", "/skipped-old", "/pending"}, paths[:3]...))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/new", "/failed", "/pending"} {
		if _, ok := got[p]; !ok {
			t.Errorf("%s pruned, want kept", p)
		}
	}
	for _, p := range append([]string{"/skipped-old"}, paths[:3]...) {
		if _, ok := got[p]; ok {
			t.Errorf("%s kept, want pruned", p)
		}
	}
}

func TestGetManyPaths(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	paths := storePaths("g", 3*500+7) // several IN lists
	mustEnqueue(t, q, paths...)
	got, err := q.Get(ctx, append(paths, "/missing"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(paths) {
		t.Fatalf("Get returned %d rows, want %d", len(got), len(paths))
	}
	if _, ok := got["/missing"]; ok {
		t.Error("Get returned a row for a missing path")
	}
}

func TestNextDue(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	if _, ok, err := q.NextDue(ctx); err != nil || ok {
		t.Fatalf("NextDue on empty queue: ok=%v err=%v", ok, err)
	}
	mustEnqueue(t, q, "/a", "/b")
	mustClaim(t, q, t0)
	if _, ok, _ := q.NextDue(ctx); ok {
		t.Error("NextDue counted uploading rows")
	}
	if err := q.Retry(ctx, "/a", "503", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, "/b", "503", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if due, ok, err := q.NextDue(ctx); err != nil || !ok || !due.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextDue = %v, %v, %v; want %v", due, ok, err, t0.Add(time.Minute))
	}
	mustEnqueue(t, q, "/c")
	if due, ok, err := q.NextDue(ctx); err != nil || !ok || !due.IsZero() {
		t.Errorf("NextDue with a fresh row = %v, %v, %v; want zero (due now)", due, ok, err)
	}
}

func TestMeta(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	if _, ok, err := q.GetMeta(ctx, "k"); err != nil || ok {
		t.Fatalf("GetMeta of unset key: ok=%v err=%v", ok, err)
	}
	for _, v := range []string{"1", "2", ""} {
		if err := q.SetMeta(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := q.GetMeta(ctx, "k"); err != nil || !ok || got != v {
			t.Errorf("GetMeta = %q, %v, %v; want %q", got, ok, err, v)
		}
	}
}

// TestUnfinished: the items of the paths asked about that are not done
// or skipped, whether the queue holds fewer unfinished rows than paths
// asked about (read by state) or more (looked up by path); other
// processes' unfinished rows are not among them.
func TestUnfinished(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	mine := storePaths("mine", 6)
	others := storePaths("other", 20) // unfinished, not asked about
	mustEnqueue(t, q, append(slices.Clone(mine), others...)...)
	claimed := mustClaim(t, q, t0)
	var outcomes []Outcome
	for _, it := range claimed {
		switch it.Path {
		case mine[0], mine[1]:
			outcomes = append(outcomes, Outcome{Path: it.Path, State: Done})
		case mine[2]:
			outcomes = append(outcomes, Outcome{Path: it.Path, State: Skipped, Reason: "gone"})
		case mine[3]:
			outcomes = append(outcomes, Outcome{Path: it.Path, State: Failed, Reason: "403", Attempt: true})
		case mine[4]:
			outcomes = append(outcomes, Outcome{Path: it.Path, State: Pending, Reason: "503", Next: t0.Add(time.Minute), Attempt: true})
		default: // mine[5] and the others stay uploading
		}
	}
	if _, err := q.Settle(ctx, outcomes, t0); err != nil {
		t.Fatal(err)
	}
	want := []string{mine[3], mine[4], mine[5]}
	for _, asked := range [][]string{mine, append(slices.Clone(mine), storePaths("absent", 40)...)} {
		// 22 unfinished rows: more than the 6 paths of mine, fewer than the 46 of the second ask.
		items, err := q.Unfinished(ctx, asked)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			got = append(got, it.Path)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Unfinished of %d paths: %q, want %q", len(asked), got, want)
		}
	}
}
