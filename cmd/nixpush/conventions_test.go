package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestVersion: --version and the version command print the same line,
// with the build's version, revision and Go version.
func TestVersion(t *testing.T) {
	t.Parallel()
	a, b := runMain(t, "", "--version"), runMain(t, "", "version")
	re := regexp.MustCompile(`^nixpush \S+ \(revision \S+, go[0-9.]+\S*\)\n$`)
	if a.code != 0 || b.code != 0 || !re.MatchString(a.stdout) || a.stdout != b.stdout {
		t.Errorf("--version:\n%s\nversion:\n%s", a, b)
	}
}

// TestHelpConventions: the commands people start from show examples;
// flags are grouped under headings; a command lists only the flags it
// uses; --to is repeatable wherever it exists.
func TestHelpConventions(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"push", "watch-store", "watch-exec", "use", "verify", "gc"} {
		if r := runMain(t, "", c, "--help"); r.code != 0 || !strings.Contains(r.stdout, "\nExamples:\n  nixpush "+c) {
			t.Errorf("nixpush %s --help has no examples:\n%s", c, r)
		}
	}
	push := runMain(t, "", "push", "--help").stdout
	for _, h := range []string{"\nCache:\n", "\nSigning:\n", "\nFiltering:\n", "\nNetwork:\n", "\nQueue and state:\n", "\nOutput:\n"} {
		if !strings.Contains(push, h) {
			t.Errorf("push --help lacks the heading %q:\n%s", strings.TrimSpace(h), push)
		}
	}
	if ws := runMain(t, "", "watch-store", "--help").stdout; !strings.Contains(ws, "\nDaemon:\n      --backfill") {
		t.Errorf("watch-store --help lacks the Daemon group:\n%s", ws)
	}
	verify := runMain(t, "", "verify", "--help").stdout
	for _, f := range []string{"--jobs", "--priority", "--include-drv", "--exclude", "--max-attempts", "--memo-ttl"} {
		if strings.Contains(verify, f) {
			t.Errorf("verify --help lists %s, which verify does not use", f)
		}
	}
	for _, c := range newRootCommand(stdio{}).Commands() {
		if f := c.Flags().Lookup("to"); f != nil {
			if _, ok := f.Value.(pflag.SliceValue); !ok {
				t.Errorf("nixpush %s --to takes one value; every other command's is repeatable", c.Name())
			}
		}
	}
}

// TestCompletion: the shell completes the values of --compression and
// --log-format, and config's one subcommand.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "push", "--compression", ""}, []string{"zstd", "xz", "none"}},
		{[]string{"__complete", "watch-store", "--log-format", ""}, []string{"auto", "console", "json"}},
		{[]string{"__complete", "config", ""}, []string{"check"}},
		{[]string{"__complete", "config", "check", "--for", "wa"}, []string{"watch-exec", "watch-store"}},
	} {
		r := runMain(t, "", tc.args...)
		got := strings.Fields(strings.Split(r.stdout, ":")[0])
		for _, w := range tc.want {
			if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
				t.Errorf("nixpush %s: completions %q lack %q", strings.Join(tc.args, " "), got, w)
			}
		}
	}
}
