package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestLogVoices: piped, nixpush speaks one human format (no JSON unless
// --log-format json); as a systemd service's stderr ($JOURNAL_STREAM
// naming it), each line starts with its syslog priority, which journald
// reads, and carries no timestamp of its own.
func TestLogVoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "voices-1")
	top := fibOutputs(t, e.store, "voices", 2)[0]
	notACache := filepath.Join(t.TempDir(), "a-file")
	writeFile(t, notACache, nil, 0o644)
	// No --signing-key: a warning; a cache URL naming a file: an error.
	args := []string{"push", "--store", e.store.Root, "--state-dir", e.stateDir, "--to", "file://" + notACache, top}

	piped := runCmd(t, binCmd(t, args...), "")
	if piped.code == 0 || strings.Contains(piped.stderr, "{") || !strings.Contains(piped.stderr, "WARN") || !strings.Contains(piped.stderr, "nixpush: error:") {
		t.Errorf("piped: want human lines only (a WARN line and the error):\n%s", piped)
	}
	asked := runCmd(t, binCmd(t, append(args, "--log-format", "json")...), "")
	if !regexp.MustCompile(`(?m)^\{"level":"warn"`).MatchString(asked.stderr) {
		t.Errorf("--log-format json: want JSON log lines:\n%s", asked)
	}
	// Asked for JSON, the last words (the error) are JSON too: a reader
	// of the stream parses every line.
	for _, line := range strings.Split(strings.TrimSpace(asked.stderr), "\n") {
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("--log-format json: a line that is not JSON: %q", line)
		}
	}
	if !regexp.MustCompile(`(?m)^\{"level":"error".*"msg":"`).MatchString(asked.stderr) {
		t.Errorf("--log-format json: want the error as a JSON line:\n%s", asked)
	}

	f, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := binCmd(t, args...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	cmd.Stderr = f
	_ = cmd.Run()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	journal := string(b)
	if !regexp.MustCompile(`(?m)^<4>WARN\t`).MatchString(journal) || !regexp.MustCompile(`(?m)^<3>nixpush: error: `).MatchString(journal) {
		t.Errorf("to the journal: want a <4> warning and a <3> error, each line prefixed:\n%s", journal)
	}
	if regexp.MustCompile(`\d\d:\d\d:\d\d`).MatchString(journal) {
		t.Errorf("to the journal: lines carry their own timestamp:\n%s", journal)
	}
}
