package main

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"nixpush/internal/nixtest"
)

// nobody is the unprivileged uid/gid the test runs nixpush as.
const nobody = 65534

// TestNonRootUser runs push and watch-exec as an unprivileged user, as on
// a multi-user Nix install: the Nix DB (owned by root, -shm included) is
// only read, and the queue goes to $XDG_STATE_HOME/nixpush. An unprivileged
// reader of a WAL database needs its -wal and -shm files to exist (it may
// not create them): on a real install the nix-daemon keeps them while it
// has the DB open; here a root connection held open plays the daemon.
func TestNonRootUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test switches to an unprivileged user and must run as root (make test does)")
	}
	t.Parallel()
	s := nixtest.NewStore(t)
	outs := fibOutputs(t, s, "nonroot", 3)
	home := t.TempDir()
	bin := filepath.Join(home, "nixpush")
	linkBinary(t, bin)
	// The store, the binary and the home must be reachable by nobody: open
	// up the test's temp directories (not the store's contents, which Nix
	// made world-readable already).
	for _, p := range []string{s.Root, home} {
		for d := p; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chown(home, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	daemon, err := sql.Open("sqlite3", "file:"+s.DB()+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer daemon.Close()
	daemon.SetMaxIdleConns(1)
	if _, err := daemon.Exec("PRAGMA journal_mode"); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(home, "cache")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(nixtest.Env(t), "HOME="+home, "XDG_STATE_HOME="+filepath.Join(home, "state"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("push", "--store", s.Root, "--to", "file://"+cache, outs[0]); err != nil {
		t.Fatalf("push as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(mustRead(t, filepath.Join(cache, hashPart(outs[0])+".narinfo")), "StorePath: "+outs[0]) {
		t.Fatal("push as nobody wrote no narinfo")
	}
	queues, _ := filepath.Glob(filepath.Join(home, "state", "nixpush", "*.queue.db"))
	if len(queues) != 1 {
		t.Fatalf("queue files under $XDG_STATE_HOME/nixpush: %q, want one", queues)
	}
	if out, err := run("watch-exec", "--store", s.Root, "--to", "file://"+cache, "--", "sh", "-c", "exit 4"); err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("watch-exec as nobody: %v, want exit status 4\n%s", err, out)
	}
}

// linkBinary puts the nixpush under test at to, where a user who cannot
// reach the build dir can run it. A hard link, not a copy: a copy is open
// for writing for a moment, a child another test forks then inherits that
// descriptor until it execs, and running the copy meanwhile fails with
// "text file busy".
func linkBinary(t *testing.T, to string) {
	t.Helper()
	if err := os.Link(nixpushBin, to); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
