package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestVerifyRepairGC runs verify, verify --repair and gc against each
// backend as a user does: a pushed closure is damaged on the server's
// disk (a truncated NAR, a deleted NAR, a deleted reference narinfo),
// verify finds each and exits 1, --repair makes it whole (exit 0) and a
// fresh store substitutes; gc with nothing old deletes nothing, and after
// the closure ages past --keep-days it deletes everything but a pin.
func TestVerifyRepairGC(t *testing.T) {
	for _, backend := range []string{"file", "nginx", "s3"} {
		t.Run(backend, func(t *testing.T) {
			s := nixtest.NewStore(t)
			sec, _, pub := nixtest.Keygen(t, "health-"+backend+"-1")
			outs := fibOutputs(t, s, "health"+backend, 4)                 // fib-0 .. fib-4
			deptop := s.Build(t, nixtest.WithReference("health"+backend)) // top refers to dep
			var url, dir, substituter string
			switch backend {
			case "file":
				dir = t.TempDir()
				url, substituter = "file://"+dir, "file://"+dir
			case "nginx":
				ng := servertest.StartNginx(t, "")
				url, dir = ng.URL(), ng.CacheDir
				substituter = url
			case "s3":
				v := servertest.StartVersitygw(t)
				endpoint, bucket, root := v.Addr, v.Bucket, v.Root
				url = "s3://" + bucket + "?endpoint=" + endpoint + "&scheme=http&region=us-east-1"
				dir = filepath.Join(root, bucket)
				substituter = "file://" + dir
			}
			state := filepath.Join(t.TempDir(), "state")
			common := []string{"--to", url, "--state-dir", state}
			all := append(append([]string{}, outs...), deptop...)
			if r := runMain(t, "", append(append([]string{"push", "--store", s.Root, "--signing-key", sec}, common...), all...)...); r.code != 0 {
				t.Fatalf("push:\n%s", r)
			}
			verify := func(extra ...string) result {
				args := append([]string{"verify", "--store", s.Root, "--signing-key", sec, "--trusted-key", pub}, common...)
				return runMain(t, "", append(args, extra...)...)
			}
			if r := verify(); r.code != 0 {
				t.Fatalf("verify of a fresh push:\n%s", r)
			}

			infos := checkCache(t, dir)
			damage := map[string]string{} // kind → what was done
			truncate, del, ref := infos[outs[1]], infos[outs[3]], deptop[0]
			if err := os.Truncate(filepath.Join(dir, truncate.url), 3); err != nil {
				t.Fatal(err)
			}
			damage["nar-size"] = truncate.url
			if err := os.Remove(filepath.Join(dir, del.url)); err != nil {
				t.Fatal(err)
			}
			damage["missing-nar"] = del.url
			if err := os.Remove(filepath.Join(dir, hashPart(ref)+".narinfo")); err != nil {
				t.Fatal(err)
			}
			damage["missing-reference"] = ref
			r := verify()
			if r.code != 1 {
				t.Fatalf("verify of a damaged cache should exit 1:\n%s", r)
			}
			for kind := range damage {
				if !strings.Contains(r.stdout, kind) {
					t.Errorf("verify does not report %s:\n%s", kind, r.stdout)
				}
			}
			if r := verify("--repair"); r.code != 0 {
				t.Fatalf("verify --repair:\n%s", r)
			}
			if r := verify(); r.code != 0 {
				t.Fatalf("verify after repair:\n%s", r)
			}
			out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), substituter, pub, all...)
			if err != nil {
				t.Fatalf("substitute after repair: %v\n%s", err, out)
			}

			// gc: everything is recent, so nothing goes.
			gc := func(extra ...string) result {
				return runMain(t, "", append([]string{"gc", "--store", s.Root, "--to", url}, extra...)...)
			}
			if r := gc("--delete"); r.code != 0 || !strings.Contains(r.stdout, "deleted 0 paths") {
				t.Fatalf("gc of a fresh cache:\n%s", r)
			}
			// Pin fib-2's closure, age everything past --keep-days (file
			// times on the server's disk), collect.
			if r := runMain(t, "", "pin", "--store", s.Root, "--to", url, "release", outs[2]); r.code != 0 {
				t.Fatalf("pin:\n%s", r)
			}
			old := time.Now().Add(-60 * 24 * time.Hour)
			_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() && !strings.Contains(p, "nixpush/pins") {
					_ = os.Chtimes(p, old, old)
				}
				return nil
			})
			if r := gc("--keep-days", "30"); r.code != 0 || !strings.Contains(r.stdout, "would delete 6 paths") {
				t.Fatalf("gc dry run should list all but the pinned fib-2:\n%s", r)
			}
			if r := gc("--keep-days", "30", "--delete"); r.code != 0 || !strings.Contains(r.stdout, "deleted 6 paths") {
				t.Fatalf("gc --delete:\n%s", r)
			}
			if r := verify(); r.code != 0 {
				t.Fatalf("verify after gc:\n%s", r)
			}
			out, err = nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh2"), substituter, pub, outs[2])
			if err != nil {
				t.Fatalf("the pinned closure after gc: %v\n%s", err, out)
			}
		})
	}
}

// TestDaemonScheduledGC: watch-store --gc-every collects what is past
// --keep-days in its cache while it runs, and counts it in its metrics.
func TestDaemonScheduledGC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "gc-every-1")
	old := fibOutputs(t, e.store, "gcevery", 2)
	if r := e.push("", old...); r.code != 0 {
		t.Fatalf("push:\n%s", r)
	}
	past := time.Now().Add(-60 * 24 * time.Hour)
	_ = filepath.Walk(e.cache, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			_ = os.Chtimes(p, past, past)
		}
		return nil
	})
	addr := svcFreeAddr(t)
	d := e.startDaemon("daemon", "--gc-every", "200ms", "--keep-days", "30", "--metrics-addr", addr)
	d.waitFor(30*time.Second, "the scheduled gc to collect the old paths", func() bool {
		m, err := svcScrape(addr)
		return err == nil && m["nixpush_gc_collected_paths_total"] == float64(len(old))
	})
	for _, p := range old {
		if e.hasNarInfo(p) {
			t.Errorf("%s still in the cache after the scheduled gc", p)
		}
	}
}
