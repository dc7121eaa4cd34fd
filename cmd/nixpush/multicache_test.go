package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// TestDaemonSeveralCaches: one daemon pushes to a file:// cache and an
// nginx cache, each through its own queue. With nginx stopped, the file://
// cache still gets every new path while nginx's queue waits; once nginx is
// back it drains; a fresh store substitutes from each.
func TestDaemonSeveralCaches(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "multi-1")
	srv := servertest.StartNginx(t, "")
	fileCache := t.TempDir()
	fileURL := "file://" + fileCache
	e.cache, e.url, e.to = srv.CacheDir, srv.URL(), srv.URL()
	d := e.startDaemon("daemon", "--to", fileURL)
	inFile := func(paths []string) bool {
		return !slices.ContainsFunc(paths, func(p string) bool {
			return !fileExists(filepath.Join(fileCache, hashPart(p)+".narinfo"))
		})
	}

	srv.Stop()
	during := fibOutputs(t, e.store, "multi-down", 3)
	d.waitFor(30*time.Second, "the file:// cache to get the paths while nginx is down", func() bool { return inFile(during) })
	if e.allPushed(during) {
		t.Fatal("paths reached nginx while it was down")
	}
	st := e.status()
	if len(st.Queues) != 2 {
		t.Fatalf("status shows %d queues, want one per cache: %+v", len(st.Queues), st)
	}
	for _, q := range st.Queues {
		switch q.Cache {
		case fileURL:
			if q.Done < len(during) {
				t.Errorf("file:// queue: %d done, want %d", q.Done, len(during))
			}
		case srv.URL():
			if q.Pending+q.Uploading < len(during) {
				t.Errorf("nginx queue: %d pending, want %d waiting", q.Pending, len(during))
			}
		default:
			t.Errorf("queue of an unknown cache %q", q.Cache)
		}
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	d.waitFor(60*time.Second, "nginx's queue to drain once it is back", func() bool { return e.allPushed(during) })
	for _, url := range []string{fileURL, srv.URL()} {
		out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), url, e.pub, during...)
		if err != nil {
			t.Fatalf("substitute from %s: %v\n%s", url, err, out)
		}
		wantSubstituted(t, out, url, during)
	}
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
