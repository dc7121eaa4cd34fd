package main

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// pushJSON runs push --json and returns its one cache's summary.
func pushJSON(t *testing.T, args ...string) pushSummary {
	t.Helper()
	r := runMain(t, "", append([]string{"push", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("push:\n%s", r)
	}
	var out []pushSummary
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 || out[0].Requests == nil {
		t.Fatalf("push --json printed %q (%v)", r.stdout, err)
	}
	return out[0]
}

// TestPushRequestCounts counts, on the wire (a proxy in front of
// versitygw) and in push --json, what a push costs: a new path its NAR,
// narinfo and build log; a present path known to the memo nothing; a
// present path from an empty state dir less than one request (one
// listing page answers for all of them). The fixed cost of a run (the bucket check, nix-cache-info, the probe of
// conditional writes) is counted apart.
func TestPushRequestCounts(t *testing.T) {
	s := nixtest.NewStore(t)
	sec, _, _ := nixtest.Keygen(t, "requests-1")
	outs := fibOutputs(t, s, "requests", 5) // 6 paths, each with a build log
	v := servertest.StartVersitygw(t)
	px, err := servertest.StartS3Proxy(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	url := "s3://" + v.Bucket + "?endpoint=" + px.Addr + "&scheme=http&region=us-east-1"
	state := filepath.Join(t.TempDir(), "state")
	args := func(state string) []string {
		return append([]string{"--store", s.Root, "--signing-key", sec, "--to", url, "--state-dir", state}, outs...)
	}
	n := int64(len(outs))
	// fib(1) and fib(2) have the same output, so one NAR: the second
	// upload of it finds the first's object (412) and checks it (HEAD).
	hashes := map[string]bool{}
	for _, p := range outs {
		h, _, err := s.Run(t, "nix-store", "-q", "--hash", p)
		if err != nil {
			t.Fatal(err)
		}
		hashes[h] = true
	}
	same := n - int64(len(hashes))
	check := func(what string, got pushSummary, want map[string]int64) {
		t.Helper()
		wire, trail := px.Counts(), px.Trail()
		px.Reset()
		ops := map[string]int64{}
		for op, c := range wire {
			ops[op] = c
		}
		for k, v := range want {
			if ops[k] != v {
				t.Errorf("%s: %d %s requests on the wire, want %d (all: %v)", what, ops[k], k, v, wire)
			}
			delete(ops, k)
		}
		if len(ops) > 0 {
			t.Errorf("%s: requests beyond those expected: %v", what, ops)
		}
		if t.Failed() {
			t.Logf("%s: requests:\n%s", what, strings.Join(trail, "\n"))
		}
		var total int64
		for _, c := range wire {
			total += c
		}
		if got.Requests.Total() != total {
			t.Errorf("%s: push --json counts %v (%d), the wire %v (%d)", what, got.Requests.ByKind, got.Requests.Total(), wire, total)
		}
		t.Logf("%s: %v", what, maps.Collect(maps.All(wire)))
	}

	// New: the bucket check, nix-cache-info read and written, the probe
	// of conditional writes (two PUTs the first time in a bucket); one
	// listing page saying which narinfos are there (none); per path the
	// NAR, the log, the narinfo.
	check("push new", pushJSON(t, args(state)...), map[string]int64{
		"HeadBucket": 1, "GetObject": 1, "PutObject": 1 + 2 + 3*n, "ListObjectsV2": 1, "HeadObject": same,
	})
	// Present, this machine's state: only the bucket check and
	// nix-cache-info (whether the cache is still the one the memo knows).
	check("push present (memo)", pushJSON(t, args(state)...), map[string]int64{"HeadBucket": 1, "GetObject": 1})
	// Present, an empty state dir: the bucket check, nix-cache-info, and
	// one listing page for all the paths.
	fresh := filepath.Join(t.TempDir(), "fresh")
	check("push present (empty state)", pushJSON(t, args(fresh)...), map[string]int64{
		"HeadBucket": 1, "GetObject": 1, "ListObjectsV2": 1,
	})
}
