package main

import (
	"os"
	"path/filepath"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/pipeline"
)

// TestPermanentStartErrorsExit78: errors a restart cannot fix exit 78,
// which the systemd unit does not restart (RestartPreventExitStatus);
// usage errors exit 2.
func TestPermanentStartErrorsExit78(t *testing.T) {
	s := nixtest.NewStore(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	cache := "file://" + filepath.Join(dir, "cache")
	// A queue to start from, and a damaged one.
	if r := runMain(t, "", "enqueue", "--state-dir", state, "--to", cache, "/nix/store/00000000000000000000000000000000-x"); r.code != 0 {
		t.Fatal(r)
	}
	damagedState := filepath.Join(dir, "damaged")
	if err := os.MkdirAll(damagedState, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pipeline.QueueFile(damagedState, "file://"+filepath.Join(dir, "cache")), []byte("garbage, not SQLite at all, definitely damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"cache URL is a file", []string{"watch-store", "--store", s.Root, "--state-dir", state, "--to", "file://" + file}, exitPermanent},
		{"damaged queue", []string{"watch-store", "--store", s.Root, "--state-dir", damagedState, "--to", cache}, exitPermanent},
		{"missing key file", []string{"watch-store", "--store", s.Root, "--state-dir", state, "--to", cache, "--signing-key", file + ".missing"}, exitUsage},
		{"unknown flag", []string{"watch-store", "--frobnicate"}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := runMain(t, "", tc.args...); r.code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", r.code, tc.code, r)
			}
		})
	}
}
