package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"nixpush/queue"
)

// TestInterruptedSummaryIsShort: an interrupted push of 100,000 paths
// printed a line per path still pending; the summary names a few, counts
// the rest, and says where they are.
func TestInterruptedSummaryIsShort(t *testing.T) {
	items := make([]queue.Item, 100_000)
	for i := range items {
		items[i] = queue.Item{Path: fmt.Sprintf("/nix/store/%032d-p", i), State: queue.Pending}
	}
	items[5].State, items[5].LastError = queue.Failed, "403 Forbidden"
	var out bytes.Buffer
	explainUnfinished(&out, items, "/var/lib/nixpush", "file:///srv/cache")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) > unfinishedShown+2 {
		t.Fatalf("%d lines for 100,000 unfinished paths, want at most %d:\n%s", len(lines), unfinishedShown+2, strings.Join(lines[:20], "\n"))
	}
	for _, want := range []string{"... and 99990 more", "99999 pending, 1 failed", "/var/lib/nixpush", "retry --failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}
