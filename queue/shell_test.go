package queue

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// shell is an sqlite3 CLI process with the queue file open: another
// process, as a daemon or a user's sqlite3 session would be.
type shell struct {
	t     *testing.T
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// openShell starts sqlite3 on path; it is ended at cleanup.
func openShell(t *testing.T, path string) *shell {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatalf("sqlite3 CLI not installed (scripts/deps.sh installs it): %v", err)
	}
	cmd := exec.Command("sqlite3", "-batch", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // errors are answers too
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // end of input: sqlite3 exits, rolling back what is open
		if err := cmd.Wait(); err != nil {
			t.Errorf("sqlite3: %v", err)
		}
	})
	s := &shell{t: t, stdin: stdin, out: bufio.NewScanner(stdout)}
	s.exec(".timeout 5000")
	return s
}

// exec runs sql and returns its output once sqlite3 has finished it.
func (s *shell) exec(sql string) string {
	s.t.Helper()
	const done = "-- shell done --"
	if !strings.HasPrefix(sql, ".") && !strings.HasSuffix(sql, ";") {
		sql += ";" // else sqlite3 waits for the rest of the statement
	}
	if _, err := io.WriteString(s.stdin, sql+"\n.print '"+done+"'\n"); err != nil {
		s.t.Fatalf("sqlite3 %q: %v", sql, err)
	}
	var out []string
	for s.out.Scan() {
		if s.out.Text() == done {
			return strings.Join(out, "\n")
		}
		out = append(out, s.out.Text())
	}
	s.t.Fatalf("sqlite3 %q: ended: %v %q", sql, s.out.Err(), out)
	return ""
}
