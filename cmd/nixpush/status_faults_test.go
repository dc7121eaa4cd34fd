package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/fulldisk"
	"nixpush/pipeline"
)

// TestStatusReportsEveryQueue: status reads queue files without writing
// (it works on a full state dir), and a damaged file is marked as such
// beside the readable ones instead of hiding them.
func TestStatusReportsEveryQueue(t *testing.T) {
	state := fulldisk.Mount(t, 4<<20)
	const p = "/nix/store/00000000000000000000000000000000-x"
	for _, cache := range []string{"file:///srv/a", "file:///srv/b"} {
		if r := runMain(t, "", "enqueue", "--state-dir", state, "--to", cache, p); r.code != 0 {
			t.Fatalf("enqueue:\n%s", r)
		}
	}
	files, _ := filepath.Glob(filepath.Join(state, "*"+pipeline.QueueSuffix))
	if len(files) != 2 {
		t.Fatalf("queue files %q", files)
	}
	// Damage the first file's header.
	f, err := os.OpenFile(files[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("this is not a database at all!!"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fulldisk.Fill(t, state)

	r := runMain(t, "", "status", "--state-dir", state, "--json")
	if r.code == 0 {
		t.Errorf("status with a damaged queue file exited 0")
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	if len(rep.Queues) != 2 {
		t.Fatalf("status reports %d queues, want both:\n%s", len(rep.Queues), r)
	}
	var good, bad int
	for _, q := range rep.Queues {
		switch {
		case q.Error != "" && q.File == files[0]:
			bad++
		case q.Error == "" && q.Pending == 1:
			good++
		}
	}
	if good != 1 || bad != 1 {
		t.Errorf("want one readable queue with 1 pending and the damaged one marked:\n%s", r)
	}
	if text := runMain(t, "", "status", "--state-dir", state); !strings.Contains(text.stdout, "UNREADABLE") || !strings.Contains(text.stdout, "1 pending") {
		t.Errorf("status text:\n%s", text)
	}
}
