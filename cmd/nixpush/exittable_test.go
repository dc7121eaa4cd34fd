package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/pipeline"
)

// readmeExitCodes reads the README's exit-code table: code → its row.
func readmeExitCodes(t *testing.T) map[int]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*\| (\d+) \|(.*)\|\s*$`).FindAllStringSubmatch(string(b), -1) {
		code, _ := strconv.Atoi(m[1])
		rows[code] = m[2]
	}
	if len(rows) < 5 {
		t.Fatalf("README's exit-code table has %d rows", len(rows))
	}
	return rows
}

// TestExitCodeTable runs an example of each case the README's exit-code
// table names and checks that it exits as the table says.
func TestExitCodeTable(t *testing.T) {
	t.Parallel()
	table := readmeExitCodes(t)
	s := nixtest.NewStore(t)
	top := fibOutputs(t, s, "exit-table", 2)[0]
	dir := t.TempDir()
	garbageKey, aFile := filepath.Join(dir, "garbage.sec"), filepath.Join(dir, "a-file")
	writeFile(t, garbageKey, []byte("this is not a key\n"), 0o600)
	writeFile(t, aFile, nil, 0o644)
	cache := "file://" + filepath.Join(dir, "cache")
	state, damaged := filepath.Join(dir, "state"), filepath.Join(dir, "damaged")
	writeFile(t, pipeline.QueueFile(damaged, cache), []byte("garbage, not SQLite at all, definitely damaged"), 0o600)
	common := []string{"--store", s.Root, "--state-dir", state}
	for _, tc := range []struct {
		phrase string // in the table's row for code
		code   int
		args   []string
	}{
		{"every path in every cache", 0, append([]string{"push", "--to", cache, top}, common...)},
		{"not a binary cache", 1, []string{"verify", "--to", "file://" + filepath.Join(dir, "nothing")}},
		{"not a key", 2, append([]string{"push", "--to", cache, "--signing-key", garbageKey, top}, common...)},
		{"an unknown flag", 2, []string{"push", "--frobnicate"}},
		{"not a store path", 2, []string{"retry", "--state-dir", state, "/etc/passwd"}},
		{"a key name", 2, []string{"keygen", "bad name", filepath.Join(dir, "k.sec"), filepath.Join(dir, "k.pub")}},
		{"a cache URL that names a file", 78, append([]string{"push", "--to", "file://" + aFile, top}, common...)},
		{"a damaged, newer or read-only queue file", 78, []string{"watch-store", "--store", s.Root, "--state-dir", damaged, "--to", cache}},
	} {
		if row := table[tc.code]; !strings.Contains(row, tc.phrase) {
			t.Errorf("README's row for exit %d does not mention %q: %q", tc.code, tc.phrase, row)
		}
		if r := runMain(t, "", tc.args...); r.code != tc.code {
			t.Errorf("%s (nixpush %s): exit %d, README says %d:\n%s", tc.phrase, strings.Join(tc.args, " "), r.code, tc.code, r)
		}
	}
}
