package main

// Tests of the TOML config file: how it fills the flags of real commands
// (in-process, through parseFlags as every command calls it), what its
// errors say, and `nixpush config check` run as a user runs it (in-process).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// parseCommandFlags parses args as command name's flags and applies the
// config file, as running the command does before its RunE.
func parseCommandFlags(t *testing.T, name string, args []string) (*pflag.FlagSet, error) {
	t.Helper()
	root := newRootCommand(stdio{})
	cmd, _, err := root.Find([]string{name})
	if err != nil || cmd == root {
		t.Fatalf("no command %q", name)
	}
	if err := cmd.ParseFlags(args); err != nil {
		return cmd.Flags(), err
	}
	return cmd.Flags(), root.PersistentPreRunE(cmd, nil)
}

// flagString shows a flag's value: slices as %q of their elements.
func flagString(fs *pflag.FlagSet, name string) string {
	f := fs.Lookup(name)
	if f == nil {
		return "<no such flag>"
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return fmt.Sprintf("%q", sv.GetSlice())
	}
	return f.Value.String()
}

// TestConfigApply: the file fills the flags the command line left alone,
// a command's table beats the top level, and every mistake names the file
// and the line.
func TestConfigApply(t *testing.T) {
	t.Setenv("NIXPUSH_CONFIG", "") // the cases give --config, or test the env var themselves

	const layered = `# layered
jobs = 3
exclude = ["-doc$"]

[watch-store]
jobs = 5
metrics-addr = "9464"

[push]
jobs = 6
`
	cases := []struct {
		name    string
		command string
		file    string   // config text
		args    []string // command line, after --config FILE
		want    map[string]string
		wantErr []string // substrings of the error
	}{
		{name: "top-level key applies", command: "watch-store", file: "jobs = 3\ninclude-drv = true\nkeep-done = \"24h\"\n",
			want: map[string]string{"jobs": "3", "include-drv": "true", "keep-done": "24h0m0s"}},
		{name: "top-level key applies to another command", command: "watch-exec", file: layered,
			want: map[string]string{"jobs": "3", "exclude": `["-doc$"]`}},
		{name: "command table overrides top level", command: "watch-store", file: layered,
			want: map[string]string{"jobs": "5", "metrics-addr": "9464", "exclude": `["-doc$"]`}},
		{name: "another command's table", command: "push", file: layered,
			want: map[string]string{"jobs": "6"}},
		{name: "command line wins", command: "watch-store", file: layered, args: []string{"--jobs", "7", "--exclude", "-man$"},
			want: map[string]string{"jobs": "7", "exclude": `["-man$"]`, "metrics-addr": "9464"}},
		{name: "command line short flag wins", command: "push", file: layered, args: []string{"-j", "8"},
			want: map[string]string{"jobs": "8"}},
		{name: "repeatable flags from arrays", command: "push",
			file: "signing-key = [\"/k/a.sec\", \"/k/b.sec\"]\nexclude = [\"-source$\", \"-doc$\"]\n",
			want: map[string]string{"signing-key": `["/k/a.sec" "/k/b.sec"]`, "exclude": `["-source$" "-doc$"]`}},
		{name: "repeatable flag from a string", command: "push", file: "exclude = \"-doc$\"\n",
			want: map[string]string{"exclude": `["-doc$"]`}},
		{name: "repeatable flag replaces its default", command: "push", file: "upstream-key = [\"my-upstream-1\"]\n",
			want: map[string]string{"upstream-key": `["my-upstream-1"]`}},
		{name: "empty array clears a default", command: "push", file: "upstream-key = []\n",
			want: map[string]string{"upstream-key": `[]`}},
		{name: "array in the table replaces the top level's", command: "watch-store",
			file: "exclude = [\"-a$\"]\n[watch-store]\nexclude = [\"-b$\", \"-c$\"]\n",
			want: map[string]string{"exclude": `["-b$" "-c$"]`}},
		{name: "list for a single-valued flag", command: "push", file: "to = \"file:///x\"\njobs = [1, 2]\n",
			wantErr: []string{"line 2", "jobs", "one value"}},
		{name: "unknown key", command: "push", file: "jobs = 3\njbos = 4\n",
			wantErr: []string{"line 2", `"jbos"`}},
		{name: "unknown key in a table", command: "push", file: "jobs = 3\n[push]\njobs = 4\nfrobnicate = true\n",
			wantErr: []string{"line 4", `"frobnicate"`}},
		{name: "unknown command table", command: "push", file: "jobs = 3\n\n[watch-stor]\njobs = 4\n",
			wantErr: []string{"line 3", "watch-stor"}},
		{name: "wrong type", command: "push", file: "to = \"file:///x\"\njobs = \"many\"\n",
			wantErr: []string{"line 2", "jobs", "many"}},
		{name: "wrong type in a table after the same key at top level", command: "watch-store",
			file:    "jobs = 4\n\n[watch-store]\njobs = \"many\"\n",
			wantErr: []string{"line 4", "jobs", "many"}},
		{name: "wrong type for a duration", command: "watch-store", file: "[watch-store]\nkeep-done = 72\n",
			wantErr: []string{"line 2", "keep-done"}},
		{name: "another command's key at top level is ignored", command: "push", file: "metrics-addr = \"9464\"\njson = true\njobs = 2\n",
			want: map[string]string{"jobs": "2"}},
		{name: "another command's key at top level applies to it", command: "watch-store", file: "metrics-addr = \"9464\"\njson = true\n",
			want: map[string]string{"metrics-addr": "9464"}},
		{name: "another command's key in the wrong table", command: "watch-store",
			file:    "metrics-addr = \"9464\"\n\n[push]\nmetrics-addr = \"9465\"\n",
			wantErr: []string{"line 4", "push", `"metrics-addr"`}},
		{name: "TOML syntax error", command: "push", file: "jobs = 4\nto = \"file:///x\nexclude = []\n",
			wantErr: []string{"line 2 column "}},
		{name: "TOML syntax error in a table", command: "push", file: "jobs = 4\n[push]\njobs == 5\n",
			wantErr: []string{"line 3 column "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config.toml")
			writeFile(t, file, []byte(tc.file), 0o644)
			fs, err := parseCommandFlags(t, tc.command, append([]string{"--config", file}, tc.args...))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error for\n%s", tc.file)
				}
				var ee *exitError
				if !errors.As(err, &ee) || ee.code != 2 {
					t.Errorf("error %v is not a usage error (exit 2)", err)
				}
				for _, s := range append(tc.wantErr, file) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\nfor\n%s", err, tc.file)
			}
			for name, want := range tc.want {
				if got := flagString(fs, name); got != want {
					t.Errorf("--%s = %s, want %s", name, got, want)
				}
			}
		})
	}
}

// TestConfigFileLocation: --config, then $NIXPUSH_CONFIG, then the default
// file if it exists.
func TestConfigFileLocation(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "nixpush.toml")
	writeFile(t, good, []byte("jobs = 9\n"), 0o644)
	other := filepath.Join(dir, "other.toml")
	writeFile(t, other, []byte("jobs = 11\n"), 0o644)
	missing := filepath.Join(dir, "missing.toml")

	t.Run("NIXPUSH_CONFIG", func(t *testing.T) {
		t.Setenv("NIXPUSH_CONFIG", good)
		fs, err := parseCommandFlags(t, "push", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := flagString(fs, "jobs"); got != "9" {
			t.Errorf("--jobs = %s, want 9 from $NIXPUSH_CONFIG", got)
		}
	})
	t.Run("--config beats NIXPUSH_CONFIG", func(t *testing.T) {
		t.Setenv("NIXPUSH_CONFIG", good)
		fs, err := parseCommandFlags(t, "push", []string{"--config", other})
		if err != nil {
			t.Fatal(err)
		}
		if got := flagString(fs, "jobs"); got != "11" {
			t.Errorf("--jobs = %s, want 11 from --config", got)
		}
	})
	for _, tc := range []struct{ name, env, flag string }{
		{"missing --config file", "", missing},
		{"missing NIXPUSH_CONFIG file", missing, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NIXPUSH_CONFIG", tc.env)
			var args []string
			if tc.flag != "" {
				args = []string{"--config", tc.flag}
			}
			_, err := parseCommandFlags(t, "push", args)
			if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
				t.Errorf("error %v, want one naming %s, which does not exist", err, missing)
			}
		})
	}
	t.Run("missing default file", func(t *testing.T) {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			t.Skipf("%s exists on this machine", defaultConfigFile)
		}
		t.Setenv("NIXPUSH_CONFIG", "")
		fs, err := parseCommandFlags(t, "push", nil)
		if err != nil {
			t.Fatalf("without a config file: %v", err)
		}
		if got, want := flagString(fs, "jobs"), fs.Lookup("jobs").DefValue; got != want {
			t.Errorf("--jobs = %s, want the default %s", got, want)
		}
	})
}

// TestConfigKnowsEveryCommand: the config's vocabulary is every command's
// flags, and nothing else.
func TestConfigKnowsEveryCommand(t *testing.T) {
	root := newRootCommand(stdio{})
	known := vocabulary(root)
	for _, c := range root.Commands() {
		if c.Annotations[noConfig] != "" || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if len(known[c.Name()]) == 0 && c.Name() != "keygen" {
			t.Errorf("the vocabulary has no flags for %s", c.Name())
		}
	}
	for _, pair := range [][2]string{{"watch-store", "metrics-addr"}, {"watch-store", "unhealthy-after"},
		{"push", "signing-key"}, {"push", "exclude"}, {"status", "json"}, {"watch-exec", "drain-timeout"}} {
		if !known[pair[0]][pair[1]] {
			t.Errorf("vocabulary: %s has no %s", pair[0], pair[1])
		}
	}
	if known["push"]["metrics-addr"] {
		t.Errorf("vocabulary says push has --metrics-addr")
	}
}

// configCheck runs `nixpush config check ARGS` and returns stdout, stderr
// and the exit code.
func configCheck(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := runMain(t, "", append([]string{"config", "check"}, args...)...)
	return r.stdout, r.stderr, r.code
}

// settingLine matches one line of config check's output.
var settingLine = regexp.MustCompile(`^([a-z-]+) = (.*?)(  # from the config file)?$`)

// parseCheck reads config check's settings: value and whether the file
// set it.
func parseCheck(t *testing.T, out string) map[string][2]string {
	t.Helper()
	settings := map[string][2]string{}
	for _, line := range readLines(out) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		m := settingLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("config check line %q is not NAME = VALUE", line)
		}
		settings[m[1]] = [2]string{m[2], m[3]}
	}
	return settings
}

// TestConfigCheck: `config check` prints the settings a command would run
// with, marks those from the file, and never prints a URL's password.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, to, password, want string }{
		{"password", "https://user:s3cret@host/", "s3cret", `"https://user:xxxxx@host/"`},
		{"S3 credentials", "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket?region=eu-west-1", "wJalrXUtnFEMI",
			`"s3://AKIAEXAMPLE:xxxxx@bucket?region=eu-west-1"`},
		{"password with a bad escape", "https://user:s3cret%zz@host/", "s3cret", `"https://user:xxxxx@host/"`},
		{"password with a hash", "https://user:s3cret#1@host/", "s3cret", `"https://user:xxxxx@host/"`},
		{"password with a hash after a port-like part", "https://user:12#s3cret@host/", "12#s3cret", `"https://user:xxxxx@host/"`},
		{"password with a slash", "https://user:s3/cret@host/", "s3/cret", `"https://user:xxxxx@host/"`},
		{"no password", "https://host/cache", "", `"https://host/cache"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "config.toml")
			writeFile(t, file, []byte(fmt.Sprintf("to = %q\njobs = 2\n[watch-store]\nmetrics-addr = \"9464\"\n[push]\njobs = 3\n", tc.to)), 0o644)
			out, errOut, code := configCheck(t, "--config", file)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			if tc.password != "" && strings.Contains(out+errOut, tc.password) {
				t.Errorf("config check printed the password %q:\n%s%s", tc.password, out, errOut)
			}
			if !strings.Contains(out, "(config "+file+")") {
				t.Errorf("config check does not name the file it read:\n%s", out)
			}
			s := parseCheck(t, out)
			// --to is repeatable: shown as a list.
			if want := "[" + tc.want + "]"; s["to"][0] != want {
				t.Errorf("to = %s, want %s", s["to"][0], want)
			}
			if s["to"][1] == "" || s["jobs"] != [2]string{"2", "  # from the config file"} ||
				s["metrics-addr"] != [2]string{`"9464"`, "  # from the config file"} {
				t.Errorf("settings of watch-store: %q", s)
			}
			if s["compression"][1] != "" {
				t.Errorf("compression, which the file does not set, is marked as from it: %q", s["compression"])
			}

			out, errOut, code = configCheck(t, "--config", file, "--for", "push")
			if code != 0 {
				t.Fatalf("--for push: exit %d\n%s%s", code, out, errOut)
			}
			s = parseCheck(t, out)
			if _, ok := s["metrics-addr"]; ok || s["jobs"][0] != "3" || (tc.password != "" && strings.Contains(out, tc.password)) {
				t.Errorf("settings of push: %q", s)
			}
		})
	}
}

// TestConfigCheckErrors: an invalid file fails config check and the
// daemon alike, naming the line; unknown --for is refused.
func TestConfigCheckErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, file, []byte("to = \"file:///x\"\n\n[watch-store]\njobs = \"many\"\n"), 0o644)
	out, errOut, code := configCheck(t, "--config", file)
	if code == 0 || !strings.Contains(errOut, file+" line 4") || out != "" {
		t.Errorf("config check of a bad file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if r := runMain(t, "", "watch-store", "--config", file, "--state-dir", t.TempDir()); r.code != 2 || !strings.Contains(r.stderr, file+" line 4") {
		t.Errorf("watch-store with a bad config: %s", r)
	}

	good := filepath.Join(t.TempDir(), "good.toml")
	writeFile(t, good, []byte("jobs = 2\n"), 0o644)
	if out, errOut, code := configCheck(t, "--config", good, "--for", "frobnicate"); code != 2 || !strings.Contains(errOut, "frobnicate") {
		t.Errorf("--for frobnicate: exit %d\n%s%s", code, out, errOut)
	}
}

// TestConfigCheckExample: the shipped example config passes, and each of
// its settings reaches watch-store (and push, for the top-level ones).
func TestConfigCheckExample(t *testing.T) {
	text, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(exampleConfig, text, vocabulary(newRootCommand(stdio{})))
	if err != nil {
		t.Fatalf("parse %s: %v", exampleConfig, err)
	}
	if len(cfg.top) == 0 || len(cfg.commands["watch-store"]) == 0 {
		t.Fatalf("%s sets nothing? top %v, [watch-store] %v", exampleConfig, cfg.top, cfg.commands)
	}
	for _, command := range []string{"watch-store", "push", "watch-exec"} {
		out, errOut, code := configCheck(t, "--config", exampleConfig, "--for", command)
		if code != 0 || errOut != "" {
			t.Fatalf("config check --for %s: exit %d\nstdout:\n%s\nstderr:\n%s", command, code, out, errOut)
		}
		s := parseCheck(t, out)
		wantKeys := map[string]any{}
		for k, v := range cfg.top {
			wantKeys[k] = v
		}
		for k, v := range cfg.commands[command] {
			wantKeys[k] = v
		}
		for k := range wantKeys {
			if s[k][1] == "" {
				t.Errorf("--for %s: %s = %s is not from the config file", command, k, s[k][0])
			}
		}
	}
}
