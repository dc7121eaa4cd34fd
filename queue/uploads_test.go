package queue

import (
	"bytes"
	"testing"
)

// TestUploads: an upload's state is kept beside its path's row until it
// is deleted; uploads whose row is no longer pending or uploading (the
// path was pushed, failed for good, or was never queued) are the ones no
// process will continue.
func TestUploads(t *testing.T) {
	q, _ := openTest(t)
	ctx := t.Context()
	paths := storePaths("up", 3)
	mustEnqueue(t, q, paths...)
	for _, p := range append(paths, "/nix/store/not-queued") {
		if err := q.SaveUpload(ctx, p, []byte("state of "+p)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := q.LoadUpload(ctx, paths[0]); err != nil || !bytes.Equal(got, []byte("state of "+paths[0])) {
		t.Fatalf("LoadUpload = %q, %v", got, err)
	}
	if err := q.SaveUpload(ctx, paths[0], []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.LoadUpload(ctx, paths[0]); string(got) != "newer" {
		t.Fatalf("after a second save: %q", got)
	}
	claimed := mustClaim(t, q, t0)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d", len(claimed))
	}
	if _, err := q.Settle(ctx, []Outcome{{Path: paths[1], State: Done}, {Path: paths[2], State: Pending, Attempt: true}}, t0); err != nil {
		t.Fatal(err)
	}
	abandoned, err := q.AbandonedUploads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, u := range abandoned {
		got[u.Path] = true
	}
	if len(got) != 2 || !got[paths[1]] || !got["/nix/store/not-queued"] {
		t.Errorf("abandoned uploads %v, want the done path's and the unqueued one's", got)
	}
	if err := q.SaveUpload(ctx, paths[1], nil); err != nil {
		t.Fatal(err)
	}
	if got, err := q.LoadUpload(ctx, paths[1]); got != nil || err != nil {
		t.Errorf("after deleting: %q, %v", got, err)
	}
}
