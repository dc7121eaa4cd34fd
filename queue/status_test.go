package queue

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestStatusEmpty(t *testing.T) {
	q, _ := openTest(t)
	st, err := q.Status(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[State]int{Pending: 0, Uploading: 0, Done: 0, Failed: 0, Skipped: 0}
	if !maps.Equal(st.Counts, want) {
		t.Errorf("Counts = %v, want %v", st.Counts, want)
	}
	if !st.OldestPending.IsZero() || !st.LastSuccess.IsZero() || len(st.RecentFailures) != 0 ||
		len(st.PendingErrors) != 0 || st.DoneLastHour != 0 || st.BytesLastHour != 0 {
		t.Errorf("Status of empty queue = %+v", st)
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	mustEnqueue(t, q, "/p1", "/p2", "/p3", "/u", "/d1", "/d2", "/d3", "/f1", "/f2", "/s")
	mustClaim(t, q, t0)
	steps := []struct {
		path string
		fn   func(p string) error
	}{
		{"/p1", func(p string) error { return q.Unclaim(ctx, p) }},
		{"/p2", func(p string) error { return q.Retry(ctx, p, "503 early", t0.Add(time.Minute)) }},
		{"/p3", func(p string) error { return q.Retry(ctx, p, "503 late", t0.Add(2*time.Minute)) }},
		{"/d1", func(p string) error { return q.Complete(ctx, p, 100, t0.Add(-2*time.Hour)) }},
		{"/d2", func(p string) error { return q.Complete(ctx, p, 200, t0.Add(-30*time.Minute)) }},
		{"/d3", func(p string) error { return q.Complete(ctx, p, 300, t0.Add(-time.Minute)) }},
		{"/f1", func(p string) error { return q.Fail(ctx, p, "403", t0.Add(-10*time.Minute)) }},
		{"/f2", func(p string) error { return q.Fail(ctx, p, "bad key", t0.Add(-5*time.Minute)) }},
		{"/s", func(p string) error { return q.Skip(ctx, p, "gone", t0) }},
	}
	for _, s := range steps {
		if err := s.fn(s.path); err != nil {
			t.Fatalf("%s: %v", s.path, err)
		}
	}

	st, err := q.Status(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := map[State]int{Pending: 3, Uploading: 1, Done: 3, Failed: 2, Skipped: 1}
	if !maps.Equal(st.Counts, wantCounts) {
		t.Errorf("Counts = %v, want %v", st.Counts, wantCounts)
	}
	if want := mustGet(t, q, "/p1").EnqueuedAt; !st.OldestPending.Equal(want) {
		t.Errorf("OldestPending = %v, want %v", st.OldestPending, want)
	}
	if want := t0.Add(-time.Minute); !st.LastSuccess.Equal(want) {
		t.Errorf("LastSuccess = %v, want %v", st.LastSuccess, want)
	}
	if got, want := pathsOf(st.RecentFailures), []string{"/f2", "/f1"}; !slices.Equal(got, want) {
		t.Errorf("RecentFailures = %v, want %v", got, want)
	}
	if got, want := pathsOf(st.PendingErrors), []string{"/p3", "/p2"}; !slices.Equal(got, want) {
		t.Errorf("PendingErrors = %v, want %v", got, want)
	}
	if st.PendingErrors[0].LastError != "503 late" || st.RecentFailures[0].LastError != "bad key" {
		t.Errorf("lists lack their errors: %+v %+v", st.PendingErrors[0], st.RecentFailures[0])
	}
	if st.DoneLastHour != 2 || st.BytesLastHour != 500 {
		t.Errorf("last hour = %d rows, %d bytes; want 2, 500", st.DoneLastHour, st.BytesLastHour)
	}
}

func TestStatusListsAreCapped(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	var paths []string
	for i := range 2 * statusListLen {
		paths = append(paths, fmt.Sprintf("/f%02d", i))
	}
	mustEnqueue(t, q, paths...)
	mustClaim(t, q, t0)
	for i, p := range paths {
		if err := q.Fail(ctx, p, "403", t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := q.Status(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.RecentFailures) != statusListLen || st.RecentFailures[0].Path != paths[len(paths)-1] {
		t.Errorf("RecentFailures = %v, want the %d latest, newest first", pathsOf(st.RecentFailures), statusListLen)
	}
}
