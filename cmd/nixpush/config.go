package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// The config file is TOML. Its keys are flag names: top-level keys apply
// to every command that has that flag, and a table named after a command
// ([watch-store], [push], ...) applies to that command only. Flags given
// on the command line win over the file, a command's table over the top
// level. Secrets are never inline: keys name files (signing-key,
// token-file) or come from the environment.
const (
	configFlag        = "config"
	defaultConfigFile = "/etc/nixpush/config.toml"
)

// configPath is the file to read: --config, $NIXPUSH_CONFIG, or the
// default file when it exists. required says a missing file is an error.
func configPath(fs *pflag.FlagSet) (path string, required bool) {
	if p, _ := fs.GetString(configFlag); p != "" {
		return p, true
	}
	if p := os.Getenv("NIXPUSH_CONFIG"); p != "" {
		return p, true
	}
	return defaultConfigFile, false
}

// applyConfig sets every flag the command line left alone from the file.
func applyConfig(fs *pflag.FlagSet) error {
	path, required := configPath(fs)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(path, raw)
	if err != nil {
		return err
	}
	return cfg.apply(fs)
}

// config is a parsed file: top-level settings and per-command tables.
type config struct {
	path     string
	text     string
	top      map[string]any
	commands map[string]map[string]any
}

func parseConfig(path string, raw []byte) (*config, error) {
	var doc map[string]any
	if err := toml.Unmarshal(raw, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("config %s line %d column %d: %s", path, row, col, de.Error())
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c := &config{path: path, text: string(raw), top: map[string]any{}, commands: map[string]map[string]any{}}
	known := knownFlags()
	for k, v := range doc {
		if table, ok := v.(map[string]any); ok {
			if _, isCommand := known[k]; !isCommand {
				return nil, c.errorAt("", k, "unknown command table [%s]", k)
			}
			for key := range table {
				if !known[k][key] {
					return nil, c.errorAt(k, key, "nixpush %s has no setting %q", k, key)
				}
			}
			c.commands[k] = table
			continue
		}
		if !anyCommandHas(known, k) {
			return nil, c.errorAt("", k, "unknown setting %q", k)
		}
		c.top[k] = v
	}
	return c, nil
}

// apply sets the flags of one command from the file.
func (c *config) apply(fs *pflag.FlagSet) error {
	settings := map[string]any{}
	for k, v := range c.top {
		settings[k] = v
	}
	for k, v := range c.commands[fs.Name()] {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || f.Changed || k == configFlag {
			continue // another command's setting, or given on the command line
		}
		table := "" // where k is set, for error messages
		if _, ok := c.commands[fs.Name()][k]; ok {
			table = fs.Name()
		}
		values, err := configValues(settings[k])
		if err != nil {
			return c.errorAt(table, k, "%s: %v", k, err)
		}
		sv, repeatable := f.Value.(pflag.SliceValue)
		if !repeatable && len(values) != 1 {
			return c.errorAt(table, k, "%s takes one value, not a list", k)
		}
		if repeatable && len(values) == 0 {
			// An empty list clears the default (upstream-key = []).
			if err := sv.Replace(nil); err != nil {
				return c.errorAt(table, k, "%s: %v", k, err)
			}
			f.Changed = true
			continue
		}
		for _, v := range values {
			if err := fs.Set(k, v); err != nil {
				return c.errorAt(table, k, "%s: %v", k, err)
			}
		}
	}
	return nil
}

// configValues turns a TOML value into the strings a flag parses.
func configValues(v any) ([]string, error) {
	switch v := v.(type) {
	case string, bool, int64, float64:
		return []string{fmt.Sprint(v)}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, err := configValues(e)
			if err != nil || len(s) != 1 {
				return nil, fmt.Errorf("lists may hold only strings, numbers and booleans")
			}
			out = append(out, s[0])
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

// errorAt names the file and the line where key is set in table ("" for
// the top level, where a table's own name is a key too).
func (c *config) errorAt(table, key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := c.lineOf(table, key); line > 0 {
		return fmt.Errorf("config %s line %d: %s", c.path, line, msg)
	}
	return fmt.Errorf("config %s: %s", c.path, msg)
}

var tableHeader = regexp.MustCompile(`^[ \t]*\[[ \t]*"?([^"\]]*?)"?[ \t]*\]`)

// lineOf is the 1-based line that sets key in table, or that opens the
// table key when table is ""; failing that, the first line that sets key
// anywhere (inline tables); 0 if none does.
func (c *config) lineOf(table, key string) int {
	set := regexp.MustCompile(`^[ \t]*"?` + regexp.QuoteMeta(key) + `"?[ \t]*=`)
	current, first := "", 0
	for i, line := range strings.Split(c.text, "\n") {
		if m := tableHeader.FindStringSubmatch(line); m != nil {
			current = m[1]
			if table == "" && current == key {
				return i + 1
			}
			continue
		}
		if set.MatchString(line) {
			if current == table {
				return i + 1
			}
			if first == 0 {
				first = i + 1
			}
		}
	}
	return first
}

// errFlagsCollected stops a command right after it defined its flags.
var errFlagsCollected = errors.New("flags collected")

// collectFlags, while set, makes parseFlags hand the flag set over and
// stop the command: knownFlags uses it to learn every command's flags from
// the commands themselves, so the config's vocabulary cannot drift from
// the command line's.
var collectFlags func(*pflag.FlagSet)

// knownFlags maps each command to the names of its flags.
func knownFlags() map[string]map[string]bool {
	known := map[string]map[string]bool{}
	collectFlags = func(fs *pflag.FlagSet) {
		names := map[string]bool{}
		fs.VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		known[fs.Name()] = names
	}
	defer func() { collectFlags = nil }()
	for _, c := range commands {
		if c.name != "config" {
			_ = c.run(nil, nil) //nolint:staticcheck // stops at parseFlags
		}
	}
	return known
}

func anyCommandHas(known map[string]map[string]bool, key string) bool {
	for _, names := range known {
		if names[key] {
			return true
		}
	}
	return false
}

// runConfig is `nixpush config check [--for COMMAND]`: it validates the
// file and prints the settings COMMAND (default watch-store) would run
// with, credentials in URLs redacted.
func runConfig(_ context.Context, args []string) error {
	fs := newFlagSet("config", "check [--for COMMAND] [--config FILE]")
	var forCmd string
	fs.StringVar(&forCmd, "for", "watch-store", "show the settings of this command")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "check" {
		return &exitError{code: 2, err: errors.New("usage: nixpush config check [--for COMMAND] [--config FILE]")}
	}
	var target *pflag.FlagSet
	collectFlags = func(fs *pflag.FlagSet) { target = fs }
	for _, c := range commands {
		if c.name == forCmd {
			_ = c.run(nil, nil) //nolint:staticcheck // stops at parseFlags
		}
	}
	collectFlags = nil
	if target == nil {
		return &exitError{code: 2, err: fmt.Errorf("no command %q", forCmd)}
	}
	if cfgFile, _ := fs.GetString(configFlag); cfgFile != "" {
		_ = target.Set(configFlag, cfgFile)
	}
	if err := applyConfig(target); err != nil {
		return &exitError{code: 2, err: err}
	}
	path, _ := configPath(target)
	fmt.Printf("# effective settings of nixpush %s (config %s)\n", forCmd, path)
	target.VisitAll(func(f *pflag.Flag) {
		if f.Name == configFlag {
			return
		}
		origin := ""
		if f.Changed {
			origin = "  # from the config file"
		}
		fmt.Printf("%s = %s%s\n", f.Name, redactValue(f), origin)
	})
	return nil
}

// redactValue shows a flag's value without credentials.
func redactValue(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return fmt.Sprintf("%q", sv.GetSlice())
	}
	v := redactURL(f.Value.String())
	if f.Value.Type() == "string" {
		return strconv.Quote(v)
	}
	return v
}

// redactURL hides the password of a URL, also of one that does not parse
// or parses wrongly because the password holds '#', '/' or a bad escape:
// then everything between "://" and the last '@' goes, if it has a ':'.
func redactURL(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(v, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 || !strings.Contains(rest[:at], ":") {
		return v
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
