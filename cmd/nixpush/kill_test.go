package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"nixpush/internal/nixtest"
)

// cacheTmpPrefix names the temp files of the file:// backend where it
// cannot write unnamed (O_TMPFILE) ones.
const cacheTmpPrefix = ".nixpush-tmp-"

// partialNARSize is more than any NAR in the test but the big one
// compresses to, so a file in progress this large is the big path's.
const partialNARSize = 64 << 10

// TestPushKilledMidway kills a push with SIGKILL while it writes a large
// NAR (xz: slow, so there is time), checks that the cache it leaves is
// consistent, and that the next push finishes the job.
func TestPushKilledMidway(t *testing.T) {
	t.Parallel()
	s := nixtest.NewStore(t)
	small := addDirs(t, s, smallDirs(t, "small", 30)...)
	ref := s.Build(t, nixtest.WithReference("kill"))
	bigDir := filepath.Join(t.TempDir(), "big")
	rnd := rand.NewChaCha8([32]byte{42})
	for i := range 3 {
		writeFile(t, filepath.Join(bigDir, fmt.Sprintf("f%d", i)), randomBytes(rnd, 16<<20), 0o644)
	}
	// big-user refers to big, so its narinfo has to wait for big's.
	bigUser := s.Build(t, fmt.Sprintf(`let big = builtins.path { path = %s; name = "kill-big"; }; in
derivation { name = "kill-big-user"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo ${big} > $out" ]; }`, strconv.Quote(bigDir)))[0]
	roots := append(slices.Clone(small), ref[1], bigUser)
	all := s.Closure(t, roots...)
	big := ""
	for _, p := range all {
		if strings.HasSuffix(p, "-kill-big") {
			big = p
		}
	}
	if big == "" || len(all) != len(small)+4 {
		t.Fatalf("closure %q: want the small paths, dep, top, big and big-user", all)
	}
	sec, _, pub := nixtest.Keygen(t, "kill-test-1")
	cache := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	url := "file://" + cache
	c := newCLI(t)
	work := t.TempDir()
	args := append([]string{"--store", s.Root, "--to", url, "--signing-key", sec}, roots...)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(cache); err != nil {
		t.Fatal(err)
	}
	cmd := c.pushCmd(work, append([]string{"--compression", "xz"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitForPartialNAR(t, w, cache, cmd.Process.Pid, exited, &out)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := <-exited; !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("push was to die of SIGKILL, got %v:\n%s", err, &out)
	}

	// What a crash leaves: only narinfos whose NARs and references are
	// complete.
	before := checkCache(t, cache)
	files := snapshot(t, cache)
	if _, ok := before[big]; ok {
		t.Fatalf("the big path was pushed before the kill: the test did not interrupt anything")
	}
	if _, ok := before[bigUser]; ok {
		t.Errorf("narinfo of %s is in the cache before that of its reference %s", bigUser, big)
	}
	t.Logf("killed with %d of %d narinfos written", len(before), len(all))

	// The next push (same state dir: the killed one's queue rows are
	// there) pushes exactly the rest. It uses zstd because xz takes about
	// a minute for the big path on a loaded 2-core machine.
	r := c.push(work, "", append([]string{"--compression", "zstd"}, args...)...)
	wantSuccess(t, r, len(all)-len(before), len(before), 0, 0)
	after := checkCache(t, cache)
	if got := sortedKeys(after); !slices.Equal(got, sortedCopy(all)) {
		t.Fatalf("narinfos after the second push: %q\nwant %q", got, sortedCopy(all))
	}
	now := snapshot(t, cache)
	for _, ni := range before {
		if now[ni.file] != files[ni.file] {
			t.Errorf("%s: rewritten by the second push", ni.file)
		}
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	subst, err := nixtest.Substitute(t, fresh, url, pub, roots...)
	if err != nil {
		t.Fatalf("%v\n%s", err, subst)
	}
	wantSubstituted(t, subst, url, all)
}

// waitForPartialNAR waits, on file events rather than a timer, until a
// NAR being written under cache/nar holds at least partialNARSize bytes.
// It fails the test if the push exits first.
func waitForPartialNAR(t *testing.T, w *fsnotify.Watcher, cache string, pid int, exited <-chan error, out *bytes.Buffer) {
	t.Helper()
	narDir := filepath.Join(cache, "nar")
	watching := false
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		// Watch nar/ once it exists; the big NAR's writes go on long
		// after, so none of interest is missed.
		if !watching {
			if err := w.Add(narDir); err == nil {
				watching = true
			} else if !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
		}
		select {
		case ev := <-w.Events:
			if ev.Has(fsnotify.Write) && filepath.Dir(ev.Name) == narDir &&
				inProgressSize(pid, ev.Name) >= partialNARSize {
				return
			}
		case err := <-w.Errors:
			t.Fatal(err)
		case err := <-exited:
			t.Fatalf("push exited (%v) before it had half written a large NAR:\n%s", err, out)
		case <-deadline.C:
			t.Fatalf("no NAR of %d bytes in progress in %s within 2 minutes", partialNARSize, narDir)
		}
	}
}

// inProgressSize is the size of the file in progress that a write event
// names: a named temp file, or an unnamed (O_TMPFILE) one, which inotify
// calls "#<inode>" and only the writer's open descriptor reaches. It is 0
// for anything else.
func inProgressSize(pid int, name string) int64 {
	base := filepath.Base(name)
	if strings.HasPrefix(base, cacheTmpPrefix) {
		if fi, err := os.Stat(name); err == nil {
			return fi.Size()
		}
		return 0
	}
	if !strings.HasPrefix(base, "#") {
		return 0
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return 0
	}
	for _, fd := range fds {
		link := filepath.Join(fdDir, fd.Name())
		if target, err := os.Readlink(link); err == nil && target == name+" (deleted)" {
			if fi, err := os.Stat(link); err == nil {
				return fi.Size()
			}
		}
	}
	return 0
}
